"""Where things are: the harness root and Gradescope's folder, named once.

Standard library only: the worker runtime and ``failsafe.py`` read it too.  In a worker's
runtime copy ``HARNESS_ROOT`` is that copy's root, where relative checkpoint paths are linked.
"""
from __future__ import annotations

from pathlib import Path

HARNESS_ROOT = Path(__file__).resolve().parent.parent
GRADESCOPE = Path("/autograder")          # Gradescope's folder: source/, submission/, results/
REFERENCE_DIR = HARNESS_ROOT / "reference_solution"
REFERENCE_CACHE_DIR = HARNESS_ROOT / ".cache" / "reference"


def on_gradescope() -> bool:
    return HARNESS_ROOT == GRADESCOPE / "source" and (GRADESCOPE / "results").is_dir()
