"""Find and kill every process a worker started, and remove the files a worker user left behind.

Process groups are not enough: student code can call ``setsid`` and double-fork.  The harness
therefore makes itself a *child subreaper*, so an orphaned descendant of a worker is re-parented
to the harness instead of to init, and is found again by walking ``/proc``.  When workers run
as a dedicated user (the harness is root), every process holding that user's id is killed too.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.errors import AutograderError

PR_SET_CHILD_SUBREAPER = 36
# Where an unprivileged user can create files that outlive its processes.
WORLD_WRITABLE_ROOTS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path("/run/lock"))
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str
    uids: frozenset[int]    # real, effective, saved and filesystem user ids
    threads: int = 1

    @property
    def dead(self) -> bool:
        return self.state in ("Z", "X")


def set_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux 3.4+)."""
    return _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _read_proc(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return Proc(pid, int(fields["PPid"]), fields["State"].split()[0],
                    frozenset(int(u) for u in fields["Uid"].split()), int(fields.get("Threads", 1)))
    except (KeyError, ValueError, IndexError):
        return None


def scan() -> dict[int, Proc]:
    """Every process visible in /proc."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            proc = _read_proc(int(name))
            if proc is not None:
                procs[proc.pid] = proc
    return procs


def descendants(procs: dict[int, Proc], roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found, stack = set(), list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return marker in fh.read().split(b"\0")
    except OSError:
        return False


@dataclass(frozen=True)
class Target:
    """What counts as a leftover: descendants of ``roots``, orphans re-parented to us that carry
    ``uid`` or the environment ``marker``, and (``whole_uid``) every process of ``uid``."""

    roots: frozenset[int] = frozenset()
    uid: int | None = None
    marker: bytes | None = None
    whole_uid: bool = False
    spare: frozenset[int] = frozenset()   # live workers that must survive (e.g. the roots themselves)

    def victims(self, procs: dict[int, Proc]) -> set[int]:
        me = os.getpid()
        found = descendants(procs, set(self.roots))
        for p in procs.values():
            ours = self.uid is not None and self.uid in p.uids
            if ours and self.whole_uid:
                found.add(p.pid)
            elif p.ppid == me and (ours or self.marker is not None and _has_marker(p.pid, self.marker)):
                found |= {p.pid} | descendants(procs, {p.pid})
        return {pid for pid in found if pid != me and pid not in self.spare}


def kill(target: Target, patience: float = 10.0) -> int:
    """SIGKILL every leftover until none is alive; reap the ones re-parented to us.

    Returns how many processes were killed; raises AutograderError if some survive ``patience``
    seconds (a process stuck in the kernel), so that no results are written while they live.
    """
    killed: set[int] = set()
    deadline = time.monotonic() + patience
    delay = 0.0
    while True:
        procs = scan()
        victims = target.victims(procs)
        _reap({pid for pid in victims if procs[pid].dead and procs[pid].ppid == os.getpid()})
        alive = {pid for pid in victims if not procs[pid].dead}
        if not alive:
            return len(killed)
        if time.monotonic() > deadline:
            raise AutograderError(f"worker processes {sorted(alive)} survived SIGKILL for {patience:g} s")
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(delay)
        delay = min(0.05, delay + 0.005)


def _reap(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def remove_files_of(uid: int, roots: tuple[Path, ...] = WORLD_WRITABLE_ROOTS, budget: int = 200_000) -> int:
    """Delete what ``uid`` created in the world-writable places it could reach; returns the count.

    Only directories the user could write to are searched (world-writable ones and its own), so
    the walk stays small; nothing is followed through a symbolic link.
    """
    removed, seen = 0, 0
    stack = [root for root in roots if root.is_dir() and not root.is_symlink()]
    while stack and seen < budget:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_uid == uid:
                removed += _remove(Path(entry.path), info)
            elif stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IWOTH:
                stack.append(Path(entry.path))
    return removed


def _remove(path: Path, info: os.stat_result) -> int:
    try:
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError:
        return 0
    return 1
