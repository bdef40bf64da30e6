"""The course's interface for question 6: which file defines which graded function, and how.

The drivers check every student function against these signatures before calling it, and the
feedback quotes them.  ``OLDER_LAYOUTS`` are package names of the course's earlier offerings
(``from questions.likelihood import log_likelihood``), named in the hint for such an import.
"""
from __future__ import annotations

from autograder.sandbox.calls import Expected

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
