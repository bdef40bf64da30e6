"""Run the graded tests of ``tests_hidden/`` with gradescope-utils and turn them into results.

gradescope-utils' ``JSONTestRunner`` runs the unittest suite; ``ClassifyingResult`` extends its
result class so that a student's mistake becomes a failed test with feedback, while a fault of
the harness becomes a visible "autograder error" with the traceback kept for staff.  The
assignment config, not the decorators, is the authority on points and visibility.
"""
from __future__ import annotations

import io
import json
import os
import time
import traceback
import unittest
from dataclasses import dataclass, field
from pathlib import Path

from gradescope_utils.autograder_utils.json_test_runner import JSONTestResult, JSONTestRunner

from autograder import __version__, isolation
from autograder.config import HARNESS_ROOT, Assignment, load_assignment
from autograder.context import GradingContext, ReferenceCache, present_files
from autograder.errors import AutograderError, StudentError
from autograder.results import GradingResults, TestResult

TESTS_DIR = HARNESS_ROOT / "tests_hidden"


@dataclass
class Faults:
    """Harness faults met while running tests, keyed by test id."""

    by_test: dict[str, str] = field(default_factory=dict)


class ClassifyingResult(JSONTestResult):
    faults: Faults

    def buildResult(self, test, err=None):
        result = super().buildResult(test, err)
        result["test_id"] = getattr(getattr(test, "spec", None), "id", None)
        return result

    def addError(self, test, err):
        exc_type, exc, _ = err
        if isinstance(exc, (StudentError, AssertionError)):
            # A student's mistake: reported like a failed assertion, its message as feedback.
            return self.addFailure(test, (exc_type, exc, None))
        test_id = getattr(getattr(test, "spec", None), "id", str(test))
        self.faults.by_test[test_id] = "".join(traceback.format_exception(*err))
        return super().addError(test, (AutograderError, AutograderError("autograder error"), None))


def _iter_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _iter_tests(item)
        else:
            yield item


def load_suite(tests_dir: Path, only: frozenset[str] | None = None) -> unittest.TestSuite:
    """The graded tests, optionally only those whose ids are in ``only``."""
    loader = unittest.TestLoader()
    suite = loader.discover(str(tests_dir), pattern="test_*.py", top_level_dir=str(tests_dir))
    errors = list(getattr(loader, "errors", []))
    if errors:
        raise AutograderError("graded tests failed to load:\n" + "\n".join(errors))
    chosen = []
    for test in _iter_tests(suite):
        method = getattr(test, test._testMethodName)
        test_id = (method.__doc__ or "").split(":", 1)[0]
        if only is None or test_id in only:
            chosen.append((not test_id.endswith("-basic"), test))
    # Public tests first: nothing the submission sees in a hidden test exists yet when the
    # feedback of a public one (its output included) is written.
    chosen.sort(key=lambda pair: pair[0])
    return unittest.TestSuite(test for _, test in chosen)


def run_suite(ctx: GradingContext, tests_dir: Path = TESTS_DIR, only: frozenset[str] | None = None) -> GradingResults:
    assignment = ctx.assignment
    suite = load_suite(tests_dir, only)
    for test in _iter_tests(suite):
        test.ctx = ctx
    faults = Faults()

    class Result(ClassifyingResult):
        pass

    Result.faults = faults
    stream = io.StringIO()
    runner = JSONTestRunner(stream=stream, failure_prefix="")
    runner.resultclass = Result
    runner.run(suite)
    raw = json.loads(stream.getvalue())
    by_id = {r.get("test_id"): r for r in raw["tests"]}
    results = GradingResults(extra_data={"grader_version": __version__, "seed": assignment.seed})
    for spec in assignment.tests:
        if only is not None and spec.id not in only:
            continue
        r = by_id.get(spec.id)
        passed = r is not None and r.get("status") == "passed"
        output = (r or {}).get("output", "") if r else "autograder error: this test did not run"
        if spec.id in faults.by_test or r is None:
            output = "autograder error: this test could not be graded; course staff have the details."
        results.tests.append(TestResult(
            name=spec.name, points=spec.points, score=spec.points if passed else 0.0, passed=passed,
            output=output.strip(), visibility=spec.visibility, number=spec.number,
            extra_credit=spec.extra_credit, tags=[spec.module + ".py"] + (["extra credit"] if spec.extra_credit else []),
            extra_data={"grader_version": __version__, "seed": assignment.seed,
                        "rerun": f"./run_autograder --submission DIR --seed {assignment.seed}"},
        ))
    if faults.by_test:
        detail = "\n\n".join(f"[{k}]\n{v}" for k, v in faults.by_test.items())
        results.tests.append(TestResult(name="autograder error (staff detail)", points=0.0,
                                        visibility="hidden", output=detail))
        ctx.log(detail)
    return results


def grade(submission_dir: Path, assignment: Assignment | None = None, seed: int | None = None,
          only: frozenset[str] | None = None, reference_cache: ReferenceCache | None = None,
          ) -> tuple[GradingResults, list[str]]:
    """Grade one submission folder; never raises for anything the submission does.

    ``only`` restricts grading to those test ids; ``reference_cache`` lets several grades in
    one process share the reference solution's answers, which depend only on the request.

    Returns the results and the staff log.  A harness fault still returns results: a visible
    autograder-error test worth nothing and the traceback for staff only.
    """
    started = time.monotonic()
    log: list[str] = []
    try:
        if os.geteuid() == 0 and isolation.on_gradescope():
            log += isolation.prepare_gradescope()  # lock the tree and results folder before any student code
        assignment = assignment or load_assignment(seed=seed)
        files = present_files(Path(submission_dir))
        with GradingContext(assignment, files, reference_cache=reference_cache) as ctx:
            try:
                results = run_suite(ctx, only=only)
            finally:
                log += ctx.staff_log  # the context's closing report is appended to the same list
                ctx.staff_log = log
        missing = [name for name in ("sample.py", "likelihood.py", "classifier.py") if name not in files]
        results.output = _summary_text(results, missing)
    except Exception as exc:  # noqa: BLE001 - the one place a harness fault becomes results
        detail = traceback.format_exc()
        log.append(detail)
        results = GradingResults.autograder_failure(f"{type(exc).__name__}: {exc}", detail)
    results.execution_time = time.monotonic() - started
    return results, log


def _summary_text(results: GradingResults, missing: list[str]) -> str:
    """What students see at the top: public tests only, so hidden scores stay unpublished."""
    public = [t for t in results.tests if t.visibility == "visible" and t.points > 0]
    base = [t for t in public if not t.extra_credit]
    lines = [f"Public tests: {sum(t.score for t in base):g} / {sum(t.points for t in base):g} points"
             + (" (hidden tests are graded too and shown when grades are published)"
                if any(t.visibility != "visible" for t in results.tests) else "")]
    if missing:
        lines.append("Not uploaded: " + ", ".join(missing) + " (the tests of their functions fail).")
    return "\n".join(lines)
