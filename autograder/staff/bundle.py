"""What goes into ``autograder.zip`` and ``student.zip``: staging trees and reproducible zips.

``autograder.zip`` (Gradescope): ``setup.sh`` and ``run_autograder`` at the root, the harness,
the reference solution, the graded tests with the assignment config, pinned requirements and,
when the config names one without a url, the course checkpoint.

``student.zip``: the template as ``submission/``, the harness without its staff-only folder ``autograder/staff/``, the
public tests with a config reduced to them, the reference answers those public tests compare
with (recorded by ``build``), ``setup.sh``, ``requirements.txt`` and the ``check`` script.
No hidden test, no reference code.
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from autograder.q6.checkpoint_files import checkpoint_specs, verify
from autograder.config import load_assignment
from autograder.errors import BuildError

STAFF_FILES = ("setup.sh", "run_autograder", "requirements.txt")
STAFF_DIRS = ("autograder", "reference_solution", "tests_hidden")
STUDENT_FILES = ("setup.sh", "requirements.txt")
STAFF_ONLY = "staff"                         # the folder of autograder/ that is never shipped to students
PUBLIC_TESTS = ("test_public.py",)
PACKAGING = Path("packaging") / "student"   # the student bundle's check script and README
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)           # fixed timestamps: the same tree gives the same zip


@dataclass
class Stage:
    """A staged tree and the files in it that are used for verification but not zipped."""

    root: Path
    unzipped: set[Path]


def _skip(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc" or any(p.startswith(".") for p in path.parts)


def _copy_tree(src: Path, dst: Path, leave_out: str | None = None) -> None:
    """Copy ``src`` to ``dst``, without the folder ``leave_out`` of ``src`` (and caches, dot files)."""
    if not src.is_dir():
        raise BuildError(f"{src} is missing; build from a complete checkout of the autograder")
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if _skip(rel) or path.is_dir() or rel.parts[0] == leave_out:
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dst / rel)


def _copy_file(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise BuildError(f"{src} is missing; build from a complete checkout of the autograder")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def _place_large(src: Path, dst: Path) -> None:
    """A hard link when possible (checkpoints are large), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _stage_checkpoints(stage: Stage, config: Path, checkpoint: Path | None, source: Path) -> list[str]:
    """Put every configured checkpoint in the stage; zip it only when it has no url to fetch it from."""
    assignment = load_assignment(config)
    specs = checkpoint_specs(assignment, stage.root)
    if checkpoint is not None and not specs:
        raise BuildError(f"--checkpoint {checkpoint} was given, but {config} names no checkpoint model; "
                         "add a `kind: checkpoint` model with its path, size and sha256 first")
    notes = []
    for spec in specs:
        if not spec.relative:
            raise BuildError(f"{config}: {spec.describe()} has the absolute path {spec.path}; give it relative to "
                             "the harness root (e.g. checkpoints/model.bin) so the build can verify it")
        rel = spec.path.relative_to(stage.root)
        src = checkpoint if checkpoint is not None else source / rel
        if not src.is_file():
            raise BuildError(f"{spec.describe()} is not at {source / rel}: pass the real file with --checkpoint PATH")
        verify(src, spec)
        _place_large(src, spec.path)
        if spec.url:
            stage.unzipped.add(spec.path)
            notes.append(f"checkpoint for {spec.describe()} verified; not packed: setup.sh fetches it from its url")
        else:
            notes.append(f"checkpoint for {spec.describe()} verified and packed as {rel}")
    return notes


def stage_autograder(source: Path, dest: Path, config: Path | None = None,
                     checkpoint: Path | None = None) -> tuple[Stage, list[str]]:
    """Lay out autograder.zip's tree from the checkout ``source``; ``config`` replaces its assignment.yml."""
    stage = Stage(dest, set())
    for name in STAFF_FILES:
        _copy_file(source / name, dest / name)
    for name in STAFF_DIRS:
        _copy_tree(source / name, dest / name)
    if config is not None:
        _copy_file(config, dest / "tests_hidden" / "assignment.yml")
    notes = _stage_checkpoints(stage, dest / "tests_hidden" / "assignment.yml", checkpoint, source)
    return stage, notes


