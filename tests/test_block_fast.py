"""Block graph, jobs, renderers against a MockTarget: a small graph built from bytes and
hand-made types (QEMU's names, our own layouts), QMP's id assignment and ordering, inline
errors for unreadable and cyclic structures, DOT escaping."""

import json

import pytest

from mock_heap import Heap, layout
from mock_target import (INT, UINT64, CHAR, BOOL, MockTarget, array, enum, member, pointer,
                         struct as mstruct, typedef)
from qemugdb.walkers import block, job
from qemugdb.render.block import dot_string, graph_plain, render_graph_dot, render_graph_text
from qemugdb.render.qmp import qmp_block_graph
from qemugdb.target import NotFound


def list_types(elem):
    """QLIST/QTAILQ head and link types for elem (only the members walkers read)."""
    p = pointer(elem)
    return (mstruct(None, 8, [member("lh_first", p, 0)]),
            mstruct(None, 16, [member("le_next", p, 0), member("le_prev", pointer(p), 8)]),
            mstruct(None, 16, [member("tqh_first", p, 0)]),
            mstruct(None, 16, [member("tqe_next", p, 0)]))


@pytest.fixture
def g():
    """A mock target with QEMU's block types, and helpers to build a graph in it."""
    t = MockTarget()
    heap = Heap(t)
    bs_t = mstruct("BlockDriverState", 0, [])
    child_t = mstruct("BdrvChild", 0, [])
    req_t = mstruct("BdrvTrackedRequest", 0, [])
    blk_t = mstruct("BlockBackend", 0, [])
    job_t = mstruct("Job", 0, [])
    drv_t = layout("BlockDriver", [("format_name", pointer(CHAR))])
    jobdrv_t = mstruct("JobDriver", 0, [])
    gslist_t = mstruct("_GSList", 0, [])
    perm_e = t.add_type(enum("BlockPermission", 4, [
        ("BLOCK_PERMISSION_CONSISTENT_READ", 0), ("BLOCK_PERMISSION_WRITE", 1),
        ("BLOCK_PERMISSION_WRITE_UNCHANGED", 2), ("BLOCK_PERMISSION_RESIZE", 3),
        ("BLOCK_PERMISSION__MAX", 4)]))
    t.add_type(enum("BdrvChildRoleBits", 4, [
        ("BDRV_CHILD_DATA", 1), ("BDRV_CHILD_METADATA", 2), ("BDRV_CHILD_FILTERED", 4),
        ("BDRV_CHILD_COW", 8), ("BDRV_CHILD_PRIMARY", 16), ("BDRV_CHILD_IMAGE", 19)]))
    jobtype_e = t.add_type(enum("JobType", 4, [("JOB_TYPE_COMMIT", 0), ("JOB_TYPE_STREAM", 1),
                                               ("JOB_TYPE_MIRROR", 2), ("JOB_TYPE_CREATE", 3),
                                               ("JOB_TYPE__MAX", 4)]))
    status_e = t.add_type(enum("JobStatus", 4, [("JOB_STATUS_RUNNING", 2),
                                                ("JOB_STATUS_READY", 4)]))
    req_type_e = enum("BdrvTrackedRequestType", 4, [("BDRV_TRACKED_READ", 0),
                                                    ("BDRV_TRACKED_WRITE", 1)])
    bs_lh, bs_le, bs_tqh, bs_tqe = list_types(bs_t)
    ch_lh, ch_le, _, _ = list_types(child_t)
    rq_lh, rq_le, _, _ = list_types(req_t)
    _, _, blk_tqh, blk_tqe = list_types(blk_t)
    job_lh, job_le, _, _ = list_types(job_t)
    bs_t.members[:] = layout(None, [
        ("node_name", array(CHAR, 32)), ("drv", pointer(drv_t)),
        ("filename", array(CHAR, 64)), ("aio_context", UINT64), ("refcnt", INT),
        ("open_flags", INT), ("in_flight", INT), ("quiesce_counter", INT), ("implicit", BOOL),
        ("bs_list", bs_tqe), ("node_list", bs_tqe), ("children", ch_lh), ("parents", ch_lh),
        ("backing", pointer(child_t)), ("file", pointer(child_t)),
        ("tracked_requests", rq_lh)]).members
    bs_t.size = bs_t.members[-1].offset + 8
    child_t.members[:] = layout(None, [
        ("bs", pointer(bs_t)), ("name", pointer(CHAR)), ("klass", UINT64),
        ("role", INT), ("opaque", UINT64), ("perm", UINT64), ("shared_perm", UINT64),
        ("frozen", BOOL), ("next", ch_le), ("next_parent", ch_le)]).members
    child_t.size = child_t.members[-1].offset + 16
    req_t.members[:] = layout(None, [
        ("offset", UINT64), ("bytes", UINT64), ("type", req_type_e), ("serialising", BOOL),
        ("list", rq_le), ("co", UINT64), ("waiting_for", UINT64)]).members
    req_t.size = req_t.members[-1].offset + 8
    blk_t.members[:] = layout(None, [
        ("name", pointer(CHAR)), ("refcnt", INT), ("root", pointer(child_t)),
        ("ctx", UINT64), ("link", blk_tqe), ("dev", UINT64), ("perm", UINT64),
        ("shared_perm", UINT64), ("quiesce_counter", INT), ("in_flight", INT)]).members
    blk_t.size = blk_t.members[-1].offset + 8
    jobdrv_t.members[:] = [member("job_type", jobtype_e, 0)]
    jobdrv_t.size = 4
    progress_t = layout("ProgressMeter", [("current", UINT64), ("total", UINT64)])
    job_t.members[:] = layout(None, [
        ("id", pointer(CHAR)), ("driver", pointer(jobdrv_t)), ("co", UINT64),
        ("progress", progress_t), ("aio_context", UINT64), ("status", status_e),
        ("pause_count", INT), ("busy", BOOL), ("job_list", job_le)]).members
    job_t.size = job_t.members[-1].offset + 16
    gslist_t.members[:] = [member("data", UINT64, 0), member("next", pointer(gslist_t), 8)]
    gslist_t.size = 16
    blockjob_t = layout("BlockJob", [("job", job_t), ("speed", UINT64),
                                     ("nodes", pointer(typedef("GSList", gslist_t)))])
    for ty in (bs_t, child_t, req_t, blk_t, job_t, drv_t, jobdrv_t, blockjob_t):
        t.add_type(ty)
    t.add_type(typedef("GSList", gslist_t), "GSList")

    heads = {}
    for name, head_t, file in (("all_bdrv_states", bs_tqh, "block.c"),
                               ("graph_bdrv_states", bs_tqh, "block.c"),
                               ("block_backends", blk_tqh, "block-backend.c"),
                               ("jobs", job_lh, "job.c")):
        heads[name] = heap.new(head_t)
        t.add_variable(name, heads[name], head_t, file=file)
    klass = {}
    for name, file in (("child_of_bds", None), ("child_root", "block-backend.c"),
                       ("child_job", "blockjob.c")):
        klass[name] = heap.new(layout("BdrvChildClass", [("x", UINT64)]))
        t.add_variable(name, klass[name], UINT64, file=file)

    class G:
        pass

    G.t, G.heap, G.klass, G.types = t, heap, klass, dict(
        bs=bs_t, child=child_t, req=req_t, blk=blk_t, job=job_t, blockjob=blockjob_t,
        gslist=gslist_t, drv=drv_t, jobdrv=jobdrv_t)
    G.tails = {name: None for name in heads}
    G.heads = heads
    G.perm_e = perm_e

    def string(text):
        a = heap.new(mstruct(None, len(text) + 1, []))
        t.write(a, text.encode() + b"\0")
        return a

    def append(list_name, elem_t, link, address):
        """Append to one of the global lists (QTAILQ or QLIST), through `link`; a QLIST
        element's le_prev points at the link that holds it, as QEMU keeps it."""
        tail = G.tails[list_name]
        member_ = next(m for m in elem_t.members if m.name == link)
        holder = heads[list_name] if tail is None else tail + member_.offset
        t.write_u64(holder, address)
        if any(m.name == "le_prev" for m in member_.type.members):
            t.write_u64(address + member_.offset + 8, holder)
        G.tails[list_name] = address

    drivers = {}

    def node(name, driver="qcow2", ctx=0x5000, in_flight=0, quiesce=0, ro=False):
        if driver not in drivers:
            drivers[driver] = heap.new(drv_t, format_name=string(driver))
        a = heap.new(bs_t, node_name=name, drv=drivers[driver], filename=f"/img/{name}",
                     aio_context=ctx, refcnt=1, open_flags=0 if ro else 0x2002,
                     in_flight=in_flight, quiesce_counter=quiesce)
        append("all_bdrv_states", bs_t, "bs_list", a)
        G.all_tail = a
        return a

    def graph_add(a):
        tail = G.tails["graph_bdrv_states"]
        if tail is None:
            t.write_u64(heads["graph_bdrv_states"], a)
        else:
            off = next(m.offset for m in bs_t.members if m.name == "node_list")
            t.write_u64(tail + off, a)
        G.tails["graph_bdrv_states"] = a

    def child(parent, kind, bs, name, perm, shared, role=0):
        c = heap.new(child_t, bs=bs, name=string(name), klass=klass[kind], role=role,
                     opaque=parent, perm=perm, shared_perm=shared)
        return c

    def link_children(parent, children_):
        """bs->children as a QLIST in the given order."""
        off_children = next(m.offset for m in bs_t.members if m.name == "children")
        off_next = next(m.offset for m in child_t.members if m.name == "next")
        t.write_u64(parent + off_children, children_[0] if children_ else 0)
        for holder, c in zip([parent + off_children] + [a + off_next for a in children_],
                             children_):
            t.write_u64(holder, c)
            t.write_u64(c + off_next + 8, holder)   # le_prev

    def backend(name, root_child, ctx=0x5000):
        a = heap.new(blk_t, name=string(name) if name else 0, refcnt=1, ctx=ctx, perm=1,
                     shared_perm=15)
        append("block_backends", blk_t, "link", a)
        return a

    def block_job(id_, jtype, node_children, current=10, total=100, speed=65536):
        drv = heap.new(jobdrv_t, job_type=jtype)
        a = heap.new(blockjob_t)
        job_fields = dict(id=string(id_), driver=drv, co=0xc0, aio_context=0x5000, status=2)
        heap.set(job_t, a, **job_fields)
        progress = next(m.offset for m in job_t.members if m.name == "progress")
        t.write_u64(a + progress, current, total)
        heap.set(blockjob_t, a, speed=speed)
        prev = 0
        for c in reversed(node_children):
            prev = heap.new(gslist_t, data=c, next=prev)
        heap.set(blockjob_t, a, nodes=prev)
        append("jobs", job_t, "job_list", a)
        return a

    def track(bs, req):
        """req as bs->tracked_requests' only element (its le_prev at the head)."""
        head = bs + next(m.offset for m in bs_t.members if m.name == "tracked_requests")
        t.write_u64(head, req)
        t.write_u64(req + next(m.offset for m in req_t.members if m.name == "list") + 8, head)

    G.string, G.node, G.graph_add, G.child, G.link_children, G.track = (
        string, node, graph_add, child, link_children, track)
    G.backend, G.block_job = backend, block_job
    return G


