"""Workers forked from one process that has already imported torch and the drivers.

Importing torch costs every fresh interpreter ~2 s of CPU and ~140 MiB of private memory
(relocated library data).  A grading run therefore starts one *fork server* per run: a
trusted process, started from the harness's worker runtime with the workers' scrubbed
environment, that imports torch and the drivers once and then forks every worker of the run.
The pages it loaded stay shared, copy-on-write, between the server and all the workers.

A worker is forked twice (server -> intermediate -> worker) and the intermediate exits at
once, so the worker is re-parented to the harness (a child subreaper, see ``autograder.sandbox.reaper``):
the harness waits for it, reads its exit status and reaps it exactly as it would a child it
started itself.  Only then does the worker confine itself (``Confinement.apply``: limits, private
network, a student worker's private view of the file system, worker user, no new privileges,
death with the harness) and serve requests.  It closes its end of the server's socket before
that, so student code cannot ask the server for anything.

Requests to the server are JSON over a SOCK_SEQPACKET socket pair, each carrying the worker's
three file descriptors (request pipe, answer pipe, output log) with SCM_RIGHTS.

``python -m autograder grade`` hands its run a server forked before the harness existed
(``autograder.sandbox.prefork``), so that one copy of torch serves harness, server and workers;
``ForkServer.start`` then sends that server its setup instead of starting one.
"""
from __future__ import annotations

import gc
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from autograder.sandbox.confine import SERVER_OOM_SCORE, Confinement, die_with_parent, raise_oom_score
from autograder.sandbox.heap import map_large_blocks

PACKET = 1 << 16          # largest request or reply
REPARENT_SECONDS = 5.0    # how long a new worker waits to become the harness's child


class Forked:
    """A worker the fork server started, now a child of this process: ``subprocess.Popen``'s
    ``pid``, ``poll`` and ``wait`` for it, and its peak resident memory once it is reaped
    (``max_rss_kib``, from ``wait4``; it counts the pages it shares with the fork server)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self.max_rss_kib: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            while self.returncode is None:
                self._reap(0)
            return self.returncode
        deadline, delay = time.monotonic() + timeout, 0.0005
        while self.poll() is None:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _reap(self, flags: int) -> None:
        try:
            pid, status, usage = os.wait4(self.pid, flags)
        except ChildProcessError:  # reaped elsewhere (a leftover sweep): its status is lost
            self.returncode = -signal.SIGKILL
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)
            self.max_rss_kib = usage.ru_maxrss


class PreForked:
    """A fork server forked by ``autograder.sandbox.prefork`` before the harness started, waiting for its
    setup on ``sock``; one grading run takes it (``take``), later runs start their own."""

    def __init__(self, pid: int, sock: socket.socket, marker: str):
        self.pid, self.marker = pid, marker
        self._sock: socket.socket | None = sock

    def take(self) -> socket.socket | None:
        sock, self._sock = self._sock, None
        return sock


class ForkServer:
    """The harness's side: start the server without waiting for its imports, ask it for workers."""

    def __init__(self, runtime: Path, env: dict[str, str], preload: tuple[str, ...], log: Path):
        self.runtime, self.env, self.preload, self.log = runtime, env, preload, log
        self.proc: subprocess.Popen | Forked | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, prefork: PreForked | None = None) -> bool:
        """Start the server (call it from the thread that lives longest: it dies with that thread),
        or set up ``prefork``'s; True when ``prefork``'s server is the one now serving."""
        log = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        sock = prefork.take() if prefork is not None else None
        if sock is not None:
            setup = {"runtime": str(self.runtime), "env": self.env, "preload": list(self.preload)}
            try:
                socket.send_fds(sock, [json.dumps(setup).encode()], [log])
            except OSError:  # it died: start one of our own
                sock.close()
            else:
                os.close(log)
                self.proc, self._sock = Forked(prefork.pid), sock
                return True
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        bootstrap = ("import sys; sys.path.insert(0, sys.argv[1]); "
                     "from autograder.sandbox.forkserver import serve; sys.exit(serve(sys.argv[2:]))")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", bootstrap, str(self.runtime), str(theirs.fileno()), *self.preload],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.runtime, env=self.env,
                pass_fds=(theirs.fileno(),), start_new_session=True, preexec_fn=die_with_parent)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
            os.close(log)
        self._sock = ours
        return False

    def spawn(self, request: dict, fds: tuple[int, int, int], timeout: float) -> Forked:
        """A new worker for ``request`` (scratch, module, drivers, role, env, confinement), served
        on ``fds``; raises OSError when the server cannot make one within ``timeout`` seconds."""
        with self._lock:
            if self.proc is None or self.proc.poll() is not None:
                raise OSError(f"the fork server is not running{self._exit_note()}")
            socket.send_fds(self._sock, [json.dumps(request).encode()], list(fds))
            if not select.select([self._sock], [], [], timeout)[0]:
                raise OSError(f"the fork server did not answer within {timeout:g} s")
            data = self._sock.recv(PACKET)
        reply = json.loads(data) if data else {"error": f"the fork server stopped{self._exit_note()}"}
        if "pid" not in reply:
            raise OSError(reply.get("error", "the fork server's answer is malformed"))
        return Forked(int(reply["pid"]))

    def output(self, limit: int = 4000) -> str:
        """The end of what the server printed (why it could not start a worker)."""
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def _exit_note(self) -> str:
        code = self.proc.poll() if self.proc is not None else None
        return "" if code is None else f" (it exited with status {code}; see {self.log.name})"

    def stop(self) -> None:
        """Kill the server (it holds no state; the workers it forked are the harness's children)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


# -- the server's side -------------------------------------------------------------------
def serve(argv: list[str]) -> int:
    """The server's loop: one worker per request, until the harness closes the socket."""
    sock = socket.socket(fileno=int(argv[0]))
    map_large_blocks()  # inherited by every worker: what a call frees goes back, not to a pinned heap
    raise_oom_score(SERVER_OOM_SCORE)
    import torch  # noqa: F401 - loaded here once, shared by every worker

    for name in argv[1:]:
        importlib.import_module(name)
    harness = os.getppid()
    gc.freeze()  # the collector must not write to (and so copy) the shared objects' pages
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, PACKET, 3)
        except OSError:
            return 1
        if not data:
            return 0
        try:
            reply = {"pid": _fork_worker(sock, json.loads(data), fds, harness)}
        except Exception as exc:  # noqa: BLE001 - the harness reports it as a start failure
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(json.dumps(reply).encode())


