"""rerun: any test of a full run reproduced alone, with the same score, from its extra_data."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from autograder.errors import UsageError
from autograder.staff.rerun import rerun
from autograder.runner import grade
from conftest import ROOT
from workflow_support import HALVED_LIKELIHOOD, submission

pytestmark = pytest.mark.slow
TESTS = frozenset({"6c-0-basic", "6d-0-basic", "6d-1-hidden", "6e-0-basic"})


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A right sampler, a halved log-likelihood and no classifier: passes, failures and a missing file."""
    folder = submission(tmp_path_factory.mktemp("mixed") / "upload", replace={"likelihood.py": HALVED_LIKELIHOOD},
                        omit=("classifier.py",))
    results, _log = grade(folder, only=TESTS)
    return folder, {t.extra_data["test_id"]: t for t in results.tests}


def test_every_test_carries_what_reproduces_it(mixed):
    folder, full = mixed
    assert set(full) == TESTS
    for test_id, t in full.items():
        extra = t.extra_data
        assert extra["grader_version"] and len(extra["grader_digest"]) == 12 and extra["seed"] == 20261130
        assert extra["rerun"] == shlex.join(["python", "-m", "autograder", "rerun", "--submission", str(folder.resolve()),
                                             "--test", test_id, "--seed", "20261130"])
    assert {i: t.score for i, t in full.items()} == {"6c-0-basic": 1, "6d-0-basic": 0, "6d-1-hidden": 0, "6e-0-basic": 0}


@pytest.mark.parametrize("test_id", ["6d-0-basic", "6e-0-basic"])
def test_rerun_gives_the_score_and_feedback_of_the_full_run(mixed, test_id):
    folder, full = mixed
    again = rerun(folder, test_id)
    assert (again.test.score, again.test.passed, again.test.output) == (full[test_id].score, full[test_id].passed,
                                                                        full[test_id].output)
    assert [t.extra_data.get("test_id") for t in again.results.tests] == [test_id]


def test_the_recorded_command_prints_every_staff_detail_of_a_hidden_test(mixed):
    folder, full = mixed
    argv = shlex.split(full["6d-1-hidden"].extra_data["rerun"])
    proc = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "score: 0 / 1" in proc.stdout and "FAILED" in proc.stdout
    assert full["6d-1-hidden"].output in proc.stdout            # what the student saw: a hint
    assert "got=" in proc.stdout and "ref=" in proc.stdout       # what staff need: the values


def test_rerun_names_the_known_tests_when_the_id_is_wrong(mixed):
    folder, _ = mixed
    with pytest.raises(UsageError, match="6d-1-hidden"):
        rerun(folder, "6d-9-hidden")
    with pytest.raises(UsageError, match="not a folder"):
        rerun(folder / "nowhere", "6d-1-hidden")
