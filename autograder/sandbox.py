"""The harness side of a worker: start it, send a request, wait with a deadline, restart after faults.

Student code is never imported here.  Each ``WorkerHandle`` runs one student module in its own
process (its own session, so the whole group can be killed), in a scratch directory holding
only a copy of the submission as the package ``submission``, with stdin closed, a scrubbed
environment and its output captured to a capped file.
"""
from __future__ import annotations

import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from autograder import protocol
from autograder.errors import AutograderError, InvalidReturn, ProtocolError, StudentCrash, StudentTimeout

HARNESS_ROOT = Path(__file__).resolve().parent.parent
STUDENT_FILES = ("sample.py", "likelihood.py", "classifier.py")


@dataclass(frozen=True)
class Limits:
    """Per-worker limits; each applies to one student call or to the worker's lifetime."""

    response_bytes: int = 256 * 1024 * 1024   # largest answer the harness will read
    output_bytes: int = 64 * 1024             # captured stdout/stderr shown back, at most
    file_bytes: int = 256 * 1024 * 1024       # RLIMIT_FSIZE: largest file the worker may write


def _scrubbed_env(home: Path) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1", "TQDM_DISABLE": "1",
    }
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # machine-specific BLAS fixes
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def make_scratch(files: dict[str, Path], parent: Path) -> Path:
    """A fresh directory holding ``submission/`` with copies of the given student files."""
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=parent))
    package = scratch / "submission"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, src in files.items():
        shutil.copyfile(src, package / name)
    return scratch


class WorkerHandle:
    """One student module served by a worker process, restarted after any fault."""

    def __init__(self, files: dict[str, Path], module: str, drivers: str, workdir: Path,
                 limits: Limits = Limits()):
        self.files, self.module, self.drivers, self.limits = files, module, drivers, limits
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.scratch: Path | None = None
        self._requests = self._responses = None
        self._log_path = workdir / f"{module}-{id(self)}.log"

    # -- lifecycle -------------------------------------------------------------------
    def _start(self) -> None:
        self.scratch = make_scratch(self.files, self.workdir)
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        log = open(self._log_path, "wb")
        limits = self.limits

        def limit_child() -> None:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))

        bootstrap = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from autograder.worker import main; sys.exit(main(sys.argv[2:]))"
        )
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", bootstrap, str(HARNESS_ROOT), str(self.scratch), self.module,
                 self.drivers, str(req_r), str(resp_w)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.scratch,
                env=_scrubbed_env(self.scratch), pass_fds=(req_r, resp_w), start_new_session=True,
                preexec_fn=limit_child,
            )
        finally:
            os.close(req_r)
            os.close(resp_w)
            log.close()
        self._requests = os.fdopen(req_w, "wb", buffering=0)
        self._responses = os.fdopen(resp_r, "rb", buffering=0)

    def stop(self) -> None:
        """Kill the worker's whole process group and forget it."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            self.proc = None
        for stream in (self._requests, self._responses):
            if stream is not None:
                stream.close()
        self._requests = self._responses = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def captured_output(self) -> str:
        """What the student's code printed, cut to the output limit."""
        try:
            with open(self._log_path, "rb") as fh:
                data = fh.read(self.limits.output_bytes + 1)
        except FileNotFoundError:
            return ""
        text = data[: self.limits.output_bytes].decode("utf-8", "replace")
        return text + ("\n[... output truncated ...]" if len(data) > self.limits.output_bytes else "")

    # -- calls -----------------------------------------------------------------------
    def call(self, driver: str, args: dict, timeout: float) -> dict:
        """Run ``driver`` in the worker; return its plain-data result or raise a StudentError."""
        if self.proc is None:
            self._start()
        try:
            self._requests.write(protocol.encode({"driver": driver, "args": args}))
        except (BrokenPipeError, OSError):
            return self._died()
        deadline = time.monotonic() + timeout
        remaining = timeout
        ready, _, _ = select.select([self._responses], [], [], max(remaining, 0))
        if not ready or time.monotonic() > deadline + 1.0:
            self.stop()
            raise StudentTimeout(f"{self.module}.py did not finish within {timeout:g} s (time limit)")
        try:
            response = protocol.read(self._responses, self.limits.response_bytes)
        except EOFError:
            return self._died()
        except ProtocolError as exc:
            self.stop()
            raise InvalidReturn(f"{self.module}.py: the worker's answer could not be read ({exc})") from None
        return self._unwrap(response)

    def _died(self) -> dict:
        code = self.proc.wait() if self.proc is not None else None
        self.stop()
        if code is not None and code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
        else:
            how = f"exited with status {code}"
        raise StudentCrash(f"{self.module}.py: the process running your code {how} (did it call os._exit or exit?)")

    def _unwrap(self, response: dict) -> dict:
        if not isinstance(response, dict) or type(response.get("ok")) is not bool:
            self.stop()
            raise InvalidReturn(f"{self.module}.py: the worker's answer is malformed")
        if response["ok"]:
            result = response.get("result")
            if not isinstance(result, dict):
                raise InvalidReturn(f"{self.module}.py: the worker's answer is malformed")
            return result
        kind = response.get("kind")
        message = str(response.get("message", ""))
        tb = str(response.get("traceback", ""))
        if kind == "invalid":
            raise InvalidReturn(message)
        if kind in ("crash", "import"):
            raise StudentCrash(message + (f"\n\n{tb}" if tb and tb != message else ""))
        raise AutograderError(f"worker for {self.module}.py reported a harness fault: {message}\n{tb}")
