"""The mutation corpus: its manifest, the submissions built from it, and what a grade must show.

A manifest (by default ``tests/fixtures/corpus/manifest.yml`` of the staff checkout; no bundle
ships it) lists entries; each entry's fixture, ``<name>.py`` beside the manifest, replaces one
student file of the reference solution.  The manifest also says which test modules run each
student file (``runs``) and which parts an entry may declare broken (``parts``).
``expectation_problems`` compares a grade with the entry's declared verdict and returns what is
off, for ``tests/test_corpus.py`` and the ``audit`` command alike; given the public test ids, it
also checks what a wrong entry's feedback must show (``feedback_problems``): its diagnosis key
and/or a substring of the output, on a public test it fails, or on a hidden one for an entry
whose mistake reaches no public test (``shown_in: hidden``).
"""
from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from autograder.config import Assignment
from autograder.paths import HARNESS_ROOT, REFERENCE_DIR
from autograder.errors import ConfigError, UsageError

DEFAULT_MANIFEST = HARNESS_ROOT / "tests" / "fixtures" / "corpus" / "manifest.yml"
_ENTRY_KEYS = {"name", "file", "correct", "breaks", "may_break", "description", "diagnosis", "feedback", "shown_in"}
_SHOWN_IN = ("public", "hidden")
_DIAGNOSIS = re.compile(r"[a-z0-9]+:[a-z0-9+-]+")


@dataclass(frozen=True)
class Entry:
    name: str
    file: str                       # the student file the fixture replaces
    correct: bool
    breaks: tuple[str, ...]         # parts that must lose points (wrong entries only)
    may_break: tuple[str, ...]      # parts that may lose points
    description: str
    fixture: Path
    diagnosis: str | None = None    # the diagnosis key a failed test must report (wrong entries)
    feedback: str | None = None     # a substring that failed test's output must hold
    shown_in: str = "public"        # the tests that show it: "public", or "hidden" when no public test sees the mistake

    @property
    def label(self) -> str:
        return f"{self.name} ({'correct' if self.correct else 'wrong'}, {self.file}: {self.description})"


