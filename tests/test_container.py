"""Gradescope's container: its limits are read, its out-of-memory kills are told apart from the
student's crashes, and the reference solution fits the default (768 MiB, half a CPU); with
``-m container``, so does every correct entry of the mutation corpus (about 45 minutes).

The fast tests read fake cgroup files under a temporary root (``Container.find(root)``); the
slow ones run ``./run_autograder`` in real cgroups (``bench/cgroup.py``) and skip, with the
reason, where cgroups cannot be made.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from autograder.config import DEFAULT_CONFIG, load_assignment
from autograder.container import MiB, Container, Counters, startup_lines
from autograder.context import GradingContext, present_files
from autograder.staff.corpus import load_corpus
from autograder.errors import ContainerOutOfMemory, StudentCrash
from bench.cgroup import Container as Cgroup
from bench.cgroup import unavailable
from conftest import FIXTURES, REFERENCE, ROOT, scores_by_part, strict_json

GROUP = "/grader/run-1"
CORPUS = load_corpus()
# Waits, once its call has begun, until the test kills it.
WAITS_TO_BE_KILLED = '''
import time


def log_likelihood(model, text):
    open("call-started", "w").close()
    time.sleep(60)
'''


def fake_v1(root: Path, limit: int = 768 * MiB, quota: int = 50_000, oom_kill: int = 0, failcnt: int = 0) -> Path:
    """A cgroup v1 tree like Gradescope's under ``root``: returns the memory cgroup's folder."""
    (root / "proc/self").mkdir(parents=True, exist_ok=True)
    (root / "proc/self/cgroup").write_text(f"5:cpu,cpuacct:{GROUP}\n4:memory:{GROUP}\n0::/\n")
    (root / "proc/meminfo").write_text("MemTotal:       24000000 kB\n")
    memory, cpu = root / "sys/fs/cgroup/memory" / GROUP[1:], root / "sys/fs/cgroup/cpu,cpuacct" / GROUP[1:]
    for folder in (memory, cpu):
        folder.mkdir(parents=True, exist_ok=True)
    (memory / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (memory / "memory.max_usage_in_bytes").write_text(f"{limit}\n")
    (memory / "memory.failcnt").write_text(f"{failcnt}\n")
    (memory / "memory.oom_control").write_text(f"oom_kill_disable 0\nunder_oom 0\noom_kill {oom_kill}\n")
    (cpu / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    return memory


def fake_v2(root: Path, own: str = "max", parent: str = "805306368", cpu: str = "50000 100000") -> Path:
    (root / "proc/self").mkdir(parents=True, exist_ok=True)
    (root / "proc/self/cgroup").write_text(f"0::{GROUP}\n")
    fs = root / "sys/fs/cgroup"
    folder = fs / GROUP[1:]
    folder.mkdir(parents=True)
    (fs / "cgroup.controllers").write_text("cpu memory\n")
    (folder / "memory.max").write_text(f"{own}\n")
    (folder.parent / "memory.max").write_text(f"{parent}\n")
    (folder / "cpu.max").write_text(f"{cpu}\n")
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    (folder / "memory.peak").write_text("700000000\n")
    return folder


def test_the_limits_of_a_v1_container_are_read(tmp_path):
    fake_v1(tmp_path)
    limits = Container.find(tmp_path).limits()
    assert (limits.memory, limits.cpus) == (768 * MiB, 0.5)
    assert limits.describe().startswith("container: memory limit 768 MiB, CPU quota 0.5 (cgroup v1")


def test_an_absurd_v1_limit_or_no_quota_reads_as_none(tmp_path):
    fake_v1(tmp_path, limit=9223372036854771712, quota=-1)
    limits = Container.find(tmp_path).limits()
    assert (limits.memory, limits.cpus) == (None, None)
    assert "no memory limit, no CPU quota" in limits.describe()


def test_a_v2_limit_is_the_smallest_on_the_way_up(tmp_path):
    folder = fake_v2(tmp_path)
    container = Container.find(tmp_path)
    assert (container.version, container.memory) == (2, folder)
    assert (container.limits().memory, container.limits().cpus) == (768 * MiB, 0.5)
    assert container.peak() == 700_000_000


def test_without_a_cgroup_nothing_is_known_and_nothing_is_blamed_on_the_container(tmp_path):
    container = Container.find(tmp_path)
    assert container.version is None and container.limits().memory is None
    assert container.counters() == Counters(None, None)
    assert not container.killed(container.counters(), -signal.SIGKILL)


def test_a_sigkill_is_the_containers_only_when_its_oom_kills_rose(tmp_path):
    memory = fake_v1(tmp_path)
    container = Container.find(tmp_path)
    before = container.counters()
    assert not container.killed(before, -signal.SIGKILL)          # our own kill, a CPU limit
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert container.killed(before, -signal.SIGKILL)
    assert not container.killed(before, -signal.SIGSEGV)          # the student's crash
    assert not container.killed(before, 1)
    assert "768 MiB; peak usage 768 MiB; oom_kill 0 -> 1" in container.report(before)


def test_without_an_oom_kill_counter_the_failure_count_decides(tmp_path):
    memory = fake_v1(tmp_path)
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")   # kernels before 4.13
    container = Container.find(tmp_path)
    before = container.counters()
    assert before == Counters(None, 0)
    (memory / "memory.failcnt").write_text("12\n")
    assert container.killed(before, -signal.SIGKILL)


def test_v2_oom_kills_are_read_from_memory_events(tmp_path):
    folder = fake_v2(tmp_path)
    container = Container.find(tmp_path)
    before = container.counters()
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n")
    assert container.killed(before, -signal.SIGKILL)


def test_the_staff_log_warns_when_the_models_cannot_fit(tmp_path):
    fake_v1(tmp_path, limit=768 * MiB)
    assignment = load_assignment()
    lines = startup_lines(assignment, tmp_path)
    assert lines == [Container.find(tmp_path).limits().describe()]   # the embedded default fits
    big = dataclasses.replace(assignment, models={**assignment.models,
                                                  "course": {"kind": "checkpoint", "path": "checkpoints/gpt2.bin"}})
    warning = startup_lines(big, tmp_path)[1]
    assert warning.startswith("warning: this container is too small, its memory (768 MiB) and its CPU quota (0.5): "
                              "the production models need about")
    assert "pick Gradescope's" in warning and "GB tier" in warning


@pytest.mark.parametrize("bump, raised", [(True, ContainerOutOfMemory), (False, StudentCrash)])
def test_a_worker_killed_by_the_container_is_the_graders_fault(tmp_path, bump, raised):
    root = tmp_path / "root"
    memory = fake_v1(root)
    (tmp_path / "likelihood.py").write_text(WAITS_TO_BE_KILLED)
    files = {**present_files(REFERENCE, load_assignment().student_files), "likelihood.py": tmp_path / "likelihood.py"}
    ctx = GradingContext(load_assignment(), files, container=Container.find(root))
    try:
        worker = ctx.worker("student", files, "likelihood")
        worker.ensure_started()

        def kill_once_the_call_runs():
            until = time.monotonic() + 30
            while not (worker.scratch / "call-started").exists() and time.monotonic() < until:
                time.sleep(0.02)
            if bump:
                (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
            os.kill(worker.proc.pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_once_the_call_runs)
        killer.start()
        text = np.arange(1, 11, dtype=np.int64).reshape(1, -1)
        with pytest.raises(raised) as caught:
            ctx.call_student("likelihood", "log_likelihood", {"model": ctx.assignment.model("gpt2"), "texts": [text],
                                                              "seed": 0}, timeout=60)
        killer.join()
    finally:
        ctx.close()
    message = str(caught.value)
    if bump:
        assert caught.value.feedback == ("autograder error: the grader ran out of memory in this container (768 MiB) "
                                         "while running your log_likelihood; this is not a mistake in your code, "
                                         "and course staff have been told")
        assert "peak usage 768 MiB; oom_kill 0 -> 1" in message and "crashed" not in message
    else:
        assert "crashed" in message and "SIGKILL" in message


# -- real cgroups ---------------------------------------------------------------------------
def _need_cgroups() -> None:
    why = unavailable()
    if why is not None:
        pytest.skip(f"cannot create cgroups here: {why}")


def _run(submission: Path, results: Path, memory: int, cpus: float | None, *extra: str):
    with Cgroup(memory, cpus) as box:
        run = box.run([str(ROOT / "run_autograder"), "--submission", str(submission), "--results", str(results),
                       *extra], timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run, strict_json(results.read_text())


def _full_marks_in_the_default_container(submission: Path, tmp_path: Path):
    run, results = _run(submission, tmp_path / "r.json", 768 * MiB, 0.5)
    assert run.oom_kills == 0, f"the kernel killed {run.oom_kills} process(es); peak {run.max_usage / MiB:.0f} MiB"
    failed = [(t["name"], t["output"]) for t in results["tests"] if t["status"] != "passed"]
    assert not failed
    assert results["score"] == 22.0 and sum(p for _, p in scores_by_part(results).values()) == 18.0
    return run


@pytest.mark.slow
def test_the_reference_gets_full_marks_in_gradescopes_default_container(tmp_path):
    _need_cgroups()
    run = _full_marks_in_the_default_container(REFERENCE, tmp_path)
    assert "container: memory limit 768 MiB, CPU quota 0.5" in run.stdout


@pytest.mark.container
@pytest.mark.parametrize("entry", [e for e in CORPUS.entries if e.correct], ids=lambda e: e.name)
def test_a_correct_corpus_entry_gets_full_marks_in_gradescopes_default_container(entry, tmp_path):
    _need_cgroups()  # wall times are figures, not assertions: bench/container.py, bench/results/container.md
    _full_marks_in_the_default_container(CORPUS.build_submission(entry, tmp_path / "submission"), tmp_path)


@pytest.mark.slow
def test_a_submission_the_container_kills_is_told_it_is_not_its_fault(tmp_path):
    _need_cgroups()
    submission = tmp_path / "submission"
    submission.mkdir()
    for name in ("sample.py", "classifier.py"):
        (submission / name).write_text((REFERENCE / name).read_text())
    (submission / "likelihood.py").write_text((FIXTURES / "container" / "likelihood.py").read_text())
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["tests"] = [t for t in config["tests"] if t["id"] == "6d-0-basic"]
    config["error_budget"] = 1.0e-6   # no statistical test left to share it
    (tmp_path / "assignment.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    run, results = _run(submission, tmp_path / "r.json", 600 * MiB, None, "--assignment", str(tmp_path / "assignment.yml"))
    assert run.oom_kills >= 1
    test = next(t for t in results["tests"] if t["name"].startswith("6d-0-basic"))
    assert test["score"] == 0
    assert test["output"] == ("autograder error: the grader ran out of memory in this container (600 MiB) while "
                              "running your log_likelihood; this is not a mistake in your code, and course staff "
                              "have been told")
    assert "crashed" not in test["output"]
    staff = next(t for t in results["tests"] if t["name"] == "autograder error (staff detail)")
    assert staff["visibility"] == "hidden" and "container's memory limit (600 MiB; peak usage" in staff["output"]
