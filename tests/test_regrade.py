"""regrade: a Gradescope export in, per-submission results, grades.csv and a failure summary out."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import pytest

from autograder.errors import ExportError, UsageError
from autograder.staff.export import open_export
from autograder.staff.regrade import Regrade, parse_shard, shard_of
from conftest import ROOT, strict_json
from workflow_support import submission, template_submission, tiny_config, zip_of

ONLY = frozenset({"6d-0-basic"})
METADATA = """\
submission_1001:
  :submitters:
  - :name: Ada Lovelace
    :sid: '001'
    :email: ada@example.edu
  :created_at: 2025-10-01 12:00:00.000000000 -07:00
  :score: !ruby/object:BigDecimal 18:0.22e2
submission_1002:
  :submitters:
  - :name: Edsger Dijkstra
    :sid: '002'
    :email: ewd@example.edu
submission_1003:
  :submitters:
  - :name: Barbara Liskov
    :sid: '003'
    :email: liskov@example.edu
submission_1004:
  :submitters:
  - :name: Grace Hopper
    :sid: '004'
    :email: grace@example.edu
  - :name: Alan Turing
    :sid: '005'
    :email: alan@example.edu
submission_1005:
  :submitters:
  - :name: Broken Code
    :sid: '006'
    :email: broken@example.edu
submission_1006:
  :submitters:
  - :name: No Folder
    :sid: '007'
    :email: gone@example.edu
