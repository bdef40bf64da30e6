"""``build``: from the checkout to ``autograder.zip`` and ``student.zip``, verified before written.

Both trees are staged first.  The staged harness itself (a fresh process with only the stage
on its path) then grades the reference solution and the template: the Gradescope tree must
give the reference full marks and the template 0, the student tree must pass the reference on
every public test and give the template 0.  Only then are the zips written.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from autograder.staff.bundle import Stage, stage_autograder, stage_student, write_zip
from autograder.student_check import ANSWERS_NAME
from autograder.config import load_assignment
from autograder.paths import HARNESS_ROOT
from autograder.container import TIERS, advice, need_of, tier_for
from autograder.errors import BuildError
from autograder.provenance import harness_digest
from autograder.results import TestResult

RUN_TIMEOUT = 3600.0
MIN_SECRET_LINE = 16  # shorter reference lines ("return out") are too common to count as a leak


@dataclass(frozen=True)
class Verdict:
    bundle: str          # "autograder.zip" or "student.zip"
    what: str            # what was checked
    ok: bool
    summary: str


@dataclass
class BuildReport:
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    zips: dict[str, tuple[Path, int, str]] = field(default_factory=dict)  # name -> (path, bytes, sha256)


def _run(stage: Stage, argv: list[str], results: Path, python: str, ok_codes: tuple[int, ...]) -> dict:
    """Run ``python -m autograder ARGV`` with nothing but the stage on the path; return its results.json."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUTOGRADER_ROOT", "PYTHONHOME")}
    env.update(PYTHONPATH=str(stage.root), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([python, "-m", "autograder", *argv, "--results", str(results)], cwd=stage.root, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if proc.returncode not in ok_codes or not results.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise BuildError(f"the staged harness failed to run `autograder {' '.join(argv)}` "
                         f"(exit {proc.returncode}):\n{tail}")
    return json.loads(results.read_text())


def _graded(results: dict) -> tuple[list[dict], list[dict]]:
    tests = results.get("tests", [])
    errors = [t for t, read in zip(tests, map(TestResult.from_gradescope, tests)) if read.harness_fault and not read.test_id]
    return [t for t in tests if t not in errors], errors


def full_marks(bundle: str, what: str, results: dict, digest: str) -> Verdict:
    tests, errors = _graded(results)
    failed = [t for t in tests if t.get("status") != "passed"]
    summary = f"{results.get('score', 0):g} points, {len(tests) - len(failed)} of {len(tests)} tests passed"
    problems = [f"{t['name']}: {(t.get('output') or '').splitlines()[:1]}" for t in failed]
    problems += [f"autograder error: {(t.get('output') or '')[-1200:]}" for t in errors]
    problems += _digest_problem(results, digest)
    return Verdict(bundle, what, bool(tests) and not problems, summary + "".join(f"\n      {p}" for p in problems))


def zero_marks(bundle: str, what: str, results: dict, digest: str) -> Verdict:
    tests, errors = _graded(results)
    passed = [t for t in tests if t.get("status") == "passed" or t.get("score", 0) > 0]
    summary = f"{results.get('score', 0):g} points, {len(tests) - len(passed)} of {len(tests)} tests failed"
    problems = [f"{t['name']} gave the template {t.get('score', 0):g} points" for t in passed]
    problems += [f"autograder error: {(t.get('output') or '')[-1200:]}" for t in errors]
    problems += _digest_problem(results, digest)
    ok = bool(tests) and results.get("score", 1) == 0 and not problems
    return Verdict(bundle, what, ok, summary + "".join(f"\n      {p}" for p in problems))


def _digest_problem(results: dict, digest: str) -> list[str]:
    got = (results.get("extra_data") or {}).get("grader_digest")
    return [] if got == digest else [f"graded by harness {got}, not the staged harness {digest}"]


def no_secrets(student_stage: Stage, source: Path) -> Verdict:
    """The student tree holds no hidden test and no file or code line of the reference solution."""
    reference = {p.name: p.read_text() for p in (source / "reference_solution").glob("*.py")}
    template = {p.name: p.read_text() for p in (source / "student_template").glob("*.py")}
    secret_lines = {line.strip() for name, text in reference.items() for line in text.splitlines()
                    if len(line.strip()) >= MIN_SECRET_LINE and line not in template.get(name, "").splitlines()}
    problems = []
    for path in sorted(p for p in student_stage.root.rglob("*") if p.is_file() and p.suffix != ".bin"):
        rel = path.relative_to(student_stage.root).as_posix()
        text = path.read_text(errors="replace")
        if "tests_hidden" in rel or "reference_solution" in rel or path.name == "test_hidden.py":
            problems.append(f"{rel} is staff-only")
        leaked = [line for line in text.splitlines() if line.strip() in secret_lines]
        if leaked:
            problems.append(f"{rel} holds reference code: {leaked[0].strip()!r}")
    summary = "no hidden test, no reference code" if not problems else "; ".join(problems[:5])
    return Verdict("student.zip", "contents", not problems, summary)


def memory_note(config: Path) -> str:
    """What the configured models need on Gradescope; a warning when the default container is too small."""
    need = need_of(load_assignment(config))
    cpus, gb = TIERS[0]
    if need is None:
        return "memory: the assignment's drivers module says nothing of what grading needs (CONTAINER_NEEDS)"
    if tier_for(need) == TIERS[0]:
        return f"memory: {advice(need)}"
    return f"warning: Gradescope's default container ({cpus:g} CPU / {gb:g} GB) is too small: {advice(need)}"


def build(out: Path = Path("dist"), checkpoint: Path | None = None, source: Path = HARNESS_ROOT,
          config: Path | None = None, python: str = sys.executable,
          on_step: Callable[[str], None] | None = None) -> BuildReport:
    """Stage, verify and write ``out/autograder.zip`` and ``out/student.zip``; raise BuildError on any failure.

    ``config`` replaces ``tests_hidden/assignment.yml`` in the bundles; ``checkpoint`` is the real
    course checkpoint file the config's checkpoint model names.
    """
    step = on_step or (lambda _line: None)
    report = BuildReport()
    source = Path(source).resolve()
    with tempfile.TemporaryDirectory(prefix="autograder-build-") as tmp_name:
        tmp = Path(tmp_name)
        step(f"staging the harness from {source}")
        staff, report.notes = stage_autograder(source, tmp / "autograder", config, checkpoint)
        report.notes.append(memory_note(config or source / "tests_hidden" / "assignment.yml"))
        student = stage_student(source, tmp / "student", staff)
        subs = tmp / "submissions"
        for name, folder in (("reference", "reference_solution"), ("template", "student_template")):
            shutil.copytree(source / folder, subs / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        book, every_answer = student.root / "tests_public" / ANSWERS_NAME, tmp / "all-answers.bin"
        step("verifying with the staged harness: the reference and the template, in both bundles")
        with ThreadPoolExecutor(max_workers=2) as pool:
            # Gradescope's tree first; the reference run records every reference answer it computes.
            # The course's own code, so --unsafe: it still runs in a private view where the machine builds one.
            staff_ref = pool.submit(_run, staff, ["grade", "--unsafe", "--submission", str(subs / "reference"),
                                                  "--save-answers", str(every_answer)], tmp / "r1.json", python, (0,))
            staff_tpl = pool.submit(_run, staff, ["grade", "--unsafe", "--submission", str(subs / "template")],
                                    tmp / "r2.json", python, (0,))
            staff_ref.result()
            # The student tree grades without reference code: it keeps the answers its public tests used.
            student_ref = pool.submit(_run, student, ["check", str(subs / "reference"), "--answers", str(every_answer),
                                                      "--save-answers", str(book)], tmp / "r3.json", python, (0, 1))
            student_tpl = pool.submit(_run, student, ["check", str(subs / "template"), "--answers", str(every_answer)],
                                      tmp / "r4.json", python, (0, 1))
            runs = [(full_marks, "autograder.zip", "reference solution", staff_ref.result(), staff),
                    (zero_marks, "autograder.zip", "student template", staff_tpl.result(), staff),
                    (full_marks, "student.zip", "reference solution, public tests", student_ref.result(), student),
                    (zero_marks, "student.zip", "student template, public tests", student_tpl.result(), student)]
        for judge, bundle, what, results, stage in runs:
            report.verdicts.append(judge(bundle, what, results, harness_digest(stage.root)))
        report.verdicts.append(no_secrets(student, source))
        failed = [v for v in report.verdicts if not v.ok]
        if failed:
            lines = "\n".join(f"  {v.bundle}: {v.what}: {v.summary}" for v in failed)
            raise BuildError(f"refusing to write the zips to {out}: the staged harness did not grade as it must:\n{lines}")
        for name, stage in (("autograder.zip", staff), ("student.zip", student)):
            size, sha = write_zip(stage, Path(out) / name)
            report.zips[name] = (Path(out) / name, size, sha)
    return report
