"""The attack suite: one submission per attack of docs' threat model, each built from the
template (so any point it earns is stolen).  Each must score 0, leave a valid results file that
nothing rewrites afterwards, leak nothing, and leave no process or file of the worker users.

Attacks on files run against a copy of the harness locked as on Gradescope (``LockedTree``);
the rest grade in this process with only the tests that show the point.  Every attack is
bounded (time, forks, memory, bytes) so that a failed sandbox cannot harm the machine.
"""
from __future__ import annotations

import os
import re
import time

import pytest

from attack_support import (LockedTree, build_attack, by_id, dump, grade_here, machine_leftovers, outputs,
                            worker_uids)
from autograder.config import load_assignment
from conftest import REFERENCE

pytestmark = pytest.mark.slow
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the worker user is what stops this attack")


@pytest.fixture(autouse=True)
def clean_machine():
    if os.geteuid() == 0 and not worker_uids():
        pytest.fail("no ag-worker-N users: run ./setup.sh as root first")
    yield
    assert machine_leftovers() == []


@pytest.fixture(scope="module")
def tree():
    locked = LockedTree()
    yield locked
    locked.close()


def attack(name, tmp_path, known=()):
    return build_attack(name, tmp_path / name, known)


def zero(results: dict) -> None:
    assert results["score"] == 0, dump(results)
    assert all(t["score"] == 0 for t in results["tests"]), dump(results)


def test_exit_at_import_fails_only_its_own_tests(tmp_path):
    results, _ = grade_here(attack("exit_at_import", tmp_path), tmp_path / "r.json",
                            {"6c-0-basic", "6d-0-basic", "6e-0-basic"})
    zero(results)
    tests = by_id(results)
    assert "sample.py crashed" in tests["6c-0-basic"]["output"]
    assert "likelihood.py failed to import" in tests["6d-0-basic"]["output"]
    assert "SystemExit" in tests["6d-0-basic"]["output"]
    assert "classifier.py failed to import" in tests["6e-0-basic"]["output"]


def test_os_exit_and_signals_fail_one_call_and_the_worker_restarts(tmp_path):
    results, _ = grade_here(attack("os_exit", tmp_path), tmp_path / "r.json",
                            {"6c-0-basic", "6c-1-basic", "6f-0-basic", "6d-0-basic"})
    zero(results)
    tests = by_id(results)
    for test_id in ("6c-0-basic", "6c-1-basic"):  # the second call ran in a fresh worker
        assert "exited with status 0" in tests[test_id]["output"]
    assert "called exit()" in tests["6f-0-basic"]["output"]
    assert "killed by signal SIGSEGV" in tests["6d-0-basic"]["output"]


@ROOT_ONLY
def test_killing_the_grader_is_refused(tmp_path):
    results, _ = grade_here(attack("kill_parent", tmp_path), tmp_path / "r.json", {"6c-0-basic", "6d-0-basic"})
    zero(results)
    out = by_id(results)["6c-0-basic"]["output"]
    assert "parent: PermissionError" in out and "parent group: PermissionError" in out
    assert "NotImplementedError: still alive" in out  # kill(-1) spares the caller, and reached nothing of ours


def test_an_infinite_loop_costs_its_time_limit_then_a_short_one(tmp_path):
    started = time.monotonic()
    results, _ = grade_here(attack("infinite_loop", tmp_path), tmp_path / "r.json",
                            {"6c-0-basic", "6c-1-basic", "6c-2-hidden", "6d-0-basic"}, timeout=6)
    zero(results)
    tests = by_id(results)
    assert "did not finish within 6 s" in tests["6c-0-basic"]["output"]
    assert "shortened" in tests["6c-1-basic"]["output"]
    assert "NotImplementedError" in tests["6d-0-basic"]["output"]
    assert time.monotonic() - started < 90


def test_sleep_is_cut_by_the_wall_clock(tmp_path):
    results, _ = grade_here(attack("sleep", tmp_path), tmp_path / "r.json", {"6d-0-basic"}, timeout=4)
    zero(results)
    assert "did not finish within 4 s" in by_id(results)["6d-0-basic"]["output"]


