"""Run the graded tests of ``tests_hidden/`` with gradescope-utils and turn them into results.

gradescope-utils' ``JSONTestRunner`` runs the unittest suite; ``ClassifyingResult`` extends its
result class so that a student's mistake becomes a failed test with feedback, while a fault of
the harness becomes a visible "autograder error" with the traceback kept for staff.  The
run's assignment config is the one authority on every test: which tests run, their names,
points, visibility and extra credit here, their params and time limits inside the tests
(``autograder.testing``).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
import traceback
import unittest
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from gradescope_utils.autograder_utils.json_test_runner import JSONTestResult, JSONTestRunner

from autograder.budget import Budget
from autograder.config import DEFAULT_CONFIG, Assignment, TestSpec, load_assignment
from autograder.container import startup_lines
from autograder.context import GradingContext, ReferenceCache
from autograder.discovery import Discovery, discover
from autograder.errors import AutograderError, ContainerOutOfMemory, StudentError
from autograder.memory import memory_record, own_peak_kib, reset_own_peak
from autograder.paths import on_gradescope
from autograder.sandbox.forkserver import PreForked
from autograder.sandbox.handle import Limits
from autograder.sandbox.locking import prepare_gradescope
from autograder.sandbox.heap import map_large_blocks
from autograder.provenance import grader_info, rerun_command
from autograder.feedback import FORMATS, as_markdown
from autograder.results import GradingResults, TestResult
from autograder.testing import graded_id

TESTS_DIR = DEFAULT_CONFIG.parent  # tests_hidden/ for staff and Gradescope, tests_public/ in the student bundle
Progress = Callable[[GradingResults], None]  # takes the results to write should the run be stopped now


@dataclass
class Faults:
    """Harness faults met while running tests, keyed by test id."""

    by_test: dict[str, str] = field(default_factory=dict)
    feedback: dict[str, str] = field(default_factory=dict)   # what the student sees of a fault, when not the generic line
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)   # each test's monotonic start, end


class ClassifyingResult(JSONTestResult):
    faults: Faults
    ctx: GradingContext | None = None

    def on_test_end(self, raw: list[dict]) -> None:
        """Called after each test with the raw results so far."""

    def stopTest(self, test):
        super().stopTest(test)
        self.on_test_end(list(self.results))

    def startTest(self, test):
        self._started = time.monotonic()
        test_id = graded_id(test)
        spec = None if self.ctx is None else next((t for t in self.ctx.assignment.tests if t.id == test_id), None)
        if spec is not None:
            self.ctx.focus(spec.module)  # only its module keeps workers meanwhile
        super().startTest(test)

    def buildResult(self, test, err=None):
        result = super().buildResult(test, err)
        result["test_id"] = graded_id(test)
        outcome = getattr(test, "failed_outcome", None) if err is not None else None
        if outcome is not None:  # the failed check's structured content: its key, its Markdown rendering
            result["diagnosis"] = outcome.diagnosis
            result["markdown"] = as_markdown(outcome)
        self.faults.spans[str(result["test_id"])] = (self._started, time.monotonic())
        return result

    def addError(self, test, err):
        exc_type, exc, _ = err
        if isinstance(exc, (StudentError, AssertionError)):
            # A student's mistake: reported like a failed assertion, its message as feedback.
            return self.addFailure(test, (exc_type, exc, None))
        test_id = graded_id(test) or str(test)
        self.faults.by_test[test_id] = "".join(traceback.format_exception(*err))
        if isinstance(exc, ContainerOutOfMemory):
            self.faults.feedback[test_id] = exc.feedback
        return super().addError(test, (AutograderError, AutograderError("autograder error"), None))


def _iter_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _iter_tests(item)
        else:
            yield item


def load_suite(tests_dir: Path, assignment: Assignment, only: frozenset[str] | None = None) -> unittest.TestSuite:
    """The graded tests of ``tests_dir`` that ``assignment`` configures (only those in ``only``
    when given), its public tests first; a method of a test id the assignment lacks is left out."""
    loader = unittest.TestLoader()
    suite = loader.discover(str(tests_dir), pattern="test_*.py", top_level_dir=str(tests_dir))
    errors = list(getattr(loader, "errors", []))
    if errors:
        raise AutograderError("graded tests failed to load:\n" + "\n".join(errors))
    specs = {t.id: t for t in assignment.tests if only is None or t.id in only}
    chosen, methods = [], {}
    for test in _iter_tests(suite):
        test_id = graded_id(test)
        if test_id in specs:
            if test_id in methods:
                raise AutograderError(f"graded test {test_id} is the method of both {methods[test_id]} and {test.id()} "
                                      f"in {tests_dir}; decorate one method with @graded({test_id!r})")
            methods[test_id] = test.id()
            chosen.append((not specs[test_id].public, test))
    # Public tests first: nothing the submission sees in a hidden test exists yet when the
    # feedback of a public one (its output included) is written.
    chosen.sort(key=lambda pair: pair[0])
    return unittest.TestSuite(test for _, test in chosen)


def run_suite(ctx: GradingContext, tests_dir: Path = TESTS_DIR, only: frozenset[str] | None = None,
              upload: Path | None = None, progress: Progress | None = None, feedback_format: str = "md") -> GradingResults:
    """Run the graded tests the config names (or only those in ``only``); ``upload`` names the
    graded folder in each test's reproduce command; ``progress`` gets, after each test, the
    results to write should the run be stopped there; ``feedback_format`` is how a public test's
    failed check is written: "md" (Gradescope's Markdown) or "text" (a terminal)."""
    assignment = ctx.assignment
    suite = load_suite(tests_dir, assignment, only)
    chosen = list(_iter_tests(suite))
    for test in chosen:
        test.ctx = ctx
    ran = {graded_id(test) for test in chosen}
    ctx.prestart(ran)
    faults = Faults()
    for spec in assignment.tests:
        if (only is None or spec.id in only) and spec.id not in ran:
            faults.by_test[spec.id] = (f"{assignment.source} configures test {spec.id}, but no test method in "
                                       f"{tests_dir} is decorated with @graded({spec.id!r}): add one, or remove "
                                       "the test from the config")

    class Result(ClassifyingResult):
        def on_test_end(self, raw: list[dict]) -> None:
            if progress is not None:
                progress(provisional(assignment, only, raw, faults, upload, ctx.budget, feedback_format))

    Result.faults = faults
    Result.ctx = ctx
    stream = io.StringIO()
    runner = JSONTestRunner(stream=stream, failure_prefix="")
    runner.resultclass = Result
    runner.run(suite)
    results = _assemble(assignment, only, json.loads(stream.getvalue())["tests"], faults, upload,
                        feedback_format=feedback_format)
    ctx.log("test times: " + ", ".join(f"{k} {v:.1f}s" for k, v in results.seconds.items()))
    if faults.by_test:
        ctx.log(results.tests[-1].output)
    return results


def _assemble(assignment: Assignment, only: frozenset[str] | None, raw: list[dict], faults: Faults,
              upload: Path | None, unfinished: str | None = None, feedback_format: str = "md") -> GradingResults:
    """The results of the configured tests from the runner's raw ones; a test without one is an
    autograder error, or, given ``unfinished``, a test that has not run yet, with that reason.
    A public test failed by a check is written in Markdown when ``feedback_format`` is "md"; every
    failed check gives its diagnosis key, public or hidden."""
    by_id = {r.get("test_id"): r for r in raw}
    results = GradingResults(extra_data=grader_info(assignment.seed, assignment.digest))
    for spec in assignment.tests:
        if only is not None and spec.id not in only:
            continue
        r = by_id.get(spec.id)
        passed = r is not None and r.get("status") == "passed"
        output = (r or {}).get("output", "")
        fault = spec.id in faults.by_test or r is None and unfinished is None
        if fault:
            output = faults.feedback.get(spec.id, "autograder error: this test could not be graded; course staff "
                                                  "have the details.")
        elif r is None:
            output = unfinished
        result = _test_result(spec, assignment, upload, passed, output, fault)
        if r is not None and not fault and "markdown" in r:
            result.diagnosis = r.get("diagnosis")
            if spec.public and feedback_format == "md":
                result.output, result.output_format = r["markdown"].strip(), "md"
        results.tests.append(result)
    results.spans = dict(faults.spans)
    if faults.by_test:
        detail = "\n\n".join(f"[{k}]\n{v}" for k, v in faults.by_test.items())
        results.tests.append(TestResult(name="autograder error (staff detail)", points=0.0,
                                        visibility="hidden", output=detail, harness_fault=True))
    return results


def _test_result(spec: TestSpec, assignment: Assignment, upload: Path | None, passed: bool, output: str,
                 fault: bool) -> TestResult:
    return TestResult(
        name=spec.name, points=spec.points, score=spec.points if passed else 0.0, passed=passed,
        output=output.strip(), visibility=spec.visibility, number=spec.number,
        extra_credit=spec.extra_credit, tags=[spec.module + ".py"] + (["extra credit"] if spec.extra_credit else []),
        extra_data={**grader_info(assignment.seed, assignment.digest), "test_id": spec.id,
                    "rerun": rerun_command(upload or "DIR", spec.id, assignment.seed, assignment.source)},
        test_id=spec.id, harness_fault=fault,
    )


def provisional(assignment: Assignment, only: frozenset[str] | None, raw: list[dict], faults: Faults,
                upload: Path | None, budget: Budget, feedback_format: str = "md") -> GradingResults:
    """The results to write if the run is stopped now, at the end of its time budget: the tests
    finished so far keep their scores, the rest are marked not run, and a visible autograder error
    says that grading itself overran (every student call is planned to end well before)."""
    done = _assemble(assignment, only, raw, faults, upload, feedback_format=feedback_format,
                     unfinished=f"not run: grading was stopped at the end of its time budget ({budget.total:g} s) "
                                "before this test finished")
    stopped = GradingResults.autograder_failure(
        f"it did not finish within its time budget of {budget.total:g} s, so the tests it had not finished are "
        "marked not run; the others keep their scores", "stopped at the end of the time budget\n" + budget.staff_line(),
        tests=done.tests)
    stopped.extra_data = {**done.extra_data, "time_budget": {**budget.summary(done.seconds), "stopped": True}}
    return stopped


def grade(submission_dir: Path, assignment: Assignment | Path | None = None, seed: int | None = None,
          only: frozenset[str] | None = None, reference_cache: ReferenceCache | None = None,
          lock_gradescope: bool = True, started: float | None = None, progress: Progress | None = None,
          time_budget: float | None = None, prefork: PreForked | None = None,
          unsafe: bool = False, limits: Limits | None = None,
          feedback_format: str = "md") -> tuple[GradingResults, list[str]]:
    """Grade one submission folder; never raises for anything the submission does.

    ``assignment`` is the config or its path (default: the harness's own); ``only`` restricts
    grading to those test ids; ``reference_cache`` lets several grades in
    one process share the reference solution's answers, which depend only on the request;
    ``lock_gradescope`` False skips locking Gradescope's folders (setup.sh's warm-up grade);
    ``prefork`` is a fork server forked before the harness (``autograder.sandbox.prefork``) for this run.
    The run's time budget, ``time_budget`` seconds (default: the assignment's; ``math.inf`` for
    none), counts from ``started`` (``time.monotonic()``; default: now); ``progress`` gets the
    results to write should the run be stopped, once the config is read and after every test.
    ``unsafe`` grades even where student code could read the harness's files (the student's own
    check, the reference), which is otherwise an autograder error (``autograder.sandbox.view``).
    ``limits`` are the workers' limits (default: ``Limits()``, ``autograder.sandbox.handle``).
    ``feedback_format`` is how public tests' feedback is written: "md" (Gradescope renders it) or
    "text" (the plain-text rendering of the same content, for a terminal).

    Returns the results and the staff log.  A harness fault still returns results: a visible
    autograder-error test worth nothing and the traceback for staff only.
    """
    if feedback_format not in FORMATS:
        raise ValueError(f"feedback_format {feedback_format!r} is not one of {FORMATS}")
    started = time.monotonic() if started is None else started
    peak_from_start = reset_own_peak()
    log: list[str] = []
    budget = None
    ctx = None
    torch.set_num_threads(1)  # the same arithmetic on every machine, and no thread-pool contention
    map_large_blocks()  # a 1024-token exact check frees 26 MB chunks: they must not pin the heap
    try:
        if lock_gradescope and os.geteuid() == 0 and on_gradescope():
            log += prepare_gradescope()  # lock the tree and results folder before any student code
        if not isinstance(assignment, Assignment):
            assignment = load_assignment(assignment, seed=seed)
        budget = Budget(assignment.time_budget if time_budget is None else time_budget, started=started)
        upload = Path(submission_dir).resolve()
        if progress is not None:
            progress(provisional(assignment, only, [], Faults(), upload, budget, feedback_format))
        log.extend(startup_lines(assignment))
        with discover(Path(submission_dir), assignment.student_files) as found:
            log.extend(_upload_log(found))
            with GradingContext(assignment, found.files, reference_cache=reference_cache,
                                file_problems=found.problems, budget=budget, prefork=prefork, unsafe=unsafe,
                                limits=limits) as ctx:
                try:
                    results = run_suite(ctx, only=only, upload=upload, progress=progress,
                                        feedback_format=feedback_format)
                finally:
                    log.extend(ctx.staff_log)
                    log.extend(_printed(ctx))
                    ctx.staff_log = log  # the context's closing report (leftover processes) lands here too
            results.extra_data["files"] = {name: {"found_as": found.origins[name],
                                                  "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
                                           for name, path in found.files.items()}
            results.output = _summary_text(results, found, budget)
    except Exception as exc:  # noqa: BLE001 - the one place a harness fault becomes results
        detail = traceback.format_exc()
        log.append(detail)
        results = GradingResults.autograder_failure(f"{type(exc).__name__}: {exc}", detail)
    if budget is not None:
        results.extra_data["time_budget"] = budget.summary(results.seconds)
        log.append(budget.staff_line())
    results.extra_data["memory"] = memory_record(own_peak_kib(), peak_from_start,
                                                 ctx.worker_peaks_kib if ctx is not None else {})
    results.execution_time = time.monotonic() - started
    return results, log


def _printed(ctx: GradingContext) -> list[str]:
    """What the student's code printed, module by module, for the staff log.

    Each line is shown as a JSON string literal, so nothing the student prints can pass for the
    grader's own output (a forged results document, say) in the log.
    """
    out = []
    for name in sorted(ctx.submission):
        text = ctx.student_output(name.removesuffix(".py"))
        if text.strip():
            out.append(f"--- {name} printed (escaped) ---\n" + "\n".join(json.dumps(line) for line in text.rstrip().splitlines()))
    return out


def _upload_log(found: Discovery) -> list[str]:
    lines = [f"found {name} as {where}" for name, where in found.origins.items()]
    return lines + [f"{name}: {why}" for name, why in found.problems.items()] + found.notes


def _summary_text(results: GradingResults, found: Discovery, budget: Budget) -> str:
    """What students see at the top: public tests only, so hidden scores stay unpublished."""
    public = [t for t in results.tests if t.visibility == "visible" and t.points > 0]
    base = [t for t in public if not t.extra_credit]
    lines = [f"Public tests: {sum(t.score for t in base):g} / {sum(t.points for t in base):g} points"
             + (" (hidden tests are graded too and shown when grades are published)"
                if any(t.visibility != "visible" for t in results.tests) else "")]
    if found.absent:
        lines.append("Not uploaded: " + ", ".join(found.absent) + " (the tests of their functions fail).")
    lines += [why for name, why in found.problems.items() if name not in found.absent]
    stopped = [t for t, usage in budget.by_test.items() if usage.not_run or usage.cut_short]
    if stopped:
        lines.append(f"Your code used up the grading time budget ({budget.total:g} s): {len(stopped)} test(s) did not "
                     "run or were cut short; each says which files used the time.")
    return "\n".join(lines)
