"""Wall time, CPU time and peak memory of full grades, against the budgets in ``BUDGETS``.

Scenarios (all by default):

- ``embedded``: the reference solution on the embedded default models, with a warm reference
  cache (as on a Gradescope image, whose setup.sh fills it) and a cold one;
- ``gpt2-small``: the same on one core with the model ``gpt2`` at GPT-2 small's real size
  (12 layers, width 768, synthetic weights), as when it points at the course checkpoint;
- ``regrade``: ``autograder regrade --jobs 2`` of an export of 20 corpus submissions.

For each grade it prints wall, CPU (harness and workers together) and peak memory (PSS of the
whole process tree, so weights mapped by several processes count once), split by test, and
the floor: the time the student functions alone need for the same calls in one plain process.
Figures only; nothing is asserted.

    .venv/bin/python bench/performance.py [--scenario NAME ...] [--output bench/results/performance.md]
    .venv/bin/python bench/performance.py --smoke   # one test, cold cache: a check that it runs
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["TQDM_DISABLE"] = "1"   # as in the workers: the course's progress bars print nothing

import torch  # noqa: E402

from autograder.config import DEFAULT_CONFIG, load_assignment  # noqa: E402
from autograder.context import GradingContext, ReferenceCache  # noqa: E402
from autograder.q6.grading_models import GPT2_SMALL_SHAPE  # noqa: E402
from autograder.runner import grade  # noqa: E402
from bench.floor import Recorder, replay  # noqa: E402
from bench.monitor import TreeMonitor  # noqa: E402

MiB = 1024 ** 2
BUDGETS = {  # scenario -> (wall seconds, peak MiB, what the budget is)
    "embedded, warm cache": (30.0, 1024, "embedded default: <= 30 s wall, <= 1 GiB (2 cores)"),
    "gpt2-small, one core, warm cache": (300.0, 1536, "real-size GPT-2 small: <= 5 min on one core, <= 1.5 GiB"),
}


def _gpt2_small_config(dest: Path) -> Path:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    data["models"]["gpt2"].update(GPT2_SMALL_SHAPE)   # as production mode points gpt2 at the course checkpoint
    path = dest / "assignment-gpt2-small.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def timed_grade(label: str, lines: list[str], cache: ReferenceCache, assignment: Path | None = None,
                submission: Path = ROOT / "reference_solution", only: frozenset[str] | None = None) -> None:
    """One monitored grade, its floor and its table of tests."""
    recorder = Recorder()
    started = time.monotonic()
    with recorder.recording(GradingContext), TreeMonitor() as monitor:
        results, _ = grade(submission, assignment=assignment, reference_cache=cache, only=only)
    wall = time.monotonic() - started
    floors = replay(recorder.calls, submission, results.spans)
    floor = sum(floors.values())
    budget = BUDGETS.get(label)
    verdict = ""
    if budget:
        ok = wall <= budget[0] and monitor.peak / MiB <= budget[1]
        verdict = f" -> budget {budget[2]}: {'met' if ok else 'NOT met'}"
    lines += [f"### {label}", "",
              f"score {results.score:g}; wall {wall:.1f} s, CPU {monitor.cpu:.1f} s, peak {monitor.peak / MiB:.0f} MiB; "
              f"floor {floor:.1f} s, wall / floor {wall / floor:.2f}{verdict}", "",
              "| test | wall s | CPU s | peak MiB | floor s |", "|---|---|---|---|---|"]
    for test_id, (start, end) in sorted(results.spans.items()):
        cpu, peak = monitor.window(start, end)
        lines.append(f"| {test_id} | {end - start:.1f} | {cpu:.1f} | {peak / MiB:.0f} | {floors.get(test_id, 0.0):.2f} |")
    lines.append("")
    print("\n".join(lines[-(len(results.spans) + 6):]), flush=True)


def embedded(lines: list[str], tmp: Path) -> None:
    cache_dir = tmp / "cache-embedded"
    timed_grade("embedded, cold cache", lines, ReferenceCache(cache_dir))
    timed_grade("embedded, warm cache", lines, ReferenceCache(cache_dir))


def gpt2_small(lines: list[str], tmp: Path) -> None:
    config = _gpt2_small_config(tmp)
    cache_dir = tmp / "cache-gpt2-small"
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})  # workers inherit it: harness and workers share one core
    try:
        timed_grade("gpt2-small, one core, cold cache", lines, ReferenceCache(cache_dir), config)
        timed_grade("gpt2-small, one core, warm cache", lines, ReferenceCache(cache_dir), config)
    finally:
        os.sched_setaffinity(0, saved)


def regrade(lines: list[str], tmp: Path, count: int = 20, jobs: int = 2) -> None:
    export = tmp / "export"
    fixtures = sorted((ROOT / "tests" / "fixtures" / "corpus").glob("*.py"))
    chosen = [fixtures[i * len(fixtures) // count] for i in range(count)]
    meta = []
    for i, fixture in enumerate(chosen):
        folder = export / f"submission_{1000 + i}"
        shutil.copytree(ROOT / "reference_solution", folder)
        target = f"{fixture.stem.split('_')[0]}.py"   # a corpus entry is named after the file it replaces
        shutil.copyfile(fixture, folder / target)
        meta.append(f":submission_{1000 + i}:\n  :submitters:\n  - :name: Student {i}\n    :sid: '{i}'\n")
    (export / "submission_metadata.yml").write_text("".join(meta))
    started = time.monotonic()
    with TreeMonitor() as monitor:
        proc = subprocess.run([sys.executable, "-m", "autograder", "regrade", str(export), "--out", str(tmp / "regraded"),
                               "--jobs", str(jobs)], cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    lines += [f"### regrade of {count} corpus submissions, --jobs {jobs}", "",
              f"exit {proc.returncode}; wall {wall:.1f} s ({wall / count:.1f} s per submission), CPU {monitor.cpu:.1f} s, "
              f"peak {monitor.peak / MiB:.0f} MiB", ""]
    print("\n".join(lines[-3:]) + "\n" + proc.stdout[-800:] + proc.stderr[-800:], flush=True)


def smoke(lines: list[str], tmp: Path) -> None:
    """The first test of the reference with a cold cache: every step of a scenario, in seconds."""
    first = load_assignment().tests[0].id
    timed_grade(f"smoke: {first} only, cold cache", lines, ReferenceCache(tmp / "cache-smoke"), only=frozenset({first}))


SCENARIOS = {"embedded": embedded, "gpt2-small": gpt2_small, "regrade": regrade}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--output", type=Path, help="also write the figures (markdown) to this file")
    parser.add_argument("--smoke", action="store_true", help="one test of the reference only: a quick check")
    args = parser.parse_args()
    lines = [f"# Grading performance ({time.strftime('%Y-%m-%d')})", "",
             f"{os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
             f"{platform.machine()}; `bench/performance.py`", ""]
    with tempfile.TemporaryDirectory(prefix="ag-bench-") as tmp:
        for run in [smoke] if args.smoke else [SCENARIOS[name] for name in args.scenario or list(SCENARIOS)]:
            run(lines, Path(tmp))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
