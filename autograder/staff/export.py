"""Gradescope's "Export Submissions": a folder or zip with ``submission_metadata.yml`` and one
``submission_<id>/`` folder per submission, holding the files as uploaded."""
from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from autograder.errors import ExportError

METADATA = "submission_metadata.yml"
_FOLDER = re.compile(r"^submission_(?P<id>[0-9A-Za-z_-]+)$")
MAX_EXPORT_BYTES = 8 * 1024**3  # refuse to unpack more than this from an export zip


@dataclass(frozen=True)
class Submitter:
    name: str = ""
    sid: str = ""
    email: str = ""


@dataclass(frozen=True)
class ExportedSubmission:
    id: str                          # "123456" for submission_123456
    folder: Path | None              # None when the metadata lists it but the export lacks its folder
    submitters: tuple[Submitter, ...] = ()
    created_at: str = ""

    @property
    def key(self) -> tuple:
        return (0, int(self.id), "") if self.id.isdigit() else (1, 0, self.id)


class _TolerantLoader(yaml.SafeLoader):
    """safe_load that reads Ruby-tagged values (``!ruby/object:BigDecimal ...``) as plain data."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TolerantLoader.add_multi_constructor("!", _untagged)


def _plain(value):
    """Ruby symbol keys (``:name``) as plain keys (``name``)."""
    if isinstance(value, dict):
        return {str(k).lstrip(":"): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _text(value) -> str:
    return "" if value is None else str(value)


def parse_metadata(path: Path) -> dict[str, dict]:
    """``submission_<id>`` -> its metadata mapping, with symbol keys made plain."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_TolerantLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path} should map submission_<id> to its metadata; it holds a {type(data).__name__}")
    return {str(k).lstrip(":"): (_plain(v) if isinstance(v, dict) else {}) for k, v in data.items()}


def _find_root(top: Path) -> Path:
    if (top / METADATA).is_file():
        return top
    inner = [d for d in top.iterdir() if d.is_dir() and (d / METADATA).is_file()]
    if len(inner) == 1:
        return inner[0]
    raise ExportError(f"{top} is not a Gradescope export: no {METADATA} in it or in one folder inside it "
                      "(use the folder or zip that Export Submissions produced)")


def _unpack(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if sum(i.file_size for i in infos) > MAX_EXPORT_BYTES:
                raise ExportError(f"{archive} would unpack to more than {MAX_EXPORT_BYTES // 1024**3} GB")
            for info in infos:
                target = (dest / info.filename).resolve()
                if not target.is_relative_to(dest.resolve()):
                    raise ExportError(f"{archive} holds {info.filename!r}, which leaves the export folder")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    continue  # no symlinks out of an export
                zf.extract(info, dest)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ExportError(f"cannot unpack {archive}: {exc}") from None


def read_export(root: Path) -> list[ExportedSubmission]:
    """The submissions of an unpacked export, sorted by id."""
    meta = parse_metadata(root / METADATA)
    folders = {m["id"]: d for d in root.iterdir() if d.is_dir() and (m := _FOLDER.match(d.name))}
    ids = set(folders) | {m["id"] for key in meta if (m := _FOLDER.match(key))}
    out = []
    for sid in ids:
        info = meta.get(f"submission_{sid}", {})
        people = info.get("submitters") if isinstance(info.get("submitters"), list) else []
        submitters = tuple(Submitter(_text(p.get("name")), _text(p.get("sid")), _text(p.get("email")))
                           for p in people if isinstance(p, dict))
        out.append(ExportedSubmission(sid, folders.get(sid), submitters, _text(info.get("created_at"))))
    return sorted(out, key=lambda s: s.key)


@contextmanager
def open_export(path: Path) -> Iterator[list[ExportedSubmission]]:
    """The submissions of an export folder or zip; a zip is unpacked until the block ends."""
    path = Path(path)
    if path.is_dir():
        yield read_export(_find_root(path))
        return
    if not path.is_file():
        raise ExportError(f"{path} does not exist; give the folder or zip that Export Submissions produced")
    tmp = Path(tempfile.mkdtemp(prefix="export-"))
    try:
        _unpack(path, tmp)
        yield read_export(_find_root(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
