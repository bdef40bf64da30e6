"""``report.html``: the class report of a regrade, one self-contained page for the staff.

It lists first every fault of the autograder (ours to fix), then the score distribution, each
test's pass rate with its most common diagnoses (failures without one grouped by their first
output line) and the submissions behind each, and last the slowest submissions and the memory
peaks.  The page loads nothing: its style is inline, its plots are inline SVG
(``autograder.staff.plots``) and it runs no script; its numbers are also in a JSON block
(``<script type="application/json" id="report-data">``) for tools.  Every string that comes from
a results file is escaped.  The same folder gives the same bytes.
"""
from __future__ import annotations

import csv
import json
from html import escape
from pathlib import Path
from typing import NamedTuple
from statistics import median
from urllib.parse import quote

from autograder.staff.classdata import (DIAGNOSIS, Fault, Manifest, Submission, Tally, csv_rows, faults,
                                        load_class, summary_text, tally)

MAX_GROUPS = 8        # diagnoses shown per test (the JSON block holds all)
MAX_ROWS = 10         # slowest submissions and memory peaks shown
MAX_MESSAGE = 3000    # characters of a fault's message shown

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; } td, th { border: 1px solid #ddd; padding: 0.2em 0.5em;
  text-align: left; vertical-align: top; } th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.ids { max-width: 30em; }
