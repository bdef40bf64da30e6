"""``regrade``: grade every submission of a Gradescope export, resumably, in parallel or in shards.

Each submission's ``results.json`` and staff log go to ``OUT/submission_<id>/`` as soon as it is
graded, so an interrupted run resumes where it stopped: a submission is skipped when its
results were written by the same harness (digest), assignment config (digest), seed and set of
tests, unless ``force``.
Reports (``grades.csv``, ``summary.txt``, ``report.html``: ``autograder.staff.report``) are rebuilt
from those files and the manifest ``regrade.json`` written beside them (the tests and the
submitters), so they always cover every finished submission, whichever run graded it, and the
``report`` command can rebuild them from the folder alone.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from autograder.config import Assignment, load_assignment
from autograder.context import ReferenceCache
from autograder.errors import UsageError
from autograder.staff.classdata import Manifest, Submitters, manifest_name, status_of
from autograder.staff.export import ExportedSubmission
from autograder.staff.parallel import DIED, run_jobs
from autograder.provenance import harness_digest
from autograder.staff.report import Reports, write_class_reports

_CACHE = ReferenceCache()   # per process: the reference's answers do not depend on the submission
_ASSIGNMENTS: dict[tuple, Assignment] = {}


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` with 0 <= I < N, as a cluster array job's task id and task count."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r} should be I/N, e.g. 0/4 for the first of 4 shards") from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"--shard {text}: I must be in 0..{n - 1} for N = {n} (shards count from 0)")
    return i, n


def shard_of(submissions: list[ExportedSubmission], shard: tuple[int, int] | None) -> list[ExportedSubmission]:
    if shard is None:
        return list(submissions)
    i, n = shard
    return [s for k, s in enumerate(sorted(submissions, key=lambda s: s.key)) if k % n == i]


@dataclass(frozen=True)
class Job:
    id: str
    folder: Path
    out: Path                        # OUT/submission_<id>
    assignment_path: Path | None
    seed: int | None
    only: frozenset[str] | None
    unsafe: bool = False             # grade even where student code could read the harness's files


@dataclass(frozen=True)
class Outcome:
    id: str
    status: str                      # "graded", "autograder error" or "not graded"
    score: float | None
    seconds: float
    error: str = ""


def _assignment(path: Path | None, seed: int | None) -> Assignment:
    key = (str(path), seed)
    if key not in _ASSIGNMENTS:
        _ASSIGNMENTS[key] = load_assignment(path, seed)
    return _ASSIGNMENTS[key]


def grade_one(job: Job) -> Outcome:
    """Grade one submission and write its files; never raises for the submission's faults."""
    from autograder.runner import grade

    started = time.monotonic()
    job.out.mkdir(parents=True, exist_ok=True)
    error_file = job.out / "error.txt"
    try:
        results, log = grade(job.folder, _assignment(job.assignment_path, job.seed), only=job.only,
                             reference_cache=_CACHE, unsafe=job.unsafe)
        results.extra_data["submission_id"] = job.id
        (job.out / "staff_log.txt").write_text("\n".join(log) + "\n")
        results.write(job.out / "results.json")
        error_file.unlink(missing_ok=True)
        data = results.to_gradescope()
        return Outcome(job.id, status_of(data), data["score"], time.monotonic() - started)
    except Exception as exc:  # noqa: BLE001 - one submission's fault must never stop the batch
        message = f"{type(exc).__name__}: {exc}"
        error_file.write_text(message + "\n")
        return Outcome(job.id, "not graded", None, time.monotonic() - started, message)


class Regrade:
    """One regrade of an (opened) export into ``out``."""

    def __init__(self, submissions: list[ExportedSubmission], out: Path, assignment_path: Path | None = None,
                 seed: int | None = None, only: frozenset[str] | None = None,
                 shard: tuple[int, int] | None = None, force: bool = False, unsafe: bool = False):
        self.out = Path(out)
        self.assignment_path = assignment_path
        self.assignment = load_assignment(assignment_path, seed)
        self.seed, self.only, self.shard, self.force = seed, only, shard, force
        self.test_ids = [t.id for t in self.assignment.tests if only is None or t.id in only]
        self.submissions = shard_of(submissions, shard)
        self.todo: list[Job] = []
        self.skipped: list[str] = []
        self.missing: list[str] = []
        for s in self.submissions:
            dest = self.out / f"submission_{s.id}"
            if s.folder is None:
                self.missing.append(s.id)
                dest.mkdir(parents=True, exist_ok=True)
                (dest / "error.txt").write_text("the export lists this submission but holds no folder for it\n")
            elif not force and self.finished(dest / "results.json"):
                self.skipped.append(s.id)
            else:
                self.todo.append(Job(s.id, s.folder, dest, assignment_path, seed, only, unsafe))

    def finished(self, results_path: Path) -> bool:
        """Written by this harness, config, seed and set of tests, without an autograder error."""
        try:
            data = json.loads(results_path.read_text())
        except (OSError, ValueError):
            return False
        extra = data.get("extra_data") or {}
        ids = [(t.get("extra_data") or {}).get("test_id") for t in data.get("tests", [])]
        return (extra.get("grader_digest") == harness_digest() and extra.get("seed") == self.assignment.seed
                and extra.get("config_digest") == self.assignment.digest
                and ids == self.test_ids and status_of(data) == "graded")

    def run(self, jobs: int = 1) -> Iterator[Outcome]:
        """Grade what is to do, ``jobs`` submissions at a time, yielding each outcome as it finishes."""
        for job, outcome in run_jobs(grade_one, self.todo, jobs):
            if outcome is None:
                (job.out / "error.txt").write_text(DIED + "\n")
                outcome = Outcome(job.id, "not graded", None, 0.0, DIED)
            yield outcome

    # -- reports ---------------------------------------------------------------------------
    def manifest(self) -> Manifest:
        """What the reports need beyond the submissions' folders: the tests and the submitters."""
        titles = {t.id: t.title for t in self.assignment.tests}
        return Manifest(tuple(self.test_ids), {t: titles.get(t, "") for t in self.test_ids},
                        tuple(Submitters(s.id, *(tuple(getattr(p, f) for p in s.submitters)
                                                 for f in ("name", "sid", "email")))
                              for s in self.submissions), self.shard)

    def write_reports(self) -> Reports:
        """Record the manifest, then write the grades CSV, the failure summary and the class report
        from the files in ``out``."""
        self.out.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        (self.out / manifest_name(self.shard)).write_text(manifest.to_json())
        return write_class_reports(self.out, manifest)
