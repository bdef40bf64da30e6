"""The assignment configuration: one YAML file with tests, points, visibility, timeouts and seeds."""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from autograder.errors import ConfigError
from autograder.paths import HARNESS_ROOT
from autograder.results import VISIBILITIES
from autograder.stats import bonferroni_share

# Staff tree and autograder.zip: tests_hidden/.  The student bundle has only tests_public/.
DEFAULT_CONFIG = next((HARNESS_ROOT / d / "assignment.yml" for d in ("tests_hidden", "tests_public")
                       if (HARNESS_ROOT / d / "assignment.yml").is_file()), HARNESS_ROOT / "tests_hidden" / "assignment.yml")
MAX_ALPHA_PER_TEST = 1e-6
DEFAULT_TIMEOUT = 60.0      # seconds per worker call when neither a test nor `defaults` sets `timeout`
DEFAULT_TIME_BUDGET = 480.0  # seconds for a whole grade: 2 minutes under Gradescope's default timeout of 10
TIME_BUDGET_RANGE = (20.0, 2400.0)  # below 20 s not even the harness starts; 40 min is Gradescope's largest timeout
KEYS = ("title", "seed", "error_budget", "drivers", "lanes", "time_budget", "defaults", "models", "tests",
        "max_submissions_per_day")
DEFAULTS_KEYS = ("timeout", "public_visibility", "hidden_visibility")
TEST_KEYS = ("id", "title", "points", "module", "visibility", "extra_credit", "timeout", "statistical", "params")


@dataclass(frozen=True)
class TestSpec:
    id: str                 # the course's test id, of the form its drivers module sets (TEST_ID)
    title: str              # what the test checks, shown after the id
    points: float
    module: str             # the student file the test exercises, without ".py"
    visibility: str
    extra_credit: bool
    timeout: float          # seconds per worker call; the whole test gets this plus a guard margin
    statistical: bool       # draws a share of the per-submission false-failure budget
    params: dict            # the assignment's own parameters for this test (models, draws, ...)
    public: bool            # the course's rule (its drivers module's is_public): full feedback, graded
                            # first, shipped in the student bundle
    number: str             # the number Gradescope shows (the drivers module's number_of)

    @property
    def name(self) -> str:
        return f"{self.id}: {self.title}"


@dataclass(frozen=True)
class Assignment:
    title: str
    seed: int                       # the grader's master seed; every test seed derives from it
    error_budget: float             # false-failure probability allowed per correct submission
    drivers: str                    # module of worker-side drivers
    models: dict                    # name -> plain-data model spec
    tests: tuple[TestSpec, ...]
    source: Path
    digest: str = ""                # 12 hex digits of sha256 over the config file, recorded in results
    lanes: int = 2                  # workers per file a spread call is split over; fixed, so scores never
                                    # depend on the machine's core count
    time_budget: float = DEFAULT_TIME_BUDGET  # seconds the whole grade may take (autograder.budget)

    @property
    def student_files(self) -> tuple[str, ...]:
        """The files a submission is made of, as the assignment's drivers module names them."""
        return tuple(importlib.import_module(self.drivers).STUDENT_FILES)

    def test(self, test_id: str) -> TestSpec:
        for t in self.tests:
            if t.id == test_id:
                return t
        raise ConfigError(f"no test {test_id!r} in {self.source}; known: {[t.id for t in self.tests]}")

    @property
    def alpha_per_test(self) -> float:
        """Bonferroni share of the error budget for each statistical test."""
        return bonferroni_share(self.error_budget, sum(t.statistical for t in self.tests))

    def model(self, name: str) -> dict:
        if name not in self.models:
            raise ConfigError(f"no model {name!r} in {self.source}; known: {sorted(self.models)}")
        return dict(self.models[name])


