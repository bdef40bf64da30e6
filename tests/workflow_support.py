"""Helpers shared by the workflow tests: one real build per test session, source-tree copies,
tiny assignment configs and Gradescope exports."""
from __future__ import annotations

import ast
import atexit
import functools
import shutil
import tempfile
import zipfile
from pathlib import Path

import yaml

from conftest import REFERENCE, ROOT, TEMPLATE

SOURCE_PARTS = ("autograder", "tests_hidden", "reference_solution", "student_template", "packaging",
                "setup.sh", "run_autograder", "requirements.txt")


def _scratch(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.lru_cache(maxsize=None)
def built_dist():
    """``build`` of this checkout, once per test session: (out folder, BuildReport)."""
    from autograder.staff.build import build

    out = _scratch("wf-dist-") / "dist"
    return out, build(out)


def copy_source(dest: Path) -> Path:
    """A copy of the checkout's parts that ``build`` reads."""
    for name in SOURCE_PARTS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def tiny_config(dest: Path, test_ids: list[str], models: dict | None = None) -> Path:
    """The staff config reduced to ``test_ids``, with the same per-test false-failure level."""
    data = yaml.safe_load((ROOT / "tests_hidden" / "assignment.yml").read_text())
    data["tests"] = [t for t in data["tests"] if t["id"] in test_ids]
    n_stat = sum(bool(t.get("statistical")) for t in data["tests"])
    data["error_budget"] = 1.0e-6 * max(n_stat, 1)
    if models:
        data["models"].update(models)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def _keep_tests(module: Path, test_ids: set[str]) -> None:
    """Drop the graded test methods of ``module`` whose ids are not in ``test_ids``."""
    source = module.read_text()
    lines = source.splitlines(keepends=True)
    drop, kept = set(), 0
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.decorator_list:
            ids = [d.args[0].value for d in node.decorator_list if isinstance(d, ast.Call) and d.args
                   and isinstance(d.args[0], ast.Constant)]
            if ids and ids[0] not in test_ids:
                drop.update(range(node.decorator_list[0].lineno - 1, node.end_lineno))
            elif ids:
                kept += 1
    if kept == 0:
        module.unlink()
    else:
        module.write_text("".join(line for i, line in enumerate(lines) if i not in drop))


def tiny_course(dest: Path, test_ids: list[str], models: dict | None = None) -> Path:
    """A copy of the checkout whose config and graded test modules hold only ``test_ids``: a
    consistent small course that builds in seconds."""
    source = copy_source(dest)
    tiny_config(source / "tests_hidden" / "assignment.yml", test_ids, models)
    for module in (source / "tests_hidden").glob("test_*.py"):
        _keep_tests(module, set(test_ids))
    return source


def submission(dest: Path, layout: str = "", replace: dict[str, str] | None = None, omit=(), source=REFERENCE) -> Path:
    """A submission folder: the reference (or ``source``) files at ``layout``, some replaced or left out."""
    folder = dest / layout if layout else dest
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("sample.py", "likelihood.py", "classifier.py"):
        if name in omit:
            continue
        if replace and name in replace:
            (folder / name).write_text(replace[name])
        else:
            shutil.copyfile(source / name, folder / name)
    return dest


def template_submission(dest: Path) -> Path:
    return submission(dest, source=TEMPLATE)


def zip_of(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


HALVED_LIKELIHOOD = (REFERENCE / "likelihood.py").read_text().replace(
    "total = token_log_probs.sum()", "total = token_log_probs.sum() / 2")
assert "/ 2" in HALVED_LIKELIHOOD, "the reference's likelihood changed; update the broken variant"
