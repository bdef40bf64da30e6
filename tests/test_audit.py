"""The ``audit`` command: the corpus graded under seeds, error rates per test, a verdict per entry."""
from __future__ import annotations

import json
import shutil

import pytest

from autograder.staff.audit import audit_seeds
from autograder.cli import main
from autograder.config import derive_seed, load_assignment
from autograder.staff.corpus import DEFAULT_MANIFEST

FIXTURES = DEFAULT_MANIFEST.parent


def test_seeds_start_with_the_assignment_s_own():
    assignment = load_assignment()
    seeds = audit_seeds(assignment, 3)
    assert seeds == [assignment.seed, derive_seed(assignment.seed, "audit", 1), derive_seed(assignment.seed, "audit", 2)]
    assert audit_seeds(assignment, 3) == seeds and len(set(seeds)) == 3


@pytest.mark.slow
def test_audit_of_two_classifier_entries(capsys, tmp_path):
    code = main(["audit", "--seeds", "1", "--entries", "^classifier_(ok_threshold_250|bad_inverted)$",
                 "--output", str(tmp_path / "audit.json")])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  6")}
    assert set(rows) == {"6e-0-basic", "6e-1-hidden"}          # only the tests that run classifier.py
    assert rows["6e-0-basic"] == ["6e-0-basic", "no", "0", "-", "0/1", "1/1"]
    assert rows["6e-1-hidden"] == ["6e-1-hidden", "no", "0", "-", "0/1", "1/1"]
    entries = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  classifier_")}
    assert entries == {"classifier_ok_threshold_250": ["correct", "classifier.py", "OK"],
                       "classifier_bad_inverted": ["wrong", "classifier.py", "OK", "lost:", "6e-0-basic", "6e-1-hidden"]}
    assert "CONTRADICTS" not in out
    assert "2 entries x 1 seed(s) = 2 grades; 2 agree with the manifest, 0 contradict it; false failures 0 of 2" in out
    assert err.count("agrees (") == 2 and "[  2/2]" in err           # progress on stderr, one line a grade
    report = json.loads((tmp_path / "audit.json").read_text())
    assert report["seeds"] == [load_assignment().seed]
    assert [t["id"] for t in report["tests"]] == ["6e-0-basic", "6e-1-hidden"]
    assert all(e["problems"] == [] for e in report["entries"])


def audit_inverted_classifier(capsys, tmp_path, claims: str) -> tuple[int, str, str]:
    """Audit a one-entry corpus: the inverted classifier, under the manifest ``claims`` (its entry's
    fields after name and file); the exit status and what the audit printed."""
    shutil.copyfile(FIXTURES / "classifier_bad_inverted.py", tmp_path / "classifier_bad_inverted.py")
    (tmp_path / "manifest.yml").write_text(
        "runs: {sample.py: [sample], likelihood.py: [likelihood, classifier], classifier.py: [classifier]}\n"
        "parts: [6c, 6d, 6e, 6f, 6h]\n"
        "entries:\n"
        f"  - {{name: classifier_bad_inverted, file: classifier.py, {claims}}}\n")
    code = main(["audit", "--corpus", str(tmp_path / "manifest.yml")])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_an_entry_that_contradicts_its_manifest_fails_the_audit(capsys, tmp_path):
    code, out, err = audit_inverted_classifier(
        capsys, tmp_path, "correct: true, breaks: [], description: 'claimed correct, but the comparison is inverted'")
    assert code == 1, out + err
    assert "classifier_bad_inverted" in out and "CONTRADICTS THE MANIFEST" in out
    assert "false failure: a correct implementation lost points on 6e-0-basic" in out
    assert "FALSE FAILURES" in out and "1 contradict it" in out


def test_a_missing_corpus_is_refused_with_the_fix(capsys, tmp_path):
    assert main(["audit", "--corpus", str(tmp_path / "nowhere.yml")]) == 2
    err = capsys.readouterr().err
    assert f"no mutation corpus at {tmp_path / 'nowhere.yml'}" in err and "--corpus" in err


@pytest.mark.parametrize("argv, words", [
    (["--entries", "no_such_entry"], "matches no entry"),
    (["--entries", "("], "is not a regular expression"),
    (["--seeds", "0"], "--seeds 0: give at least 1"),
])
def test_bad_arguments_are_refused_before_grading(capsys, argv, words):
    assert main(["audit", *argv]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.slow
def test_an_entry_whose_feedback_does_not_name_its_mistake_fails_the_audit(capsys, tmp_path):
    code, out, err = audit_inverted_classifier(
        capsys, tmp_path, "correct: false, breaks: [6e], description: 'inverted comparison', "
                          "diagnosis: 'classifier:all-random'")
    assert code == 1, out + err
    assert "no failed public test shows diagnosis 'classifier:all-random'" in out
    assert "6e-0-basic [classifier:inverted]" in out
