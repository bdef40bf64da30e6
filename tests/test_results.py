"""The results object and its serializer to Gradescope's results.json."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from autograder.results import GradingResults, TestResult
from conftest import ROOT, strict_json


def test_totals_and_extra_credit():
    r = GradingResults(tests=[
        TestResult("6c-0-basic: a", points=1, score=1, passed=True),
        TestResult("6d-0-basic: b", points=2, score=0),
        TestResult("6h-0-basic: c", points=2, score=2, passed=True, extra_credit=True),
    ])
    assert (r.score, r.max_score, r.extra_credit_available) == (3, 3, 2)
    out = strict_json(r.dumps())
    assert [t["max_score"] for t in out["tests"]] == [1.0, 2.0, 0.0]
    assert out["tests"][2]["score"] == 2.0 and out["score"] == 3


@pytest.mark.parametrize("given, kept", [(5, 1), (float("nan"), 0), (-3, 0)], ids=["above", "nan", "negative"])
def test_a_score_is_never_more_than_the_test_is_worth_nor_nan(given, kept):
    assert TestResult("x", points=1, score=given).score == kept


def big_results(tag: str, tests: int) -> GradingResults:
    """Results some megabytes long once written, each test's output marked with ``tag``."""
    return GradingResults(tests=[TestResult(f"{tag} {i}", points=1, output=tag * 15_000) for i in range(tests)])


def torn_reads(path: Path, write, rounds: int) -> list[str]:
    """Rewrite ``path`` with two documents in turn (``write(results, path)``) while another thread
    reads it; what the reader saw that was neither document whole."""
    documents = [big_results("a", 120), big_results("b", 160)]
    whole = {doc.dumps() for doc in documents}
    write(documents[0], path)
    done, seen = threading.Event(), []

    def read():
        while not done.is_set():
            text = path.read_text()
            if text not in whole:
                seen.append(f"{len(text)} characters")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(rounds):
            write(documents[i % 2], path)
            if seen:
                break
    finally:
        done.set()
        reader.join()
    return seen


def test_a_reader_never_sees_a_torn_results_file(tmp_path):
    assert torn_reads(tmp_path / "results.json", lambda r, p: r.write(p, durable=False), 200) == []


def test_the_reader_would_see_a_write_in_place(tmp_path):
    """The control: the same reader catches a file written in place, so the test above can fail."""
    assert torn_reads(tmp_path / "results.json", lambda r, p: p.write_text(r.dumps()), 2000)


WRITE_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from autograder.results import GradingResults, TestResult
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails (EFBIG) instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    GradingResults(tests=[TestResult(f"t {i}", points=1, output="n" * 15_000) for i in range(50)]).write(Path(sys.argv[1]))
except OSError as exc:
    print("refused:", exc.strerror)
"""


def test_a_write_that_fails_midway_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "results.json"
    old = GradingResults(tests=[TestResult("old", points=1, output="kept")])
    old.write(path)
    proc = subprocess.run([sys.executable, "-c", WRITE_UNDER_A_FILE_SIZE_LIMIT, str(path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert "refused: File too large" in proc.stdout, proc.stdout + proc.stderr
    assert path.read_text() == old.dumps()


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "results.json"
    subprocess.run([sys.executable, "-c", WRITE_UNDER_A_FILE_SIZE_LIMIT, str(path)], capture_output=True,
                   text=True, cwd=ROOT, timeout=60, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_long_output_is_cut_in_results_json(tmp_path):
    path = tmp_path / "out" / "results.json"
    GradingResults(tests=[TestResult("t", points=1, output="x" * 100_000)]).write(path)
    assert len(strict_json(path.read_text())["tests"][0]["output"]) < 20_000


def test_results_json_is_strict_json_with_a_float_time(tmp_path):
    path = tmp_path / "results.json"
    GradingResults(tests=[TestResult("t", points=1)]).write(path)
    assert isinstance(strict_json(path.read_text())["execution_time"], float)


def test_autograder_failure_gives_nothing_and_hides_the_traceback():
    r = GradingResults.autograder_failure("KeyError: x", "Traceback ...secret path...")
    out = json.loads(r.dumps())
    assert out["score"] == 0
    visible = [t for t in out["tests"] if t["visibility"] != "hidden"]
    assert visible and all("secret" not in t["output"] for t in visible)
    assert any("secret" in t["output"] for t in out["tests"] if t["visibility"] == "hidden")


def test_a_tests_id_and_harness_fault_survive_results_json():
    graded = TestResult(name="6d-0-basic: a title", points=2.0, score=2.0, passed=True,
                        extra_data={"test_id": "6d-0-basic"}, test_id="6d-0-basic")
    faulty = GradingResults.autograder_failure("it broke", "traceback", tests=[graded])
    data = json.loads(faulty.dumps())
    assert "harness_fault" not in data["tests"][0]["extra_data"]       # a graded test's file is as before
    read = [TestResult.from_gradescope(t) for t in data["tests"]]
    assert [(t.test_id, t.harness_fault) for t in read] == [("6d-0-basic", False), (None, True), (None, True)]
    assert [t.name for t in faulty.harness_faults] == ["autograder error", "autograder error (staff detail)"]


def test_a_tests_diagnosis_and_markdown_output_survive_results_json():
    diagnosed = TestResult(name="6d-0-basic: a title", points=2.0, output="**wrong** | a | b |", test_id="6d-0-basic",
                           extra_data={"test_id": "6d-0-basic"}, diagnosis="likelihood:mean", output_format="md")
    plain = TestResult(name="6c-0-basic: a title", points=1.0, score=1.0, passed=True)
    data = strict_json(GradingResults(tests=[diagnosed, plain]).dumps())
    assert data["tests"][0]["output_format"] == "md" and data["tests"][0]["extra_data"]["diagnosis"] == "likelihood:mean"
    assert "output_format" not in data["tests"][1] and "extra_data" not in data["tests"][1]   # text is Gradescope's default
    read = [TestResult.from_gradescope(t) for t in data["tests"]]
    assert [(t.diagnosis, t.output_format) for t in read] == [("likelihood:mean", "md"), (None, "text")]
    assert read[0].extra_data == {"test_id": "6d-0-basic"}


def test_an_unknown_output_format_is_refused():
    with pytest.raises(ValueError, match="output_format 'html' is not one of"):
        TestResult(name="t", points=1.0, output_format="html")
