"""The harness side of a worker: start it, send a request, wait with a deadline, restart after faults.

Student code is never imported here.  Each ``WorkerHandle`` runs one student module in its own
process (its own session), forked by the run's ``autograder.sandbox.forkserver`` and confined by
``autograder.sandbox.confine`` (resource limits; as root also the unprivileged worker user of
``autograder.sandbox.isolation`` and a private network), in a scratch
directory holding only a copy of the submission as the package ``submission``, with stdin on
/dev/null, a scrubbed environment and its output captured to a file.  Every read and write on
the worker's pipes has a deadline, and after every call whatever the worker left running is
killed, so one call's crash, exit, signal, timeout or fork cannot reach the next one.
"""
from __future__ import annotations

import math
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.memory import vm_hwm_kib
from autograder.sandbox import protocol, reaper
from autograder.sandbox.calls import CALL_PHRASE
from autograder.sandbox.confine import limit_cpu
from autograder.container import Container, Counters
from autograder.errors import (AutograderError, BudgetTimeout, ContainerOutOfMemory, InvalidReturn, ProtocolError,
                               StudentCrash, StudentTimeout)
from autograder.sandbox.forkserver import Forked
from autograder.sandbox.isolation import Isolation

LIVE_WORKERS: set[int] = set()   # pids of running workers, across grading runs in this process
RAISED = re.compile(r"(raised |failed to import: )[A-Za-z_][A-Za-z0-9_]{0,60}")  # an exception's name, nothing more
CRASH_PHRASES = ("failed to import", "raised an exception", "called exit()")  # and CALL_PHRASE's lines
GiB, MiB = 1024 ** 3, 1024 ** 2


@dataclass(frozen=True)
class Limits:
    """Per-worker limits; each applies to one student call or to the worker's lifetime."""

    response_bytes: int = 256 * MiB      # largest answer the harness will read
    output_bytes: int = 64 * 1024        # captured stdout/stderr shown back, at most
    file_bytes: int = 16 * MiB           # RLIMIT_FSIZE: any file the worker writes, its output included
    memory_bytes: int = 3 * GiB          # RLIMIT_AS; a worker with the embedded models peaks near 1.1 GiB
    processes: int = 64                  # RLIMIT_NPROC: processes and threads of the worker user (all lanes)
    startup_seconds: float = 120.0       # importing torch and the drivers, before any student code
    retry_seconds: float = 10.0          # the budget of later calls once a module has timed out
    max_call_seconds: float | None = None  # a cap on every call's time limit (None: the test's own)

    def rlimits(self, processes: int) -> dict[int, tuple[int, int]]:
        return {
            resource.RLIMIT_CORE: (0, 0),
            resource.RLIMIT_FSIZE: (self.file_bytes, self.file_bytes),
            resource.RLIMIT_AS: (self.memory_bytes, self.memory_bytes),
            resource.RLIMIT_NPROC: (processes, processes),
            resource.RLIMIT_CPU: (resource.RLIM_INFINITY, resource.RLIM_INFINITY),  # set per call
        }


def make_scratch(files: dict[str, Path], parent: Path) -> Path:
    """A fresh directory holding ``submission/`` with copies of the given student files."""
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=parent))
    package = scratch / "submission"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, src in files.items():
        shutil.copyfile(src, package / name, follow_symlinks=False)
    return scratch


class _Deadline:
    """A pipe end whose reads fail with StudentTimeout once ``until`` (monotonic) has passed."""

    def __init__(self, fd: int, until: float, message: str):
        self.fd, self.until, self.message = fd, until, message

    def read(self, n: int) -> bytes:
        remaining = self.until - time.monotonic()
        if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
            raise StudentTimeout(self.message)
        return os.read(self.fd, min(n, 1 << 20))


