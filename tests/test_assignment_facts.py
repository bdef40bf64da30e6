"""Question 6 lives in ``autograder/q6/``: no other harness module names one of its facts.

The generic harness takes them from the assignment (its drivers module: the student files, the
test-id form and public rule, what grading its models needs), so another question is a new
package, not edits all over the harness.  A fact that must stay elsewhere goes in ``ALLOWED``
with its reason.
"""
from __future__ import annotations

import re

import pytest

from conftest import ROOT

HARNESS = ROOT / "autograder"
QUESTION = HARNESS / "q6"
FACTS = {  # what the pattern finds -> the pattern (case-insensitive)
    "a course test id": r"\b[0-9]+[a-z]-[0-9]+-(basic|hidden)\b",
    "a course test part": r"\b6[a-h]-[0-9]",
    "the public rule's suffix": r"-basic\b",
    "the vocabulary size": r"\b5025[67]\b",
    "the model's name": r"\bgpt-?2\b",
    "the end-of-text token": r"<\|endoftext\|>",
    "a student file": r"\b(sample|likelihood|classifier)\.py\b",
    "GPT-2 small's shape": r"\b12 [x*] 768\b",
}
ALLOWED: dict[tuple[str, str], str] = {}   # (module relative to the harness root, fact) -> why it stays


def harness_modules() -> list:
    return sorted(p for p in HARNESS.rglob("*.py") if QUESTION not in p.parents)


def test_the_scan_sees_the_harness_and_the_question():
    """The scan would find a fact: the question's own package names every one of them."""
    modules = harness_modules()
    assert HARNESS / "config.py" in modules and HARNESS / "sandbox" / "worker.py" in modules
    question = "\n".join(p.read_text() for p in QUESTION.rglob("*.py"))
    missing = [fact for fact, pattern in FACTS.items() if not re.search(pattern, question, re.IGNORECASE)]
    assert missing == [], f"patterns that match nothing in autograder/q6/ (fix the pattern): {missing}"


@pytest.mark.parametrize("fact", FACTS)
def test_no_module_outside_the_question_names_it(fact):
    found = []
    for path in harness_modules():
        rel = path.relative_to(ROOT).as_posix()
        if (rel, fact) in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(FACTS[fact], line, re.IGNORECASE):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == [], (f"{fact} outside autograder/q6/: take it from the assignment (its drivers module) "
                         "or move it into autograder/q6/:\n" + "\n".join(found))
