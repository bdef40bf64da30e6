"""The statistics behind the sampler tests: exact PIT, KS calibration, designed laws and power."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps

from autograder import stats
from autograder.config import load_assignment
from autograder.q6 import power
from autograder.q6.designed import ProfileLaw, profile_probs
from autograder.q6.vocabulary import VOCAB_SIZE
from autograder.q6.history import decode
from autograder.q6.model import GPT2
from autograder.q6.grading_models import build_model, model_config

PROFILE40 = {"kind": "profile", "salt": 11, "top_k": 40, "head": 0.7, "spread": 1.0, "beyond": 0.3}


def test_pit_maps_each_token_onto_its_own_slice_in_probability_order():
    law = np.array([[0.1, 0.4, 0.1, 0.4]])  # order: token 1, token 3, token 0, token 2 (ties by id)
    rng = np.random.Generator(np.random.PCG64(0))
    slices = {1: (0.0, 0.4), 3: (0.4, 0.8), 0: (0.8, 0.9), 2: (0.9, 1.0)}
    for token, (lo, hi) in slices.items():
        u = stats.randomized_pit(np.repeat(law, 200, axis=0), np.full(200, token), rng)
        assert lo <= u.min() and u.max() <= hi


def test_pit_of_a_correct_sampler_is_uniform_and_ks_holds_its_level():
    """At alpha = 0.05 a correct sampler fails about 5% of the time: the level is exact."""
    rng = np.random.Generator(np.random.PCG64(1))
    laws = rng.dirichlet(np.full(30, 0.3), size=100)
    failures = 0
    for _ in range(400):
        drawn = np.array([rng.choice(30, p=p) for p in laws])
        failures += not stats.uniformity_test(stats.randomized_pit(laws, drawn, rng), 0.05).passed
    assert sps.binomtest(failures, 400, 0.05).pvalue > 1e-3, failures


def test_ks_rejects_a_greedy_sampler():
    rng = np.random.Generator(np.random.PCG64(2))
    laws = rng.dirichlet(np.full(30, 0.5), size=200)
    u = stats.randomized_pit(laws, laws.argmax(axis=1), rng)
    assert not stats.uniformity_test(u, 1e-6).passed


def test_effective_temperature_recovers_a_tempered_sampler():
    rng = np.random.Generator(np.random.PCG64(3))
    p = power.reference_law(PROFILE40, None)
    q = stats.tempered(p, 2.0)
    drawn = rng.choice(len(p), size=3000, p=q)
    beta = stats.effective_inverse_temperature([np.log(p)] * len(drawn), drawn)
    assert 1 / beta == pytest.approx(2.0, rel=0.1)


def test_profile_law_depends_on_the_whole_context_and_has_the_designed_shape():
    model = build_model(PROFILE40)
    a = torch.tensor([[5, 6, 7, 8]])
    b = torch.tensor([[9, 6, 7, 8]])  # only the first token differs
    with torch.no_grad():
        la, _ = model(a)
        lb, _ = model(b)
    assert la[0, -1].argmax() != lb[0, -1].argmax()
    law = torch.softmax(la[0, -1].double(), -1).sort(descending=True).values.numpy()
    np.testing.assert_allclose(law, profile_probs(40, 0.7, 1.0, 0.3), rtol=1e-5)
    assert law[:40].sum() == pytest.approx(0.7, rel=1e-6) and model_config(PROFILE40).top_k == 40


def test_profile_model_cache_matches_the_full_forward():
    model = GPT2.designed(ProfileLaw(3, profile_probs(8, 0.5, 0.3, 0.3)), top_k=8)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        full, _ = model(ids)
        _, past = model(ids[:, :2])
        step, past = model(ids[:, 2:], past=past)
    history = decode(past[0][0])          # (B, T, 3): token, position, token type
    assert torch.equal(step, full[:, 2:]) and full.shape[-1] == VOCAB_SIZE
    assert history[0, :, 0].tolist() == ids[0].tolist() and history[0, :, 1].tolist() == list(range(5))


def test_designed_power_is_proven_for_the_configured_draws():
    """Every statistical sampler test of the assignment on a profile model has proven power >= 0.99
    against T x1.1, T x0.9 and a TV 0.1 head-tail shift; simulation agrees with the DKW bound."""
    assignment = load_assignment()
    judged = 0
    for test in assignment.tests:
        scenario = test.params.get("sampler")
        if not test.statistical or assignment.model(scenario["model"])["kind"] != "profile":
            continue
        spec, draws = assignment.model(scenario["model"]), scenario["runs"] * scenario["length"]
        report = power.sampler_power(spec, scenario.get("temperature"), draws, assignment.alpha_per_test)
        assert min(report.power_hot, report.power_cold, report.power_tv) >= 0.99, (test.id, report.line())
        judged += 1
    assert judged == 4
    p = power.reference_law(PROFILE40, None)
    report = power.sampler_power(PROFILE40, None, 2200, 1e-6)
    simulated = stats.simulated_power(p, stats.tempered(p, 1.1), 2200, 1e-6, reps=200)
    assert simulated >= report.power_hot - 0.03
    assert stats.dkw_power(0.1, 100, 1e-6) == 0.0  # too few draws: no claim
