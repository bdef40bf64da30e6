"""Whole submissions graded through ./run_autograder, as staff and students run it."""
from __future__ import annotations

import pytest

from autograder.q6.course import is_public
from conftest import REFERENCE, ROOT, TEMPLATE, run_autograder, scores_by_part

pytestmark = pytest.mark.slow
ALL_PARTS = {"6c", "6d", "6e", "6f", "6h"}


@pytest.fixture(scope="module")
def reference_results(tmp_path_factory):
    return run_autograder(REFERENCE, tmp_path_factory.mktemp("ref") / "r.json")


def test_reference_gets_full_marks_on_every_part(reference_results):
    tests = reference_results["tests"]
    assert {t["name"][:2] for t in tests} >= ALL_PARTS
    graded = [t for t in tests if not (t.get("extra_data") or {}).get("harness_fault")]
    assert len(graded) == len(tests), [t["output"] for t in tests if t not in graded]
    for t in graded:
        assert t["status"] == "passed", (t["name"], t["output"])
    assert reference_results["score"] == 22.0  # 18 points plus 4 of extra credit
    ids = [t["extra_data"]["test_id"] for t in graded]
    assert all(i.endswith(("-basic", "-hidden")) for i in ids)
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
