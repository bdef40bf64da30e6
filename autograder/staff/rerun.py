"""``rerun``: one test of one submission, graded exactly as in the full run, with every detail for staff."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autograder.config import load_assignment
from autograder.errors import UsageError
from autograder.results import GradingResults, TestResult


@dataclass
class Rerun:
    test_id: str
    test: TestResult | None      # None when the harness failed before the test ran
    results: GradingResults
    log: list[str]


def rerun(submission: Path, test_id: str, seed: int | None = None, assignment_path: Path | None = None,
          unsafe: bool = False) -> Rerun:
    """Grade only ``test_id``: its seeds derive from the master seed and its id alone, so the score
    is the one the full run gave (for code that does not carry state from one test to the next)."""
    from autograder.runner import grade

    if not Path(submission).is_dir():
        raise UsageError(f"--submission {submission} is not a folder; give the folder that was graded")
    assignment = load_assignment(assignment_path, seed)
    known = [t.id for t in assignment.tests]
    if test_id not in known:
        raise UsageError(f"--test {test_id!r} is not a test of {assignment.source}; known: {', '.join(known)}")
    results, log = grade(Path(submission), assignment, only=frozenset({test_id}), unsafe=unsafe)
    test = next((t for t in results.tests if t.extra_data.get("test_id") == test_id), None)
    return Rerun(test_id, test, results, log)
