"""The harness's exceptions.

``AutograderError`` is a fault of the harness or its configuration: it becomes a visible
"autograder error" test worth nothing and a staff-only traceback.  ``StudentError`` is a
mistake in the submission: it becomes a failed test whose message tells the student what to fix.
"""
from __future__ import annotations


class AutograderError(Exception):
    """A fault of the harness, its configuration or the machine."""


class ContainerOutOfMemory(AutograderError):
    """The kernel killed a worker for the container's memory limit: the grader's fault, never the
    student's.  ``feedback`` is what the student sees; the message adds the staff's figures."""

    def __init__(self, feedback: str, detail: str):
        super().__init__(f"{feedback}\n{detail}")
        self.feedback = feedback


class ConfigError(AutograderError):
    """The assignment configuration, a checkpoint or a data file is wrong or missing."""


class ProtocolError(AutograderError):
    """A message between harness and worker could not be framed or decoded."""


class StudentError(Exception):
    """A mistake in the submission; ``str(self)`` is the feedback the student sees."""


class MissingFile(StudentError):
    """A file the tested function lives in was not uploaded."""


class StudentCrash(StudentError):
    """Student code raised, exited, was killed, or its module failed to import."""


class StudentCall(StudentError):
    """Inside a worker: calling a student function failed (``autograder.sandbox.calls.call_student``).

    ``str(self)`` is the first line, "<file> <phrase>", written by the harness from the
    function's name alone; ``detail`` is what public tests show besides the student traceback of
    ``cause``, the exception raised by student code or by calling it, if any.
    """

    def __init__(self, file: str, function: str, phrase: str, detail: str = "", cause: BaseException | None = None):
        super().__init__(f"{file} {phrase}")
        self.file, self.function, self.detail, self.cause = file, function, detail, cause


class StudentTimeout(StudentError):
    """Student code ran past the test's time limit."""


class BudgetTimeout(StudentTimeout):
    """Student code ran past what was left of the run's time budget, shorter than the test's own limit."""


class BudgetSpent(StudentError):
    """The submission used up the run's time budget: a test, or the rest of one, could not run.

    Its message is written by the harness alone (no input, no student output), so hidden tests show it whole.
    """


class GradingStopped(KeyboardInterrupt):
    """The run was stopped from outside (SIGTERM from run_autograder's watchdog at the end of the time budget).

    A KeyboardInterrupt, so that unittest lets it through instead of recording it as a test's error.
    """


class InvalidReturn(StudentError):
    """Student code returned a value of the wrong type, shape or range."""


class UsageError(AutograderError):
    """A command was given a value it cannot use (a folder, a test id, a shard)."""


class UnprotectedError(AutograderError):
    """Student code would run where it could read the harness's files (no private view, no worker
    user), and the command was not told ``--unsafe``."""


class CheckpointError(ConfigError):
    """The course checkpoint named by the assignment config is missing, wrong or unreachable."""


class BuildError(AutograderError):
    """``build`` refused to write the bundles: a staged harness did not grade as it must."""


class ExportError(AutograderError):
    """A Gradescope export folder or zip cannot be read."""