pre { margin: 0; white-space: pre-wrap; max-height: 16em; overflow: auto; font-size: 0.85em; }
.faults th { background: #f8d7da; } .none { color: #2e7d32; } .note { color: #555; font-size: 0.9em; }
.first-line td.kind { color: #8a6d3b; } svg { max-width: 100%; height: auto; }
"""


class Reports(NamedTuple):
    csv: Path
    summary_path: Path
    summary: str
    html: Path


def report_names(shard: tuple[int, int] | None) -> tuple[str, str, str]:
    if shard is None:
        return "grades.csv", "summary.txt", "report.html"
    i, n = shard
    return f"grades-shard-{i}-of-{n}.csv", f"summary-shard-{i}-of-{n}.txt", f"report-shard-{i}-of-{n}.html"


def write_class_reports(out: Path, manifest: Manifest, tables: bool = True) -> Reports:
    """Write ``report.html`` (and, with ``tables``, ``grades.csv`` and ``summary.txt``) into ``out``
    from the submissions' files there."""
    out = Path(out)
    submissions = load_class(out, manifest)
    csv_name, summary_name, html_name = report_names(manifest.shard)
    csv_path, summary_path, html_path = out / csv_name, out / summary_name, out / html_name
    summary = summary_text(manifest, submissions)
    if tables:
        with open(csv_path, "w", newline="") as fh:
            csv.writer(fh).writerows(csv_rows(manifest, submissions))
        summary_path.write_text(summary + "\n")
    html_path.write_text(render(manifest, submissions), encoding="utf-8")
    return Reports(csv_path, summary_path, summary, html_path)


def _e(value) -> str:
    return escape(str(value), quote=True)


def _mib(value) -> str:
    return "" if value is None else f"{value:.1f}"


def _table(head: list[str], rows: list[str], attrs: str = "") -> str:
    return (f"<table{attrs}><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _faults_section(found: list[Fault], by_id: dict[str, Submission]) -> str:
    head = f"<section id=\"faults\"><h2>Autograder faults: {len(found)}</h2>"
    if not found:
        return head + '<p class="none">None: the harness graded every test of every submission.</p></section>'
    rows = []
    for f in found:
        message = f.message if len(f.message) <= MAX_MESSAGE else f.message[:MAX_MESSAGE] + "\n[...]"
        log = by_id[f.submission_id].has_log if f.submission_id in by_id else False
        link = (f'<a href="submission_{_e(quote(f.submission_id))}/staff_log.txt">staff log</a>' if log else "")
        rows.append(f'<tr class="fault" data-submission="{_e(f.submission_id)}" data-kind="{_e(f.kind)}">'
                    f"<td>{_e(f.submission_id)}</td><td>{_e(f.kind)}</td><td>{_e(f.test)}</td>"
                    f"<td><pre>{_e(message)}</pre></td><td>{link}</td></tr>")
    return (head + "<p>These are the autograder's faults, never the students': fix them and regrade these "
            "submissions (<code>regrade --force</code>, or delete their folders and regrade).</p>"
            + _table(["submission", "kind", "test", "message", ""], rows, ' class="faults"') + "</section>")


def _scores_section(submissions: list[Submission]) -> str:
    scored = [s for s in submissions if s.status == "graded" and s.score is not None]
    out = ['<section id="scores"><h2>Score distribution</h2>']
    if not scored:
        return out[0] + "<p>No submission is graded yet.</p></section>"
    scores = [s.score for s in scored]
    top = max(s.max_score for s in scored)
    left = len(submissions) - len(scored)
    out.append(f'<p id="score-stats" data-count="{len(scores)}">{len(scores)} graded submissions'
               + (f" ({left} with an autograder error or not graded are left out)" if left else "")
               + f": median {median(scores):g}, mean {sum(scores) / len(scores):.2f}, "
               f"highest {max(scores):g}, lowest {min(scores):g} (of {top:g} points).</p>")
    from autograder.staff import plots  # matplotlib, only once a report is drawn (never in a grading process)

    out.append(plots.score_histogram(scores, top))
    return "".join(out) + "</section>"


def _tests_section(tallies: list[Tally]) -> str:
    rows = []
    for t in tallies:
        rate = "" if t.pass_rate is None else f"{100 * t.pass_rate:.1f}%"
        rows.append(f'<tr id="test-{_e(t.test_id)}" data-test="{_e(t.test_id)}" data-passed="{t.passed}" '
                    f'data-graded="{t.graded}" data-faults="{len(t.faults)}"><td><a href="#groups-{_e(t.test_id)}">'
                    f"{_e(t.test_id)}</a></td><td>{_e(t.title)}</td><td class=\"num passed\">{t.passed}</td>"
                    f"<td class=\"num graded\">{t.graded}</td><td class=\"num rate\">{rate}</td>"
                    f"<td class=\"num faults\">{len(t.faults)}</td></tr>")
    out = ['<section id="tests"><h2>Per test</h2>',
           _table(["test", "title", "passed", "graded", "pass rate", "autograder faults"], rows, ' id="test-table"')]
    rated = [(t.test_id, t.pass_rate) for t in tallies if t.pass_rate is not None]
    if rated:
        from autograder.staff import plots

        out.append(plots.pass_rates(rated))
    out.append('<p class="note">A failure is grouped under its <b>diagnosis</b>, the mistake the check named. A '
               "failure whose check named none is grouped under the first line of its output, marked "
               "<b>no diagnosis</b>.</p>")
    for t in tallies:
        out.append(f'<h3 id="groups-{_e(t.test_id)}">{_e(t.test_id)}: {t.graded - t.passed} failed of {t.graded}</h3>')
        if not t.groups:
            out.append('<p class="none">No failures.</p>')
            continue
        rows = []
        for g in t.groups[:MAX_GROUPS]:
            kind, css = ("diagnosis", "diagnosis") if g.kind == DIAGNOSIS else ("no diagnosis: first output line",
                                                                             "first-line")
            rows.append(f'<tr class="group {css}" data-kind="{css}" data-count="{len(g.ids)}"><td class="kind">{kind}</td>'
                        f'<td class="label"><code>{_e(g.label)}</code></td><td class="num count">{len(g.ids)}</td>'
                        f'<td class="ids">{_e(" ".join(g.ids))}</td></tr>')
        rest = t.groups[MAX_GROUPS:]
        if rest:
            rows.append(f'<tr class="more"><td colspan="4">and {len(rest)} more groups '
                        f"({sum(len(g.ids) for g in rest)} failures): see the JSON block</td></tr>")
        out.append(_table(["", "diagnosis or first line", "count", "submissions"], rows,
                          f' class="groups" data-test="{_e(t.test_id)}"'))
    return "".join(out) + "</section>"


def _resource_rows(ranked: list[Submission]) -> list[str]:
    return [f'<tr data-id="{_e(s.id)}"><td>{_e(s.id)}</td><td class="num seconds">'
            f'{"" if s.seconds is None else f"{s.seconds:.1f}"}</td><td class="num">'
            f'{"" if s.score is None else f"{s.score:g}"}</td><td class="num worker">{_mib(s.memory.get("worker_peak_mib"))}'
            f'</td><td class="num grader">{_mib(s.memory.get("grader_peak_mib"))}</td></tr>' for s in ranked]


def _resources_section(submissions: list[Submission]) -> str:
    timed = [s for s in submissions if s.seconds is not None]
    head = ["submission", "wall time (s)", "score", "worker peak (MiB)", "grader peak (MiB)"]
    out = ['<section id="resources"><h2>Slowest submissions and memory peaks</h2>']
    if not timed:
        return out[0] + "<p>No submission recorded its time.</p></section>"
    slowest = sorted(timed, key=lambda s: -s.seconds)[:MAX_ROWS]
    out += ["<h3>Slowest</h3>", _table(head, _resource_rows(slowest), ' id="slowest"')]
    measured = [s for s in submissions if s.memory.get("worker_peak_mib") is not None]
    if measured:
        heaviest = sorted(measured, key=lambda s: (-s.memory["worker_peak_mib"], -s.memory.get("grader_peak_mib", 0)))
        out += ["<h3>Memory peaks</h3>",
                '<p class="note">Peak resident memory: the workers\' includes the pages they share with the fork '
                "server (torch); the grader's is the grading process's own during the grade.</p>",
                _table(head, _resource_rows(heaviest[:MAX_ROWS]), ' id="memory"')]
    else:
        out.append("<p>No submission recorded its memory peaks (graded before they were recorded).</p>")
    points = [(s.seconds, s.memory["worker_peak_mib"]) for s in measured if s.seconds is not None]
    from autograder.staff import plots

    out.append(plots.time_and_memory(points, [s.seconds for s in timed]))
    return "".join(out) + "</section>"


def summary_data(manifest: Manifest, submissions: list[Submission]) -> dict:
    """The report's numbers, as the JSON block holds them."""
    statuses: dict[str, int] = {}
    for s in submissions:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    return {
        "submissions": len(submissions), "statuses": dict(sorted(statuses.items())),
        "faults": [{"submission": f.submission_id, "kind": f.kind, "test": f.test} for f in faults(submissions)],
        "tests": [{"id": t.test_id, "graded": t.graded, "passed": t.passed, "faults": t.faults,
                   "groups": [{"kind": g.kind, "label": g.label, "count": len(g.ids), "ids": g.ids} for g in t.groups]}
                  for t in tally(manifest, submissions)],
        "seconds": {s.id: s.seconds for s in submissions if s.seconds is not None},
        "memory": {s.id: s.memory for s in submissions if s.memory},
    }


def _json_block(data: dict) -> str:
    text = json.dumps(data, indent=1, sort_keys=False, allow_nan=False)
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" id="report-data">\n{text}\n</script>'


def render(manifest: Manifest, submissions: list[Submission]) -> str:
    found = faults(submissions)
    tallies = tally(manifest, submissions)
    data = summary_data(manifest, submissions)
    status = ", ".join(f"{n} {k}" for k, n in data["statuses"].items())
    note = "" if manifest.recorded else (' <span class="note">(rebuilt from the submission folders: regrade '
                                         "recorded no manifest here, so submitters are unknown)</span>")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Class report: {len(submissions)} submissions</title>", f"<style>{STYLE}</style></head><body>",
             "<h1>Class report</h1>",
             f'<p id="overview">{len(submissions)} submissions: {_e(status)}; {len(manifest.test_ids)} tests.{note}</p>',
             _faults_section(found, {s.id: s for s in submissions}), _scores_section(submissions),
             _tests_section(tallies), _resources_section(submissions), _json_block(data), "</body></html>"]
    return "\n".join(parts) + "\n"
