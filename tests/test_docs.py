"""The pages people read match the tree: generated tables, links, the README's layout map and commands."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from autograder.paths import HARNESS_ROOT
from autograder.staff import doc_tables

ROOT = HARNESS_ROOT
PAGES = doc_tables.pages(ROOT)
README = ROOT / "README.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
COMMANDS = ("./setup.sh && ./run_autograder --submission reference_solution --results results.json",
            "./setup.sh && .venv/bin/python -m pytest")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _prose(text: str) -> str:
    """The page without its fenced code blocks."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in _prose(page.read_text()).splitlines() if line.startswith("#")}


REGIONS = [(page, m["name"]) for page in PAGES for m in doc_tables.REGION.finditer(page.read_text())]


def test_the_pages_hold_generated_tables():
    assert {name for _, name in REGIONS} == set(doc_tables.TABLES), \
        "every table of autograder/staff/doc_tables.py is shown on a page, and only those"


@pytest.mark.parametrize("page, name", REGIONS, ids=[f"{_rel(p)}:{n}" for p, n in REGIONS])
def test_a_generated_table_is_what_its_source_gives_now(page, name):
    body = next(m["body"] for m in doc_tables.REGION.finditer(page.read_text()) if m["name"] == name)
    assert body == doc_tables.TABLES[name](), (
        f"{_rel(page)}: the generated table {name!r} differs from what its source gives now; "
        f"regenerate every table with: {doc_tables.REGENERATE}")


def test_regenerate_replaces_a_stale_table_and_keeps_the_rest():
    text = "before\n<!-- generated: t -->\nold\n<!-- end generated -->\nafter\n"
    assert doc_tables.regenerate(text, {"t": lambda: "new\n"}) == text.replace("old", "new")


def test_a_region_naming_no_table_is_refused():
    with pytest.raises(KeyError, match="known: t"):
        doc_tables.regenerate("<!-- generated: nope -->\n<!-- end generated -->\n", {"t": lambda: ""})


LINKS = [(page, target) for page in PAGES for target in LINK.findall(_prose(page.read_text()))
         if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page, target", LINKS, ids=[f"{_rel(p)}->{t}" for p, t in LINKS])
def test_a_relative_link_points_to_what_exists(page, target):
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{_rel(page)} links to {target}, but {path} does not exist"
    if anchor:
        assert dest.suffix == ".md" and anchor in _anchors(dest), \
            f"{_rel(page)} links to {target}, but {path or _rel(page)} has no heading with the anchor #{anchor}"


def _layout_rows() -> list[tuple[str, str]]:
    section = README.read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `")]
    return [(path.strip().strip("`"), what) for path, what in rows]


def test_the_layout_map_names_only_paths_that_exist():
    missing = []
    for path, what in _layout_rows():
        if not (ROOT / path).exists():
            missing.append(path)
        if path.endswith("/"):
            missing += [f"{path}{name}" for name in re.findall(r"`([\w./-]+\.(?:py|yml|md)|[\w./-]+/)`", what)
                        if not (ROOT / path / name).exists() and not (ROOT / name).exists()]
    assert not missing, f"README.md's layout map names paths that do not exist: {missing}"


def test_the_layout_map_names_every_folder_of_the_harness():
    tracked = subprocess.run(["git", "ls-files", "autograder"], cwd=ROOT, capture_output=True, text=True).stdout
    folders = {"autograder/" + line.split("/")[1] + "/" for line in tracked.splitlines() if line.count("/") >= 2}
    assert folders, "git ls-files found no folder of autograder/"
    named = {path for path, _ in _layout_rows()}
    assert folders <= named, f"README.md's layout map lacks {sorted(folders - named)}"


def test_the_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S)[1]
    assert tuple(block.splitlines()) == COMMANDS
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-2:] == COMMANDS[1].split(" && "), ".ci/run must run the README's test command verbatim"


def test_the_readme_is_an_entry():
    lines = README.read_text().count("\n")
    assert lines <= 150, f"README.md has {lines} lines; move detail to docs/ and link to it"
