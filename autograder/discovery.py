"""Find the assignment's student files in an upload, however it was packed.

Accepted: the files flat in the upload, inside ``submission/`` or ``src/submission/``, any of
those inside one top-level folder (a zipped or dragged folder), and the same layouts inside an
uploaded ``.zip``.  Everything else (``__init__.py``, ``__pycache__/``, outputs, pickles,
images) is ignored.  A file found in two places is not guessed at: its tests fail with a
message naming both copies.  A file found nowhere fails its tests with "... was not uploaded".
"""
from __future__ import annotations

import shutil
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator


LAYOUTS = ((), ("submission",), ("src", "submission"))
IGNORED_DIRS = frozenset({"__pycache__", "__MACOSX", ".git", ".ipynb_checkpoints", ".venv", "node_modules"})
MAX_FILE_BYTES = 2 * 1024 * 1024  # a student file larger than this is refused, not read


def missing_message(name: str) -> str:
    return f"{name} was not uploaded, so the tests of its functions cannot run"


@dataclass
class Discovery:
    """What an upload holds: usable files, and a message for each file that is not usable."""

    files: dict[str, Path] = field(default_factory=dict)     # name -> readable copy or original
    origins: dict[str, str] = field(default_factory=dict)    # name -> where it was found, for logs
    problems: dict[str, str] = field(default_factory=dict)   # name -> why its tests cannot run
    absent: list[str] = field(default_factory=list)          # names found nowhere in the upload
    notes: list[str] = field(default_factory=list)           # unreadable zips and the like, for staff
    expected: tuple[str, ...] = ()                           # the assignment's student files

    @property
    def missing(self) -> list[str]:
        return [name for name in self.expected if name not in self.files]


@dataclass(frozen=True)
class _Candidate:
    name: str                       # which student file this is
    label: str                      # shown to the student: "submission/NAME.py", "hw.zip: src/NAME.py"
    path: Path | None = None        # a file on disk
    archive: Path | None = None     # or a member of this zip
    member: str = ""
    size: int = 0


def _ignored(parts: tuple[str, ...]) -> bool:
    return any(p in IGNORED_DIRS or p.startswith(".") for p in parts)


def _matches(dir_parts: tuple[str, ...]) -> bool:
    """Whether a file in ``dir_parts`` (relative to the upload) sits where a student file may."""
    if dir_parts in LAYOUTS:
        return True
    return len(dir_parts) >= 1 and dir_parts[1:] in LAYOUTS and not _ignored(dir_parts[:1])


def _inside(path: Path, root: Path) -> bool:
    """False for a path that leaves the upload through a symlinked folder."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _disk_candidates(root: Path, names: tuple[str, ...]) -> list[_Candidate]:
    found: dict[Path, _Candidate] = {}
    bases = [root] + sorted(d for d in root.iterdir() if d.is_dir() and not d.is_symlink() and not _ignored((d.name,)))
    for base in bases:
        for layout in LAYOUTS:
            for name in names:
                path = base.joinpath(*layout, name)
                if path not in found and path.is_file() and not path.is_symlink() and _inside(path, root):
                    found[path] = _Candidate(name=name, label=path.relative_to(root).as_posix(), path=path,
                                             size=path.stat().st_size)
    return list(found.values())


def _zip_candidates(archive: Path, notes: list[str], names: tuple[str, ...]) -> list[_Candidate]:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        notes.append(f"{archive.name} could not be opened as a zip ({exc}); its contents were ignored")
        return []
    found = []
    for info in infos:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if info.is_dir() or not parts or parts[-1] not in names or ".." in parts or parts[0] == "/":
            continue
        is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
        if is_link or _ignored(parts[:-1]) or not _matches(tuple(parts[:-1])):
            continue
        found.append(_Candidate(name=parts[-1], label=f"{archive.name}: {'/'.join(parts)}", archive=archive,
                                member=info.filename, size=info.file_size))
    return found


def _materialize(candidate: _Candidate, scratch: Path, name: str) -> Path:
    if candidate.archive is None:
        return candidate.path
    target = scratch / name
    with zipfile.ZipFile(candidate.archive) as zf, zf.open(candidate.member) as src, open(target, "wb") as dst:
        data = src.read(MAX_FILE_BYTES + 1)  # never trust the header's size for how much to read
        dst.write(data[:MAX_FILE_BYTES])
    return target


@contextmanager
def discover(upload: Path, names: tuple[str, ...]) -> Iterator[Discovery]:
    """The student files ``names`` of ``upload``; copies taken out of zips live until the block ends."""
    upload = Path(upload)
    result = Discovery(expected=tuple(names))
    scratch = Path(tempfile.mkdtemp(prefix="discovery-"))
    try:
        if not upload.is_dir():
            result.notes.append(f"{upload} is not a folder")
            candidates: list[_Candidate] = []
        else:
            candidates = _disk_candidates(upload, result.expected)
            for archive in sorted(upload.glob("*.zip")):
                if archive.is_file() and not archive.is_symlink():
                    candidates += _zip_candidates(archive, result.notes, result.expected)
        for name in result.expected:
            mine = [c for c in candidates if c.name == name]
            if not mine:
                result.absent.append(name)
                result.problems[name] = missing_message(name) + "".join(f" ({n})" for n in result.notes)
            elif len(mine) > 1:
                places = ", ".join(c.label for c in mine)
                result.problems[name] = (f"{name} was uploaded more than once ({places}); the autograder does not "
                                         "guess which copy to grade: upload exactly one")
            elif mine[0].size > MAX_FILE_BYTES:
                result.problems[name] = (f"{name} ({mine[0].label}) is {mine[0].size / 1e6:.1f} MB, over the "
                                         f"{MAX_FILE_BYTES // 2**20} MB limit for a source file")
            else:
                try:
                    result.files[name] = _materialize(mine[0], scratch, name)
                except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, OSError) as exc:
                    result.problems[name] = f"{name} could not be read from {mine[0].label} ({exc}); upload it unzipped"
                    continue
                result.origins[name] = mine[0].label
        yield result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
