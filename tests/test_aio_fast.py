"""AioContexts, BHs, fd handlers and timers against a MockTarget: counters, flag decoding
(from the enum when the backend reaches it, else QEMU's table, said so), deleted handlers,
clock names from the enum, cyclic timer chains reported inline, context selection."""

import pytest

from mock_heap import Heap, layout
from mock_target import (CHAR, INT, UINT64, MockTarget, array, enum, integer, member, pointer,
                         struct as mstruct, typedef)
from qemugdb.walkers import aio
from qemugdb.render.aio import (render_bhs_text, render_contexts_text, render_handlers_text,
                                render_timers_text)
from qemugdb.target import Location, MissingDebugInfo, NotFound

SYMBOLS = {0x401000: "bh_cb", 0x402000: "read_cb", 0x403000: "poll_cb",
           0x404000: "timer_cb", 0x405000: "write_cb"}


class Target(MockTarget):
    def symbolize(self, pc):
        return Location(pc=pc, function=SYMBOLS.get(pc), offset=0 if pc in SYMBOLS else None)


class EnumTarget(Target):
    """A backend that can find anonymous enums by an enumerator's name."""

    def __init__(self, enums):
        super().__init__()
        self.enums = enums

    def lookup_enumerator(self, name):
        for e in self.enums:
            if any(n == name for n, _ in e.enumerators):
                return e
        raise MissingDebugInfo(name)


