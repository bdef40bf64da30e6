"""What the drivers accept as a returned number, and the feedback for a non-finite one."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autograder.errors import InvalidReturn
from autograder.q6.drivers import as_float
from autograder.runner import grade
from conftest import FIXTURES

FINITE = "it must return a finite real number (the sum of log-probabilities in nats)"
UNDERFLOW = (": a probability underflowed to 0 (a product of probabilities, or the log of a float32 softmax, does so "
             "on long texts); sum log_softmax terms instead")


@pytest.mark.parametrize("value", [-12.5, np.float64(-12.5), np.float32(-12.5), torch.tensor(-12.5),
                                   torch.tensor([-12.5], dtype=torch.float64)], ids=repr)
def test_real_numbers_are_accepted(value):
    number = as_float(value, "log_likelihood()")
    assert number == -12.5 and type(number) is float


def test_an_int_is_accepted_as_a_float():
    assert type(as_float(-3, "log_likelihood()")) is float


def test_a_one_element_tensor_attached_to_the_graph_is_accepted():
    weight = torch.tensor([-6.25], requires_grad=True)
    assert as_float(weight.sum() * 2, "log_likelihood()") == -12.5


@pytest.mark.parametrize("value, shown", [
    (-math.inf, "-inf"), (math.inf, "inf"), (math.nan, "NaN"), (np.float64(-np.inf), "-inf"),
    (np.float32(np.nan), "NaN"), (torch.tensor(-math.inf), "-inf"), (torch.tensor([math.nan]), "NaN"),
    (torch.tensor([math.inf], requires_grad=True), "inf"),
], ids=repr)
def test_non_finite_numbers_are_refused_with_the_value_named(value, shown):
    with pytest.raises(InvalidReturn) as caught:
        as_float(value, "log_likelihood()")
    said = f"log_likelihood() returned {shown}; {FINITE}" + (UNDERFLOW if shown == "-inf" else "")
    assert str(caught.value) == said


@pytest.mark.slow
def test_a_non_finite_log_likelihood_is_a_failed_test_with_feedback(submission_from):
    submission = submission_from({"likelihood.py": FIXTURES / "returns" / "likelihood_nonfinite.py"})
    results, log = grade(submission, only=frozenset({"6d-0-basic", "6d-1-hidden"}))
    tests = {t.test_id or t.name: t for t in results.tests}
    assert set(tests) == {"6d-0-basic", "6d-1-hidden"}, "no autograder error, only the two graded tests"
    assert all(t.score == 0 and not t.passed for t in tests.values())
    assert f"log_likelihood() returned -inf; {FINITE}{UNDERFLOW}" in tests["6d-0-basic"].output
    assert "cannot be graded" in tests["6d-1-hidden"].output and "NaN" not in tests["6d-1-hidden"].output
    assert "log_likelihood() returned NaN" in "\n".join(log)  # the hidden test's detail is for staff only
