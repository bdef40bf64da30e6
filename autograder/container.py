"""The container a grade runs in: its memory limit and CPU quota, and whether the kernel's
out-of-memory killer struck in it.

Gradescope runs every grade in a container whose memory is a cgroup limit (768 MiB by default,
with half a CPU); past it the kernel kills a process.  ``Container.find`` locates this
process's cgroup (v1: the ``memory`` and ``cpu`` hierarchies; v2: the unified one) from
``/proc/self/cgroup``, under a ``root`` that tests replace with a folder of fake files.  When
nothing is found every answer is "unknown" and nothing is ever classified as the container's
doing.

What a grade needs in each mode is the assignment's to say (``need_of``: its drivers module's
table, measured by ``bench/container.py``), and ``advice`` turns it into the Gradescope hardware
tier to pick.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 ** 2
UNLIMITED = 1 << 60                        # v1 writes 2**63 rounded to pages for "no limit"
TIERS = ((0.5, 0.75), (1.0, 1.5), (2.0, 3.0), (4.0, 6.0))   # Gradescope's (CPUs, GB) choices
HEADROOM = 1.15                            # memory beyond the measured peak that a tier must leave


@dataclass(frozen=True)
class Need:
    """What grading the reference solution was measured to need in one mode."""

    mode: str            # which models: the assignment's own name for them
    peak_mib: int        # anonymous memory at the grade's peak plus the model weights it maps (MiB)
    cpus: float          # the fewest CPUs that keep every call well inside its time limit
    measured: str        # how, for the warnings
    when: str = ""       # which models make this mode, for the docs


def needs(assignment) -> list[Need]:
    """Every mode's need, as the drivers module of ``assignment`` says: its ``CONTAINER_NEEDS``
    (mode -> peak MiB, CPUs, how it was measured, when the mode applies); none when it says nothing."""
    table = getattr(importlib.import_module(assignment.drivers), "CONTAINER_NEEDS", {})
    return [Need(mode, *row) for mode, row in table.items()]


def need_of(assignment) -> Need | None:
    """What grading ``assignment`` (its ``drivers`` and ``models``) was measured to need: the need of
    the mode its drivers module's ``container_mode(models)`` names; None when it says nothing."""
    known = needs(assignment)
    if not known:
        return None
    mode = importlib.import_module(assignment.drivers).container_mode(assignment.models)
    return next(need for need in known if need.mode == mode)


def tier_for(need: Need) -> tuple[float, float]:
    """The smallest Gradescope tier (CPUs, GB) with the CPUs and the memory (plus headroom) ``need`` asks."""
    for cpus, gb in TIERS:
        if cpus >= need.cpus and gb * 1024 >= need.peak_mib * HEADROOM:
            return cpus, gb
    return TIERS[-1]


def advice(need: Need) -> str:
    cpus, gb = tier_for(need)
    return (f"the {need.mode} models need about {need.peak_mib} MiB ({need.measured}): pick Gradescope's "
            f"{cpus:g} CPU / {gb:g} GB tier or more")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text.split()[0]) if text and text.split()[0] != "max" else None
    except ValueError:
        return None


def _field(path: Path, name: str) -> int | None:
    """The value of line ``name N`` of a flat keyed file (memory.stat, memory.events, oom_control)."""
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name and parts[1].isdigit():
            return int(parts[1])
    return None


@dataclass(frozen=True)
class Counters:
    """The kernel's counts for the memory cgroup at one moment (None: not available)."""

    oom_kills: int | None     # processes killed for the limit (v1 oom_control, v2 memory.events)
    failcnt: int | None       # v1: times the usage hit the limit


@dataclass(frozen=True)
class Limits:
    memory: int | None        # bytes; None: no limit (or none found)
    cpus: float | None        # CFS quota / period; None: no quota
    where: str                # which files said so

    def describe(self) -> str:
        memory = "no memory limit" if self.memory is None else f"memory limit {self.memory / MiB:.0f} MiB"
        cpus = "no CPU quota" if self.cpus is None else f"CPU quota {self.cpus:g}"
        return f"container: {memory}, {cpus} ({self.where})"


