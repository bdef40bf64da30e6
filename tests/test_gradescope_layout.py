"""Gradescope fidelity: the built autograder.zip, unpacked to /autograder/source, set up by its own
setup.sh as root, run as /autograder/run_autograder on /autograder/submission.

The /autograder tree lives in a throwaway folder.  Where the machine allows it (root, or
unprivileged user namespaces) the commands run in a private mount namespace whose root holds
that folder at the real path /autograder; elsewhere the test-only AUTOGRADER_ROOT override
stands in for the path.  Either way it is the unpacked zip that runs, never this checkout.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from autograder.sandbox import access
from autograder.staff.bundle import unpack
from autograder.provenance import harness_digest
from conftest import REFERENCE, TEMPLATE, strict_json
from workflow_support import built_dist

pytestmark = pytest.mark.slow

# Runs "$3" chrooted into a fresh root that mirrors / and holds "$2" at /autograder.
NAMESPACE = r"""
set -euo pipefail
new="$1"; tree="$2"
mount -t tmpfs tmpfs "$new"
for d in /*; do
  name="${d#/}"
  case "$name" in autograder|mnt|lost+found) continue ;; esac
  if [[ -L "$d" ]]; then cp -P "$d" "$new/$name"; continue; fi
  [[ -d "$d" ]] || continue
  mkdir -p "$new/$name"
  if [[ "$name" == tmp ]]; then mount --bind "$d" "$new/$name"; else mount --rbind "$d" "$new/$name"; fi
done
mkdir -p "$new/autograder" "$new/mnt"
mount --bind "$tree" "$new/autograder"
exec chroot "$new" /bin/bash -c "$3"
"""
METADATA = {
    "id": 424242, "created_at": "2025-10-01T12:00:00.000000-07:00",
    "assignment": {"id": 1, "title": "PS1 Q6", "total_points": 18.0},
    "users": [{"email": "ada@example.edu", "id": 7, "name": "Ada Lovelace"}],
    "previous_submissions": [],
}


class Gradescope:
    """Runs shell commands as Gradescope would, with ``tree`` as /autograder."""

    def __init__(self, tree: Path, scratch: Path):
        self.tree, self.newroot = tree, scratch / "root"
        self.newroot.mkdir()
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "AUTOGRADER_ROOT")}
        self.prefix = self._namespace()

    def _namespace(self) -> list[str] | None:
        if not shutil.which("unshare") or not shutil.which("chroot"):
            return None
        for flags in (["--mount"], ["--user", "--map-root-user", "--mount"]):
            prefix = ["unshare", *flags, "--propagation", "private", "bash", "-c", NAMESPACE, "ns",
                      str(self.newroot), str(self.tree)]
            probe = subprocess.run([*prefix, "test -d /autograder"], capture_output=True, env=self.env, timeout=60)
            if probe.returncode == 0:
                return prefix
        return None

    @property
    def root(self) -> str:
        return "/autograder" if self.prefix else str(self.tree)

    def run(self, command: str, timeout: float = 900) -> subprocess.CompletedProcess:
        command = command.replace("/autograder", self.root)
        if self.prefix:
            argv, env = [*self.prefix, command], self.env
        else:
            argv, env = ["bash", "-c", command], {**self.env, "AUTOGRADER_ROOT": str(self.tree)}
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)

    def submit(self, files: Path, layout: str = "", metadata: dict | None = None) -> tuple[dict, str]:
        for name in ("submission", "results"):
            shutil.rmtree(self.tree / name, ignore_errors=True)
        (self.tree / "results").mkdir()
        dest = self.tree / "submission" / layout
        shutil.copytree(files, dest, ignore=shutil.ignore_patterns("__pycache__"))
        (dest / "__pycache__").mkdir()
        (dest / "__pycache__" / "sample.cpython-310.pyc").write_bytes(b"\0")
        (dest / "samples.txt").write_text("generated text\n")
        (self.tree / "submission_metadata.json").write_text(json.dumps(metadata or METADATA))
        proc = self.run("cd /autograder && ./run_autograder")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return strict_json((self.tree / "results" / "results.json").read_text()), proc.stdout


@pytest.fixture(scope="module")
def gradescope(tmp_path_factory):
    dist, _report = built_dist()
    tree = tmp_path_factory.mktemp("gradescope") / "autograder"
    unpack(dist / "autograder.zip", tree / "source")
    for name in ("setup.sh", "run_autograder"):
        assert os.access(tree / "source" / name, os.X_OK), f"{name} lost its executable bit in the zip"
    gs = Gradescope(tree, tmp_path_factory.mktemp("namespace"))
    setup = gs.run("cd /autograder/source && bash ./setup.sh")
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert "setup.sh: ready" in setup.stdout
    copy = gs.run("cp /autograder/source/run_autograder /autograder/run_autograder")
    assert copy.returncode == 0, copy.stderr
    return gs


def test_reference_gets_full_marks_from_the_unpacked_zip(gradescope):
    results, stdout = gradescope.submit(REFERENCE, layout="submission")
    graded = [t for t in results["tests"] if not (t.get("extra_data") or {}).get("harness_fault")]
    assert len(graded) == len(results["tests"]) == 14
    assert all(t["status"] == "passed" for t in graded), [(t["name"], t["output"]) for t in graded]
    assert results["score"] == 22.0
    assert results["extra_data"]["grader_digest"] == harness_digest(gradescope.tree / "source")
    assert results["extra_data"]["files"]["sample.py"]["found_as"] == "submission/sample.py"
    assert "student: Ada Lovelace <ada@example.edu>" in stdout
    assert "grading /autograder/submission" in stdout or not gradescope.prefix
    # as root in a mount namespace, student workers get their private view; elsewhere the log says what held
    assert "isolation: files: student workers see a private view" in stdout or not gradescope.prefix

    # A TA reproduces one test with the exact command recorded in its extra_data.
    test = next(t for t in graded if t["name"].startswith("6d-1-hidden"))
    argv = shlex.split(test["extra_data"]["rerun"])
    assert argv[:4] == ["python", "-m", "autograder", "rerun"]
    command = "cd /autograder/source && .venv/bin/python " + shlex.join(argv[1:])
    proc = gradescope.run(command)
    assert proc.returncode == 0, proc.stderr
    assert f"score: {test['score']:g} / 1" in proc.stdout and "PASSED" in proc.stdout


def test_template_scores_zero_from_the_unpacked_zip(gradescope):
    results, _ = gradescope.submit(TEMPLATE)
    assert results["score"] == 0
    assert all(t["status"] == "failed" for t in results["tests"])
    assert not any((t.get("extra_data") or {}).get("harness_fault") for t in results["tests"])


def test_student_bundle_checks_the_template_with_the_same_messages(gradescope, tmp_path):
    dist, _ = built_dist()
    student = unpack(dist / "student.zip", tmp_path / "student")
    os.symlink(gradescope.tree / "source" / ".venv", student / ".venv")  # what its ./setup.sh would create
    venv = student / ".venv"  # ... and, as root, the traverse bits setup.sh grants the worker users
    for parent in access.missing_traverse([venv / "bin" / "python", venv / "lib"]):
        parent.chmod(os.stat(parent).st_mode | 0o001)
    proc = subprocess.run([str(student / "check")], cwd=student, capture_output=True, text=True, timeout=600,
                          env=gradescope.env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "6c-0-basic" in proc.stdout and "NotImplementedError" in proc.stdout
    assert "-hidden" not in proc.stdout
