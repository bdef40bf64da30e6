"""A regrade's output folder read back as plain data, for its reports (``grades.csv``, the summary,
``report.html``).

``regrade`` records what the per-submission files cannot tell, the submitters and the tests it
graded, in a manifest beside the reports (``regrade.json``, or ``regrade-shard-I-of-N.json`` for a
shard).  Everything else comes from ``OUT/submission_<id>/``: ``results.json`` (scores, each test's
diagnosis and fault flag, ``execution_time``, ``extra_data.memory``) and ``error.txt`` (why it was
not graded).  Only JSON and text are read; nothing here runs submitted code.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from autograder.errors import UsageError
from autograder.results import TestResult

FOLDER = re.compile(r"^submission_(?P<id>[0-9A-Za-z_-]+)$")
NO_MESSAGE = "(no message)"
FIRST_LINE = 160            # characters of a failed test's first output line that name its group


def manifest_name(shard: tuple[int, int] | None) -> str:
    return "regrade.json" if shard is None else f"regrade-shard-{shard[0]}-of-{shard[1]}.json"


def first_line(output: str) -> str:
    """A failed test's first output line, as summary.txt groups failures without a diagnosis."""
    lines = (output or NO_MESSAGE).strip().splitlines() or [NO_MESSAGE]
    return lines[0][:FIRST_LINE]


def status_of(results: dict) -> str:
    """"autograder error" when the run itself failed (a fault test of no configured test), else "graded"."""
    faults = [t for t in map(TestResult.from_gradescope, results.get("tests", [])) if t.harness_fault and not t.test_id]
    return "autograder error" if faults else "graded"


@dataclass(frozen=True)
class Submitters:
    id: str
    names: tuple[str, ...] = ()
    sids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """What regrade graded: the tests (id -> title) in order and the submissions with their submitters."""

    test_ids: tuple[str, ...]
    titles: dict[str, str]
    submissions: tuple[Submitters, ...]
    shard: tuple[int, int] | None = None
    recorded: bool = True            # False: rebuilt from the submission folders (no submitters known)

    def to_json(self) -> str:
        data = {"tests": [{"id": t, "title": self.titles.get(t, "")} for t in self.test_ids],
                "shard": list(self.shard) if self.shard else None,
                "submissions": [{"id": s.id, "names": list(s.names), "sids": list(s.sids), "emails": list(s.emails)}
                                for s in self.submissions]}
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        try:
            data = json.loads(path.read_text())
            shard = tuple(int(x) for x in data["shard"]) if data.get("shard") else None
            return cls(test_ids=tuple(str(t["id"]) for t in data["tests"]),
                       titles={str(t["id"]): str(t.get("title", "")) for t in data["tests"]},
                       submissions=tuple(Submitters(str(s["id"]), *(tuple(str(v) for v in s.get(k, ()))
                                                                    for k in ("names", "sids", "emails")))
                                         for s in data["submissions"]),
                       shard=shard if shard and len(shard) == 2 else None)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"cannot read the regrade manifest {path} ({type(exc).__name__}: {exc}); "
                             "run regrade into that folder again to rewrite it") from None

    @classmethod
    def from_folders(cls, out: Path) -> "Manifest":
        """For a folder regrade wrote no manifest in: its submission folders, and the tests their
        results hold, in the order they first appear."""
        found = sorted((m["id"] for p in out.iterdir() if p.is_dir() and (m := FOLDER.match(p.name))),
                       key=lambda i: (0, int(i), "") if i.isdigit() else (1, 0, i))
        if not found:
            raise UsageError(f"{out} holds no submission_<id>/ folder; give the --out folder of a regrade")
        ids: dict[str, str] = {}
        for sid in found:
            data = _read_results(out / f"submission_{sid}" / "results.json")
            for t in map(TestResult.from_gradescope, (data or {}).get("tests", [])):
                if t.test_id and t.test_id not in ids:
                    ids[t.test_id] = t.name.split(": ", 1)[-1]
        return cls(tuple(ids), ids, tuple(Submitters(i) for i in found), recorded=False)


def load_manifest(out: Path, shard: tuple[int, int] | None = None) -> Manifest:
    """The manifest regrade recorded in ``out``, or one rebuilt from its folders if it recorded none."""
    out = Path(out)
    if not out.is_dir():
        raise UsageError(f"{out} is not a folder; give the --out folder of a regrade")
    path = out / manifest_name(shard)
    return Manifest.read(path) if path.is_file() else Manifest.from_folders(out)


def _read_results(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("tests", []), list) else None


