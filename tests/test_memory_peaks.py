"""A grade records its memory peaks (results.json's extra_data.memory) without changing any score:
a worker's peak whether the harness stops it or it ends by itself, and the grading process's own."""
from __future__ import annotations

import pytest

from autograder.runner import grade
from conftest import REFERENCE
from workflow_support import submission

pytestmark = pytest.mark.slow

ONLY = frozenset({"6d-0-basic"})
BLOCK_MIB = 300
# Appended to the reference's likelihood.py: touch BLOCK_MIB MiB, then answer (and keep it) or exit.
HOLDS = f"""
import torch as _torch
_kept = []
_reference = log_likelihood


def log_likelihood(model, text):
    _kept.append(_torch.ones({BLOCK_MIB} * 1024 * 1024 // 4))
    return _reference(model, text)
"""
EXITS = f"""
import os as _os
import torch as _torch


def log_likelihood(model, text):
    block = _torch.ones({BLOCK_MIB} * 1024 * 1024 // 4)
    _os._exit(int(block[0]) + 2)
"""


def _graded(tmp_path, name: str, extra: str = ""):
    folder = submission(tmp_path / name, replace={"likelihood.py": (REFERENCE / "likelihood.py").read_text() + extra})
    results, _ = grade(folder, only=ONLY)
    return results, results.extra_data["memory"]


def test_worker_peaks_are_recorded_whether_stopped_or_ended_and_scores_stay(tmp_path):
    plain, plain_memory = _graded(tmp_path, "plain")
    holds, holds_memory = _graded(tmp_path, "holds", HOLDS)
    exits, exits_memory = _graded(tmp_path, "exits", EXITS)
    base = plain_memory["worker_peak_mib"]
    assert base > 50 and plain_memory["grader_peak_mib"] > 50 and plain_memory["grader_peak_of"] == "this grade"
    # Stopped by the harness at the end of the grade: its VmHWM, read before the kill.
    assert holds_memory["worker_peak_mib"] > base + 0.8 * BLOCK_MIB, (base, holds_memory)
    # Ended by itself mid-call: wait4's maximum resident set size.
    assert exits_memory["worker_peak_mib"] > base + 0.8 * BLOCK_MIB, (base, exits_memory)
    assert "crashed" in exits.tests[0].output and not exits.tests[0].passed
    assert [(t.name, t.score, t.passed, t.output) for t in holds.tests] == \
        [(t.name, t.score, t.passed, t.output) for t in plain.tests], "recording memory changes no result"
