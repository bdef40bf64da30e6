"""The mutation corpus: its manifest, the submissions built from it, and what a grade must show.

``tests/fixtures/corpus/manifest.yml`` lists entries; each entry's fixture replaces one student
file of the reference solution.  ``expectation_problems`` compares a grade with the entry's
declared verdict and returns what is off, so a test can assert on it with a readable message.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "reference_solution"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "corpus"
MANIFEST = FIXTURES / "manifest.yml"
STUDENT_FILES = ("sample.py", "likelihood.py", "classifier.py")
PARTS = ("6c", "6d", "6e", "6f", "6h")
# Test modules (assignment.yml's `module`) whose functions run a replaced file's code:
# classifier.py calls likelihood.py's log_likelihood, so a likelihood mutant reaches 6e too.
MODULES_RUNNING = {"sample.py": {"sample"}, "likelihood.py": {"likelihood", "classifier"},
                   "classifier.py": {"classifier"}}


@dataclass(frozen=True)
class Entry:
    name: str
    file: str                       # the student file the fixture replaces
    correct: bool
    breaks: tuple[str, ...]         # parts that must lose points (wrong entries only)
    may_break: tuple[str, ...]      # parts that may lose points
    description: str

    @property
    def fixture(self) -> Path:
        return FIXTURES / f"{self.name}.py"

    @property
    def label(self) -> str:
        return f"{self.name} ({'correct' if self.correct else 'wrong'}, {self.file}: {self.description})"


def part_of(test_id: str) -> str:
    return test_id.split("-", 1)[0]


def graded_tests_for(entry: Entry, assignment) -> frozenset[str]:
    """The graded tests that run the entry's file."""
    modules = MODULES_RUNNING[entry.file]
    return frozenset(t.id for t in assignment.tests if t.module in modules)


def load_manifest(path: Path = MANIFEST) -> list[Entry]:
    """The corpus entries, checked for consistency with the fixture folder."""
    raw = yaml.safe_load(path.read_text())["entries"]
    entries = []
    for item in raw:
        unknown = set(item) - {"name", "file", "correct", "breaks", "may_break", "description"}
        if unknown:
            raise ValueError(f"{path}: entry {item.get('name')!r} has unknown keys {sorted(unknown)}")
        entry = Entry(name=item["name"], file=item["file"], correct=bool(item["correct"]),
                      breaks=tuple(item.get("breaks") or ()), may_break=tuple(item.get("may_break") or ()),
                      description=item["description"])
        if entry.file not in STUDENT_FILES:
            raise ValueError(f"{path}: {entry.name} replaces {entry.file!r}, not one of {STUDENT_FILES}")
        if not entry.fixture.is_file():
            raise ValueError(f"{path}: {entry.name} has no fixture {entry.fixture}")
        if not set(entry.breaks + entry.may_break) <= set(PARTS):
            raise ValueError(f"{path}: {entry.name} names unknown parts {entry.breaks + entry.may_break}")
        if entry.correct and (entry.breaks or entry.may_break):
            raise ValueError(f"{path}: {entry.name} is correct but lists parts it breaks")
        if not entry.correct and not entry.breaks:
            raise ValueError(f"{path}: {entry.name} is wrong but breaks no part")
        entries.append(entry)
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate entry names")
    stray = sorted(p.stem for p in FIXTURES.glob("*.py") if p.stem not in names)
    if stray:
        raise ValueError(f"{path}: fixtures without a manifest entry: {stray}")
    return entries


def build_submission(entry: Entry, folder: Path) -> Path:
    """``folder`` holding the entry's fixture as its file and the reference's other two files."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in STUDENT_FILES:
        shutil.copyfile(entry.fixture if name == entry.file else REFERENCE / name, folder / name)
    return folder


def _summary(test) -> str:
    output = " ".join(test.output.split())
    return f"{test.name.split(':', 1)[0]} ({test.score:g}/{test.points:g}): {output[:300] or '(no feedback)'}"


def expectation_problems(entry: Entry, results, ran: frozenset[str]) -> list[str]:
    """What in ``results`` (a GradingResults) contradicts the entry's manifest verdict."""
    graded = {t.name.split(":", 1)[0]: t for t in results.tests if t.name.split(":", 1)[0] in ran}
    problems = []
    faults = [t for t in results.tests if t.name.startswith("autograder error")]
    if faults:
        problems.append("the harness faulted: " + " | ".join(" ".join(t.output.split())[:600] for t in faults))
    missing = sorted(ran - set(graded))
    if missing:
        problems.append(f"tests asked for but not graded: {missing}")
    lost = {i: t for i, t in graded.items() if not t.passed or t.score < t.points}
    kept = sorted(i for i in graded if i not in lost)
    if entry.correct:
        if lost:
            problems.append("false failure: a correct implementation lost points on "
                            + "; ".join(_summary(lost[i]) for i in sorted(lost)))
        return problems
    for part in entry.breaks:
        if not any(part_of(i) == part for i in lost):
            ran_part = sorted(i for i in graded if part_of(i) == part)
            problems.append(f"escaped in {part}: the mistake lost no points on {ran_part or 'any test (none ran)'}")
    allowed = set(entry.breaks) | set(entry.may_break)
    collateral = sorted(i for i in lost if part_of(i) not in allowed)
    if collateral:
        problems.append("lost points on parts it does not break: " + "; ".join(_summary(lost[i]) for i in collateral))
    if problems:
        problems.append(f"lost points on {sorted(lost) or 'nothing'}; full marks on {kept or 'nothing'}")
    return problems
