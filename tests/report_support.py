"""Reading report.html as a browser would hold it: a small element tree from html.parser, and the
report's numbers recomputed from a regrade folder's files without the report's code."""
from __future__ import annotations

import csv
import json
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

VOID = {"meta", "br", "img", "hr", "input", "link"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: "Node | None"):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str | None = None, **attrs) -> list["Node"]:
        def matches(n: Node) -> bool:
            return (tag is None or n.tag == tag) and all(
                (v in n.attrs.get(k.rstrip("_"), "").split()) if k == "class_" else n.attrs.get(k) == v
                for k, v in attrs.items())
        return [n for n in self.iter() if matches(n)]

    def find(self, tag: str | None = None, **attrs) -> "Node":
        found = self.find_all(tag, **attrs)
        if not found:
            raise LookupError(f"no <{tag}> with {attrs} in the report")
        return found[0]

    def cells(self) -> list[str]:
        return [c.text().strip() for c in self.children if isinstance(c, Node) and c.tag in ("td", "th")]


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#document", {}, None)
        self.order: list[str] = []          # ids of elements, in document order

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if "id" in node.attrs:
            self.order.append(node.attrs["id"])
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if "id" in node.attrs:
            self.order.append(node.attrs["id"])

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(html: str) -> tuple[Node, list[str]]:
    """The document's element tree and the ids of its elements in document order."""
    b = _Builder()
    b.feed(html)
    b.close()
    return b.root, b.order


def report_data(root: Node) -> dict:
    return json.loads(root.find("script", id="report-data").text())


def first_line(output: str) -> str:
    lines = (output or "(no message)").strip().splitlines() or ["(no message)"]
    return lines[0][:160]


def expected_from_files(out: Path, test_ids: list[str]) -> dict[str, dict]:
    """Per test, from the results files alone: graded (not a harness fault), passed, the faults, and
    the failures counted by diagnosis (or by first output line when they carry none)."""
    expected = {t: {"graded": 0, "passed": 0, "faults": [], "groups": {}} for t in test_ids}
    for folder in sorted(out.glob("submission_*")):
        path = folder / "results.json"
        if not path.is_file():
            continue
        sid = folder.name.removeprefix("submission_")
        for t in json.loads(path.read_text())["tests"]:
            extra = t.get("extra_data") or {}
            e = expected.get(extra.get("test_id"))
            if e is None:
                continue
            if extra.get("harness_fault"):
                e["faults"].append(sid)
                continue
            e["graded"] += 1
            e["passed"] += t["status"] == "passed"
            if t["status"] != "passed":
                key = ("diagnosis", extra["diagnosis"]) if extra.get("diagnosis") else \
                    ("first output line", first_line(t.get("output", "")))
                e["groups"].setdefault(key, set()).add(sid)
    return expected


def csv_columns(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {name: [r[name] for r in rows] for name in rows[0]} if rows else {}


def counts(groups: dict) -> Counter:
    return Counter({key: len(ids) for key, ids in groups.items()})
