"""Locking a harness tree: other users keep the traverse bit and nothing else (``.venv`` aside).

Gradescope's image is locked by ``setup.sh`` and at every grade (``prepare_gradescope``); a
developer's checkout only on request (``python -m autograder isolation lock|unlock [DIR]``).
Student workers no longer depend on it: they see a private view of the file system
(``autograder.sandbox.mounts``) that holds nothing of the tree.
"""
from __future__ import annotations

import os
from pathlib import Path

from autograder.paths import GRADESCOPE, HARNESS_ROOT
from autograder.sandbox.access import checkpoints_of, venv_traverse
from autograder.sandbox.identity import worker_users

PROTECTED = ("tests_hidden", "reference_solution", "autograder")   # what "locked" is checked on


def _entries(root: Path, skip: set[Path]):
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip and not (here / d).is_symlink()]
        for name in dirnames + filenames:
            path = here / name
            if path not in skip and not path.is_symlink():
                yield path


def lock_tree(root: Path, exposed: tuple[Path, ...] = ()) -> None:
    """Take every permission of "other" users away under ``root`` except: traverse on ``root``,
    the virtual environment ``root/.venv`` untouched, and ``exposed`` files readable."""
    root = Path(root).resolve()
    for path in _entries(root, {root / ".venv", *exposed}):
        path.chmod(os.lstat(path).st_mode & 0o7770)
    root.chmod((os.lstat(root).st_mode & 0o7770) | 0o001)
    for path in exposed:
        path = Path(path)
        if not path.is_file():
            continue  # not in place yet: loading it will fail loudly on its own
        path.chmod(os.lstat(path).st_mode | 0o004)
        for parent in path.parents:
            if parent == root or root not in parent.parents:
                break
            parent.chmod(os.lstat(parent).st_mode | 0o001)


def unlock_tree(root: Path) -> None:
    """Undo ``lock_tree``: other users get the read and execute bits the owner has."""
    root = Path(root).resolve()
    for path in [root, *_entries(root, {root / ".venv"})]:
        mode = os.lstat(path).st_mode
        path.chmod(mode | (mode & 0o500) >> 6)


def tree_locked(root: Path) -> bool:
    return all(not (root / p).exists() or os.lstat(root / p).st_mode & 0o005 == 0 for p in PROTECTED)


def checkpoint_paths() -> tuple[Path, ...]:
    """Checkpoint files named by the assignment: workers read them, so a lock leaves them readable."""
    from autograder.config import load_assignment

    return tuple((p if p.is_absolute() else HARNESS_ROOT / p).resolve() for p in checkpoints_of(load_assignment().models))


def prepare_gradescope() -> list[str]:
    """Lock the tree, the submission and the results folder; root on Gradescope only."""
    lock_tree(HARNESS_ROOT, checkpoint_paths())
    for path, mode in ((GRADESCOPE / "results", 0o700), (GRADESCOPE / "submission", 0o700),
                       (GRADESCOPE / "submission_metadata.json", 0o600)):
        if path.exists() and not path.is_symlink():
            path.chmod(mode)
    GRADESCOPE.chmod(0o711)
    return [f"isolation: locked {HARNESS_ROOT}, {GRADESCOPE / 'submission'} and {GRADESCOPE / 'results'}"]


def tree_action(action: str, root: Path = HARNESS_ROOT, grant: bool = False) -> list[str]:
    """``autograder isolation ACTION [ROOT]``: lock or unlock a tree, or list (``grant``: add) the
    traverse bits its venv lacks; then one line of status (worker users, locked or not)."""
    lines = []
    if action == "lock":
        lock_tree(root, checkpoint_paths() if root.resolve() == HARNESS_ROOT else ())
    elif action == "unlock":
        unlock_tree(root)
    elif action == "traverse":
        lines += venv_traverse(root, grant)
    users = [u.pw_name for u in worker_users()]
    lines.append(f"{action}: {root}: worker users {users or 'none'}; "
                 f"tree {'locked' if tree_locked(root) else 'not locked'}")
    return lines
