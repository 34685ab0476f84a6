"""`report --html` in a real browser: headless Chromium (Debian's) loads the page of a real
fixture core and the DOM it builds has the table of contents and its sections, a
collapsible stack per thread (gdb's threads and innermost functions), highlighted source
lines equal to the source files', the block graph's SVG whose node links reach each node's
details (QMP's nodes), and the jobs (QMP's) linking to their coroutines. The page loads
nothing from outside and has no script."""

import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

import builds
from oracle import fixture_core, gdb_bt, qmp

pytestmark = pytest.mark.slow
CORES = ("qsd-10.0-kernel", "system-10.0-gcore")
VOID = {"meta", "br", "img", "input", "link", "hr", "wbr", "col", "source"}


class Element:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def iter(self, tag=None):
        for child in self.children:
            if isinstance(child, Element):
                if tag is None or child.tag == tag:
                    yield child
                yield from child.iter(tag)

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def classes(self):
        return self.attrs.get("class", "").split()

    def href(self):
        return self.attrs.get("href") or self.attrs.get("xlink:href")


class Tree(HTMLParser):
    """The DOM as Chromium serialised it, as Elements."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = self.node = Element("#document", {}, None)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs, self.node)
        self.node.children.append(element)
        if tag not in VOID:
            self.node = element

    def handle_startendtag(self, tag, attrs):
        self.node.children.append(Element(tag, attrs, self.node))

    def handle_endtag(self, tag):
        node = self.node
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.node = node.parent

    def handle_data(self, data):
        self.node.children.append(data)


def chromium_dom(page):
    """The DOM headless Chromium builds from the page, serialised (--dump-dom)."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: fixtures/deps.sh installs it"
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                            "--dump-dom", page.as_uri()],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "<body" in r.stdout, r.stderr[-2000:]
    return r.stdout


@pytest.fixture(scope="module", params=CORES)
def page(request, tmp_path_factory):
    meta = fixture_core(request.param)
    source_dir = Path(builds.qemu_dir(".".join(meta["qemu_version"].split(".")[:2]))) / "src"
    out = tmp_path_factory.mktemp("page") / "report.html"
    cli = shutil.which("qemu-coredump")
    assert cli, "qemu-coredump is not installed: pip install -e ."
    r = subprocess.run([cli, "report", meta["core"], "-e", meta["exe"], "--source-dir",
                        str(source_dir), "--html", str(out)], capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, NO_COLOR="1"))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr   # complete
    dom = Tree(chromium_dom(out))
    ids = {el.attrs["id"]: el for el in dom.root.iter() if "id" in el.attrs}
    return {"meta": meta, "source": out.read_text(), "dom": dom, "ids": ids,
            "source_dir": source_dir}


def target(page, link):
    """The element a same-page link points to (it must exist)."""
    href = link.href()
    assert href and href.startswith("#"), href
    assert href[1:] in page["ids"], f"link {href} to no element"
    return page["ids"][href[1:]]


def test_self_contained_without_script(page):
    text = page["source"]
    assert not re.search(r"https?://", text), "the page refers to the network"
    assert not re.search(r"<(script|link|iframe|img|object|embed)\b", text, re.I)
    assert not re.search(r"\s(src|srcset)\s*=", text, re.I)
    ids = [el.attrs["id"] for el in page["dom"].root.iter() if "id" in el.attrs]
    assert len(ids) == len(set(ids)), "an id twice: a link would be ambiguous"


def test_contents_list_every_section(page):
    toc = [el for el in page["dom"].root.iter("nav") if "toc" in el.classes()]
    assert len(toc) == 1
    links = list(toc[0].iter("a"))
    sections = [target(page, a) for a in links]
    assert all(s.tag == "section" for s in sections)
    assert [s.attrs["id"] for s in sections] == \
        [s.attrs["id"] for s in page["dom"].root.iter("section")]   # all, in order
    titles = [a.text() for a in links]
    for title in ("Process", "Threads", "Coroutines", "AioContexts", "Jobs", "Block graph"):
        assert title in titles, titles
    for a, section in zip(links, sections):
        assert next(section.iter("h2")).text() == a.text()


