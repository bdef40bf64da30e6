"""What a student worker may see of the machine, and whether this machine can show it only that.

The harness writes the plan of a student worker's private view (plain data; ``autograder.sandbox.mounts``
builds it in the worker): the interpreter's prefix, the virtual environment with its packages,
the worker runtime, the model store and the configured checkpoints, read-only; the worker's own
scratch folder, writable.  The harness tree, the grading run's folder and Gradescope's
``/autograder`` are covered wherever a bind would show them.  Nothing else is in the view: not
the reference solution, the hidden tests, the assignment config, the reference answers, the
results, the staff log, an export's other submissions, nor other workers' scratch folders.

``probe`` builds the view once in a throwaway process, as the worker will (as its user), and
checks it: what workers need is there, the harness's own files are not.  Where the machine
cannot build it (no root and no user namespaces, or mounting fails), ``exposure`` says what
student code could read, and the staff commands refuse to grade unless told ``--unsafe``.
"""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import tempfile
from pathlib import Path

from autograder.errors import UnprotectedError
from autograder.paths import HARNESS_ROOT, on_gradescope
from autograder.sandbox.mounts import SYSTEM_DIRS

PROBE_SECONDS = 30.0
# Runs the worker's own confinement, then reports what the view shows of the given paths.
PROBE = ("import json, os, sys\n"
         "sys.path.insert(0, sys.argv[1])\n"
         "from autograder.sandbox.confine import Confinement\n"
         "try:\n"
         "    Confinement.from_data(json.loads(sys.argv[2])).apply()\n"
         "except OSError as exc:\n"
         "    print(json.dumps({'error': (exc.strerror or str(exc)) + (f': {exc.filename}' if exc.filename else '')}))\n"
         "    sys.exit(0)\n"
         "absent, present = json.loads(sys.argv[3]), json.loads(sys.argv[4])\n"
         "print(json.dumps({'shown': [p for p in absent if os.path.lexists(p)],\n"
         "                  'lacking': [p for p in present if not os.access(p, os.R_OK)]}))\n")
RISK = ("student code could read the reference solution, the hidden tests, the reference answers and "
        "other submissions, and use or print them")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _both(path: str | Path) -> list[str]:
    """A path as named and as resolved (a link on the way: the view needs both)."""
    named, real = os.path.abspath(path), os.path.realpath(path)
    return [named] if named == real else [named, real]


def interpreter_paths() -> list[str]:
    """The Python that runs workers: its prefixes, the virtual environment, their packages."""
    found = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, sys.executable,
             *site.getsitepackages()]
    return [p for path in found if os.path.exists(path) for p in _both(path)]


def minimal(paths: list[str], covers: list[str]) -> list[str]:
    """``paths`` without those another one (or a system folder) already shows, in order;
    a path under a cover inside the one that shows it stays, since the cover hides it."""
    kept: list[str] = []
    for path in dict.fromkeys(paths):
        shown_by = [r for r in (*SYSTEM_DIRS, *kept) if _under(path, r)]
        if any(not any(_under(c, r) and _under(path, c) and c != r for c in covers) for r in shown_by):
            continue
        if path != "/":
            kept.append(path)
    return kept


def plan(mountpoint: Path, reads: list[str], covers: list[str], user_namespace: bool,
         scratch: Path | None = None) -> dict:
    """The plain-data plan ``autograder.sandbox.mounts.enter_view`` builds (``scratch``: writable, and
    the worker's working folder)."""
    covers = list(dict.fromkeys(os.path.abspath(c) for c in covers))
    return {"mountpoint": str(mountpoint), "read": minimal(reads, covers), "cover": covers,
            "write": _both(scratch) if scratch is not None else [], "cwd": str(scratch) if scratch else "/",
            "user_namespace": user_namespace}


def for_worker(base: dict, scratch: Path) -> dict:
    """A run's plan, ``base``, for the worker whose scratch folder is ``scratch``."""
    return {**base, "write": _both(scratch), "cwd": str(scratch)}


