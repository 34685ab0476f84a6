"""Block graph, node, job and IOThread renderers: text tables, our JSON, DOT.

Our JSON schema for the block graph (`--format json`), addresses as "0x..." strings:
  {"nodes": [{"id", "type": "block-driver"|"block-backend"|"block-job", "name", ...state}],
   "edges": [{"id", "parent", "child", "name", "role", "perm", "shared_perm", "frozen"}],
   "aio_contexts": [{"id", "name"}], "permission_source", "errors": [...]}
Permissions use QMP's spelling (BlockPermission); roles are BDRV_CHILD_* lower-cased.
"""

import json

from .coroutine import frames_text, location_text
from .table import (NA, Shown, absent_notes, blank, error_text, errors_text, hexa, section, table,
                    visible)

NODE_SHAPES = {"block-backend": "house", "block-job": "parallelogram", "block-driver": "box"}


def _a(value):
    return None if value is None else f"{value:#x}"


def parent_names(graph):
    """{address: display name} of every graph object (nodes, backends, jobs)."""
    names = {}
    for bs in graph.nodes:
        names[bs.address] = bs.node_name or f"<node {bs.address:#x}>"
    for blk in graph.backends:
        names[blk.address] = (f"backend {blk.name}" if blk.name else
                              f"backend <{blk.device or hex(blk.address)}>")
    for job in graph.jobs:
        names[job.address] = f"job {job.id}"
    return names


def _edges(graph):
    """(parent address, parent type, Child) for every edge, in QMP's walk order."""
    for blk in graph.backends:
        if blk.child is not None:
            yield blk.address, "block-backend", blk.child
    for job in graph.jobs:
        for c in job.children or ():
            yield job.address, "block-job", c
    for bs in graph.nodes:
        for c in bs.children or ():
            yield bs.address, "block-driver", c


# ---------------------------------------------------------------- JSON

def _with_absent(obj, rec, keys=None):
    """obj, the JSON node or edge made of rec, with `absent`: rec.absent spelled as obj's
    keys (`keys` maps the fields obj spells otherwise; fields obj does not show are left
    out, e.g. an edge's parent, which comes from the walk)."""
    spelled = (keys or {}).get
    obj["absent"] = list(dict.fromkeys(k for k in (spelled(n, n) for n in rec.absent)
                                       if k in obj))
    return obj


def graph_plain(graph):
    ctx = graph.aio_contexts
    nodes = []
    for blk in graph.backends:
        nodes.append(_with_absent({
            "id": _a(blk.address), "type": "block-backend", "name": blk.name,
            "device": blk.device, "root": _a(blk.root_node), "aio_context": _a(blk.aio_context),
            "refcnt": blk.refcnt, "perm": blk.perm, "shared_perm": blk.shared_perm,
            "in_flight": blk.in_flight, "quiesce_counter": blk.quiesce_counter,
            "error": blk.error}, blk, {"root_node": "root"}))
    for job in graph.jobs:
        nodes.append(_with_absent({
            "id": _a(job.address), "type": "block-job", "name": job.id, "job_type": job.type,
            "aio_context": _a(job.aio_context), "error": job.error},
            job, {"id": "name", "type": "job_type"}))
    for bs in graph.nodes:
        nodes.append(_with_absent({
            "id": _a(bs.address), "type": "block-driver", "name": bs.node_name,
            "driver": bs.driver, "filename": bs.filename, "aio_context": _a(bs.aio_context),
            "refcnt": bs.refcnt, "open_flags": bs.open_flag_names, "read_only": bs.read_only,
            "in_flight": bs.in_flight, "quiesce_counter": bs.quiesce_counter,
            "tracked_requests": bs.tracked_requests, "implicit": bs.implicit,
            "in_graph": bs.in_graph, "error": bs.error},
            bs, {"node_name": "name", "open_flag_names": "open_flags"}))
    edges = [_with_absent({
        "id": _a(c.address), "parent": _a(parent), "child": _a(c.child), "name": c.name,
        "role": c.role, "perm": c.perm, "shared_perm": c.shared_perm, "frozen": c.frozen,
        "error": c.error}, c, {"parent": None})
        for parent, _, c in _edges(graph)]
    return {"nodes": nodes, "edges": edges,
            "aio_contexts": [{"id": _a(a), "name": n} for a, n in ctx.items()],
            "permission_source": graph.permission_source,
            "open_flags_source": graph.open_flags_source, "errors": graph.errors}


