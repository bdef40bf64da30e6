"""Run jobs in separate processes, a given number at a time, for the staff's batch commands.

``run_jobs`` calls a top-level function on picklable jobs and yields each job with its result as
it finishes.  With one at a time it runs them in this process, in order.  A job whose process
died (out of memory, killed) is retried once in a fresh pool, then yielded with ``None``.
"""
from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Iterator, TypeVar

from autograder.errors import UsageError

ATTEMPTS = 2        # a job whose process died this many times is given up, not retried
DIED = "the process grading it died (out of memory?)"

J = TypeVar("J")
R = TypeVar("R")


def run_jobs(fn: Callable[[J], R], jobs: Iterable[J], workers: int) -> Iterator[tuple[J, R | None]]:
    """``(job, fn(job))`` for every job as it finishes, ``workers`` at a time; ``None`` if its process died."""
    if workers < 1:
        raise UsageError(f"--jobs {workers}: give at least 1")
    if workers == 1:
        for job in jobs:
            yield job, fn(job)
        return
    pending, attempts = list(jobs), Counter()
    while pending:
        batch, pending = pending, []
        context = multiprocessing.get_context("spawn")  # never fork a process that may hold torch threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(fn, job): job for job in batch}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    result = future.result()
                except BrokenProcessPool:
                    attempts[job] += 1
                    if attempts[job] < ATTEMPTS:
                        pending.append(job)
                    else:
                        yield job, None
                    continue
                yield job, result