def probe(code_root: Path, confinement: dict, absent: list[str], present: list[str]) -> str | None:
    """None if a process confined by ``confinement`` (plain data, with a view) sees every path
    of ``present`` and none of ``absent``; else why not, in a few words."""
    argv = [sys.executable, "-I", "-S", "-c", PROBE, str(code_root), json.dumps(confinement),
            json.dumps(absent), json.dumps(present)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_SECONDS, cwd="/",
                              env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"building a private view took more than {PROBE_SECONDS:g} s"
    try:
        seen = json.loads(proc.stdout)
    except ValueError:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        return f"the probe exited with status {proc.returncode}{': ' + tail if tail else ''}"
    if "error" in seen:
        return seen["error"]
    if seen["shown"]:
        return f"the private view still shows {seen['shown'][0]}"
    if seen["lacking"]:
        return f"the private view lacks {seen['lacking'][0]}"
    return None


def run_view(workdir: Path, runtime: Path, store: Path, checkpoints: list[Path], hidden: tuple[Path, Path],
             uid: int | None, gid: int | None) -> tuple[dict | None, str | None]:
    """The view of one grading run's student workers, tried once as their user: (plan, None), or
    (None, why this machine cannot build it).  ``hidden`` is the harness root and Gradescope's root."""
    from autograder.sandbox.confine import Confinement

    harness, gradescope = hidden
    mountpoint = workdir / "view"
    mountpoint.mkdir(mode=0o700)
    reads = interpreter_paths() + [str(runtime), str(store)] + [p for c in checkpoints for p in _both(c)]
    view = plan(mountpoint, reads, [str(harness), str(workdir), str(gradescope)], user_namespace=os.geteuid() != 0)
    absent = [str(harness / p) for p in ("autograder", "tests_hidden", "reference_solution", ".cache")]
    absent += [str(mountpoint), str(gradescope / "submission"), str(gradescope / "results")]
    problem = probe(runtime, Confinement(uid=uid, gid=gid, view=view).as_data(), absent,
                    [str(runtime / "autograder" / "sandbox" / "worker.py"), str(store)])
    return (view, None) if problem is None else (None, problem)


def machine_problem(harness_root: Path, uid: int | None = None, gid: int | None = None) -> str | None:
    """Why this machine cannot give student workers a private view (None: it can), tried in a
    throwaway folder with the interpreter alone."""
    from autograder.sandbox.confine import Confinement

    with tempfile.TemporaryDirectory(prefix="ag-view-probe-") as tmp:
        mountpoint = Path(tmp) / "view"
        mountpoint.mkdir()
        view = plan(mountpoint, interpreter_paths(), [str(harness_root), tmp], os.geteuid() != 0)
        confinement = Confinement(uid=uid, gid=gid, view=view).as_data()
        return probe(harness_root, confinement, [str(harness_root / "autograder"), tmp + "/view"],
                     [os.path.realpath(sys.executable)])


def check_here(unsafe: bool) -> str | None:
    """Before a staff command grades: raise UnprotectedError where student code could read the
    harness's files here, unless ``unsafe``; then return what it could read (None: nothing)."""
    from autograder.sandbox.access import closed_to_workers
    from autograder.sandbox.identity import worker_users

    privileged = os.geteuid() == 0
    users = worker_users() if privileged else []
    closed = closed_to_workers() if users else None
    worker_user = bool(users) and closed is None
    problem = machine_problem(HARNESS_ROOT) if worker_user or not privileged else None
    exposed = exposure(privileged, worker_user, closed, problem,
                       gradescope_locked=privileged and on_gradescope())  # grade locks it first
    if exposed is not None and not unsafe:
        raise UnprotectedError(refusal(exposed))
    return exposed


def exposure(privileged: bool, worker_user: bool, closed: Path | None, view_problem: str | None,
             gradescope_locked: bool) -> str | None:
    """What lets student code read the harness's files here (None: nothing)."""
    if privileged and not worker_user:
        why = (f"the worker users cannot reach {closed} (a folder on its way is closed to other users)" if closed
               else "no worker user exists (run ./setup.sh as root)")
        return f"student code would run as root: {why}; it could read and change everything"
    if view_problem is None or gradescope_locked:
        return None
    if "unshare" in view_problem:
        what = "no mount namespaces" if privileged else "no mount namespaces (not root, and no user namespaces)"
    else:
        what = "its private view could not be built"
    return f"cannot hide the harness tree from student code here: {what}: {view_problem}"


def refusal(exposed: str) -> str:
    fix = "pass --unsafe to grade anyway" if exposed.startswith("student code would run as root") else \
        "run as root (after ./setup.sh), or pass --unsafe to grade anyway"
    return f"{exposed}; {RISK}. To grade here, {fix}"
