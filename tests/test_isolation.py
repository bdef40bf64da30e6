"""The isolation pieces on their own: the worker runtime, tree locking, the leftover reaper,
the results failsafe and the time budget of a submission that never returns."""
from __future__ import annotations

import ast
import grp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder import errors, failsafe, paths
from autograder.sandbox import access, identity, isolation, locking, reaper
from autograder.sandbox.runtime import build_runtime, runtime_files
from autograder.config import load_assignment
from autograder.sandbox.confine import Confinement
from autograder.sandbox.handle import Limits
from attack_support import open_dir
from conftest import REFERENCE, ROOT, strict_json

ROOT_WITH_USERS = pytest.mark.skipif(os.geteuid() != 0 or not identity.worker_users(),
                                     reason="needs root and the ag-worker users of ./setup.sh")


# What a worker process gets: the sandbox modules it runs, the drivers of question 6 with what they
# import, the data they read, and of the harness core only the errors and the paths they name.
WORKER_RUNTIME = [
    "autograder/__init__.py", "autograder/errors.py", "autograder/paths.py",
    "autograder/q6/__init__.py", "autograder/q6/course.py", "autograder/q6/data/natural_train.txt",
    "autograder/q6/designed.py", "autograder/q6/drivers.py", "autograder/q6/grading_models.py",
    "autograder/q6/history.py", "autograder/q6/model.py", "autograder/q6/synthetic.py",
    "autograder/q6/textmodel.py", "autograder/q6/tokenizer.py", "autograder/q6/vocabulary.py",
    "autograder/sandbox/__init__.py", "autograder/sandbox/calls.py", "autograder/sandbox/confine.py",
    "autograder/sandbox/forkserver.py", "autograder/sandbox/heap.py", "autograder/sandbox/import_hints.py",
    "autograder/sandbox/mounts.py", "autograder/sandbox/protocol.py", "autograder/sandbox/worker.py",
]


def test_the_worker_runtime_holds_what_workers_import_and_nothing_else():
    assert runtime_files(load_assignment().drivers) == WORKER_RUNTIME


