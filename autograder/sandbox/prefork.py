"""One copy of torch for the harness, the fork server and every worker of a grade.

Importing torch costs each fresh interpreter ~140 MiB of private memory (its static
initialisers and Python objects).  Started separately, the harness and the fork server hold it
twice, which is what a 768 MiB container cannot afford while a student's call
holds a long text's logits.  ``python -m autograder grade`` therefore first becomes a
*clean* interpreter (``reexec``): a new program image with a minimal environment, whose only
input is a sealed memory file holding the real command line and environment.  That
interpreter (this file run as a script) imports torch, forks the fork server at once, and only
then reads the memory file and becomes the harness.  The server's memory is therefore that
clean interpreter's, the same as a server started with ``subprocess`` (nothing of the grade,
the harness's environment or its files), while torch's pages stay shared, copy-on-write, by the
harness and everything the server forks.

The forked server waits for one message on its socket (``forkserver.ForkServer.start`` sends
it): its runtime folder, environment, the modules to preload and its log.  It then imports the
fork server's code from that runtime copy, as a started server would, and serves.  When any
step is impossible (no ``memfd_create``, the interpreter cannot be re-executed, torch fails to
import) the grade runs as before, with a server started on its own.

Run only as ``python -I prefork.py FD``; this file imports nothing of the harness at load.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import sys

MARKER_VAR = "AUTOGRADER_WORKER"   # as autograder.sandbox.isolation: leftover processes carry it
KEPT = ("PATH", "LD_LIBRARY_PATH", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # what loading torch may need
SETUP_BYTES = 1 << 16
PR_SET_PDEATHSIG = 1


def reexec(argv: list[str]) -> None:
    """Replace this process by the clean interpreter that forks the server and then grades
    ``argv`` (``sys.argv``); returns only when that cannot be done (the grade then runs here)."""
    if not hasattr(os, "memfd_create"):
        return
    marker = secrets.token_hex(12)  # this run's marker (autograder.sandbox.isolation), in the server's environment
    payload = json.dumps({"argv": argv, "env": dict(os.environ), "path": sys.path, "cwd": os.getcwd(),
                          "marker": marker}).encode()
    try:
        fd = os.memfd_create("autograder-grade", 0)  # not close-on-exec: the next image reads it
    except OSError:
        return
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
        env = {k: os.environ[k] for k in KEPT if k in os.environ}
        env.update(LANG="C.UTF-8", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **{MARKER_VAR: marker})
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-I", os.path.abspath(__file__), str(fd)], env)
    except OSError:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _serve(sock: socket.socket, harness: int) -> None:
    """In the forked server: wait for the harness's setup message, then serve; never returns."""
    code = 1
    try:
        import ctypes
        import signal

        os.setsid()
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != harness:
            os._exit(0)
        data, fds, _flags, _addr = socket.recv_fds(sock, SETUP_BYTES, 1)
        if not data or len(fds) != 1:
            os._exit(0)  # the grade needed no server, or started one of its own
        setup = json.loads(data)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[0], 2)
        os.close(null)
        os.close(fds[0])
        os.chdir(setup["runtime"])
        os.environ.clear()
        os.environ.update(setup["env"])
        sys.path.insert(0, setup["runtime"])
        from autograder.sandbox.forkserver import serve  # the runtime's copy, as a started server imports it

        code = serve([str(sock.detach()), *setup["preload"]])
    except BaseException:  # noqa: BLE001 - this process must never return into the harness's code
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _boot(fd: int) -> int:
    prefork = None
    try:
        import gc

        import torch  # noqa: F401 - the copy everyone shares

        gc.freeze()  # no collection in either process writes to (and so copies) these objects' pages
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        harness = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(fd)
            ours.close()
            _serve(theirs, harness)
        theirs.close()
        prefork = (pid, ours)
    except (ImportError, OSError):
        pass  # the grade starts its own server
    payload = json.loads(_read_all(fd))
    os.close(fd)
    os.chdir(payload["cwd"])
    sys.path[:] = payload["path"]
    sys.argv = payload["argv"]
    os.environ.clear()
    os.environ.update(payload["env"])
    from autograder.cli import main
    from autograder.sandbox.forkserver import PreForked

    return main(sys.argv[1:], prefork=PreForked(*prefork, payload["marker"]) if prefork else None)


if __name__ == "__main__":
    sys.exit(_boot(int(sys.argv[1])))