def test_stdin_is_empty_and_there_is_no_terminal(tmp_path):
    results, _ = grade_here(attack("stdin_read", tmp_path), tmp_path / "r.json", {"6c-0-basic"}, timeout=20)
    zero(results)
    out = by_id(results)["6c-0-basic"]["output"]
    assert "STDIN: ''" in out and "EOFError" in out and "TTY: OSError" in out


def test_a_memory_bomb_is_contained_and_the_next_call_works(tmp_path):
    results, _ = grade_here(attack("memory_bomb", tmp_path), tmp_path / "r.json", {"6d-0-basic", "6d-1-hidden"})
    zero(results)
    tests = by_id(results)
    assert "MemoryError" in tests["6d-0-basic"]["output"] or "killed by signal" in tests["6d-0-basic"]["output"]
    assert "6 GiB" not in outputs(results)


def test_a_fork_flood_is_capped_and_every_child_killed(tmp_path):
    results, _ = grade_here(attack("fork_flood", tmp_path), tmp_path / "r.json", {"6c-0-basic"})
    zero(results)
    out = by_id(results)["6c-0-basic"]["output"]
    assert "refused=BlockingIOError" in out and "made=200" not in out


def test_huge_output_and_files_are_capped(tmp_path):
    results, _ = grade_here(attack("huge_output", tmp_path), tmp_path / "r.json", {"6c-0-basic", "6f-0-basic"})
    zero(results)
    tests = by_id(results)
    assert "FLOOD" in tests["6c-0-basic"]["output"] and "output truncated" in tests["6c-0-basic"]["output"]
    assert len(tests["6c-0-basic"]["output"]) <= 16 * 1024
    assert "File too large" in tests["6f-0-basic"]["output"]  # Python ignores SIGXFSZ: the write fails
    assert (tmp_path / "r.json").stat().st_size < 64 * 1024


def test_lying_return_objects_are_refused(tmp_path):
    results, log = grade_here(attack("lying_objects", tmp_path), tmp_path / "r.json",
                              {"6c-0-basic", "6d-0-basic", "6d-1-hidden", "6e-0-basic", "6f-0-basic", "6h-0-basic"})
    zero(results)
    tests = by_id(results)
    assert "Agreeable" in tests["6c-0-basic"]["output"] and "torch.Tensor" in tests["6c-0-basic"]["output"]
    assert "Python float" in tests["6d-0-basic"]["output"]
    assert "True or False" in tests["6e-0-basic"]["output"]
    assert "AgreeableArray" in tests["6f-0-basic"]["output"]
    assert "NaN" in tests["6h-0-basic"]["output"]
    assert "cannot be graded" in tests["6d-1-hidden"]["output"] and "NaN" not in tests["6d-1-hidden"]["output"]
    assert "log_likelihood() returned NaN; it must return a finite real number" in log  # for staff only


def test_monkeypatching_the_libraries_changes_nothing(tmp_path):
    results, _ = grade_here(attack("monkeypatch", tmp_path), tmp_path / "r.json", {"6c-0-basic", "6c-1-basic",
                                                                                    "6d-0-basic"})
    zero(results)
    assert "autograder error" not in outputs(results)


@ROOT_ONLY
def test_the_network_is_off(tmp_path):
    results, log = grade_here(attack("network", tmp_path), tmp_path / "r.json", {"6c-0-basic"})
    zero(results)
    out = by_id(results)["6c-0-basic"]["output"]
    if "network off" not in log:
        pytest.skip("this machine does not allow a private network namespace")
    assert "connected" not in out and out.count("NET ") == 3


def test_a_linked_file_is_not_followed(tmp_path):
    folder = attack("none", tmp_path)
    (folder / "likelihood.py").unlink()
    (folder / "likelihood.py").symlink_to(REFERENCE / "likelihood.py")
    results, _ = grade_here(folder, tmp_path / "r.json", {"6d-0-basic"})
    zero(results)
    assert "likelihood.py was not uploaded" in by_id(results)["6d-0-basic"]["output"]