def public_config(staff_config: Path) -> str:
    """The assignment config reduced to its public tests, with the same false-failure level per test."""
    data = yaml.safe_load(staff_config.read_text())
    full = load_assignment(staff_config)
    public_ids = {t.id for t in full.tests if t.public}
    public = [t for t in data["tests"] if t.get("id") in public_ids]
    n_statistical = sum(bool(t.get("statistical", False)) for t in public)
    reduced = {key: value for key, value in data.items() if key not in ("tests", "max_submissions_per_day")}
    reduced["error_budget"] = full.alpha_per_test * max(n_statistical, 1)
    reduced["tests"] = public
    header = (f"# The public tests of: {full.title}\n# Generated by `autograder build` from the course staff's "
              "config; hidden tests are graded on Gradescope only.\n")
    return header + yaml.safe_dump(reduced, sort_keys=False, default_flow_style=None, width=120)


def stage_student(source: Path, dest: Path, staff_stage: Stage) -> Stage:
    """Lay out student.zip's tree: template, harness, public tests and config, check script."""
    stage = Stage(dest, set())
    for name in STUDENT_FILES:
        _copy_file(source / name, dest / name)
    _copy_file(source / PACKAGING / "check", dest / "check")
    _copy_file(source / PACKAGING / "README.md", dest / "README.md")
    _copy_tree(source / "student_template", dest / "submission")
    _copy_tree(staff_stage.root / "autograder", dest / "autograder", leave_out=STAFF_ONLY)
    for name in PUBLIC_TESTS:
        _copy_file(staff_stage.root / "tests_hidden" / name, dest / "tests_public" / name)
    staff_config = staff_stage.root / "tests_hidden" / "assignment.yml"
    (dest / "tests_public" / "assignment.yml").write_text(public_config(staff_config))
    public = load_assignment(dest / "tests_public" / "assignment.yml")
    if not math.isclose(public.alpha_per_test, load_assignment(staff_config).alpha_per_test, rel_tol=1e-12):
        raise BuildError("the public config's false-failure level per test differs from the staff config's; "
                         "the student check would not match Gradescope")
    for spec in checkpoint_specs(public, dest):
        staff_copy = staff_stage.root / spec.path.relative_to(dest)
        _place_large(staff_copy, spec.path)
        if spec.url:
            stage.unzipped.add(spec.path)
    return stage


def write_zip(stage: Stage, dest: Path) -> tuple[int, str]:
    """Zip the staged tree (files at the zip root, modes kept, fixed times); return size and sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(tmp, "w") as zf:
        for path in sorted(stage.root.rglob("*")):
            rel = path.relative_to(stage.root)
            if path.is_dir() or _skip(rel) or path in stage.unzipped:
                continue
            info = zipfile.ZipInfo(rel.as_posix(), date_time=ZIP_EPOCH)
            info.external_attr = (0o100000 | (0o755 if os.access(path, os.X_OK) else 0o644)) << 16
            info.compress_type = zipfile.ZIP_STORED if path.suffix == ".bin" else zipfile.ZIP_DEFLATED
            with open(path, "rb") as src, zf.open(info, "w", force_zip64=path.stat().st_size > 2**31) as out:
                shutil.copyfileobj(src, out, 1 << 20)
    os.replace(tmp, dest)
    digest = hashlib.sha256()
    with open(dest, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return dest.stat().st_size, digest.hexdigest()


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack a zip as Gradescope does (``unzip``), keeping the executable bits."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = dest / info.filename
            if not target.resolve().is_relative_to(dest.resolve()):
                raise BuildError(f"{archive} holds {info.filename}, which leaves the folder it unpacks to")
            zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(target, mode)
    return dest
