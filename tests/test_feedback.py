"""What students read of a failed check: the named mistake, the table of what was checked, both renderings.

The checks of ``autograder.q6.judge`` are pure functions of plain data, so they are called here
on data built the way a student's code would build it; the Markdown is parsed with a Markdown
parser, as Gradescope renders it.
"""
from __future__ import annotations

import math
from html.parser import HTMLParser

import markdown
import numpy as np
import pytest
import torch

from autograder.config import load_assignment
from autograder.feedback import Outcome, Row, as_markdown, as_text
from autograder.q6 import judge, laws, mistakes
from autograder.q6.diagnoses import KEYS, describe, is_known
from autograder.q6.grading_models import ModelCache
from autograder.q6.vocabulary import END_OF_TEXT_ID, VOCAB_SIZE
from autograder.stats import tempered

ASSIGNMENT = load_assignment()


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def rendered(md: str) -> _Text:
    parsed = _Text()
    parsed.feed(markdown.markdown(md, extensions=["tables"]))
    return parsed


@pytest.fixture(scope="module")
def model64():
    return ModelCache().get(ASSIGNMENT.model("gpt2"), torch.float64)


@pytest.fixture(scope="module")
def text() -> np.ndarray:
    return np.random.Generator(np.random.PCG64(7)).integers(0, END_OF_TEXT_ID, size=12, dtype=np.int64)


def likelihood_case(model64, tokens: np.ndarray) -> judge.LikelihoodCase:
    own, nxt = laws.position_logprobs(model64, tokens)
    return judge.LikelihoodCase(tokens.size, nxt[:-1], lambda: mistakes.likelihood_candidates(model64, tokens, nxt[:-1], own))


@torch.no_grad()
def student_log_probs(model64, tokens: np.ndarray, **inputs) -> torch.Tensor:
    """(T-1,) log p(x_t | x_<t) as a student computes them: log_softmax of the shifted logits
    (``inputs``: what else the student passes the model)."""
    ids = torch.as_tensor(tokens).view(1, -1)
    logp = torch.log_softmax(model64(ids, **inputs)[0][0].double(), dim=-1)
    return logp[:-1].gather(1, ids[0, 1:].view(-1, 1))[:, 0]


MISTAKES = {  # what a wrong log_likelihood returns, written as a student would, and its diagnosis
    "likelihood:mean-not-sum": lambda m, x: float(student_log_probs(m, x).mean()),
    "likelihood:sign": lambda m, x: float(-student_log_probs(m, x).sum()),
    "likelihood:bits": lambda m, x: float(student_log_probs(m, x).sum() / math.log(2)),
    "likelihood:last-dropped": lambda m, x: float(student_log_probs(m, x)[:-1].sum()),
    "likelihood:tail-text+half": lambda m, x: float(student_log_probs(m, x[1:]).sum() / 2),
    "likelihood:sign+mean-not-sum": lambda m, x: float(-student_log_probs(m, x).mean()),
    "likelihood:positions-shifted": lambda m, x: float(student_log_probs(
        m, x, position_ids=torch.arange(1, x.size + 1).view(1, -1)).sum()),
    "likelihood:token-types-zero": lambda m, x: float(student_log_probs(
        m, x, token_type_ids=torch.zeros(1, x.size, dtype=torch.long)).sum()),
    "likelihood:first-token-eot": lambda m, x: float(student_log_probs(m, np.concatenate([[END_OF_TEXT_ID], x])).sum()),
}


@pytest.mark.parametrize("key", sorted(MISTAKES))
def test_a_wrong_log_likelihood_is_named_by_the_candidate_it_matches(key, model64, text):
    got = MISTAKES[key](model64, text)
    outcome = judge.check_log_likelihood("log_likelihood()", [likelihood_case(model64, text)], [got])
    assert not outcome.passed and outcome.diagnosis == key
    assert outcome.message == f"log_likelihood(): your value equals {describe(key)}."
    assert Row("log-likelihood (nats)", f"{float(student_log_probs(model64, text).sum()):.4f}", f"{got:.4f}") in outcome.rows


