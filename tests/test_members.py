"""A member this QEMU version does not have marks that field of a record, never the whole
record: on mock targets whose types lack one member (QEMUBH.name, AioHandler.pfd,
QEMUTimer.scale, AioContext.notified, BlockDriverState.node_name, BdrvChild.frozen,
BlockBackend.quiesce_counter, Job.pause_count, BdrvTrackedRequest.serialising,
Coroutine.entry_arg), every other field of the same records keeps the value it has with the
full type; the missing one is null in JSON, listed in `absent`, and n/a in text. Unreadable
memory still ends a record with its error. Also first_variable, the probe for renamed
variables."""

import json
import re
import struct

import pytest

from mock_target import UINT64, MockTarget, member, struct as mstruct
from qemugdb.walkers import aio, block, coroutine, job
from qemugdb.commands import to_plain
from qemugdb.obj import Object, first_variable, read_fields
from qemugdb.render.aio import (render_bhs_text, render_contexts_text, render_handlers_text,
                                render_timers_text)
from qemugdb.render.block import (graph_plain, render_graph_dot, render_graph_text,
                                  render_jobs_text, render_node_text)
from qemugdb.render.coroutine import coroutine_header
from qemugdb.render.qmp import qmp_block_graph
from qemugdb.target import FaultError, Location, MissingDebugInfo
from test_aio_fast import Target as AioTarget, build as build_aio
from test_block_fast import build_chain, g  # noqa: F401 (g is a fixture)
from test_coroutine import _types as coroutine_types


def hide(t, type_name, name):
    """The type `type_name` of mock target t loses its member `name` (the bytes stay)."""
    type_ = t.lookup_type(type_name)
    assert any(m.name == name for m in type_.members), name
    type_.members = [m for m in type_.members if m.name != name]


def plain(records):
    return json.loads(json.dumps(to_plain(records)))


def assert_only_absent(full, partial, name):
    """`partial` (plain records read without member `name`) equals `full` but for that
    field, which is null and listed in `absent`, and still has no error."""
    assert len(full) == len(partial) and full
    for f, p in zip(full, partial):
        assert p[name] is None and p["absent"] == [name] and p["error"] is None
        assert {k: v for k, v in p.items() if k not in (name, "absent")} == \
            {k: v for k, v in f.items() if k not in (name, "absent")}


# ---------------------------------------------------------------- event loop

@pytest.fixture
def t():
    t = AioTarget()
    t.addrs = build_aio(t)
    return t


def test_a_qemubh_without_name_keeps_callback_opaque_and_flags(t):
    full = plain(aio.bhs(t).items)
    hide(t, "QEMUBH", "name")
    out = aio.bhs(t)
    assert_only_absent(full, plain(out.items), "name")
    assert [(b.cb_symbol, b.opaque, b.flag_names) for b in out.items] == [
        ("bh_cb", 0x11, ["pending", "scheduled"]), ("bh_cb", 0x22, ["idle"]),
        ("bh_cb", 0x33, ["pending", "0x40"])]
    text = render_bhs_text(out)
    rows = text.splitlines()[1:4]
    assert all(re.search(r" n/a +bh_cb ", row) for row in rows), text
    assert "n/a: this QEMU's QEMUBH has no name" in text


def test_a_handler_without_pfd_keeps_its_callbacks(t):
    full = plain(aio.handlers(t).items)
    hide(t, "AioHandler", "pfd")
    out = aio.handlers(t)
    partial = plain(out.items)
    for f, p in zip(full, partial):
        assert (p["fd"], p["events"], p["absent"]) == (None, None, ["fd", "events"])
        assert (p["callbacks"], p["opaque"], p["deleted"]) == (
            f["callbacks"], f["opaque"], f["deleted"])
    assert "n/a: this QEMU's AioHandler has no events, fd" in render_handlers_text(out)


def test_a_timer_without_scale_keeps_expiry_and_callback(t):
    full = plain(aio.timers(t).items)
    hide(t, "QEMUTimer", "scale")
    out = aio.timers(t)
    assert_only_absent(full, plain(out.items), "scale")
    assert "n/a: this QEMU's QEMUTimer has no scale" in render_timers_text(out)


