"""The floor of a grade: the student functions alone, for the same calls, in one plain process.

``Recorder`` notes every request a grade sends to the student's workers; ``replay`` makes the
same calls through the same drivers in this process, with the models built beforehand, and
returns each test's seconds.  What remains of a grade's time above the floor is the harness:
workers, checks, reference laws.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import tempfile
import time
from pathlib import Path

import torch


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str, str, dict]] = []   # (monotonic time, module, driver, args)

    @contextlib.contextmanager
    def recording(self, context_class):
        original = context_class.call_student

        def call_student(ctx, module, driver, args, *rest, **kwargs):
            self.calls.append((time.monotonic(), module, driver, args))
            return original(ctx, module, driver, args, *rest, **kwargs)

        context_class.call_student = call_student
        try:
            yield self
        finally:
            context_class.call_student = original


def _test_at(spans: dict[str, tuple[float, float]], at: float) -> str:
    return next((test_id for test_id, (start, end) in spans.items() if start <= at <= end), "?")


def replay(calls, submission: Path, spans: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Seconds of the student functions per test id, replayed in this process on one thread."""
    from autograder.config import load_assignment
    from autograder.context import present_files
    from autograder.sandbox.heap import return_freed_memory
    from autograder.q6 import drivers
    from autograder.sandbox.handle import make_scratch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="ag-floor-") as tmp:
        scratch = make_scratch(present_files(submission, load_assignment().student_files), Path(tmp))   # as a worker imports it
        sys.path[len(sys.path):] = [str(scratch), str(scratch / "submission")]
        modules: dict[str, object] = {}
        try:
            ctx = drivers.WorkerContext()
            seconds: dict[str, float] = {}
            for at, module, driver, args in calls:
                if module not in modules:
                    modules[module] = importlib.import_module(f"submission.{module}")
                ctx.models.get(args["model"])  # built before the clock starts, as in a running worker
                started = time.perf_counter()
                drivers.DRIVERS[driver](modules[module], ctx, args)
                test_id = _test_at(spans, at)
                seconds[test_id] = seconds.get(test_id, 0.0) + time.perf_counter() - started
            return seconds
        finally:
            ctx = None
            gc.collect()
            return_freed_memory()   # the next monitored grade must not count this process's models
            del sys.path[-2:]
            for name in [n for n in sys.modules if n == "submission" or n.startswith("submission.")]:
                sys.modules.pop(name, None)
            torch.set_num_threads(threads)
