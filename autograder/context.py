"""What a graded test needs: the assignment, the submission's files, workers and seeds."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autograder.sandbox import protocol
from autograder.budget import Budget
from autograder.config import Assignment, derive_seed
from autograder.container import Container
from autograder.paths import REFERENCE_CACHE_DIR, REFERENCE_DIR
from autograder.errors import AutograderError, BudgetTimeout, MissingFile, StudentError
from autograder.sandbox.forkserver import PreForked
from autograder.sandbox.isolation import Isolation
from autograder.provenance import harness_digest
from autograder.sandbox.handle import Limits, WorkerHandle

DEFAULT_LIMITS = Limits()


def present_files(directory: Path, names: tuple[str, ...]) -> dict[str, Path]:
    """The student files ``names`` found directly in ``directory`` (regular files: a link could point anywhere)."""
    return {name: directory / name for name in names
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
    def key(files: dict[str, Path], module: str, driver: str, args: dict, harness: str = "") -> str:
        digest = hashlib.sha256(protocol.encode({"module": module, "driver": driver, "args": args,
                                                 "harness": harness}))
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + files[name].read_bytes())
        return digest.hexdigest()

    def key_for(self, files: dict[str, Path], module: str, driver: str, args: dict) -> str:
        """The key of a request to the reference ``files`` computed by this harness (its models and
        drivers), so a changed harness never reads answers an older one wrote; a subclass may key
        on the request alone."""
        return self.key(files, module, driver, args, harness_digest())

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
    """Owns the workers of one grading run; ``close()`` kills every process they started.

    ``budget`` is the run's time budget (default: the assignment's ``time_budget`` from now): every
    student call is planned within it and charged to it, and so is every reference call the cache
    cannot answer, as the harness's own work (``autograder.budget``)."""

    def __init__(self, assignment: Assignment, submission: dict[str, Path],
                 reference: dict[str, Path] | None = None, limits: Limits | None = None,
                 reference_cache: ReferenceCache | None = None, file_problems: dict[str, str] | None = None,
                 budget: Budget | None = None, prefork: PreForked | None = None,
                 container: Container | None = None, unsafe: bool = False):
        self.assignment = assignment
        self.budget = budget if budget is not None else Budget(assignment.time_budget)
        self.submission = submission
        self.file_problems = dict(file_problems or {})  # file name -> why it cannot be graded
        self.reference = reference if reference is not None else present_files(REFERENCE_DIR, assignment.student_files)
        self.limits = limits or DEFAULT_LIMITS
        self.reference_cache = reference_cache if reference_cache is not None else ReferenceCache(REFERENCE_CACHE_DIR)
        self.workdir = Path(tempfile.mkdtemp(prefix="autograder-"))
        self._workers: dict[tuple[str, str, int], WorkerHandle] = {}
        self.staff_log: list[str] = []
        self.worker_peaks_kib: dict[str, int] = {}  # "student"/"reference" -> largest worker peak RSS, at close
        self.resources: dict[str, object] = {}  # per-run caches of assignment helpers, e.g. models
        self.container = container if container is not None else Container.find()
        try:
            self.isolation = Isolation.start(self.workdir, assignment.drivers, models=assignment.models, prefork=prefork,
                                             unsafe=unsafe)
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    def __enter__(self) -> "GradingContext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker, then kill whatever any of them left behind (raises if something survives)."""
        self.resources.clear()  # models mapped from the run's store: unmapped once the tests let go
        try:
            try:
                for (who, _module, _lane), worker in self._workers.items():
                    worker.stop()
                    if worker.peak_rss_kib:
                        self.worker_peaks_kib[who] = max(self.worker_peaks_kib.get(who, 0), worker.peak_rss_kib)
                self._workers.clear()
            finally:
                self.isolation.close()
            self.staff_log.extend(self.isolation.report())
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def seed(self, test_id: str, *purpose: object) -> int:
        return derive_seed(self.assignment.seed, test_id, *purpose)

    def worker(self, who: str, files: dict[str, Path], module: str, lane: int = 0) -> WorkerHandle:
        """The worker of ``who`` ("student" or "reference") running ``files``' ``module`` in ``lane``,
        made on first use and kept until ``close()``; a missing file raises ``MissingFile``."""
        key = (who, module, lane)
        if key not in self._workers:
            filename = f"{module}.py"
            if filename not in files:
                problems = self.file_problems if who == "student" else {}
                raise MissingFile(problems.get(filename, f"{filename} was not uploaded, so the tests of its functions cannot run"))
            self._workers[key] = WorkerHandle(files, module, self.assignment.drivers, self.workdir, self.limits,
                                              self.isolation, student=who == "student", lane=lane,
                                              container=self.container)
        return self._workers[key]

    def focus(self, module: str) -> None:
        """Before a test of ``module``: stop the workers of other modules that have answered a
        call.  A used worker keeps what its calls left (its models, the student's caches: up to
        ~30 MiB each), and a later test of its module starts a fresh one, forked in milliseconds;
        so while a test runs, only its own module's workers hold memory."""
        for (_who, name, _lane), worker in self._workers.items():
            if name != module and worker.served:
                worker.stop()

    def prestart(self, test_ids) -> None:
        """Start, all at once, the student workers the given tests will call: one per module,
        one per lane for modules with statistical tests (whose sampling calls are spread)."""
        lanes: dict[str, int] = {}
        for spec in self.assignment.tests:
            if spec.id in test_ids and f"{spec.module}.py" in self.submission:
                lanes[spec.module] = max(lanes.get(spec.module, 1), self.assignment.lanes if spec.statistical else 1)
        for module, count in lanes.items():
            for lane in range(count):
                try:
                    self.worker("student", self.submission, module, lane).spawn()
                except AutograderError:
                    pass  # reported by the test that needs this worker

    def _call(self, who: str, files: dict[str, Path], module: str, driver: str, args: dict, timeout: float,
              spread: tuple[str, ...], budget_left: float) -> dict:
        """One request, or with ``spread`` its list arguments cut into ``assignment.lanes`` parts run
        at once by one worker each.  The cut is fixed, so every worker sees the same calls on every
        machine; list answers are joined in order, and the first lane's fault is the one raised."""
        parts = split_request(args, spread, self.assignment.lanes) if spread else [args]
        if len(parts) == 1:
            return self.worker(who, files, module).call(driver, parts[0], timeout, budget_left)
        workers = [self.worker(who, files, module, lane) for lane in range(len(parts))]
        for w in workers:
            w.ensure_started()  # here, not in a pool thread, whose end would kill the worker (PDEATHSIG)
        with ThreadPoolExecutor(len(parts), thread_name_prefix=f"{who}-{module}") as pool:
            futures = [pool.submit(w.call, driver, part, timeout, budget_left) for w, part in zip(workers, parts)]
            try:
                errors = [f.exception() for f in futures]
            except BaseException:  # the test's time guard: kill the workers so every lane returns
                for w in workers:
                    w.kill()
                raise
        for error in errors:
            if error is not None:
                raise error
        return join_answers([f.result() for f in futures])

    def call_student(self, module: str, driver: str, args: dict, timeout: float, spread: tuple[str, ...] = (),
                     test: str = "") -> dict:
        """A call of the student's ``module`` for ``test``, within ``timeout`` and the time budget."""
        file = f"{module}.py"
        try:
            with self.budget.student_call(test, file) as left:
                return self._call("student", self.submission, module, driver, args, timeout, spread, left)
        except BudgetTimeout:
            raise self.budget.cut_short(test, file, left, timeout) from None

    def call_reference(self, module: str, driver: str, args: dict, timeout: float,
                       spread: tuple[str, ...] = ()) -> dict:
        """The reference solution's answer: from the cache, or computed as the harness's own work."""
        key = self.reference_cache.key_for(self.reference, module, driver, args)
        answer = self.reference_cache.get(key)
        if answer is None:
            try:
                left = self.budget.harness_call(f"the reference solution's {module}.py")
                answer = self._call("reference", self.reference, module, driver, args, timeout, spread, left)
            except StudentError as exc:  # the reference failing is our fault, never the student's
                raise AutograderError(f"the reference solution failed: {exc}") from None
            self.reference_cache.put(key, answer)
        return answer

    def student_output(self, module: str) -> str:
        """What the module's workers printed during their latest calls, lane by lane."""
        lanes = sorted(k[2] for k in self._workers if k[:2] == ("student", module))
        return "".join(self._workers[("student", module, lane)].captured_output() for lane in lanes)

    def log(self, line: str) -> None:
        """A line for the staff-only grading log (run_autograder's stdout)."""
        self.staff_log.append(line)


def split_request(args: dict, spread: tuple[str, ...], lanes: int) -> list[dict]:
    """``args`` with its ``spread`` lists (all of one length) cut into at most ``lanes`` runs of items."""
    n = len(args[spread[0]])
    if any(len(args[key]) != n for key in spread):
        raise AutograderError(f"spread arguments {spread} have different lengths")
    bounds = [n * i // lanes for i in range(lanes + 1)]
    return [{**args, **{key: args[key][a:b] for key in spread}} for a, b in zip(bounds, bounds[1:]) if b > a]


def join_answers(answers: list[dict]) -> dict:
    """The lanes' answers as one: each list field joined in lane order.  A field that is not a
    list in every answer becomes None, which the checks report as a malformed answer."""
    keys = set().union(*answers)
    return {key: [item for a in answers for item in a[key]]
            if all(isinstance(a.get(key), list) for a in answers) else None for key in sorted(keys)}
