"""Full grades inside Gradescope's containers: a real cgroup memory limit and CPU quota.

Each grade is ``./run_autograder`` in a fresh cgroup (``bench/cgroup.py``: root and cgroup v1
needed), after the page cache of the virtual environment, the Python installation and the
harness was dropped, so the grade is charged for the files it reads, as in a fresh container.
It prints, per grade, the score, wall and CPU time, the cgroup's peak usage
(``memory.max_usage_in_bytes``: anonymous memory and page cache), the peak of the anonymous
part (``total_rss`` sampled every 50 ms) with the page cache at that moment, and the kernel's
out-of-memory kills.

Scenarios (all by default):

- ``correct``: the reference solution and every correct entry of the mutation corpus in the
  default container (768 MiB, half a CPU): each must get full marks; a grade over 90 s of wall
  time (``WALL_BUDGET``) is marked so, a mark of this benchmark, not a limit of the harness;
- ``tiers``: the reference solution in each Gradescope tier, with the embedded default and
  with ``gpt2`` at GPT-2 small's real size (12 layers x 768; the stand-in for the checkpoint).

Figures only; nothing is asserted.

    .venv/bin/python bench/container.py [--scenario NAME ...] [--entries REGEX] [--output bench/results/container.md]
    .venv/bin/python bench/container.py --smoke   # one test of the reference in the largest tier: a quick check
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.config import DEFAULT_CONFIG, MAX_ALPHA_PER_TEST  # noqa: E402
from autograder.container import TIERS  # noqa: E402
from autograder.q6.grading_models import GPT2_SMALL_SHAPE  # noqa: E402
from autograder.staff.corpus import load_corpus  # noqa: E402
from bench.cgroup import Container, CgroupUnavailable, MiB, drop_file_cache, swap_bytes, unavailable  # noqa: E402

DEFAULT_MEMORY = 768 * MiB          # Gradescope's default: 768 MB, read as the kernel's "768M"
DEFAULT_CPUS = 0.5
WALL_BUDGET = 90.0                  # seconds a grade may take in the default container
HEADER = ("| grade | container | score | wall s | CPU s | peak MiB | anon MiB | cache MiB | OOM kills | verdict |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def _score(results: Path) -> tuple[str, bool, list[str]]:
    """("22 / 18", full marks?, names of the tests that failed)."""
    try:
        data = json.loads(results.read_text())
    except (OSError, ValueError):
        return "no results", False, []
    tests = data.get("tests", [])
    lost = [(t.get("extra_data") or {}).get("test_id") or t["name"] for t in tests if t.get("status") != "passed"]
    base = sum(t.get("max_score", 0) for t in tests)   # extra credit is written with max_score 0
    got = sum(t.get("score", 0) for t in tests)
    return f"{got:g} / {base:g}", not lost and bool(tests), lost


def graded(label: str, submission: Path, memory: int, cpus: float | None, tmp: Path, assignment: Path | None = None,
           budget: float | None = None) -> str:
    """One grade in a fresh container; its table row."""
    drop_file_cache([ROOT / ".venv", Path(sys.base_prefix), ROOT / "autograder", ROOT / "reference_solution"])
    results = tmp / f"{re.sub('[^A-Za-z0-9_.-]', '_', label)}.json"
    argv = ["./run_autograder", "--submission", str(submission), "--results", str(results)]
    if assignment is not None:
        argv += ["--assignment", str(assignment)]
    with Container(memory, cpus) as box:
        run = box.run(argv, timeout=1800, cwd=ROOT)
    score, full, lost = _score(results)
    verdict = "full marks" if full else "lost " + ", ".join(lost)
    if budget is not None and run.wall > budget:
        verdict += f"; over {budget:g} s"
    where = f"{cpus:g} CPU / {memory / MiB:.0f} MiB" if cpus is not None else "no limits"
    row = (f"| {label} | {where} | {score} | {run.wall:.1f} | {run.cpu:.1f} | "
           f"{run.max_usage / MiB:.0f} | {run.peak_rss / MiB:.0f} | {run.peak_cache / MiB:.0f} | {run.oom_kills} | "
           f"{verdict} |")
    print(row, flush=True)
    return row


def correct(lines: list[str], tmp: Path, entries: str | None, modes: list[str]) -> None:
    corpus = load_corpus()
    chosen = [e for e in corpus.entries if e.correct and (entries is None or re.search(entries, e.name))]
    lines += ["### The default container: reference and correct corpus entries", "",
              f"Each a full grade in {DEFAULT_CPUS:g} CPU / {DEFAULT_MEMORY / MiB:.0f} MiB; wall budget "
              f"{WALL_BUDGET:g} s.", "", HEADER]
    print("\n".join(lines[-3:]), flush=True)
    if entries is None or re.search(entries, "reference"):
        lines.append(graded("reference", ROOT / "reference_solution", DEFAULT_MEMORY, DEFAULT_CPUS, tmp,
                            budget=WALL_BUDGET))
    for entry in chosen:
        submission = corpus.build_submission(entry, tmp / "submissions" / entry.name)
        lines.append(graded(entry.name, submission, DEFAULT_MEMORY, DEFAULT_CPUS, tmp, budget=WALL_BUDGET))
    lines.append("")


def tiers(lines: list[str], tmp: Path, entries: str | None, modes: list[str]) -> None:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    data["models"]["gpt2"].update(GPT2_SMALL_SHAPE)   # as production mode points gpt2 at the course checkpoint
    gpt2_small = tmp / "assignment-gpt2-small.yml"
    gpt2_small.write_text(yaml.safe_dump(data, sort_keys=False))
    lines += ["### Gradescope's tiers: the reference solution", "",
              "`gpt2-small`: the model `gpt2` at GPT-2 small's real size (12 x 768, synthetic weights), the "
              "stand-in for production mode with the course checkpoint. Its first grade in a tier also "
              "fills the reference cache for its config (as `setup.sh` does on Gradescope); the row is the "
              "second, warm grade.", "", HEADER]
    print("\n".join(lines[-3:]), flush=True)
    for mode, config in (("embedded", None), ("gpt2-small", gpt2_small)):
        if mode not in modes:
            continue
        if config is not None:  # setup.sh's warm-up, outside any limit
            graded(f"{mode} (warm-up)", ROOT / "reference_solution", 16 * 1024 * MiB, None, tmp, config)
        for cpus, gb in TIERS:
            lines.append(graded(mode, ROOT / "reference_solution", int(gb * 1024) * MiB, cpus, tmp, config))
    lines.append("")


def smoke(lines: list[str], tmp: Path) -> None:
    """The reference graded on the config's first test alone, in the largest tier: every step of
    a scenario (a fresh cgroup, the dropped page cache, the table row) in seconds."""
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    data["tests"], data["error_budget"] = data["tests"][:1], MAX_ALPHA_PER_TEST   # a budget for no statistical test
    config = tmp / "assignment-smoke.yml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    cpus, gb = TIERS[-1]
    lines += ["### Smoke: the reference on one test", "", HEADER]
    print("\n".join(lines[-3:]), flush=True)
    lines.append(graded(f"smoke: {data['tests'][0]['id']}", ROOT / "reference_solution", int(gb * 1024) * MiB, cpus,
                        tmp, config))


SCENARIOS = {"correct": correct, "tiers": tiers}
MODES = ("embedded", "gpt2-small")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--entries", help="regular expression: only these corpus entries ('reference' too)")
    parser.add_argument("--mode", action="append", choices=MODES, help="tiers: these modes only (default: all)")
    parser.add_argument("--output", type=Path, help="also write the figures (markdown) to this file")
    parser.add_argument("--smoke", action="store_true", help="one test of the reference, one tier: a quick check")
    args = parser.parse_args()
    why = unavailable()
    if why is not None:
        raise SystemExit(f"bench/container.py: cannot create cgroups here: {why}")
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="ag-container-") as tmp:
            smoke([], Path(tmp))
        return
    if swap_bytes():
        print(f"note: this machine has {swap_bytes() / MiB:.0f} MiB of swap; the limits include it "
              "(memory.memsw) where the kernel allows", flush=True)
    lines = [f"# Grades in Gradescope's containers ({time.strftime('%Y-%m-%d')})", "",
             f"{os.cpu_count()} cores shared with other work, Python {platform.python_version()}, "
             f"{platform.machine()}, no swap: {not swap_bytes()}; `bench/container.py`. Limits are real cgroup "
             "v1 limits (memory.limit_in_bytes, cpu.cfs_quota_us). peak: memory.max_usage_in_bytes (anonymous "
             "memory plus page cache); anon: the highest sampled total_rss; cache: total_cache at that moment. "
             "The page cache of the venv, Python and the harness is dropped before each grade.", ""]
    print("filling the reference cache, as setup.sh does (outside any limit) ...", flush=True)
    subprocess.run([sys.executable, "-m", "autograder", "warm"], cwd=ROOT, check=True, capture_output=True)
    try:
        with tempfile.TemporaryDirectory(prefix="ag-container-") as tmp:
            for name in args.scenario or list(SCENARIOS):
                SCENARIOS[name](lines, Path(tmp), args.entries, args.mode or list(MODES))
                if args.output:  # after each scenario: a later failure keeps the figures so far
                    args.output.parent.mkdir(parents=True, exist_ok=True)
                    args.output.write_text("\n".join(lines) + "\n")
    except CgroupUnavailable as exc:
        raise SystemExit(f"bench/container.py: {exc}") from None


if __name__ == "__main__":
    main()