@dataclass
class Submission:
    """One submission's files in the regrade folder."""

    who: Submitters
    status: str                       # "graded", "autograder error" or "not graded"
    error: str = ""                   # why it was not graded
    score: float | None = None
    max_score: float = 0.0
    tests: list[TestResult] = field(default_factory=list)
    seconds: float | None = None      # results.json's execution_time: the grade's wall time
    memory: dict = field(default_factory=dict)
    has_log: bool = False

    @property
    def id(self) -> str:
        return self.who.id

    def test(self, test_id: str) -> TestResult | None:
        return next((t for t in self.tests if t.test_id == test_id), None)


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def load_submission(out: Path, who: Submitters) -> Submission:
    folder = Path(out) / f"submission_{who.id}"
    has_log = (folder / "staff_log.txt").is_file()
    results_path = folder / "results.json"
    data = _read_results(results_path)
    if data is None:
        try:
            error = (folder / "error.txt").read_text(errors="replace").strip()
        except OSError:
            error = ""
        if not error:
            error = "results.json cannot be read" if results_path.exists() else "not graded yet"
        return Submission(who, "not graded", error=error, has_log=has_log)
    raw = [t for t in data["tests"] if isinstance(t, dict)]
    tests = [TestResult.from_gradescope(t) for t in raw]
    extra = data.get("extra_data") if isinstance(data.get("extra_data"), dict) else {}
    memory = extra.get("memory") if isinstance(extra.get("memory"), dict) else {}
    return Submission(who, status_of({"tests": raw}), score=_number(data.get("score")) or 0.0,
                      max_score=sum(t.points for t in tests if not t.extra_credit),
                      tests=tests, seconds=_number(data.get("execution_time")),
                      memory={k: v for k, v in memory.items() if _number(v) is not None}, has_log=has_log)


def load_class(out: Path, manifest: Manifest) -> list[Submission]:
    return [load_submission(out, who) for who in manifest.submissions]


# -- grades.csv and summary.txt ------------------------------------------------------------
def csv_rows(manifest: Manifest, submissions: list[Submission]) -> list[list[str]]:
    """``grades.csv``: header, then a row per submission (a test's score, the total, the status)."""
    rows = [["submission_id", "names", "sids", "emails", *manifest.test_ids, "total", "status"]]
    for s in submissions:
        people = [";".join(values) for values in (s.who.names, s.who.sids, s.who.emails)]
        if s.status == "not graded":
            rows.append([s.id, *people, *[""] * len(manifest.test_ids), "", f"not graded: {s.error}"])
            continue
        cells = [f"{t.score:g}" if (t := s.test(test_id)) is not None else "" for test_id in manifest.test_ids]
        rows.append([s.id, *people, *cells, f"{s.score:g}", s.status])
    return rows


def summary_text(manifest: Manifest, submissions: list[Submission]) -> str:
    """``summary.txt``: the statuses, then each test's failures grouped by their first output line."""
    statuses = Counter(s.status for s in submissions)
    lines = [f"{len(submissions)} submissions: " + ", ".join(f"{n} {k}" for k, n in sorted(statuses.items())), ""]
    lines.append("Most common failures per test:")
    for test_id in manifest.test_ids:
        results = [t for s in submissions if s.status != "not graded" and (t := s.test(test_id)) is not None]
        failures = Counter(first_line(t.output) for t in results if not t.passed)
        lines.append(f"  {test_id}: {sum(failures.values())} of {len(results)} failed")
        for message, count in failures.most_common(3):
            lines.append(f"      {count:>4} x {message}")
    return "\n".join(lines)


# -- what report.html shows ------------------------------------------------------------------
DIAGNOSIS, FIRST = "diagnosis", "first output line"   # how a group of failures is named


@dataclass
class Group:
    """Failed results of one test that share a diagnosis (or, without one, a first output line)."""

    kind: str                          # DIAGNOSIS or FIRST
    label: str
    ids: list[str]


@dataclass
class Tally:
    test_id: str
    title: str
    graded: int = 0                    # results the harness graded (a fault of its own is not graded)
    passed: int = 0
    faults: list[str] = field(default_factory=list)   # submissions whose result is a harness fault
    groups: list[Group] = field(default_factory=list)  # most common first

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.graded if self.graded else None


@dataclass(frozen=True)
class Fault:
    """Something of ours to fix: a submission not graded, the run's own error test, a test the harness could not grade."""

    submission_id: str
    kind: str                          # "not graded", "run failed" or "test not graded"
    test: str                          # the test's id or name ("" for a submission not graded)
    message: str


def tally(manifest: Manifest, submissions: list[Submission]) -> list[Tally]:
    out = []
    for test_id in manifest.test_ids:
        t = Tally(test_id, manifest.titles.get(test_id, ""))
        groups: dict[tuple[str, str], list[str]] = {}
        for s in submissions:
            result = s.test(test_id) if s.status != "not graded" else None
            if result is None:
                continue
            if result.harness_fault:
                t.faults.append(s.id)
                continue
            t.graded += 1
            t.passed += result.passed
            if not result.passed:
                key = (DIAGNOSIS, result.diagnosis) if result.diagnosis else (FIRST, first_line(result.output))
                groups.setdefault(key, []).append(s.id)
        t.groups = [Group(kind, label, ids) for (kind, label), ids in
                    sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0][0] != DIAGNOSIS, kv[0][1]))]
        out.append(t)
    return out


def faults(submissions: list[Submission]) -> list[Fault]:
    found = []
    for s in submissions:
        if s.status == "not graded":
            found.append(Fault(s.id, "not graded", "", s.error))
        for t in s.tests:
            if t.harness_fault:
                found.append(Fault(s.id, "test not graded" if t.test_id else "run failed", t.test_id or t.name,
                                   t.output or NO_MESSAGE))
    return found
