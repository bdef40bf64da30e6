"""report.html, the class report of a regrade: its numbers against grades.csv and the results files,
faults first, every string from a results file escaped, rebuilt byte for byte, and drawn by a browser."""
from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.config import load_assignment
from autograder.results import GradingResults, TestResult
from autograder.staff.export import open_export
from autograder.staff.regrade import Regrade
from conftest import FIXTURES, ROOT, strict_json
from report_support import counts, csv_columns, expected_from_files, parse, report_data
from workflow_support import submission, template_submission

ONLY = ("6d-0-basic", "6e-0-basic")
CORPUS = FIXTURES / "corpus"
HOSTILE = {
    "output": "<script>alert('output')</script> & more",
    "second": "</td></tr><img src=x onerror=alert(1)>",
    "diagnosis": "<svg onload=alert(4)>",
    "fault": "the harness could not grade this test: <b>bold</b> \"quoted\"",
    "error": "RuntimeError: </pre><script>alert(3)</script>",
}

# What each submission of the exported class is: the corpus entry that replaces a reference file
# (None: the reference itself), or a file text of its own.
CLASS = {
    "2001": {}, "2002": {},
    "2003": {"likelihood.py": "likelihood_bad_mean"}, "2004": {"likelihood.py": "likelihood_bad_mean"},
    "2005": {"likelihood.py": "likelihood_bad_sign"}, "2006": {"classifier.py": "classifier_bad_inverted"},
    "2007": {"classifier.py": "classifier_ok_threshold_250"},
    "2008": {"likelihood.py": None},   # a syntax error
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def make_class_export(root: Path) -> Path:
    """Ten submissions: the reference twice, five corpus entries, a syntax error, the template, and
    one the metadata lists without a folder."""
    root.mkdir(parents=True)
    ids = [*CLASS, "2009", "2010"]
    (root / "submission_metadata.yml").write_text("".join(
        f"submission_{i}:\n  :submitters:\n  - :name: Student {i}\n    :sid: 's{i}'\n    :email: s{i}@example.edu\n"
        for i in ids))
    for sid, files in CLASS.items():
        replace = {name: (CORPUS / f"{entry}.py").read_text() if entry else "def log_likelihood(model, text:\n"
                   for name, entry in files.items()}
        submission(root / f"submission_{sid}", replace=replace)
    template_submission(root / "submission_2009")
    return root


@pytest.fixture(scope="module")
def regraded(tmp_path_factory):
    """A real regrade of the class export, restricted to two cheap tests: (out folder, Regrade)."""
    base = tmp_path_factory.mktemp("class")
    export, out = make_class_export(base / "export"), base / "out"
    with open_export(export) as subs:
        run = Regrade(subs, out, only=frozenset(ONLY))
        outcomes = list(run.run(jobs=1))
        run.write_reports()
    assert len(outcomes) == 9 and run.missing == ["2010"]
    return out, run


@pytest.mark.slow
def test_report_numbers_equal_grades_csv_and_results_files(regraded):
    out, run = regraded
    html = (out / "report.html").read_text()
    root, order = parse(html)
    data = report_data(root)
    expected = expected_from_files(out, list(ONLY))
    columns = csv_columns(out / "grades.csv")
    points = {t.id: t.points for t in load_assignment().tests}
    assert data["submissions"] == len(columns["submission_id"]) == 10
    for test_id in ONLY:
        e = expected[test_id]
        cells = [c for c in columns[test_id] if c != ""]
        assert len(cells) == e["graded"] + len(e["faults"]), "every graded result has its score in grades.csv"
        assert sum(float(c) == points[test_id] for c in cells) == e["passed"], "full marks in grades.csv = passed"
        assert 0 < e["passed"] < e["graded"], "the class both passes and fails each test"
        row = root.find("tr", id=f"test-{test_id}")
        assert (int(row.attrs["data-passed"]), int(row.attrs["data-graded"])) == (e["passed"], e["graded"])
        shown = row.cells()
        assert shown[2:5] == [str(e["passed"]), str(e["graded"]), f"{100 * e['passed'] / e['graded']:.1f}%"]
        block = next(t for t in data["tests"] if t["id"] == test_id)
        assert (block["passed"], block["graded"], block["faults"]) == (e["passed"], e["graded"], e["faults"])
        assert {(g["kind"], g["label"]): g["count"] for g in block["groups"]} == dict(counts(e["groups"]))
        assert {(g["kind"], g["label"]): set(g["ids"]) for g in block["groups"]} == e["groups"]
        table = root.find("table", class_="groups", **{"data-test": test_id})
        visible = {}
        for tr in table.find_all("tr", class_="group"):
            kind, label, count, ids = tr.cells()
            key = ("diagnosis" if kind == "diagnosis" else "first output line", label)
            visible[key] = (int(count), set(ids.split()))
            assert int(tr.attrs["data-count"]) == int(count)
            assert kind == "diagnosis" or kind.startswith("no diagnosis"), "a first-line group says it has no diagnosis"
        assert visible == {k: (len(v), v) for k, v in e["groups"].items()}
    stats = root.find("p", id="score-stats")
    assert int(stats.attrs["data-count"]) == columns["status"].count("graded") == 9
    assert f"median {statistics.median(float(t) for t in columns['total'] if t):g}," in stats.text()
    # The submission without a folder is the one fault, listed before the scores.
    faults = root.find("section", id="faults").find_all("tr", class_="fault")
    assert [(f.attrs["data-submission"], f.attrs["data-kind"]) for f in faults] == [("2010", "not graded")]
    assert order.index("faults") < order.index("scores") < order.index("tests") < order.index("resources")
    assert {"plot-scores", "plot-pass-rates", "plot-time-memory"} <= set(order)
    # Self-contained: nothing to fetch (the only URLs are the SVG namespaces), no script to run.
    assert not re.findall(r"(?:src|href)=\"(?!#|submission_)|<link|@import|url\((?!#)", html)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


@pytest.mark.slow
def test_regrade_records_time_and_memory_and_the_report_ranks_them(regraded):
    out, _ = regraded
    results = {p.parent.name.removeprefix("submission_"): strict_json(p.read_text())
               for p in sorted(out.glob("submission_*/results.json"))}
    assert len(results) == 9
    for sid, r in results.items():
        memory = r["extra_data"]["memory"]
        assert r["execution_time"] > 0 and memory["grader_peak_mib"] > 0, sid
        assert memory["grader_peak_of"] == "this grade"
    measured = {sid for sid, r in results.items() if "worker_peak_mib" in r["extra_data"]["memory"]}
    assert measured >= {"2001", "2003", "2006"}, "a submission whose code ran has its workers' peak"
    root, _ = parse((out / "report.html").read_text())
    slowest = [tr.attrs["data-id"] for tr in root.find("table", id="slowest").find_all("tr") if "data-id" in tr.attrs]
    assert slowest == sorted(results, key=lambda s: -results[s]["execution_time"])[:10]
    heaviest = [tr for tr in root.find("table", id="memory").find_all("tr") if "data-id" in tr.attrs]
    top = max(measured, key=lambda s: results[s]["extra_data"]["memory"]["worker_peak_mib"])
    assert heaviest[0].attrs["data-id"] == top
    assert heaviest[0].find("td", class_="worker").text() == f"{results[top]['extra_data']['memory']['worker_peak_mib']:.1f}"


@pytest.mark.slow
def test_report_command_rebuilds_identical_files(regraded, tmp_path):
    out, _ = regraded
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    written = {name: (copy / name).read_bytes() for name in ("report.html", "grades.csv", "summary.txt")}
    for name in written:
        (copy / name).unlink()
    proc = run_cli("report", str(copy))
    assert f"class report: {copy / 'report.html'}" in proc.stdout
    assert {name: (copy / name).read_bytes() for name in written} == written


def _results(*tests: TestResult, seconds: float = 1.0, memory: dict | None = None) -> str:
    r = GradingResults(tests=list(tests), execution_time=seconds, extra_data={"memory": memory or {}})
    return r.dumps()


def _test(test_id: str, passed: bool, output: str = "", diagnosis: str | None = None, fault: bool = False):
    return TestResult(name=f"{test_id}: a title", points=2.0, score=2.0 if passed else 0.0, passed=passed,
                      output=output, test_id=test_id, diagnosis=diagnosis, harness_fault=fault,
                      extra_data={"test_id": test_id})


def hostile_folder(out: Path) -> Path:
    """Results files as regrade writes them, with markup wherever a results file holds text."""
    files = {
        "3001": _results(_test("6d-0-basic", False, HOSTILE["output"] + "\nsecond line", "likelihood:mean-not-sum"),
                         _test("6e-0-basic", True), seconds=4.0, memory={"worker_peak_mib": 250.5, "grader_peak_mib": 300.0}),
        "3002": _results(_test("6d-0-basic", False, "wrong value", "likelihood:mean-not-sum"),
                         _test("6e-0-basic", False, HOSTILE["second"]), seconds=2.0),
        "3003": _results(_test("6d-0-basic", False, HOSTILE["fault"], fault=True), _test("6e-0-basic", True)),
        "3004": GradingResults.autograder_failure("boom <script>", "Traceback <script>x</script>").dumps(),
        "3006": _results(_test("6d-0-basic", True), _test("6e-0-basic", False, "inverted", HOSTILE["diagnosis"]),
                         seconds=9.0, memory={"worker_peak_mib": 120.0, "grader_peak_mib": 310.0}),
    }
    for sid, text in files.items():
        (out / f"submission_{sid}").mkdir(parents=True)
        (out / f"submission_{sid}" / "results.json").write_text(text)
    (out / "submission_3005").mkdir()
    (out / "submission_3005" / "error.txt").write_text(HOSTILE["error"] + "\n")
    return out


def test_hostile_results_are_escaped_and_faults_come_first(tmp_path):
    out = hostile_folder(tmp_path / "out")
    proc = run_cli("report", str(out))
    assert "holds no regrade manifest" in proc.stdout and not (out / "grades.csv").exists()
    html = (out / "report.html").read_text()
    assert html.count("<script") == 1 and '<script type="application/json" id="report-data">' in html
    for markup in ("<img", "<b>bold", "<svg onload", "</pre><script", "alert('output')</script>"):
        assert markup not in html, markup
    root, order = parse(html)
    assert order.index("faults") < order.index("scores") < order.index("tests") < order.index("resources")
    faults = root.find("section", id="faults").find_all("tr", class_="fault")
    kinds = [(f.attrs["data-submission"], f.attrs["data-kind"]) for f in faults]
    assert kinds == [("3003", "test not graded"), ("3004", "run failed"), ("3004", "run failed"),
                     ("3005", "not graded")]
    messages = [f.find("pre").text() for f in faults]
    assert messages[0] == HOSTILE["fault"] and messages[3] == HOSTILE["error"], "escaped text reads back as written"
    assert "Traceback <script>x</script>" in messages
    expected = expected_from_files(out, list(ONLY))
    data = report_data(root)
    for block in data["tests"]:
        e = expected[block["id"]]
        assert {(g["kind"], g["label"]): set(g["ids"]) for g in block["groups"]} == e["groups"]
        assert (block["passed"], block["graded"], block["faults"]) == (e["passed"], e["graded"], e["faults"])
    labels = {tr.find("td", class_="label").text(): tr.attrs["data-kind"] for tr in root.find_all("tr", class_="group")}
    assert labels["likelihood:mean-not-sum"] == "diagnosis" and labels[HOSTILE["diagnosis"]] == "diagnosis"
    assert HOSTILE["output"] not in labels, "a failure with a diagnosis is grouped under it, not under its output"
    assert labels[HOSTILE["second"]] == "first-line", "a failure without a diagnosis is grouped by its first line"
    mean = root.find("tr", class_="diagnosis")
    assert mean.cells()[2:] == ["2", "3001 3002"]

    # With the manifest regrade records, the report command also rebuilds grades.csv and the summary.
    manifest = {"tests": [{"id": t, "title": "<i>title</i>"} for t in ONLY], "shard": None,
                "submissions": [{"id": s, "names": [f"<b>{s}</b>"], "sids": [s], "emails": []}
                                for s in ("3001", "3002", "3003", "3004", "3005", "3006")]}
    (out / "regrade.json").write_text(json.dumps(manifest))
    run_cli("report", str(out))
    assert csv_columns(out / "grades.csv")["status"] == ["graded", "graded", "graded", "autograder error",
                                                         f"not graded: {HOSTILE['error']}", "graded"]
    html = (out / "report.html").read_text()
    assert "<i>" not in html
    assert parse(html)[0].find("tr", id="test-6d-0-basic").cells()[1] == "<i>title</i>"


def test_report_command_says_what_folder_it_needs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "autograder", "report", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode != 0 and "holds no submission_<id>/ folder" in proc.stderr + proc.stdout


def chromium() -> str:
    """Debian's headless Chromium: installed here with apt-get when missing and running as root."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("Debian's chromium package is not installed, and installing it needs root and apt-get: "
                    "run `apt-get install -y chromium` as root, then this test")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    done = subprocess.run(install, capture_output=True, text=True, timeout=1800, env=env)
    if done.returncode != 0:  # a machine whose package lists were never fetched
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, timeout=900, env=env)
        done = subprocess.run(install, capture_output=True, text=True, timeout=1800, env=env)
    assert done.returncode == 0 and shutil.which("chromium"), done.stdout[-3000:] + done.stderr[-3000:]
    return shutil.which("chromium")


def run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless, offline (every host name resolves to nothing), with a throwaway profile."""
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--hide-scrollbars", f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
                           *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


# Run in the page once it has loaded: each plot's drawn size and how many of its shapes have an area.
PROBE = """<script>
const plots = [...document.querySelectorAll("svg")].map(svg => {
  const box = svg.getBoundingClientRect();
  const shapes = [...svg.querySelectorAll("path, rect, text")].filter(e => {
    const b = e.getBBox(); return b.width > 0 || b.height > 0; }).length;
  return {id: svg.id, width: box.width, height: box.height, shapes: shapes};
});
document.body.setAttribute("data-plots", JSON.stringify(plots));
</script>"""


@pytest.mark.slow
@pytest.mark.browser
def test_report_renders_its_plots_in_headless_chromium(regraded, tmp_path):
    out, _ = regraded
    browser = chromium()
    report = out / "report.html"
    root, order = parse(run_chromium(browser, tmp_path / "profile", "--dump-dom", report.as_uri()).stdout)
    assert [s for s in order if s in ("faults", "scores", "tests", "resources")] == ["faults", "scores", "tests", "resources"]
    assert {svg.attrs.get("id") for svg in root.find_all("svg")} == {"plot-scores", "plot-pass-rates", "plot-time-memory"}

    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    body = parse(run_chromium(browser, tmp_path / "profile", "--dump-dom", probed.as_uri()).stdout)[0].find("body")
    plots = {p["id"]: p for p in json.loads(body.attrs["data-plots"])}
    assert set(plots) == {"plot-scores", "plot-pass-rates", "plot-time-memory"}
    for p in plots.values():
        assert p["width"] > 200 and p["height"] > 50 and p["shapes"] > 10, p

    from PIL import Image

    shot = tmp_path / "report.png"
    run_chromium(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,4000", report.as_uri())
    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50, "the screenshot is blank"
    bar = sum(n for n, (r, g, b) in colors if abs(r - 0x4C) + abs(g - 0x72) + abs(b - 0xB0) < 30)
    assert bar > 5000, f"only {bar} pixels in the plots' bar colour: the plots were not painted"
