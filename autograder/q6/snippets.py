"""Labelled 100-character snippets for question 6e: random letter strings vs natural text.

Like the course's ``snippets.pkl``: random snippets are 100 letters drawn uniformly from a-z A-Z;
natural snippets are 100-character windows of ``data/natural_test.txt`` (text the model in
``textmodel.py`` was not estimated from), whitespace collapsed to single spaces, starting at a
word boundary and not ending on a space.  Everything is a function of a seed: draws use only
``numpy.random.Generator(PCG64(seed)).integers``, so a seed names one list on every machine.
"""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np

SNIPPET_CHARS = 100
LETTERS = string.ascii_lowercase + string.ascii_uppercase  # the 52 letters of random snippets
TEST_PATH = Path(__file__).with_name("data") / "natural_test.txt"


def _shuffle(items: list, rng: np.random.Generator) -> list:
    """Fisher-Yates with integer draws only (stable across numpy versions)."""
    items = list(items)
    for i in range(len(items) - 1, 0, -1):
        j = int(rng.integers(0, i + 1))
        items[i], items[j] = items[j], items[i]
    return items


def random_letter_snippet(rng: np.random.Generator) -> str:
    """100 characters drawn uniformly and independently from a-z A-Z."""
    return "".join(LETTERS[i] for i in rng.integers(0, len(LETTERS), size=SNIPPET_CHARS))


def normalise_whitespace(text: str) -> str:
    """Runs of whitespace (newlines included) become one space; ends are stripped."""
    return " ".join(text.split())


def window_starts(text: str) -> list[int]:
    """Start offsets, in ``normalise_whitespace(text)``, of every admissible 100-char window."""
    norm = normalise_whitespace(text)
    starts = [0] + [i + 1 for i, ch in enumerate(norm) if ch == " "]
    return [s for s in starts if s + SNIPPET_CHARS <= len(norm) and norm[s + SNIPPET_CHARS - 1] != " "]


def natural_snippets(text: str, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct 100-character windows of ``text`` (whitespace normalised), in draw order."""
    norm = normalise_whitespace(text)
    starts = window_starts(text)
    if not 0 <= n <= len(starts):
        raise ValueError(f"asked for {n} natural snippets; the text has {len(starts)} windows")
    for i in range(n):  # partial Fisher-Yates: the first n entries become a uniform sample
        j = int(rng.integers(i, len(starts)))
        starts[i], starts[j] = starts[j], starts[i]
    return [norm[s:s + SNIPPET_CHARS] for s in starts[:n]]


def labelled_snippets(seed: int, n_random: int, n_natural: int, text: str | None = None) -> list[tuple[str, bool]]:
    """Shuffled ``(snippet, is_random)`` pairs, a deterministic function of the arguments.

    ``text`` defaults to the contents of ``data/natural_test.txt``.
    """
    for name, value in (("seed", seed), ("n_random", n_random), ("n_natural", n_natural)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    randoms = [(random_letter_snippet(rng), True) for _ in range(n_random)]
    source = TEST_PATH.read_text(encoding="utf-8") if text is None else text
    naturals = [(s, False) for s in natural_snippets(source, n_natural, rng)]
    return _shuffle(randoms + naturals, rng)
