"""What to tell a student whose file failed to import because of an import statement.

A worker imports the submission's files as the package ``submission``.  A file that imports a
sibling under another package name (an older course layout, as the drivers' ``OLDER_LAYOUTS``
name them), a sibling that was not uploaded, a name the package itself does
not re-export (the course's ``__init__.py`` re-exports its graded functions only), or a module the grader does not have gets one
line naming the statement's module and, where there is one, the statement to write instead.
"""
from __future__ import annotations

import ast
import traceback
from pathlib import Path

PACKAGE = "submission"


def import_hint(exc: BaseException, package_dir: Path, older_layouts: tuple[str, ...] = ()) -> str:
    """One line for an ``ImportError`` raised by an import in the student's files, else ""."""
    if not isinstance(exc, ImportError):
        return ""
    try:
        found = _failing_import(exc, package_dir)
        if found is None:
            return ""
        file, node = found
        return _hint(exc, file, node, package_dir, older_layouts)
    except (OSError, SyntaxError, ValueError, RecursionError):
        return ""  # the file changed since it ran, or cannot be read: no hint, the traceback remains


def _failing_import(exc: BaseException, package_dir: Path) -> tuple[str, ast.stmt] | None:
    """The student file and import statement the exception was raised at (innermost first)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename).resolve()
        if not path.is_relative_to(package_dir) or frame.lineno is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.lineno <= frame.lineno <= node.end_lineno:
                return str(path.relative_to(package_dir)), node
        return None
    return None


def _hint(exc: ImportError, file: str, node: ast.stmt, package_dir: Path, older_layouts: tuple[str, ...]) -> str:
    missing = exc.name or ""
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == PACKAGE and missing == PACKAGE:
        names = [alias.name for alias in node.names]
        homes = {name: _defining_file(package_dir, name) for name in names}
        fixes = [f"from {PACKAGE}.{home} import {name}" for name, home in homes.items() if home]
        if not fixes:
            return ""
        return (f"{file} imports {', '.join(names)} from the package {PACKAGE}, which re-exports only the course's "
                f"functions; import from the file that defines it: `{'`, `'.join(fixes)}`")
    dotted = _imported_module(node, missing)
    if dotted is None or not isinstance(exc, ModuleNotFoundError):
        return ""
    top, sibling = dotted.split(".")[0], dotted.split(".")[-1]
    older = " (the course's older layout)" if top in older_layouts else ""
    if dotted != f"{PACKAGE}.{sibling}" and (package_dir / f"{sibling}.py").is_file():
        if isinstance(node, ast.ImportFrom):
            fix = f"from {PACKAGE}.{sibling} import {', '.join(alias.name for alias in node.names)}"
        else:
            fix = f"from {PACKAGE} import {sibling}"
        return f"{file} imports {dotted}{older or ', which does not exist here'}; import it as `{fix}`"
    if top == PACKAGE:
        return f"{file} imports {dotted}, but {sibling}.py was not uploaded: upload it with {file}"
    return f"{file} imports {missing}{older}: no such module is installed, and the submission has no {sibling}.py"


def _imported_module(node: ast.stmt, missing: str) -> str | None:
    """The dotted module of ``node`` that the missing module ``missing`` is part of."""
    if isinstance(node, ast.ImportFrom):
        candidates = [node.module] if node.module and node.level == 0 else []
    else:
        candidates = [alias.name for alias in node.names]
    for name in candidates:
        if name == missing or name.startswith(f"{missing}."):
            return name
    return None


def _defining_file(package_dir: Path, name: str) -> str | None:
    """The stem of the submission file that defines ``name`` at its top level."""
    for path in sorted(package_dir.glob("*.py")):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                return path.stem
    return None
