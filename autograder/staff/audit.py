"""``audit``: grade the mutation corpus under several grader seeds and report the grader's error rates.

Every selected entry of the corpus (``autograder.staff.corpus``) is graded on the tests that run its
file, once per seed: seed 0 is the assignment's own, seed i > 0 ``derive_seed(seed, "audit", i)``.
Grades run seed by seed, so the reference solution's answers, shared through the on-disk
reference cache, are computed once per request.  The report gives, per graded test, its
false-failure bound and design power beside what the corpus measured (false failures of the
correct entries, detections of the wrong ones), and, per entry, whether every grade agreed with
its manifest.  The report holds no timings: the same seeds give the same report.
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from autograder.config import Assignment, derive_seed
from autograder.context import ReferenceCache
from autograder.paths import REFERENCE_CACHE_DIR
from autograder.staff.corpus import Corpus, Entry, expectation_problems, graded_tests, lost, part_of
from autograder.errors import UsageError
from autograder.staff.parallel import DIED, run_jobs
from autograder.provenance import harness_digest
from autograder.q6.power import design_power

_CACHE = ReferenceCache(REFERENCE_CACHE_DIR)   # per process; processes share its files


@dataclass(frozen=True, eq=False)
class AuditJob:
    corpus: Corpus
    entry: Entry
    index: int                      # which of the audit's seeds
    assignment: Assignment          # with that seed
    only: frozenset[str]            # the tests that run the entry's file
    unsafe: bool = False            # grade even where student code could read the harness's files


@dataclass(frozen=True)
class Grade:
    entry: str
    index: int
    seed: int
    graded: tuple[str, ...]         # test ids graded
    lost: tuple[str, ...]           # test ids that lost points
    problems: tuple[str, ...]       # what contradicts the manifest
    seconds: float


def audit_seeds(assignment: Assignment, count: int) -> list[int]:
    """The assignment's own seed, then ``count - 1`` seeds derived from it."""
    if count < 1:
        raise UsageError(f"--seeds {count}: give at least 1")
    return [assignment.seed] + [derive_seed(assignment.seed, "audit", i) for i in range(1, count)]


def grade_entry(job: AuditJob) -> Grade:
    """Grade one entry under one seed; a failure of the grade itself becomes a problem, never an exception."""
    from autograder.runner import grade

    started = time.monotonic()
    seed = job.assignment.seed
    try:
        with tempfile.TemporaryDirectory(prefix="ag-audit-") as tmp:
            submission = job.corpus.build_submission(job.entry, Path(tmp) / "submission")
            results, _log = grade(submission, job.assignment, only=job.only, reference_cache=_CACHE,
                                  unsafe=job.unsafe)
    except Exception as exc:  # noqa: BLE001 - one entry's failure must never stop the audit
        return Grade(job.entry.name, job.index, seed, (), (), (f"the grade failed: {type(exc).__name__}: {exc}",),
                     time.monotonic() - started)
    graded = graded_tests(results, job.only)
    return Grade(job.entry.name, job.index, seed, tuple(sorted(graded)),
                 tuple(sorted(i for i, t in graded.items() if lost(t))),
                 tuple(expectation_problems(job.entry, results, job.only, public=_public(job.assignment))),
                 time.monotonic() - started)


def _public(assignment: Assignment) -> frozenset[str]:
    """The public tests, whose feedback a wrong entry's manifest names."""
    return frozenset(t.id for t in assignment.tests if t.public)


def run_audit(corpus: Corpus, assignment: Assignment, entries: list[Entry], seeds: int, jobs: int = 1,
              on_grade: Callable[[Grade, int, int], None] | None = None, unsafe: bool = False) -> "AuditReport":
    """Grade ``entries`` under ``seeds`` seeds, ``jobs`` at a time; ``on_grade(grade, done, total)`` as each ends."""
    plan = [AuditJob(corpus, entry, index, dataclasses.replace(assignment, seed=seed),
                     corpus.graded_tests_for(entry, assignment), unsafe)
            for index, seed in enumerate(audit_seeds(assignment, seeds)) for entry in entries]
    grades = []
    for done, (job, grade) in enumerate(run_jobs(grade_entry, plan, jobs), start=1):
        if grade is None:
            grade = Grade(job.entry.name, job.index, job.assignment.seed, (), (), (DIED,), 0.0)
        grades.append(grade)
        if on_grade is not None:
            on_grade(grade, done, len(plan))
    order = {e.name: k for k, e in enumerate(entries)}
    grades.sort(key=lambda g: (g.index, order[g.entry]))
    return AuditReport(corpus, assignment, entries, audit_seeds(assignment, seeds), grades)


@dataclass
class Rates:
    id: str
    statistical: bool
    alpha: float                    # false-failure bound of the test (0 for exact checks)
    power: tuple[float, float, float] | None   # proven power: T x1.1, T x0.9, TV 0.1 head-tail
    correct_graded: int = 0
    false_failures: int = 0
    wrong_graded: int = 0           # grades of wrong entries that declare the test's part broken
    caught: int = 0


