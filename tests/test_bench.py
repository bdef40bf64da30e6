"""Every benchmark script runs: ``bench/X.py --smoke`` goes end to end in seconds and prints its figures.

A script is a ``bench/*.py`` with a ``__main__`` block; a new one without ``--smoke`` fails here
(argparse refuses the flag).  The other files are modules, run through the scripts that import
them.  Scripts that need cgroups or root skip with the reason where they cannot run.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cgroup import unavailable
from conftest import ROOT

pytestmark = pytest.mark.slow
BENCH = ROOT / "bench"
FILES = sorted(BENCH.glob("*.py"))
FIGURES = {  # what a script's smoke run prints, at least (default: a decimal figure)
    "performance.py": r"wall \d+\.\d s, CPU \d+\.\d s, peak \d+ MiB",
    "container.py": r"\| smoke: [^|]+\| [^|]+\| [^|]+\| \d+\.\d \| \d+\.\d \|",
    "hardening_overhead.py": r"reference graded in \d+\.\d s.*\n(.*\n)*isolation total: \d+\.\d\d s",
    "textmodel_calibration.py": r"natural +n= +\d+ +log-lik min +-?\d+\.\d\d",
}


def is_script(path: Path) -> bool:
    return re.search(r'^if __name__ == "__main__":', path.read_text(), re.MULTILINE) is not None


SCRIPTS = [p for p in FILES if is_script(p)]
MODULES = [p for p in FILES if not is_script(p)]


def why_not_here(script: Path) -> str | None:
    """Why ``script`` cannot run on this machine (None: it can)."""
    text = script.read_text()
    if "bench.cgroup import" in text:
        return unavailable()
    if script.name == "hardening_overhead.py" and os.geteuid() != 0:
        return "it measures the switch to the worker user: needs root"
    return None


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_script_runs_end_to_end_in_its_smoke_mode(script):
    why = why_not_here(script)
    if why is not None:
        pytest.skip(f"{script.name}: {why}")
    proc = subprocess.run([sys.executable, str(script), "--smoke"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, f"{script.name} --smoke failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    figures = FIGURES.get(script.name, r"\d+\.\d+")
    assert re.search(figures, proc.stdout), f"{script.name} --smoke printed no figures ({figures}):\n{proc.stdout}"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_a_module_without_a_main_runs_inside_a_script_that_is_smoked(module):
    users = [s.name for s in SCRIPTS if re.search(rf"\bbench\.{module.stem}\b", s.read_text())]
    assert users, f"bench/{module.name} has no __main__ block and no script imports it: give it a --smoke mode"


def test_the_scripts_are_found():
    assert {p.name for p in SCRIPTS} >= set(FIGURES), f"scripts: {[p.name for p in SCRIPTS]}"