@ROOT_ONLY
def test_results_cannot_be_written_by_student_code(tree, tmp_path):
    results, _, path = tree.run(attack("results_overwrite", tmp_path, known=(str(tree.results_dir / "results.json"),)))
    zero(results)
    out = by_id(results)["6c-0-basic"]["output"]
    # not there at all in the worker's private view; PermissionError where it is locked instead
    assert re.search(f"OVERWRITE {re.escape(str(path))} write: (FileNotFoundError|PermissionError)", out), out
    assert "done" not in out
    assert not [t for t in results["tests"] if (t.get("extra_data") or {}).get("harness_fault")]


@ROOT_ONLY
def test_a_delayed_writer_dies_before_the_results_are_written(tree, tmp_path):
    results, _, path = tree.run(attack("delayed_writer", tmp_path))
    zero(results)
    assert "DAEMON started" in by_id(results)["6c-0-basic"]["output"]
    written = path.read_bytes()
    time.sleep(3)  # the daemon would rewrite the file every 0.2 s
    assert path.read_bytes() == written


@ROOT_ONLY
def test_the_reference_solution_cannot_be_read(tree, tmp_path):
    results, _, _ = tree.run(attack("read_reference", tmp_path), only={"6c-0-basic", "6d-0-basic", "6e-0-basic"})
    zero(results)
    out = outputs(results)
    assert re.search(f"STEAL {re.escape(str(tree.root))}/reference_solution/sample.py: "
                     "(FileNotFoundError|PermissionError)", out), out
    assert "characters" not in out and "THRESHOLD = -300" not in out


@ROOT_ONLY
def test_hidden_tests_and_inputs_never_reach_students(tree, tmp_path):
    results, staff_log, _ = tree.run(attack("leak_hidden", tmp_path), only={"6d-0-basic", "6d-1-hidden",
                                                                           "6d-2-hidden"})
    assert "LEAK-FORGED" in staff_log  # its forged error answer reached the harness (and staff) only
    zero(results)
    tests = by_id(results)
    assert "LEAK-LEN-10" in tests["6d-0-basic"]["output"]  # the attack ran on the public test
    assignment = load_assignment()
    hidden_lengths = [n for test_id in ("6d-1-hidden", "6d-2-hidden") for n in assignment.test(test_id).params["lengths"]]
    for hidden_len in hidden_lengths:
        assert f"LEAK-LEN-{hidden_len}" not in outputs(results, visible_only=True)
    for test_id in ("6d-1-hidden", "6d-2-hidden"):
        assert "LEAK" not in tests[test_id]["output"]
        assert tests[test_id]["output"].startswith("likelihood.py raised an exception: run the public tests")
    assert "TestHidden" not in outputs(results) and "seed" not in outputs(results, visible_only=True)


@ROOT_ONLY
def test_fake_results_on_stdout_and_forged_answers_change_nothing(tree, tmp_path):
    results, stdout, _ = tree.run(attack("fake_json_stdout", tmp_path), only={"6c-0-basic", "6c-1-basic"})
    zero(results)  # a forged answer is still only an answer: the harness checks it like any other
    assert all("malformed" in t["output"] or "broke the channel" in t["output"] for t in results["tests"])
    assert all(t["name"].startswith(("6c-0-basic:", "6c-1-basic:")) for t in results["tests"])
    assert not [line for line in stdout.splitlines() if line.lstrip().startswith('{"score"')]  # never a raw line


@ROOT_ONLY
def test_the_grader_cannot_be_modified(tree, tmp_path):
    import site

    before = tree.fingerprint()
    results, _, _ = tree.run(attack("write_grader_dir", tmp_path), only={"6c-0-basic"})
    planted = [p for p in site.getsitepackages() if os.path.exists(os.path.join(p, "zz_attack.pth"))]
    for p in planted:
        os.unlink(os.path.join(p, "zz_attack.pth"))
    zero(results)
    attempts = [line for line in by_id(results)["6c-0-basic"]["output"].splitlines()
                if line.startswith(("WROTE", "WRITE", "CHMOD"))]
    refused = ("EACCES", "EPERM", "ENOENT", "EROFS")  # denied, absent from the view, or read-only in it
    assert len(attempts) >= 20 and all(line.endswith(refused) for line in attempts), attempts
    assert not planted
    assert tree.fingerprint() == before
