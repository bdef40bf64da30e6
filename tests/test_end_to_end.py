"""Whole submissions graded through ./run_autograder, as staff and students run it."""
from __future__ import annotations

import pytest

from autograder.config import load_assignment
from autograder.q6.course import is_public
from conftest import REFERENCE, ROOT, TEMPLATE, run_autograder, scores_by_part

pytestmark = pytest.mark.slow
ALL_PARTS = {"6c", "6d", "6e", "6f", "6h"}


@pytest.fixture(scope="module")
def reference_results(tmp_path_factory):
    return run_autograder(REFERENCE, tmp_path_factory.mktemp("ref") / "r.json")


def test_the_reference_is_graded_on_every_part(reference_results):
    assert {t["name"][:2] for t in reference_results["tests"]} >= ALL_PARTS


def test_grading_the_reference_meets_no_harness_fault(reference_results):
    tests = reference_results["tests"]
    assert [t["output"] for t in tests if (t.get("extra_data") or {}).get("harness_fault")] == []


@pytest.mark.parametrize("test_id", [t.id for t in load_assignment().tests])
def test_the_reference_passes_the_test(reference_results, test_id):
    got = next(t for t in reference_results["tests"] if (t.get("extra_data") or {}).get("test_id") == test_id)
    assert got["status"] == "passed", (got["name"], got["output"])


def test_the_reference_earns_every_point_of_the_config_extra_credit_included(reference_results):
    assert reference_results["score"] == sum(t.points for t in load_assignment().tests)


def test_the_results_name_public_and_hidden_tests_by_their_ids(reference_results):
    ids = [t["extra_data"]["test_id"] for t in reference_results["tests"]]
    assert sum(map(is_public, ids)) >= 5 and sum(not is_public(i) for i in ids) >= 5


def test_hidden_tests_are_not_visible_before_publication(reference_results):
    for t in reference_results["tests"]:
        want = "visible" if "-basic" in t["name"] else "after_published"
        assert t["visibility"] == want, t["name"]


def test_template_scores_zero(tmp_path):
    results = run_autograder(TEMPLATE, tmp_path / "r.json")
    assert results["score"] == 0
    assert all(t["status"] == "failed" for t in results["tests"])
    public = [t for t in results["tests"] if "-basic" in t["name"]]
    assert any("NotImplementedError" in t["output"] for t in public)


def test_missing_file_costs_only_its_parts(tmp_path, submission_from):
    from autograder.runner import grade

    one_per_part = frozenset({"6c-0-basic", "6d-0-basic", "6e-0-basic", "6e-1-hidden", "6f-0-basic", "6h-0-basic"})
    results, _ = grade(submission_from(omit=("classifier.py",)), only=one_per_part)
    parts = {t.test_id or t.name: t for t in results.tests}
    assert set(parts) == one_per_part
    for test_id, test in parts.items():
        assert (test.score == 0) == test_id.startswith("6e"), (test_id, test.output)
    assert "classifier.py was not uploaded" in parts["6e-0-basic"].output


def test_default_results_path_is_the_current_directory(tmp_path):
    import subprocess

    proc = subprocess.run([str(ROOT / "run_autograder"), "--submission", str(TEMPLATE)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "results.json").is_file()
    assert "Total: 0 / 18" in proc.stdout