class WorkerHandle:
    """One module (student or reference) served by a worker process, restarted after any fault."""

    def __init__(self, files: dict[str, Path], module: str, drivers: str, workdir: Path,
                 limits: Limits, isolation: Isolation, student: bool = True, lane: int = 0,
                 container: Container | None = None):
        self.files, self.module, self.drivers, self.limits = files, module, drivers, limits
        self.workdir, self.isolation, self.student = workdir, isolation, student
        self.container = container   # whose out-of-memory kills are told apart from the student's faults
        self.proc: Forked | None = None
        self.scratch: Path | None = None
        self._req = self._resp = -1
        self._log_path = workdir / f"{'student' if student else 'reference'}-{module}-{lane}.log"
        self._output_from = 0
        self._calls = self._calls_at_spawn = 0
        self._greeted = False
        self._spawned_at = 0.0
        self.timed_out = False
        self.peak_rss_kib = 0        # the largest peak resident memory of this handle's workers so far

    # -- lifecycle -------------------------------------------------------------------
    def spawn(self) -> None:
        """Start the worker's process without waiting for it: its imports overlap other work."""
        if self.proc is None:
            self._spawn()

    def _spawn(self) -> None:
        self.scratch = make_scratch(self.files, self.workdir)
        if self.student:
            self.isolation.own(self.scratch)
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        log = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        self._output_from = 0
        rlimits = self.limits.rlimits(self.isolation.process_limit(self.limits.processes))
        request = {"scratch": str(self.scratch), "module": self.module, "drivers": self.drivers,
                   "role": "student" if self.student else "reference",
                   "env": self.isolation.environment(self.scratch),
                   "confinement": self.isolation.confinement(self.student, rlimits, self.scratch).as_data()}
        server = self.isolation.server
        try:
            self.proc = self.isolation.forkserver().spawn(request, (req_r, resp_w, log), self.limits.startup_seconds)
        except OSError as exc:
            self._req, self._resp = req_w, resp_r
            self.stop()
            raise AutograderError(f"cannot start a worker for {self.module}.py: {exc}"
                                  + (f"\n{server.output()}" if server else "")) from None
        finally:
            for fd in (req_r, resp_w, log):
                os.close(fd)
        LIVE_WORKERS.add(self.proc.pid)
        self._req, self._resp = req_w, resp_r
        self._greeted = False
        self._spawned_at = time.monotonic()
        self._calls_at_spawn = self._calls

    def _handshake(self) -> None:
        try:
            # A prestarted worker's hello may have waited in the pipe past the startup deadline.
            until = max(self._spawned_at + self.limits.startup_seconds, time.monotonic() + 0.5)
            hello = protocol.read(_Deadline(self._resp, until, "startup"), 1 << 16)
        except (EOFError, ProtocolError, StudentTimeout) as exc:
            output = self.captured_output()
            self.stop()
            raise AutograderError(f"the worker for {self.module}.py failed to start ({type(exc).__name__}: {exc})"
                                  f"\n{output}") from None
        self.isolation.observe_worker(hello)
        self._greeted = True

    def stop(self) -> None:
        """Kill the worker, everything it started, and forget it."""
        if self.proc is not None:
            pid = self.proc.pid
            if self.proc.returncode is None:  # still our child, so ``pid`` is still this worker
                self.peak_rss_kib = max(self.peak_rss_kib, vm_hwm_kib(pid) or 0)
            for kill in (os.kill, os.killpg):  # the worker may have left its process group
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            reaper.kill(self.isolation.leftovers({pid}, LIVE_WORKERS - {pid}))
            self.proc.wait()
            self.peak_rss_kib = max(self.peak_rss_kib, self.proc.max_rss_kib or 0)
            LIVE_WORKERS.discard(pid)
            self.proc = None
        for fd in (self._req, self._resp):
            if fd >= 0:
                os.close(fd)
        self._req = self._resp = -1
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    @property
    def served(self) -> bool:
        """Running, and has answered a call since it started."""
        return self.proc is not None and self._calls > self._calls_at_spawn

    def ensure_started(self) -> None:
        """Start the worker if it is not running.  Call it from the thread that lives longest: the
        worker's parent-death signal fires when the thread that started it ends."""
        if self.proc is None:
            self._spawn()
        if not self._greeted:
            self._handshake()

    def kill(self) -> None:
        """SIGKILL the worker from another thread; the thread in ``call`` then sees it die and stops it."""
        proc = self.proc
        if proc is not None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def captured_output(self) -> str:
        """What the code printed during the latest call, cut to the output limit."""
        try:
            with open(self._log_path, "rb") as fh:
                fh.seek(self._output_from)
                data = fh.read(self.limits.output_bytes + 1)
        except OSError:
            return ""
        text = data[: self.limits.output_bytes].decode("utf-8", "replace")
        return text + ("\n[... output truncated ...]" if len(data) > self.limits.output_bytes else "")

    # -- calls -----------------------------------------------------------------------
    def call(self, driver: str, args: dict, timeout: float, budget_left: float | None = None) -> dict:
        """Run ``driver`` in the worker; return its plain-data result or raise a StudentError.

        The call may take ``timeout`` (shortened once the module has timed out before), or
        ``budget_left``, what the run's time budget leaves it, if that is less: a call the budget
        stops raises BudgetTimeout."""
        if self.limits.max_call_seconds is not None:
            timeout = min(timeout, self.limits.max_call_seconds)
        why = "time limit"
        if self.timed_out and self.student:
            timeout = min(timeout, self.limits.retry_seconds)
            why += ", shortened because it already ran out of time in an earlier test"
        timeout_error = StudentTimeout
        if budget_left is not None and budget_left < timeout:
            timeout = max(math.floor(budget_left * 10) / 10, 0.0)
            why, timeout_error = "what was left of the grading time budget", BudgetTimeout
        self.ensure_started()
        self._calls += 1
        try:
            self._output_from = os.path.getsize(self._log_path)
        except OSError:
            self._output_from = 0
        message = f"{self.module}.py did not finish within {timeout:g} s ({why})"
        deadline = time.monotonic() + timeout
        limit_cpu(self.proc.pid, timeout, self.isolation.privileged)
        counted = self.container.counters() if self.container is not None else Counters(None, None)
        try:
            self._send(protocol.encode({"id": self._calls, "driver": driver, "args": args}), deadline, message)
            response = protocol.read(_Deadline(self._resp, deadline, message), self.limits.response_bytes)
        except StudentTimeout:
            self.timed_out = True
            self.stop()
            raise timeout_error(message) from None
        except (EOFError, BrokenPipeError):
            return self._died(driver, counted)
        except ProtocolError as exc:
            self.stop()
            raise InvalidReturn(f"{self.module}.py broke the channel to the grader\n({exc})") from None
        except BaseException:  # e.g. the test's own time guard: never leave a call half-read
            self.stop()
            raise
        self._clean_up_after_call()
        return self._unwrap(response)

    def _send(self, data: bytes, deadline: float, message: str) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [self._req], [], remaining)[1]:
                raise StudentTimeout(message)
            view = view[os.write(self._req, view[: 1 << 16]):]

    def _clean_up_after_call(self) -> None:
        """Whatever the call left running (children, double-forked daemons) dies before the next one."""
        pid = self.proc.pid
        reaper.kill(self.isolation.leftovers({pid}, LIVE_WORKERS))

    def _died(self, driver: str, counted: Counters) -> dict:
        try:
            code = self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            code = None  # alive, but it closed its end of the channel
        self.stop()
        if self.container is not None and self.container.killed(counted, code):
            limit = self.container.limits().memory
            size = f" ({limit / MiB:.0f} MiB)" if limit is not None else ""
            raise ContainerOutOfMemory(
                f"autograder error: the grader ran out of memory in this container{size} while running your "
                f"{driver}; this is not a mistake in your code, and course staff have been told",
                f"{self.module}.py: {self.container.report(counted)}")
        if code is None:
            raise StudentCrash(f"{self.module}.py crashed: it closed the channel to the grader")
        if code < 0:
            name = signal.Signals(-code).name
            why = {"SIGXCPU": ", out of CPU time", "SIGXFSZ": f", over the {self.limits.file_bytes // MiB} MiB "
                   "limit on output and files", "SIGKILL": " (out of memory or time?)"}.get(name, "")
            how = f"was killed by signal {name}{why}"
        else:
            how = f"exited with status {code} (did it call exit() or os._exit()?)"
        raise StudentCrash(f"{self.module}.py crashed: the process running it {how}")

    def _unwrap(self, response: dict) -> dict:
        if not isinstance(response, dict) or type(response.get("ok")) is not bool or response.get("id") != self._calls:
            self.stop()
            raise InvalidReturn(f"{self.module}.py broke the channel to the grader\n(the answer is malformed)")
        if response["ok"]:
            result = response.get("result")
            if not isinstance(result, dict):
                raise InvalidReturn(f"{self.module}.py broke the channel to the grader\n(the answer is malformed)")
            return result
        kind = response.get("kind")
        message = str(response.get("message", ""))
        tb = str(response.get("traceback", ""))
        if kind == "invalid":
            raise InvalidReturn(f"{self.module}.py returned a value that cannot be graded\n{message}")
        if kind in ("crash", "import"):
            # The worker is the student's process: its words are checked, and the first line,
            # all that hidden tests show, is always one of ours.
            what = message.removeprefix(f"{self.module}.py ")
            ours = what in CRASH_PHRASES or RAISED.fullmatch(what) or CALL_PHRASE.fullmatch(what)
            what = what if ours else "raised an exception"
            raise StudentCrash(f"{self.module}.py {what}" + (f"\n{tb}" if tb else ""))
        raise AutograderError(f"worker for {self.module}.py reported a harness fault: {message}\n{tb}")
