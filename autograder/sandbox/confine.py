"""What a worker process is confined by, applied by the worker itself before it runs any student code.

``Confinement.apply`` runs in the freshly forked worker (``autograder.sandbox.forkserver``): resource
limits first, then (when the harness is root) a private network and IPC namespace, then a
student worker's private view of the file system (``autograder.sandbox.mounts``), then the switch to
the unprivileged worker user (or, in a user namespace, giving up its capabilities), then
``no_new_privs`` (setuid binaries gain nothing) and a parent-death signal (a worker never
outlives the harness).  It must not raise for an optional layer: the harness learns what held
from the worker's hello message (its user and network namespace), not from here.  The view is
not optional: a worker that cannot build it raises, and runs no student code.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
from dataclasses import dataclass, field

from autograder.sandbox.mounts import drop_capabilities, enter_view

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
# /proc/PID/oom_score_adj: in a container over its memory limit the kernel kills the process with
# the highest score; workers (1000: always first) before the fork server, the server before the
# harness (0), so the harness lives to say what happened.
WORKER_OOM_SCORE = 1000
SERVER_OOM_SCORE = 500
_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_unshare = _libc.unshare


@dataclass(frozen=True)
class Confinement:
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)
    uid: int | None = None          # switch to this user (and ``gid``, no supplementary groups)
    gid: int | None = None
    private_network: bool = False   # try unshare(CLONE_NEWNET | CLONE_NEWIPC); needs root
    umask: int = 0o077
    oom_score_adj: int | None = WORKER_OOM_SCORE  # the kernel's out-of-memory killer takes workers first
    view: dict | None = None        # the plan of a private view of the file system (autograder.sandbox.view)

    def as_data(self) -> dict:
        """Plain data for the fork server's request (``from_data`` reads it back)."""
        return {"rlimits": [[k, s, h] for k, (s, h) in self.rlimits.items()], "uid": self.uid, "gid": self.gid,
                "private_network": self.private_network, "umask": self.umask, "oom_score_adj": self.oom_score_adj,
                "view": self.view}

    @classmethod
    def from_data(cls, data: dict) -> "Confinement":
        return cls(rlimits={int(k): (int(s), int(h)) for k, s, h in data["rlimits"]}, uid=data["uid"],
                   gid=data["gid"], private_network=bool(data["private_network"]), umask=int(data["umask"]),
                   oom_score_adj=data.get("oom_score_adj"), view=data.get("view"))

    def apply(self) -> None:
        """Runs in the forked worker, before it imports anything of the student's."""
        os.umask(self.umask)
        if self.oom_score_adj is not None:
            raise_oom_score(self.oom_score_adj)
        for which, (soft, hard) in self.rlimits.items():
            _set_limit(which, soft, hard)
        if self.private_network and _unshare(CLONE_NEWNET | CLONE_NEWIPC) != 0:
            _unshare(CLONE_NEWNET)
        if self.view is not None:
            enter_view(self.view)  # raises OSError: no student code runs without its view
        if self.uid is not None:
            os.setgroups([])
            os.setresgid(self.gid, self.gid, self.gid)
            os.setresuid(self.uid, self.uid, self.uid)
        elif self.view is not None and self.view.get("user_namespace"):
            drop_capabilities()
        _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        die_with_parent()  # after the uid switch, which clears it


def die_with_parent() -> None:
    """SIGKILL this process when the thread that is its parent ends."""
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _set_limit(which: int, soft: int, hard: int) -> None:
    """setrlimit, or as close as an unprivileged process may go: never above the current hard limit."""
    try:
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError):
        current = resource.getrlimit(which)[1]
        inf = resource.RLIM_INFINITY
        soft = current if soft == inf else soft if current == inf else min(soft, current)
        resource.setrlimit(which, (soft, current))


def raise_oom_score(score: int) -> None:
    """Make this process a likelier victim of the out-of-memory killer (raising needs no privilege)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write(str(score))
    except OSError:
        pass  # no /proc, or a lower score than ours was asked: the kernel keeps its choice


def net_namespace(pid: int | str = "self") -> int | None:
    """The inode of a process's network namespace (equal inodes: the same network)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def limit_cpu(pid: int, seconds: float, privileged: bool) -> None:
    """Let ``pid`` use ``seconds`` more CPU time: SIGXCPU then, SIGKILL 2 s later (root only:
    an unprivileged harness cannot raise a hard limit again, so it sets the soft one alone)."""
    try:
        soft = int(cpu_seconds(pid) + seconds) + 1
        hard = soft + 2 if privileged else resource.RLIM_INFINITY
        resource.prlimit(pid, resource.RLIMIT_CPU, (soft, hard))
    except (OSError, ValueError):
        pass  # the worker just died; the call will report it
