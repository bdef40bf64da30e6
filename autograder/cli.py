"""The command line: thin commands over library functions, one error handler at the edge."""
from __future__ import annotations

import argparse
import importlib
import math
import os
import signal
import sys
import time
from pathlib import Path

from autograder import __version__
from autograder.errors import AutograderError, GradingStopped
from autograder.paths import GRADESCOPE
from autograder.results import GradingResults

STOPPED = 124  # the exit status of a grade stopped from outside (run_autograder's watchdog), as timeout(1)


def gradescope_root() -> Path:
    """``/autograder`` on Gradescope.  ``AUTOGRADER_ROOT`` moves it, for tests only."""
    return Path(os.environ.get("AUTOGRADER_ROOT", GRADESCOPE))



def warn_unprotected(args: argparse.Namespace) -> None:
    """Refuse to run student code where it could read the harness's files, unless ``--unsafe``."""
    from autograder.sandbox.view import check_here

    warning = check_here(args.unsafe)
    if warning:
        print(f"autograder: warning: {warning}", file=sys.stderr, flush=True)


def _staff_command(name: str):
    """The staff command ``name`` of ``autograder.staff.commands``, imported when it runs: the student
    bundle leaves the whole ``autograder/staff/`` folder out."""
    def run(args: argparse.Namespace) -> int:
        try:
            commands = importlib.import_module("autograder.staff.commands")
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("autograder.staff"):
                raise
            raise AutograderError(f"`{name}` is a command for course staff, and autograder/staff/ is not part of "
                                  "this bundle: run it from the course's autograder source") from None
        return getattr(commands, name)(args)

    run.__name__ = f"cmd_{name}"
    return run


def _stop(signum, frame) -> None:
    raise GradingStopped(f"stopped by signal {signal.Signals(signum).name}")


def cmd_grade(args: argparse.Namespace) -> int:
    """Grade; on SIGTERM (the watchdog, at the end of the time budget) stop every worker and write nothing."""
    started = time.monotonic()  # the time budget counts from here (importing the harness is part of the run),
    if args.started is not None:  # or from when run_autograder began
        started -= min(max(time.time() - args.started, 0.0), 60.0)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return _grade(args, started)
    except GradingStopped as exc:
        print(f"autograder: {exc}: results not written here (run_autograder writes those known so far)",
              file=sys.stderr)
        return STOPPED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _grade(args: argparse.Namespace, started: float) -> int:
    from autograder.runner import grade

    on_gradescope = args.submission is None
    root = gradescope_root()
    submission = Path(args.submission) if args.submission else root / "submission"
    results_path = Path(args.results) if args.results else (
        root / "results" / "results.json" if on_gradescope else Path("results.json"))
    print(f"autograder {__version__}: grading {submission}", flush=True)
    warn_unprotected(args)
    _warn_early(args)
    metadata = Path(args.metadata) if args.metadata else (root / "submission_metadata.json" if on_gradescope else None)
    if metadata is not None and _over_daily_cap(metadata, args, results_path):
        return 0
    book = None
    if args.save_answers:
        from autograder.student_check import AnswerBook

        book = AnswerBook(strict=False)

    def write_progress(provisional: GradingResults) -> None:
        provisional.write(Path(args.progress), durable=False)

    results, log = grade(submission, Path(args.assignment) if args.assignment else None, seed=args.seed,
                         reference_cache=book, started=started, progress=write_progress if args.progress else None,
                         prefork=args.prefork, unsafe=args.unsafe)
    results.write(results_path)
    if book is not None:
        book.save(Path(args.save_answers))
    for line in log:
        print(line)
    print(results.summary())
    print(f"results written to {results_path}")
    return 0


def _warn_early(args: argparse.Namespace) -> None:
    """Say at once, on standard error, when this container is too small for the models: if the
    kernel then kills the grader, run_autograder's fallback results show the line to staff."""
    from autograder.config import load_assignment
    from autograder.container import startup_lines

    try:
        assignment = load_assignment(Path(args.assignment) if args.assignment else None)
    except AutograderError:
        return  # the grade reports a broken config itself
    for line in startup_lines(assignment):
        if line.startswith("warning:"):
            print(f"autograder: {line}", file=sys.stderr, flush=True)


def _over_daily_cap(metadata: Path, args: argparse.Namespace, results_path: Path) -> bool:
    """Print who submitted; if the daily cap is reached, write the kept results and say so."""
    from autograder.config import DEFAULT_CONFIG
    from autograder.metadata import daily_cap, load_metadata, over_cap

    try:
        meta = load_metadata(metadata)
        if meta is None:
            return False
        for line in meta.staff_lines():
            print(line)
        kept = over_cap(meta, daily_cap(Path(args.assignment) if args.assignment else DEFAULT_CONFIG))
    except AutograderError as exc:  # metadata is optional: never let it stop grading
        print(f"submission metadata ignored: {exc}")
        return False
    if kept is None:
        return False
    kept.write(results_path)
    print(f"over the daily submission cap: not graded; the previous results were kept in {results_path}")
    return True