def build(t):
    heap = Heap(t)
    bh_t = mstruct("QEMUBH", 0, [])
    bh_sl = mstruct(None, 8, [member("slh_first", pointer(bh_t), 0)])
    bh_t.members[:] = layout(None, [("name", pointer(CHAR)), ("cb", UINT64), ("opaque", UINT64),
                                    ("next", mstruct(None, 8, [member("sle_next", pointer(bh_t), 0)])),
                                    ("flags", integer("unsigned int", 4))]).members
    bh_t.size = 48
    slice_t = mstruct("BHListSlice", 0, [])
    slice_t.members[:] = [member("bh_list", bh_sl, 0),
                          member("next", mstruct(None, 8, [member("sqe_next", pointer(slice_t), 0)]), 8)]
    slice_t.size = 16
    h_t = mstruct("AioHandler", 0, [])
    link = mstruct(None, 16, [member("le_next", pointer(h_t), 0),
                              member("le_prev", pointer(pointer(h_t)), 8)])
    pfd = mstruct("GPollFD", 8, [member("fd", INT, 0), member("events", integer("short", 2), 4)])
    h_t.members[:] = layout(None, [("pfd", pfd), ("io_read", UINT64), ("io_write", UINT64),
                                   ("io_poll", UINT64), ("opaque", UINT64), ("node", link),
                                   ("node_deleted", link)]).members
    h_t.size = 80
    timer_t = mstruct("QEMUTimer", 0, [])
    timer_t.members[:] = layout(None, [("expire_time", integer("int64_t", 8, True)),
                                       ("cb", UINT64), ("opaque", UINT64),
                                       ("next", pointer(timer_t)), ("attributes", INT),
                                       ("scale", INT)]).members
    timer_t.size = 48
    tl_t = layout("QEMUTimerList", [("active_timers", pointer(timer_t))])
    clock = enum(None, 4, [("QEMU_CLOCK_REALTIME", 0), ("QEMU_CLOCK_VIRTUAL", 1),
                           ("QEMU_CLOCK_MAX", 2)])
    t.add_type(typedef("QEMUClockType", clock), "QEMUClockType")
    tlg_t = layout("QEMUTimerListGroup", [("tl", array(pointer(tl_t), 2))])
    co_t = mstruct("Coroutine", 8, [])
    co_t.members[:] = [member("co_scheduled_next",
                              mstruct(None, 8, [member("sle_next", pointer(co_t), 0)]), 0)]
    ctx_t = layout("AioContext", [
        ("aio_handlers", mstruct(None, 8, [member("lh_first", pointer(h_t), 0)])),
        ("notify_me", integer("uint32_t", 4)), ("notified", INT),
        ("bh_list", bh_sl),
        ("bh_slice_list", mstruct(None, 16, [member("sqh_first", pointer(slice_t), 0)])),
        ("scheduled_coroutines", mstruct(None, 8, [member("slh_first", pointer(co_t), 0)])),
        ("tlg", tlg_t), ("poll_disable_cnt", INT)])
    for ty in (ctx_t, bh_t, slice_t, h_t, timer_t, tl_t, tlg_t, co_t):
        t.add_type(ty)

    def string(text):
        a = heap.new(mstruct(None, len(text) + 1, []))
        t.write(a, text.encode() + b"\0")
        return a

    main = heap.new(ctx_t, notify_me=3, poll_disable_cnt=1)
    iohandler = heap.new(ctx_t)
    for name, a in (("qemu_aio_context", main), ("iohandler_ctx", iohandler)):
        cell = heap.new(layout(None, [("p", UINT64)]), p=a)
        t.add_variable(name, cell, pointer(ctx_t), file="main-loop.c")
    # BHs: two on bh_list (one pending+scheduled, one idle), one on a slice.
    bh2 = heap.new(bh_t, name=string("second"), cb=0x401000, opaque=0x22, flags=0x10)
    bh1 = heap.new(bh_t, name=string("first"), cb=0x401000, opaque=0x11, flags=0x3, next=bh2)
    bh3 = heap.new(bh_t, cb=0x401000, opaque=0x33, flags=0x1 | 0x40)
    sl = heap.new(slice_t, bh_list=bh3)
    heap.set(ctx_t, main, bh_list=bh1, bh_slice_list=sl)
    # handlers: fd 7 (read+poll), fd 9 (write, being deleted)
    h2 = heap.new(h_t, io_write=0x405000, opaque=0x99)
    heap.set(h_t, h2, pfd=0)
    t.write(h2, (9).to_bytes(4, "little"))
    deleted = heap.new(layout(None, [("p", UINT64)]), p=h2)   # the deleted list's head
    t.write_u64(h2 + next(m.offset for m in h_t.members if m.name == "node_deleted") + 8,
                deleted)
    h1 = heap.new(h_t, io_read=0x402000, io_poll=0x403000, opaque=0x77, node=h2)
    t.write(h1, (7).to_bytes(4, "little"))
    heap.set(ctx_t, main, aio_handlers=h1)
    node = next(m.offset for m in h_t.members if m.name == "node")
    t.write_u64(h1 + node + 8, main + next(m.offset for m in ctx_t.members
                                           if m.name == "aio_handlers"))   # le_prev
    t.write_u64(h2 + node + 8, h1 + node)
    # timers: realtime list with two, virtual list with one; main_loop_tlg has one
    tm2 = heap.new(timer_t, expire_time=2000, cb=0x404000, opaque=0x2, scale=1)
    tm1 = heap.new(timer_t, expire_time=1000, cb=0x404000, opaque=0x1, scale=1, next=tm2)
    tm3 = heap.new(timer_t, expire_time=5, cb=0x404000, opaque=0x3, scale=1000000)
    tl_rt, tl_virt = heap.new(tl_t, active_timers=tm1), heap.new(tl_t, active_timers=tm3)
    tlg_off = next(m.offset for m in ctx_t.members if m.name == "tlg")
    t.write_u64(main + tlg_off, tl_rt, tl_virt)
    tm4 = heap.new(timer_t, expire_time=7, cb=0x404000, opaque=0x4, scale=1)
    main_tlg = heap.new(tlg_t)
    t.write_u64(main_tlg, heap.new(tl_t, active_timers=tm4), 0)
    t.add_variable("main_loop_tlg", main_tlg, tlg_t)
    co = heap.new(co_t)
    heap.set(ctx_t, main, scheduled_coroutines=co)
    return dict(main=main, iohandler=iohandler, tm2=tm2, bh1=bh1)


@pytest.fixture
def t():
    t = Target()
    t.addrs = build(t)
    return t


