"""`report --html`: the report as one self-contained page to read in a browser. A table of
contents; every thread's and coroutine's stack collapsible (<details>, no JavaScript);
source lines highlighted where the sources are found; the block graph's SVG inline, each
node linking to its details; jobs and tracked requests linking to their coroutines. Built
from the records; everything from the core is escaped."""

import html
import os
from dataclasses import dataclass, field

from qemugdb.walkers import block, census, coroutine
from qemugdb.render.block import parent_names, render_graph_dot
from qemugdb.render.coroutine import coroutine_header, location_text
from qemugdb.render.table import Shown, absent_notes, cell, error_text, hexa, visible
from qemugdb.walkers.report import source_lines
from qemugdb.target import MissingDebugInfo, TargetError

from . import highlight

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 84em; padding: 1em 2em;
       color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; word-break: break-all; }
h2 { border-bottom: 2px solid #d0d7de; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
nav.toc { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px;
          padding: 0.4em 1.5em; }
nav.toc ol { columns: 3; column-gap: 3em; margin: 0.3em 0 0.5em; }
nav.toc h2 { border: 0; margin: 0.4em 0; font-size: 1.1em; }
a { color: #0550ae; text-decoration: none; }
a:hover { text-decoration: underline; }
code, pre, .mono, .stack { font-family: ui-monospace, "DejaVu Sans Mono", monospace;
                           font-size: 13px; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.4em 0 1em; font-size: 0.88em; }
th, td { border: 1px solid #d0d7de; padding: 0.2em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; }
td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { text-align: right; background: none; border: 0; color: #57606a; }
table.facts td { border: 0; overflow-wrap: anywhere; }
tr.crashed td { background: #ffebe9; }
.diagnosis { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px;
             padding: 0.6em 1em; }
.error { color: #cf222e; }
.note { color: #57606a; font-size: 0.92em; }
details { margin: 0.25em 0; }
details > summary { cursor: pointer; }
details.thread, details.coroutine { border: 1px solid #d0d7de; border-radius: 6px;
                                    padding: 0.3em 0.8em; }
details.thread[open], details.coroutine[open] { background: #fbfcfd; }
details.thread > summary, details.coroutine > summary { padding: 0.1em 0; }
details.crashed { border-color: #cf222e; }
.role { font-weight: 600; }
.stack { margin: 0.4em 0; }
.stack .frame { padding-left: 1.2em; white-space: pre-wrap; }
.stack details.frame { padding-left: 0; }
.stack details.frame > summary { padding-left: 0.1em; }
.lvl { color: #57606a; display: inline-block; min-width: 2.5em; }
.pc { color: #8250df; }
.fn { color: #953800; font-weight: 600; }
.src { margin: 0.2em 0 0.3em 2.5em; }
.nowrap { white-space: nowrap; }
.src pre { margin: 0; padding: 0.3em 0.6em; border-radius: 4px; }
.graph { overflow-x: auto; border: 1px solid #d0d7de; border-radius: 6px; padding: 0.5em; }
.graph svg { max-width: 100%; height: auto; }
.node { border-left: 4px solid #d0d7de; padding: 0.1em 1em; margin: 1em 0; }
.node h4 { margin: 0.3em 0; }
.node td { white-space: nowrap; }
dl.kv { display: grid; grid-template-columns: max-content 1fr max-content 1fr;
        gap: 0.1em 1em; margin: 0.3em 0; }
dl.kv dt { color: #57606a; }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.node.busy { border-left-color: #fb8500; }
.node.drained { border-left-color: #54aeff; }
:target { outline: 3px solid #fb8500; outline-offset: 2px; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}{code_style}</style></head><body>
<h1>{title}</h1>
{toc}
{body}
</body></html>
"""


def e(value):
    """Text from the core as HTML: control characters shown as \\xNN, markup escaped."""
    if isinstance(value, (list, tuple)) and value:
        value = ", ".join(map(str, value))
    return html.escape(visible(cell(value)))


def co_id(address):
    return f"co-{address:#x}"


def ctx_id(address):
    return f"ctx-{address:#x}"


def thread_id(num):
    return f"thread-{num}"


# The block graph's objects: the id of each one's details on the page.
GRAPH_IDS = {"backends": "blk", "jobs": "job", "nodes": "node"}


# ---------------------------------------------------------------- what the page adds

@dataclass
class Details:
    """What the page shows beyond the Report's records: every thread's stack, every
    coroutine, every block node in detail, and what of those could not be read."""
    threads: list = field(default_factory=list)      # coroutine.ThreadBacktrace
    coroutines: list = field(default_factory=list)   # coroutine.CoroutineRecord (not pooled)
    nodes: dict = field(default_factory=dict)        # address -> block.NodeDetail
    partial: list = field(default_factory=list)


def details(target, rep):
    """Details of the core the Report `rep` was made of."""
    d = Details()
    try:
        d.threads = coroutine.backtraces(target, target.threads())
    except TargetError as e:
        d.partial.append(f"Thread stacks: {e}")
    try:
        found = census.all_coroutines(target, pooled=False)
        d.coroutines = found.coroutines
        d.partial += [f"Coroutines: {error}" for error in found.errors]
    except MissingDebugInfo:
        pass  # not QEMU's coroutines: the report says what the program lacks
    except TargetError as e:
        d.partial.append(f"Coroutines: {e}")
    graph = rep.sections.get("Block graph")
    for bs in graph.nodes if graph else ():
        try:
            d.nodes[bs.address] = block.node_detail(target, f"{bs.address:#x}")
        except TargetError as e:
            d.partial.append(f"Node {bs.node_name} ({bs.address:#x}): {e}")
    return d


# ---------------------------------------------------------------- pieces

class Page:
    """The page being written: the ids it has (links go only to those), its sources."""

    def __init__(self, rep, more, source_dir):
        self.rep, self.more, self.source_dir = rep, more, source_dir
        self.coroutines = {c.address for c in more.coroutines}
        self.threads = {t.num for t in more.threads}
        self.contexts = {c.address: ", ".join(c.names) or f"{c.address:#x}"
                         for c in rep.sections.get("AioContexts") or ()}
        self.graph_ids = graph_ids(rep.sections.get("Block graph"))
        self.requests = {r.address for d in more.nodes.values() for r in d.requests}
        self._sources = {}

    def co_link(self, address):
        if not address:
            return "-"
        text = f"{address:#x}"
        return f'<a href="#{co_id(address)}">{text}</a>' if address in self.coroutines else text

    def request_link(self, address):
        if not address:
            return "-"
        text = f"{address:#x}"
        return f'<a href="#req-{text}">{text}</a>' if address in self.requests else text

    def ctx_link(self, address):
        """A link to the AioContext's row, by its name."""
        if address is None:
            return "-"
        if address not in self.contexts:
            return f"{address:#x}"
        return f'<a href="#{ctx_id(address)}">{e(self.contexts[address])}</a>'

    def thread_link(self, num, text=None):
        text = text or f"thread {num}"
        return f'<a href="#{thread_id(num)}">{text}</a>' if num in self.threads else text

    def graph_link(self, address, names):
        text = e(names.get(address, hexa(address)))
        if address not in self.graph_ids:
            return text
        return f'<a href="#{self.graph_ids[address]}">{text}</a>'

    def source(self, frame):
        """(SourceLines, its highlighted HTML) of the frame's innermost location with a
        source file found, or None; once per pc (coroutines share frames)."""
        if not self.source_dir:
            return None
        if frame.pc not in self._sources:
            found = source_lines([frame], self.source_dir, limit=1)
            self._sources[frame.pc] = (found[0], code(found[0])) if found else None
        return self._sources[frame.pc]

    # ------------------------------------------------------------ stacks

    def stack(self, frames, open_sources=()):
        """Frames as gdb's bt prints them; a frame whose source is found opens to it."""
        lines, level = [], 0
        for frame in frames:
            src, highlighted = self.source(frame) or (None, None)
            for i, loc in enumerate(frame.locations()):
                pc = f'<span class="pc">{frame.pc:#018x}</span> in ' if i == 0 else ""
                where = location_text(loc)[len(loc.function or "??"):]
                line = (f'<span class="lvl">#{level}</span>{pc}<span class="fn">'
                        f'{e(loc.function or "??")}</span>{e(where)}')
                if src is not None and (loc.file, loc.line) == (src.file, src.line):
                    opened = " open" if (src.file, src.line) in open_sources else ""
                    lines.append(f'<details class="frame"{opened}><summary>{line}</summary>'
                                 f'<div class="src">{highlighted}</div></details>')
                else:
                    lines.append(f'<div class="frame">{line}</div>')
                level += 1
        return f'<div class="stack">{"".join(lines)}</div>' if lines else ""

    def thread_body(self, t, open_sources=()):
        """A ThreadBacktrace: its stack, then each coroutine of its co->caller chain."""
        out = [self.stack(t.frames, open_sources)]
        if t.current is not None:
            out.append(f"<p>Running coroutine {self.co_link(t.current.address)}, "
                       f"entry {e(t.current.entry or '?')}</p>")
        for rec in t.callers:
            if rec.state == "leader":
                title = f"Thread stack outside coroutines (leader {rec.address:#x})"
            else:
                title = (f"Coroutine {self.co_link(rec.address)} (caller, entry "
                         f"{e(rec.entry or '?')})")
            body = [self.stack(rec.frames, open_sources)]
            if rec.error:
                body.append(f'<p class="error">{e(error_text(rec.error))}</p>')
            out.append(f'<details class="coroutine" open><summary>{title}</summary>'
                       f'{"".join(body)}</details>')
        if t.error:
            out.append(f'<p class="error">{e(error_text(t.error))}</p>')
        return "".join(out)


def code(src):
    """A SourceLines, highlighted, its line marked."""
    text = "\n".join(line for _, line in src.lines)
    return highlight.html(text, src.file, src.lines[0][0], src.line)


def table(headers, rows, numeric=(), row_attrs=None):
    """An HTML table; cells are HTML already; columns named in `numeric` right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f'<td class="num">{c}</td>' if h in numeric else f"<td>{c}</td>"
                        for h, c in zip(headers, row))
        body.append(f"<tr{row_attrs[i] if row_attrs else ''}>{cells}</tr>")
    return f'<div class="wide"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def notes(lines, cls="note"):
    return "".join(f'<p class="{cls}">{e(line)}</p>' for line in lines)


def error_cell(rec):
    return f' <span class="error">{e(error_text(rec.error))}</span>' if rec.error else ""


# ---------------------------------------------------------------- sections

def process_section(p, rep):
    fault = f" at {rep.fault_address:#x}" if rep.fault_address is not None else ""
    rows = [("program", rep.executable or "?"), ("QEMU", rep.qemu_version or "unknown"),
            ("build-id", rep.build_id or "?"), ("pid", rep.pid if rep.pid is not None else "?"),
            ("signal", f"{rep.signal}{fault}" if rep.signal
             else "none (a snapshot of a running process)")]
    if rep.abort_message:
        rows.append(("abort", rep.abort_message))
    return ('<table class="facts">' + "".join(f"<tr><th>{k}</th><td>{e(v)}</td></tr>"
                                             for k, v in rows) + "</table>")


def focus_section(p, rep):
    bt = rep.focus
    shown = {(s.file, s.line) for s in rep.source}
    return (f"<p>{p.thread_link(bt.num, f'Thread {bt.num}')} (LWP {bt.tid}). A frame "
            f"marked ▸ opens to its source lines.</p>" + p.thread_body(bt, shown))


def threads_section(p, rep):
    roles = {t.num: t for t in rep.threads}
    out = []
    for t in p.more.threads:
        head = f"Thread {t.num} · LWP {t.tid}" + (f" · {e(t.name)}" if t.name else "")
        summary, cls = roles.get(t.num), "thread"
        if summary is not None:
            head += f' · <span class="role">{e(summary.role)}</span>'
            head += f" · {e(summary.where)}" if summary.where else ""
            if summary.crashed:
                head, cls = head + ' · <span class="error">crashed</span>', "thread crashed"
        if t.current is not None:
            head += f" · running coroutine {p.co_link(t.current.address)}"
        out.append(f'<details class="{cls}" id="{thread_id(t.num)}"><summary>{head}</summary>'
                   f"{p.thread_body(t)}</details>")
    return "".join(out)


def coroutines_section(p, rep):
    out = []
    for rec in p.more.coroutines:
        head = e(coroutine_header(rec))
        if rec.suspended_in is not None:
            head += f" · in {e(location_text(rec.suspended_in))}"
        body = [f"<ul>{''.join(f'<li>{e(why)}</li>' for why in rec.waits)}</ul>"]
        if rec.error:
            body.append(f'<p class="error">{e(error_text(rec.error))}</p>')
        if rec.frames:
            body.append(p.stack(rec.frames))
        elif rec.state == "running" and rec.thread is not None:
            body.append(f"<p>Running: its frames are {p.thread_link(rec.thread)}'s own.</p>")
        out.append(f'<details class="coroutine" id="{co_id(rec.address)}"><summary>{head}'
                   f'</summary>{"".join(body)}</details>')
    if not out:
        out.append("<p>No coroutines found.</p>")
    out.append(notes(absent_notes(("Coroutine", p.more.coroutines))))
    return "".join(out)


def contexts_section(p, records):
    rows, ids = [], []
    for r in map(Shown, records):
        threads = ", ".join(p.thread_link(t["num"], f'<span class="nowrap">{t["num"]} '
                                                   f'(LWP {t["tid"]})</span>')
                            for t in r.threads) or "-"
        rows.append([f"{r.address:#x}", e(", ".join(r.names) or "-"), threads, e(r.notify_me),
                     e(r.notified), e(r.poll_disable_cnt), e(r.external_disable_cnt), e(r.bhs),
                     e(r.bhs_pending), e(r.handlers), e(r.timers),
                     e(r.scheduled_coroutines) + error_cell(r)])
        ids.append(f' id="{ctx_id(r.address)}"')
    numeric = ("NOTIFY_ME", "POLL-OFF", "EXT-OFF", "BHS", "PENDING", "HANDLERS", "TIMERS",
               "SCHEDULED")
    return (table(["AIOCONTEXT", "NAME", "THREAD", "NOTIFY_ME", "NOTIFIED", *numeric[1:]],
                  rows, numeric, ids) + notes(absent_notes(("AioContext", records))))


def bhs_section(p, listing):
    rows = [[p.ctx_link(b.ctx), "bh_list" if b.slice is None else f"slice {b.slice}",
             hexa(b.address), e(b.name), e(b.cb_symbol or hexa(b.cb)), hexa(b.opaque),
             e(b.flag_names) + error_cell(b)] for b in map(Shown, listing.items)]
    text = table(["AIOCONTEXT", "LIST", "BH", "NAME", "CALLBACK", "OPAQUE", "FLAGS"],
                 rows) if rows else "<p>No enqueued bottom halves.</p>"
    return (text + notes(listing.errors, "error") + notes(absent_notes(("QEMUBH", listing.items)))
            + notes(f"note: {n}" for n in listing.notes))


def jobs_section(p, result):
    rows, ids = [], []
    for j in map(Shown, result.jobs):
        where = e(location_text(j.suspended_in) if j.suspended_in is not None
                  else j.co_error or j.co_note or "")
        rows.append([e(j.id), e(j.type), e(j.status), e(j.current), e(j.total), e(j.speed),
                     e(j.busy), e(j.paused), p.ctx_link(j.aio_context), p.co_link(j.co), where,
                     hexa(j.address) + error_cell(j)])
        ids.append(f' id="job-{j.address:#x}"')
    text = table(["ID", "TYPE", "STATUS", "CURRENT", "TOTAL", "SPEED", "BUSY", "PAUSED",
                  "AIOCONTEXT", "COROUTINE", "SUSPENDED IN", "JOB"], rows,
                 ("CURRENT", "TOTAL", "SPEED"), ids) if rows else "<p>No jobs.</p>"
    if result.error:
        text += f'<p class="error">{e(error_text(result.error))}</p>'
    return text + notes(absent_notes(("Job", result.jobs)))


def graph_section(p, graph, svg):
    names = parent_names(graph)
    out = []
    if svg:
        text = svg.decode("utf-8")
        # The <svg> element alone: no XML prolog or DOCTYPE, no namespace URLs (HTML
        # gives inline SVG its namespace).
        text = text[text.find("<svg"):]
        text = text.replace(' xmlns="http://www.w3.org/2000/svg"', "", 1)
        text = text.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "", 1)
        out.append('<p class="note">Click a node for its details.</p>'
                   f'<div class="graph">{text}</div>')
    rows, ids = [], []
    for blk in map(Shown, graph.backends):
        rows.append([e(blk.name or "-"), e(blk.device), p.graph_link(blk.root_node, names),
                     p.ctx_link(blk.aio_context), e(blk.perm),
                     e(blk.shared_perm), e(blk.in_flight), e(blk.quiesce_counter),
                     hexa(blk.address) + error_cell(blk)])
        ids.append(f' id="blk-{blk.address:#x}"')
    if rows:
        out.append("<h3>BlockBackends</h3>" + table(
            ["NAME", "DEVICE", "ROOT", "AIOCONTEXT", "PERM", "SHARED", "IN-FLIGHT", "QUIESCE",
             "ADDRESS"], rows, ("IN-FLIGHT", "QUIESCE"), ids))
    out.append("<h3>Nodes</h3>")
    for bs in graph.nodes:
        out.append(node_details(p, bs, p.more.nodes.get(bs.address), names))
    if graph.errors:
        out.append(notes(graph.errors, "error"))
    return "".join(out)


def node_details(p, raw, detail, names):
    """A block node: its state, edges, tracked requests and the coroutines behind them."""
    bs = Shown(raw)
    cls = "node busy" if bs.in_flight else "node drained" if bs.quiesce_counter else "node"
    head = f'<h4>{e(bs.node_name)} <span class="note">{e(bs.driver)} · {bs.address:#x}</span></h4>'
    facts = [("filename", e(bs.filename)),
             ("AioContext", p.ctx_link(raw.aio_context)),
             ("in flight", e(bs.in_flight)), ("quiesce counter", e(bs.quiesce_counter)),
             ("refcnt", e(bs.refcnt)), ("read-only", e(bs.read_only)),
             ("children", ", ".join(f"{e(c.name)} → {p.graph_link(c.child, names)}"
                                     for c in raw.children or ()) or "-")]
    if detail is not None:
        facts.append(("parents", ", ".join(f"{p.graph_link(c.parent, names)} ({e(c.name)})"
                                           for c in detail.parents or ()) or "-"))
    facts.append(("open flags", e(bs.open_flag_names)))
    out = [f'<div class="{cls}" id="{p.graph_ids[raw.address]}">{head}<dl class="kv">'
           + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"]
    if raw.error:
        out.append(f'<p class="error">{e(error_text(raw.error))}</p>')
    if detail is not None and (detail.requests or detail.request_error):
        rows = [[e(r.type), e(r.offset), e(r.bytes), e(r.serialising), p.co_link(r.co),
                 p.request_link(r.waiting_for),
                 e(location_text(r.suspended_in)) if r.suspended_in else e(r.co_error or r.co_note or ""),
                 hexa(r.address) + error_cell(r)] for r in map(Shown, detail.requests)]
        ids = [f' id="req-{r.address:#x}"' for r in detail.requests]
        out.append(f"<details open><summary>{len(rows)} tracked requests</summary>" + table(
            ["TYPE", "OFFSET", "BYTES", "SERIALISING", "COROUTINE", "WAITING-FOR",
             "SUSPENDED IN", "REQUEST"], rows, ("OFFSET", "BYTES"), ids) + "</details>")
        if detail.request_error:
            out.append(f'<p class="error">{e(error_text(detail.request_error))}</p>')
    elif detail is not None:
        out.append('<p class="note">No tracked requests.</p>')
    out.append("</div>")
    return "".join(out)


SECTIONS = {"AioContexts": ("aio", contexts_section), "Pending bottom halves": ("bhs", bhs_section),
            "Jobs": ("jobs", jobs_section)}


def page(rep, more, svg, source_dir=None):
    """The HTML page of Report `rep`, its Details `more` and the block graph's SVG (bytes
    or None)."""
    p = Page(rep, more, source_dir)
    parts = []   # (id, title, html)
    if rep.diagnosis:
        parts.append(("diagnosis", "Diagnosis", f'<p class="diagnosis">{e(rep.diagnosis)}</p>'))
    parts.append(("process", "Process", process_section(p, rep)))
    if rep.focus is not None:
        parts.append(("focus", f"{rep.focus_why} {rep.focus.num}", focus_section(p, rep)))
    parts.append(("threads", "Threads", threads_section(p, rep)))
    for title, records in rep.sections.items():
        if title == "Block graph":
            parts.append(("block-graph", title, graph_section(p, records, svg)))
        else:
            ident, section = SECTIONS[title]
            parts.append((ident, title, section(p, records)))
    if more.coroutines:   # last: a long list the other sections link into
        parts.append(("coroutines", "Coroutines", coroutines_section(p, rep)))
    if rep.not_applicable:
        parts.append(("not-applicable", "Not in this program", notes(rep.not_applicable)))
    if rep.partial or more.partial:
        parts.append(("partial", "Partial: some items could not be read",
                      notes(rep.partial + more.partial, "error")))
    toc = ('<nav class="toc"><h2>Contents</h2><ol>'
           + "".join(f'<li><a href="#{i}">{e(title)}</a></li>' for i, title, _ in parts)
           + "</ol></nav>")
    body = "\n".join(f'<section id="{i}"><h2>{e(title)}</h2>{content}</section>'
                     for i, title, content in parts)
    title = e(f"QEMU core report: {os.path.basename(rep.executable or 'unknown program')}")
    return PAGE.format(title=title, style=STYLE, code_style=highlight.css(), toc=toc, body=body)


def graph_ids(graph):
    """{address: id on the page} of the block graph's backends, jobs and nodes."""
    return {rec.address: f"{prefix}-{rec.address:#x}"
            for kind, prefix in GRAPH_IDS.items() for rec in getattr(graph, kind, ())}


def graph_dot(graph):
    """The block graph's DOT, each object linking to its details on the page."""
    return render_graph_dot(graph, links={a: f"#{i}" for a, i in graph_ids(graph).items()})
