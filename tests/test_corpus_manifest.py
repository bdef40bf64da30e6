"""The corpus manifest's feedback fields: what a wrong entry's failed test must show, checked as read."""
from __future__ import annotations

import shutil

import pytest

from autograder.errors import ConfigError
from autograder.results import GradingResults, TestResult
from autograder.staff.corpus import feedback_problems, load_corpus, visible_text
from conftest import FIXTURES

HEAD = ("runs: {sample.py: [sample], likelihood.py: [likelihood, classifier], classifier.py: [classifier]}\n"
        "parts: [6c, 6d, 6e, 6f, 6h]\nentries:\n")
WRONG = "  - {name: classifier_bad_inverted, file: classifier.py, correct: false, breaks: [6e], description: 'inverted'"


def manifest(tmp_path, entry: str):
    shutil.copyfile(FIXTURES / "corpus" / "classifier_bad_inverted.py", tmp_path / "classifier_bad_inverted.py")
    (tmp_path / "manifest.yml").write_text(HEAD + entry + "}\n")
    return tmp_path / "manifest.yml"


@pytest.mark.parametrize("fields, words", [
    ("", "names neither the `diagnosis` key nor the `feedback` substring"),
    (", diagnosis: 'Inverted Labels'", "should be a key like 'likelihood:mean-not-sum'"),
    (", feedback: ''", "feedback = '' should be a non-empty string"),
    (", diagnosis: classifier:inverted, shown_in: staff", "shown_in = 'staff' should be one of ['public', 'hidden']"),
    (", diagnosis: classifier:inverted, diagnoses: x", "unknown keys ['diagnoses']"),
])
def test_a_wrong_entry_must_name_what_its_feedback_shows(tmp_path, fields, words):
    with pytest.raises(ConfigError, match="classifier_bad_inverted") as caught:
        load_corpus(manifest(tmp_path, WRONG + fields))
    assert words in str(caught.value)


def test_a_correct_entry_has_no_feedback_to_show(tmp_path):
    entry = ("  - {name: classifier_bad_inverted, file: classifier.py, correct: true, breaks: [], description: 'x', "
             "feedback: 'inverted'")
    with pytest.raises(ConfigError, match="is correct: it has no feedback to show"):
        load_corpus(manifest(tmp_path, entry))


def result(test_id: str, passed: bool, diagnosis: str | None, output: str) -> TestResult:
    return TestResult(name=test_id, points=1.0, score=float(passed), passed=passed, output=output, test_id=test_id,
                      diagnosis=diagnosis, output_format="md" if "basic" in test_id else "text")


PUBLIC = frozenset({"6e-0-basic"})
RAN = frozenset({"6e-0-basic", "6e-1-hidden"})


@pytest.mark.parametrize("public, hidden, problem", [
    (result("6e-0-basic", False, "classifier:inverted", r"an inverted comparison, see \[6e\]"), None, None),
    (result("6e-0-basic", False, "classifier:all-random", "an inverted comparison"), None,
     "no failed public test shows diagnosis 'classifier:inverted'"),
    (result("6e-0-basic", True, None, ""), result("6e-1-hidden", False, "classifier:inverted", "inverted comparison"),
     "they show: nothing (none failed)"),
])
def test_the_failed_public_test_must_show_the_key_and_the_words(tmp_path, public, hidden, problem):
    entry = load_corpus(manifest(tmp_path, WRONG + ", diagnosis: classifier:inverted, feedback: 'comparison, see [6e]'")).entries[0]
    results = GradingResults(tests=[public] + ([hidden] if hidden else []))
    problems = feedback_problems(entry, results, RAN, PUBLIC)
    assert problems == [] if problem is None else problem in problems[0], problems


def test_an_entry_no_public_test_reaches_is_held_to_its_hidden_test(tmp_path):
    entry = load_corpus(manifest(tmp_path, WRONG + ", diagnosis: classifier:inverted, shown_in: hidden")).entries[0]
    hidden = result("6e-1-hidden", False, "classifier:inverted", "some snippets are misclassified")
    assert feedback_problems(entry, GradingResults(tests=[result("6e-0-basic", True, None, ""), hidden]), RAN, PUBLIC) == []
    assert feedback_problems(entry, GradingResults(tests=[result("6e-0-basic", False, "classifier:inverted", "x")]),
                             RAN, PUBLIC)


def test_feedback_is_matched_on_the_words_a_reader_sees():
    assert visible_text(r"log\_likelihood(): text\[:, 1:\] p(x ∣ y) &lt;|endoftext|&gt;") == \
        "log_likelihood(): text[:, 1:] p(x | y) <|endoftext|>"
