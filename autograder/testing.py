"""What graded tests are written with: gradescope-utils' decorators fed from the assignment YAML.

A graded test is a ``GradedTestCase`` method decorated with ``@graded("6c-2-hidden")``, which
applies ``@weight``, ``@number``, ``@visibility`` and a timeout-decorator guard with the values
the assignment config gives that id, and names the test ``"6c-2-hidden: <title>"``.
"""
from __future__ import annotations

import functools
import unittest
from dataclasses import dataclass

import timeout_decorator
from gradescope_utils.autograder_utils.decorators import number, visibility, weight

from autograder.config import Assignment, TestSpec, load_assignment
from autograder.context import GradingContext
from autograder.errors import StudentError

# Extra seconds the outer guard allows beyond a test's own limit, which its worker calls enforce.
GUARD_MARGIN = 30.0


class TestGuardTimeout(AssertionError):
    """The whole test ran past its time limit."""


def graded(test_id: str, assignment: Assignment | None = None):
    spec = (assignment or _default_assignment()).test(test_id)

    def decorate(func):
        guarded = timeout_decorator.timeout(spec.timeout + GUARD_MARGIN, use_signals=True,
                                            timeout_exception=TestGuardTimeout,
                                            exception_message=f"{spec.id} ran past its time limit")(func)

        @functools.wraps(func)
        def run(self, *args, **kwargs):
            self.spec = spec
            return guarded(self, *args, **kwargs)

        run.__doc__ = spec.name
        run = weight(spec.points)(run)  # extra credit is marked by the runner from the config
        run = number(spec.number)(run)
        return visibility(spec.visibility)(run)

    return decorate


@functools.lru_cache(maxsize=None)
def _default_assignment() -> Assignment:
    return load_assignment()


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
