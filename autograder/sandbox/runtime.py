"""The worker runtime: the root-owned, world-readable copy of what a worker imports or reads.

A worker gets the modules its entry points (``RUNTIME_ENTRY``) and the assignment's drivers
import, found by following their ``autograder`` imports, and the data files the drivers module
lists in ``RUNTIME_DATA`` (relative to its package): no checks, tests, configs or reference.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

from autograder.paths import HARNESS_ROOT
from autograder.sandbox.access import checkpoints_of, expose

RUNTIME_ENTRY = ("autograder.sandbox.worker", "autograder.sandbox.forkserver")


def _module_path(module: str) -> Path:
    base = HARNESS_ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == "autograder"}


def _data_files(drivers: str) -> set[str]:
    """The drivers module's ``RUNTIME_DATA`` (read from its source, not imported), from the harness root."""
    path = _module_path(drivers)
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RUNTIME_DATA" for t in node.targets):
            return {str((path.parent / rel).relative_to(HARNESS_ROOT)) for rel in ast.literal_eval(node.value)}
    return set()


def runtime_files(drivers: str) -> list[str]:
    """Paths, relative to the harness root, of what a worker imports or reads."""
    todo, modules = [*RUNTIME_ENTRY, drivers], set()
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # the packages on the way, then the module itself
            prefix = ".".join(parts[:i])
            if prefix not in modules and _module_path(prefix).is_file():
                modules.add(prefix)
                todo.extend(_imports(_module_path(prefix)))
    files = {str(_module_path(m).relative_to(HARNESS_ROOT)) for m in modules}
    return sorted(files | _data_files(drivers))


def build_runtime(dest: Path, drivers: str, models: dict | None = None) -> Path:
    """A root-owned, world-readable copy of the worker's runtime (no tests, no reference).

    A checkpoint named by a path relative to the harness is linked at the same place in the
    runtime, so a worker resolving it against its own root finds the (readable) file."""
    import py_compile

    for rel in runtime_files(drivers):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HARNESS_ROOT / rel, target)
        if target.suffix == ".py":
            py_compile.compile(str(target), doraise=True)
    for named in checkpoints_of(models or {}):
        if not named.is_absolute() and ".." not in named.parts:
            (dest / named).parent.mkdir(parents=True, exist_ok=True)
            (dest / named).symlink_to(HARNESS_ROOT / named)
            expose(HARNESS_ROOT / named)
    for path in [dest, *dest.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return dest
