"""One typed results object, one serializer to Gradescope's results.json, one failure path.

Extra-credit tests are written with ``max_score`` 0 and the points they earned as ``score``, so
Gradescope adds them on top of the assignment's total instead of raising it.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MAX_RESULTS_BYTES = 1024 * 1024
MAX_TEST_OUTPUT = 16 * 1024
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
OUTPUT_FORMATS = ("text", "md")   # of Gradescope's formats, the two a test's output is written in


def _clip(text: str, limit: int = MAX_TEST_OUTPUT) -> str:
    return text if len(text) <= limit else text[: limit - 40] + "\n[... output truncated ...]"


@dataclass
class TestResult:
    __test__ = False  # a result, not a test for pytest to collect
    name: str
    points: float                 # what a full pass is worth
    score: float = 0.0
    passed: bool = False
    output: str = ""
    visibility: str = "visible"
    number: str | None = None
    extra_credit: bool = False
    tags: list[str] = field(default_factory=list)
    extra_data: dict = field(default_factory=dict)
    test_id: str | None = None    # the configured test this result is of (None: a test of the run itself)
    harness_fault: bool = False   # what it reports is a fault of the harness, never of the submission
    diagnosis: str | None = None  # the named mistake the output reports (a stable key), if one matched
    output_format: str = "text"   # how Gradescope renders ``output``

    def __post_init__(self) -> None:
        if self.visibility not in VISIBILITIES:
            raise ValueError(f"visibility {self.visibility!r} is not one of {VISIBILITIES}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format {self.output_format!r} is not one of {OUTPUT_FORMATS}")
        if not (isinstance(self.score, (int, float)) and math.isfinite(self.score)):
            self.score = 0.0
        self.score = float(min(max(self.score, 0.0), self.points))  # never more than the test is worth

    def to_gradescope(self) -> dict:
        out = {
            "name": self.name,
            "score": self.score,
            "max_score": 0.0 if self.extra_credit else float(self.points),
            "status": "passed" if self.passed else "failed",
            "output": _clip(self.output),
            "visibility": self.visibility,
        }
        if self.output_format != "text":
            out["output_format"] = self.output_format
        if self.number:
            out["number"] = self.number
        if self.tags:
            out["tags"] = list(self.tags)
        extra = {**self.extra_data, "harness_fault": True} if self.harness_fault else dict(self.extra_data)
        if self.diagnosis is not None:
            extra["diagnosis"] = self.diagnosis
        if extra:
            out["extra_data"] = extra
        return out

    @classmethod
    def from_gradescope(cls, data: dict) -> "TestResult":
        """A test of a results.json, read back (its id, fault flag and diagnosis come from
        ``extra_data``; an extra-credit test's points are not in the file, so they read as its score)."""
        extra = data.get("extra_data") if isinstance(data.get("extra_data"), dict) else {}
        diagnosis = extra.get("diagnosis")
        output_format = data.get("output_format", "text")
        max_score = float(data.get("max_score") or 0.0)
        score = float(data.get("score") or 0.0)
        return cls(name=str(data.get("name", "")), points=max(max_score, score), score=score,
                   passed=data.get("status") == "passed", output=str(data.get("output") or ""),
                   visibility=data.get("visibility", "visible"), number=data.get("number"),
                   tags=list(data.get("tags") or []),
                   extra_data={k: v for k, v in extra.items() if k not in ("harness_fault", "diagnosis")},
                   test_id=extra.get("test_id"), harness_fault=bool(extra.get("harness_fault")),
                   diagnosis=diagnosis if isinstance(diagnosis, str) else None,
                   output_format=output_format if output_format in OUTPUT_FORMATS else "text")


@dataclass
class GradingResults:
    tests: list[TestResult] = field(default_factory=list)
    output: str = ""
    execution_time: float = 0.0
    extra_data: dict = field(default_factory=dict)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)  # per-test monotonic start, end

    @property
    def seconds(self) -> dict[str, float]:
        """Each test's wall time, for staff and benchmarks."""
        return {test_id: end - start for test_id, (start, end) in self.spans.items()}

    @property
    def harness_faults(self) -> list[TestResult]:
        """The tests that report a fault of the harness: tests it could not grade, the run's own error tests."""
        return [t for t in self.tests if t.harness_fault]

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.tests if not t.extra_credit)

    @property
    def extra_credit_available(self) -> float:
        return sum(t.points for t in self.tests if t.extra_credit)

    def summary(self, max_lines: int = 6) -> str:
        """A terminal summary: a line per test, the first ``max_lines`` of each failed visible test's
        output, and the total."""
        lines = []
        for t in self.tests:
            worth = f"{t.points:g} extra" if t.extra_credit else f"{t.points:g}"
            lines.append(f"  {'PASS' if t.passed else 'FAIL'}  {t.score:>4g} / {worth:<8} {t.name}")
            if not t.passed and t.output and t.visibility != "hidden":
                lines += [f"          {line}" for line in t.output.splitlines()[:max_lines]]
        extra = f" (+{sum(t.score for t in self.tests if t.extra_credit):g} extra credit)" \
            if self.extra_credit_available else ""
        base = sum(t.score for t in self.tests if not t.extra_credit)
        lines.append(f"Total: {base:g} / {self.max_score:g}{extra}   [{self.execution_time:.1f} s]")
        return "\n".join(lines)

    @classmethod
    def autograder_failure(cls, summary: str, staff_detail: str, tests: list[TestResult] | None = None) -> "GradingResults":
        """Results for a harness fault: a visible error test worth nothing, the detail for staff only."""
        kept = [t for t in (tests or [])]
        kept.append(TestResult(
            name="autograder error", points=0.0, passed=False, visibility="visible", harness_fault=True,
            output=f"The autograder itself failed ({summary}). This is not your fault; "
                   "course staff have been notified through the grading log.",
        ))
        kept.append(TestResult(name="autograder error (staff detail)", points=0.0, passed=False,
                               visibility="hidden", output=staff_detail, harness_fault=True))
        return cls(tests=kept, output="The autograder failed while grading; see the tests below.")

    def to_gradescope(self) -> dict:
        out = {
            "score": round(self.score, 6),
            "execution_time": round(float(self.execution_time), 3),
            "output": _clip(self.output, 4 * MAX_TEST_OUTPUT),
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": [t.to_gradescope() for t in self.tests],
        }
        if self.extra_data:
            out["extra_data"] = self.extra_data
        return out

    def dumps(self) -> str:
        text = json.dumps(self.to_gradescope(), allow_nan=False, indent=1)
        if len(text.encode()) > MAX_RESULTS_BYTES:
            for t in self.tests:
                t.output = _clip(t.output, 1024)
            text = json.dumps(self.to_gradescope(), allow_nan=False, indent=1)
        return text

    def write(self, path: Path, durable: bool = True) -> None:
        """Write results.json once, atomically: a reader sees the old file or the whole new one
        (``durable`` False skips the flush to disk, for a file rewritten often while grading)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.dumps()
        fd, tmp = tempfile.mkstemp(prefix=".results-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