def test_a_right_log_likelihood_passes_and_an_unmatched_one_says_what_is_known(model64, text):
    right = float(student_log_probs(model64, text).sum())
    case = likelihood_case(model64, text)
    assert judge.check_log_likelihood("log_likelihood()", [case], [right]).passed
    outcome = judge.check_log_likelihood("log_likelihood()", [case], [right * 0.37])
    assert not outcome.passed and outcome.diagnosis is None
    assert "no common mistake matches it" in outcome.message and "sum of log p(x_t | x_<t)" in outcome.message


def test_two_candidates_equal_within_tolerance_are_both_named():
    case = judge.LikelihoodCase(3, np.array([-2.0, -4.0]),
                                lambda: [("likelihood:half", 1, -3.0), ("likelihood:mean-not-sum", 1, -3.0),
                                         ("likelihood:sign+half", 2, -3.0)])
    outcome = judge.check_log_likelihood("log_likelihood()", [case], [-3.0])
    assert outcome.diagnosis == "likelihood:half"   # the first of the simplest, in table order
    assert describe("likelihood:half") in outcome.message and describe("likelihood:mean-not-sum") in outcome.message
    assert describe("likelihood:sign+half") not in outcome.message


def sampler_outcome(true_factor: float, temperature: float = 0.95, seed: int = 3):
    """A sampler drawing at ``true_factor`` times the asked temperature, judged on a fixed law."""
    spec = ASSIGNMENT.model("profile1000")
    from autograder.q6.power import reference_law

    base = reference_law(spec, None)                       # the law at temperature 1
    def rows(tokens, t, h):
        law = base if t is None else tempered(base, t)
        return np.tile(law, (tokens.size - 4, 1))
    expected = judge.SamplerLaw(rows, temperature, 1, prompt_len=4, alpha=1e-6)
    rng = np.random.Generator(np.random.PCG64(seed))
    drawn_law = tempered(base, temperature * true_factor)
    got = [np.concatenate([[0, 1, 2, 3], rng.choice(base.size, size=300, p=drawn_law)])[None] for _ in range(6)]
    return judge.check_sampler_draws("sample()", expected, got, [g * 0 for g in got], pit_seed=1, diagnose_seed=2)


@pytest.mark.parametrize("factor, key", [(0.95, "sampler:temperature-squared"), (1 / 0.95, "sampler:temperature-ignored")])
def test_a_sampler_is_named_only_by_a_candidate_law_its_draws_fit(factor, key):
    outcome = sampler_outcome(factor)
    assert not outcome.passed and outcome.diagnosis == key
    assert f"Diagnosis: {describe(key)}." in outcome.message
    labels = [r.label for r in outcome.rows]
    assert labels[:4] == ["draws of the most likely token", "draws of ranks 2 to 5", "draws of rank 6 to k",
                          "draws outside the top k"] and "temperature the draws look like (95% interval)" in labels


def test_a_sampler_that_fits_no_candidate_gets_no_diagnosis():
    outcome = sampler_outcome(1.6)
    assert not outcome.passed and outcome.diagnosis is None and "no common mistake matches" in outcome.message


def test_classification_names_the_threshold_rule_the_labels_follow():
    loglik = [-440.0, -430.0, -150.0, -120.0]
    labels = [True, True, False, False]
    inverted = judge.check_classification("classification()", labels, [False, False, True, True], lambda: loglik)
    assert inverted.diagnosis == "classifier:inverted"
    assert Row("threshold your labels imply (random below it)", "between -430.0 and -150.0",
               "between -430.0 and -150.0, inverted (random above it)") in inverted.rows
    assert judge.check_classification("classification()", labels, [True] * 4, lambda: loglik).diagnosis == "classifier:all-random"
    assert judge.check_classification("classification()", labels, [True, False, True, False],
                                      lambda: loglik).diagnosis == "classifier:not-a-threshold"
    assert judge.check_classification("classification()", labels, labels, lambda: loglik).passed


def outcomes_to_render(model64, text) -> list[Outcome]:
    prompt = np.arange(3, dtype=np.int64).reshape(1, 3)
    return [
        judge.check_log_likelihood("log_likelihood()", [likelihood_case(model64, text)],
                                   [MISTAKES["likelihood:tail-text+half"](model64, text)]),
        judge.check_token_array("sample()", prompt, np.arange(8, dtype=np.int64), 5),
        judge.check_classification("classification()", [True, False], [False, True], lambda: [-400.0, -100.0]),
        sampler_outcome(0.95),
    ]


