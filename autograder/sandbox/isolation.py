"""Who student code runs as, and what is cleaned up after it: one grading run's isolation.

When the harness runs as root (Gradescope, CI) each grading run takes one of the unprivileged
users ``ag-worker-0`` ... that ``setup.sh`` creates, exclusively (``autograder.sandbox.identity``),
so two grades on one machine never share a user.  Student workers run as that user in their own
scratch folder, from a root-owned copy of the modules they need (``autograder.sandbox.runtime``),
and see a private view of the file system (``autograder.sandbox.view``) holding that runtime, the
Python environment, the model files and their scratch folder, and nothing of the harness tree, the
run's other folders or other submissions; without root the view is built in a user namespace.
Where the machine can build no view, grading refuses unless ``unsafe`` (on Gradescope the locked
tree stands in for it: ``autograder.sandbox.locking``).

Without root nothing can switch users: the harness says which protections are off.
"""
from __future__ import annotations

import os
import resource
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from autograder.errors import AutograderError, UnprotectedError
from autograder.paths import GRADESCOPE, HARNESS_ROOT, on_gradescope
from autograder.sandbox import reaper, view
from autograder.sandbox.access import checkpoints_of, closed_to_workers
from autograder.sandbox.confine import Confinement, net_namespace
from autograder.sandbox.forkserver import ForkServer, PreForked
from autograder.sandbox.identity import Identity, acquire_identity
from autograder.sandbox.locking import tree_locked
from autograder.sandbox.runtime import RUNTIME_ENTRY, build_runtime
from autograder.sandbox.worker import STORE_VAR

MARKER_VAR = "AUTOGRADER_WORKER"


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
            checkpoints = [c if c.is_absolute() else HARNESS_ROOT / c for c in checkpoints_of(models)]
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
