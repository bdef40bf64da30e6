"""Who student code runs as, what it can read, and what is cleaned up after it.

When the harness runs as root (Gradescope, CI) each grading run takes one of the unprivileged
users ``ag-worker-0`` ... that ``setup.sh`` creates, exclusively (a lock file per user), so two
grades on one machine never share a user.  Student workers run as that user in their own
scratch folder; the modules a worker needs are copied into a root-owned, world-readable
*runtime* folder.  Each student worker sees a private view of the file system
(``autograder.sandbox.view``) holding that runtime, the Python environment, the model files and its
scratch folder, and nothing of the harness tree, the run's other folders or other submissions;
without root it builds the view in a user namespace.  Where the machine can build no view,
grading refuses unless ``unsafe`` (on Gradescope the locked tree stands in for it).  On
Gradescope the tree, the submission and the results folder are also locked at every grade
(``autograder.sandbox.locking``; elsewhere only on request: ``python -m autograder.sandbox.isolation lock DIR``).

Without root nothing can switch users: the harness says which protections are off.
"""
from __future__ import annotations

import argparse
import ast
import os
import resource
import secrets
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from autograder.sandbox import reaper, view
from autograder.sandbox.confine import Confinement, net_namespace
from autograder.errors import AutograderError, UnprotectedError
from autograder.sandbox.forkserver import ForkServer, PreForked
from autograder.sandbox.identity import Identity, acquire_identity, try_identity, worker_users  # noqa: F401 - re-exported
from autograder.sandbox.locking import lock_tree, tree_locked, unlock_tree  # noqa: F401 - re-exported

HARNESS_ROOT = Path(__file__).resolve().parents[2]
GRADESCOPE = Path("/autograder")
# Modules are found from these by following their ``autograder`` imports; data files are listed.
RUNTIME_ENTRY = ("autograder.sandbox.worker", "autograder.sandbox.forkserver")
RUNTIME_DATA = ("autograder/q6/data/natural_train.txt",)
MARKER_VAR = "AUTOGRADER_WORKER"
STORE_VAR = "AUTOGRADER_STORE"     # the folder of shared read-only files, in a worker's environment


def on_gradescope() -> bool:
    return HARNESS_ROOT == GRADESCOPE / "source" and (GRADESCOPE / "results").is_dir()


# -- the worker's runtime ------------------------------------------------------------------
def _module_path(module: str) -> Path:
    base = HARNESS_ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == "autograder"}


def runtime_files(drivers: str) -> list[str]:
    """Paths, relative to the harness root, of what a worker imports or reads."""
    todo, modules = [*RUNTIME_ENTRY, drivers], set()
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # the packages on the way, then the module itself
            prefix = ".".join(parts[:i])
            if prefix not in modules and _module_path(prefix).is_file():
                modules.add(prefix)
                todo.extend(_imports(_module_path(prefix)))
    files = {str(_module_path(m).relative_to(HARNESS_ROOT)) for m in modules}
    return sorted(files | set(RUNTIME_DATA))


