"""Memory given back: a worker returns to the system what a call freed."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from autograder.config import load_assignment
from autograder.context import GradingContext, present_files
from conftest import REFERENCE

MiB = 1024 * 1024

# A correct log_likelihood that leaves its heap full of holes: 4000 blocks of 100 KB (under
# glibc's mmap threshold, so on the heap), every 20th kept, so freeing cannot shrink the heap.
FRAGMENTS_THE_HEAP = '''
_kept = []
_reference = log_likelihood


def log_likelihood(model, text):
    blocks = [torch.ones(25_000) for _ in range(4000)]
    _kept.extend(blocks[::20])
    return _reference(model, text)
'''


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line for line in fh if line.startswith("VmRSS:")).split()[1]) * 1024


def test_a_worker_gives_back_the_memory_a_call_freed(tmp_path):
    (tmp_path / "likelihood.py").write_text((REFERENCE / "likelihood.py").read_text() + FRAGMENTS_THE_HEAP)
    files = {**present_files(REFERENCE, load_assignment().student_files), "likelihood.py": tmp_path / "likelihood.py"}
    assignment = load_assignment()
    ctx = GradingContext(assignment, files)
    try:
        worker = ctx.worker("student", files, "likelihood")
        worker.ensure_started()
        idle = _rss(worker.proc.pid)
        text = np.arange(1, 11, dtype=np.int64).reshape(1, -1)
        got = worker.call("log_likelihood", {"model": assignment.model("gpt2"), "texts": [text], "seed": 0}, timeout=60)
        assert np.isfinite(got["values"][0])
        # 400 MB were freed in holes; what stays is the kept 20 MB, the model and the imports.  The
        # worker trims after answering, while the harness judges: give it a few seconds.
        until = time.monotonic() + 10
        while (grown := _rss(worker.proc.pid) - idle) >= 150 * MiB and time.monotonic() < until:
            time.sleep(0.1)
        assert grown < 150 * MiB, f"the worker kept {grown / MiB:.0f} MiB after the call"
    finally:
        ctx.close()


# Frees a 40 MB block (glibc then keeps blocks up to that size on the heap), then allocates and
# frees 26 MB chunks while keeping a small tensor after each: on the heap, each kept tensor pins
# the top, so every chunk takes new pages.
PINS_THE_HEAP = """
import sys
sys.path.insert(0, sys.argv[1])
import torch
from autograder.sandbox.heap import map_large_blocks
if sys.argv[2] == "mapped":
    map_large_blocks()


def rss():
    with open("/proc/self/status") as fh:
        return int(next(line for line in fh if line.startswith("VmRSS:")).split()[1]) * 1024


big = torch.ones(10_000_000)
del big
base, kept = rss(), []
for _ in range(10):
    chunk = torch.ones(3_250_000, dtype=torch.float64)
    kept.append(torch.ones(16))
    del chunk
print(rss() - base)
"""


def test_large_blocks_go_back_to_the_system_when_freed(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    def growth(mode: str) -> int:
        proc = subprocess.run([sys.executable, "-c", PINS_THE_HEAP, str(ROOT), mode], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        return int(proc.stdout)

    if growth("heap") < 100 * MiB:
        pytest.skip("this C library does not keep freed large blocks on its heap")
    assert growth("mapped") < 20 * MiB
