"""Submission discovery: the three files are found however they were uploaded."""
from __future__ import annotations

import os
import shutil
import zipfile

import pytest

from autograder.config import load_assignment
from autograder.discovery import discover
from conftest import REFERENCE

FILES = load_assignment().student_files


def put(folder, names=FILES, text="x = 1\n"):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(f"# {name}\n{text}")
    return folder


def add_extras(folder):
    (folder / "__pycache__").mkdir(parents=True, exist_ok=True)
    (folder / "__pycache__" / "sample.cpython-311.pyc").write_bytes(b"\0")
    (folder / "__init__.py").write_text("")
    (folder / "samples_t0.95.txt").write_text("once upon a time")
    (folder / "loglik.pkl").write_bytes(b"\x80\x04N.")
    (folder / "histogram.png").write_bytes(b"\x89PNG")
    return folder


def zip_folder(source, archive, prefix=""):
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(source).as_posix())
    return archive


@pytest.mark.parametrize("layout", ["", "submission", "src/submission", "ps1", "ps1/submission"])
def test_files_are_found_in_every_accepted_layout(tmp_path, layout):
    upload = tmp_path / "upload"
    add_extras(put(upload / layout if layout else upload))
    with discover(upload, FILES) as found:
        assert sorted(found.files) == sorted(FILES) and not found.problems
        for name, path in found.files.items():
            assert found.origins[name] == (f"{layout}/{name}" if layout else name)
            assert path.read_text().startswith(f"# {name}")


@pytest.mark.parametrize("prefix", ["", "submission/", "src/submission/", "ps1/"])
def test_files_are_found_inside_one_uploaded_zip(tmp_path, prefix):
    source = add_extras(put(tmp_path / "src-files"))
    upload = tmp_path / "upload"
    upload.mkdir()
    zip_folder(source, upload / "hw1.zip", prefix)
    with zipfile.ZipFile(upload / "hw1.zip", "a") as zf:
        zf.writestr("__MACOSX/._sample.py", "junk")
        zf.writestr(f"__MACOSX/{prefix}sample.py", "junk")
    with discover(upload, FILES) as found:
        assert sorted(found.files) == sorted(FILES), found.problems
        assert found.origins["sample.py"] == f"hw1.zip: {prefix}sample.py"
        copies = {path.parent for path in found.files.values()}
        assert found.files["likelihood.py"].read_text().startswith("# likelihood.py")
    assert all(not folder.exists() for folder in copies), "copies taken out of the zip outlive the block"


def test_two_copies_of_a_file_are_an_error_naming_both(tmp_path):
    upload = put(tmp_path / "upload")
    put(upload / "submission", names=("sample.py",))
    with discover(upload, FILES) as found:
        assert sorted(found.files) == ["classifier.py", "likelihood.py"]
        message = found.problems["sample.py"]
        assert "sample.py" in message and "submission/sample.py" in message and "more than once" in message
        assert found.absent == []


def test_a_copy_in_a_zip_and_one_beside_it_are_ambiguous(tmp_path):
    upload = put(tmp_path / "upload")
    zip_folder(put(tmp_path / "other", names=("classifier.py",)), upload / "extra.zip")
    with discover(upload, FILES) as found:
        assert "classifier.py" not in found.files
        assert "extra.zip: classifier.py" in found.problems["classifier.py"]


def test_a_missing_file_says_it_was_not_uploaded(tmp_path):
    upload = put(tmp_path / "upload", names=("sample.py", "likelihood.py"))
    with discover(upload, FILES) as found:
        assert found.absent == ["classifier.py"]
        assert found.problems["classifier.py"].startswith("classifier.py was not uploaded")


def test_unreadable_zip_symlinks_and_other_folders_are_ignored(tmp_path):
    upload = tmp_path / "upload"
    put(upload / "submission", names=("sample.py", "likelihood.py"))
    (upload / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    os.symlink(REFERENCE / "classifier.py", upload / "classifier.py")
    put(upload / "a" / "b" / "c", names=("classifier.py",))  # too deep to be a layout
    with discover(upload, FILES) as found:
        assert sorted(found.files) == ["likelihood.py", "sample.py"]
        assert "broken.zip could not be opened" in found.problems["classifier.py"]


def test_an_oversized_file_is_refused(tmp_path):
    upload = put(tmp_path / "upload")
    (upload / "sample.py").write_bytes(b"#" * (3 * 1024 * 1024))
    with discover(upload, FILES) as found:
        assert "sample.py" not in found.files and "MB limit" in found.problems["sample.py"]


@pytest.mark.slow
def test_grading_uses_discovery_and_reports_each_problem(tmp_path):
    from autograder.runner import grade

    upload = tmp_path / "upload"
    upload.mkdir()
    files = tmp_path / "files"
    shutil.copytree(REFERENCE, files / "submission")
    zip_folder(files, upload / "ps1.zip")
    put(upload, names=("classifier.py",))  # a second classifier.py beside the zip
    results, log = grade(upload, only=frozenset({"6d-0-basic", "6e-0-basic"}))
    by_id = {t.test_id or t.name: t for t in results.tests}
    assert by_id["6d-0-basic"].passed, by_id["6d-0-basic"].output
    assert not by_id["6e-0-basic"].passed
    assert "ps1.zip: submission/classifier.py" in by_id["6e-0-basic"].output
    assert "more than once" in results.output
    assert results.extra_data["files"]["likelihood.py"]["found_as"] == "ps1.zip: submission/likelihood.py"
    assert any("found likelihood.py as ps1.zip" in line for line in log)


def test_an_unreadable_zip_member_fails_only_its_file(tmp_path):
    upload = put(tmp_path / "upload", names=("sample.py", "likelihood.py"))
    with zipfile.ZipFile(upload / "rest.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("classifier.py", "x = 1\n" * 100)
    data = bytearray((upload / "rest.zip").read_bytes())
    data[100:120] = b"#" * 20  # damage the file's bytes, not the zip's directory: a CRC error
    (upload / "rest.zip").write_bytes(bytes(data))
    with discover(upload, FILES) as found:
        assert sorted(found.files) == ["likelihood.py", "sample.py"]
        assert "could not be read from rest.zip: classifier.py" in found.problems["classifier.py"]
