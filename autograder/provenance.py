"""Where a score came from: the grader's version, a digest of the harness that computed it, and
the command that reproduces one test of it."""
from __future__ import annotations

import functools
import hashlib
import shlex
from pathlib import Path

from autograder import __version__
from autograder.config import DEFAULT_CONFIG
from autograder.paths import HARNESS_ROOT

# What decides a score: the harness, the graded tests and their config, the reference solution.
# Binary data is left out: checkpoints are pinned by sha256 in the config, and the student
# bundle's recorded reference answers derive from the reference solution.
DIGESTED = ("autograder", "tests_hidden", "tests_public", "reference_solution")
NOT_DIGESTED = (".pyc", ".bin")


def _digested_files(root: Path) -> list[Path]:
    files = []
    for top in DIGESTED:
        folder = root / top
        if folder.is_dir():
            files += [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                      and p.suffix not in NOT_DIGESTED]
    return sorted(files)


@functools.lru_cache(maxsize=None)
def harness_digest(root: Path = HARNESS_ROOT) -> str:
    """12 hex digits of sha256 over the files that decide a score, the same on every machine."""
    digest = hashlib.sha256()
    for path in _digested_files(Path(root)):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def grader_info(seed: int, config_digest: str = "") -> dict:
    """What a result records of its grader: version, harness digest, master seed and the digest of
    the assignment config it was graded under (which may lie outside the harness)."""
    return {"grader_version": __version__, "grader_digest": harness_digest(), "seed": seed,
            "config_digest": config_digest}


def rerun_command(submission: Path | str, test_id: str, seed: int, assignment_source: Path | None = None) -> str:
    """The command that regrades one test of ``submission`` exactly as the full run did."""
    argv = ["python", "-m", "autograder", "rerun", "--submission", str(submission), "--test", test_id,
            "--seed", str(seed)]
    if assignment_source is not None and Path(assignment_source).resolve() != DEFAULT_CONFIG.resolve():
        argv += ["--assignment", str(assignment_source)]
    return shlex.join(argv)
