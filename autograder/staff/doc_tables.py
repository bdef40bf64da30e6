"""The documentation's tables that derive from code or config, generated from their one source.

A generated region of a Markdown page is the text between ``<!-- generated: NAME -->`` and
``<!-- end generated -->``; ``TABLES[NAME]`` returns what it must hold.  ``regenerate`` rewrites
every region of one text, ``rewrite`` every page of the checkout (README.md, docs/*.md,
bench/README.md) and returns those it changed.  Measured figures (timings, memory peaks, audit
rates) are not generated here: they stay in ``bench/results/`` and the pages link to them.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable

from autograder.config import Assignment, load_assignment
from autograder.container import HEADROOM, TIERS, needs, tier_for
from autograder.paths import HARNESS_ROOT

REGION = re.compile(r"(<!-- generated: (?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)
REGENERATE = ".venv/bin/python -c 'from autograder.staff.doc_tables import rewrite; rewrite()'"


def _sci(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")


def _points(value: float) -> str:
    return f"{value:g}"


def graded_tests(assignment: Assignment | None = None) -> str:
    """Every graded test of the assignment config: id, file, points, visibility, time limit, title."""
    a = assignment or load_assignment()
    rows = ["| test | file | points | visibility | statistical | time limit per call | title |",
            "|---|---|---|---|---|---|---|"]
    for t in a.tests:
        points = _points(t.points) + (" extra credit" if t.extra_credit else "")
        rows.append(f"| {t.id} | `{t.module}.py` | {points} | {t.visibility} | {'yes' if t.statistical else 'no'} "
                    f"| {t.timeout:g} s | {t.title} |")
    base = sum(t.points for t in a.tests if not t.extra_credit)
    extra = sum(t.points for t in a.tests if t.extra_credit)
    statistical = sum(t.statistical for t in a.tests)
    rows += ["", f"{_points(base)} points plus {_points(extra)} of extra credit; {statistical} statistical tests share "
                 f"the error budget {_sci(a.error_budget)}, {_sci(a.alpha_per_test)} each."]
    return "\n".join(rows) + "\n"


def sampler_power(assignment: Assignment | None = None) -> str:
    """The proven power of each statistical sampler test, computed from its design and draws."""
    from autograder import stats
    from autograder.q6.power import design_power, reference_law, sampler_power as power_of

    a = assignment or load_assignment()
    rows = ["| test | model | draws (runs x length) | delta T x1.1 / x0.9 | proven power T x1.1 / x0.9 / TV 0.1 "
            "| weakest bound with one run fewer | two identical runs, correct sampler |",
            "|---|---|---|---|---|---|---|"]
    for t in a.tests:
        sampler = t.params.get("sampler")
        if not t.statistical or not isinstance(sampler, dict):
            continue
        spec, report = a.model(sampler["model"]), design_power(a, t)
        if report is None:
            rows.append(f"| {t.id} | {sampler['model']} ({spec.get('kind')}) | {sampler['runs']} x {sampler['length']} "
                        "| - | - (not a profile model) | - | - |")
            continue
        runs, length = int(sampler["runs"]), int(sampler["length"])
        fewer = power_of(spec, sampler.get("temperature"), (runs - 1) * length, a.alpha_per_test)
        weakest = min(fewer.power_hot, fewer.power_cold, fewer.power_tv)
        repeat = stats.log_repeat_probability(reference_law(spec, sampler.get("temperature")), length) / math.log(10)
        model = f"profile, top-k {spec['top_k']}" + (f", T {sampler['temperature']:g}" if sampler.get("temperature") else "")
        rows.append(f"| {t.id} | {model} | {report.draws} ({runs} x {length}) "
                    f"| {report.delta_hot:.3f} / {report.delta_cold:.3f} "
                    f"| {report.power_hot:.3f} / {report.power_cold:.3f} / {report.power_tv:.3f} "
                    f"| {weakest:.3f} | 1e{repeat:.0f} |")
    return "\n".join(rows) + "\n"


def _tier(need) -> str:
    cpus, gb = tier_for(need)
    return f"{cpus:g} CPU / {gb:g} GB" + (" (the default)" if (cpus, gb) == TIERS[0] else "")


def container_tiers() -> str:
    """What each mode was measured to need (``autograder.container.needs``) and the tier it asks for."""
    rows = ["| mode | when | measured need | Gradescope tier to pick |", "|---|---|---|---|"]
    for need in needs(load_assignment()):
        rows.append(f"| {need.mode} | {need.when} | {need.peak_mib} MiB, {need.cpus:g} CPU | {_tier(need)} |")
    rows += ["", "Tiers Gradescope offers: " + ", ".join(f"{c:g} CPU / {g:g} GB" for c, g in TIERS)
             + f"; the tier to pick is the smallest with the CPUs and {HEADROOM:g} times the memory a mode needs."]
    return "\n".join(rows) + "\n"


def gradescope_tier() -> str:
    """The README's line of the hardware tier to pick, mode by mode."""
    picks = [f"{_tier(need)} for the {need.mode} models" for need in needs(load_assignment())]
    return "- **Hardware**: " + "; ".join(picks) + " (see [the container](docs/staff-workflow.md#gradescopes-container)).\n"


def corpus_counts() -> str:
    """How many correct and wrong entries the mutation corpus holds, per student file."""
    from autograder.staff.corpus import load_corpus

    corpus = load_corpus()
    files = list(dict.fromkeys(e.file for e in corpus.entries))
    rows = ["| file | correct entries | wrong entries |", "|---|---|---|"]
    for name in files:
        entries = [e for e in corpus.entries if e.file == name]
        rows.append(f"| `{name}` | {sum(e.correct for e in entries)} | {sum(not e.correct for e in entries)} |")
    total = corpus.entries
    rows.append(f"| all | {sum(e.correct for e in total)} | {sum(not e.correct for e in total)} |")
    return "\n".join(rows) + "\n"


TABLES: dict[str, Callable[[], str]] = {
    "graded-tests": graded_tests,
    "sampler-power": sampler_power,
    "container-tiers": container_tiers,
    "gradescope-tier": gradescope_tier,
    "corpus": corpus_counts,
}


def regenerate(text: str, tables: dict[str, Callable[[], str]] = TABLES) -> str:
    """``text`` with every generated region holding what its table gives now; an unknown name is an error."""
    made: dict[str, str] = {}

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in tables:
            raise KeyError(f"generated region {name!r} names no table; known: {', '.join(tables)}")
        if name not in made:
            made[name] = tables[name]()
        return match[1] + made[name] + match[4]

    return REGION.sub(fill, text)


def pages(root: Path = HARNESS_ROOT) -> list[Path]:
    """The Markdown pages that may hold generated regions."""
    found = [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "bench" / "README.md"]
    return [p for p in found if p.is_file()]


def rewrite(root: Path = HARNESS_ROOT) -> list[Path]:
    """Regenerate every region of every page under ``root``; return the pages that changed."""
    changed = []
    for page in pages(root):
        text = page.read_text()
        new = regenerate(text)
        if new != text:
            page.write_text(new)
            changed.append(page)
    return changed
