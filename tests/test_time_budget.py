"""The time budget of a whole grade: limits planned within it, reasons for what could not run, the
test guard, run_autograder's watchdog, and submissions whose every function (or import) hangs."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import signal
import subprocess
import sys
import time
import unittest
from types import SimpleNamespace

import pytest
import yaml

from attack_support import ATTACKS, build_attack, check_results_file, harness_faults, machine_leftovers
from autograder import failsafe, testing
from autograder.budget import MIN_CALL_SECONDS, Budget
from autograder.config import DEFAULT_TIME_BUDGET, load_assignment
from autograder.errors import AutograderError, BudgetSpent, BudgetTimeout, ConfigError, StudentTimeout
from conftest import ROOT, result_id, run_autograder, strict_json

CONFIG = ROOT / "tests_hidden" / "assignment.yml"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spend(budget: Budget, clock: Clock, test_id: str, file: str, seconds: float) -> float:
    """One student call of ``seconds``; returns the limit the budget gave it."""
    with budget.student_call(test_id, file) as allowed:
        clock.now += seconds
    return allowed


# -- planning ---------------------------------------------------------------------------------

def test_each_call_gets_what_the_budget_has_left_minus_the_reserve_and_it_shrinks_as_used():
    clock = Clock()
    budget = Budget(100, clock=clock)
    assert (budget.reserve, budget.closing) == (10, 4)  # 10 %, at least 10 s; of which 4 s for closing
    clock.now += 5  # the harness starting: its own time, never the student's
    assert spend(budget, clock, "6c-0-basic", "sample.py", 60) == 85
    assert spend(budget, clock, "6c-1-basic", "sample.py", 20) == 25
    assert budget.student_left() == pytest.approx(5)
    assert budget.harness_left() == pytest.approx(11)  # reference calls may use the reserve, not its end
    assert budget.harness_call("the reference solution's sample.py") == pytest.approx(11)
    summary = budget.summary({"6c-0-basic": 61.0})
    assert summary["budget_s"] == 100 and summary["used_s"] == 85 and summary["student_s"] == 80
    assert summary["by_file"] == {"sample.py": 80}
    assert summary["by_test"]["6c-0-basic"] == {"wall_s": 61.0, "student_s": 60}
    assert summary["by_test"]["6c-1-basic"]["student_s"] == 20


def test_a_normal_grade_gets_every_tests_own_limit():
    """A submission 10x slower than the reference (each call a tenth of its limit, two calls a
    test) still gets its tests' own limits: its scores cannot depend on the machine."""
    clock = Clock()
    budget = Budget(DEFAULT_TIME_BUDGET, clock=clock)
    for spec in load_assignment().tests:
        for _ in range(2):
            assert spend(budget, clock, spec.id, f"{spec.module}.py", spec.timeout / 10) >= spec.timeout
        clock.now += 1  # the harness's checks
    assert budget.summary()["not_run"] == budget.summary()["cut_short"] == []


def test_once_the_budget_is_spent_the_rest_is_not_run_with_who_used_it():
    clock = Clock()
    budget = Budget(100, clock=clock)
    spend(budget, clock, "6c-0-basic", "sample.py", 60)
    spend(budget, clock, "6d-0-basic", "likelihood.py", 29.5)
    assert budget.student_left() < MIN_CALL_SECONDS
    with pytest.raises(BudgetSpent) as refused:
        budget.start_test("6e-0-basic")
    assert str(refused.value) == ("not run: your code used up the grading time budget in earlier tests (sample.py "
                                  "used 60 s, likelihood.py 30 s of the 100 s budget, the grader's own work 0.0 s; "
                                  "longest tests: 6c-0-basic 60 s, 6d-0-basic 30 s)")
    with pytest.raises(BudgetSpent, match=r"^cut short: your code used up the grading time budget before this "
                                          r"test's last call \(sample\.py used 60 s"):
        spend(budget, clock, "6d-0-basic", "likelihood.py", 1)  # a test's second call, refused
    summary = budget.summary()
    assert summary["not_run"] == ["6e-0-basic"] and summary["cut_short"] == ["6d-0-basic"]
    assert "not run by the budget: 6e-0-basic" in budget.staff_line()


