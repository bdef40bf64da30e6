"""The last guard of results.json, run by ``run_autograder``: the grade's watchdog, and its fallback.

``watch`` runs the grading command and stops it just before the run's time budget ends (the
grader's config gives the budget, in the progress file it rewrites after every test; until it has,
``DEFAULT_TIME_BUDGET``).  The grader plans every call to end well before, so this fires only if
the grading process itself overran: then the results it last wrote there are written, the tests
finished so far with their scores, the rest marked not run, with a visible "autograder error".
Gradescope, which kills a run at its own timeout, would otherwise show a 0 and no results at all.

If the grader died before writing its results (an import error, a crash of the interpreter,
the out-of-memory killer), Gradescope would show "The autograder failed to execute correctly"
and no score.  ``main`` then writes, only in that case, a valid file worth nothing: a visible
"autograder error" test and, for staff only, the tail of the grader's standard error.

Usage: ``python -I failsafe.py watch STARTED PROGRESS STDERR_FILE -- COMMAND...`` and
``python -I failsafe.py STARTED EXIT_STATUS STDERR_FILE [grade arguments...]`` (STARTED: seconds
since the epoch).  Standard library only, so that it works whatever broke.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a script (run_autograder): the harness root holds the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autograder.paths import GRADESCOPE  # noqa: E402 - standard library only, like this file

GRADESCOPE_RESULTS = GRADESCOPE / "results" / "results.json"
STDERR_TAIL = 8000
DEFAULT_TIME_BUDGET = 480.0  # as autograder/config.py, until the grader has written the config's
WATCHDOG_MARGIN = 2.5        # seconds before the budget ends at which a grade still running is stopped
STOP_GRACE = 1.0             # seconds from SIGTERM (the grader stops its workers) to SIGKILL
POLL = 0.25
STOPPED = 124                # as autograder/cli.py


def results_path(args: list[str]) -> Path:
    """Where ``autograder grade`` with these arguments writes its results."""
    for i, arg in enumerate(args):
        if arg == "--results" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--results="):
            return Path(arg.split("=", 1)[1])
    submitted = any(a == "--submission" or a.startswith("--submission=") for a in args)
    return Path("results.json") if submitted else GRADESCOPE_RESULTS


def read_results(path: Path, started: float) -> dict | None:
    """The strict-JSON results file at ``path`` if this run wrote it, else None."""
    def refuse(name):
        raise ValueError(name)
    try:
        if path.stat().st_mtime < started:
            return None
        data = json.loads(path.read_text(), parse_constant=refuse)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("tests"), list) else None


def written_since(path: Path, started: float) -> bool:
    """A strict-JSON results file written by this run."""
    return read_results(path, started) is not None


def budget_of(progress: dict | None) -> float | None:
    """The time budget the grader's results record (extra_data.time_budget.budget_s)."""
    extra = (progress or {}).get("extra_data")
    budget = ((extra if isinstance(extra, dict) else {}).get("time_budget") or {})
    value = budget.get("budget_s") if isinstance(budget, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def fallback(status: str, stderr_tail: str) -> dict:
    return {
        "score": 0.0,
        "output": "The autograder failed while grading; see the tests below.",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [
            {"name": "autograder error", "score": 0.0, "max_score": 0.0, "status": "failed", "visibility": "visible",
             "output": f"The autograder itself failed ({status}). This is not your fault; "
                       "course staff have been notified through the grading log.", "extra_data": {"harness_fault": True}},
            {"name": "autograder error (staff detail)", "score": 0.0, "max_score": 0.0, "status": "failed",
             "visibility": "hidden", "output": f"{status}\n\nstandard error (end):\n{stderr_tail}",
             "extra_data": {"harness_fault": True}},
        ],
    }


def out_of_memory(status: str) -> str:
    """", killed for this container's memory limit (768 MiB)" when a SIGKILL (status 137) came
    with an out-of-memory kill in this process's cgroup, else ""."""
    if status != "137":
        return ""
    try:
        from autograder.container import MiB, Container  # standard library only, like this file

        container = Container.find()
        kills, limit = container.counters().oom_kills, container.limits().memory
    except Exception:  # noqa: BLE001 - whatever broke the grader must not stop this file
        return ""
    if not kills:
        return ""
    return ", killed for this container's memory limit" + (f" ({limit / MiB:.0f} MiB)" if limit else "")


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".results-", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def stderr_tail(stderr_file: str) -> str:
    try:
        return Path(stderr_file).read_bytes()[-STDERR_TAIL:].decode("utf-8", "replace")
    except OSError:
        return "(not captured)"


def watch(started: float, progress: Path, stderr_file: str, command: list[str],
          default_budget: float = DEFAULT_TIME_BUDGET) -> int:
    """Run ``command`` (the grade); stop it if it is still running just before the time budget
    ends (``default_budget`` until ``progress`` records one) and write what it last recorded in
    ``progress``.  Returns its exit status, or STOPPED."""
    path = results_path(command)
    proc = subprocess.Popen(command)
    budget = None
    while True:
        budget = budget or budget_of(read_results(progress, started))
        stop_at = started + (budget or default_budget) - WATCHDOG_MARGIN
        try:
            return proc.wait(timeout=max(0.0, min(POLL, stop_at - time.time())))
        except subprocess.TimeoutExpired:
            if time.time() >= stop_at:
                break
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if written_since(path, started):  # it wrote its results, then took too long to exit
        sys.stderr.write(f"run_autograder: the grade was stopped at the end of its time budget; kept {path}\n")
        return STOPPED
    known = read_results(progress, started)
    if known is None:
        known = fallback(f"the grading process did not finish within its time budget of "
                         f"{budget or default_budget:g} s", stderr_tail(stderr_file))
    known["execution_time"] = round(time.time() - started, 3)
    write_atomically(path, json.dumps(known, allow_nan=False, indent=1))
    sys.stderr.write(f"run_autograder: the grade was stopped at the end of its time budget; wrote {path} "
                     "from what it had recorded\n")
    return STOPPED


def main(argv: list[str]) -> int:
    if argv[:1] == ["watch"]:
        started, progress, stderr_file, separator, *command = argv[1:]
        if separator != "--" or not command:
            raise SystemExit("usage: failsafe.py watch STARTED PROGRESS STDERR_FILE -- COMMAND...")
        return watch(float(started), Path(progress), stderr_file, command)
    started, status, stderr_file, *args = argv
    path = results_path(args)
    if written_since(path, float(started)):
        return 0
    write_atomically(path, json.dumps(fallback(f"the grading process exited with status {status}"
                                               + out_of_memory(status), stderr_tail(stderr_file)),
                                      allow_nan=False, indent=1))
    sys.stderr.write(f"run_autograder: the grader failed; wrote a fallback {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