def test_a_collapsible_stack_per_thread(page):
    """One <details> per thread of gdb's `thread apply all bt`, its summary first, and
    the innermost function gdb names on the thread's stack in it."""
    gdb = gdb_bt(page["meta"])
    threads = page["ids"]
    for num, frames in gdb.items():
        details = threads.get(f"thread-{num}")
        assert details is not None and details.tag == "details", num
        assert next(iter(details.iter())).tag == "summary"
        stack = [s for s in details.iter("div") if "stack" in s.classes()]
        assert stack, f"thread {num} has no stack"
        names = [el.text() for el in stack[0].iter("span") if "fn" in el.classes()]
        first = next((f for f, _ in frames if f and f != "<signal>"), None)
        assert first in names if first else set(names) <= {"??"}, (num, first, names[:5])
    assert len([d for d in page["dom"].root.iter("details") if "thread" in d.classes()]) \
        == len(gdb)


def test_source_lines_are_highlighted_from_the_files(page):
    """The marked line of each source block is that line of the file the frame names."""
    focus = page["ids"].get("focus")
    assert focus is not None
    blocks = [d for d in focus.iter("details") if "frame" in d.classes() and "open" in d.attrs]
    assert blocks, "no source shown for the focus thread"
    for block in blocks:
        where = next(block.iter("summary")).text()
        file, line = re.search(r" at (\S+):(\d+)$", where).groups()
        code = [d for d in block.iter("div") if "highlight" in d.classes()]
        assert code and any(s.classes()[:1] in (["k"], ["n"]) for s in code[0].iter("span"))
        marked = [s for s in code[0].iter("span") if "hll" in s.classes()]
        assert len(marked) == 1
        text = "".join(c if isinstance(c, str) else c.text() for c in marked[0].children
                       if isinstance(c, str) or "linenos" not in c.classes())
        parts = [p for p in file.split("/") if p not in ("", ".", "..")]
        path = next(page["source_dir"].joinpath(*parts[i:]) for i in range(len(parts))
                    if page["source_dir"].joinpath(*parts[i:]).is_file())
        assert text.rstrip("\n") == path.read_text(errors="replace").splitlines()[int(line) - 1]


def test_graph_nodes_link_to_their_details(page):
    """Every object of QMP's x-debug-query-block-graph is a link in the SVG, to details
    naming it (block nodes: their node-name and AioContext; in flight, tracked requests)."""
    graph = qmp(page["meta"], "x-debug-query-block-graph")
    section = page["ids"]["block-graph"]
    svg = next(section.iter("svg"))
    links = [a for a in svg.iter("a")]
    by_kind = {}
    for a in links:
        el = target(page, a)
        by_kind.setdefault(el.attrs["id"].split("-", 1)[0], []).append(el)
    nodes = by_kind.get("node", [])
    names = sorted(next(el.iter("h4")).children[0].strip() for el in nodes)
    assert names == sorted(n["name"] for n in graph["nodes"] if n["type"] == "block-driver")
    assert len(by_kind.get("job", [])) == sum(n["type"] == "block-job" for n in graph["nodes"])
    assert len(by_kind.get("blk", [])) == sum(n["type"] == "block-backend" for n in graph["nodes"])
    for el in nodes:
        facts = dict(zip((dt.text() for dt in el.iter("dt")), (dd for dd in el.iter("dd"))))
        assert {"AioContext", "in flight", "children", "parents"} <= facts.keys()
        ctx = list(facts["AioContext"].iter("a"))
        assert ctx and target(page, ctx[0]).tag == "tr"   # the AioContexts table's row
    for el in nodes:   # tracked requests: the coroutines behind them, the requests they wait for
        for table in el.iter("table"):
            for a in table.iter("a"):
                to = target(page, a)
                if a.href().startswith("#co-"):
                    assert to.tag == "details" and "coroutine" in to.classes()
                else:
                    assert a.href().startswith("#req-") and to.tag == "tr"


def test_jobs_link_to_their_coroutines(page):
    jobs = qmp(page["meta"], "query-jobs")
    assert jobs
    rows = {next(r.iter("td")).text(): r for r in page["ids"]["jobs"].iter("tr")
            if r.attrs.get("id", "").startswith("job-")}
    assert sorted(rows) == sorted(j["id"] for j in jobs)
    for job in jobs:
        links = [a for a in rows[job["id"]].iter("a") if a.href().startswith("#co-")]
        assert len(links) == 1, job["id"]
        co = target(page, links[0])
        assert co.tag == "details" and "coroutine" in co.classes()
        assert next(co.iter("summary")).text().split()[1] == links[0].text()