def test_a_call_the_budget_stopped_says_so_and_names_its_own_limit():
    clock = Clock()
    budget = Budget(100, clock=clock)
    spend(budget, clock, "6c-0-basic", "sample.py", 80)
    allowed = spend(budget, clock, "6c-1-basic", "sample.py", 10)
    cut = budget.cut_short("6c-1-basic", "sample.py", allowed, 60)
    assert isinstance(cut, BudgetTimeout)
    assert str(cut).startswith("sample.py did not finish within the 10 s left of the grading time budget (this "
                               "test's time limit is 60 s): your code used up the budget (sample.py used 90 s of")
    assert budget.summary()["cut_short"] == ["6c-1-basic"]


def test_when_the_harness_used_the_budget_nothing_is_the_students_fault():
    clock = Clock()
    budget = Budget(100, clock=clock)
    spend(budget, clock, "6c-0-basic", "sample.py", 5)
    clock.now += 79  # the harness's own work: a cold reference cache on a slow machine, say
    with pytest.raises(BudgetTimeout):  # a call of the student's the budget stops after the 6 s left
        with budget.student_call("6c-1-basic", "sample.py") as allowed:
            clock.now += allowed
            raise BudgetTimeout("sample.py did not finish within 6 s (what was left of the grading time budget)")
    assert allowed == pytest.approx(6)
    cut = budget.cut_short("6c-1-basic", "sample.py", allowed, 60)
    assert type(cut) is AutograderError and "the harness's own work" in str(cut)
    clock.now += 7  # past the harness's end too
    for refusal in (lambda: budget.start_test("6d-0-basic"), lambda: budget.harness_call("the reference solution's x")):
        with pytest.raises(AutograderError, match=r"time budget .*sample\.py used 11 s of the 100 s budget, "
                                                  r"the grader's own work 86 s"):
            refusal()
    assert budget.summary()["not_run"] == budget.summary()["cut_short"] == []


def test_once_a_call_ran_out_of_time_a_spent_budget_is_the_students():
    clock = Clock()
    budget = Budget(100, clock=clock)
    with pytest.raises(StudentTimeout):
        with budget.student_call("6c-0-basic", "sample.py"):
            clock.now += 10
            raise StudentTimeout("sample.py did not finish within 10 s (time limit)")
    clock.now += 80  # a slow harness besides
    with pytest.raises(BudgetSpent, match=r"^not run: your code used up the grading time budget in earlier tests "
                                          r"\(sample\.py used 10 s of the 100 s budget, the grader's own work 80 s"):
        budget.start_test("6d-0-basic")


def test_an_unlimited_budget_never_refuses_and_its_summary_is_strict_json():
    clock = Clock()
    budget = Budget(math.inf, clock=clock)
    assert spend(budget, clock, "6c-0-basic", "sample.py", 1e6) == math.inf
    budget.start_test("6d-0-basic")
    assert json.loads(json.dumps(budget.summary(), allow_nan=False))["budget_s"] is None


# -- the config --------------------------------------------------------------------------------

def test_the_shipped_budget_is_the_documented_default_and_a_margin_under_gradescopes_10_minutes(tmp_path):
    data = yaml.safe_load(CONFIG.read_text())
    assert data["time_budget"] == DEFAULT_TIME_BUDGET == load_assignment().time_budget <= 600 - 60
    del data["time_budget"]
    (tmp_path / "unset.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert load_assignment(tmp_path / "unset.yml").time_budget == DEFAULT_TIME_BUDGET


@pytest.mark.parametrize("bad", [0, 5, -1, "8 min", True, 3600, float("inf")])
def test_a_bad_time_budget_names_the_value_and_the_fix(tmp_path, bad):
    data = yaml.safe_load(CONFIG.read_text())
    data["time_budget"] = bad
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=rf"time_budget = {re.escape(repr(bad))}; give the seconds a whole grade "
                                          r"may take, .* e\.g\. time_budget: 480"):
        load_assignment(tmp_path / "bad.yml")


# -- the per-test guard --------------------------------------------------------------------------

def guarded_case(calls: int, call_seconds: float, timeout: float, budget: Budget | None = None):
    """A graded test making ``calls`` student calls of ``call_seconds`` each, under a fake context."""
    class Slow(testing.GradedTestCase):
        @testing.graded("6f-2-hidden")
        def test_slow(self):
            for _ in range(calls):
                self.student("sample", {})

    spec = dataclasses.replace(load_assignment().test("6f-2-hidden"), timeout=timeout)
    assignment = SimpleNamespace(test=lambda test_id: spec)
    case = Slow("test_slow")
    case.ctx = SimpleNamespace(assignment=assignment, budget=budget or Budget(DEFAULT_TIME_BUDGET),
                               log=lambda line: None, call_student=lambda *args, **kwargs: time.sleep(call_seconds) or {})
    outcome = unittest.TestResult()
    case.run(outcome)
    return outcome


