"""Peak memory of one grade, for the staff: the grading process's own and its workers'.

A worker's peak is its VmHWM read just before the harness kills it, or, for a worker that ended by
itself, its ``wait4`` maximum resident set size (``autograder.sandbox.forkserver.Forked``); both
count the pages it shares with the fork server (torch, the drivers).  The grading process's
peak is its VmHWM: Linux resets it on request (``/proc/self/clear_refs``), so a process that grades
one submission after another reports each grade's own peak; where the reset is refused, the peak
is the process's since it started, and the record says so.
"""
from __future__ import annotations

import resource
from pathlib import Path

PROC_SELF = Path("/proc/self")


def reset_own_peak() -> bool:
    """Start counting this process's peak resident memory from now; False when Linux refuses."""
    try:
        (PROC_SELF / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def vm_hwm_kib(pid: int | str = "self") -> int | None:
    """Process ``pid``'s peak resident memory in KiB (VmHWM), or None when it cannot be read
    (the process has ended, or its status is not ours to read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def own_peak_kib() -> int:
    """This process's peak resident memory in KiB (VmHWM, else ``getrusage``'s maximum)."""
    peak = vm_hwm_kib()
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def memory_record(grader_kib: int, since_grade_start: bool, worker_peaks_kib: dict[str, int]) -> dict:
    """``results.json``'s ``extra_data.memory``: MiB, rounded to 0.1."""
    record = {"grader_peak_mib": _mib(grader_kib),
              "grader_peak_of": "this grade" if since_grade_start else "the grading process since it started"}
    if "student" in worker_peaks_kib:
        record["worker_peak_mib"] = _mib(worker_peaks_kib["student"])
    if "reference" in worker_peaks_kib:
        record["reference_worker_peak_mib"] = _mib(worker_peaks_kib["reference"])
    return record
