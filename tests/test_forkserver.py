"""Workers are forked from one server per grading run: children of the harness, holding nothing of the server's."""
from __future__ import annotations

import os
import stat

import pytest

from autograder import isolation
from autograder.config import load_assignment
from autograder.context import GradingContext, present_files
from autograder.errors import StudentCrash
from conftest import REFERENCE

EXITS_ON_IMPORT = "\nimport os\nos._exit(3)\n"


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line for line in fh if line.startswith("PPid:")).split()[1])


def _open_files(pid: int) -> list[str]:
    """What the process's descriptors point at (pipes, files, sockets)."""
    return [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]


@pytest.fixture
def context():
    ctx = GradingContext(load_assignment(), present_files(REFERENCE))
    try:
        yield ctx
    finally:
        ctx.close()


def test_a_worker_is_the_harness_child_and_holds_no_socket_of_the_server(context):
    worker = context._worker("student", context.submission, "likelihood")
    worker.ensure_started()
    pid = worker.proc.pid
    assert _parent(pid) == os.getpid()
    files = _open_files(pid)
    assert not [f for f in files if f.startswith("socket:")], files
    assert len(files) == 5, files  # stdin (/dev/null), output log twice, request and answer pipes
    if os.geteuid() == 0 and isolation.worker_users():
        assert os.stat(f"/proc/{pid}").st_uid == context.isolation.identity.uid
        assert os.stat(f"/proc/{context.isolation.server.pid}").st_uid == 0
    server = context.isolation.server.pid
    context.close()
    assert not os.path.exists(f"/proc/{server}"), "the fork server outlived its grading run"
    assert not os.path.exists(f"/proc/{pid}")


def test_a_forked_workers_exit_status_reaches_the_feedback(context, tmp_path):
    (tmp_path / "likelihood.py").write_text((REFERENCE / "likelihood.py").read_text() + EXITS_ON_IMPORT)
    context.submission = {**context.submission, "likelihood.py": tmp_path / "likelihood.py"}
    worker = context._worker("student", context.submission, "likelihood")
    with pytest.raises(StudentCrash, match="exited with status 3"):
        worker.call("log_likelihood", {}, timeout=60)
    assert worker.proc is None
    worker.ensure_started()  # a new worker from the same server
    assert _parent(worker.proc.pid) == os.getpid()


def test_the_server_log_is_private_to_the_harness(context):
    log = context.isolation.server.log
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600


def test_closing_a_run_twice_changes_nothing(tmp_path):
    before = os.umask(0o022)
    try:
        first = GradingContext(load_assignment(), present_files(REFERENCE))
        first.close()
        first.close()
        second = GradingContext(load_assignment(), present_files(REFERENCE))
        try:
            probe = tmp_path / "probe"
            probe.write_text("written while grading")
            private = os.stat(probe).st_mode & 0o077 == 0
        finally:
            second.close()
        assert private == (os.geteuid() == 0)  # a root harness's files are its own while grading
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)
