"""A student worker's private view of the file system, and the refusal where none can be built."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import cli
from autograder.sandbox import identity, view
from autograder.config import load_assignment
from autograder.sandbox.confine import Confinement
from autograder.context import GradingContext, present_files
from autograder.runner import grade
from attack_support import leaks, secret_lines
from conftest import REFERENCE, ROOT, TEMPLATE
from workflow_support import tiny_config

ROOT_WITH_USERS = pytest.mark.skipif(os.geteuid() != 0 or not identity.worker_users(),
                                     reason="needs root and the ag-worker users of ./setup.sh")
NO_NAMESPACES = "unshare(CLONE_NEWNS): Operation not permitted"


def test_the_plan_binds_each_needed_path_once_and_keeps_covered_ones():
    reads = ["/usr/lib/python3.10", "/opt/py", "/opt/py/lib/python3.10", "/opt/py/course/.venv", "/srv/run/store"]
    assert view.minimal(reads, covers=["/opt/py/course"]) == ["/opt/py", "/opt/py/course/.venv", "/srv/run/store"]
    plan = view.plan(Path("/w/view"), reads, ["/opt/py/course", "/w"], user_namespace=False, scratch=Path("/w/s-1"))
    assert plan["write"] == ["/w/s-1"] and plan["cwd"] == "/w/s-1" and plan["cover"] == ["/opt/py/course", "/w"]
    assert view.for_worker(plan, Path("/w/s-2"))["write"] == ["/w/s-2"]


def refusal_without_namespaces() -> str:
    return view.refusal(view.exposure(False, False, None, "unshare(CLONE_NEWUSER | CLONE_NEWNS): Operation not permitted",
                                      False))


def test_the_refusal_says_what_is_missing():
    assert refusal_without_namespaces().startswith(
        "cannot hide the harness tree from student code here: no mount namespaces "
        "(not root, and no user namespaces): unshare(CLONE_NEWUSER | CLONE_NEWNS)")


def test_the_refusal_says_what_it_risks():
    assert "could read the reference solution, the hidden tests" in refusal_without_namespaces()


def test_the_refusal_says_the_fix():
    assert refusal_without_namespaces().endswith("run as root (after ./setup.sh), or pass --unsafe to grade anyway")


def test_as_root_without_worker_users_the_exposure_says_so():
    assert "no worker user exists" in view.exposure(True, False, None, None, False)


def test_as_root_with_a_worker_user_and_a_view_nothing_is_exposed():
    assert view.exposure(True, True, None, None, False) is None
    assert view.exposure(True, True, None, NO_NAMESPACES, True) is None    # Gradescope's locked tree instead


@ROOT_WITH_USERS
def test_a_student_worker_sees_only_its_view_and_the_reference_worker_the_machine():
    ctx = GradingContext(load_assignment(), present_files(TEMPLATE, load_assignment().student_files))
    try:
        student = ctx.worker("student", ctx.submission, "sample")
        reference = ctx.worker("reference", ctx.reference, "sample")
        student.ensure_started()
        reference.ensure_started()
        seen = f"/proc/{student.proc.pid}/root"   # the worker's root, as the harness (root) sees it
        assert os.listdir(seen + str(ROOT)) == [".venv"]
        assert sorted(os.listdir(seen + str(ctx.workdir))) == sorted(["runtime", "store", student.scratch.name])
        assert not os.path.lexists(seen + str(reference.scratch))  # it holds the reference solution
        tmp = ctx.workdir.parent               # /tmp: its own, empty, but for the path to a checkout below it
        expected = {ctx.workdir.name} | ({ROOT.relative_to(tmp).parts[0]} if ROOT.is_relative_to(tmp) else set())
        assert set(os.listdir(seen + str(tmp))) == expected   # the checkout itself holds only .venv (above)
        assert os.readlink(f"/proc/{student.proc.pid}/cwd") == str(student.scratch)
        mounts = {line.split()[4]: line.split()[5] for line in open(f"/proc/{student.proc.pid}/mountinfo")}
        for path in (ctx.isolation.runtime, ctx.isolation.store, Path(sys.prefix)):
            assert mounts[str(path)].startswith("ro"), (path, mounts.get(str(path)))
        assert mounts[str(student.scratch)].startswith("rw") and mounts["/"].startswith("ro")
        assert os.readlink(f"/proc/{reference.proc.pid}/root") == "/"
    finally:
        ctx.close()


def test_a_worker_whose_view_cannot_be_built_runs_nothing(tmp_path):
    broken = view.plan(tmp_path / "missing" / "view", view.interpreter_paths(), [], os.geteuid() != 0, tmp_path)
    with pytest.raises(subprocess.SubprocessError):
        subprocess.run([sys.executable, "-c", "print('RAN')"], preexec_fn=Confinement(view=broken).apply,
                       capture_output=True, timeout=60)
    why = view.probe(ROOT, Confinement(view=broken).as_data(), [], [])
    assert why is not None and "No such file or directory" in why and str(tmp_path / "missing") in why


def test_grading_refuses_where_student_code_could_read_the_harness(monkeypatch):
    monkeypatch.setattr(view, "run_view", lambda *args: (None, NO_NAMESPACES))
    results, log = grade(REFERENCE, only=frozenset({"6d-0-basic"}))
    assert results.score == 0 and results.tests[0].harness_fault
    assert "UnprotectedError: cannot hide the harness tree from student code here" in "\n".join(log)


@pytest.mark.parametrize("command", [
    ["grade", "--submission", "{sub}", "--results", "{tmp}/r.json"],
    ["rerun", "--submission", "{sub}", "--test", "6d-0-basic"],
    ["regrade", "{tmp}", "--out", "{tmp}/out"],
    ["audit", "--entries", "likelihood_"],
])
def test_staff_commands_refuse_and_say_why(monkeypatch, capsys, tmp_path, command):
    monkeypatch.setattr(view, "machine_problem", lambda *args: NO_NAMESPACES)
    (tmp_path / "submission_metadata.yml").write_text("{}\n")
    argv = [a.format(sub=REFERENCE, tmp=tmp_path) for a in command]
    if os.geteuid() == 0 and not identity.worker_users():
        pytest.skip("no worker users: the refusal names them instead")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "autograder: error: cannot hide the harness tree from student code here" in err
    assert "pass --unsafe to grade anyway" in err
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_unsafe_grades_anyway_and_the_log_says_so(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(view, "machine_problem", lambda *args: NO_NAMESPACES)
    monkeypatch.setattr(view, "run_view", lambda *args: (None, NO_NAMESPACES))
    config = tiny_config(tmp_path / "tiny.yml", ["6d-0-basic"])
    argv = ["grade", "--unsafe", "--submission", str(REFERENCE), "--results", str(tmp_path / "r.json"),
            "--assignment", str(config)]
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    assert "autograder: warning: cannot hide the harness tree" in out.err
    assert "Total: 2 / 2" in out.out
    if os.geteuid() == 0 and identity.worker_users():
        assert "protections off: files: cannot hide the harness tree" in out.out and "(graded with --unsafe)" in out.out


def test_the_leak_check_finds_a_secret_line_in_any_feedback():
    secrets = secret_lines()
    line = next(line.strip() for line in (REFERENCE / "likelihood.py").read_text().splitlines()
                if line.strip() in secrets)
    clean = {"output": "Public tests: 0 / 4", "tests": [{"output": "sample.py raised an exception"}]}
    assert leaks(clean, secrets) == []
    leaked = {"output": "", "tests": [{"output": "Your code printed:\n    " + line}]}
    assert leaks(leaked, secrets) == [line]
    assert not any(template_line.strip() in secrets for template_line in (TEMPLATE / "sample.py").read_text().splitlines())
