"""The course's interface for question 6: which file defines which graded function, and how,
and the form of its test ids.

The drivers check every student function against these signatures before calling it, and the
feedback quotes them.  ``OLDER_LAYOUTS`` are package names of the course's earlier offerings
(``from questions.likelihood import log_likelihood``), named in the hint for such an import.
"""
from __future__ import annotations

import re

from autograder.sandbox.calls import Expected

# The course's test ids: part, index and kind, e.g. "6c-2-hidden".  Its "-basic" tests are public
# (full feedback, graded first, shipped in the student bundle); "-hidden" ones are not.
TEST_ID = re.compile(r"^(?P<part>[0-9]+[a-z])-(?P<index>[0-9]+)-(?P<kind>basic|hidden)$")
TEST_ID_FORM = "6c-0-basic / 6c-2-hidden"


def is_public(test_id: str) -> bool:
    return test_id.endswith("-basic")


def number_of(test_id: str) -> str:
    """The number Gradescope shows for a test: "6c.2" for "6c-2-hidden"."""
    m = TEST_ID.match(test_id)
    return f"{m['part']}.{m['index']}"


SAMPLE = Expected.parse(
    "sample.py", "sample(model, start_text, config, length, temperature=None, temperature_horizon=1)")
TEMPERATURE_SCALE = Expected.parse(
    "sample.py", "temperature_scale(logits, model, new_past, config, temperature, temperature_horizon)")
LOG_LIKELIHOOD = Expected.parse("likelihood.py", "log_likelihood(model, text)")
CLASSIFICATION = Expected.parse("classifier.py", "classification(model, text)")
GRADED = (SAMPLE, TEMPERATURE_SCALE, LOG_LIKELIHOOD, CLASSIFICATION)
STUDENT_FILES = tuple(dict.fromkeys(f.file for f in GRADED))   # sample.py, likelihood.py, classifier.py

OLDER_LAYOUTS = ("questions",)

# What the course's ``submission/__init__.py`` re-exports, by the module defining it, so that
# ``from submission import log_likelihood`` works as in the course (resolved lazily: one file
# that fails to import never breaks the others).
PACKAGE_EXPORTS = {"sample": "sample", "top_k_logits": "sample", "temperature_scale": "sample",
                   "log_likelihood": "likelihood", "classification": "classifier"}