def test_the_guard_allows_a_test_the_limits_of_all_its_calls(monkeypatch):
    monkeypatch.setattr(testing, "GUARD_MARGIN", 0.3)
    outcome = guarded_case(calls=3, call_seconds=0.4, timeout=0.5)  # 1.2 s: more than one limit plus the margin
    assert outcome.wasSuccessful(), outcome.errors


def test_a_test_past_its_guard_is_the_harness_s_fault(monkeypatch):
    monkeypatch.setattr(testing, "GUARD_MARGIN", 0.2)
    outcome = guarded_case(calls=1, call_seconds=5, timeout=0.3)  # the call's own deadline failed to stop it
    assert not outcome.failures and len(outcome.errors) == 1
    assert outcome.errors[0][1].rstrip().endswith(
        "TestGuardTimeout: 6f-2-hidden ran past its time limit of 0.5 s (0.2 s for the grader's own work plus the "
        "time limits of 1 call)")


def test_the_guard_ends_at_the_budgets_end_for_the_harness():
    budget = Budget(2.5)  # half of it for calls, half for the harness: it ends in 1.25 s
    began = time.monotonic()
    outcome = guarded_case(calls=1, call_seconds=10, timeout=60, budget=budget)
    assert "was still running at the end of the time budget (2.5 s)" in outcome.errors[0][1]
    assert time.monotonic() - began < 5


def test_a_test_the_budget_has_no_call_left_for_does_not_start():
    clock = Clock()
    budget = Budget(20, clock=clock)
    spend(budget, clock, "6c-0-basic", "sample.py", 11.5)
    outcome = guarded_case(calls=1, call_seconds=0, timeout=60, budget=budget)
    assert outcome.errors and outcome.errors[0][1].rstrip().endswith(
        "BudgetSpent: not run: your code used up the grading time budget in earlier tests (sample.py used 12 s of "
        "the 20 s budget, the grader's own work 0.0 s; longest tests: 6c-0-basic 12 s)")


# -- run_autograder's watchdog ---------------------------------------------------------------------

def _grader(tmp_path, budget_s: float, then: str) -> list[str]:
    """A stand-in for the grader: records its progress (the results to write if stopped), then ``then``."""
    progress = {"score": 1.0, "execution_time": 0.0, "tests": [{"name": "6c-0-basic: a", "score": 1.0}],
                "extra_data": {"time_budget": {"budget_s": budget_s}}}
    code = (f"import json, pathlib, time; pathlib.Path({str(tmp_path / 'progress')!r}).write_text("
            f"json.dumps({progress!r})); {then}")
    return [sys.executable, "-c", code, "--results", str(tmp_path / "results.json")]


def test_the_watchdog_writes_what_the_grader_recorded_before_the_budget_ends(tmp_path):
    started = time.time()
    (tmp_path / "progress").write_text("")
    status = failsafe.watch(started, tmp_path / "progress", str(tmp_path / "err"),
                            _grader(tmp_path, 4.0, "time.sleep(60)"))
    took = time.time() - started
    assert status == failsafe.STOPPED and took < 4.0
    results = strict_json((tmp_path / "results.json").read_text())
    assert results["tests"] == [{"name": "6c-0-basic: a", "score": 1.0}] and results["execution_time"] > 0


def test_a_grader_stuck_before_recording_anything_still_leaves_a_valid_file_worth_nothing(tmp_path):
    started = time.time()
    (tmp_path / "err").write_text("Traceback ...\nstuck importing")
    command = [sys.executable, "-c", "import time; time.sleep(60)", "--results", str(tmp_path / "results.json")]
    assert failsafe.watch(started, tmp_path / "progress", str(tmp_path / "err"), command,
                          default_budget=3.5) == failsafe.STOPPED
    assert time.time() - started < 3.5
    results = strict_json((tmp_path / "results.json").read_text())
    assert results["score"] == 0 and [t["visibility"] for t in results["tests"]] == ["visible", "hidden"]
    assert "did not finish within its time budget of 3.5 s" in results["tests"][0]["output"]
    assert "stuck importing" in results["tests"][1]["output"]