def render_graph_json(graph, args=None):
    return json.dumps(graph_plain(graph), indent=2)


# ---------------------------------------------------------------- text

def _ctx(graph, address):
    if address is None:
        return None
    return graph.aio_contexts.get(address, f"{address:#x}")


def render_graph_text(graph, args=None):
    names = parent_names(graph)
    out = [f"Block graph: {len(graph.nodes)} nodes, {len(graph.backends)} backends, "
           f"{len(graph.jobs)} block jobs"]
    rows = [[blk.name or blank(blk.name), blk.device,
             names.get(blk.root_node, hexa(blk.root_node)), _ctx(graph, blk.aio_context),
             blk.perm, blk.shared_perm, blk.in_flight, blk.quiesce_counter,
             hexa(blk.address) + (" " + error_text(blk.error) if blk.error else "")]
            for blk in map(Shown, graph.backends)]
    out.append(section("BlockBackends:", rows and table(
        ["NAME", "DEVICE", "ROOT", "AIOCONTEXT", "PERM", "SHARED", "IN-FLIGHT", "QUIESCE",
         "ADDRESS"], rows, "  ", right=("IN-FLIGHT", "QUIESCE"))))
    rows = [[job.id, job.type, NA if job.children is NA else len(job.children),
             hexa(job.address) + (" " + error_text(job.error) if job.error else "")]
            for job in map(Shown, graph.jobs)]
    out.append(section("Block jobs:", rows and table(
        ["ID", "TYPE", "EDGES", "ADDRESS"], rows, "  ")))
    rows = []
    for bs in map(Shown, graph.nodes):
        mark = []
        if bs.in_flight:
            mark.append("in flight")
        if bs.quiesce_counter:
            mark.append("drained")
        if bs.implicit:
            mark.append("implicit")
        if not bs.in_graph:
            mark.append("not on graph_bdrv_states")
        if bs.error:
            mark.append(error_text(bs.error))
        rows.append([bs.node_name, bs.driver, _ctx(graph, bs.aio_context), bs.refcnt,
                     bs.read_only, bs.in_flight, bs.quiesce_counter, bs.tracked_requests,
                     hexa(bs.address), " ".join(mark), bs.filename])
    out.append(section("Nodes:", rows and table(
        ["NODE", "DRIVER", "AIOCONTEXT", "REF", "RO", "IN-FLIGHT", "QUIESCE", "REQS",
         "ADDRESS", "STATE", "FILENAME"], rows, "  ",
        right=("REF", "IN-FLIGHT", "QUIESCE", "REQS"))))
    rows = [[names.get(parent, hexa(parent)), c.name, names.get(c.child, hexa(c.child)),
             c.role, c.perm, c.shared_perm, error_text(c.error)]
            for parent, c in ((parent, Shown(c)) for parent, _, c in _edges(graph))]
    out.append(section("Edges (parent -> child):", rows and table(
        ["PARENT", "CHILD-NAME", "CHILD", "ROLE", "PERM", "SHARED", ""], rows, "  ")))
    notes = []
    if graph.permission_source != "debug info":
        notes.append(f"permission bits from {graph.permission_source}")
    notes.append(f"open flags from {graph.open_flags_source}")
    notes += absent_notes(("BlockBackend", graph.backends), ("BlockJob", graph.jobs),
                    ("BlockDriverState", graph.nodes),
                    ("BdrvChild", [c for _, _, c in _edges(graph)]))
    out.append("Notes: " + "; ".join(notes))
    if graph.errors:
        out.append(errors_text(graph.errors))
    return "\n\n".join(out)


def _none(value):
    """What an empty section says: n/a when its list is absent, else (none)."""
    return str(NA) if value is NA else "(none)"


