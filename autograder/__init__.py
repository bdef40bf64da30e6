"""A Gradescope autograder.  The front door is ``grade`` (``from autograder import grade``):
grade one submission folder with an assignment config, get the results and the staff log.

Layout: this folder is the harness core (the CLI, config, discovery, context, runner, results,
statistics); ``sandbox/`` starts, confines, talks to and kills the worker processes; ``staff/``
holds the course-staff verbs, never shipped to students; ``q6/`` is question 6 itself.
"""
import importlib

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "grade":  # imported on first use: a worker's runtime copy of this package has no runner
        return importlib.import_module("autograder.runner").grade
    raise AttributeError(f"module 'autograder' has no attribute {name!r}")
