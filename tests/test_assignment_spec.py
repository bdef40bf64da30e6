"""One source of truth for a test's spec: the assignment config the grade was given.

Each test grades under a modified copy of tests_hidden/assignment.yml and checks what a user
sees (scores, feedback, names, visibility) follows the copy, in a process that has already
graded under the shipped config, so nothing read when the test modules were imported survives.
"""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
import unittest
from types import SimpleNamespace

import pytest
import yaml

from autograder import testing
from autograder.budget import Budget
from autograder.cli import main
from autograder.config import DEFAULT_TIMEOUT, load_assignment
from autograder.errors import ConfigError
from autograder.runner import grade
from conftest import REFERENCE, ROOT, run_autograder
from workflow_support import HALVED_LIKELIHOOD, submission, tiny_config

CONFIG = ROOT / "tests_hidden" / "assignment.yml"
HARD_CODED_LENGTH = (REFERENCE / "sample.py").read_text().replace(
    "    current_text = start_text\n", "    length = 128  # the length of 6c-0-basic, whatever is asked\n"
                                       "    current_text = start_text\n")
SLOW_LIKELIHOOD = (REFERENCE / "likelihood.py").read_text().replace(
    "    with torch.no_grad():\n", "    import time\n    time.sleep(1.0)\n    with torch.no_grad():\n", 1)
assert "length = 128" in HARD_CODED_LENGTH and "sleep" in SLOW_LIKELIHOOD, "the reference changed; update the variants"
SHORT_SAMPLER = {"sampler": {"model": "gpt2", "runs": 1, "prompt_len": 10, "length": 20}}


def config_with(dest, changes: dict[str, dict], ids: list[str] | None = None):
    """The shipped config (only ``ids`` when given) with some tests' keys replaced."""
    data = yaml.safe_load((tiny_config(dest, ids) if ids else CONFIG).read_text())
    for test in data["tests"]:
        test.update(changes.get(test["id"], {}))
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def by_id(results) -> dict:
    return {t.extra_data.get("test_id"): t for t in results.tests}


def test_a_sampler_is_held_to_the_length_the_given_config_asks(tmp_path):
    folder = submission(tmp_path / "upload", replace={"sample.py": HARD_CODED_LENGTH})
    only = frozenset({"6c-0-basic"})
    shipped = by_id(grade(folder, only=only)[0])["6c-0-basic"]
    assert shipped.passed, shipped.output
    changed = config_with(tmp_path / "short.yml", {"6c-0-basic": {"params": SHORT_SAMPLER}})
    short = by_id(grade(folder, changed, only=only)[0])["6c-0-basic"]
    assert short.score == 0
    assert "expected (1, 30) (the 10-token prompt followed by 20 new tokens)" in short.output


def test_log_likelihood_is_judged_on_the_given_lengths_and_model(tmp_path):
    folder = submission(tmp_path / "upload", replace={"likelihood.py": HALVED_LIKELIHOOD})
    refs = {}
    for model in ("gpt2", "gpt2_b"):
        config = config_with(tmp_path / f"{model}.yml", {"6d-0-basic": {"params": {"model": model, "lengths": [7]}}})
        results, log = grade(folder, config, only=frozenset({"6d-0-basic"}))
        test = by_id(results)["6d-0-basic"]
        assert test.score == 0 and "| tokens in the text | 7 | 7 |" in test.output, test.output
        assert test.diagnosis == "likelihood:half" and "your value equals the log-likelihood halved." in test.output
        refs[model] = re.search(r"\[6d-0-basic\] FAIL \[likelihood:half\] T=7 got=\S+ ref=(\S+)", "\n".join(log))[1]
    assert refs["gpt2"] != refs["gpt2_b"], "the same reference value under two models: the model was not read"


def test_the_given_time_limit_cuts_a_slow_but_correct_function(tmp_path):
    folder = submission(tmp_path / "upload", replace={"likelihood.py": SLOW_LIKELIHOOD})
    config = config_with(tmp_path / "tight.yml", {"6d-0-basic": {"timeout": 0.5}})
    tests = by_id(grade(folder, config, only=frozenset({"6d-0-basic", "6d-1-hidden"}))[0])
    assert tests["6d-0-basic"].score == 0
    assert "likelihood.py did not finish within 0.5 s (time limit)" in tests["6d-0-basic"].output
    assert tests["6d-1-hidden"].passed, "the slow function is right: the test keeping its time limit passes"


def test_the_whole_test_guard_is_the_given_time_limit_plus_the_margin(monkeypatch):
    class Stuck(testing.GradedTestCase):
        @testing.graded("6d-0-basic")
        def test_stuck(self):
            self.student("log_likelihood", {})

    shipped = load_assignment()
    tight = dataclasses.replace(shipped, tests=(dataclasses.replace(shipped.test("6d-0-basic"), timeout=0.3),))
    monkeypatch.setattr(testing, "GUARD_MARGIN", 0.2)  # the real margin, 30 s, is too long to wait for here
    case = Stuck("test_stuck")
    case.ctx = SimpleNamespace(assignment=tight, budget=Budget(tight.time_budget),
                               call_student=lambda *args, **kwargs: time.sleep(20))  # a call that missed its deadline
    outcome = unittest.TestResult()
    case.run(outcome)
    assert [str(err) for _, err in outcome.errors][0].endswith(
        "6d-0-basic ran past its time limit of 0.5 s (0.2 s for the grader's own work plus the time limits of "
        "1 call)\n")


