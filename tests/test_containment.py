"""A fault in one student function or file costs only the tests of that function or file."""
from __future__ import annotations

import time

import pytest

from attack_support import ATTACKS, by_id, grade_here, machine_leftovers
from conftest import REFERENCE

pytestmark = pytest.mark.slow
SYNTAX_ERROR = "\n\ndef broken(:\n    pass\n"


def reference_with(tmp_path, changes: dict[str, str]):
    folder = tmp_path / "submission"
    folder.mkdir()
    for name in ("sample.py", "likelihood.py", "classifier.py"):
        (folder / name).write_text((REFERENCE / name).read_text() + changes.get(name, ""))
    return folder


def test_a_sample_that_never_returns_still_gets_full_marks_on_6d_6e_and_temperature_scale(tmp_path):
    loop = (ATTACKS / "infinite_loop" / "sample.py").read_text()
    only = {"6c-0-basic", "6c-1-basic", "6f-0-basic", "6d-0-basic", "6d-1-hidden", "6d-2-hidden", "6d-3-hidden",
            "6e-0-basic", "6e-1-hidden"}
    started = time.monotonic()
    results, _ = grade_here(reference_with(tmp_path, {"sample.py": "\n" + loop}), tmp_path / "r.json", only,
                            timeout=10)
    tests = by_id(results)
    for test_id in ("6c-0-basic", "6c-1-basic"):
        assert tests[test_id]["score"] == 0 and "did not finish" in tests[test_id]["output"]
    for test_id in only - {"6c-0-basic", "6c-1-basic"}:
        assert tests[test_id]["status"] == "passed", (test_id, tests[test_id]["output"])
    assert time.monotonic() - started < 120
    assert machine_leftovers() == []


@pytest.mark.parametrize("broken, lost", [
    ("sample.py", {"6c-0-basic", "6f-0-basic"}),
    ("classifier.py", {"6e-0-basic"}),
    ("likelihood.py", {"6d-0-basic", "6e-0-basic"}),  # the provided classifier.py imports log_likelihood
])
def test_a_syntax_error_costs_only_the_parts_of_its_file(tmp_path, broken, lost):
    only = {"6c-0-basic", "6f-0-basic", "6d-0-basic", "6e-0-basic"}
    results, _ = grade_here(reference_with(tmp_path, {broken: SYNTAX_ERROR}), tmp_path / "r.json", only)
    tests = by_id(results)
    for test_id in only:
        assert (tests[test_id]["score"] == 0) == (test_id in lost), (test_id, tests[test_id]["output"])
    for test_id in lost:
        output = tests[test_id]["output"]
        assert "failed to import" in output and "SyntaxError" in output and f'File "{broken}", line' in output
        assert "/tmp/" not in output  # paths relative to the submission