def _fork_worker(sock: socket.socket, request: dict, fds: list[int], harness: int) -> int:
    if len(fds) != 3:
        raise ValueError(f"expected 3 file descriptors, got {len(fds)}")
    sys.stdout.flush()
    sys.stderr.flush()
    report_r, report_w = os.pipe()
    middle = os.fork()
    if middle == 0:  # the intermediate: fork the worker, say its pid, leave
        try:
            os.close(report_r)
            pid = os.fork()
            if pid == 0:
                os.close(report_w)
                _become_worker(sock, request, fds, harness)
            os.write(report_w, str(pid).encode())
        finally:
            os._exit(0)
    os.close(report_w)
    with os.fdopen(report_r, "rb") as report:
        said = report.read()
    os.waitpid(middle, 0)
    if not said.isdigit():
        raise OSError("the worker could not be forked")
    return int(said)


def _become_worker(sock: socket.socket, request: dict, fds: list[int], harness: int) -> None:
    """In the forked worker: wait to be the harness's child, confine, serve; never returns."""
    code = 70
    try:
        sock.close()
        req, resp, log = fds
        until = time.monotonic() + REPARENT_SECONDS
        while os.getppid() != harness:
            if time.monotonic() > until:
                os._exit(71)
            time.sleep(0.0002)
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        _close_all_but({0, 1, 2, req, resp})
        os.chdir(request["scratch"])
        os.environ.clear()
        os.environ.update(request["env"])
        Confinement.from_data(request["confinement"]).apply()
        if os.getppid() != harness:  # the harness died before the death signal was armed
            os._exit(72)
        from autograder.sandbox.worker import serve as serve_requests

        code = serve_requests(Path(request["scratch"]), request["module"], request["drivers"], req, resp,
                              request["role"])
    except BaseException:  # noqa: BLE001 - whatever happens, this process must not return to the server loop
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _close_all_but(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
