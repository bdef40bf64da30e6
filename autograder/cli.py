"""The command line: thin commands over library functions, one error handler at the edge."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder import __version__
from autograder.errors import AutograderError
from autograder.results import GradingResults

GRADESCOPE_SUBMISSION = Path("/autograder/submission")
GRADESCOPE_RESULTS = Path("/autograder/results/results.json")


def _summary(results: GradingResults) -> str:
    lines = []
    for t in results.tests:
        worth = f"{t.points:g} extra" if t.extra_credit else f"{t.points:g}"
        mark = "PASS" if t.passed else "FAIL"
        lines.append(f"  {mark}  {t.score:>4g} / {worth:<8} {t.name}")
        if not t.passed and t.output and t.visibility != "hidden":
            lines += [f"          {line}" for line in t.output.splitlines()[:6]]
    extra = f" (+{sum(t.score for t in results.tests if t.extra_credit):g} extra credit)" \
        if results.extra_credit_available else ""
    base = sum(t.score for t in results.tests if not t.extra_credit)
    lines.append(f"Total: {base:g} / {results.max_score:g}{extra}   [{results.execution_time:.1f} s]")
    return "\n".join(lines)


def cmd_grade(args: argparse.Namespace) -> int:
    from autograder.runner import grade

    on_gradescope = args.submission is None
    submission = Path(args.submission) if args.submission else GRADESCOPE_SUBMISSION
    results_path = Path(args.results) if args.results else (GRADESCOPE_RESULTS if on_gradescope else Path("results.json"))
    print(f"autograder {__version__}: grading {submission}", flush=True)
    results, log = grade(submission, seed=args.seed)
    results.write(results_path)
    for line in log:
        print(line)
    print(_summary(results))
    print(f"results written to {results_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description="Grade GPT-2 homework submissions.")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="grade one submission and write results.json")
    g.add_argument("--submission", help="folder holding sample.py, likelihood.py, classifier.py "
                   f"(default on Gradescope: {GRADESCOPE_SUBMISSION})")
    g.add_argument("--results", help=f"results file (default: results.json here; {GRADESCOPE_RESULTS} on Gradescope)")
    g.add_argument("--seed", type=int, help="the grader's master seed (default: the assignment config's)")
    g.set_defaults(func=cmd_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AutograderError as exc:
        print(f"autograder: error: {exc}", file=sys.stderr)
        return 2
