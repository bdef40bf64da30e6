"""Sample the CPU time and memory of this process and all its descendants, for the benchmarks.

Memory is the proportional set size (PSS) summed over the process tree: a page mapped by
several processes (a model's weights shared by the harness and its workers) counts once.
CPU time is user + system of every live process of the tree plus every child already reaped.
"""
from __future__ import annotations

import bisect
import os
import resource
import threading
import time
from dataclasses import dataclass, field

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reaped_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Sample:
    at: float       # time.monotonic()
    cpu: float      # seconds, whole tree since the monitor started
    pss: int        # bytes, whole tree now


@dataclass
class TreeMonitor:
    """``with TreeMonitor() as m: ...`` samples every ``period`` seconds in a thread."""

    period: float = 0.05
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-monitor", daemon=True)
        self._base = 0.0

    def _tree(self) -> list[tuple[int, float]]:
        """(pid, CPU seconds) of this process's live descendants."""
        parents, cpu = {}, {}
        for name in os.listdir("/proc"):
            if name.isdigit() and (st := _stat(int(name))) is not None:
                parents[int(name)], cpu[int(name)] = st
        me, found, frontier = os.getpid(), [], [os.getpid()]
        children: dict[int, list[int]] = {}
        for pid, ppid in parents.items():
            children.setdefault(ppid, []).append(pid)
        while frontier:
            for kid in children.get(frontier.pop(), []):
                found.append((kid, cpu[kid]))
                frontier.append(kid)
        return [(me, 0.0)] + found

    def sample(self) -> Sample:
        tree = self._tree()
        cpu = _reaped_cpu() + sum(c for _, c in tree[1:]) - self._base
        return Sample(time.monotonic(), cpu, sum(_pss_bytes(pid) for pid, _ in tree))

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append(self.sample())

    def __enter__(self) -> "TreeMonitor":
        self._base = self.sample().cpu
        self.samples.append(self.sample())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.sample())

    def window(self, start: float, end: float) -> tuple[float, int]:
        """CPU seconds used and peak PSS bytes between two monotonic times."""
        times = [s.at for s in self.samples]
        lo = max(bisect.bisect_left(times, start) - 1, 0)
        hi = min(bisect.bisect_right(times, end), len(self.samples) - 1)
        inside = self.samples[lo : hi + 1]
        return inside[-1].cpu - inside[0].cpu, max(s.pss for s in inside)

    @property
    def peak(self) -> int:
        return max(s.pss for s in self.samples)

    @property
    def cpu(self) -> float:
        return self.samples[-1].cpu - self.samples[0].cpu
