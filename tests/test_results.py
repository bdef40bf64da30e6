"""The results object and its serializer to Gradescope's results.json."""
from __future__ import annotations

import json

import pytest

from autograder.results import GradingResults, TestResult
from conftest import strict_json


def test_totals_and_extra_credit():
    r = GradingResults(tests=[
        TestResult("6c-0-basic: a", points=1, score=1, passed=True),
        TestResult("6d-0-basic: b", points=2, score=0),
        TestResult("6h-0-basic: c", points=2, score=2, passed=True, extra_credit=True),
    ])
    assert (r.score, r.max_score, r.extra_credit_available) == (3, 3, 2)
    out = strict_json(r.dumps())
    assert [t["max_score"] for t in out["tests"]] == [1.0, 2.0, 0.0]
    assert out["tests"][2]["score"] == 2.0 and out["score"] == 3


def test_a_score_is_never_more_than_the_test_is_worth_nor_nan():
    assert TestResult("x", points=1, score=5).score == 1
    assert TestResult("x", points=1, score=float("nan")).score == 0
    assert TestResult("x", points=1, score=-3).score == 0


def test_write_is_atomic_and_strict(tmp_path):
    path = tmp_path / "out" / "results.json"
    GradingResults(tests=[TestResult("t", points=1, output="x" * 100_000)]).write(path)
    data = strict_json(path.read_text())
    assert len(data["tests"][0]["output"]) < 20_000
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]
    assert isinstance(data["execution_time"], float)


def test_autograder_failure_gives_nothing_and_hides_the_traceback():
    r = GradingResults.autograder_failure("KeyError: x", "Traceback ...secret path...")
    out = json.loads(r.dumps())
    assert out["score"] == 0
    visible = [t for t in out["tests"] if t["visibility"] != "hidden"]
    assert visible and all("secret" not in t["output"] for t in visible)
    assert any("secret" in t["output"] for t in out["tests"] if t["visibility"] == "hidden")


def test_a_tests_id_and_harness_fault_survive_results_json():
    graded = TestResult(name="6d-0-basic: a title", points=2.0, score=2.0, passed=True,
                        extra_data={"test_id": "6d-0-basic"}, test_id="6d-0-basic")
    faulty = GradingResults.autograder_failure("it broke", "traceback", tests=[graded])
    data = json.loads(faulty.dumps())
    assert "harness_fault" not in data["tests"][0]["extra_data"]       # a graded test's file is as before
    read = [TestResult.from_gradescope(t) for t in data["tests"]]
    assert [(t.test_id, t.harness_fault) for t in read] == [("6d-0-basic", False), (None, True), (None, True)]
    assert [t.name for t in faulty.harness_faults] == ["autograder error", "autograder error (staff detail)"]


def test_a_tests_diagnosis_and_markdown_output_survive_results_json():
    diagnosed = TestResult(name="6d-0-basic: a title", points=2.0, output="**wrong** | a | b |", test_id="6d-0-basic",
                           extra_data={"test_id": "6d-0-basic"}, diagnosis="likelihood:mean", output_format="md")
    plain = TestResult(name="6c-0-basic: a title", points=1.0, score=1.0, passed=True)
    data = strict_json(GradingResults(tests=[diagnosed, plain]).dumps())
    assert data["tests"][0]["output_format"] == "md" and data["tests"][0]["extra_data"]["diagnosis"] == "likelihood:mean"
    assert "output_format" not in data["tests"][1] and "extra_data" not in data["tests"][1]   # text is Gradescope's default
    read = [TestResult.from_gradescope(t) for t in data["tests"]]
    assert [(t.diagnosis, t.output_format) for t in read] == [("likelihood:mean", "md"), (None, "text")]
    assert read[0].extra_data == {"test_id": "6d-0-basic"}


def test_an_unknown_output_format_is_refused():
    with pytest.raises(ValueError, match="output_format 'html' is not one of"):
        TestResult(name="t", points=1.0, output_format="html")