def build_chain(g):
    """backend -> top (qcow2) -file-> top-file; top -backing-> base; a stream job on top."""
    top, top_file, base = g.node("top"), g.node("top-file", "file"), g.node("base", in_flight=2)
    for a in (top, top_file, base):
        g.graph_add(a)
    c_file = g.child(top, "child_of_bds", top_file, "file", 0b1011, 0b0101, role=0b10011)
    c_back = g.child(top, "child_of_bds", base, "backing", 0b0001, 0b1111, role=0b1000)
    g.link_children(top, [c_file, c_back])
    blk = g.backend("", None)
    root = g.child(blk, "child_root", top, "root", 0b0011, 0b0100)
    g.heap.set(g.types["blk"], blk, root=root)
    job_child = g.child(0, "child_job", base, "intermediate node", 0, 0b0101)
    j = g.block_job("job0", 1, [job_child])
    g.heap.set(g.types["child"], job_child, opaque=j)
    return dict(top=top, top_file=top_file, base=base, blk=blk, job=j)


def test_qmp_graph_follows_bdrv_get_xdbg_block_graph(g):
    build_chain(g)
    graph = block.block_graph(g.t)
    out = qmp_block_graph(graph)
    # ids in first-met order: backend 1, its root child top 2, job 3, its child base 4,
    # then graph_bdrv_states: top (2), top's children top-file 5 and base (4).
    assert out["nodes"] == [
        {"id": 4, "type": "block-driver", "name": "base"},
        {"id": 5, "type": "block-driver", "name": "top-file"},
        {"id": 2, "type": "block-driver", "name": "top"},
        {"id": 3, "type": "block-job", "name": "job0"},
        {"id": 1, "type": "block-backend", "name": ""}]
    assert out["edges"] == [
        {"parent": 2, "child": 4, "name": "backing", "perm": ["consistent-read"],
         "shared-perm": ["resize", "write-unchanged", "write", "consistent-read"]},
        {"parent": 2, "child": 5, "name": "file", "perm": ["resize", "write", "consistent-read"],
         "shared-perm": ["write-unchanged", "consistent-read"]},
        {"parent": 3, "child": 4, "name": "intermediate node", "perm": [],
         "shared-perm": ["write-unchanged", "consistent-read"]},
        {"parent": 1, "child": 2, "name": "root", "perm": ["write", "consistent-read"],
         "shared-perm": ["write-unchanged"]}]
    assert graph.jobs[0].type == "stream"
    top = next(n for n in graph.nodes if n.node_name == "top")
    assert [c.role for c in top.children] == [["data", "metadata", "primary"], ["cow"]]
    assert top.read_only is False and top.open_flag_names == ["BDRV_O_RDWR", "BDRV_O_ALLOW_RDWR"]
    assert {c.parent_type for c in top.children} == {"block-driver"}
    assert graph.backends[0].child.parent_type == "block-backend"