def cmd_check(args: argparse.Namespace) -> int:
    from autograder.student_check import AnswerBook, check
    from autograder.config import load_assignment
    from autograder.paths import HARNESS_ROOT

    folder = Path(args.folder) if args.folder else (HARNESS_ROOT / "submission" if (HARNESS_ROOT / "submission").is_dir()
                                                    else Path.cwd())
    book = AnswerBook.load(Path(args.answers), strict=True) if args.answers else None
    if args.save_answers:
        book = book or AnswerBook(strict=False)
        book.used.clear()
    print(f"checking {folder.resolve()} with the public tests ...", flush=True)
    results, _log = check(folder, answers=book,
                          assignment=load_assignment(Path(args.assignment)) if args.assignment else None)
    if args.save_answers:
        count = book.save(Path(args.save_answers), book.used)
        print(f"saved {count} reference answers to {args.save_answers}")
    if args.results:
        results.write(Path(args.results))
    print(results.summary(max_lines=40))
    faults = [t for t in results.harness_faults if t.test_id is None]  # the run's own error tests
    for t in faults:
        print(f"\n{t.name}:\n{t.output}")
    all_passed = all(t.passed for t in results.tests) and not faults
    print("All public tests passed." if all_passed else
          "Some public tests failed; fix them before you upload. Hidden tests are graded on Gradescope.")
    return 0 if all_passed else 1


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from autograder.q6.checkpoint_files import ensure_all
    from autograder.config import load_assignment

    done = ensure_all(load_assignment(Path(args.assignment) if args.assignment else None),
                      Path(args.source) if args.source else None)
    print("\n".join(done) if done else "no checkpoint model in the assignment config: nothing to fetch")
    return 0


def cmd_warm(args: argparse.Namespace) -> int:
    """Grade the reference solution once, so the reference's answers are on disk before any grade."""
    from autograder.paths import REFERENCE_DIR
    from autograder.runner import grade

    results, log = grade(REFERENCE_DIR, assignment=Path(args.assignment) if args.assignment else None,
                         lock_gradescope=False, time_budget=math.inf, unsafe=True)  # the course's own code; not a grade
    lost = [t.name for t in results.tests if t.score < t.points]
    if lost:
        print("\n".join(log[-20:]))
        raise AutograderError(f"the reference solution lost points on {lost}: fix the harness or the reference "
                              "before grading students")
    print(f"reference answers cached in .cache/reference/ ({results.execution_time:.0f} s)")
    return 0


