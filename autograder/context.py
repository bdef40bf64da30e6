"""What a graded test needs: the assignment, the submission's files, workers and seeds."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from autograder import protocol
from autograder.config import Assignment, derive_seed
from autograder.errors import AutograderError, MissingFile, StudentError
from autograder.isolation import Isolation
from autograder.sandbox import STUDENT_FILES, Limits, WorkerHandle

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference_solution"
REFERENCE_CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "reference"
DEFAULT_LIMITS = Limits()


def present_files(directory: Path) -> dict[str, Path]:
    """The student files found directly in ``directory`` (regular files: a link could point anywhere)."""
    return {name: directory / name for name in STUDENT_FILES
            if (directory / name).is_file() and not (directory / name).is_symlink()}


class ReferenceCache:
    """The reference solution's answers by request: they depend on nothing but the request.

    Kept in memory and, when ``directory`` is given, on disk as plain-data protocol files, so
    later grades (and a Gradescope image built with a warm cache) skip the reference's work.
    A file that cannot be read back is ignored and recomputed.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._answers: dict[str, dict] = {}
        self.directory = directory

    @staticmethod
    def key(files: dict[str, Path], module: str, driver: str, args: dict) -> str:
        digest = hashlib.sha256(protocol.encode({"module": module, "driver": driver, "args": args}))
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + files[name].read_bytes())
        return digest.hexdigest()

    def key_for(self, files: dict[str, Path], module: str, driver: str, args: dict) -> str:
        """The key of a request to the reference ``files``; a subclass may key on the request alone."""
        return self.key(files, module, driver, args)

    def get(self, key: str) -> dict | None:
        if key not in self._answers and self.directory is not None:
            path = self.directory / f"{key}.agw"
            try:
                with open(path, "rb") as fh:
                    self._answers[key] = protocol.read(fh, 1 << 30)
            except (OSError, EOFError, protocol.ProtocolError):
                return None
        return self._answers.get(key)

    def put(self, key: str, answer: dict) -> None:
        self._answers[key] = answer
        if self.directory is not None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                tmp = self.directory / f".{key}.{os.getpid()}.tmp"
                tmp.write_bytes(protocol.encode(answer))
                os.replace(tmp, self.directory / f"{key}.agw")
            except OSError:
                pass  # a read-only harness tree: the in-memory cache still serves this grade


class GradingContext:
    """Owns the workers of one grading run; ``close()`` kills every process they started."""

    def __init__(self, assignment: Assignment, submission: dict[str, Path],
                 reference: dict[str, Path] | None = None, limits: Limits | None = None,
                 reference_cache: ReferenceCache | None = None, file_problems: dict[str, str] | None = None):
        self.assignment = assignment
        self.submission = submission
        self.file_problems = dict(file_problems or {})  # file name -> why it cannot be graded
        self.reference = reference if reference is not None else present_files(REFERENCE_DIR)
        self.limits = limits or DEFAULT_LIMITS
        self.reference_cache = reference_cache if reference_cache is not None else ReferenceCache(REFERENCE_CACHE_DIR)
        self.workdir = Path(tempfile.mkdtemp(prefix="autograder-"))
        self._workers: dict[tuple[str, str], WorkerHandle] = {}
        self.staff_log: list[str] = []
        self.resources: dict[str, object] = {}  # per-run caches of assignment helpers, e.g. models
        try:
            self.isolation = Isolation.start(self.workdir, assignment.drivers, models=assignment.models)
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    def __enter__(self) -> "GradingContext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker, then kill whatever any of them left behind (raises if something survives)."""
        try:
            try:
                for worker in self._workers.values():
                    worker.stop()
                self._workers.clear()
            finally:
                self.isolation.close()
            self.staff_log.extend(self.isolation.report())
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def seed(self, test_id: str, *purpose: object) -> int:
        return derive_seed(self.assignment.seed, test_id, *purpose)

    def _worker(self, who: str, files: dict[str, Path], module: str) -> WorkerHandle:
        key = (who, module)
        if key not in self._workers:
            filename = f"{module}.py"
            if filename not in files:
                problems = self.file_problems if who == "student" else {}
                raise MissingFile(problems.get(filename, f"{filename} was not uploaded, so the tests of its functions cannot run"))
            self._workers[key] = WorkerHandle(files, module, self.assignment.drivers, self.workdir, self.limits,
                                              self.isolation, student=who == "student")
        return self._workers[key]

    def call_student(self, module: str, driver: str, args: dict, timeout: float) -> dict:
        return self._worker("student", self.submission, module).call(driver, args, timeout)

    def call_reference(self, module: str, driver: str, args: dict, timeout: float) -> dict:
        key = self.reference_cache.key_for(self.reference, module, driver, args)
        answer = self.reference_cache.get(key)
        if answer is None:
            try:
                answer = self._worker("reference", self.reference, module).call(driver, args, timeout)
            except StudentError as exc:  # the reference failing is our fault, never the student's
                raise AutograderError(f"the reference solution failed: {exc}") from None
            self.reference_cache.put(key, answer)
        return answer

    def student_output(self, module: str) -> str:
        worker = self._workers.get(("student", module))
        return worker.captured_output() if worker else ""

    def log(self, line: str) -> None:
        """A line for the staff-only grading log (run_autograder's stdout)."""
        self.staff_log.append(line)