@dataclass(frozen=True)
class Corpus:
    manifest: Path
    reference: Path                       # the solution whose files the fixtures replace
    runs: dict[str, tuple[str, ...]]      # student file -> test modules that run its code
    parts: tuple[str, ...]
    entries: tuple[Entry, ...]

    @property
    def student_files(self) -> tuple[str, ...]:
        return tuple(self.runs)

    def graded_tests_for(self, entry: Entry, assignment: Assignment) -> frozenset[str]:
        """The graded tests that run the entry's file."""
        modules = self.runs[entry.file]
        return frozenset(t.id for t in assignment.tests if t.module in modules)

    def build_submission(self, entry: Entry, folder: Path) -> Path:
        """``folder`` holding the entry's fixture as its file and the reference's other files."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.student_files:
            shutil.copyfile(entry.fixture if name == entry.file else self.reference / name, folder / name)
        return folder

    def select(self, pattern: str | None) -> list[Entry]:
        """The entries whose name matches the regular expression ``pattern`` (all if None)."""
        if pattern is None:
            return list(self.entries)
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"--entries {pattern!r} is not a regular expression ({exc}); "
                             "e.g. '_ok_|_bad_'") from None
        chosen = [e for e in self.entries if regex.search(e.name)]
        if not chosen:
            raise UsageError(f"--entries {pattern!r} matches no entry of {self.manifest}; names look like "
                             f"{', '.join(e.name for e in self.entries[:3])}")
        return chosen


def part_of(test_id: str) -> str:
    return test_id.split("-", 1)[0]


def _strings(value, where: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} = {value!r} should be a list of names")
    return tuple(value)


def load_corpus(path: Path | str | None = None) -> Corpus:
    """The corpus of ``path`` (default ``DEFAULT_MANIFEST``), checked against its fixture folder."""
    path = Path(path or DEFAULT_MANIFEST)
    if not path.is_file():
        raise ConfigError(f"no mutation corpus at {path}: it lives in the staff checkout "
                          "(tests/fixtures/corpus/manifest.yml), which no bundle ships; run from the course "
                          "repository or name a manifest with --corpus")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the corpus manifest {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list) or not isinstance(data.get("runs"), dict):
        raise ConfigError(f"{path}: the manifest needs `runs` (student file -> test modules) and a list `entries`")
    folder = path.parent
    runs = {str(name): _strings(modules, str(path), f"runs[{name}]") for name, modules in data["runs"].items()}
    parts = _strings(data.get("parts"), str(path), "parts")
    reference = (folder / data["reference"]).resolve() if data.get("reference") else REFERENCE_DIR
    entries = tuple(_entry(item, path, runs, parts) for item in data["entries"])
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: duplicate entry names {sorted({n for n in names if names.count(n) > 1})}")
    stray = sorted(p.stem for p in folder.glob("*.py") if p.stem not in names)
    if stray:
        raise ConfigError(f"{path}: fixtures without a manifest entry: {stray}; add them to `entries` or delete them")
    missing = [name for name in runs if not (reference / name).is_file()]
    if missing:
        raise ConfigError(f"{path}: the reference solution {reference} lacks {missing}; set `reference`")
    return Corpus(path, reference, runs, parts, entries)


def _entry(item, path: Path, runs: dict, parts: tuple[str, ...]) -> Entry:
    if not isinstance(item, dict) or not {"name", "file", "correct", "description"} <= set(item):
        raise ConfigError(f"{path}: entry {item!r} needs name, file, correct and description")
    unknown = set(item) - _ENTRY_KEYS
    if unknown:
        raise ConfigError(f"{path}: entry {item['name']!r} has unknown keys {sorted(unknown)}; known: {sorted(_ENTRY_KEYS)}")
    where = f"{path}: entry {item['name']!r}"
    if not isinstance(item["correct"], bool):
        raise ConfigError(f"{where}: correct = {item['correct']!r} should be true or false")
    entry = Entry(name=str(item["name"]), file=str(item["file"]), correct=item["correct"],
                  breaks=_strings(item.get("breaks"), where, "breaks"),
                  may_break=_strings(item.get("may_break"), where, "may_break"),
                  description=str(item["description"]), fixture=path.parent / f"{item['name']}.py",
                  diagnosis=item.get("diagnosis"), feedback=item.get("feedback"), shown_in=item.get("shown_in", "public"))
    if entry.file not in runs:
        raise ConfigError(f"{where} replaces {entry.file!r}, not one of {sorted(runs)}")
    if not entry.fixture.is_file():
        raise ConfigError(f"{where} has no fixture {entry.fixture}")
    if not set(entry.breaks + entry.may_break) <= set(parts):
        raise ConfigError(f"{where} names parts {entry.breaks + entry.may_break}; known parts: {list(parts)}")
    if entry.correct and (entry.breaks or entry.may_break):
        raise ConfigError(f"{where} is correct but lists parts it breaks; empty `breaks` or set correct: false")
    if not entry.correct and not entry.breaks:
        raise ConfigError(f"{where} is wrong but breaks no part; list them in `breaks`")
    shown = (entry.diagnosis, entry.feedback)
    if entry.correct and any(v is not None for v in shown + (item.get("shown_in"),)):
        raise ConfigError(f"{where} is correct: it has no feedback to show; remove diagnosis, feedback and shown_in")
    if not entry.correct and all(v is None for v in shown):
        raise ConfigError(f"{where} is wrong but names neither the `diagnosis` key nor the `feedback` substring its "
                          "failed test must show; add one (see the corpus manifest's header)")
    if entry.diagnosis is not None and not (isinstance(entry.diagnosis, str) and _DIAGNOSIS.fullmatch(entry.diagnosis)):
        raise ConfigError(f"{where}: diagnosis = {entry.diagnosis!r} should be a key like 'likelihood:mean-not-sum'")
    if entry.feedback is not None and not (isinstance(entry.feedback, str) and entry.feedback.strip()):
        raise ConfigError(f"{where}: feedback = {entry.feedback!r} should be a non-empty string")
    if entry.shown_in not in _SHOWN_IN:
        raise ConfigError(f"{where}: shown_in = {entry.shown_in!r} should be one of {list(_SHOWN_IN)}")
    return entry


def graded_tests(results, ran: frozenset[str]) -> dict:
    """The tests of ``results`` (a GradingResults) among ``ran``, by test id."""
    return {t.test_id: t for t in results.tests if t.test_id in ran}


def lost(test) -> bool:
    return not test.passed or test.score < test.points


def _summary(test) -> str:
    output = " ".join(test.output.split())
    return f"{test.test_id or test.name} ({test.score:g}/{test.points:g}): {output[:300] or '(no feedback)'}"


def harness_faults(results) -> list:
    """The tests of ``results`` (a GradingResults) that report a fault of the harness: a test that
    could not be graded, or the run's own autograder-error tests.  No submission may cause one."""
    return results.harness_faults


