"""What graded tests are written with: a decorator naming the test and a base class running it.

A graded test is a ``GradedTestCase`` method decorated with ``@graded("6c-2-hidden")``.  The
decorator carries the id alone: when the test runs, its spec (params, timeout, points, title,
visibility) is the one the running context's assignment gives that id, so a grade under
``--assignment other.yml`` uses that file's values throughout, never those of the config the
test modules were first imported with.  Points, visibility and names of the results come from
the same spec (``autograder.runner``), which is why gradescope-utils' ``@weight``,
``@number`` and ``@visibility``, fixed when a module is imported, are not used.
"""
from __future__ import annotations

import functools
import unittest
from dataclasses import dataclass

import timeout_decorator

from autograder.config import TestSpec
from autograder.context import GradingContext
from autograder.errors import StudentError

# Extra seconds the outer guard allows beyond a test's own limit, which its worker calls enforce.
GUARD_MARGIN = 30.0
_GRADED_ID = "__graded_id__"


class TestGuardTimeout(AssertionError):
    """The whole test ran past its time limit."""


def graded(test_id: str):
    """Make a ``GradedTestCase`` method the graded test ``test_id`` of whatever assignment runs it."""
    if not isinstance(test_id, str) or not test_id:
        raise TypeError(f"@graded({test_id!r}): give the test's id as the assignment config spells it, "
                        "e.g. @graded(\"6c-2-hidden\")")

    def decorate(func):
        @functools.wraps(func)
        def run(self, *args, **kwargs):
            self.spec = self.ctx.assignment.test(test_id)
            limit = self.spec.timeout + GUARD_MARGIN
            guarded = timeout_decorator.timeout(limit, use_signals=True, timeout_exception=TestGuardTimeout,
                                                exception_message=f"{test_id} ran past its time limit of {limit:g} s")
            return guarded(func)(self, *args, **kwargs)

        run.__doc__ = test_id
        setattr(run, _GRADED_ID, test_id)
        return run

    return decorate


def graded_id(test: unittest.TestCase) -> str | None:
    """The id ``@graded`` gave ``test``'s method, or None for a method that is not a graded test."""
    return getattr(getattr(test, test._testMethodName, None), _GRADED_ID, None)


@dataclass(frozen=True)
class Outcome:
    """A check's verdict: ``message`` for public tests, ``hint`` for hidden ones, ``detail`` for staff."""

    passed: bool
    message: str = ""
    hint: str = ""
    detail: str = ""


class GradedTestCase(unittest.TestCase):
    """Base class of graded tests; the runner sets ``ctx`` on every instance before running."""

    ctx: GradingContext
    spec: TestSpec

    def report(self, outcome: Outcome) -> None:
        self.ctx.log(f"[{self.spec.id}] {'PASS' if outcome.passed else 'FAIL'} {outcome.detail or outcome.message}")
        if not outcome.passed:
            raise AssertionError(outcome.message if self.spec.public else (outcome.hint or "incorrect result"))

    def student(self, driver: str, args: dict, module: str | None = None, spread: tuple[str, ...] = ()) -> dict:
        """Call a driver on the student's code (``spread``: list arguments split over the
        assignment's worker lanes); a student fault is re-raised as feedback."""
        module = module or self.spec.module
        try:
            return self.ctx.call_student(module, driver, args, self.spec.timeout, spread)
        except StudentError as exc:
            self.ctx.log(f"[{self.spec.id}] student fault: {exc}")
            raise type(exc)(self._student_feedback(str(exc), module)) from None

    def reference(self, driver: str, args: dict, module: str | None = None, spread: tuple[str, ...] = ()) -> dict:
        return self.ctx.call_reference(module or self.spec.module, driver, args, self.spec.timeout, spread)

    def _student_feedback(self, message: str, module: str) -> str:
        if not self.spec.public:
            # Hidden tests: the kind of fault, never the hidden input echoed back by a traceback.
            return message.split("\n", 1)[0].split(":", 1)[0] + ": run the public tests locally to see details"
        printed = self.ctx.student_output(module)
        return message + (f"\n\nYour code printed:\n{printed}" if printed.strip() else "")