def derive_seed(master: int, *parts: object) -> int:
    """A 63-bit seed from the master seed and labels, identical on every machine."""
    text = ":".join(str(p) for p in (master, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def _require(data: dict, key: str, kind: type | tuple, where: str):
    if key not in data:
        raise ConfigError(f"{where}: missing key {key!r}")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: {key} = {value!r} should be {getattr(kind, '__name__', kind)}")
    return value


def _known_keys(data: dict, known: tuple[str, ...], where: str) -> None:
    """Refuse a key the config does not read (a misspelt ``statistical`` would silently change a test)."""
    unknown = [key for key in data if key not in known]
    if unknown:
        raise ConfigError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(repr(k) for k in unknown)}; known: {', '.join(known)}")


def _course(data: dict, path: Path):
    """The assignment's drivers module, which also names the course's test-id form and public rule
    (``TEST_ID``, ``TEST_ID_FORM``, ``is_public``, ``number_of``)."""
    drivers = _require(data, "drivers", str, str(path))
    try:
        module = importlib.import_module(drivers)
    except ImportError as exc:
        raise ConfigError(f"{path}: drivers = {drivers!r} cannot be imported ({exc}); name a module of the "
                          "harness that defines the assignment's drivers") from None
    missing = [name for name in ("TEST_ID", "TEST_ID_FORM", "is_public", "number_of") if not hasattr(module, name)]
    if missing:
        raise ConfigError(f"{path}: the drivers module {drivers} does not define {', '.join(missing)}, "
                          "the course's test-id form and public rule")
    return module


def _time_budget(value: object, path: Path) -> float:
    low, high = TIME_BUDGET_RANGE
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value < high:
        raise ConfigError(f"{path}: time_budget = {value!r}; give the seconds a whole grade may take, at least "
                          f"{low:g} and under {high:g}, a margin under the autograder timeout set on Gradescope "
                          f"(10 minutes unless raised there), e.g. time_budget: {DEFAULT_TIME_BUDGET:g}")
    return float(value)


def load_assignment(path: Path | None = None, seed: int | None = None) -> Assignment:
    path = Path(path or DEFAULT_CONFIG)
    try:
        text = path.read_bytes()
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read assignment config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    _known_keys(data, KEYS, str(path))
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: defaults = {defaults!r} should be a mapping (timeout, public_visibility, ...)")
    _known_keys(defaults, DEFAULTS_KEYS, f"{path}: defaults")
    course = _course(data, path)
    tests = []
    for i, raw in enumerate(_require(data, "tests", list, str(path))):
        where = f"{path}: tests[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a mapping")
        test_id = _require(raw, "id", str, where)
        if not course.TEST_ID.match(test_id):
            raise ConfigError(f"{where}: id {test_id!r} is not of the form {course.TEST_ID_FORM}")
        where = f"{path}: test {test_id}"
        _known_keys(raw, TEST_KEYS, where)
        public = course.is_public(test_id)
        visibility = raw.get("visibility", defaults.get("public_visibility" if public else "hidden_visibility",
                                                        "visible" if public else "after_published"))
        if visibility not in VISIBILITIES:
            raise ConfigError(f"{where}: visibility {visibility!r} is not one of Gradescope's: "
                              + ", ".join(VISIBILITIES))
        timeout = raw.get("timeout", defaults.get("timeout", DEFAULT_TIMEOUT))
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < float("inf"):
            raise ConfigError(f"{where}: timeout = {timeout!r}; give the seconds a worker call may take, e.g. 60")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: params = {params!r} should be a mapping of the test's inputs, e.g. {{model: NAME}}")
        tests.append(TestSpec(
            id=test_id, title=_require(raw, "title", str, where), points=float(_require(raw, "points", (int, float), where)),
            module=_require(raw, "module", str, where), visibility=visibility,
            extra_credit=bool(raw.get("extra_credit", False)), timeout=float(timeout),
            statistical=bool(raw.get("statistical", False)), params=dict(params),
            public=public, number=course.number_of(test_id),
        ))
    ids = [t.id for t in tests]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: duplicate test ids")
    assignment = Assignment(
        title=_require(data, "title", str, str(path)),
        seed=int(seed if seed is not None else _require(data, "seed", int, str(path))),
        error_budget=float(_require(data, "error_budget", float, str(path))),
        drivers=_require(data, "drivers", str, str(path)),
        models=_require(data, "models", dict, str(path)),
        tests=tuple(tests), source=path, digest=hashlib.sha256(text).hexdigest()[:12], lanes=data.get("lanes", 2),
        time_budget=_time_budget(data.get("time_budget", DEFAULT_TIME_BUDGET), path),
    )
    if type(assignment.lanes) is not int or not 1 <= assignment.lanes <= 8:
        raise ConfigError(f"{path}: lanes = {assignment.lanes}; it must be between 1 and 8")
    if not 0 < assignment.alpha_per_test <= MAX_ALPHA_PER_TEST * (1 + 1e-9):
        raise ConfigError(f"{path}: error_budget {assignment.error_budget} gives {assignment.alpha_per_test:.2e} "
                          f"per statistical test; it must be at most {MAX_ALPHA_PER_TEST}")
    return assignment