def render_node_text(detail, args=None):
    bs, more = Shown(detail.node), Shown(detail)
    lines = [f"Node {'?' if bs.node_name is None else bs.node_name} ({bs.address:#x})"]
    flags = hexa(bs.open_flags) + (f" {','.join(bs.open_flag_names)}" if bs.open_flag_names else "")
    fields = [("driver", bs.driver), ("filename", bs.filename),
              ("aio_context", hexa(bs.aio_context)), ("refcnt", bs.refcnt),
              ("open_flags", flags),
              ("read_only", bs.read_only), ("in_flight", bs.in_flight),
              ("quiesce_counter", bs.quiesce_counter), ("backing", hexa(more.backing)),
              ("file", hexa(more.file))]
    lines += [f"  {k + ':':<17}{'-' if v is None else v}" for k, v in fields]
    if bs.error:
        lines.append("  " + error_text(bs.error))
    rows = [[c.name, hexa(c.child), c.role, c.perm, c.shared_perm]
            for c in map(Shown, detail.node.children or ())]
    lines.append(section("Children:", rows and table(
        ["NAME", "CHILD", "ROLE", "PERM", "SHARED"], rows, "  "), _none(bs.children)))
    rows = [[c.parent_type or blank(c.parent_type, "?"), hexa(c.parent), c.name, c.perm,
             c.shared_perm] for c in map(Shown, detail.parents or ())]
    lines.append(section("Parents:", rows and table(
        ["TYPE", "PARENT", "NAME", "PERM", "SHARED"], rows, "  "), _none(more.parents)))
    rows = [[r.type, r.offset, r.bytes, r.serialising, hexa(r.co), hexa(r.waiting_for),
             hexa(r.address) + (" " + error_text(r.error) if r.error else ""),
             location_text(r.suspended_in) if r.suspended_in else r.co_error or r.co_note]
            for r in map(Shown, detail.requests)]
    body = rows and table(["TYPE", "OFFSET", "BYTES", "SERIALISING", "COROUTINE",
                           "WAITING-FOR", "REQUEST", "SUSPENDED IN"], rows, "  ",
                          right=("OFFSET", "BYTES"))
    if detail.request_error:
        body = (body + "\n" if body else "") + "  " + error_text(detail.request_error)
    lines.append(section("Tracked requests:", body))
    edges = (detail.node.children or []) + (detail.parents or [])
    lines += absent_notes(("BlockDriverState", [detail.node, detail]), ("BdrvChild", edges),
                    ("BdrvTrackedRequest", detail.requests))
    return "\n".join(lines)


def render_jobs_text(result, args=None):
    if not result.jobs:
        return "(no jobs)" + (f"\n{error_text(result.error)}" if result.error else "")
    jobs = list(map(Shown, result.jobs))
    rows = [[j.id, j.type, j.status, j.current, j.total, j.speed, j.busy, j.paused,
             hexa(j.aio_context), hexa(j.co),
             hexa(j.address) + (" " + error_text(j.error) if j.error else "")]
            for j in jobs]
    text = table(["ID", "TYPE", "STATUS", "CURRENT", "TOTAL", "SPEED", "BUSY", "PAUSED",
                  "AIOCONTEXT", "COROUTINE", "JOB"], rows,
                 right=("CURRENT", "TOTAL", "SPEED"))
    for j in jobs:
        if j.suspended_in is not None:
            text += f"\n{j.id}: coroutine {hexa(j.co)} suspended in {location_text(j.suspended_in)}"
        if j.co_error or j.co_note:
            text += f"\n{j.id}: coroutine {hexa(j.co)}: {j.co_error or j.co_note}"
        if j.frames:
            text += "\n" + frames_text(j.frames)
    if result.error:
        text += "\n" + error_text(result.error)
    return "\n".join([text] + absent_notes(("Job", result.jobs)))


def render_iothreads_text(records, args=None):
    if not records:
        return "(no IOThreads)"
    rows = [[r.id, r.thread, r.thread_id, hexa(r.aio_context), r.running,
             "internal" if r.internal else "-",
             hexa(r.address) + (" " + error_text(r.error) if r.error else "")]
            for r in map(Shown, records)]
    text = table(["ID", "THREAD", "LWP", "AIOCONTEXT", "RUNNING", "", "IOTHREAD"], rows,
                 right=("THREAD", "LWP"))
    return "\n".join([text] + absent_notes(("IOThread", records)))


# ---------------------------------------------------------------- DOT