def cmd_isolation(args: argparse.Namespace) -> int:
    from autograder.paths import HARNESS_ROOT
    from autograder.sandbox.locking import tree_action

    print("\n".join(tree_action(args.action, Path(args.root) if args.root else HARNESS_ROOT, args.grant)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description="Grade homework submissions as Gradescope runs an autograder.")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    config_help = ("assignment config: every test's params, time limit, points, title and visibility "
                   "(default: tests_hidden/assignment.yml of this harness)")
    unsafe_help = ("grade even where student code could read the harness's files (no private view: not root and "
                   "no user namespaces); without it such a machine refuses to grade")

    g = sub.add_parser("grade", help="grade one submission and write results.json (what run_autograder calls)")
    g.add_argument("--submission", help="folder holding the upload (default on Gradescope: /autograder/submission)")
    g.add_argument("--results", help="results file (default: results.json here; "
                   "/autograder/results/results.json on Gradescope)")
    g.add_argument("--seed", type=int, help="the grader's master seed (default: the assignment config's)")
    g.add_argument("--assignment", help=config_help)
    g.add_argument("--metadata", help="submission_metadata.json (default on Gradescope: /autograder/submission_metadata.json)")
    g.add_argument("--save-answers", help=argparse.SUPPRESS)  # build: record the reference's answers
    g.add_argument("--progress", help=argparse.SUPPRESS)  # run_autograder: the results its watchdog would write
    g.add_argument("--started", type=float, help=argparse.SUPPRESS)  # run_autograder: when it began (epoch seconds)
    g.add_argument("--unsafe", action="store_true", help=unsafe_help)
    g.set_defaults(func=cmd_grade)

    r = sub.add_parser("rerun", help="regrade one test of one submission and print every detail (staff)")
    r.add_argument("--submission", required=True, help="the submission's folder")
    r.add_argument("--test", required=True, help="the test's id, as its extra_data and the assignment config spell it")
    r.add_argument("--seed", type=int, help="the master seed shown in the test's extra_data")
    r.add_argument("--assignment", help=config_help)
    r.add_argument("--unsafe", action="store_true", help=unsafe_help)
    r.set_defaults(func=_staff_command("rerun"))

    e = sub.add_parser("regrade", help="grade a Gradescope export: results per submission, grades.csv, summary")
    e.add_argument("export", help="the export folder or zip (submission_metadata.yml and submission_<id>/)")
    e.add_argument("--out", required=True, help="output folder; rerunning into it resumes")
    e.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel (default 1)")
    e.add_argument("--force", action="store_true", help="regrade submissions that are already graded")
    e.add_argument("--shard", help="I/N: grade only shard I (0-based) of N, e.g. $SLURM_ARRAY_TASK_ID/4")
    e.add_argument("--seed", type=int, help="the grader's master seed (default: the assignment config's)")
    e.add_argument("--assignment", help=config_help)
    e.add_argument("--unsafe", action="store_true", help=unsafe_help)
    e.set_defaults(func=_staff_command("regrade"))

    p = sub.add_parser("report", help="rebuild a regrade folder's report.html (and grades.csv, summary) from its files")
    p.add_argument("out", help="the --out folder of a regrade")
    p.add_argument("--shard", help="I/N: the report of that shard's regrade")
    p.set_defaults(func=_staff_command("report"))

    c = sub.add_parser("check", help="run the public tests on your files, as Gradescope does")
    c.add_argument("folder", nargs="?", help="folder holding your files (default: submission/ of this bundle)")
    c.add_argument("--results", help="also write results.json here")
    c.add_argument("--assignment", help="assignment config whose public tests run "
                   "(default: the assignment.yml of this bundle's tests)")
    c.add_argument("--answers", help=argparse.SUPPRESS)       # build: reference answers to use
    c.add_argument("--save-answers", help=argparse.SUPPRESS)  # build: keep the answers the public tests used
    c.set_defaults(func=cmd_check)

    a = sub.add_parser("audit", help="grade the mutation corpus under several seeds: error rates per test, "
                       "verdict per entry (staff)")
    a.add_argument("--seeds", type=int, default=1, help="grader seeds: the config's, then seeds derived from it (default 1)")
    a.add_argument("--jobs", type=int, default=1, help="grades run in parallel (default 1)")
    a.add_argument("--entries", help="regular expression: audit only the entries whose name matches, e.g. '_bad_'")
    a.add_argument("--output", help="also write the report here (JSON if the name ends in .json, else text)")
    a.add_argument("--corpus", help="the corpus manifest (default: tests/fixtures/corpus/manifest.yml of this harness)")
    a.add_argument("--assignment", help=config_help)
    a.add_argument("--unsafe", action="store_true", help=unsafe_help)
    a.set_defaults(func=_staff_command("audit"))

    b = sub.add_parser("build", help="build and verify dist/autograder.zip and dist/student.zip (staff)")
    b.add_argument("--out", default="dist", help="output folder (default: dist)")
    b.add_argument("--checkpoint", help="the course checkpoint file named by the assignment config")
    b.set_defaults(func=_staff_command("build"))

    w = sub.add_parser("warm", help="grade the reference solution once so its answers are cached (setup.sh runs this)")
    w.add_argument("--assignment", help=config_help)
    w.set_defaults(func=cmd_warm)

    k = sub.add_parser("checkpoint", help="fetch or copy the configured checkpoint and verify it (setup.sh runs this)")
    k.add_argument("--from", dest="source", help="copy this file into place instead of fetching it")
    k.add_argument("--assignment", help=config_help)
    k.set_defaults(func=cmd_checkpoint)

    i = sub.add_parser("isolation", help="lock or unlock a harness tree, or check its venv's traverse bits (setup.sh)")
    i.add_argument("action", choices=("lock", "unlock", "status", "traverse"))
    i.add_argument("root", nargs="?", help="the harness tree (default: this one)")
    i.add_argument("--grant", action="store_true", help="traverse: add o+x where it is missing")
    i.set_defaults(func=cmd_isolation)
    return parser


def main(argv: list[str] | None = None, prefork=None) -> int:
    """``prefork``: the fork server ``autograder.sandbox.prefork`` forked for ``grade``."""
    args = build_parser().parse_args(argv)
    args.prefork = prefork
    try:
        return args.func(args)
    except AutograderError as exc:
        print(f"autograder: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autograder: interrupted", file=sys.stderr)
        return 130