def test_perm_names_come_from_the_enum_and_unknown_bits_show_as_hex(g):
    layout_ = block.block_layout(g.t)
    assert [p.qmp for p in layout_.permissions] == ["consistent-read", "write",
                                                    "write-unchanged", "resize"]
    assert layout_.perm_names(0b1_0000_0101) == ["consistent-read", "write-unchanged", "0x100"]


def test_a_child_cycle_is_reported_on_the_node_and_the_walk_goes_on(g):
    a = build_chain(g)
    top_children = g.t.read(a["top"] + next(m.offset for m in g.types["bs"].members
                                             if m.name == "children"), 8)
    first = int.from_bytes(top_children, "little")
    off_next = next(m.offset for m in g.types["child"].members if m.name == "next")
    g.t.write_u64(first + off_next, first)     # file -> file -> ...
    graph = block.block_graph(g.t)
    top = next(n for n in graph.nodes if n.node_name == "top")
    assert "cycles" in top.error and len(top.children) == 1
    assert [n.node_name for n in graph.nodes] == ["top", "top-file", "base"]
    assert "cycle" in render_graph_text(graph)


def test_an_unreadable_node_is_reported_inline(g):
    a = build_chain(g)
    off_drv = next(m.offset for m in g.types["bs"].members if m.name == "drv")
    g.t.write_u64(a["base"] + off_drv, 0xdead0000)
    graph = block.block_graph(g.t)
    base = next(n for n in graph.nodes if n.node_name == "base")
    assert base.error == "cannot read memory at 0xdead0000"
    assert base.driver is None
    assert "<error: cannot read memory at 0xdead0000>" in render_graph_text(graph)
    # the rest of the graph is intact
    assert qmp_block_graph(graph)["edges"][0]["name"] == "backing"


