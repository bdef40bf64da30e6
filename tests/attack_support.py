"""Helpers of the attack suite: build attack submissions, grade them, check the machine is clean."""
from __future__ import annotations

import json
import math
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from autograder.sandbox.handle import Limits
from autograder.config import load_assignment
from autograder.sandbox import identity, locking, reaper
from autograder.runner import grade
from conftest import ROOT, TEMPLATE, FIXTURES, result_id, strict_json

ATTACKS = FIXTURES / "attacks"
STUDENT_FILES = load_assignment().student_files
TREE_PARTS = ("autograder", "tests_hidden", "reference_solution", "student_template", "run_autograder",
              "setup.sh", "requirements.txt", "pyproject.toml", "README.md")


SHARED = "# uses _steal.py"     # an attack file starting so is preceded by ATTACKS/_steal.py


def attack_text(name: str, filename: str, known: tuple[str, ...] = ()) -> str:
    """What attack ``name`` appends to ``filename``: its file of that name, else its ``all.py``,
    with the paths a student could know filled in for ``KNOWN_PATHS``."""
    folder = ATTACKS / name
    attack = folder / filename if (folder / filename).is_file() else folder / "all.py"
    if not attack.is_file():
        return ""
    text = attack.read_text()
    if text.startswith(SHARED):
        text = (ATTACKS / "_steal.py").read_text() + text
    return text.replace("KNOWN_PATHS = []", f"KNOWN_PATHS = {sorted(known)!r}")


def build_attack(name: str, dest: Path, known: tuple[str, ...] = ()) -> Path:
    """The template with each attack file appended to the file of the same name: every point
    such a submission earns is stolen, since the template alone earns none."""
    dest.mkdir(parents=True, exist_ok=True)
    for filename in STUDENT_FILES:
        text = (TEMPLATE / filename).read_text()
        attack = attack_text(name, filename, known)
        if attack:
            text += "\n\n# ---- attack (tests/fixtures/attacks/" + name + ") ----\n" + attack
        (dest / filename).write_text(text)
    return dest


def secret_lines(*extra: Path) -> set[str]:
    """Lines of the grader's secrets (reference solution, hidden tests and config, checks, the
    held-out text) and of ``extra`` files, that no template or attack file holds: any of them in a
    student's feedback is a leak."""
    public = {line.strip() for path in [*TEMPLATE.glob("*.py"), *ATTACKS.rglob("*.py")]
              for line in path.read_text().splitlines()}
    secrets = [*(ROOT / "reference_solution").glob("*.py"), *(ROOT / "tests_hidden").glob("*"),
               ROOT / "autograder/q6/judge.py", ROOT / "autograder/q6/data/natural_test.txt", *extra]
    return {line.strip() for path in secrets if path.is_file() for line in path.read_text().splitlines()
            if len(line.strip()) >= 12 and line.strip() not in public}


def leaks(results: dict, secrets: set[str]) -> list[str]:
    """The secret lines found in any feedback of ``results`` (test outputs and the summary)."""
    text = outputs(results) + "\n" + results.get("output", "")
    shown = {line.strip() for line in text.splitlines()}
    return sorted(secrets & shown) + sorted(s for s in secrets if len(s) >= 40 and s in text and s not in shown)


def open_dir(parent: str = "/tmp", prefix: str = "ag-attack-") -> Path:
    """A fresh root-owned folder other users may traverse but not list or write."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o711)
    return path


def check_results_file(path: Path) -> dict:
    """Strict JSON, under 1 MiB, in Gradescope's schema, with finite scores within their bounds,
    and no "autograder error": whatever a submission does is the submission's fault."""
    raw = path.read_bytes()
    assert len(raw) < 1024 * 1024, f"{path} is {len(raw)} bytes"
    data = strict_json(raw.decode())
    assert isinstance(data["tests"], list) and data["tests"]
    assert math.isfinite(data["score"]) and isinstance(data["execution_time"], float)
    for t in data["tests"]:
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(t), t
        assert t["status"] in ("passed", "failed") and t["visibility"] in isolation_visibilities()
        assert math.isfinite(t["score"]) and 0 <= t["score"] <= max(t["max_score"], 2.0)
    assert not harness_faults(data), dump(data)
    return data


def harness_faults(results: dict) -> list[str]:
    """The tests of results.json that report a fault of the harness rather than of the submission."""
    return [t["name"] for t in results["tests"] if (t.get("extra_data") or {}).get("harness_fault")]


def isolation_visibilities() -> tuple[str, ...]:
    return ("hidden", "after_due_date", "after_published", "visible")