def dot_string(text):
    """A DOT double-quoted string holding `text` literally (escapes \\, ", newlines;
    other control characters shown as \\xNN)."""
    text = "" if text is None else str(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = visible(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\n", "\\n") + '"'


def _dot_id(address):
    return f'"n{address:x}"'


def _short_perm(perms):
    if perms is NA:
        return str(NA)
    abbrev = {"consistent-read": "R", "write": "W", "write-unchanged": "U", "resize": "S"}
    return "".join(abbrev.get(p, f"[{p}]") for p in perms) or "-"


def render_graph_dot(graph, args=None, links=None):
    """The graph as DOT text: shapes by type, AioContexts as clusters, edges labelled
    child name and perm/shared, nodes in flight or drained filled, and a legend.
    links ({address: URL}) makes those nodes links (an SVG's <a>)."""
    links = links or {}

    def url(address):
        return f", URL={dot_string(links[address])}" if address in links else ""

    lines = ["digraph block_graph {", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];']
    members = {}   # context address (or None) -> node lines

    def add(ctx, line):
        members.setdefault(ctx, []).append(line)

    for raw in graph.backends:
        blk = Shown(raw)
        label = f"backend {blk.name}" if blk.name or blk.name is NA else "backend (anonymous)"
        if blk.device:
            label += f"\ndevice {blk.device}"
        add(raw.aio_context, f"{_dot_id(blk.address)} [shape={NODE_SHAPES['block-backend']}, "
                             f"label={dot_string(label)}{url(blk.address)}];")
    for raw in graph.jobs:
        job = Shown(raw)
        add(raw.aio_context, f"{_dot_id(job.address)} [shape={NODE_SHAPES['block-job']}, "
                  f"label={dot_string(f'job {job.id}' + chr(10) + str(job.type))}"
                  f"{url(job.address)}];")
    for raw in graph.nodes:
        bs = Shown(raw)
        label = f"{bs.node_name}\n{bs.driver or blank(bs.driver, '?')}"
        if bs.filename and bs.driver in ("file", "host_device", "host_cdrom"):
            label += f"\n{bs.filename}"
        busy = []
        if bs.in_flight:
            busy.append(f"in_flight={bs.in_flight}")
        if bs.quiesce_counter:
            busy.append(f"quiesce={bs.quiesce_counter}")
        styles, fill = [], ""
        if bs.implicit:
            label += "\n(implicit filter)"
            styles.append("dashed")
        if busy:
            label += "\n" + " ".join(busy)
            styles.append("filled")
            fill = f', fillcolor="{"orange" if bs.in_flight else "lightblue"}"'
        style = f', style="{",".join(styles)}"{fill}' if styles else ""
        if bs.error:
            label += "\n" + error_text(bs.error)
        add(raw.aio_context, f"{_dot_id(bs.address)} [shape={NODE_SHAPES['block-driver']}, "
                            f"label={dot_string(label)}{style}{url(bs.address)}];")
    for i, (ctx, node_lines) in enumerate(members.items()):
        if ctx is None:
            lines += [f"  {line}" for line in node_lines]
            continue
        name = graph.aio_contexts.get(ctx, "AioContext")
        lines.append(f"  subgraph cluster_ctx{i} {{")
        lines.append(f"    label={dot_string(f'{name} (AioContext {ctx:#x})')};")
        lines.append('    style=dashed; color="gray40";')
        lines += [f"    {line}" for line in node_lines]
        lines.append("  }")
    for parent, _, c in _edges(graph):
        if c.child is None:
            continue
        c = Shown(c)
        label = f"{c.name}\n{_short_perm(c.perm)} / {_short_perm(c.shared_perm)}"
        if c.error:
            label += "\n" + error_text(c.error)
        lines.append(f"  {_dot_id(parent)} -> {_dot_id(c.child)} [label={dot_string(label)}];")
    legend = ("Legend\nhouse: BlockBackend\nparallelogram: block job\nbox: block node\n"
              "edge: child name, perm / shared perm\nR consistent-read, W write,\n"
              "U write-unchanged, S resize\norange: requests in flight\n"
              "light blue: drained (quiesce_counter > 0)\ndashed node: implicit filter\n"
              "dashed box: AioContext")
    lines.append("  subgraph cluster_legend {")
    lines.append('    label=""; style=solid; color="gray70";')
    lines.append(f"    legend [shape=note, label={dot_string(legend)}];")
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
