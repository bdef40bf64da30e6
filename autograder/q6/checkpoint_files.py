"""Production mode: the course's real checkpoint, named by the assignment config, put in place and verified.

A model spec ``{kind: checkpoint, path, sha256, size, url}`` names the file graders load.
``ensure`` makes it present and correct: already there, copied from a given file or from the
copy ``build`` packed under ``checkpoints/``, or downloaded from ``url``.  Every route ends in
the same size and sha256 check; a missing or different file is a ``CheckpointError`` naming the
file and the fix.  Nothing ever falls back to the synthetic models.
"""
from __future__ import annotations

import os
import re
import shutil
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from autograder.config import Assignment
from autograder.paths import HARNESS_ROOT
from autograder.errors import CheckpointError
from autograder.q6.grading_models import sha256_of

PACKED_DIR = "checkpoints"   # where build puts a checkpoint that setup.sh copies into place
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
DOWNLOAD_ATTEMPTS = 3


@dataclass(frozen=True)
class CheckpointSpec:
    model: str               # the model name in the assignment config
    path: Path               # where graders load it (resolved against the harness root)
    sha256: str
    size: int | None
    url: str | None
    relative: bool           # ``path`` was given relative to the harness root

    def describe(self) -> str:
        size = f"{self.size} bytes, " if self.size is not None else ""
        return f"model '{self.model}' ({size}sha256 {self.sha256})"


def checkpoint_specs(assignment: Assignment, root: Path = HARNESS_ROOT) -> list[CheckpointSpec]:
    """Every checkpoint model of the assignment, its fields checked."""
    specs = []
    for name, raw in sorted(assignment.models.items()):
        if not isinstance(raw, dict) or raw.get("kind") != "checkpoint":
            continue
        where = f"{assignment.source}: models.{name}"
        sha = str(raw.get("sha256", "")).lower()
        if not _SHA256.match(sha):
            raise CheckpointError(f"{where}: sha256 = {raw.get('sha256')!r} must be the file's 64-hex-digit sha256 "
                                  "(compute it with `sha256sum FILE`)")
        if not raw.get("path"):
            raise CheckpointError(f"{where}: give the path graders load the checkpoint from, "
                                  "e.g. path: checkpoints/gpt2-pytorch_model.bin")
        size = raw.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise CheckpointError(f"{where}: size = {size!r} must be the file's size in bytes")
        url = raw.get("url")
        if url is not None and not (isinstance(url, str) and url.startswith(("https://", "http://"))):
            raise CheckpointError(f"{where}: url = {url!r} must be an http(s) URL")
        given = Path(str(raw["path"]))
        specs.append(CheckpointSpec(model=name, path=given if given.is_absolute() else root / given,
                                    sha256=sha, size=size, url=url, relative=not given.is_absolute()))
    return specs


sha256_file = sha256_of  # one streaming digest for the harness and the worker's loader


def verify(path: Path, spec: CheckpointSpec) -> None:
    """Raise CheckpointError unless ``path`` is the file ``spec`` names."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} for {spec.describe()} does not exist")
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        raise CheckpointError(f"checkpoint {path} has {size} bytes, but {spec.describe()} needs {spec.size}: "
                              "it is truncated or another file")
    got = sha256_file(path)
    if got != spec.sha256:
        raise CheckpointError(f"checkpoint {path} has sha256 {got}, but {spec.describe()} needs {spec.sha256}: "
                              "it is another file; fetch the right one or fix the config")


def packed_location(spec: CheckpointSpec, root: Path = HARNESS_ROOT) -> Path:
    """Where build packs a checkpoint inside the harness tree."""
    return spec.path if spec.relative else root / PACKED_DIR / spec.path.name


def _install(source: Path, spec: CheckpointSpec) -> None:
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = spec.path.with_name(spec.path.name + ".part")
    shutil.copyfile(source, tmp)
    os.replace(tmp, spec.path)


def download(spec: CheckpointSpec, timeout: float = 60.0) -> None:
    """Fetch ``spec.url`` to ``spec.path`` through a temporary file, verified before it is moved in place."""
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = spec.path.with_name(spec.path.name + ".part")
    last = None
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(spec.url, timeout=timeout) as response, open(tmp, "wb") as out:
                limit = spec.size + 1 if spec.size is not None else None
                copied = 0
                for block in iter(lambda: response.read(1 << 20), b""):
                    copied += len(block)
                    if limit is not None and copied > limit:
                        break
                    out.write(block)
            verify(tmp, spec)
            os.replace(tmp, spec.path)
            return
        except (OSError, CheckpointError) as exc:  # URLError and timeouts are OSErrors
            last = exc
            tmp.unlink(missing_ok=True)
            if attempt < DOWNLOAD_ATTEMPTS:
                time.sleep(2 * attempt)
    raise CheckpointError(f"could not fetch {spec.describe()} from {spec.url} after {DOWNLOAD_ATTEMPTS} attempts: {last}")


def ensure(spec: CheckpointSpec, source: Path | None = None, root: Path = HARNESS_ROOT) -> str:
    """Put the checkpoint in place and verify it; return what was done, for the setup log."""
    if source is not None:
        verify(source, spec)
        if Path(source).resolve() != spec.path.resolve():
            _install(Path(source), spec)
        verify(spec.path, spec)
        return f"{spec.describe()}: copied from {source} to {spec.path}, verified"
    if spec.path.is_file():
        verify(spec.path, spec)
        return f"{spec.describe()}: {spec.path} verified"
    packed = packed_location(spec, root)
    if packed.is_file():
        verify(packed, spec)
        _install(packed, spec)
        return f"{spec.describe()}: copied from {packed} to {spec.path}, verified"
    if spec.url:
        download(spec)
        return f"{spec.describe()}: downloaded from {spec.url} to {spec.path}, verified"
    raise CheckpointError(f"{spec.describe()} is not at {spec.path} and has no url to fetch it from: "
                          "build with --checkpoint FILE to pack it, or add its url to the assignment config")


def ensure_all(assignment: Assignment, source: Path | None = None, root: Path = HARNESS_ROOT) -> list[str]:
    """``ensure`` every checkpoint model; ``source`` serves those whose sha256 it matches."""
    specs = checkpoint_specs(assignment, root)
    if source is not None and not specs:
        raise CheckpointError(f"{assignment.source} names no checkpoint model, so {source} would not be used; "
                              "add a `kind: checkpoint` model first")
    source_sha = sha256_file(source) if source is not None and Path(source).is_file() else None
    if source is not None and source_sha not in {s.sha256 for s in specs}:
        found = f"has sha256 {source_sha}" if source_sha else "does not exist"
        raise CheckpointError(f"{source} {found}, but the checkpoint models of {assignment.source} need "
                              f"{', '.join(s.describe() for s in specs)}")
    return [ensure(spec, source if source_sha == spec.sha256 else None, root) for spec in specs]
