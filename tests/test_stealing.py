"""Student code never sees the harness tree, wherever it grades: a TA's regrade of an export from a
checkout in some folder (not /autograder/source, not locked, world-readable), and ``grade`` there.

Each ``steal_*`` attack finds folders one way (walking up from its file and working folder;
the parent's and every process's cwd, root, environment and command line in /proc; its open
descriptors, maps and mounts; sys.path and loaded modules; absolute paths a student could know
or guess, the regrade's own export and output folders included), then looks in and around them
for the reference solution, the hidden tests and config, the answer cache and other submissions
(the export holds a correct one), runs any solution it finds and prints every secret it reads.
Each must earn 0 points and leak no line of any secret into feedback.  The same attacks with the
view turned off do steal, so these checks can fail.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from attack_support import (build_attack, check_results_file, harness_faults, leaks, machine_leftovers, open_dir,
                            outputs, secret_lines)
from autograder.sandbox import identity, view
from autograder.runner import grade
from conftest import REFERENCE, ROOT, strict_json
from workflow_support import copy_source, tiny_config

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: worker users and a readable checkout")]
STEALS = ("steal_walk_up", "steal_proc", "steal_fds", "steal_sys_path", "steal_known_paths")
TESTS = ["6c-0-basic", "6d-0-basic", "6e-0-basic", "6d-1-hidden"]
VICTIM = "9999"
MARK = "# a correct submission of another student, 7f3c1e"


def readable(path: Path) -> Path:
    """Open ``path`` to everyone, as a TA's folders usually are: only the view keeps workers out."""
    for p in [path, *path.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return path


def _metadata(ids) -> str:
    return "".join(f"submission_{i}:\n  :submitters:\n  - :name: Student {i}\n    :sid: '{i}'\n"
                   f"    :email: s{i}@example.edu\n" for i in ids)


def make_export(export: Path, attacks, root: Path, out: Path, config: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    """One submission per attack and a correct one; returns the attacks' ids and the paths a
    student could know (the checkout ``root``, the export, ``out``, the config)."""
    ids = {name: str(1001 + k) for k, name in enumerate(attacks)}
    victim = export / f"submission_{VICTIM}"
    victim.mkdir(parents=True)
    for name in ("sample.py", "likelihood.py", "classifier.py"):
        (victim / name).write_text(MARK + "\n" + (REFERENCE / name).read_text())
    known = (str(root), str(export), str(out), str(victim), str(config), str(root / "reference_solution"),
             str(root / "tests_hidden"), str(root / ".cache" / "reference"))
    for name, sid in ids.items():
        build_attack(name, export / f"submission_{sid}", known)
    (export / "submission_metadata.yml").write_text(_metadata([*ids.values(), VICTIM]))
    return ids, known


@pytest.fixture(scope="module")
def layout():
    """An export (one submission per attack and a correct one), its output folder and a config,
    all in folders anyone may read, and the secrets no feedback may show."""
    base = open_dir(prefix="ag-steal-")
    export, out, config = base / "export", base / "out", base / "tiny.yml"
    ids, known = make_export(export, STEALS, ROOT, out, config)
    tiny_config(config, TESTS)
    readable(base)
    victim = export / f"submission_{VICTIM}"
    secrets = secret_lines(*(victim / n for n in ("sample.py", "likelihood.py", "classifier.py")))
    cache = ROOT / ".cache" / "reference"
    secrets |= {p.stem for p in cache.glob("*.agw")} if cache.is_dir() else set()
    yield {"base": base, "export": export, "out": out, "config": config, "ids": ids, "secrets": secrets,
           "known": known}
    shutil.rmtree(base, ignore_errors=True)


def cli(*args: str, cwd: Path = ROOT, user: int | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m autograder ARGS`` from the checkout, as a TA runs it."""
    env = env or {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(cwd)}
    return subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "autograder", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1200,
                          user=user, group=user, extra_groups=[] if user is not None else None)


def judged(results: dict, secrets: set[str], attack: str) -> None:
    assert results["score"] == 0, (attack, [(t["name"], t["score"]) for t in results["tests"]])
    assert not harness_faults(results), outputs(results)
    visible = next(t["output"] for t in results["tests"] if t["name"].startswith("6c-0-basic"))
    assert "done: stolen []" in visible, visible  # the attack ran to its end and found nothing to run
    assert "FOUND" not in outputs(results), outputs(results)
    assert leaks(results, secrets) == []


@pytest.fixture(scope="module")
def regraded(layout):
    proc = cli("regrade", str(layout["export"]), "--out", str(layout["out"]), "--assignment", str(layout["config"]))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("attack", STEALS)
def test_a_regrade_outside_gradescope_gives_the_attack_nothing(layout, regraded, attack):
    folder = layout["out"] / f"submission_{layout['ids'][attack]}"
    judged(check_results_file(folder / "results.json"), layout["secrets"], attack)


@pytest.mark.parametrize("attack", STEALS)
def test_a_regrade_outside_gradescope_grades_the_attack_with_every_protection(layout, regraded, attack):
    log = (layout["out"] / f"submission_{layout['ids'][attack]}" / "staff_log.txt").read_text()
    assert "files: student workers see a private view" in log and "protections off" not in log, log


def test_a_regrade_outside_gradescope_leaves_no_process_behind(regraded):
    assert machine_leftovers() == []


def test_the_correct_submission_beside_them_keeps_its_marks(layout, regraded):
    results = strict_json((layout["out"] / f"submission_{VICTIM}" / "results.json").read_text())
    assert [t["score"] for t in results["tests"]] == [t["max_score"] for t in results["tests"]]


@pytest.fixture(scope="module", params=STEALS)
def graded_alone(request, layout, tmp_path_factory):
    """``autograder grade`` of one attack's submission, once for all the checks of that grade."""
    attack = request.param
    out = tmp_path_factory.mktemp(f"grade-{attack}")
    submission = layout["export"] / f"submission_{layout['ids'][attack]}"
    proc = cli("grade", "--submission", str(submission), "--results", str(out / "results.json"),
               "--assignment", str(layout["config"]))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return attack, proc, check_results_file(out / "results.json"), machine_leftovers()


def test_grade_outside_gradescope_gives_the_attack_nothing(layout, graded_alone):
    attack, _, results, _ = graded_alone
    judged(results, layout["secrets"], attack)


def test_grade_outside_gradescope_says_workers_see_a_private_view(graded_alone):
    _, proc, _, _ = graded_alone
    assert "files: student workers see a private view" in proc.stdout, proc.stdout


def test_grade_outside_gradescope_leaves_no_process_behind(graded_alone):
    *_, leftovers = graded_alone
    assert leftovers == []


@pytest.mark.parametrize("attack", ["steal_walk_up", "steal_sys_path", "steal_fds", "steal_known_paths"])
def test_without_the_view_the_same_attacks_steal(layout, attack, tmp_path, monkeypatch):
    """The control: the worker user alone does not keep them out of a readable checkout."""
    monkeypatch.setattr(view, "run_view", lambda *args: (None, "turned off by this test"))
    results, log = grade(build_attack(attack, tmp_path / "upload", layout["known"]), layout["config"],
                         only=frozenset({"6c-0-basic"}), unsafe=True)
    assert "files: cannot hide the harness tree" in "\n".join(log)
    assert results.to_gradescope()["score"] > 0  # it ran a solution it found
    assert printed(log) & layout["secrets"]      # and printed secrets, which a failed public test would show


def printed(log: list[str]) -> set[str]:
    """The lines student code printed, as the staff log holds them (one JSON string each)."""
    lines = [line for entry in log if entry.startswith("---") and "printed (escaped)" in entry
             for line in entry.splitlines()[1:]]
    return {json.loads(line).strip() for line in lines}


@pytest.fixture
def unprivileged():
    """An unprivileged user no grading run holds, to play a TA without root."""
    for user in reversed(identity.worker_users()):
        taken = identity.try_identity(user)
        if taken is not None:
            try:
                yield taken
            finally:
                taken.release()
            return
    pytest.skip("every worker user is busy")


def test_without_root_a_user_namespace_hides_the_tree_too(layout, unprivileged):
    """A TA's own checkout, cache and export, graded as the TA (no root): workers still see none of it."""
    if view.machine_problem(ROOT, unprivileged.uid, unprivileged.gid) is not None:
        pytest.skip("this machine allows no user namespaces")
    base = open_dir(prefix="ag-steal-user-")
    try:
        tree, export, out, config = base / "checkout", base / "export", base / "out", base / "tiny.yml"
        copy_source(tree)
        if (ROOT / ".cache").is_dir():  # a fresh clone has no answer cache yet
            shutil.copytree(ROOT / ".cache", tree / ".cache")
        (tree / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
        attacks = ("steal_proc", "steal_fds", "steal_known_paths")
        ids, _ = make_export(export, attacks, tree, out, config)
        tiny_config(config, TESTS)
        for p in [base, *base.rglob("*")]:
            os.lchown(p, unprivileged.uid, unprivileged.gid)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(tree), "TMPDIR": str(base)}
        proc = cli("regrade", str(export), "--out", str(out), "--assignment", str(config), cwd=tree,
                   user=unprivileged.uid, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        for attack, sid in ids.items():
            judged(check_results_file(out / f"submission_{sid}" / "results.json"), layout["secrets"], attack)
            log = (out / f"submission_{sid}" / "staff_log.txt").read_text()
            assert "private view holding only" in log and "(built in a user namespace)" in log, log
        victim = strict_json((out / f"submission_{VICTIM}" / "results.json").read_text())
        assert victim["score"] == sum(t["max_score"] for t in victim["tests"])
    finally:
        shutil.rmtree(base, ignore_errors=True)
