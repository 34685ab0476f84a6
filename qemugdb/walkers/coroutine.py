"""QEMU coroutines (ucontext backend): saved registers, the current coroutine of each thread
and its callers, the queues coroutines wait in, and each thread's stack with its chain.

A suspended coroutine's registers are in CoroutineUContext.env, a glibc sigjmp_buf whose
layout and pointer mangling are architecture facts (`target.facts`). The census of every
coroutine from every subsystem's roots is census.py, above the subsystems.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..obj import Object, co_tls, first_variable, read_fields
from ..result import Record
from ..target import (CorruptError, Frame, Location, MissingDebugInfo, Target, TargetError,
                      Thread)
from .queue import qsimpleq_foreach, qslist_foreach

# Functions that only move a coroutine in or out of the CPU: the frame where a coroutine
# "is suspended" is the first one outside these.
MACHINERY = frozenset({
    "qemu_coroutine_switch", "qemu_coroutine_yield", "qemu_co_queue_wait_impl",
    "qemu_co_mutex_lock_slowpath", "qemu_co_mutex_lock", "qemu_co_rwlock_rdlock",
    "qemu_co_rwlock_wrlock", "qemu_co_rwlock_upgrade", "qemu_co_sleep",
    "qemu_co_sleep_ns_wakeable", "qemu_co_sleep_ns", "aio_co_reschedule_self",
    "qemu_coroutine_enter", "qemu_aio_coroutine_enter", "coroutine_trampoline",
    "__start_context", "siglongjmp", "__longjmp", "__libc_siglongjmp", "_setjmp",
    "__sigsetjmp", "job_do_yield_locked", "job_do_yield", "job_yield", "job_sleep_ns",
    "job_pause_point_locked", "job_pause_point",
})
BOTTOM = "coroutine_trampoline"  # the outermost frame of every coroutine stack
CHAIN_LIMIT = 1024


@dataclass
class CoroutineRecord(Record):
    """One coroutine: where it is, what it runs, why it waits, where it is suspended."""
    address: int
    entry: str | None = None          # entry function
    entry_arg: int | None = None
    state: str = "suspended"          # running | suspended | pooled | leader
    waits: list = field(default_factory=list)  # why: one line per root it was found from
    thread: int | None = None         # gdb thread number where it is current
    caller: int | None = None
    pc: int | None = None
    sp: int | None = None
    registers: dict = field(default_factory=dict, repr=False)
    frames: list = field(default_factory=list)
    suspended_in: Location | None = None
    error: str | None = None
    absent: list = field(default_factory=list)   # fields this QEMU version does not have


def ucontext(target: Target, address: int) -> Object:
    """The CoroutineUContext of a Coroutine * (Coroutine is its first member `base`).

    :returns: CoroutineUContext"""
    return Object(target, target.lookup_type("CoroutineUContext"), int(address))


def pointer_guard(target: Target, threads: list[Thread] | None = None) -> int:
    """glibc's pointer guard (the same for every thread), read from a thread's TCB."""
    facts = target.facts
    for th in threads if threads is not None else target.threads():
        tp = th.registers.get(facts.TLS_REGISTERS[0])
        if tp:
            try:
                return target.read_uint(tp + facts.POINTER_GUARD_OFFSET, 8)
            except TargetError:
                continue
    raise TargetError("no thread with a readable thread pointer: cannot demangle jmp_buf")


def saved_registers(target: Target, address: int, guard: int,
                    thread_registers: dict[str, int] | None = None) -> dict[str, int]:
    """A suspended coroutine's registers from its jmp_buf, demangled. The TLS registers
    (facts.TLS_REGISTERS) come from `thread_registers` (the thread that shows the
    coroutine) so TLS lookups work."""
    facts = target.facts
    jmpbuf = ucontext(target, address).env[0].member_("__jmpbuf")
    regs = {}
    for name, slot in facts.JMPBUF_SLOTS.items():
        value = jmpbuf[slot].value_() & (1 << 64) - 1
        regs[name] = facts.demangle(value, guard) if name in facts.JMPBUF_MANGLED else value
    for name in facts.TLS_REGISTERS:
        if thread_registers and name in thread_registers:
            regs[name] = thread_registers[name]
    return regs


def leader(target: Target, thread: Thread) -> int | None:
    """The address of `thread`'s leader: the pseudo-coroutine that stands for the thread's
    own stack (a coroutine entered from outside any coroutine has it as caller)."""
    try:
        name, file = _ucontext_variable(target, "leader")
        address, _ = target.variable_address(name, file=file, thread=thread)
        return address
    except MissingDebugInfo:
        return None


def kernel_worker(target: Target, thread: Thread) -> bool:
    """Whether `thread` has no user-level state (pc and sp zero): a kernel worker thread of
    the process, as KVM's in a qemu-system core. It has no stack, TLS or coroutine to read."""
    facts = target.facts
    return not thread.registers.get(facts.PC) and not thread.registers.get(facts.SP)