def test_the_worker_runtime_is_the_sandbox_and_the_drivers_imports():
    core = [f for f in WORKER_RUNTIME if not f.startswith(("autograder/sandbox/", "autograder/q6/"))]
    assert core == ["autograder/__init__.py", "autograder/errors.py", "autograder/paths.py"]
    for shared in core:  # of the harness they import the paths at most
        tree = ast.parse((ROOT / shared).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert {m for m in imported if m and m.startswith("autograder")} <= {"autograder.paths"}, shared


def test_lock_and_unlock_a_tree(tmp_path):
    root = tmp_path / "tree"
    for rel in ("tests_hidden/a.py", "reference_solution/b.py", "autograder/c.py", "model/ckpt.bin"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    venv = tmp_path / "venv"
    venv.mkdir(mode=0o755)
    (root / ".venv").symlink_to(venv)
    assert not locking.tree_locked(root)
    locking.lock_tree(root, exposed=(root / "model/ckpt.bin",))
    assert locking.tree_locked(root)
    assert os.stat(root).st_mode & 0o007 == 0o001               # traverse only
    assert os.stat(root / "tests_hidden/a.py").st_mode & 0o007 == 0
    assert os.stat(root / "model/ckpt.bin").st_mode & 0o004      # a checkpoint stays readable
    assert os.stat(venv).st_mode & 0o777 == 0o755                # the venv is not touched
    locking.unlock_tree(root)
    assert not locking.tree_locked(root)
    assert os.stat(root / "tests_hidden/a.py").st_mode & 0o004


@ROOT_WITH_USERS
def test_the_worker_user_can_read_the_runtime_but_not_a_locked_tree():
    base = open_dir()  # pytest's own temporary folders are closed to other users altogether
    tree = base / "tree"
    for rel in ("tests_hidden/assignment.yml", "reference_solution/sample.py", "autograder/config.py"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("secret")
    locking.lock_tree(tree)
    runtime = build_runtime(base / "runtime", "autograder.q6.drivers")
    user = identity.worker_users()[-1]
    probe = ("import sys\nfor p in sys.argv[1:]:\n    try:\n        open(p).read(); print('READ', p)\n"
             "    except OSError as e:\n        print('DENIED', p, type(e).__name__)\n")
    targets = [tree / "tests_hidden/assignment.yml", tree / "reference_solution/sample.py",
               tree / "autograder/config.py", runtime / "autograder/q6/drivers.py"]
    out = subprocess.run([sys.executable, "-I", "-c", probe, *map(str, targets)], cwd="/", capture_output=True,
                         text=True, preexec_fn=Confinement(uid=user.pw_uid, gid=user.pw_gid).apply).stdout
    shutil.rmtree(base)
    assert out.count("DENIED") == 3 and f"READ {runtime}" in out, out


def test_a_double_forked_setsid_daemon_is_found_and_killed():
    reaper.set_subreaper()
    marker = "AUTOGRADER_WORKER=test-" + str(os.getpid())
    code = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        time.sleep(60)\n    os._exit(0)\ntime.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], env={"AUTOGRADER_WORKER": marker.split("=")[1]})
    time.sleep(1.0)
    daemons = [p for p in reaper.scan().values() if p.ppid == os.getpid() and p.pid != proc.pid and not p.dead]
    assert daemons, "the daemon was not re-parented to this process"
    killed = reaper.kill(reaper.Target(frozenset({proc.pid}), marker=marker.encode()))
    assert killed >= 2
    proc.kill()
    proc.wait()
    assert not [p for p in reaper.scan().values() if p.pid in {d.pid for d in daemons} and not p.dead]


def test_without_root_the_report_says_which_protections_are_off(tmp_path):
    iso = isolation.Isolation(tmp_path, tmp_path, identity=None, privileged=False)
    report = "\n".join(iso.report())
    assert "protections off" in report and "not running as root" in report and "hidden tests" in report


@pytest.fixture
def crashed(tmp_path):
    """The failsafe after a grader that died with a segmentation fault: (results path, its document)."""
    results = tmp_path / "out" / "results.json"
    err = tmp_path / "stderr"
    err.write_text("Traceback ...\nSegmentation fault")
    failsafe.main([str(time.time() - 1), "139", str(err), "--submission", "x", "--results", str(results)])
    return results, strict_json(results.read_text())


def test_the_failsafe_file_after_a_crash_is_worth_nothing_with_one_visible_and_one_hidden_test(crashed):
    _, data = crashed
    assert data["score"] == 0 and [t["visibility"] for t in data["tests"]] == ["visible", "hidden"]


def test_the_failsafe_shows_the_crash_to_staff_only(crashed):
    _, data = crashed
    assert "Segmentation fault" in data["tests"][1]["output"] and "Segmentation" not in data["tests"][0]["output"]


def test_the_failsafe_keeps_results_the_grader_wrote_in_this_run(tmp_path):
    results, err = tmp_path / "results.json", tmp_path / "stderr"
    err.write_text("Traceback ...")
    started = time.time() - 1
    good = {"score": 3.0, "tests": []}
    results.write_text(json.dumps(good))
    failsafe.main([str(started), "1", str(err), "--results", str(results)])
    assert json.loads(results.read_text()) == good


@pytest.mark.parametrize("argv, path", [([], "/autograder/results/results.json"), (["--submission", "d"], "results.json")],
                         ids=["on-gradescope", "local"])
def test_the_failsafe_writes_where_the_grade_would_have(argv, path):
    assert failsafe.results_path(argv) == Path(path)


def test_a_submission_that_never_returns_is_graded_well_within_gradescopes_10_minutes():
    """Each module's first timed-out call costs its test's limit; later ones the retry budget."""
    assignment, limits = load_assignment(), Limits()
    worst = 0.0
    for module in {t.module for t in assignment.tests}:
        timeouts = sorted((t.timeout for t in assignment.tests if t.module == module), reverse=True)
        worst += timeouts[0] + sum(min(t, limits.retry_seconds) for t in timeouts[1:])
    assert worst + 150 < 600, f"a never-returning submission could take {worst:.0f} s plus normal grading"


@ROOT_WITH_USERS
@pytest.mark.parametrize("field", ["shell", "home", "system uid", "own group"])
def test_the_worker_users_of_setup_sh_cannot_log_in_nor_own_anything(field):
    for user in identity.worker_users():
        seen = {"shell": Path(user.pw_shell).name in ("nologin", "false"), "home": user.pw_dir == "/nonexistent",
                "system uid": user.pw_uid < 1000, "own group": grp.getgrgid(user.pw_gid).gr_name == user.pw_name}
        assert seen[field], f"{user.pw_name}: {field} is wrong ({user})"


def test_run_autograder_leaves_results_worth_nothing_when_the_grader_dies(tmp_path):
    """The failsafe: the grading process exits at once (an argument it refuses), results.json is still written."""
    results = tmp_path / "results.json"
    proc = subprocess.run([str(ROOT / "run_autograder"), "--submission", str(REFERENCE), "--results", str(results),
                           "--no-such-option"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    data = strict_json(results.read_text())
    assert data["score"] == 0 and "exited with status" in data["tests"][0]["output"], data


@ROOT_WITH_USERS
def test_what_the_harness_writes_while_grading_is_private_to_it(tmp_path):
    before = os.umask(0o022)
    try:
        (tmp_path / "work").mkdir()
        iso = isolation.Isolation.start(tmp_path / "work", "autograder.q6.drivers")
        cache = tmp_path / "cache"
        cache.mkdir()
        (cache / "answer").write_text("reference answer")
        iso.close()
        assert os.stat(cache).st_mode & 0o077 == 0 and os.stat(cache / "answer").st_mode & 0o077 == 0
        assert os.stat(iso.runtime / "autograder/sandbox/worker.py").st_mode & 0o777 == 0o644
        assert os.umask(0o022) == 0o022  # restored when the run ended
    finally:
        os.umask(before)


def test_a_relative_checkpoint_is_reachable_from_the_runtime(tmp_path):
    runtime = build_runtime(tmp_path / "runtime", "autograder.q6.drivers",
                                      {"course": {"kind": "checkpoint", "path": "checkpoints/gpt2.bin"}})
    link = runtime / "checkpoints/gpt2.bin"
    assert link.is_symlink() and os.readlink(link) == str(paths.HARNESS_ROOT / "checkpoints/gpt2.bin")


@ROOT_WITH_USERS
def test_an_interpreter_closed_to_the_worker_users_is_reported_and_refused_on_gradescope(tmp_path, monkeypatch):
    closed = tmp_path / "closed"           # pytest's temporary folders are closed to other users
    closed.mkdir()
    monkeypatch.setattr(sys, "executable", str(closed / "python"))
    (closed / "python").symlink_to(os.path.realpath(sys.__dict__.get("_base_executable", "/usr/bin/python3")))
    assert access.closed_to_workers() == closed / "python"
    (tmp_path / "work").mkdir()
    with pytest.raises(errors.AutograderError, match="cannot reach"):
        isolation.Isolation.start(tmp_path / "work", "autograder.q6.drivers", require=True)
    iso = isolation.Isolation.start(tmp_path / "work", "autograder.q6.drivers", require=False, unsafe=True)
    try:
        assert iso.identity is None and "cannot reach" in "\n".join(iso.report())
    finally:
        iso.close()


def test_grade_is_the_front_door_of_the_package():
    import autograder
    from autograder.runner import grade

    assert autograder.grade is grade