def test_a_context_without_notified_keeps_its_counters(t):
    full = plain(aio.contexts(t))
    hide(t, "AioContext", "notified")
    partial = plain(aio.contexts(t))
    for f, p in zip(full, partial):
        assert p["notified"] is None and sorted(p["absent"]) == sorted(f["absent"] + ["notified"])
        assert {k: v for k, v in p.items() if k not in ("notified", "absent")} == \
            {k: v for k, v in f.items() if k not in ("notified", "absent")}
    text = render_contexts_text(aio.contexts(t))
    assert "n/a: this QEMU's AioContext has no external_disable_cnt, notified" in text


# ---------------------------------------------------------------- block layer

def test_a_node_without_node_name_keeps_driver_filename_and_edges(g):  # noqa: F811
    build_chain(g)
    full = graph_plain(block.block_graph(g.t))
    hide(g.t, "BlockDriverState", "node_name")
    graph = block.block_graph(g.t)
    partial = graph_plain(graph)
    nodes = [n for n in partial["nodes"] if n["type"] == "block-driver"]
    full_nodes = [n for n in full["nodes"] if n["type"] == "block-driver"]
    for f, p in zip(full_nodes, nodes):
        assert p["name"] is None and p["absent"] == ["name"] and p["error"] is None
        assert {k: v for k, v in p.items() if k not in ("name", "absent")} == \
            {k: v for k, v in f.items() if k not in ("name", "absent")}
    assert [n["filename"] for n in nodes] == ["/img/top", "/img/top-file", "/img/base"]
    assert partial["edges"] == full["edges"]
    assert graph.nodes[0].absent == ["node_name"]   # the record's field; JSON spells it name
    assert [n["name"] for n in qmp_block_graph(graph)["nodes"] if n["type"] == "block-driver"] \
        == [None, None, None]
    text = render_graph_text(graph)
    assert "n/a: this QEMU's BlockDriverState has no node_name" in text
    assert [line.split()[:2] for line in text.split("Nodes:\n")[1].splitlines()[1:4]] == [
        ["n/a", "qcow2"], ["n/a", "file"], ["n/a", "qcow2"]]
    assert "n/a\\nqcow2" in render_graph_dot(graph)


def test_an_edge_without_frozen_and_a_backend_without_quiesce_counter(g):  # noqa: F811
    build_chain(g)
    full = graph_plain(block.block_graph(g.t))
    hide(g.t, "BdrvChild", "frozen")
    hide(g.t, "BlockBackend", "quiesce_counter")
    partial = graph_plain(block.block_graph(g.t))
    for f, p in zip(full["edges"], partial["edges"]):
        assert p["frozen"] is None and p["absent"] == ["frozen"]
        assert {**p, "frozen": f["frozen"], "absent": f["absent"]} == f
    [f_blk] = [n for n in full["nodes"] if n["type"] == "block-backend"]
    [p_blk] = [n for n in partial["nodes"] if n["type"] == "block-backend"]
    assert p_blk["quiesce_counter"] is None and p_blk["absent"] == ["quiesce_counter"]
    assert {**p_blk, "quiesce_counter": f_blk["quiesce_counter"], "absent": []} == f_blk


def test_a_job_without_pause_count_keeps_progress_and_speed(g):  # noqa: F811
    build_chain(g)
    full = plain(job.jobs(g.t).jobs)
    hide(g.t, "Job", "pause_count")
    out = job.jobs(g.t)
    assert_only_absent(full, plain(out.jobs), "paused")
    [j] = out.jobs
    assert (j.id, j.type, j.status, j.current, j.total, j.speed) == (
        "job0", "stream", "running", 10, 100, 65536)
    text = render_jobs_text(out)
    assert "n/a: this QEMU's Job has no paused" in text
    assert text.splitlines()[1].split()[7] == "n/a"