@pytest.mark.slow
def test_results_take_names_points_visibility_and_extra_credit_from_the_given_config(tmp_path):
    config = config_with(tmp_path / "shown.yml", {
        "6d-0-basic": {"title": "log-likelihood, renamed", "points": 3, "visibility": "after_published"},
        "6d-1-hidden": {"visibility": "visible", "extra_credit": True},
    }, ids=["6d-0-basic", "6d-1-hidden"])
    results = run_autograder(REFERENCE, tmp_path / "r.json", "--assignment", str(config))
    tests = {t["name"]: t for t in results["tests"]}
    names = ["6d-0-basic: log-likelihood, renamed", "6d-1-hidden: log-likelihood of the shortest texts"]
    assert set(tests) == set(names)
    renamed, shown = (tests[name] for name in names)
    assert (renamed["score"], renamed["max_score"], renamed["visibility"]) == (3, 3, "after_published")
    assert (shown["score"], shown["max_score"], shown["visibility"]) == (1, 0, "visible")  # extra credit: max 0


def test_a_configured_test_without_a_method_is_a_visible_autograder_error(tmp_path):
    data = yaml.safe_load(CONFIG.read_text())
    data["tests"].append({"id": "6d-9-hidden", "module": "likelihood", "points": 1, "title": "no method yet"})
    (tmp_path / "extra.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    results, _log = grade(REFERENCE, tmp_path / "extra.yml", only=frozenset({"6d-0-basic", "6d-9-hidden"}))
    tests = {t.name: t for t in results.tests}
    assert tests["6d-0-basic: log-likelihood of a 10-token prompt"].passed
    orphan = tests["6d-9-hidden: no method yet"]
    assert orphan.score == 0 and orphan.harness_fault and orphan.output.startswith("autograder error")
    staff = tests["autograder error (staff detail)"]
    assert staff.visibility == "hidden" and "@graded('6d-9-hidden')" in staff.output


def test_a_test_method_the_config_does_not_name_is_not_run(tmp_path):
    data = yaml.safe_load(CONFIG.read_text())
    data["tests"] = [t for t in data["tests"] if t["id"] != "6d-1-hidden"]
    (tmp_path / "fewer.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    results, log = grade(REFERENCE, tmp_path / "fewer.yml", only=frozenset({"6d-0-basic", "6d-1-hidden"}))
    assert [t.extra_data.get("test_id") for t in results.tests] == ["6d-0-basic"]
    assert not any("[6d-1-hidden]" in line for line in log)


@pytest.mark.slow
def test_rerun_regrades_under_the_given_config(tmp_path):
    folder = submission(tmp_path / "upload", replace={"sample.py": HARD_CODED_LENGTH})
    config = config_with(tmp_path / "short.yml", {"6c-0-basic": {"params": SHORT_SAMPLER}})
    proc = subprocess.run([sys.executable, "-m", "autograder", "rerun", "--submission", str(folder),
                           "--test", "6c-0-basic", "--assignment", str(config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "score: 0 / 1" in proc.stdout and "expected (1, 30)" in proc.stdout


def test_check_runs_the_public_tests_of_the_given_config(tmp_path, capsys):
    folder = submission(tmp_path / "upload", replace={"sample.py": HARD_CODED_LENGTH})
    config = config_with(tmp_path / "short.yml", {"6c-0-basic": {"params": SHORT_SAMPLER}}, ids=["6c-0-basic"])
    assert main(["check", str(folder), "--assignment", str(config)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "expected (1, 30)" in out


def test_the_time_limit_when_unset_is_the_one_the_shipped_config_documents(tmp_path):
    data = yaml.safe_load(CONFIG.read_text())
    documented = data["defaults"].pop("timeout")
    (tmp_path / "unset.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert {t.timeout for t in load_assignment(tmp_path / "unset.yml").tests} == {DEFAULT_TIMEOUT} == {documented}


@pytest.mark.parametrize("where, misspelt, known", [
    ((), "statistcal", "title, seed, error_budget"),
    (("defaults",), "timout", "timeout, public_visibility, hidden_visibility"),
    (("tests", 1), "statistcal", "id, title, points, module, visibility, extra_credit, timeout, statistical, params"),
])
def test_an_unknown_key_is_refused_with_the_known_ones(tmp_path, where, misspelt, known):
    data = yaml.safe_load(CONFIG.read_text())
    part = data
    for key in where:
        part = part[key]
    part[misspelt] = True
    (tmp_path / "typo.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=rf"unknown key '{misspelt}'; known: {known}"):
        load_assignment(tmp_path / "typo.yml")


@pytest.mark.parametrize("bad", [0, -1, "fast", True])
def test_a_bad_time_limit_names_the_value_and_the_fix(tmp_path, bad):
    config = config_with(tmp_path / "bad.yml", {"6d-0-basic": {"timeout": bad}})
    with pytest.raises(ConfigError, match=rf"test 6d-0-basic: timeout = {re.escape(repr(bad))}; give the seconds"):
        load_assignment(config)
