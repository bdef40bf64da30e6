"""A check's verdict and its two renderings: Markdown for Gradescope, plain text for a terminal.

An ``Outcome`` holds one content, written once by a check: a headline sentence (the diagnosis,
or what is known when no named mistake matched), a small table of what was checked (rows of
label / expected / yours), the stable key of the named mistake (``diagnosis``, counted across a
class by staff), a one-line ``hint`` for hidden tests (never an input or expected value) and a
``detail`` line for the staff log.  ``as_markdown`` and ``as_text`` render the same content.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

FORMATS = ("md", "text")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]])")   # escapable by a backslash in CommonMark and Python-Markdown alike


@dataclass(frozen=True)
class Row:
    """One line of what was checked: its label, the expected value and the submission's."""

    label: str
    expected: str
    yours: str


@dataclass(frozen=True)
class Outcome:
    """A check's verdict: ``message`` (the headline) and ``rows`` for public tests, ``hint`` for
    hidden ones, ``detail`` for staff, ``diagnosis`` the stable key of the named mistake, if any."""

    passed: bool
    message: str = ""
    hint: str = ""
    detail: str = ""
    diagnosis: str | None = None
    rows: tuple[Row, ...] = ()


def _md(text: str) -> str:
    """``text`` as Markdown inline text: emphasis and code characters escaped, ``&``, ``<`` and ``>``
    written as entities (never read as HTML), a pipe as the divides sign (a conditional bar reads
    the same and never splits a table cell)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\u2223")
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def as_markdown(outcome: Outcome) -> str:
    """The headline, then the table of what was checked (when there is one)."""
    lines = [_md(outcome.message)]
    if outcome.rows:
        lines += ["", "| Checked | Expected | Yours |", "| --- | --- | --- |"]
        lines += [f"| {_md(r.label)} | {_md(r.expected)} | {_md(r.yours)} |" for r in outcome.rows]
    return "\n".join(lines)


def as_text(outcome: Outcome) -> str:
    """The headline, then the table as aligned columns."""
    lines = [outcome.message]
    if outcome.rows:
        table = [("Checked", "Expected", "Yours")] + [(r.label, r.expected, r.yours) for r in outcome.rows]
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        lines.append("")
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines)
