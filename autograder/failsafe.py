"""The last guard of results.json: run by ``run_autograder`` when the grading process failed.

If the grader died before writing its results (an import error, a crash of the interpreter,
the out-of-memory killer), Gradescope would show "The autograder failed to execute correctly"
and no score.  This writes, only in that case, a valid file worth nothing: a visible
"autograder error" test and, for staff only, the tail of the grader's standard error.

Usage: ``python -I failsafe.py STARTED EXIT_STATUS STDERR_FILE [grade arguments...]``.  Standard
library only, so that it works whatever broke.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

GRADESCOPE_RESULTS = Path("/autograder/results/results.json")  # as autograder/cli.py
STDERR_TAIL = 8000


def results_path(args: list[str]) -> Path:
    """Where ``autograder grade`` with these arguments writes its results."""
    for i, arg in enumerate(args):
        if arg == "--results" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--results="):
            return Path(arg.split("=", 1)[1])
    submitted = any(a == "--submission" or a.startswith("--submission=") for a in args)
    return Path("results.json") if submitted else GRADESCOPE_RESULTS


def written_since(path: Path, started: float) -> bool:
    """A strict-JSON results file written by this run."""
    def refuse(name):
        raise ValueError(name)
    try:
        if path.stat().st_mtime < started:
            return False
        data = json.loads(path.read_text(), parse_constant=refuse)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("tests"), list)


def fallback(status: str, stderr_tail: str) -> dict:
    return {
        "score": 0.0,
        "output": "The autograder failed while grading; see the tests below.",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [
            {"name": "autograder error", "score": 0.0, "max_score": 0.0, "status": "failed", "visibility": "visible",
             "output": f"The autograder itself failed ({status}). This is not your fault; "
                       "course staff have been notified through the grading log."},
            {"name": "autograder error (staff detail)", "score": 0.0, "max_score": 0.0, "status": "failed",
             "visibility": "hidden", "output": f"{status}\n\nstandard error (end):\n{stderr_tail}"},
        ],
    }


def out_of_memory(status: str) -> str:
    """", killed for this container's memory limit (768 MiB)" when a SIGKILL (status 137) came
    with an out-of-memory kill in this process's cgroup, else ""."""
    if status != "137":
        return ""
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
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


def main(argv: list[str]) -> int:
    started, status, stderr_file, *args = argv
    path = results_path(args)
    if written_since(path, float(started)):
        return 0
    try:
        tail = Path(stderr_file).read_bytes()[-STDERR_TAIL:].decode("utf-8", "replace")
    except OSError:
        tail = "(not captured)"
    write_atomically(path, json.dumps(fallback(f"the grading process exited with status {status}"
                                               + out_of_memory(status), tail), allow_nan=False, indent=1))
    sys.stderr.write(f"run_autograder: the grader failed; wrote a fallback {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
