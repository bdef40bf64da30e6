"""The unprivileged users student code runs as, one per concurrent grading run.

``setup.sh`` creates ``ag-worker-0`` ... ``ag-worker-3``; a grading run holds one exclusively
through a lock file in a folder only root can write, so two grades on one machine never share a
user (and cannot signal, trace or read each other's workers).  The lock is an ``flock``: it
goes away with the process that held it, whatever happened to that process.
"""
from __future__ import annotations

import errno
import fcntl
import os
import pwd
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.errors import AutograderError

WORKER_USER_PREFIX = "ag-worker-"
MAX_WORKER_USERS = 16
LOCK_DIRS = (Path("/run/autograder"), Path("/var/tmp/autograder-locks"))


@dataclass
class Identity:
    name: str
    uid: int
    gid: int
    lock_fd: int

    def release(self) -> None:
        if self.lock_fd >= 0:
            os.close(self.lock_fd)  # closing drops the flock
            self.lock_fd = -1


def worker_users() -> list[pwd.struct_passwd]:
    users = []
    for i in range(MAX_WORKER_USERS):
        try:
            users.append(pwd.getpwnam(f"{WORKER_USER_PREFIX}{i}"))
        except KeyError:
            continue
    return [u for u in users if u.pw_uid != 0 and u.pw_gid != 0]


def _lock_dir() -> Path:
    """A folder for the users' lock files that only root can write."""
    for path in LOCK_DIRS:
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o022:
            return path
    raise AutograderError(f"none of {[str(p) for p in LOCK_DIRS]} is a folder only root can write")


def try_identity(user: pwd.struct_passwd) -> Identity | None:
    """``user`` for this run alone, or None while another grading run holds it."""
    fd = os.open(_lock_dir() / f"{user.pw_name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return None
    return Identity(user.pw_name, user.pw_uid, user.pw_gid, fd)


def acquire_identity(wait: float = 600.0) -> Identity | None:
    """An unprivileged worker user no other grading run holds; None if setup.sh created none."""
    users = worker_users()
    if not users:
        return None
    deadline = time.monotonic() + wait
    while True:
        for user in users:
            identity = try_identity(user)
            if identity is not None:
                return identity
        if time.monotonic() > deadline:
            raise AutograderError(f"all {len(users)} worker users are busy with other grading runs")
        time.sleep(0.2)