def test_the_markdown_of_a_failed_check_renders_its_table_and_no_raw_markup(model64, text):
    for outcome in outcomes_to_render(model64, text):
        page = rendered(as_markdown(outcome))
        assert "table" in page.tags and page.tags.count("tr") == len(outcome.rows) + 1, as_markdown(outcome)
        shown = "".join(page.text)
        assert "|" not in shown and "**" not in shown and "\\" not in shown, shown
        assert outcome.message.replace("|", "\u2223").split("(")[0] in shown


def test_the_text_rendering_holds_the_same_content_unescaped(model64, text):
    outcome = outcomes_to_render(model64, text)[0]
    plain = as_text(outcome)
    assert plain.splitlines()[0] == outcome.message and "text[:, 1:]" in plain and "\\" not in plain
    for row in outcome.rows:
        assert any(row.label in line and row.yours in line for line in plain.splitlines())


def test_every_key_the_table_lists_is_known_and_described():
    assert all(is_known(k) and describe(k) for k in KEYS)
    assert is_known("likelihood:tail-text+half") and not is_known("likelihood:half+tail-text")
    assert not is_known("likelihood:") and not is_known("sampler:made-up")


def test_temperature_scale_candidates_name_the_mistake():
    spec = ASSIGNMENT.model("gpt2")
    model = ModelCache().get(spec)
    prompt = np.arange(10, dtype=np.int64).reshape(1, 10)
    filtered, past = laws.last_logits(model, prompt, 40)
    case = judge.TemperatureCase((torch.softmax(filtered.double() / 0.5, -1),), (filtered[0] <= laws.NEG).numpy(),
                                 lambda: mistakes.temperature_candidates(model, past, filtered, 40, 0.5, 1))
    for got, key in [(filtered * 0.5, "temperature:inverted"), (filtered, "temperature:ignored"),
                     (filtered / 0.25, "temperature:squared")]:
        outcome = judge.check_temperature_scale("temperature_scale()", [case], [got.numpy()], 0.5)
        assert outcome.diagnosis == key and f"Diagnosis: {describe(key)}." in outcome.message
        assert outcome.rows[0].label == "entropy of softmax(logits), nats"
    assert judge.check_temperature_scale("temperature_scale()", [case], [(filtered / 0.5).numpy()], 0.5).passed
    assert VOCAB_SIZE == filtered.shape[1]


@pytest.mark.slow
def test_gradescope_gets_markdown_and_the_students_check_the_same_content_as_text(submission_from, monkeypatch):
    """The same failed check: Markdown with its key for Gradescope, plain text in a terminal, a hint when hidden."""
    from autograder import student_check
    from autograder.runner import grade
    from conftest import FIXTURES

    folder = submission_from({"likelihood.py": FIXTURES / "corpus" / "likelihood_bad_tail_text_halved.py"})
    results, log = grade(folder, only=frozenset({"6d-0-basic", "6d-1-hidden"}))
    tests = {t.test_id: t for t in results.tests}
    public, hidden = tests["6d-0-basic"], tests["6d-1-hidden"]
    assert (public.output_format, public.diagnosis) == ("md", "likelihood:tail-text+half")
    assert public.to_gradescope()["extra_data"]["diagnosis"] == "likelihood:tail-text+half"
    assert "table" in rendered(public.output).tags
    assert hidden.output_format == "text" and hidden.output == "wrong log-likelihood" and hidden.diagnosis
    monkeypatch.setattr(student_check, "public_ids", lambda assignment: frozenset({"6d-0-basic"}))
    checked = {t.test_id: t for t in student_check.check(folder)[0].tests}["6d-0-basic"]
    assert checked.output_format == "text" and checked.diagnosis == public.diagnosis
    assert checked.output.splitlines()[0] == ("log_likelihood(): your value equals "
                                              f"{describe('likelihood:tail-text+half')}.")
    assert "\\" not in checked.output and "  tokens in the text" in checked.output
    assert any(checked.output.splitlines()[0] in line for line in log)   # the staff log shows the text rendering
