"""build: two verified zips, the student one free of hidden tests and reference code; production
mode with a checkpoint (a small synthetic GPT-2 in the course checkpoint's exact format)."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile

import pytest

from autograder.staff.build import build
from autograder.staff.bundle import Stage, stage_autograder, stage_student, unpack, write_zip
from autograder.q6.checkpoint_files import checkpoint_specs, ensure
from autograder.config import load_assignment
from autograder.q6.course import is_public
from autograder.errors import BuildError, CheckpointError
from autograder.q6.model import GPT2Config
from autograder.q6.grading_models import save_checkpoint
from autograder.q6.synthetic import synthetic_gpt2
from conftest import REFERENCE, ROOT, TEMPLATE
from workflow_support import HALVED_LIKELIHOOD, built_dist, tiny_config, tiny_course

SMALL = GPT2Config(n_layer=2, n_embd=64, n_head=4)
SHAPE = {"n_layer": 2, "n_embd": 64, "n_head": 4}


def zip_texts(archive) -> dict[str, str]:
    with zipfile.ZipFile(archive) as zf:
        return {n: zf.read(n).decode("utf-8", "replace") for n in zf.namelist() if not n.endswith(".bin")}


def stripped_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()}


def hidden_test_lines() -> list[str]:
    """Every line of the hidden tests, decorators included: the code student.zip must not hold."""
    tree = ast.parse((ROOT / "tests_hidden" / "test_hidden.py").read_text())
    lines = (ROOT / "tests_hidden" / "test_hidden.py").read_text().splitlines()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            out += [lines[i - 1].strip() for i in range(first, node.end_lineno + 1)]
    public = {line.strip() for line in (ROOT / "tests_hidden" / "test_public.py").read_text().splitlines()}
    return [line for line in out if len(line) > 20 and line not in public]


def tiny_checkpoint(tmp_path, seed=1):
    path = tmp_path / f"gpt2-tiny-{seed}.bin"
    digest = save_checkpoint(synthetic_gpt2(SMALL, seed=seed, logit_scale=3.0), path)
    return path, digest


def checkpoint_spec(path, digest, **extra):
    return {"kind": "checkpoint", "path": "checkpoints/gpt2-tiny.bin", "sha256": digest,
            "size": path.stat().st_size, **SHAPE, **extra}


def checkpoint_course(tmp_path, path, digest):
    """A one-test course (6d-0-basic) graded on the checkpoint model."""
    return tiny_course(tmp_path / "source", ["6d-0-basic"], models={"gpt2": checkpoint_spec(path, digest)})


@pytest.mark.slow
def test_build_verifies_and_writes_both_zips():
    dist, report = built_dist()
    assert [v.ok for v in report.verdicts] == [True] * 5, report.verdicts
    staff = zipfile.ZipFile(dist / "autograder.zip")
    names = set(staff.namelist())
    assert {"setup.sh", "run_autograder", "requirements.txt", "tests_hidden/assignment.yml",
            "tests_hidden/test_hidden.py", "tests_hidden/test_public.py", "autograder/cli.py",
            "reference_solution/sample.py"} <= names
    assert not any(n.startswith(("tests/", "bench/", ".venv", "student_template", "dist/")) or "__pycache__" in n
                   for n in names)
    for name in ("setup.sh", "run_autograder"):
        assert (staff.getinfo(name).external_attr >> 16) & 0o111, f"{name} must be executable"
    assert report.zips["autograder.zip"][2] and report.zips["student.zip"][1] > 0


@pytest.mark.slow
def test_student_zip_holds_no_hidden_test_and_no_reference_code():
    dist, _ = built_dist()
    texts = zip_texts(dist / "student.zip")
    assert {"check", "setup.sh", "README.md", "submission/sample.py", "tests_public/test_public.py",
            "tests_public/assignment.yml", "autograder/sandbox/worker.py"} <= set(texts)
    assert not any("hidden" in name or "reference" in name.replace("reference_answers", "") for name in texts)
    assert not [name for name in texts if name.startswith("autograder/staff/")]
    for name in ("sample.py", "likelihood.py", "classifier.py"):
        assert texts[f"submission/{name}"] == (TEMPLATE / name).read_text()
        template = (TEMPLATE / name).read_text().splitlines()
        secret = [line.strip() for line in (REFERENCE / name).read_text().splitlines()
                  if line not in template and len(line.strip()) > 15]
        assert secret, name
        for path, text in texts.items():
            assert not set(secret) & stripped_lines(text), f"{path} holds reference code of {name}"
    hidden = set(hidden_test_lines())
    assert hidden
    for path, text in texts.items():
        assert not hidden & stripped_lines(text), f"{path} holds hidden test code: {hidden & stripped_lines(text)}"
    public = load_assignment_from_text(texts["tests_public/assignment.yml"])
    assert public and all(is_public(test_id) for test_id in public)
    with zipfile.ZipFile(dist / "student.zip") as zf:
        assert len(zf.read("tests_public/reference_answers.bin")) < 100_000  # the public tests' answers only


def load_assignment_from_text(text: str) -> list[str]:
    import yaml

    return [t["id"] for t in yaml.safe_load(text)["tests"]]


def test_student_stage_leaves_out_every_staff_module(tmp_path):
    staff, _ = stage_autograder(ROOT, tmp_path / "autograder")
    student = stage_student(ROOT, tmp_path / "student", staff)
    staff_modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "autograder" / "staff").glob("*.py"))
    assert "autograder/staff/rerun.py" in staff_modules
    assert all((staff.root / rel).is_file() for rel in staff_modules)
    shipped = sorted(p.relative_to(student.root).as_posix() for p in student.root.rglob("*.py"))
    assert "autograder/cli.py" in shipped and "autograder/sandbox/worker.py" in shipped
    assert not [rel for rel in shipped if rel.startswith("autograder/staff")]


def test_zips_are_reproducible_and_keep_modes(tmp_path):
    stage = tmp_path / "stage"
    (stage / "sub").mkdir(parents=True)
    (stage / "run").write_text("#!/bin/sh\n")
    os.chmod(stage / "run", 0o755)
    (stage / "sub" / "a.txt").write_text("a")
    (stage / "sub" / "__pycache__").mkdir()
    (stage / "sub" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    first = write_zip(Stage(stage, set()), tmp_path / "one.zip")
    os.utime(stage / "sub" / "a.txt", (0, 0))
    assert write_zip(Stage(stage, set()), tmp_path / "two.zip") == first
    out = unpack(tmp_path / "one.zip", tmp_path / "unpacked")
    assert os.access(out / "run", os.X_OK) and not (out / "sub" / "__pycache__").exists()


@pytest.mark.slow
def test_build_refuses_when_the_reference_does_not_get_full_marks(tmp_path):
    source = tiny_course(tmp_path / "source", ["6d-0-basic", "6d-1-hidden"])
    (source / "reference_solution" / "likelihood.py").write_text(HALVED_LIKELIHOOD)
    with pytest.raises(BuildError, match="refusing to write the zips") as info:
        build(tmp_path / "dist", source=source)
    assert "reference solution" in str(info.value) and "6d-0-basic" in str(info.value)
    assert not (tmp_path / "dist").exists()


def test_build_refuses_a_wrong_or_missing_checkpoint_before_grading(tmp_path):
    path, digest = tiny_checkpoint(tmp_path)
    other, _ = tiny_checkpoint(tmp_path, seed=2)
    source = checkpoint_course(tmp_path, path, digest)
    with pytest.raises(CheckpointError, match="sha256"):
        build(tmp_path / "dist", checkpoint=other, source=source)
    with pytest.raises(BuildError, match="pass the real file with --checkpoint"):
        build(tmp_path / "dist", source=source)
    with pytest.raises(BuildError, match="names no checkpoint model"):
        build(tmp_path / "dist", checkpoint=path, source=source, config=tiny_config(tmp_path / "t2.yml", ["6d-0-basic"]))
    assert not (tmp_path / "dist").exists()


@pytest.mark.slow
def test_production_mode_packs_verifies_and_sets_up_the_checkpoint(tmp_path):
    path, digest = tiny_checkpoint(tmp_path)
    report = build(tmp_path / "dist", checkpoint=path, source=checkpoint_course(tmp_path, path, digest))
    assert all(v.ok for v in report.verdicts) and any("verified and packed" in n for n in report.notes)
    tree = unpack(tmp_path / "dist" / "autograder.zip", tmp_path / "gradescope" / "source")
    packed = tree / "checkpoints" / "gpt2-tiny.bin"
    assert packed.read_bytes() == path.read_bytes()

    def setup_step():  # the checkpoint section of setup.sh, run from the unpacked zip
        return subprocess.run([sys.executable, "-m", "autograder", "checkpoint"], cwd=tree, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(tree)}, timeout=120)

    ok = setup_step()
    assert ok.returncode == 0 and "verified" in ok.stdout, ok.stderr
    packed.write_bytes(packed.read_bytes()[:-1] + b"\1")
    bad = setup_step()
    assert bad.returncode == 2 and "sha256" in bad.stderr
    packed.unlink()
    gone = setup_step()
    assert gone.returncode == 2 and "no url" in gone.stderr


@pytest.fixture
def checkpoint(tmp_path):
    """A tiny checkpoint file, a config naming it, and its spec under the harness root ``tmp_path/root``."""
    path, digest = tiny_checkpoint(tmp_path)
    config = tiny_config(tmp_path / "tiny.yml", ["6d-0-basic"], models={"gpt2": checkpoint_spec(path, digest)})
    return path, config, checkpoint_specs(load_assignment(config), tmp_path / "root")[0], tmp_path / "root"


def test_a_checkpoint_is_copied_byte_for_byte(checkpoint):
    path, _, spec, root = checkpoint
    assert "copied" in ensure(spec, source=path, root=root)
    assert spec.path.read_bytes() == path.read_bytes()


def test_a_copied_checkpoint_is_verified_in_place(checkpoint):
    path, _, spec, root = checkpoint
    ensure(spec, source=path, root=root)
    assert "verified" in ensure(spec, root=root)


def test_a_truncated_checkpoint_is_refused(checkpoint):
    path, _, spec, root = checkpoint
    ensure(spec, source=path, root=root)
    spec.path.write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="bytes"):
        ensure(spec, root=root)


def test_a_missing_checkpoint_without_a_url_is_refused(checkpoint):
    _, _, spec, root = checkpoint
    with pytest.raises(CheckpointError, match="no url"):
        ensure(spec, root=root)


def test_a_checkpoint_spec_with_a_malformed_sha256_is_refused(checkpoint):
    path, config, _, _ = checkpoint
    tiny_config(config, ["6d-0-basic"], models={"gpt2": checkpoint_spec(path, "abc")})
    with pytest.raises(CheckpointError, match="sha256"):
        checkpoint_specs(load_assignment(config))


@pytest.fixture(scope="module")
def student_stage(tmp_path_factory):
    staff, _ = stage_autograder(ROOT, tmp_path_factory.mktemp("autograder"))
    return stage_student(ROOT, tmp_path_factory.mktemp("student"), staff)


@pytest.mark.parametrize("command", [["regrade", "export", "--out", "out"], ["rerun", "--submission", ".", "--test", "6c-0-basic"],
                                     ["audit"], ["build"]])
def test_a_staff_command_in_the_student_bundle_says_it_is_for_staff(student_stage, tmp_path, command):
    env = {**os.environ, "PYTHONPATH": str(student_stage.root)}
    done = subprocess.run([sys.executable, "-m", "autograder", *command], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"`{command[0]}` is a command for course staff, and autograder/staff/ is not part of this bundle" \
        in done.stderr
    assert "Traceback" not in done.stderr