def test_the_watchdog_leaves_a_grade_that_ends_in_time_alone(tmp_path):
    (tmp_path / "progress").write_text("")
    status = failsafe.watch(time.time(), tmp_path / "progress", str(tmp_path / "err"),
                            _grader(tmp_path, 30.0, "raise SystemExit(3)"))
    assert status == 3 and not (tmp_path / "results.json").exists()


# -- submissions that hang -------------------------------------------------------------------------

def tight_config(dest, budget: float, timeout: float):
    data = yaml.safe_load(CONFIG.read_text())
    data["time_budget"] = budget
    data["defaults"]["timeout"] = timeout
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest, [t["id"] for t in data["tests"]]


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["all_hang", "hang_at_import"])
def test_a_submission_that_hangs_everywhere_gets_every_result_within_the_budget(tmp_path, attack):
    budget = 40.0
    config, ids = tight_config(tmp_path / "tight.yml", budget, timeout=5)
    submission = build_attack(attack, tmp_path / attack)
    started = time.monotonic()
    results = run_autograder(submission, tmp_path / "results.json", "--assignment", str(config))
    took = time.monotonic() - started
    assert took < budget, f"the grade took {took:.1f} s of its {budget:g} s budget"
    check_results_file(tmp_path / "results.json")  # strict JSON, and no autograder error: the hang is the student's
    tests = {result_id(t): t for t in results["tests"]}
    assert sorted(tests) == sorted(ids) and results["score"] == 0
    reasons = {"timeout": r"^\w+\.py did not finish within 5 s \(time limit",
               "cut": r"^\w+\.py did not finish within the [0-9.]+ s left of the grading time budget",
               "not run": r"^not run: your code used up the grading time budget in earlier tests \(\w+\.py used ",
               "cut short": r"^cut short: your code used up the grading time budget before this test's last call"}
    seen = set()
    for test_id, t in tests.items():
        assert t["score"] == 0 and t["status"] == "failed", t
        kinds = [kind for kind, pattern in reasons.items() if re.search(pattern, t["output"])]
        assert kinds, (test_id, t["output"])
        seen.update(kinds)
    assert {"timeout", "not run"} <= seen, seen
    spent = results["extra_data"]["time_budget"]
    assert spent["budget_s"] == budget and 0 < spent["used_s"] < budget and spent["student_s"] >= 5
    assert spent["not_run"] and set(spent["not_run"]) <= set(ids) and set(spent["by_test"]) <= set(ids)
    assert "Your code used up the grading time budget (40 s)" in results["output"]
    assert machine_leftovers() == []


@pytest.mark.slow
def test_a_stopped_grade_stops_its_workers_and_leaves_its_progress(tmp_path):
    config, ids = tight_config(tmp_path / "tight.yml", 120.0, timeout=30)
    progress, results = tmp_path / "progress.json", tmp_path / "results.json"
    grade = subprocess.Popen([sys.executable, "-m", "autograder", "grade", "--submission",
                              str(build_attack("all_hang", tmp_path / "all_hang")), "--results", str(results),
                              "--assignment", str(config), "--progress", str(progress)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not progress.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # the first test's call is under way
    grade.send_signal(signal.SIGTERM)
    out, err = grade.communicate(timeout=20)
    assert grade.returncode == 124, out + err
    assert not results.exists()
    known = strict_json(progress.read_text())
    assert [result_id(t) for t in known["tests"][:len(ids)]] == [
        spec.id for spec in load_assignment(config).tests]
    assert harness_faults(known) == ["autograder error", "autograder error (staff detail)"]
    assert all(t["output"].startswith("not run: grading was stopped at the end of its time budget (120 s)")
               for t in known["tests"][:len(ids)])
    assert known["extra_data"]["time_budget"]["stopped"] is True
    assert machine_leftovers() == []


def test_the_hang_fixtures_hang_every_student_function():
    hung = {name: (ATTACKS / "all_hang" / name).read_text() for name in ("sample.py", "likelihood.py", "classifier.py")}
    for name, text in hung.items():
        template = (ROOT / "student_template" / name).read_text()
        defined = set(re.findall(r"^def (\w+)\(", template, re.M))
        assert defined <= set(re.findall(r"^def (\w+)\(", text, re.M)), (name, defined)
    assert all("time.sleep(90)" in (ATTACKS / "hang_at_import" / n).read_text() for n in hung)
