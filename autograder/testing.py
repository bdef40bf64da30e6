"""What graded tests are written with: a decorator naming the test and a base class running it.

A graded test is a ``GradedTestCase`` method decorated with ``@graded(TEST_ID)``.  The
decorator carries the id alone: when the test runs, its spec (params, timeout, points, title,
visibility) is the one the running context's assignment gives that id, so a grade under
``--assignment other.yml`` uses that file's values throughout, never those of the config the
test modules were first imported with.  Points, visibility and names of the results come from
the same spec (``autograder.runner``), which is why gradescope-utils' ``@weight``,
``@number`` and ``@visibility``, fixed when a module is imported, are not used.

A test runs only if the run's time budget has a call left for it, and under a guard: the
harness's own work may take ``GUARD_MARGIN`` seconds plus the time limit of every call the test
makes, and never runs past the budget's end for the harness (``autograder.budget``).  Every call
has a deadline of its own, shorter than the guard's, so a guard that fires is a harness fault.
"""
from __future__ import annotations

import functools
import signal
import threading
import unittest

from autograder.budget import Budget
from autograder.config import TestSpec
from autograder.context import GradingContext
from autograder.errors import AutograderError, BudgetSpent, BudgetTimeout, StudentError
from autograder.feedback import Outcome, as_text

# Seconds of the harness's own work a test may take besides the time limits of its calls.
GUARD_MARGIN = 30.0
_GRADED_ID = "__graded_id__"


class TestGuardTimeout(AutograderError):
    """A test ran past its guard: the harness's own work took too long."""


class _Guard:
    """SIGALRM once the test has used ``margin`` seconds plus the limits of its calls so far, or at
    the budget's end for the harness, whichever comes first (main thread only, as signals)."""

    def __init__(self, test_id: str, budget: Budget, margin: float):
        self.test_id, self.budget, self.margin = test_id, budget, margin
        self.began, self.allowed, self.calls = budget.clock(), margin, 0
        self.active = threading.current_thread() is threading.main_thread()
        self._previous = None

    def __enter__(self) -> "_Guard":
        if self.active:
            self._previous = signal.signal(signal.SIGALRM, self._fire)
            self._arm()
        return self

    def __exit__(self, *exc) -> None:
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)

    def extend(self, seconds: float) -> None:
        """A call of at most ``seconds`` begins: the test may take that much longer."""
        self.allowed += seconds
        self.calls += 1
        if self.active:
            self._arm()

    def _arm(self) -> None:
        until = min(self.began + self.allowed, self.budget.harness_end)
        signal.setitimer(signal.ITIMER_REAL, max(until - self.budget.clock(), 1e-3))

    def _fire(self, signum, frame) -> None:
        if self.began + self.allowed > self.budget.harness_end:
            raise TestGuardTimeout(f"{self.test_id} was still running at the end of the time budget "
                                   f"({self.budget.total:g} s) for the grader's own work")
        raise TestGuardTimeout(f"{self.test_id} ran past its time limit of {self.allowed:g} s ({self.margin:g} s "
                               f"for the grader's own work plus the time limits of {self.calls} "
                               f"call{'' if self.calls == 1 else 's'})")


def graded(test_id: str):
    """Make a ``GradedTestCase`` method the graded test ``test_id`` of whatever assignment runs it."""
    if not isinstance(test_id, str) or not test_id:
        raise TypeError(f"@graded({test_id!r}): give the test's id as the assignment config spells it, "
                        "the `id` of one of its `tests`")

    def decorate(func):
        @functools.wraps(func)
        def run(self, *args, **kwargs):
            self.spec = self.ctx.assignment.test(test_id)
            self.ctx.budget.start_test(test_id)
            with _Guard(test_id, self.ctx.budget, GUARD_MARGIN) as self._guard:
                return func(self, *args, **kwargs)

        run.__doc__ = test_id
        setattr(run, _GRADED_ID, test_id)
        return run

    return decorate


def graded_id(test: unittest.TestCase) -> str | None:
    """The id ``@graded`` gave ``test``'s method, or None for a method that is not a graded test."""
    return getattr(getattr(test, test._testMethodName, None), _GRADED_ID, None)


class GradedTestCase(unittest.TestCase):
    """Base class of graded tests; the runner sets ``ctx`` on every instance before running."""

    ctx: GradingContext
    spec: TestSpec
    _guard: _Guard | None = None
    failed_outcome: Outcome | None = None   # the check that failed this test, read by the runner

    def report(self, outcome: Outcome) -> None:
        """Log a check's verdict; a failure fails the test with the plain-text feedback (public
        tests) or the one-line hint (hidden ones), and is kept for the runner's other renderings."""
        if outcome.passed:
            self.ctx.log(f"[{self.spec.id}] PASS {outcome.detail or outcome.message}")
            return
        key = f" [{outcome.diagnosis}]" if outcome.diagnosis else ""
        self.ctx.log(f"[{self.spec.id}] FAIL{key} {outcome.detail or outcome.message}\n"
                     + "\n".join("    " + line for line in as_text(outcome).splitlines()))
        self.failed_outcome = outcome
        raise AssertionError(as_text(outcome) if self.spec.public else (outcome.hint or "incorrect result"))

    def student(self, driver: str, args: dict, module: str | None = None, spread: tuple[str, ...] = ()) -> dict:
        """Call a driver on the student's code (``spread``: list arguments split over the
        assignment's worker lanes); a student fault is re-raised as feedback."""
        module = module or self.spec.module
        self._calling()
        try:
            return self.ctx.call_student(module, driver, args, self.spec.timeout, spread, test=self.spec.id)
        except (BudgetSpent, BudgetTimeout) as exc:  # the harness's words alone: hidden tests show them whole
            self.ctx.log(f"[{self.spec.id}] time budget: {exc}")
            raise type(exc)(self._student_feedback(str(exc), module) if self.spec.public else str(exc)) from None
        except StudentError as exc:
            self.ctx.log(f"[{self.spec.id}] student fault: {exc}")
            raise type(exc)(self._student_feedback(str(exc), module)) from None

    def reference(self, driver: str, args: dict, module: str | None = None, spread: tuple[str, ...] = ()) -> dict:
        self._calling()
        return self.ctx.call_reference(module or self.spec.module, driver, args, self.spec.timeout, spread)

    def _calling(self) -> None:
        if self._guard is not None:
            self._guard.extend(self.spec.timeout)

    def _student_feedback(self, message: str, module: str) -> str:
        if not self.spec.public:
            # Hidden tests: the kind of fault, never the hidden input echoed back by a traceback.
            return message.split("\n", 1)[0].split(":", 1)[0] + ": run the public tests locally to see details"
        printed = self.ctx.student_output(module)
        return message + (f"\n\nYour code printed:\n{printed}" if printed.strip() else "")