def current_coroutine(target: Target, thread: Thread) -> int | None:
    """The Coroutine * running on `thread`, or None when it runs no coroutine (NULL or the
    thread's leader)."""
    name, file = _ucontext_variable(target, "current")
    current = target.variable(name, file=file, thread=thread).value_()
    if not current or current == leader(target, thread):
        return None
    return current


def _ucontext_variable(target, name):
    """(variable, file) of util/coroutine-ucontext.c's per-thread `name`: co_tls_NAME since
    QEMU 7.0 (QEMU_DEFINE_STATIC_CO_TLS), a plain NAME before, or a NAME in any file (a
    program copying that file's shape, like the fixtures' crash_segv.c)."""
    try:
        return first_variable(target, co_tls(name), ("coroutine-ucontext.c", None))
    except MissingDebugInfo:
        raise MissingDebugInfo(f"no per-thread coroutine variable {name!r} "
                               "(util/coroutine-ucontext.c)") from None


def callers(target: Target, address: int, limit: int = CHAIN_LIMIT) -> Iterator[int]:
    """The co->caller chain above the coroutine at `address` (not including it)."""
    seen = {address}
    co = Object(target, target.lookup_type("Coroutine"), address)
    while True:
        caller = co.caller.value_()
        if not caller:
            return
        if caller in seen or len(seen) > limit:
            raise CorruptError(f"co->caller chain cycles at {caller:#x}", caller)
        seen.add(caller)
        yield caller
        co = Object(target, co.type_, caller)


def to_bottom(frames: list[Frame]) -> list[Frame]:
    """Frames up to coroutine_trampoline: below it are glibc's __start_context and junk."""
    for i, frame in enumerate(frames):
        if frame.location.function == BOTTOM:
            return frames[:i + 1]
    return frames


def suspended_in(frames: list[Frame]) -> Location | None:
    """The first Location outside the coroutine machinery (inline frames included)."""
    for frame in frames:
        for loc in frame.locations():
            if loc.function not in MACHINERY:
                return loc
    return None


def describe(target: Target, address: int, guard: int,
             thread_registers: dict[str, int] | None = None,
             unwind: bool = True) -> CoroutineRecord:
    """A CoroutineRecord for the coroutine at `address` (state/waits left to the caller)."""
    rec = CoroutineRecord(address=int(address))
    try:
        co = Object(target, target.lookup_type("Coroutine"), rec.address)
        if not read_fields(rec, co, entry=lambda: symbol(target, co.entry.value_(), offset=False),
                           entry_arg="entry_arg", caller=lambda: co.caller.value_() or None):
            return rec
        rec.registers = saved_registers(target, rec.address, guard, thread_registers)
        facts = target.facts
        rec.pc, rec.sp = rec.registers[facts.PC], rec.registers[facts.SP]
        if unwind:
            rec.frames = to_bottom(target.unwind(rec.registers))
            rec.suspended_in = suspended_in(rec.frames)
    except TargetError as e:
        rec.error = str(e)
    return rec


def symbol(target: Target, pc: int, offset: bool = True) -> str | None:
    """`function+offset` (or `function`, and always with offset=False: an entry point,
    whose offset gdb counts from the function's lowest address) for a code address, None
    for NULL, hex if unknown."""
    if not pc:
        return None
    try:
        loc = target.symbolize(pc)
    except TargetError:
        loc = None
    if loc is None or not loc.function:
        return f"{pc:#x}"
    return f"{loc.function}+{loc.offset}" if offset and loc.offset else loc.function


