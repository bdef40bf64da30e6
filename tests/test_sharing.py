"""What makes a grade fast without changing a verdict: lanes, shared weights, exact laws without copies."""
from __future__ import annotations

import copy
import stat

import numpy as np
import pytest
import torch
import yaml

from autograder.config import DEFAULT_CONFIG, load_assignment
from autograder.context import join_answers, split_request
from autograder.errors import AutograderError, ConfigError
from autograder.q6 import laws
from autograder.q6.judge import check_seed_dependence
from autograder.q6.power import reference_law
from autograder.q6.model import Exact
from autograder.q6.grading_models import ModelCache, build_model, model_config

ASSIGNMENT = load_assignment()


def test_a_spread_request_is_cut_in_fixed_order_and_its_answers_joined_back():
    args = {"prompts": [1, 2, 3, 4, 5], "seeds": [10, 20, 30, 40, 50], "length": 7}
    parts = split_request(args, ("prompts", "seeds"), 2)
    assert parts == [{"prompts": [1, 2], "seeds": [10, 20], "length": 7},
                     {"prompts": [3, 4, 5], "seeds": [30, 40, 50], "length": 7}]
    assert split_request(args, ("prompts",), 8)[0] == {**args, "prompts": [1]}  # never an empty lane
    assert join_answers([{"tokens": [1, 2]}, {"tokens": [3]}]) == {"tokens": [1, 2, 3]}
    assert join_answers([{"tokens": [1]}, {"tokens": "forged"}]) == {"tokens": None}  # reported as malformed
    with pytest.raises(AutograderError, match="different lengths"):
        split_request({"prompts": [1, 2], "seeds": [1]}, ("prompts", "seeds"), 2)


def test_lanes_must_be_a_small_positive_integer(tmp_path):
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for bad in (0, 9, "two"):
        data["lanes"] = bad
        path = tmp_path / "assignment.yml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError, match="lanes"):
            load_assignment(path)


@torch.no_grad()
def test_exact_laws_from_float32_weights_equal_a_float64_copy():
    model = build_model(ASSIGNMENT.model("gpt2"))
    copy64 = copy.deepcopy(model).double()
    exact = Exact(model)
    ids = torch.tensor([[5, 17, 300, 50256, 9]])
    want, past64 = copy64(ids[:, :3])
    got, past = exact(ids[:, :3])
    assert got.dtype == torch.float64 and torch.allclose(got, want, rtol=0, atol=1e-12)
    want2, _ = copy64(ids[:, 3:], past=past64)
    got2, _ = exact(ids[:, 3:], past=past)
    assert torch.allclose(got2, want2, rtol=0, atol=1e-12)
    assert next(model.parameters()).dtype == torch.float32  # no copy was made


@pytest.mark.parametrize("name", ["gpt2", "text"])
@torch.no_grad()
def test_chunked_position_logprobs_equal_one_full_pass(name):
    model64 = ModelCache().get(ASSIGNMENT.model(name), torch.float64)
    tokens = np.random.default_rng(0).integers(0, 50256, size=30)
    own, nxt = laws.position_logprobs(model64, tokens, chunk=7)
    logp = torch.log_softmax(model64(torch.as_tensor(tokens).view(1, -1))[0][0].double(), -1).numpy()
    np.testing.assert_allclose(own, logp[np.arange(30), tokens], atol=1e-9)
    np.testing.assert_allclose(nxt[:-1], logp[np.arange(29), tokens[1:]], atol=1e-9)
    assert nxt[-1] == 0.0


