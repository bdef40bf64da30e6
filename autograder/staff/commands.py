"""The staff commands of the command line (``rerun``, ``regrade``, ``report``, ``audit``, ``build``).

``autograder.cli`` parses their arguments and calls these; they live here so the student bundle,
which leaves the whole ``autograder/staff/`` folder out, holds none of them.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from autograder.cli import warn_unprotected
from autograder.config import load_assignment
from autograder.staff.audit import run_audit
from autograder.staff.build import build as build_bundles
from autograder.staff.classdata import load_manifest
from autograder.staff.corpus import load_corpus
from autograder.staff.export import open_export
from autograder.staff.regrade import Regrade, parse_shard
from autograder.staff.report import write_class_reports
from autograder.staff.rerun import rerun as rerun_test


def rerun(args: argparse.Namespace) -> int:
    """Regrade one test of one submission and print everything about it, the staff log included."""
    warn_unprotected(args)
    run = rerun_test(Path(args.submission), args.test, args.seed, Path(args.assignment) if args.assignment else None,
                     unsafe=args.unsafe)
    t = run.test
    print(f"rerun of {args.test} on {Path(args.submission).resolve()}")
    if t is None:
        print("the harness failed before the test ran:")
        print(run.results.summary(max_lines=10_000))
    else:
        extra = t.extra_data
        print(f"  grader {extra.get('grader_version')} (digest {extra.get('grader_digest')}), seed {extra.get('seed')}")
        print(f"  {t.name}")
        print(f"  score: {t.score:g} / {t.points:g}{' extra credit' if t.extra_credit else ''}   "
              f"{'PASSED' if t.passed else 'FAILED'}   (students see it: {t.visibility})")
        print("  what the student sees:")
        print("\n".join(f"      {line}" for line in (t.output or "(no message)").splitlines()))
    print("  staff log (every detail, hidden tests included; not for students):")
    print("\n".join(f"      {line}" for entry in run.log for line in entry.splitlines()))
    return 0


def regrade(args: argparse.Namespace) -> int:
    """Grade a Gradescope export into a folder, with a progress bar; write grades.csv and the summary."""
    shard = parse_shard(args.shard) if args.shard else None
    warn_unprotected(args)
    with open_export(Path(args.export)) as submissions:
        run = Regrade(submissions, Path(args.out), Path(args.assignment) if args.assignment else None,
                      args.seed, shard=shard, force=args.force, unsafe=args.unsafe)
        where = f" (shard {shard[0]}/{shard[1]})" if shard else ""
        print(f"{len(run.submissions)} submissions{where}: {len(run.todo)} to grade, "
              f"{len(run.skipped)} already graded, {len(run.missing)} without a folder", flush=True)
        with tqdm(total=len(run.todo), unit="submission", dynamic_ncols=True) as bar:
            for outcome in run.run(args.jobs):
                bar.update(1)
                if outcome.status != "graded":
                    bar.write(f"submission_{outcome.id}: {outcome.status}{': ' + outcome.error if outcome.error else ''}")
        reports = run.write_reports()
    print(reports.summary)
    print(f"grades: {reports.csv}\nsummary: {reports.summary_path}\nclass report: {reports.html}\n"
          f"per submission: {Path(args.out)}/submission_<id>/results.json")
    if shard:
        print("when every shard is done, run regrade again without --shard to write the combined grades.csv")
    return 0


def report(args: argparse.Namespace) -> int:
    """Rebuild a regrade folder's class report (and, where regrade recorded its manifest, grades.csv and
    the summary) from the files in it; print the summary and the paths."""
    out = Path(args.out)
    manifest = load_manifest(out, parse_shard(args.shard) if args.shard else None)
    reports = write_class_reports(out, manifest, tables=manifest.recorded)
    print(reports.summary)
    if manifest.recorded:
        print(f"grades: {reports.csv}\nsummary: {reports.summary_path}")
    else:
        print(f"{out} holds no regrade manifest (graded by an older regrade): grades.csv and the summary are left "
              "as they are, and the report lists no submitters; run regrade into the folder again to record it")
    print(f"class report: {reports.html}")
    return 0


def audit(args: argparse.Namespace) -> int:
    """Grade the mutation corpus under several seeds and print (and write) the audit report."""
    corpus = load_corpus(Path(args.corpus) if args.corpus else None)
    assignment = load_assignment(Path(args.assignment) if args.assignment else None)
    entries = corpus.select(args.entries)
    warn_unprotected(args)
    started = time.monotonic()
    print(f"auditing {len(entries)} corpus entries x {args.seeds} seed(s), {args.jobs} grade(s) at a time ...",
          file=sys.stderr, flush=True)

    def progress(grade, done: int, total: int) -> None:
        verdict = "contradicts the manifest" if grade.problems else "agrees"
        print(f"[{done:>3}/{total}] {time.monotonic() - started:6.0f} s  {grade.entry} (seed {grade.seed}): "
              f"{verdict} ({grade.seconds:.1f} s)", file=sys.stderr, flush=True)

    report = run_audit(corpus, assignment, entries, args.seeds, args.jobs, on_grade=progress, unsafe=args.unsafe)
    print(report.text())
    if args.output:
        report.write(Path(args.output))
        print(f"report written to {args.output}")
    return 1 if report.contradictions else 0


def build(args: argparse.Namespace) -> int:
    """Build and verify the two bundles; print each verification and the zips written."""
    report = build_bundles(Path(args.out), Path(args.checkpoint) if args.checkpoint else None, on_step=print)
    for note in report.notes:
        print(f"  {note}")
    for v in report.verdicts:
        print(f"  {'ok' if v.ok else 'FAILED':<6} {v.bundle:<15} {v.what}: {v.summary}")
    for name, (path, size, sha) in report.zips.items():
        print(f"wrote {path} ({size / 1e6:.1f} MB, sha256 {sha})")
    return 0
