"""Shared fixtures: the repository's folders and a helper that grades a folder with the real harness."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "reference_solution"
TEMPLATE = ROOT / "student_template"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as Gradescope does."""
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def run_autograder(submission: Path, results: Path, *extra: str) -> dict:
    """Grade ``submission`` through ./run_autograder exactly as a user would; return results.json."""
    proc = subprocess.run([str(ROOT / "run_autograder"), "--submission", str(submission), "--results", str(results),
                           *extra], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return strict_json(results.read_text())


@pytest.fixture
def submission_from(tmp_path):
    """Build a submission folder from the reference, with some files replaced or left out."""
    def make(replace: dict[str, Path] | None = None, omit: tuple[str, ...] = ()) -> Path:
        folder = tmp_path / "submission"
        folder.mkdir()
        for name in ("sample.py", "likelihood.py", "classifier.py"):
            if name in omit:
                continue
            src = (replace or {}).get(name, REFERENCE / name)
            shutil.copyfile(src, folder / name)
        return folder
    return make


def scores_by_part(results: dict) -> dict[str, tuple[float, float]]:
    """(score, full points) per course test id, extra credit counted at its points."""
    out = {}
    for t in results["tests"]:
        out[result_id(t)] = (t["score"], t["max_score"])
    return out


def result_id(t: dict) -> str:
    """A results.json test's id (its ``extra_data.test_id``), or its name for the run's own tests."""
    return (t.get("extra_data") or {}).get("test_id") or t["name"]