@pytest.mark.parametrize("name", ["profile40", "profile1000"])
@torch.no_grad()
def test_a_designed_models_exact_support_agrees_with_its_logits(name):
    spec = ASSIGNMENT.model(name)
    model, top_k = ModelCache().get(spec, torch.float64), model_config(spec).top_k
    rng = np.random.default_rng(1)
    tokens = list(rng.integers(0, 50257, 6))
    for _ in range(40):  # mostly survivors, some tokens just past the cut, some anywhere
        order = torch.argsort(model(torch.tensor([tokens]))[0][0, -1], descending=True)
        tokens.append(int(order[rng.integers(0, top_k + 5)]) if rng.random() < 0.8 else int(rng.integers(0, 50257)))
    rows = model(torch.tensor([tokens]))[0][0, 5:-1]
    kth = torch.topk(rows, top_k, dim=-1).values[:, -1]
    from_logits = (rows.gather(1, torch.tensor(tokens[6:]).view(-1, 1))[:, 0] >= kth).numpy()
    assert (model.law.in_top_k(tokens, 6, top_k) == from_logits).all() and 0 < from_logits.mean() < 1


@pytest.mark.parametrize("name", ["profile40", "profile200", "profile1000", "profile1000_cold"])
@pytest.mark.parametrize("temperature", [None, 0.6, 0.95, 1.7])
@torch.no_grad()
def test_a_designed_models_step_laws_are_the_laws_of_its_filtered_logits(name, temperature):
    spec = ASSIGNMENT.model(name)
    model, top_k = ModelCache().get(spec, torch.float64), model_config(spec).top_k
    tokens = np.random.default_rng(2).integers(0, 50257, 40)
    logits = model(torch.as_tensor(tokens).view(1, -1))[0][0, 9:-1].double()         # (30, V)
    kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
    scaled = torch.where(logits < kth, -1e10, logits) / (temperature or 1.0)
    from_logits = torch.softmax(scaled, dim=-1).numpy()
    fast = laws.step_laws(model, tokens, 10, top_k, temperature, horizon=1)           # from the permutation
    assert ((fast > 0) == (from_logits > 0)).all() and (fast > 0).sum(1).tolist() == [top_k] * 30
    np.testing.assert_allclose(fast, from_logits, rtol=1e-12, atol=0)


def test_the_store_is_written_once_by_the_harness_and_mapped_by_readers(tmp_path):
    spec = ASSIGNMENT.model("gpt2_b")
    reader = ModelCache(tmp_path)
    reader.get(spec)
    assert list(tmp_path.iterdir()) == []       # a worker never writes the store
    writer = ModelCache(tmp_path, writer=True)
    writer.share(ASSIGNMENT.models.values())
    files = sorted(tmp_path.iterdir())
    assert len(files) == 2 and all(stat.S_IMODE(f.stat().st_mode) == 0o644 for f in files)  # gpt2, gpt2_b
    mapped = ModelCache(tmp_path).get(spec)
    built = build_model(spec)
    for (name, a), (_, b) in zip(mapped.state_dict().items(), built.state_dict().items()):
        assert torch.equal(a, b), name
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(mapped(ids)[0], built(ids)[0])


RUN = np.arange(68).reshape(1, -1)


def test_a_sampler_that_ignores_the_seed_is_caught_where_a_collision_is_negligible():
    law = reference_law(ASSIGNMENT.model("profile40"), None)
    same = check_seed_dependence("sample()", [RUN, RUN.copy(), RUN, RUN], 60, law, 1e-6)
    assert not same.passed and same.diagnosis == "sampler:reseeded"
    assert "two calls with the same prompt and different seeds drew the same 60 tokens" in same.message


@pytest.mark.parametrize("runs, length, model", [
    ([RUN, RUN + 1, RUN, RUN], 60, "profile40"),        # the two runs differ
    ([RUN, RUN.copy(), RUN, RUN], 2, "profile40"),      # two tokens of a top-40 law collide too often to speak
    ([RUN, RUN.copy(), RUN, RUN], 12, "gpt2"),          # no exact collision bound on a GPT-2: no check
], ids=["runs-differ", "collision-too-likely", "no-bound-on-gpt2"])
def test_the_seed_check_stays_silent_where_a_correct_sampler_could_repeat(runs, length, model):
    spec = ASSIGNMENT.model(model)
    law = reference_law(spec, None) if spec.get("kind") == "profile" else None
    assert check_seed_dependence("sample()", runs, length, law, 1e-6).passed