def test_contexts_and_counters(t):
    [main, iohandler] = aio.contexts(t)
    assert (main.address, main.names, iohandler.names) == (t.addrs["main"], ["main loop"],
                                                           ["iohandler"])
    assert (main.notify_me, main.poll_disable_cnt, main.bhs, main.bhs_pending, main.handlers,
            main.handlers_deleted, main.timers, main.scheduled_coroutines) == (
        3, 1, 3, 2, 2, 1, 3, 1)
    assert main.external_disable_cnt is None and main.absent == ["external_disable_cnt"]
    assert main.error is None
    assert "main loop" in render_contexts_text([main, iohandler])


def test_bhs_decoded_with_the_table_and_said_so(t):
    out = aio.bhs(t)
    assert [(b.name, b.slice, b.flag_names, b.cb_symbol) for b in out.items] == [
        ("first", None, ["pending", "scheduled"], "bh_cb"),
        ("second", None, ["idle"], "bh_cb"),
        (None, 0, ["pending", "0x40"], "bh_cb")]
    assert any("QEMU's headers" in n for n in out.notes)
    assert "first" in render_bhs_text(out)


def test_bh_flags_come_from_the_debug_info_when_the_backend_reaches_them():
    bh_enum = enum(None, 4, [("BH_PENDING", 0x40), ("BH_SCHEDULED", 2), ("BH_DELETED", 4),
                             ("BH_ONESHOT", 8), ("BH_IDLE", 0x10)])
    t = EnumTarget([bh_enum])
    build(t)
    out = aio.bhs(t)
    assert out.items[2].flag_names == ["pending", "0x1"]
    assert not any("headers" in n for n in out.notes)


def test_handlers(t):
    out = aio.handlers(t, "main loop")
    assert [(h.fd, h.callbacks, h.opaque, h.deleted) for h in out.items] == [
        (7, {"io_read": "read_cb", "io_poll": "poll_cb"}, 0x77, False),
        (9, {"io_write": "write_cb"}, 0x99, True)]
    assert "deleted" in render_handlers_text(out)


def test_timers_with_clock_names_from_the_enum(t):
    out = aio.timers(t)
    assert [(x.group.split(" (")[0], x.clock, x.expire_time, x.scale, x.cb_symbol, x.opaque)
            for x in out.items] == [
        ("main_loop_tlg", "realtime", 7, 1, "timer_cb", 4),
        ("main loop", "realtime", 1000, 1, "timer_cb", 1),
        ("main loop", "realtime", 2000, 1, "timer_cb", 2),
        ("main loop", "virtual", 5, 1000000, "timer_cb", 3)]
    assert "timer_cb" in render_timers_text(out)


def test_a_timer_cycle_is_reported_and_the_other_groups_still_listed(t):
    next_off = next(m.offset for m in t.lookup_type("QEMUTimer").members if m.name == "next")
    t.write_u64(t.addrs["tm2"] + next_off, t.addrs["tm2"])
    out = aio.timers(t)
    assert any("cycles" in e for e in out.errors)
    assert [x.opaque for x in out.items] == [4, 1, 2, 3]   # the virtual clock's list too
    assert "<error: " in render_timers_text(out)


def test_an_unreadable_bh_is_reported_inline(t):
    next_off = next(m.offset for m in t.lookup_type("QEMUBH").members if m.name == "next")
    t.write_u64(t.addrs["bh1"] + next_off, 0xdead000)
    out = aio.bhs(t)
    bad = [b for b in out.items if b.address == 0xdead000]
    assert bad and bad[0].error.startswith("cannot read memory at 0xdead")
    assert out.errors   # the list walk stopped there and said so


def test_selecting_contexts(t):
    assert aio.select_contexts(t, "iohandler") == [(t.addrs["iohandler"], "iohandler")]
    assert aio.select_contexts(t, hex(t.addrs["main"])) == [(t.addrs["main"], "main loop")]
    with pytest.raises(NotFound, match="known: main loop, iohandler"):
        aio.select_contexts(t, "nosuch")
