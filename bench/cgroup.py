"""Run a command inside a fresh cgroup (v1) with Gradescope's limits: memory and a CPU quota.

``Container(memory_bytes, cpus)`` creates a memory cgroup below this process's own (so the
limit applies under whatever holds us) and a cpu cgroup, and ``run(argv)`` starts the command
inside both: a small shell writes its own pid to each ``cgroup.procs`` and then execs the
command, so every process it starts is held by the limits from its first instruction.  While it
runs, the cgroup's ``memory.stat`` is sampled for the anonymous (``total_rss``) and page-cache
(``total_cache``) parts of the usage; afterwards ``memory.max_usage_in_bytes``,
``memory.failcnt`` and the kernel's ``oom_kill`` count are read.  Leaving the ``with`` block
kills whatever is left in the cgroups (processes this helper started) and removes them, on
failure too.

``unavailable()`` says why cgroups cannot be made here (not root, no cgroup v1 memory or cpu
controller, a read-only hierarchy), for tests to skip with that reason.

    with Container(768 * 10**6, 0.5) as box:
        run = box.run([sys.executable, "-m", "autograder", "grade", "--submission", "DIR"])
    print(run.wall, run.max_usage, run.peak_rss, run.oom_kills)
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000
MiB = 1024 ** 2
# Writes its own pid into each cgroup named before "--", then becomes the command after it.
_ENTER = 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 125; shift; done; shift; exec "$@"'


class CgroupUnavailable(RuntimeError):
    """Cgroups cannot be created here; the message says why."""


def _own_cgroup(controller: str) -> str | None:
    """This process's path in a v1 hierarchy (``/proc/self/cgroup``), None without it."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return None


def _parent(controller: str) -> Path:
    own = _own_cgroup(controller)
    if own is None:
        raise CgroupUnavailable(f"no cgroup v1 {controller} controller (see /proc/self/cgroup)")
    base = CGROUP_ROOT / controller
    if not (base / "cgroup.procs").is_file():
        raise CgroupUnavailable(f"the cgroup v1 {controller} hierarchy is not mounted at {base}")
    return base / own.lstrip("/")


def unavailable() -> str | None:
    """Why a limited cgroup cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "creating cgroups needs root"
    try:
        for controller in ("memory", "cpu"):
            parent = _parent(controller)
            probe = parent / f"ag-probe-{secrets.token_hex(4)}"
            try:
                probe.mkdir()
            except OSError as exc:
                raise CgroupUnavailable(f"cannot create a cgroup under {parent}: {exc.strerror}") from None
            probe.rmdir()
    except CgroupUnavailable as exc:
        return str(exc)
    return None


def swap_bytes() -> int:
    """Swap configured on this machine (a memory limit is only a memory limit without it)."""
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("SwapTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def drop_file_cache(roots: list[Path]) -> int:
    """Evict the page cache of every file under ``roots`` (pages a running process maps stay), so
    that a run reading them afterwards is charged for them, as a fresh container is; returns the
    number of files."""
    count = 0
    for root in roots:
        for path in Path(root).rglob("*"):
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            finally:
                os.close(fd)
    return count


def _read_stat(path: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}
    except (OSError, ValueError):
        return {}


@dataclass
class Run:
    """One command's run in the container."""

    returncode: int
    wall: float                 # seconds
    cpu: float                  # user + system seconds of everything the command started
    stdout: str
    stderr: str
    max_usage: int              # memory.max_usage_in_bytes: anonymous memory and page cache
    peak_rss: int               # highest sampled total_rss (anonymous memory)
    peak_cache: int             # total_cache at the sample where total_rss peaked
    failcnt: int                # times the usage hit the limit (page cache reclaimed, or worse)
    oom_kills: int              # processes the kernel killed for the limit


@dataclass
class Container:
    memory_bytes: int
    cpus: float | None = 0.5    # None: no CPU quota
    period: float = 0.05        # seconds between memory.stat samples
    name: str = field(default_factory=lambda: f"ag-test-{secrets.token_hex(4)}")

    def __post_init__(self) -> None:
        self.memory: Path | None = None
        self.cpu: Path | None = None

    def __enter__(self) -> "Container":
        why = unavailable()
        if why is not None:
            raise CgroupUnavailable(why)
        try:
            self.memory = _parent("memory") / self.name
            self.memory.mkdir()
            (self.memory / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
            if (self.memory / "memory.memsw.limit_in_bytes").exists():  # memory plus swap: no way around it
                (self.memory / "memory.memsw.limit_in_bytes").write_text(str(self.memory_bytes))
            if self.cpus is not None:
                self.cpu = _parent("cpu") / self.name
                self.cpu.mkdir()
                (self.cpu / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
                (self.cpu / "cpu.cfs_quota_us").write_text(str(round(self.cpus * CFS_PERIOD_US)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for group in (self.memory, self.cpu):
            if group is not None and group.is_dir():
                _empty_and_remove(group)
        self.memory = self.cpu = None

    def counter(self, name: str) -> int:
        """``memory.failcnt``, ``memory.max_usage_in_bytes`` ... of the memory cgroup, or the
        ``oom_kill`` line of ``memory.oom_control`` for ``oom_kill``."""
        if name == "oom_kill":
            return _read_stat(self.memory / "memory.oom_control").get("oom_kill", 0)
        return int((self.memory / name).read_text())

    def run(self, argv: list[str], timeout: float = 900.0, **popen) -> Run:
        """Run ``argv`` inside the cgroups; its output is captured (text)."""
        groups = [str(g) for g in (self.memory, self.cpu) if g is not None]
        oom_before = self.counter("oom_kill")
        peaks = {"rss": 0, "cache": 0}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(self.period):
                stat = _read_stat(self.memory / "memory.stat")
                if stat.get("total_rss", 0) > peaks["rss"]:
                    peaks["rss"], peaks["cache"] = stat["total_rss"], stat.get("total_cache", 0)

        sampler = threading.Thread(target=sample, name="cgroup-sampler", daemon=True)
        before = os.times()
        started = time.monotonic()
        sampler.start()
        try:
            proc = subprocess.run(["sh", "-c", _ENTER, "sh", *groups, "--", *argv], capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL, **popen)
        finally:
            done.set()
            sampler.join()
        wall = time.monotonic() - started
        after = os.times()
        return Run(proc.returncode, wall, after.children_user + after.children_system
                   - before.children_user - before.children_system, proc.stdout, proc.stderr,
                   self.counter("memory.max_usage_in_bytes"), peaks["rss"], peaks["cache"],
                   self.counter("memory.failcnt"), self.counter("oom_kill") - oom_before)


def _empty_and_remove(group: Path, patience: float = 10.0) -> None:
    """Kill the processes left in ``group`` (started by ``Container.run``), then remove it."""
    until = time.monotonic() + patience
    while True:
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            group.rmdir()
            return
        except OSError:
            if time.monotonic() > until:
                raise
            time.sleep(0.05)