def test_a_broken_list_link_ends_the_walk_with_an_error(g):
    a = build_chain(g)
    off = next(m.offset for m in g.types["bs"].members if m.name == "node_list")
    g.t.write_u64(a["top_file"] + off, 0xbad000)
    graph = block.block_graph(g.t)
    assert any(e.startswith("graph_bdrv_states: cannot read memory at 0xbad") for e in graph.errors)
    # the bad element is a node of its own with its error; base is still found through
    # all_bdrv_states
    assert [(n.node_name, n.in_graph) for n in graph.nodes] == [
        ("top", True), ("top-file", True), (None, True), ("base", False)]
    assert graph.nodes[2].address == 0xbad000 and "0xbad000" in graph.nodes[2].error


def test_jobs_records(g):
    build_chain(g)
    out = job.jobs(g.t)
    assert out.error is None
    [j] = out.jobs
    assert (j.id, j.type, j.status, j.current, j.total, j.speed, j.block_job) == (
        "job0", "stream", "running", 10, 100, 65536, True)


def test_tracked_requests_of_a_node(g):
    a = build_chain(g)
    req = g.heap.new(g.types["req"], offset=4096, bytes=512, type=1, serialising=1, co=0xc0de)
    g.track(a["base"], req)
    detail = block.node_detail(g.t, "base")
    [r] = detail.requests
    assert (r.offset, r.bytes, r.type, r.serialising, r.co) == (4096, 512, "write", True, 0xc0de)
    assert detail.node.tracked_requests == 1
    with pytest.raises(NotFound):
        block.node_detail(g.t, "nosuch")


def test_json_and_dot_renderers(g):
    build_chain(g)
    graph = block.block_graph(g.t)
    plain = json.loads(json.dumps(graph_plain(graph)))
    assert {n["type"] for n in plain["nodes"]} == {"block-driver", "block-backend", "block-job"}
    assert len(plain["edges"]) == 4
    dot = render_graph_dot(graph)
    assert dot.startswith("digraph block_graph {") and dot.rstrip().endswith("}")
    assert "in_flight=2" in dot and "fillcolor" in dot and "cluster_legend" in dot


@pytest.mark.parametrize("text,expected", [
    ('a"b', r'"a\"b"'), ("a\\b", r'"a\\b"'), ("a\nb", r'"a\nb"'),
    ("{x}<y>&z", '"{x}<y>&z"'), ("\\\"", r'"\\\""')])
def test_dot_string_escapes_user_text(text, expected):
    assert dot_string(text) == expected


def test_hostile_node_names_stay_inside_their_dot_string(g):
    a = build_chain(g)
    g.heap.set(g.types["bs"], a["top"], node_name='x"];evil[\\')
    dot = render_graph_dot(block.block_graph(g.t))
    assert 'label="x\\"];evil[\\\\\\nqcow2"' in dot