def coqueue_waiters(queue: Object) -> Iterator[Object]:
    """The coroutines parked in a CoQueue (entries, linked by co_queue_next).

    :param queue: CoQueue
    :returns: iterator of Coroutine"""
    return qsimpleq_foreach(queue.entries, "co_queue_next")


def comutex_waiters(mutex: Object) -> Iterator[int]:
    """The coroutines waiting for a CoMutex (CoWaitRecords in from_push and to_pop).

    :param mutex: CoMutex
    :returns: iterator of Coroutine * (addresses)"""
    for head in ("from_push", "to_pop"):
        for record in qslist_foreach(mutex.member_(head), "next"):
            yield record.co.value_()


class Coroutines:
    """Coroutines of one target described as every walker needs them: the threads, glibc's
    pointer guard and the coroutine each thread runs are read once, on first use."""

    def __init__(self, target: Target, threads: list[Thread] | None = None):
        self.target = target
        self.threads = threads if threads is not None else target.threads()
        self._guard = None
        self._running = None

    @property
    def guard(self) -> int:
        """The pointer guard; TargetError when no thread pointer is readable."""
        if self._guard is None:
            self._guard = pointer_guard(self.target, self.threads)
        return self._guard

    def running(self) -> dict[int, Thread]:
        """{Coroutine address: Thread} of the coroutine each thread runs."""
        if self._running is None:
            self._running = {}
            for th in self.threads:
                try:
                    current = current_coroutine(self.target, th)
                except TargetError:
                    continue
                if current is not None:
                    self._running[current] = th
        return self._running

    def describe(self, address: int, unwind: bool = True) -> CoroutineRecord:
        """describe() the coroutine at `address` (TLS read as the first thread's)."""
        registers = self.threads[0].registers if self.threads else None
        return describe(self.target, address, self.guard, registers, unwind=unwind)


def thread_coroutine_chain(target: Target, thread: Thread,
                           guard: int) -> tuple[CoroutineRecord | None, list[CoroutineRecord]]:
    """(current coroutine record or None, [caller records]) of a thread, for `qemu bt`:
    the current one runs on the thread's stack; its callers are suspended."""
    current = current_coroutine(target, thread)
    if current is None:
        return None, []
    head = describe(target, current, guard, thread.registers, unwind=False)
    head.state, head.thread = "running", thread.num
    thread_leader = leader(target, thread)
    chain = []
    try:
        for caller in callers(target, current):
            rec = describe(target, caller, guard, thread.registers)
            if caller == thread_leader:  # the thread's stack outside coroutines
                rec.state = "leader"
            chain.append(rec)
    except TargetError as e:  # the callers before a cycle or a bad link are kept
        bad = CoroutineRecord(address=getattr(e, "address", None) or 0)
        bad.error = str(e)
        chain.append(bad)
    return head, chain


@dataclass
class ThreadBacktrace(Record):
    """A thread's stack and the coroutines in the co->caller chain of its current one."""
    MISSING = ()
    num: int
    tid: int
    name: str | None
    frames: list = field(default_factory=list)
    current: CoroutineRecord | None = None
    callers: list = field(default_factory=list)
    error: str | None = None
    kernel_worker: bool = False   # no user-level state (see kernel_worker): nothing to read


def backtraces(target: Target, threads: list[Thread]) -> list[ThreadBacktrace]:
    """ThreadBacktrace for each of `threads` (for `qemu bt`); without QEMU's coroutine
    debug info, the threads' stacks alone."""
    coroutines = target.has_type("CoroutineUContext")
    guard, guard_error = None, None
    if coroutines:
        try:
            guard = pointer_guard(target)
        except TargetError as e:
            guard_error = str(e)
    out = []
    for th in threads:
        bt = ThreadBacktrace(th.num, th.tid, th.name)
        try:
            bt.frames = target.unwind(th.registers)
            bt.kernel_worker = kernel_worker(target, th)
            if coroutines and not bt.kernel_worker:
                if guard is None:
                    raise TargetError(guard_error)
                bt.current, bt.callers = thread_coroutine_chain(target, th, guard)
        except TargetError as e:
            bt.error = str(e)
        out.append(bt)
    return out
