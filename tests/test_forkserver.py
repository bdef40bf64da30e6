"""Workers are forked from one server per grading run: children of the harness, holding nothing of the server's."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from autograder.sandbox import identity
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
    ctx = GradingContext(load_assignment(), present_files(REFERENCE, load_assignment().student_files))
    try:
        yield ctx
    finally:
        ctx.close()


def test_a_worker_is_the_harness_child_and_holds_no_socket_of_the_server(context):
    worker = context.worker("student", context.submission, "likelihood")
    worker.ensure_started()
    pid = worker.proc.pid
    assert _parent(pid) == os.getpid()
    files = _open_files(pid)
    assert not [f for f in files if f.startswith("socket:")], files
    assert len(files) == 5, files  # stdin (/dev/null), output log twice, request and answer pipes
    if os.geteuid() == 0 and identity.worker_users():
        assert os.stat(f"/proc/{pid}").st_uid == context.isolation.identity.uid
        assert os.stat(f"/proc/{context.isolation.server.pid}").st_uid == 0
    server = context.isolation.server.pid
    context.close()
    assert not os.path.exists(f"/proc/{server}"), "the fork server outlived its grading run"
    assert not os.path.exists(f"/proc/{pid}")


def test_a_forked_workers_exit_status_reaches_the_feedback(context, tmp_path):
    (tmp_path / "likelihood.py").write_text((REFERENCE / "likelihood.py").read_text() + EXITS_ON_IMPORT)
    context.submission = {**context.submission, "likelihood.py": tmp_path / "likelihood.py"}
    worker = context.worker("student", context.submission, "likelihood")
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
        first = GradingContext(load_assignment(), present_files(REFERENCE, load_assignment().student_files))
        first.close()
        first.close()
        second = GradingContext(load_assignment(), present_files(REFERENCE, load_assignment().student_files))
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


# Scans the worker's own anonymous memory (heap, stack, anonymous mappings) for environment entries.
SCANS_ITS_MEMORY = r'''
import ctypes
import re

_ENTRY = re.compile(rb"(AG_TEST_CANARY|AUTOGRADER_WORKER)=([0-9a-f]{24,32})")


def _anonymous_memory():
    with open("/proc/self/maps") as fh:
        for line in fh:
            fields = line.split()
            path = fields[5] if len(fields) > 5 else ""
            if fields[1].startswith("r") and path in ("", "[heap]", "[stack]"):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                yield ctypes.string_at(lo, hi - lo)


def log_likelihood(model, text):
    found = sorted({m.group(1) + b"=" + m.group(2) for block in _anonymous_memory() for m in _ENTRY.finditer(block)})
    print("found:", b" ".join(found).decode())
    return 0.0
'''


@pytest.mark.slow
def test_a_preforked_server_holds_nothing_of_the_harness_environment(tmp_path):
    """``python -m autograder grade`` forks its server before it reads its own environment."""
    import secrets
    import subprocess

    import yaml

    from autograder.config import DEFAULT_CONFIG
    from conftest import ROOT

    submission = tmp_path / "submission"
    submission.mkdir()
    for name in ("sample.py", "classifier.py"):
        (submission / name).write_text((REFERENCE / name).read_text())
    (submission / "likelihood.py").write_text(SCANS_ITS_MEMORY)
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["tests"] = [t for t in config["tests"] if t["id"] == "6d-0-basic"]
    config["error_budget"] = 1.0e-6
    (tmp_path / "assignment.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    canary = secrets.token_hex(16)
    proc = subprocess.run([str(ROOT / "run_autograder"), "--submission", str(submission), "--results",
                           str(tmp_path / "r.json"), "--assignment", str(tmp_path / "assignment.yml")],
                          env={**os.environ, "AG_TEST_CANARY": canary}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fork server: forked before the harness started" in proc.stdout
    printed = next(line for line in proc.stdout.splitlines() if line.startswith('"found:'))
    assert "AUTOGRADER_WORKER=" in printed  # the scan sees the worker's own environment
    assert canary not in printed and "AG_TEST_CANARY" not in printed, printed


def test_before_a_test_only_its_modules_workers_keep_running(context):
    sample = context.worker("student", context.submission, "sample")
    likelihood = context.worker("student", context.submission, "likelihood")
    unused = context.worker("student", context.submission, "classifier")
    for worker in (sample, likelihood, unused):
        worker.ensure_started()
    text = np.arange(1, 11, dtype=np.int64).reshape(1, -1)
    likelihood.call("log_likelihood", {"model": context.assignment.model("gpt2"), "texts": [text], "seed": 0}, 60)
    context.focus("likelihood")
    assert likelihood.proc is not None and unused.proc is not None  # the test's own, and one that holds nothing yet
    context.focus("sample")
    assert likelihood.proc is None and sample.proc is not None and unused.proc is not None
    got = likelihood.call("log_likelihood", {"model": context.assignment.model("gpt2"), "texts": [text], "seed": 0}, 60)
    assert np.isfinite(got["values"][0])  # a later test of the module starts a fresh worker
