"""coroutine.py on a MockTarget: jmp_buf demangling, the caller chain (cycles), CoQueue
waiters, and where a coroutine is suspended."""

import struct

import pytest

from corefile.arch import x86_64
from mock_target import UINT64, MockTarget, array, integer, member, pointer, struct as mstruct
from qemugdb.walkers import coroutine as co
from qemugdb.target import CorruptError, Frame, Location, Thread

GUARD = 0x1122334455667788
TP = 0x7000


def mangle(value):
    v = value ^ GUARD
    return ((v << 0x11) | (v >> (64 - 0x11))) & (2**64 - 1)


def _types(t):
    coroutine = mstruct("Coroutine", 32, [])
    p = pointer(coroutine)
    sqe = mstruct(None, 8, [member("sqe_next", p, 0)])
    coroutine.members = [member("entry", UINT64, 0), member("entry_arg", UINT64, 8),
                         member("caller", p, 16), member("co_queue_next", sqe, 24)]
    long_ = integer("long", 8, signed=True)
    tag = mstruct("__jmp_buf_tag", 64, [member("__jmpbuf", array(long_, 8), 0)])
    uctx = mstruct("CoroutineUContext", 32 + 64, [member("base", coroutine, 0),
                                                  member("env", array(tag, 1), 32)])
    t.add_type(coroutine, "Coroutine")
    t.add_type(uctx, "CoroutineUContext")
    return coroutine


def test_jmpbuf_registers_are_demangled_with_the_thread_pointer_guard():
    t = MockTarget()
    _types(t)
    t.map(TP + x86_64.POINTER_GUARD_OFFSET, struct.pack("<Q", GUARD))
    regs = {"rbx": 1, "rbp": 0x7fff0000, "r12": 3, "r13": 4, "r14": 5, "r15": 6,
            "rsp": 0x7ffe0000, "rip": 0x555555554321}
    slots = [0] * 8
    for name, i in x86_64.JMPBUF_SLOTS.items():
        slots[i] = mangle(regs[name]) if name in x86_64.JMPBUF_MANGLED else regs[name]
    t.map(0x1000, bytes(32) + struct.pack("<8Q", *slots))
    threads = [Thread(1, 100, None, {"fs_base": TP, "gs_base": 0})]
    guard = co.pointer_guard(t, threads)
    assert guard == GUARD
    got = co.saved_registers(t, 0x1000, guard, threads[0].registers)
    assert got == {**regs, "fs_base": TP, "gs_base": 0}


def _chain(t, callers):
    """Coroutines at 0x1000*i (i >= 1) whose caller is callers[i-1] (index or None)."""
    for i, c in enumerate(callers, 1):
        t.map(0x1000 * i, struct.pack("<QQQQ", 0, 0, 0 if c is None else 0x1000 * c, 0))


def test_caller_chain_and_cycle():
    t = MockTarget()
    _types(t)
    _chain(t, [2, 3, None])
    assert list(co.callers(t, 0x1000)) == [0x2000, 0x3000]
    t2 = MockTarget()
    _types(t2)
    _chain(t2, [2, 1])
    with pytest.raises(CorruptError):
        list(co.callers(t2, 0x1000))


def test_coqueue_waiters():
    t = MockTarget()
    coroutine = _types(t)
    t.map(0x1000, struct.pack("<QQQQ", 0, 0, 0, 0x2000))
    t.map(0x2000, struct.pack("<QQQQ", 0, 0, 0, 0))
    queue = mstruct("CoQueue", 16, [member("entries", mstruct(None, 16, [
        member("sqh_first", pointer(coroutine), 0), member("sqh_last", UINT64, 8)]), 0)])
    t.map(0x500, struct.pack("<QQ", 0x1000, 0))
    from qemugdb.obj import Object
    assert [c.address_ for c in co.coqueue_waiters(Object(t, queue, 0x500))] == [0x1000, 0x2000]


def _frame(level, name, inlined=()):
    loc = Location(pc=level, function=name, inlined=[Location(pc=None, function=n)
                                                     for n in inlined])
    return Frame(level=level, pc=level, sp=0, location=loc)


def test_suspended_in_skips_machinery_including_inline_frames_and_stops_at_bottom():
    frames = [_frame(0, "qemu_coroutine_switch"),
              _frame(1, "qemu_co_queue_wait_impl", inlined=["qemu_coroutine_yield"]),
              _frame(2, "stream_run", inlined=["job_sleep_ns"]),
              _frame(3, "coroutine_trampoline"), _frame(4, "__start_context"), _frame(5, None)]
    frames = co.to_bottom(frames)
    assert [f.location.function for f in frames][-1] == "coroutine_trampoline"
    assert co.suspended_in(frames).function == "stream_run"