def test_a_tracked_request_without_serialising(g):  # noqa: F811
    a = build_chain(g)
    req = g.heap.new(g.types["req"], offset=4096, bytes=512, type=1, serialising=1, co=0xc0de)
    g.track(a["base"], req)
    hide(g.t, "BdrvTrackedRequest", "serialising")
    detail = block.node_detail(g.t, "base")
    [r] = detail.requests
    assert (r.offset, r.bytes, r.type, r.serialising, r.co, r.absent, r.error) == (
        4096, 512, "write", None, 0xc0de, ["serialising"], None)
    assert "n/a: this QEMU's BdrvTrackedRequest has no serialising" in render_node_text(detail)


# ---------------------------------------------------------------- coroutines

def test_a_coroutine_without_entry_arg_keeps_entry_and_caller():
    t = MockTarget()
    coroutine_types(t)
    t.map(0x1000, struct.pack("<QQQQ", 0x401000, 0x77, 0x2000, 0) + bytes(64))
    hide(t, "Coroutine", "entry_arg")
    t.symbolize = lambda pc: Location(pc=pc, function={0x401000: "co_entry"}[pc])
    rec = coroutine.describe(t, 0x1000, 0, unwind=False)
    assert (rec.entry, rec.entry_arg, rec.caller, rec.absent) == (
        "co_entry", None, 0x2000, ["entry_arg"])
    assert rec.error is None and rec.pc is not None
    assert coroutine_header(rec).endswith("entry co_entry(n/a)")


# ---------------------------------------------------------------- the contract

def test_unreadable_memory_still_ends_the_record_after_the_absent_fields(t):
    hide(t, "QEMUBH", "name")
    next_off = next(m.offset for m in t.lookup_type("QEMUBH").members if m.name == "next")
    t.write_u64(t.addrs["bh1"] + next_off, 0xdead000)
    out = aio.bhs(t)
    [bad] = [b for b in out.items if b.address == 0xdead000]
    assert bad.absent == ["name"] and bad.error == "cannot read memory at 0xdead008"  # cb
    assert (bad.cb, bad.opaque, bad.flags) == (None, None, None)
    assert "<error: cannot read memory at 0xdead008>" in render_bhs_text(out)


class Rec:
    def __init__(self):
        self.a = self.b = self.c = self.error = None
        self.absent = []


def test_read_fields_contract():
    """Member paths and functions; an absent field is None and listed, the next ones are
    read; any other error ends the record, the fields after it keep their defaults."""
    t = MockTarget()
    t.map(0x1000, struct.pack("<QQ", 5, 6))
    inner = mstruct("Inner", 8, [member("y", UINT64, 0)])
    obj = Object(t, mstruct("S", 16, [member("x", UINT64, 0), member("in", inner, 8)]), 0x1000)
    rec = Rec()
    assert read_fields(rec, obj, a="x", b="gone", c="in.y")
    assert (rec.a, rec.b, rec.c, rec.absent, rec.error) == (5, None, 6, ["b"], None)

    def fault():
        raise FaultError(0xbad)
    rec = Rec()
    assert not read_fields(rec, obj, a="gone", b=fault, c=lambda: 7)
    assert (rec.absent, rec.error, rec.c) == (["a"], "cannot read memory at 0xbad", None)


def test_first_variable_probes_the_names_a_variable_has_had():
    t = MockTarget()
    t.add_variable("alloc_pool", 0x1000, UINT64, file="qemu-coroutine.c")
    t.add_variable("co_tls_current", 0x2000, UINT64, file="coroutine-ucontext.c")
    t.add_variable("current", 0x3000, UINT64)
    assert first_variable(t, ("co_tls_alloc_pool", "alloc_pool"), ("qemu-coroutine.c",)) == \
        ("alloc_pool", "qemu-coroutine.c")
    assert first_variable(t, ("co_tls_current", "current"), ("coroutine-ucontext.c", None)) == \
        ("co_tls_current", "coroutine-ucontext.c")
    assert first_variable(t, ("co_tls_leader", "current"), ("coroutine-ucontext.c", None)) == \
        ("current", None)
    with pytest.raises(MissingDebugInfo, match="bql_locked / iothread_locked"):
        first_variable(t, ("bql_locked", "iothread_locked"), ("cpus.c",))