"""


def make_export(root):
    """Five submissions as uploaded (flat, zipped, template, group in src/submission, broken) and
    one the metadata lists without a folder."""
    root.mkdir(parents=True)
    (root / "submission_metadata.yml").write_text(METADATA)
    submission(root / "submission_1001")
    (root / "submission_1001" / "__pycache__").mkdir()
    (root / "submission_1001" / "loglik.pkl").write_bytes(b"\x80\x04N.")
    zipped = submission(root.parent / "zip-src", layout="submission")
    (root / "submission_1002").mkdir()
    zip_of(zipped, root / "submission_1002" / "hw1.zip")
    template_submission(root / "submission_1003")
    submission(root / "submission_1004", layout="src/submission")
    submission(root / "submission_1005", replace={"likelihood.py": "def log_likelihood(model, text:\n"})
    return root


def rows_by_id(path):
    with open(path, newline="") as fh:
        return {row["submission_id"]: row for row in csv.DictReader(fh)}


def test_shards_split_the_submissions_without_overlap(tmp_path):
    with open_export(make_export(tmp_path / "export")) as subs:
        parts = [shard_of(subs, (i, 3)) for i in range(3)]
    ids = [s.id for part in parts for s in part]
    assert sorted(ids) == ["1001", "1002", "1003", "1004", "1005", "1006"] and len(set(ids)) == 6
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "1", "a/b", "-1/3"):
        with pytest.raises(UsageError, match="shard"):
            parse_shard(bad)


def test_export_metadata_with_ruby_symbols_and_tags_is_read(tmp_path):
    with open_export(make_export(tmp_path / "export")) as subs:
        by_id = {s.id: s for s in subs}
    assert [p.name for p in by_id["1004"].submitters] == ["Grace Hopper", "Alan Turing"]
    assert by_id["1001"].submitters[0].sid == "001" and by_id["1006"].folder is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="not a Gradescope export"):
        with open_export(tmp_path / "empty"):
            pass
    with pytest.raises(ExportError, match="does not exist"):
        with open_export(tmp_path / "nothing.zip"):
            pass


@pytest.mark.slow
def test_regrade_writes_a_correct_csv_and_resumes(tmp_path):
    export, out = make_export(tmp_path / "export"), tmp_path / "out"
    with open_export(export) as subs:
        run = Regrade(subs, out, only=ONLY)
        assert [j.id for j in run.todo] == ["1001", "1002", "1003", "1004", "1005"] and run.missing == ["1006"]
        outcomes = {o.id: o for o in run.run(jobs=1)}
        csv_path, summary_path, summary, _html = run.write_reports()
    assert {i: o.score for i, o in outcomes.items()} == {"1001": 2.0, "1002": 2.0, "1003": 0.0, "1004": 2.0, "1005": 0.0}
    rows = rows_by_id(csv_path)
    assert list(rows) == ["1001", "1002", "1003", "1004", "1005", "1006"]
    assert rows["1004"]["names"] == "Grace Hopper;Alan Turing" and rows["1004"]["sids"] == "004;005"
    assert rows["1004"]["emails"] == "grace@example.edu;alan@example.edu"
    assert [rows[i]["6d-0-basic"] for i in ("1001", "1002", "1003", "1004", "1005")] == ["2", "2", "0", "2", "0"]
    assert [rows[i]["total"] for i in ("1001", "1003")] == ["2", "0"]
    assert rows["1005"]["status"] == "graded" and rows["1006"]["status"].startswith("not graded: the export lists")
    results = strict_json((out / "submission_1002" / "results.json").read_text())
    assert results["extra_data"]["files"]["likelihood.py"]["found_as"] == "hw1.zip: submission/likelihood.py"
    assert (out / "submission_1005" / "staff_log.txt").is_file()
    assert "6d-0-basic: 2 of 5 failed" in summary and "NotImplementedError" in summary and "SyntaxError" in summary
    assert summary_path.read_text().strip() == summary

    changed = tmp_path / "changed.yml"
    changed.write_text((ROOT / "tests_hidden" / "assignment.yml").read_text().replace("lengths: [10]", "lengths: [7]"))
    with open_export(export) as subs:
        again = Regrade(subs, out, only=ONLY)
        forced = Regrade(subs, out, only=ONLY, force=True)
        wider = Regrade(subs, out, only=ONLY | {"6c-0-basic"})
        other_params = Regrade(subs, out, assignment_path=changed, only=ONLY)
    assert again.todo == [] and again.skipped == ["1001", "1002", "1003", "1004", "1005"]
    assert len(forced.todo) == 5 and len(wider.todo) == 5, "other tests make the old results unfinished"
    assert len(other_params.todo) == 5, "results graded under another config (same seed and tests) are unfinished"


@pytest.mark.slow
def test_regrade_command_grades_in_parallel_and_in_shards(tmp_path):
    export = tmp_path / "course-export"
    make_export(export / "assignment_42_export")
    for sid in ("1003", "1004", "1005"):  # two graded submissions are enough here
        shutil.rmtree(export / "assignment_42_export" / f"submission_{sid}")
    archive = zip_of(export, tmp_path / "export.zip")
    config = tiny_config(tmp_path / "tiny.yml", sorted(ONLY))
    out = tmp_path / "out"

    def regrade(*extra):
        proc = subprocess.run([sys.executable, "-m", "autograder", "regrade", str(archive), "--out", str(out),
                               "--assignment", str(config), *extra], cwd=ROOT, capture_output=True, text=True,
                              timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    first = regrade("--jobs", "2")
    assert "6 submissions: 2 to grade, 0 already graded, 4 without a folder" in first.stdout
    assert "100%" in first.stderr and "2/2" in first.stderr  # the progress bar
    rows = rows_by_id(out / "grades.csv")
    assert {i: r["total"] for i, r in rows.items() if r["total"]} == {"1001": "2", "1002": "2"}
    assert all(rows[i]["status"].startswith("not graded") for i in ("1003", "1004", "1005", "1006"))
    rerun = strict_json((out / "submission_1001" / "results.json").read_text())["tests"][0]["extra_data"]["rerun"]
    assert f"--assignment {config}" in rerun

    # An array job's task: its share only, nothing left to grade, its own CSV.
    shard = regrade("--shard", "1/2")
    assert "3 submissions (shard 1/2): 0 to grade, 1 already graded, 2 without a folder" in shard.stdout
    assert list(rows_by_id(out / "grades-shard-1-of-2.csv")) == ["1002", "1004", "1006"]
