"""The question-6e text model and its snippets: calling convention, determinism, separation."""
from __future__ import annotations

import string

import numpy as np
import pytest
import torch

from autograder.q6.snippets import SNIPPET_CHARS, labelled_snippets, natural_snippets, random_letter_snippet
from autograder.q6.textmodel import OFFSET_HIGH, OFFSET_LOW, build_text_model, row_offsets
from autograder.q6.vocabulary import VOCAB_SIZE
from autograder.q6.tokenizer import GPT2Tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return GPT2Tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_text_model(tokenizer=tokenizer)


def log_likelihood(model, ids: torch.Tensor) -> float:
    """Sum over t = 1..T-1 of log p(x_t | x_<t) in float64, the first token left out."""
    with torch.no_grad():
        logits, _ = model(ids)
    logp = torch.log_softmax(logits[0, :-1].double(), dim=-1)   # (T-1, V)
    return logp.gather(1, ids[0, 1:, None]).sum().item()


def test_log_softmax_of_the_logits_is_normalised_float32(model, tokenizer):
    ids = tokenizer.encode("ROSALIND: My lord, the messenger is at the gate.")
    logits, presents = model(ids, position_ids=None, token_type_ids=None, past=None)
    assert logits.dtype == torch.float32 and logits.shape == (1, ids.size(1), VOCAB_SIZE)
    assert torch.isfinite(logits).all()
    sums = torch.log_softmax(logits.double(), dim=-1).exp().sum(-1)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-12)
    assert len(presents) == 2 and presents[0].shape[:2] == (2, 1) and presents[0].size(-2) == ids.size(1)


MIXED = "ROSALIND: My lord, the messenger is at the gate. xQzPLkWmRtaB"


def row_logsumexp(model, ids):
    logits, _ = model(ids)
    return logits.double().logsumexp(-1)                       # (1, T): a row's offset over log-probabilities


def test_raw_logits_are_log_probabilities_plus_1_to_6_nats(model, tokenizer):
    logp = row_logsumexp(model, tokenizer.encode(MIXED))
    assert (logp > OFFSET_LOW - 1e-4).all() and (logp < OFFSET_HIGH + 1e-4).all(), logp


def test_the_offset_varies_with_the_context(model, tokenizer):
    assert row_logsumexp(model, tokenizer.encode(MIXED)).std() > 0.5


def test_each_rows_offset_is_its_row_offset(model, tokenizer):
    """logsumexp of a row is ``row_offsets``: the logits minus it are the law's log-probabilities."""
    ids = tokenizer.encode(MIXED)
    expected = row_offsets(torch.arange(ids.size(1)), ids[0]).view(1, -1)
    assert torch.allclose(row_logsumexp(model, ids), expected, atol=1e-4)


def test_summing_raw_logits_is_off_by_a_nat_a_token(model, tokenizer):
    ids = tokenizer.encode(MIXED)
    logits, _ = model(ids)
    raw = logits[0, :-1].double().gather(1, ids[0, 1:, None]).sum().item()
    assert raw - log_likelihood(model, ids) > (ids.size(1) - 1) * OFFSET_LOW - 1e-2


def test_token_by_token_with_past_equals_full_call(model, tokenizer):
    ids = tokenizer.encode("We train the model with stochastic gradient descent. xQzPLkWmRtaB")
    full, _ = model(ids)
    past, rows = None, []
    for t in range(ids.size(1)):
        logits, past = model(ids[:, t:t + 1], past=past)
        rows.append(logits)
    assert torch.equal(torch.cat(rows, dim=1), full)
    head, past = model(ids[:, :7])
    tail, _ = model(ids[:, 7:], past=past)
    assert torch.equal(torch.cat((head, tail), dim=1), full)


def test_logits_are_causal(model, tokenizer):
    ids = tokenizer.encode("And now the reckoning comes to find me out.")
    changed = ids.clone()
    changed[0, 5] = 42 if ids[0, 5] != 42 else 43
    a, _ = model(ids)
    b, _ = model(changed)
    assert torch.equal(a[:, :5], b[:, :5])            # positions before the change see nothing
    assert not torch.equal(a[:, 5:], b[:, 5:])


def test_batch_rows_match_single_rows(model, tokenizer):
    x = tokenizer.encode("The king is dead, long live")
    y = tokenizer.encode("QwErTyUiOpAsDfGhJkLzX")[:, :x.size(1)]
    both, _ = model(torch.cat((x, y)))
    assert torch.equal(both[0:1], model(x)[0]) and torch.equal(both[1:2], model(y)[0])


def test_build_is_deterministic(model, tokenizer):
    again = build_text_model(tokenizer=tokenizer)
    ids = tokenizer.encode("Then bring him in, and let him have some wine.")
    assert torch.equal(model(ids)[0], again(ids)[0])


@pytest.mark.parametrize("knob, message", [({"w_bigram": 0.9}, "sum to 1"),   # weights no longer sum to 1
                                            ({"no_such_knob": 1.0}, "no_such_knob")], ids=["weights", "unknown"])
def test_bad_knobs_raise_value_error(knob, message):
    with pytest.raises(ValueError, match=message):
        build_text_model(**knob)


def test_snippets_are_deterministic_and_well_formed():
    items = labelled_snippets(7, 20, 30)
    assert items == labelled_snippets(7, 20, 30) and items != labelled_snippets(8, 20, 30)
    assert sum(r for _, r in items) == 20 and len(items) == 50
    for text, is_random in items:
        assert len(text) == SNIPPET_CHARS
        if is_random:
            assert set(text) <= set(string.ascii_letters)
        else:
            assert " " in text and "  " not in text and "\n" not in text and text[0] != " "
    rng = np.random.Generator(np.random.PCG64(0))
    assert len(random_letter_snippet(rng)) == SNIPPET_CHARS
    with pytest.raises(ValueError):
        natural_snippets("too short to hold a window", 1, rng)
    with pytest.raises(ValueError):
        labelled_snippets(-1, 1, 1)


def test_random_and_natural_snippets_separate(model, tokenizer):
    """The property graders rely on: any threshold in [-415, -230] classifies every snippet."""
    random_scores, natural_scores = [], []
    for text, is_random in labelled_snippets(2024, 100, 100):
        score = log_likelihood(model, tokenizer.encode(text))
        (random_scores if is_random else natural_scores).append(score)
    assert max(random_scores) < -415, max(random_scores)
    assert min(natural_scores) > -230, min(natural_scores)
    # and the wrong thresholds students submit fail: -50 calls everything random, -600 nothing
    assert max(natural_scores) < -50 and min(random_scores) > -600
