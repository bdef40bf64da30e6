"""The student's own check: the public tests, with the same workers and messages as Gradescope.

The student bundle carries no reference code.  Where a public test compares with the
reference solution's answer (a sampler's draws under a seed), the answer comes from an
``AnswerBook`` that ``build`` recorded from the reference for exactly those public requests.
"""
from __future__ import annotations

from pathlib import Path

from autograder.sandbox import protocol
from autograder.config import DEFAULT_CONFIG, Assignment, load_assignment
from autograder.context import ReferenceCache
from autograder.paths import REFERENCE_DIR
from autograder.errors import ConfigError, ProtocolError
from autograder.results import GradingResults

ANSWERS_NAME = "reference_answers.bin"
BOOK_FORMAT = "autograder-answer-book/1"


class AnswerBook(ReferenceCache):
    """Reference answers keyed by the request alone, recordable and storable without pickle.

    ``strict``: a request the book lacks is a harness fault (the bundle is stale), never a
    silent call to reference code that is not there.
    """

    def __init__(self, answers: dict[str, dict] | None = None, strict: bool = False, source: str = "") -> None:
        super().__init__()
        self._answers.update(answers or {})
        self.strict = strict
        self.source = source
        self.used: set[str] = set()

    def key_for(self, files: dict[str, Path], module: str, driver: str, args: dict) -> str:
        return self.key({}, module, driver, args)

    def get(self, key: str) -> dict | None:
        answer = super().get(key)
        if answer is None and self.strict:
            raise ConfigError(f"the reference answers {self.source or '(in memory)'} lack a request this test makes; "
                              "the student bundle is out of date: rebuild it with `autograder build`")
        if answer is not None:
            self.used.add(key)
        return answer

    def put(self, key: str, answer: dict) -> None:
        super().put(key, answer)
        self.used.add(key)

    def save(self, path: Path, keys: set[str] | None = None) -> int:
        """Write the answers (only ``keys`` when given); return how many were written."""
        chosen = {k: v for k, v in self._answers.items() if keys is None or k in keys}
        Path(path).write_bytes(protocol.encode({"format": BOOK_FORMAT, "answers": chosen}))
        return len(chosen)

    @classmethod
    def load(cls, path: Path, strict: bool = True) -> "AnswerBook":
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                data = protocol.read(fh, path.stat().st_size + 1)
        except (OSError, EOFError, ProtocolError) as exc:
            raise ConfigError(f"cannot read reference answers {path}: {exc}; rebuild the student bundle") from None
        if not isinstance(data, dict) or data.get("format") != BOOK_FORMAT or not isinstance(data.get("answers"), dict):
            raise ConfigError(f"{path} is not an answer book of format {BOOK_FORMAT}; rebuild the student bundle")
        return cls(data["answers"], strict=strict, source=str(path))


def public_ids(assignment: Assignment) -> frozenset[str]:
    return frozenset(t.id for t in assignment.tests if t.public)


def default_answers() -> Path:
    return DEFAULT_CONFIG.parent / ANSWERS_NAME


def reference_available(assignment: Assignment) -> bool:
    return any((REFERENCE_DIR / name).is_file() for name in assignment.student_files)


def check(submission: Path, answers: AnswerBook | None = None,
          assignment: Assignment | None = None) -> tuple[GradingResults, list[str]]:
    """Grade ``submission`` on the public tests only.

    Answers come from ``answers`` if given, else from the bundle's answer book when there is no
    reference solution beside the harness (the student bundle), else from the reference itself.
    """
    from autograder.runner import grade

    assignment = assignment or load_assignment()
    if answers is None and not reference_available(assignment):
        answers = AnswerBook.load(default_answers(), strict=True)
    # The student's own code: nothing of the staff's is on the machine it runs on, so no view is required.
    # A terminal shows the plain-text rendering of the feedback Gradescope shows in Markdown.
    return grade(Path(submission), assignment, only=public_ids(assignment), reference_cache=answers, unsafe=True,
                 feedback_format="text")
