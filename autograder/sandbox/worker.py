"""The worker process: imports one student module and runs the harness's drivers on request.

This module runs only inside a worker process, forked by ``autograder.sandbox.forkserver`` for a
``autograder.sandbox.WorkerHandle``.  It reads requests from one inherited pipe and answers on
another, in ``autograder.sandbox.protocol``'s plain-data format; student code's own stdout and stderr
go to capture files.  It never decides a score: every value it sends back is checked again by
the harness.
"""
from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path

from autograder.sandbox import protocol
from autograder.sandbox.calls import raised_phrase
from autograder.errors import InvalidReturn, StudentCall
from autograder.sandbox.heap import return_freed_memory
from autograder.sandbox.import_hints import import_hint

REQUEST_LIMIT = 64 * 1024 * 1024
STORE_VAR = "AUTOGRADER_STORE"  # names, in a worker's environment, the folder of shared read-only files


def student_traceback(exc: BaseException, package_dir: Path) -> str:
    """The traceback restricted to frames in the student's files, with paths relative to them."""
    lines = []
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            rel = Path(frame.filename).resolve().relative_to(package_dir)
        except ValueError:
            continue
        lines.append(f'  File "{rel}", line {frame.lineno}, in {frame.name}\n')
        if frame.line:
            lines.append(f"    {frame.line}\n")
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    detail = detail.replace(f"{package_dir}{os.sep}", "")  # a SyntaxError names the file by its full path
    if not lines:
        return detail
    return "Traceback (your code only):\n" + "".join(lines) + detail


def export_from_package(package, exports: dict[str, str]) -> None:
    """Let ``from submission import NAME`` find NAME in its module, as the course's package
    ``__init__`` re-exports it, importing that module only when the name is asked for."""
    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package.__name__!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package.__name__}.{exports[name]}"), name)

    package.__getattr__ = __getattr__


def _error(kind: str, message: str, tb: str = "") -> dict:
    return {"ok": False, "kind": kind, "message": message, "traceback": tb}


class Worker:
    """Serves one student module; the module is imported at the first request, so that its
    import time counts against that call's time limit."""

    def __init__(self, scratch: Path, module: str, drivers_module: str):
        self.package_dir = (scratch / "submission").resolve()
        self.module_name = module
        self.drivers = importlib.import_module(drivers_module)
        self.context = self.drivers.WorkerContext()
        self.student = None
        self.import_error: dict | None = None

    def _import(self) -> None:
        try:
            export_from_package(importlib.import_module("submission"), getattr(self.drivers, "PACKAGE_EXPORTS", {}))
            self.student = importlib.import_module(f"submission.{self.module_name}")
        except BaseException as exc:  # noqa: BLE001 - student code may raise anything, SystemExit included
            hint = import_hint(exc, self.package_dir, getattr(self.drivers, "OLDER_LAYOUTS", ()))
            self.import_error = _error("import", f"{self.module_name}.py failed to import: {type(exc).__name__}",
                                       "\n".join(filter(None, (hint, student_traceback(exc, self.package_dir)))))

    def handle(self, request: dict) -> dict:
        if self.student is None and self.import_error is None:
            self._import()
        if self.import_error is not None:
            return self.import_error
        name = request.get("driver")
        driver = getattr(self.drivers, "DRIVERS", {}).get(name)
        if driver is None:
            return _error("harness", f"unknown driver {name!r}")
        try:
            return {"ok": True, "result": driver(self.student, self.context, request.get("args", {}))}
        except StudentCall as exc:
            return self._student_call(exc)
        except InvalidReturn as exc:
            return _error("invalid", str(exc))
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt from student code too
            return self._fault(exc)

    def _student_call(self, exc: StudentCall) -> dict:
        """Calling a student function failed: the student's, whatever the traceback holds."""
        parts = [exc.detail]
        if exc.cause is not None:
            tb = student_traceback(exc.cause, self.package_dir)
            if not tb.startswith("Traceback (your code only)"):
                parts.append(f"(raised in library code, with no line of {exc.file} on the stack: check what "
                             f"{exc.function} is bound to and the arguments your code passes to library functions)")
            parts.append(tb)
        return _error("crash", str(exc), "\n".join(p for p in parts if p))

    def _fault(self, exc: BaseException) -> dict:
        """An exception outside any student call: the harness's, unless student code was on the
        stack (it may have replaced a function the driver uses) or it is an exit."""
        tb = student_traceback(exc, self.package_dir)
        ours = traceback.format_exc()
        if "Traceback (your code only)" not in tb and not isinstance(exc, (SystemExit, KeyboardInterrupt)):
            return _error("harness", f"{type(exc).__name__}: {exc}", ours)
        # The first line is ours alone: hidden tests show only that line to students.
        return _error("crash", f"{self.module_name}.py {raised_phrase(exc)}", tb)


def _flush_output() -> None:
    """Push what the call printed to the capture file, so the harness shows it with this call."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - student code may have replaced or closed the stream
            pass


def serve(scratch: Path, module: str, drivers_module: str, req_fd: int, resp_fd: int, role: str) -> int:
    """Answer the harness's requests on ``req_fd``/``resp_fd`` until it closes the request pipe."""
    requests = os.fdopen(req_fd, "rb", buffering=0)
    responses = os.fdopen(resp_fd, "wb", buffering=0)
    import torch

    torch.set_num_threads(1)
    worker = Worker(scratch, module, drivers_module)
    try:
        netns = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        netns = None
    protocol.write(responses, {"ok": True, "hello": True, "student": role == "student", "netns": netns,
                               "uid": os.getuid()})
    # Only now, with the harness's modules loaded, can the submission's folder shadow nothing of ours.
    sys.path[len(sys.path):] = [str(scratch), str(scratch / "submission")]
    while True:
        try:
            request = protocol.read(requests, REQUEST_LIMIT)
        except EOFError:
            return 0
        response = worker.handle(request)
        _flush_output()
        response["id"] = request.get("id")
        try:
            payload = protocol.encode(response)
        except (ValueError, protocol.ProtocolError) as exc:
            why = "it holds NaN or infinity where a number is due" if isinstance(exc, ValueError) else str(exc)
            payload = protocol.encode({**_error("invalid", f"the returned value cannot be graded: {why}"),
                                       "id": request.get("id")})
        responses.write(payload)
        responses.flush()
        return_freed_memory()  # what the call freed, while the harness judges the answer
