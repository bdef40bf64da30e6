"""The mutation corpus through the real harness: correct variants get full marks, every mistake is caught
and named: a wrong entry's failed public test (hidden, for a mistake no public test reaches) shows the
diagnosis key and the feedback its manifest entry gives.

Each entry of ``tests/fixtures/corpus/manifest.yml`` (read by ``autograder.staff.corpus``) becomes a submission (its fixture plus the
reference's other two files) graded in-process by ``autograder.runner.grade``, restricted to the
graded tests that run the replaced file.  The harness's disk cache of reference answers serves them, so the
reference solution's answers are computed once per request.
"""
from __future__ import annotations

import ast
import json

import pytest

from autograder.config import load_assignment
from autograder.context import ReferenceCache
from autograder.paths import REFERENCE_CACHE_DIR
from autograder.q6.diagnoses import is_known
from autograder.staff.corpus import expectation_problems, load_corpus
from autograder.runner import grade

pytestmark = pytest.mark.slow

ASSIGNMENT = load_assignment()
CORPUS = load_corpus()
ENTRIES = CORPUS.entries
PUBLIC = frozenset(t.id for t in ASSIGNMENT.tests if t.public)
# Grader seeds: None is the assignment's own.  One seed already takes about 20 minutes of CPU
# (a sample.py entry costs 25-65 s to grade, a likelihood.py entry ~10 s, a classifier.py entry
# ~4 s), so a second seed, e.g. derive_seed(ASSIGNMENT.seed, "corpus"), is left out.  For a quick
# look, select entries by name: -k "classifier_ or likelihood_"; `python -m autograder audit --seeds N`
# grades the corpus under several seeds and reports per-test error rates.
SEEDS = (None,)
# The default test run grades this slice of the corpus (a few minutes); the whole corpus is
# selected with -m corpus (about 20 CPU minutes for one seed).
SMOKE = {"sample_ok_gumbel_rand", "sample_bad_greedy", "likelihood_ok_cross_entropy", "likelihood_bad_mean",
         "classifier_bad_inverted"}


@pytest.fixture(scope="module")
def reference_cache() -> ReferenceCache:
    return ReferenceCache(REFERENCE_CACHE_DIR)  # setup.sh's warm-up grade filled it for the config's seed


def test_corpus_is_complete():
    correct = [e for e in ENTRIES if e.correct]
    wrong = [e for e in ENTRIES if not e.correct]
    assert len(correct) >= 14 and len(wrong) >= 24, (len(correct), len(wrong))
    assert {p for e in wrong for p in e.breaks} == set(CORPUS.parts), "every part needs a mistake that breaks it"
    assert {e.file for e in correct} == {e.file for e in wrong} == {"sample.py", "likelihood.py", "classifier.py"}
    for entry in ENTRIES:
        source = entry.fixture.read_text()
        assert source != (CORPUS.reference / entry.file).read_text(), f"{entry.name} is the reference file verbatim"
        doc = ast.get_docstring(ast.parse(source)) or ""
        assert doc.startswith(f"Mutation corpus, {entry.file}, {'CORRECT' if entry.correct else 'WRONG'}:"), \
            f"{entry.name}: the docstring must say what the fixture is, got {doc[:80]!r}"
        if not entry.correct:
            assert entry.diagnosis is None or is_known(entry.diagnosis), \
                f"{entry.name}: diagnosis {entry.diagnosis!r} is not a key of autograder/q6/diagnoses.py"
            shown = [t for t in CORPUS.graded_tests_for(entry, ASSIGNMENT) if (t in PUBLIC) == (entry.shown_in == "public")]
            assert shown, f"{entry.name}: shown_in {entry.shown_in} but no such test runs {entry.file}"
        for part in entry.breaks + entry.may_break:
            assert any(test_id.startswith(part) for test_id in CORPUS.graded_tests_for(entry, ASSIGNMENT)), \
                f"{entry.name} breaks {part}, but no test of {part} runs {entry.file}"


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: "config-seed" if s is None else f"seed-{s}")
@pytest.mark.parametrize("entry", [pytest.param(e, id=e.name, marks=() if e.name in SMOKE else pytest.mark.corpus)
                                   for e in ENTRIES])
def test_corpus_entry(entry, seed, reference_cache, tmp_path):
    ran = CORPUS.graded_tests_for(entry, ASSIGNMENT)
    submission = CORPUS.build_submission(entry, tmp_path / "submission")
    results, _ = grade(submission, seed=seed, only=ran, reference_cache=reference_cache)
    problems = expectation_problems(entry, results, ran, public=PUBLIC)
    assert not problems, (f"{entry.label}, grader seed {ASSIGNMENT.seed if seed is None else seed}:\n  "
                          + "\n  ".join(problems))


@pytest.mark.parametrize("name", ["sample_ok_gumbel_rand", "sample_bad_temperature_multiplied"])
def test_same_submission_and_seed_give_byte_identical_results(name, reference_cache, tmp_path):
    """Statistical tests included: a second grade reproduces every score and every word of feedback."""
    entry = next(e for e in ENTRIES if e.name == name)
    submission = CORPUS.build_submission(entry, tmp_path / "submission")
    runs = [grade(submission, only={"6c-1-basic", "6f-1-basic"}, reference_cache=reference_cache)[0] for _ in range(2)]
    first, again = (json.dumps([(t.name, t.score, t.passed, t.output) for t in r.tests]) for r in runs)
    assert first == again
    failed = [t.name for t in runs[0].tests if not t.passed]
    assert bool(failed) == name.startswith("sample_bad"), failed  # the wrong one fails a test, the right one none