@dataclass(frozen=True)
class Container:
    """This process's cgroup, found under ``root`` (``/`` on a real machine)."""

    version: int | None              # 1, 2, or None when no cgroup was found
    memory: Path | None              # the memory controller's folder of our cgroup
    cpu: Path | None                 # the cpu controller's folder (v2: the same folder)
    top: Path | None = None          # where the hierarchy is mounted (limits are read up to it)
    root: Path = Path("/")           # what /proc and /sys are found under

    @classmethod
    def find(cls, root: Path = Path("/")) -> "Container":
        root = Path(root)
        lines = (_read(root / "proc/self/cgroup") or "").splitlines()
        fs = root / "sys/fs/cgroup"
        v1 = {}
        for line in lines:
            parts = line.split(":", 2)
            if len(parts) == 3 and parts[1]:
                for controller in parts[1].split(","):
                    v1[controller] = (parts[1], parts[2])
        if "memory" in v1:
            memory = _located(fs, *v1["memory"])
            cpu = _located(fs, *v1["cpu"]) if "cpu" in v1 else None
            return cls(1, memory, cpu, fs, root) if memory is not None else cls(None, None, None, root=root)
        unified = next((p[2] for p in (line.split(":", 2) for line in lines) if len(p) == 3 and p[0] == "0"), None)
        if unified is not None and (fs / "cgroup.controllers").is_file():
            folder = fs / unified.lstrip("/")
            folder = folder if folder.is_dir() else fs
            return cls(2, folder, folder, fs, root)
        return cls(None, None, None, root=root)

    def limits(self) -> Limits:
        if self.version is None:
            return Limits(None, None, "no cgroup found in /proc/self/cgroup")
        total = _field(self.root / "proc/meminfo", "MemTotal:")  # kB
        memory, cpus = (self._v1_memory(), self._v1_cpus()) if self.version == 1 else self._v2_limits()
        if memory is not None and (memory >= UNLIMITED or total is not None and memory >= total * 1024):
            memory = None
        return Limits(memory, cpus, f"cgroup v{self.version} {self.memory}")

    def _v1_memory(self) -> int | None:
        stat = _field(self.memory / "memory.stat", "hierarchical_memory_limit")   # ancestors included
        return stat if stat is not None else _int(self.memory / "memory.limit_in_bytes")

    def _v1_cpus(self) -> float | None:
        if self.cpu is None:
            return None
        quota, period = _int(self.cpu / "cpu.cfs_quota_us"), _int(self.cpu / "cpu.cfs_period_us")
        return quota / period if quota is not None and quota > 0 and period else None

    def _v2_limits(self) -> tuple[int | None, float | None]:
        memory = cpus = None
        for folder in self._up():
            limit = _int(folder / "memory.max")
            memory = limit if limit is not None and (memory is None or limit < memory) else memory
            quota = (_read(folder / "cpu.max") or "").split()
            if len(quota) == 2 and quota[0].isdigit() and quota[1].isdigit() and int(quota[1]):
                share = int(quota[0]) / int(quota[1])
                cpus = share if cpus is None or share < cpus else cpus
        return memory, cpus

    def _up(self):
        folder = self.memory
        while folder is not None:
            yield folder
            if folder == self.top or self.top not in folder.parents:
                return
            folder = folder.parent

    def counters(self) -> Counters:
        if self.version == 1:
            return Counters(_field(self.memory / "memory.oom_control", "oom_kill"), _int(self.memory / "memory.failcnt"))
        if self.version == 2:
            return Counters(_field(self.memory / "memory.events", "oom_kill"), None)
        return Counters(None, None)

    def peak(self) -> int | None:
        """The highest memory usage the cgroup has seen, in bytes (v2 needs Linux 5.19)."""
        if self.version == 1:
            return _int(self.memory / "memory.max_usage_in_bytes")
        return _int(self.memory / "memory.peak") if self.version == 2 else None

    def killed(self, before: Counters, returncode: int | None) -> bool:
        """Did the kernel kill a process for the memory limit, given a worker's exit (``returncode``
        as ``Popen`` gives it) and the counters from before its call?  Only a SIGKILL counts, and
        only when the OOM kills rose (or, without that counter, the failures to charge memory)."""
        if returncode != -9:
            return False
        after = self.counters()
        if before.oom_kills is not None and after.oom_kills is not None:
            return after.oom_kills > before.oom_kills
        return before.failcnt is not None and after.failcnt is not None and after.failcnt > before.failcnt

    def report(self, before: Counters) -> str:
        """The staff's line about a kill: the limit, the peak, the counters."""
        limit, peak, after = self.limits().memory, self.peak(), self.counters()
        return (f"the kernel killed the worker for the container's memory limit "
                f"({'unknown' if limit is None else f'{limit / MiB:.0f} MiB'}; peak usage "
                f"{'unknown' if peak is None else f'{peak / MiB:.0f} MiB'}; oom_kill {before.oom_kills} -> "
                f"{after.oom_kills}, failcnt {before.failcnt} -> {after.failcnt}; {self.memory})")


def _located(fs: Path, mount: str, path: str) -> Path | None:
    """A v1 controller's folder for ``path``: under its mount, or the mount itself when a
    container shows only its own part of the hierarchy."""
    base = fs / mount
    if not base.is_dir():
        base = fs / mount.split(",")[0]
    if not base.is_dir():
        return None
    folder = base / path.lstrip("/")
    return folder if folder.is_dir() else base


def startup_lines(assignment, root: Path = Path("/")) -> list[str]:
    """The staff log's lines about the container, and a warning when its memory is too small
    for what ``assignment`` was measured to need (``need_of``)."""
    limits = Container.find(root).limits()
    lines = [limits.describe()]
    need = need_of(assignment)
    if need is None:
        return lines
    short = []
    if limits.memory is not None and limits.memory < need.peak_mib * MiB * HEADROOM:
        short.append(f"its memory ({limits.memory / MiB:.0f} MiB)")
    if limits.cpus is not None and limits.cpus < need.cpus:
        short.append(f"its CPU quota ({limits.cpus:g})")
    if short:
        lines.append(f"warning: this container is too small, {' and '.join(short)}: {advice(need)}")
    return lines
