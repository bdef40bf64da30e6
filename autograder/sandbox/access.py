"""What the worker users can reach: the traverse bits on the way to a file, the files they must open.

Student workers run as another user, so the interpreter, the venv's packages and any configured
checkpoint must be open to other users, and nothing else the harness names needs to be.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from autograder.paths import HARNESS_ROOT


def checkpoints_of(models: dict) -> list[Path]:
    """The checkpoint paths of an assignment's models, as named (relative ones: to the harness root)."""
    return [Path(m["path"]) for m in models.values()
            if isinstance(m, dict) and m.get("kind") == "checkpoint" and isinstance(m.get("path"), str)]


def missing_traverse(paths: list[Path]) -> list[Path]:
    """Directories on the way to ``paths`` (as named and as resolved) that other users cannot enter."""
    lacking = []
    for path in paths:
        for candidate in (Path(os.path.abspath(path)), Path(path).resolve()):
            for parent in reversed(candidate.parents):
                if os.stat(parent).st_mode & 0o001 == 0 and parent not in lacking:
                    lacking.append(parent)
    return lacking


def expose(path: Path) -> None:
    """Let worker users read one public file the harness names for them (a checkpoint's weights):
    read on the file, traverse on the directories leading to it; nothing else changes."""
    if os.geteuid() != 0 or not path.is_file():
        return
    for parent in missing_traverse([path]):
        parent.chmod(os.stat(parent).st_mode | 0o001)
    path.chmod(os.stat(path).st_mode | 0o004)


def closed_to_workers(models: dict | None = None) -> Path | None:
    """The first thing a worker user must open but cannot (a folder on its way or its own mode
    is closed to other users): the interpreter, the venv's packages, a checkpoint; else None."""
    import site

    needs = [(Path(sys.executable), 0o001)] + [(Path(p), 0o005) for p in site.getsitepackages()]
    needs += [(p if p.is_absolute() else HARNESS_ROOT / p, 0o004) for p in checkpoints_of(models or {})]
    for path, bits in needs:
        if path.exists() and (missing_traverse([path]) or os.stat(path).st_mode & bits != bits):
            return path
    return None


def venv_traverse(root: Path, grant: bool) -> list[str]:
    """The folders on the way to ``root``'s venv that other users cannot enter, each granted the
    traverse bit (o+x) when ``grant``; one line a folder."""
    venv = root / ".venv"
    lines = []
    for path in missing_traverse([venv / "bin" / "python", venv / "lib"]):
        if grant:
            path.chmod(os.stat(path).st_mode | 0o001)
        lines.append(f"{'granted' if grant else 'missing'} traverse (o+x) on {path}")
    return lines
