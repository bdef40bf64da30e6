"""Gradescope's submission metadata: the student in the staff log, an optional daily cap."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from autograder.metadata import daily_cap, load_metadata, over_cap
from conftest import REFERENCE, ROOT, strict_json
from workflow_support import tiny_config

NOW = datetime(2025, 10, 1, 12, 0, tzinfo=timezone(timedelta(hours=-7)))


def metadata(tmp_path, hours_ago=(), name="meta.json"):
    previous = [{"submission_time": (NOW - timedelta(hours=h)).isoformat(), "score": 10.0 + i,
                 "results": {"score": 10.0 + i, "output": "Public tests: 5 / 9 points",
                             "tests": [{"name": "6c-0-basic: shape", "score": 1.0, "max_score": 1.0}]}}
                for i, h in enumerate(sorted(hours_ago, reverse=True))]
    data = {"created_at": NOW.isoformat(), "assignment": {"title": "PS1 Q6"},
            "users": [{"name": "Ada Lovelace", "email": "ada@example.edu", "id": 7},
                      {"name": "Alan Turing", "email": "alan@example.edu", "id": 8}],
            "previous_submissions": previous}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_metadata_names_every_submitter_and_counts_recent_submissions(tmp_path):
    meta = load_metadata(metadata(tmp_path, hours_ago=(1, 5, 30)))
    lines = "\n".join(meta.staff_lines())
    assert "Ada Lovelace <ada@example.edu> (id 7); Alan Turing <alan@example.edu> (id 8)" in lines
    assert "3 earlier submission(s), 2 in the 24 hours before this one" in lines
    assert load_metadata(tmp_path / "absent.json") is None


@pytest.mark.parametrize("cap", [None, 3], ids=["no cap", "under the cap"])
def test_under_the_cap_the_submission_is_graded(tmp_path, cap):
    assert over_cap(load_metadata(metadata(tmp_path, hours_ago=(2, 3, 40))), cap) is None


@pytest.fixture
def capped(tmp_path):
    """What a third upload within 24 hours gets under a cap of 2."""
    return over_cap(load_metadata(metadata(tmp_path, hours_ago=(2, 3, 40))), 2).to_gradescope()


def test_over_the_cap_the_score_is_the_latest_earlier_one(capped):
    assert capped["score"] == 12.0  # the latest earlier submission's score: a capped upload never lowers a grade


def test_over_the_cap_the_student_reads_the_limit_and_when_it_lifts(capped):
    assert capped["output"].startswith("Submission limit reached: at most 2 submissions in 24 hours")
    assert "2025-10-02T09:00" in capped["output"]  # 24 hours after the older of the two recent ones


def test_over_the_cap_the_earlier_tests_are_kept(capped):
    assert capped["tests"][0]["name"] == "6c-0-basic: shape"


def test_cap_is_read_from_the_assignment_config(tmp_path):
    config = tiny_config(tmp_path / "tiny.yml", ["6d-0-basic"])
    assert daily_cap(config) is None
    config.write_text(config.read_text() + "max_submissions_per_day: 3\n")
    assert daily_cap(config) == 3


def run_grade(tmp_path, config, meta, upload=REFERENCE):
    return subprocess.run([sys.executable, "-m", "autograder", "grade", "--submission", str(upload), "--results",
                           str(tmp_path / "results.json"), "--assignment", str(config), "--metadata", str(meta)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_grade_over_the_cap_writes_the_kept_results_without_grading(tmp_path):
    config = tiny_config(tmp_path / "tiny.yml", ["6d-0-basic"])
    config.write_text(config.read_text() + "max_submissions_per_day: 1\n")
    proc = run_grade(tmp_path, config, metadata(tmp_path, hours_ago=(1,)))
    assert proc.returncode == 0, proc.stderr
    assert "student: Ada Lovelace" in proc.stdout and "not graded" in proc.stdout
    results = strict_json((tmp_path / "results.json").read_text())
    assert results["score"] == 10.0 and results["extra_data"]["submission_cap"]["not_graded"]


def test_unreadable_metadata_never_stops_grading(tmp_path):
    config = tiny_config(tmp_path / "tiny.yml", ["6d-0-basic"])
    broken = tmp_path / "meta.json"
    broken.write_text("{not json")
    empty = tmp_path / "upload"
    empty.mkdir()  # nothing to run: the point is that grading happens at all
    proc = run_grade(tmp_path, config, broken, empty)
    assert proc.returncode == 0, proc.stderr
    assert "submission metadata ignored" in proc.stdout
    results = strict_json((tmp_path / "results.json").read_text())
    assert "likelihood.py was not uploaded" in results["tests"][0]["output"]
