"""Time a full grade of the reference solution on the embedded default models.

Prints wall time, CPU time (harness and workers) and each test's wall time, for a grade with a
cold reference cache (the reference solution's answers computed during the grade) and one with
a warm cache (as on a Gradescope image built by setup.sh).  Figures only; nothing is asserted.

    .venv/bin/python bench/grade_time.py [--submission DIR]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.context import ReferenceCache  # noqa: E402
from autograder.runner import grade  # noqa: E402


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed_grade(submission: Path, cache: ReferenceCache, label: str) -> None:
    wall, cpu = time.monotonic(), cpu_seconds()
    results, _ = grade(submission, reference_cache=cache)
    wall, cpu = time.monotonic() - wall, cpu_seconds() - cpu
    print(f"{label}: score {results.score:g}, wall {wall:.1f} s, CPU {cpu:.1f} s (harness + workers)")
    for test_id, seconds in sorted(results.seconds.items()):
        print(f"    {test_id:<12} {seconds:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submission", type=Path, default=ROOT / "reference_solution")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = ReferenceCache(Path(tmp))
        timed_grade(args.submission, cache, "cold reference cache")
        timed_grade(args.submission, ReferenceCache(Path(tmp)), "warm reference cache")


if __name__ == "__main__":
    main()
