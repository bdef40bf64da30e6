"""The time budget of one grade: every call's limit is planned within it, and it records who used it.

Gradescope kills a run at its timeout and then shows the student a 0 and no test results at all.
The assignment's ``time_budget`` (seconds, a margin under that timeout) bounds the whole grade:

- a student call may take the smaller of its test's limit and what the budget has left minus the
  ``reserve``, the harness's share at the end (the checks of the test under way, stopping the
  workers, writing results, the grading process's exit).  Once less than ``MIN_CALL_SECONDS`` is left, the submission's
  remaining calls are not made: their tests fail with the reason, naming the files and tests
  that used the time;
- the harness's own steps (a reference call, each test's guard) may run until ``closing`` seconds
  before the end, the part of the reserve kept for stopping the workers and writing results.json;
- should the grading process itself overrun, run_autograder's watchdog (``autograder.failsafe``)
  writes the results known so far just before the end.

The budget bites only for a submission that uses it up: a normal grade takes a small part of it,
so its calls get their tests' own limits, the same on every machine.  Time spent by the harness
(reference calls included) is never charged to the student: unless the student's code ran out of
time in a call or took half the budget, what could not run is an autograder error.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from autograder.errors import AutograderError, BudgetSpent, BudgetTimeout, StudentTimeout

MIN_CALL_SECONDS = 1.0                    # a call the budget would give less time is not made
RESERVE_SHARE, MIN_RESERVE = 0.10, 10.0   # the harness's share at the end (48 s of the default 480 s):
                                          # the test under way, stopping workers, results, the process's exit
CLOSING_SHARE, MIN_CLOSING = 0.04, 4.0    # the reserve's last part: stopping workers, writing results
STUDENT_SHARE = 0.5                       # the student's calls taking this share used the budget up


@dataclass
class TestUsage:
    """What one test took of the budget."""

    __test__ = False  # not a test for pytest to collect
    student_seconds: float = 0.0   # wall time of its student calls (a call spread over lanes counts once)
    calls: int = 0
    timed_out: bool = False        # a call ran out of its own time limit
    cut_short: bool = False        # a call, or the test's last calls, stopped by the budget
    not_run: bool = False          # no call made: the budget was spent before the test began


def seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


class Budget:
    """The seconds one grade may take, from ``started`` on ``clock`` (``time.monotonic`` by default)."""

    def __init__(self, total: float, started: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.total = float(total)
        self.clock = clock
        self.started = clock() if started is None else float(started)
        finite = math.isfinite(self.total)
        self.reserve = min(max(MIN_RESERVE, RESERVE_SHARE * self.total), self.total / 2) if finite else 0.0
        self.closing = min(max(MIN_CLOSING, CLOSING_SHARE * self.total), self.reserve) if finite else 0.0
        self.by_file: dict[str, float] = {}
        self.by_test: dict[str, TestUsage] = {}

    # -- the clock -----------------------------------------------------------------
    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self) -> float:
        return self.total - self.elapsed()

    def student_left(self) -> float:
        """Seconds a student call may still take."""
        return self.left() - self.reserve

    def harness_left(self) -> float:
        """Seconds the harness's own steps may still take."""
        return self.left() - self.closing

    @property
    def harness_end(self) -> float:
        """When, on the budget's clock, the harness's own steps must be over."""
        return self.started + self.total - self.closing

    # -- planning calls ---------------------------------------------------------------
    def start_test(self, test_id: str) -> None:
        """Raise the reason ``test_id`` cannot run if no student call fits in the budget any more."""
        if self.student_left() < MIN_CALL_SECONDS:
            raise self.refusal(test_id)

    @contextlib.contextmanager
    def student_call(self, test_id: str, file: str) -> Iterator[float]:
        """Yield the seconds a student call of ``test_id`` to ``file`` may take at most, and charge
        its time to both; raise the reason instead if the budget has no call left."""
        left = self.student_left()
        if left < MIN_CALL_SECONDS:
            raise self.refusal(test_id)
        began = self.clock()
        try:
            yield left
        except BudgetTimeout:
            raise  # stopped by the budget, not by its own limit: who used the budget decides whose fault
        except StudentTimeout:
            self.usage(test_id).timed_out = True
            raise
        finally:
            took = self.clock() - began
            self.by_file[file] = self.by_file.get(file, 0.0) + took
            usage = self.usage(test_id)
            usage.student_seconds += took
            usage.calls += 1

    def harness_call(self, what: str) -> float:
        """The seconds a harness step (``what``: a reference call) may take at most; an AutograderError
        if none: the harness running out of time is never the student's fault."""
        left = self.harness_left()
        if left < MIN_CALL_SECONDS:
            raise AutograderError(f"{what} could not run: the time budget is used up ({self.account()})")
        return left

    # -- reasons ----------------------------------------------------------------------
    def usage(self, test_id: str) -> TestUsage:
        return self.by_test.setdefault(test_id, TestUsage())

    @property
    def student_seconds(self) -> float:
        return sum(self.by_file.values())

    @property
    def spent_by_student(self) -> bool:
        """Whether the student's code, rather than the harness, used up the budget: it ran out of
        time in a call, or its calls took a large share of the budget (slow, within every limit)."""
        return (any(u.timed_out for u in self.by_test.values())
                or self.student_seconds >= STUDENT_SHARE * (self.total - self.reserve))

    def refusal(self, test_id: str) -> Exception:
        """Why ``test_id`` (or its next call) cannot run: the student's fault, or the harness's."""
        if not self.spent_by_student:
            return AutograderError(f"{test_id} could not run: the harness's own work used up the time budget "
                                   f"({self.account()})")
        usage = self.usage(test_id)
        if usage.calls:
            usage.cut_short = True
            return BudgetSpent(f"cut short: your code used up the grading time budget before this test's last "
                               f"call ({self.account()})")
        usage.not_run = True
        return BudgetSpent(f"not run: your code used up the grading time budget in earlier tests ({self.account()})")

    def cut_short(self, test_id: str, file: str, allowed: float, timeout: float) -> Exception:
        """Why a call of ``test_id`` that the budget stopped after ``allowed`` seconds failed."""
        if not self.spent_by_student:
            return AutograderError(f"{test_id}: {file} was stopped after {seconds(allowed)}, what the harness's own "
                                   f"work had left of the time budget ({self.account()})")
        self.usage(test_id).cut_short = True
        return BudgetTimeout(f"{file} did not finish within the {seconds(allowed)} left of the grading time budget "
                             f"(this test's time limit is {timeout:g} s): your code used up the budget "
                             f"({self.account()})")

    def account(self) -> str:
        """Who used the budget: the student's files, the harness, and the tests that took longest."""
        files = sorted(((took, name) for name, took in self.by_file.items() if took >= 0.05), reverse=True)
        (took, name), rest = (files[0], files[1:]) if files else ((self.student_seconds, "your code"), [])
        harness = max(self.elapsed() - self.student_seconds, 0.0)
        text = (f"{name} used {seconds(took)}" + "".join(f", {n} {seconds(t)}" for t, n in rest)
                + f" of the {self.total:g} s budget, the grader's own work {seconds(harness)}")
        longest = sorted(((u.student_seconds, t) for t, u in self.by_test.items() if u.student_seconds >= 0.05),
                         reverse=True)[:3]
        if longest:
            text += "; longest tests: " + ", ".join(f"{t} {seconds(took)}" for took, t in longest)
        return text

    # -- what staff see ---------------------------------------------------------------
    def summary(self, wall: dict[str, float] | None = None) -> dict:
        """For results.json's ``extra_data``: the budget, what the run used, per file and per test
        (``wall``: each test's wall time, from the runner)."""
        wall = wall or {}
        finite = math.isfinite(self.total)
        tests = {t: {"wall_s": round(wall.get(t, 0.0), 2), "student_s": round(self.usage(t).student_seconds, 2)}
                 for t in [*wall, *(t for t in self.by_test if t not in wall)]}
        return {
            "budget_s": self.total if finite else None,
            "reserve_s": round(self.reserve, 2), "used_s": round(self.elapsed(), 2),
            "student_s": round(self.student_seconds, 2),
            "by_file": {name: round(took, 2) for name, took in self.by_file.items()},
            "by_test": tests,
            "not_run": sorted(t for t, u in self.by_test.items() if u.not_run),
            "cut_short": sorted(t for t, u in self.by_test.items() if u.cut_short),
        }

    def staff_line(self) -> str:
        total = f"{self.total:g} s" if math.isfinite(self.total) else "no limit"
        line = (f"time budget: {seconds(self.elapsed())} used of {total} (the last {seconds(self.reserve)} kept "
                f"for the grader); student code {seconds(self.student_seconds)}")
        if self.by_file:
            line += " (" + ", ".join(f"{name} {seconds(took)}" for name, took in sorted(self.by_file.items())) + ")"
        for label, flag in (("not run", "not_run"), ("cut short", "cut_short")):
            ids = sorted(t for t, u in self.by_test.items() if getattr(u, flag))
            if ids:
                line += f"; {label} by the budget: " + ", ".join(ids)
        return line
