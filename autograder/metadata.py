"""Gradescope's ``submission_metadata.json``: who submitted, and an optional per-day submission cap.

The cap is off unless the assignment config sets ``max_submissions_per_day: N``.  A submission
made when N others were already made in the previous 24 hours is not graded: its results are
those of the student's latest earlier submission (so their score does not drop), with a notice
at the top saying when they can submit again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from autograder.errors import ConfigError
from autograder.results import GradingResults

WINDOW = timedelta(hours=24)


def _when(text) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Previous:
    time: datetime
    score: float
    results: dict | None


@dataclass
class SubmissionMetadata:
    created_at: datetime | None
    users: list[dict] = field(default_factory=list)
    previous: list[Previous] = field(default_factory=list)
    assignment_title: str = ""

    def who(self) -> str:
        people = [f"{u.get('name', '?')} <{u.get('email', '?')}> (id {u.get('id', '?')})" for u in self.users]
        return "; ".join(people) or "unknown submitter"

    def staff_lines(self) -> list[str]:
        recent = len(self.recent())
        return [f"student: {self.who()}",
                f"submitted: {self.created_at.isoformat() if self.created_at else 'unknown time'}"
                f"{' for ' + self.assignment_title if self.assignment_title else ''}; "
                f"{len(self.previous)} earlier submission(s), {recent} in the 24 hours before this one"]

    def recent(self) -> list[Previous]:
        if self.created_at is None:
            return []
        return [p for p in self.previous if self.created_at - WINDOW < p.time <= self.created_at]


def load_metadata(path: Path) -> SubmissionMetadata | None:
    """The metadata at ``path``, or None when the file is absent (local runs)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read submission metadata {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"submission metadata {path} is not a JSON object")
    previous = []
    for item in data.get("previous_submissions") or []:
        when = _when(item.get("submission_time")) if isinstance(item, dict) else None
        if when is not None:
            score = item.get("score")
            previous.append(Previous(when, float(score) if isinstance(score, (int, float)) else 0.0,
                                     item.get("results") if isinstance(item.get("results"), dict) else None))
    assignment = data.get("assignment") if isinstance(data.get("assignment"), dict) else {}
    return SubmissionMetadata(created_at=_when(data.get("created_at")),
                              users=[u for u in data.get("users") or [] if isinstance(u, dict)],
                              previous=sorted(previous, key=lambda p: p.time),
                              assignment_title=str(assignment.get("title", "")))


def daily_cap(assignment_source: Path) -> int | None:
    """``max_submissions_per_day`` from the assignment config, or None when there is no cap."""
    data = yaml.safe_load(Path(assignment_source).read_text()) or {}
    cap = data.get("max_submissions_per_day")
    if cap is None:
        return None
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ConfigError(f"{assignment_source}: max_submissions_per_day = {cap!r} should be a positive integer")
    return cap


class KeptResults(GradingResults):
    """results.json written as given: an earlier submission's results, kept."""

    def __init__(self, data: dict):
        super().__init__()
        self._data = data

    def to_gradescope(self) -> dict:
        return self._data


def over_cap(meta: SubmissionMetadata, cap: int | None) -> KeptResults | None:
    """Results to write instead of grading when this submission is over the daily cap, else None."""
    recent = meta.recent()
    if cap is None or len(recent) < cap:
        return None
    again = recent[-cap].time + WINDOW
    latest = meta.previous[-1]
    kept = dict(latest.results or {})
    notice = (f"Submission limit reached: at most {cap} submissions in 24 hours. This submission was not graded; "
              f"the results below are your previous submission's. You can submit again after "
              f"{again.isoformat(timespec='minutes')}.")
    kept["output"] = notice + ("\n\n" + kept["output"] if isinstance(kept.get("output"), str) and kept["output"] else "")
    kept["score"] = latest.score
    kept.setdefault("tests", [])
    kept.setdefault("execution_time", 0.0)
    kept["extra_data"] = {**(kept.get("extra_data") or {}), "submission_cap": {"per_day": cap, "not_graded": True}}
    return KeptResults(kept)
