"""What the worker hardening costs when grading a correct submission (run as root, after setup.sh).

1. Components: grade the reference solution once, timing everything the isolation adds (the run's
   setup and final sweep, the leftover scans after each call and at each stop), and the time to a
   worker's hello with full confinement versus resource limits only.
2. End to end (``--baseline REV``): alternate whole grades of the reference with this tree and with
   the harness at git revision REV (before the hardening), in fresh processes.

    .venv/bin/python bench/hardening_overhead.py [--baseline 22a62d0] [--rounds 3]
    .venv/bin/python bench/hardening_overhead.py --smoke   # one test, one round: a check that it runs
"""
from __future__ import annotations

import argparse
import functools
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.sandbox import isolation, reaper, handle as sandbox  # noqa: E402
from autograder.sandbox.confine import Confinement  # noqa: E402
from autograder.config import load_assignment  # noqa: E402
from autograder.runner import grade  # noqa: E402

GRADE = ("import sys, time; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
         "from autograder.runner import grade; t = time.monotonic(); r, _ = grade(Path(sys.argv[2])); "
         "print(time.monotonic() - t, r.score)")


def timed(spent: dict, name: str, func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started
            spent[name + " (count)"] = spent.get(name + " (count)", 0) + 1
    return wrapper


def components(only: frozenset[str] | None = None, rounds: int = 5) -> None:
    """The isolation's share of a grade of the reference (``only`` those tests), and of a worker's
    start (median over ``rounds``)."""
    spent: dict = {}
    isolation.Isolation.start = classmethod(timed(spent, "run setup (user, runtime, sweep)",
                                                  isolation.Isolation.start.__func__))
    isolation.Isolation.close = timed(spent, "run end (sweep, files)", isolation.Isolation.close)
    sandbox.reaper.kill = timed(spent, "leftover scans", reaper.kill)
    started = time.monotonic()
    results, _ = grade(ROOT / "reference_solution", only=only)
    total = time.monotonic() - started
    print(f"reference graded in {total:.1f} s, score {results.score:g}")
    for name, value in spent.items():
        print(f"  {name}: {value}" if "count" in name else f"  {name}: {value:.3f} s")
    added = sum(v for k, v in spent.items() if "count" not in k)
    hello = worker_hello(rounds)
    print(f"  worker start, user switch and private network minus limits only (median of {rounds}): {hello:+.3f} s")
    print(f"isolation total: {added:.2f} s + 3 student workers x {max(hello, 0):.2f} s")


def worker_hello(rounds: int = 5) -> float:
    """Median extra seconds to a worker's hello when switching user and network, over limits only."""
    assignment = load_assignment()
    base = Path(tempfile.mkdtemp())
    base.chmod(0o711)
    iso = isolation.Isolation.start(base, assignment.drivers, models=assignment.models)
    files = {name: ROOT / "reference_solution" / name for name in assignment.student_files}
    module = assignment.tests[0].module
    extra = []
    try:
        for _ in range(rounds):
            times = {}
            for full in (True, False):
                handle = sandbox.WorkerHandle(files, module, assignment.drivers, base, sandbox.Limits(), iso)
                if not full:
                    handle.student = False  # runs as root, no user switch (limits and network as before)
                    iso.confinement = lambda student, rlimits, scratch=None: Confinement(rlimits=rlimits)
                started = time.perf_counter()
                try:
                    handle.ensure_started()
                    times[full] = time.perf_counter() - started
                finally:
                    handle.stop()
                    if not full:
                        del iso.confinement  # the class's own again
            extra.append(times[True] - times[False])
    finally:
        iso.close()
        shutil.rmtree(base, ignore_errors=True)
    return statistics.median(extra)


def end_to_end(baseline: str, rounds: int) -> None:
    old = Path(tempfile.mkdtemp(prefix="baseline-"))
    subprocess.run(["git", "-C", str(ROOT), "archive", baseline, "-o", str(old / "a.tar")], check=True)
    subprocess.run(["tar", "-xf", str(old / "a.tar"), "-C", str(old)], check=True)
    try:
        _alternate(old, rounds)
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _alternate(old: Path, rounds: int) -> None:
    runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "hardened": []}
    for _ in range(rounds):
        for name, tree in (("baseline", old), ("hardened", ROOT)):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run([sys.executable, "-c", GRADE, str(tree), str(ROOT / "reference_solution")],
                                 capture_output=True, text=True, check=True).stdout.split()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            runs[name].append((float(out[0]), cpu))
            print(f"  {name}: {float(out[0]):.1f} s wall, {cpu:.1f} s CPU (grader and workers), score {out[1]}")
    for name, values in runs.items():
        print(f"{name}: median {statistics.median(v[0] for v in values):.1f} s wall, "
              f"{statistics.median(v[1] for v in values):.1f} s CPU over {rounds}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", help="git revision of the harness before the hardening")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-components", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="one test of the reference and one round: a quick check")
    args = parser.parse_args()
    if args.smoke:
        components(only=frozenset({load_assignment().tests[0].id}), rounds=1)
    elif not args.skip_components:
        components()
    if args.baseline:
        end_to_end(args.baseline, args.rounds)


if __name__ == "__main__":
    main()