def build_runtime(dest: Path, drivers: str, models: dict | None = None) -> Path:
    """A root-owned, world-readable copy of the worker's runtime (no tests, no reference).

    A checkpoint named by a path relative to the harness is linked at the same place in the
    runtime, so a worker resolving it against its own root finds the (readable) file."""
    import py_compile

    for rel in runtime_files(drivers):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HARNESS_ROOT / rel, target)
        if target.suffix == ".py":
            py_compile.compile(str(target), doraise=True)
    for named in _checkpoints(models or {}):
        if not named.is_absolute() and ".." not in named.parts:
            (dest / named).parent.mkdir(parents=True, exist_ok=True)
            (dest / named).symlink_to(HARNESS_ROOT / named)
            _expose(HARNESS_ROOT / named)
    for path in [dest, *dest.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


def _expose(path: Path) -> None:
    """Let worker users read one public file the harness names for them (a checkpoint's weights):
    read on the file, traverse on the directories leading to it; nothing else changes."""
    if os.geteuid() != 0 or not path.is_file():
        return
    for parent in missing_traverse([path]):
        parent.chmod(os.stat(parent).st_mode | 0o001)
    path.chmod(os.stat(path).st_mode | 0o004)


def _checkpoints(models: dict) -> list[Path]:
    """The checkpoint paths of an assignment's models, as named (relative ones: to the harness root)."""
    return [Path(m["path"]) for m in models.values()
            if isinstance(m, dict) and m.get("kind") == "checkpoint" and isinstance(m.get("path"), str)]


def checkpoint_paths() -> tuple[Path, ...]:
    """Checkpoint files named by the assignment: workers read them, so a lock leaves them readable."""
    from autograder.config import load_assignment

    return tuple((p if p.is_absolute() else HARNESS_ROOT / p).resolve() for p in _checkpoints(load_assignment().models))


def prepare_gradescope() -> list[str]:
    """Lock the tree, the submission and the results folder; root on Gradescope only."""
    lock_tree(HARNESS_ROOT, checkpoint_paths())
    for path, mode in ((GRADESCOPE / "results", 0o700), (GRADESCOPE / "submission", 0o700),
                       (GRADESCOPE / "submission_metadata.json", 0o600)):
        if path.exists() and not path.is_symlink():
            path.chmod(mode)
    GRADESCOPE.chmod(0o711)
    return ["isolation: locked /autograder/source, /autograder/submission and /autograder/results"]


def missing_traverse(paths: list[Path]) -> list[Path]:
    """Directories on the way to ``paths`` (as named and as resolved) that other users cannot enter."""
    lacking = []
    for path in paths:
        for candidate in (Path(os.path.abspath(path)), Path(path).resolve()):
            for parent in reversed(candidate.parents):
                if os.stat(parent).st_mode & 0o001 == 0 and parent not in lacking:
                    lacking.append(parent)
    return lacking


def closed_to_workers(models: dict | None = None) -> Path | None:
    """The first thing a worker user must open but cannot (a folder on its way or its own mode
    is closed to other users): the interpreter, the venv's packages, a checkpoint; else None."""
    import site

    needs = [(Path(sys.executable), 0o001)] + [(Path(p), 0o005) for p in site.getsitepackages()]
    needs += [(p if p.is_absolute() else HARNESS_ROOT / p, 0o004) for p in _checkpoints(models or {})]
    for path, bits in needs:
        if path.exists() and (missing_traverse([path]) or os.stat(path).st_mode & bits != bits):
            return path
    return None


# -- one grading run -----------------------------------------------------------------------
_umask_lock = threading.Lock()
_umask_state = {"runs": 0, "saved": 0o022}


def _private_umask(entering: bool) -> None:
    """While any grading run is open, whatever the harness creates (caches, logs, results) is
    private to it: the worker user must not read what a test computed for another one."""
    with _umask_lock:
        if entering:
            if _umask_state["runs"] == 0:
                _umask_state["saved"] = os.umask(0o077)
            _umask_state["runs"] += 1
        else:
            _umask_state["runs"] -= 1
            if _umask_state["runs"] == 0:
                os.umask(_umask_state["saved"])


@dataclass
class Isolation:
    """The isolation of one grading run: its worker user, runtime folder and leftover sweep."""

    workdir: Path
    runtime: Path
    identity: Identity | None
    privileged: bool
    marker: str = field(default_factory=lambda: secrets.token_hex(12))
    network: str = "unknown"            # "off" / "on", learnt from the first student worker
    closed: Path | None = None          # what kept workers from running as the worker user
    server: ForkServer | None = None    # forks this run's workers (started with the run)
    shared_torch: bool = False          # the server was forked before the harness (autograder.sandbox.prefork)
    finished: bool = False
    view: dict | None = None            # the plan of student workers' private view (None: no view)
    view_problem: str | None = None     # why this machine could not build that view
    exposed: str | None = None          # what lets student code read the harness's files (None: nothing)

    @classmethod
    def start(cls, workdir: Path, drivers: str, require: bool | None = None,
              models: dict | None = None, prefork: PreForked | None = None, unsafe: bool = False) -> "Isolation":
        """Take a worker user, build the runtime and choose the view; refuse (UnprotectedError) where
        student code could read the harness's files, unless ``unsafe``."""
        privileged = os.geteuid() == 0
        require = on_gradescope() if require is None else require
        identity = acquire_identity() if privileged else None
        closed = closed_to_workers(models) if identity is not None else None
        if closed is not None:
            identity.release()
            identity = None
        if require and identity is None:
            raise AutograderError("isolation is required but " + (f"the worker users cannot reach {closed}" if closed
                                  else "no worker user exists") + " (run ./setup.sh as root)")
        try:
            reaper.set_subreaper()
            if privileged:
                _private_umask(True)
            workdir.chmod(0o711)
            (workdir / "store").mkdir(mode=0o755)
            (workdir / "store").chmod(0o755)
            iso = cls(workdir, build_runtime(workdir / "runtime", drivers, models), identity, privileged,
                      closed=closed)
            if prefork is not None:
                iso.marker = prefork.marker  # what the pre-forked server's environment carries
            if identity is not None:
                iso.sweep()  # whatever a crashed earlier run may have left
            iso.choose_view(models or {})
            if iso.exposed is not None and not unsafe:
                raise UnprotectedError(view.refusal(iso.exposed))
            iso.server = ForkServer(iso.runtime, iso.environment(iso.runtime), (*RUNTIME_ENTRY, drivers),
                                    workdir / "forkserver.log")
            iso.shared_torch = iso.server.start(prefork)  # its imports overlap the harness's own start
        except BaseException:
            if identity is not None:
                identity.release()
            if privileged:
                _private_umask(False)
            raise
        return iso

    def choose_view(self, models: dict) -> None:
        """Give student workers a private view if this machine builds one right (tried now, as the
        worker user); else say what student code could read."""
        if not self.privileged or self.identity is not None:
            checkpoints = [c if c.is_absolute() else HARNESS_ROOT / c for c in _checkpoints(models)]
            self.view, self.view_problem = view.run_view(
                self.workdir, self.runtime, self.store, checkpoints, (HARNESS_ROOT, GRADESCOPE),
                self.identity.uid if self.identity else None, self.identity.gid if self.identity else None)
        locked = self.privileged and on_gradescope() and tree_locked(HARNESS_ROOT)
        self.exposed = view.exposure(self.privileged, self.identity is not None, self.closed, self.view_problem,
                                     gradescope_locked=locked)

    def confinement(self, student: bool, rlimits: dict[int, tuple[int, int]],
                    scratch: Path | None = None) -> Confinement:
        """How a worker is confined; a student worker with a view needs its ``scratch`` folder."""
        as_user = student and self.identity is not None
        shown = None
        if student and self.view is not None:
            if scratch is None:
                raise AutograderError("a student worker's private view needs its scratch folder")
            shown = view.for_worker(self.view, scratch)
        return Confinement(rlimits=rlimits, uid=self.identity.uid if as_user else None,
                           gid=self.identity.gid if as_user else None, private_network=self.privileged,
                           view=shown)

    def forkserver(self) -> ForkServer:
        if self.server is None:
            raise OSError("this grading run is closed: it starts no more workers")
        return self.server

    def own(self, path: Path) -> None:
        """Give a student scratch folder to the worker user (and to nobody else)."""
        if self.identity is None:
            return
        for p in [path, *path.rglob("*")]:
            os.lchown(p, self.identity.uid, self.identity.gid)

    def environment(self, home: Path) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1", "TQDM_DISABLE": "1", MARKER_VAR: self.marker,
            STORE_VAR: str(self.store),
        }
        for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # machine-specific BLAS fixes
            if key in os.environ:
                env[key] = os.environ[key]
        return env

    @property
    def store(self) -> Path:
        """Files the harness writes once for every worker to map read-only (model weights)."""
        return self.workdir / "store"

    def process_limit(self, wanted: int) -> int:
        """RLIMIT_NPROC counts every process of a user: without a worker user, leave room for ours."""
        if self.identity is not None:
            return wanted
        mine = sum(p.threads for p in reaper.scan().values() if os.getuid() in p.uids)  # it counts threads
        hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        return mine + wanted if hard == resource.RLIM_INFINITY else min(mine + wanted, hard)

    def observe_worker(self, hello: dict) -> None:
        if self.network == "unknown" and hello.get("student"):
            same = hello.get("netns") == net_namespace()
            self.network = "on" if same else "off"

    def leftovers(self, roots: set[int], spare: set[int]) -> reaper.Target:
        uid = self.identity.uid if self.identity else None
        server = {self.server.pid} if self.server is not None and self.server.pid else set()
        return reaper.Target(frozenset(roots), uid, f"{MARKER_VAR}={self.marker}".encode(),
                             whole_uid=False, spare=frozenset(spare | server))

    def sweep(self) -> int:
        """Kill every process of this run's worker user and remove its files; returns the kills."""
        if self.identity is None:
            return reaper.kill(self.leftovers(set(), set()))
        killed = reaper.kill(reaper.Target(uid=self.identity.uid, whole_uid=True))
        reaper.remove_files_of(self.identity.uid)
        return killed

    def close(self) -> None:
        """End the run (once; closing again does nothing)."""
        if self.finished:
            return
        self.finished = True
        try:
            if self.server is not None:
                self.server.stop()
                self.server = None
            self.sweep()
        finally:
            if self.identity is not None:
                self.identity.release()
            if self.privileged:
                _private_umask(False)

    def report(self) -> list[str]:
        lines = []
        if self.identity is not None:
            lines.append(f"isolation: student code runs as {self.identity.name} (uid {self.identity.uid}), "
                         f"network {self.network}")
        if self.shared_torch:
            lines.append("fork server: forked before the harness started, so harness, server and workers share one torch")
        if self.view is not None:
            lines.append("isolation: files: student workers see a private view holding only the interpreter, the venv, "
                         "the worker runtime, the model store and their own scratch folder"
                         + ("" if self.privileged else " (built in a user namespace)"))
        elif self.exposed is None and self.view_problem is not None:
            lines.append(f"isolation: files: the harness tree is locked (Gradescope); no private view: {self.view_problem}")
        off = []
        if self.exposed is not None and self.privileged and self.identity is not None:
            off.append(f"files: {self.exposed} (graded with --unsafe)")
        if not self.privileged:
            why = f"; no private view: {self.view_problem}" if self.view_problem else ""
            reads = "" if self.view is not None else f"read what you can (hidden tests, reference solution{why}), "
            off.append(f"not running as root, so student code runs as this user: it can {reads}signal the grader "
                       "and keep the network; a leftover process that clears its environment and leaves its "
                       "session may survive")
        elif self.closed is not None:
            off.append(f"the worker users cannot reach {self.closed} (a folder on its way is closed to other "
                       "users), so student code runs as root with limits only")
        elif self.identity is None:
            off.append("no worker user (run ./setup.sh as root): student code runs as root with limits only")
        if self.network == "on" and self.privileged:
            off.append("network: this machine does not allow a private network namespace, so workers keep the network")
        if off:
            lines.append("isolation: protections off: " + "; ".join(off))
        return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.sandbox.isolation", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("lock", "unlock", "status", "traverse"))
    parser.add_argument("root", nargs="?", type=Path, default=HARNESS_ROOT)
    parser.add_argument("--grant", action="store_true", help="traverse: add o+x where it is missing")
    args = parser.parse_intermixed_args(argv)
    if args.action == "lock":
        lock_tree(args.root, checkpoint_paths() if args.root.resolve() == HARNESS_ROOT else ())
    elif args.action == "unlock":
        unlock_tree(args.root)
    elif args.action == "traverse":
        venv = args.root / ".venv"
        lacking = missing_traverse([venv / "bin" / "python", venv / "lib"])
        for path in lacking:
            if args.grant:
                path.chmod(os.stat(path).st_mode | 0o001)
            sys.stdout.write(f"{'granted' if args.grant else 'missing'} traverse (o+x) on {path}\n")
    status = {"users": [u.pw_name for u in worker_users()], "locked": tree_locked(args.root)}
    sys.stdout.write(f"{args.action}: {args.root}: worker users {status['users'] or 'none'}; "
                     f"tree {'locked' if status['locked'] else 'not locked'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