def harness_cache(name: str) -> bool:
    """A cache the harness's own libraries keep in its temporary folder: tiktoken's, and the one
    torch makes when building a model imports its compiler."""
    return name == "data-gym-cache" or name.startswith("torchinductor_")


def grade_here(submission: Path, results: Path, only: set[str], timeout: float | None = None):
    """Grade in this process (the developer's unlocked tree); write and check results.json."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(open_dir())
    limits = Limits(max_call_seconds=timeout) if timeout is not None else None
    try:
        outcome, log = grade(submission, only=frozenset(only), limits=limits)
        leftovers = [p for p in Path(tempfile.tempdir).iterdir() if not harness_cache(p.name)]
        assert not leftovers, f"grading left {leftovers}"
    finally:
        shutil.rmtree(tempfile.tempdir, ignore_errors=True)
        tempfile.tempdir = saved
    outcome.write(results)
    return check_results_file(results), "\n".join(log)


class LockedTree:
    """A copy of the harness laid out and locked as on Gradescope, graded through subprocesses."""

    def __init__(self) -> None:
        self.base = open_dir()
        self.root = self.base / "source"
        self.root.mkdir()
        for part in TREE_PARTS:
            src = ROOT / part
            if src.is_dir():
                shutil.copytree(src, self.root / part, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, self.root / part)
        (self.root / ".venv").symlink_to((ROOT / ".venv").resolve(), target_is_directory=True)
        locking.lock_tree(self.root)
        self.results_dir = open_dir(prefix="ag-results-")
        self.results_dir.chmod(0o755)   # as readable as Gradescope's, but not writable by others

    def fingerprint(self) -> dict[str, tuple[int, bytes]]:
        """Mode and content of every file of the tree (the venv and the harness's bytecode aside)."""
        out = {}
        for path in sorted(self.root.rglob("*")):
            parts = path.relative_to(self.root).parts
            if ".venv" in parts or "__pycache__" in parts or path.is_symlink() or not path.is_file():
                continue
            out[str(path.relative_to(self.root))] = (path.stat().st_mode, path.read_bytes())
        return out

    def run(self, submission: Path, only: set[str] | None = None) -> tuple[dict, str, Path]:
        """Grade with the tree's own harness: ./run_autograder, or ``grade(only=...)``."""
        results = self.results_dir / "results.json"
        tmp = open_dir()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(tmp), "LANG": "C.UTF-8"}
        if only is None:
            cmd = [str(self.root / "run_autograder"), "--submission", str(submission), "--results", str(results)]
        else:
            code = ("import sys; from pathlib import Path; from autograder.runner import grade; "
                    "r, log = grade(Path(sys.argv[1]), only=frozenset(sys.argv[3:])); "
                    "r.write(Path(sys.argv[2])); print('\\n'.join(log))")
            cmd = [str(self.root / ".venv/bin/python"), "-c", code, str(submission), str(results), *sorted(only)]
            env["PYTHONPATH"] = str(self.root)
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
            left = [p.name for p in tmp.iterdir() if not harness_cache(p.name)]
            assert not left, f"grading left {left} behind"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return check_results_file(results), proc.stdout, results

    def close(self) -> None:
        locking.unlock_tree(self.root)
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.results_dir, ignore_errors=True)


def worker_uids() -> set[int]:
    return {u.pw_uid for u in identity.worker_users()}


def machine_leftovers() -> list[str]:
    """Live processes of the idle worker users and files they own where anyone can write (users
    another grading run on this machine holds right now are skipped: their workers are legitimate)."""
    held = [i for i in (identity.try_identity(u) for u in identity.worker_users()) if i is not None]
    try:
        return _leftovers_of({i.uid for i in held})
    finally:
        for taken in held:
            taken.release()


def _leftovers_of(uids: set[int]) -> list[str]:
    found = [f"process {p.pid} (uids {sorted(p.uids)})" for p in reaper.scan().values()
             if p.uids & uids and not p.dead]
    stack = [r for r in reaper.WORLD_WRITABLE_ROOTS if r.is_dir()]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_uid in uids:
                found.append(f"file {entry.path} owned by uid {info.st_uid}")
            elif stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IWOTH:
                stack.append(Path(entry.path))
    return found


def outputs(results: dict, visible_only: bool = False) -> str:
    """All test outputs (or those students can ever see) as one string."""
    return "\n".join(t["output"] for t in results["tests"] if not visible_only or t["visibility"] != "hidden")


def by_id(results: dict) -> dict[str, dict]:
    return {result_id(t): t for t in results["tests"]}


def dump(results: dict) -> str:
    return json.dumps(results, indent=1)[:4000]