@dataclass
class AuditReport:
    corpus: Corpus
    assignment: Assignment
    entries: list[Entry]
    seeds: list[int]
    grades: list[Grade]

    def tests(self) -> list[Rates]:
        """One row per graded test that some entry ran, in the assignment's order."""
        by_name = {e.name: e for e in self.entries}
        ran = set().union(*(self.corpus.graded_tests_for(e, self.assignment) for e in self.entries))
        rows = {}
        for spec in self.assignment.tests:
            if spec.id in ran:
                power = design_power(self.assignment, spec)
                alpha = self.assignment.alpha_per_test if spec.statistical else 0.0
                proven = power and (float(power.power_hot), float(power.power_cold), float(power.power_tv))
                rows[spec.id] = Rates(spec.id, spec.statistical, alpha, proven)
        for grade in self.grades:
            entry = by_name[grade.entry]
            for test_id in grade.graded:
                row = rows[test_id]
                if entry.correct:
                    row.correct_graded += 1
                    row.false_failures += test_id in grade.lost
                elif part_of(test_id) in entry.breaks:
                    row.wrong_graded += 1
                    row.caught += test_id in grade.lost
        return list(rows.values())

    def problems(self, entry: Entry) -> list[str]:
        return [f"seed {g.seed}: {p}" for g in self.grades if g.entry == entry.name for p in g.problems]

    @property
    def contradictions(self) -> list[Entry]:
        return [e for e in self.entries if self.problems(e)]

    def totals(self) -> str:
        rows = self.tests()
        bad = len(self.contradictions)
        return (f"audit: {len(self.entries)} entries x {len(self.seeds)} seed(s) = {len(self.grades)} grades; "
                f"{len(self.entries) - bad} agree with the manifest, {bad} contradict it; "
                f"false failures {sum(r.false_failures for r in rows)} of {sum(r.correct_graded for r in rows)} "
                f"correct-entry test grades; wrong entries caught on {sum(r.caught for r in rows)} of "
                f"{sum(r.wrong_graded for r in rows)} test grades of the parts they break")

    def text(self) -> str:
        lines = [f"Mutation corpus {self.corpus.manifest} graded by harness {harness_digest()} under "
                 f"{len(self.seeds)} grader seed(s): {', '.join(str(s) for s in self.seeds)}", "",
                 "Per graded test:",
                 "  alpha    bound on the chance that a correct submission fails it (0: an exact check)",
                 "  power    proven power of its design against a temperature x1.1 / x0.9 and a head-tail shift "
                 "of total variation 0.1",
                 "  correct  failed/graded over the grades of correct entries: false failures, must be 0",
                 "  wrong    caught/graded over the grades of wrong entries that declare the test's part broken",
                 f"  {'test':<12} {'statistical':<11} {'alpha':>7}  {'power':<17} {'correct':>8} {'wrong':>8}"]
        for r in self.tests():
            power = "/".join(f"{p:.3f}" for p in r.power) if r.power else "-"
            correct = f"{r.false_failures}/{r.correct_graded}" if r.correct_graded else "-"
            wrong = f"{r.caught}/{r.wrong_graded}" if r.wrong_graded else "-"
            flag = "  FALSE FAILURES" if r.false_failures else ""
            lines.append(f"  {r.id:<12} {'yes' if r.statistical else 'no':<11} {_alpha(r.alpha):>7}  {power:<17} "
                         f"{correct:>8} {wrong:>8}{flag}")
        lines += ["", "Per entry: OK if every seed's grade agrees with the manifest (for a wrong entry, the "
                      "tests that lost points), else what contradicts it"]
        for entry in self.entries:
            problems = self.problems(entry)
            kind = "correct" if entry.correct else "wrong"
            lost_ids = sorted({i for g in self.grades if g.entry == entry.name for i in g.lost})
            verdict = "CONTRADICTS THE MANIFEST" if problems else "OK"
            detail = f"  lost: {' '.join(lost_ids)}" if not entry.correct and not problems else ""
            lines.append(f"  {entry.name:<40} {kind:<7} {entry.file:<14} {verdict}{detail}")
            lines += [f"      {p}" for p in problems]
        return "\n".join(lines + ["", self.totals()])

    def to_json(self) -> dict:
        return {
            "manifest": str(self.corpus.manifest), "grader_digest": harness_digest(), "seeds": self.seeds,
            "tests": [dataclasses.asdict(r) for r in self.tests()],
            "entries": [{"name": e.name, "file": e.file, "correct": e.correct, "breaks": list(e.breaks),
                         "problems": self.problems(e)} for e in self.entries],
            "grades": [{k: v for k, v in dataclasses.asdict(g).items() if k != "seconds"} for g in self.grades],
            "totals": self.totals(),
        }

    def write(self, path: Path) -> None:
        """The report as JSON if ``path`` ends in .json, else as the text ``text()`` prints."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n" if path.suffix == ".json" else self.text() + "\n")


def _alpha(alpha: float) -> str:
    return f"{alpha:.0e}" if alpha else "0"
