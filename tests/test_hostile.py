"""Hostile names (fixtures/hostile.py): a real qemu-storage-daemon 10.0 whose file names and
NBD export names hold quotes, backslashes, a newline, escape sequences, `<script>`, braces,
graphviz HTML-label syntax and bytes that are not UTF-8. DOT stays valid and renders, the
SVG and the HTML page carry no markup from the core, JSON round-trips the exact names, and
text for the terminal (CLI and gdb) holds no control character from the core."""

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gdbrun import run_gdb

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))
import hostile  # noqa: E402

RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
SVG_TAGS = {"svg", "g", "title", "polygon", "polyline", "path", "ellipse", "text", "a"}


@pytest.fixture(scope="module")
def core(qemu_builds, tmp_path_factory):
    return hostile.make(tmp_path_factory.mktemp("hostile"), qemu_builds["10.0"])


def cli(core, *args, text=True):
    r = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", args[0],
                        core["core"], "-e", core["exe"], *map(str, args[1:])], cwd=ROOT,
                       capture_output=True, timeout=600, env=dict(os.environ, NO_COLOR="1"))
    assert r.returncode == 0, r.stderr   # complete: hostile names are still read whole
    return r.stdout.decode("utf-8") if text else r.stdout


def test_json_round_trips_the_names(core):
    graph = json.loads(cli(core, "block-graph", "--json"))
    names = {n["name"]: n["filename"] for n in graph["nodes"] if n["type"] == "block-driver"}
    for node, path in core["filenames"].items():
        # Bytes that are not UTF-8 come as \\xNN (the walkers' backslashreplace).
        want = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        assert names[node] == want
    jobs = json.loads(cli(core, "jobs", "--json"))
    assert [j["id"] for j in jobs["jobs"]] == core["jobs"]
    qmp = json.loads(cli(core, "block-graph", "-f", "qmp-json"))
    assert sorted(n["name"] for n in qmp["nodes"]) == sorted(n["name"] for n in core["graph"]["nodes"])


def test_dot_is_valid_and_svg_has_no_injected_markup(core, tmp_path):
    dot = cli(core, "block-graph", "-f", "dot")
    r = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, timeout=60)
    assert r.returncode == 0 and b"syntax error" not in r.stderr, r.stderr
    root = ET.fromstring(r.stdout)
    tags = {el.tag.split("}")[-1] for el in root.iter()}
    assert tags <= SVG_TAGS, tags - SVG_TAGS
    text = "\n".join(el.text or "" for el in root.iter() if el.tag.endswith("text"))
    assert "<script>alert(1)</script>" in text and "<<b>x</b>>" in text and "{brace}" in text
    assert "\x1b" not in text and "\\x1b[31mred" in text
    svg = cli(core, "block-graph", "-f", "svg", "-o", tmp_path / "g.svg")
    assert svg == ""
    assert {el.tag.split("}")[-1] for el in ET.parse(tmp_path / "g.svg").iter()} <= SVG_TAGS


class Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.data = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.data.append(data)


def test_html_report_has_no_injected_markup(core, tmp_path):
    page = tmp_path / "report.html"
    cli(core, "report", "--html", page)
    parser = Tags()
    parser.feed(page.read_text(encoding="utf-8"))
    assert "script" not in parser.tags and "b" not in parser.tags
    data = "".join(parser.data)
    assert "<script>alert(1)</script>" in data and "<<b>x</b>>" in data
    assert not RAW_CONTROL.search(data.replace("\n", "").replace("\t", ""))


def test_terminal_text_has_no_control_characters(core):
    for command in ("block-graph", "jobs", "report", "bt"):
        out = cli(core, command)
        assert not RAW_CONTROL.search(out), (command, RAW_CONTROL.search(out))
    out = cli(core, "block-graph")
    assert "<script>alert(1)</script>" in out and "\\x1b[31mred" in out and "\\xff\\xfe" in out
    gdb_out, err = run_gdb([core["exe"], core["core"]],
                           ["qemu block-graph", "qemu jobs", "qemu report"])
    for text in gdb_out:
        assert not RAW_CONTROL.search(text.replace("\n", "")), RAW_CONTROL.search(text)
    assert "\\x1b[31mred" in gdb_out[0] and "mirror.hostile_1" in gdb_out[1]