def visible_text(output: str) -> str:
    """A test's output as its reader sees the words: Markdown's backslash escapes and entities
    undone, the divides sign a table-safe Markdown writes for a bar read back as ``|``."""
    return html.unescape(re.sub(r"\\(.)", r"\1", output)).replace("\u2223", "|")


def feedback_problems(entry: Entry, results, ran: frozenset[str], public: frozenset[str]) -> list[str]:
    """What a wrong entry's failed tests do not show of its manifest's ``diagnosis`` and ``feedback``:
    one test among the ``public`` ones it runs (the others for ``shown_in: hidden``) that lost
    points must report that key and hold that substring, in its output as the student reads it."""
    if entry.correct:
        return []
    graded = graded_tests(results, ran)
    pool = {i: t for i, t in graded.items() if lost(t) and ((i in public) == (entry.shown_in == "public"))}
    for test in pool.values():
        if (entry.diagnosis is None or test.diagnosis == entry.diagnosis) and \
                (entry.feedback is None or entry.feedback in visible_text(test.output)):
            return []
    want = " and ".join(x for x in (entry.diagnosis and f"diagnosis {entry.diagnosis!r}",
                                     entry.feedback and f"feedback {entry.feedback!r}") if x)
    shown = "; ".join(f"{i} [{t.diagnosis}]: {' '.join(t.output.split())[:300]}" for i, t in sorted(pool.items()))
    return [f"no failed {entry.shown_in} test shows {want}; they show: {shown or 'nothing (none failed)'}"]


def expectation_problems(entry: Entry, results, ran: frozenset[str], public: frozenset[str] | None = None) -> list[str]:
    """What in ``results`` (a GradingResults) contradicts the entry's manifest verdict (and, given
    the ``public`` test ids, its feedback: ``feedback_problems``)."""
    graded = graded_tests(results, ran)
    problems = []
    faults = harness_faults(results)
    if faults:
        shown = [f"{t.test_id or t.name}: {' '.join(t.output.split())[:600]}" for t in faults]
        problems.append("the harness faulted: " + " | ".join(shown))
    missing = sorted(ran - set(graded))
    if missing:
        problems.append(f"tests asked for but not graded: {missing}")
    lost_by_id = {i: t for i, t in graded.items() if lost(t)}
    kept = sorted(i for i in graded if i not in lost_by_id)
    if entry.correct:
        if lost_by_id:
            problems.append("false failure: a correct implementation lost points on "
                            + "; ".join(_summary(lost_by_id[i]) for i in sorted(lost_by_id)))
        return problems
    for part in entry.breaks:
        if not any(part_of(i) == part for i in lost_by_id):
            ran_part = sorted(i for i in graded if part_of(i) == part)
            problems.append(f"escaped in {part}: the mistake lost no points on {ran_part or 'any test (none ran)'}")
    allowed = set(entry.breaks) | set(entry.may_break)
    collateral = sorted(i for i in lost_by_id if part_of(i) not in allowed)
    if collateral:
        problems.append("lost points on parts it does not break: "
                        + "; ".join(_summary(lost_by_id[i]) for i in collateral))
    if public is not None:
        problems += feedback_problems(entry, results, ran, public)
    if problems:
        problems.append(f"lost points on {sorted(lost_by_id) or 'nothing'}; full marks on {kept or 'nothing'}")
    return problems
