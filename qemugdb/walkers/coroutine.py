"""QEMU coroutines (ucontext backend): saved registers, the current coroutine of each thread
and its callers, and every coroutine reachable from known roots with why it waits.

A suspended coroutine's registers are in CoroutineUContext.env, a glibc sigjmp_buf whose
layout and pointer mangling are per-architecture facts (corefile.arch.<arch>). Walkers yield
records and never print; a root that cannot be read becomes an error string in the result.
"""

import importlib
from dataclasses import dataclass, field

from .aio import known_contexts
from .block import all_bdrv_states, block_backends
from .job import all_jobs
from ..obj import Object, co_tls, first_variable, read_fields, strip_typedefs
from .queue import qlist_foreach, qsimpleq_foreach, qslist_foreach, qtailq_foreach
from ..target import CorruptError, Location, MissingDebugInfo, TargetError

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


def arch(target):
    """The architecture facts module (corefile.arch.<arch>, pure data)."""
    return importlib.import_module(f"corefile.arch.{target.arch}")


@dataclass
class CoroutineRecord:
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


def ucontext(target, address):
    """The CoroutineUContext of a Coroutine * (Coroutine is its first member `base`)."""
    return Object(target, target.lookup_type("CoroutineUContext"), int(address))


def pointer_guard(target, threads=None):
    """glibc's pointer guard (the same for every thread), read from a thread's TCB."""
    facts = arch(target)
    for th in threads if threads is not None else target.threads():
        tp = th.registers.get("fs_base")
        if tp:
            try:
                return target.read_uint(tp + facts.POINTER_GUARD_OFFSET, 8)
            except TargetError:
                continue
    raise TargetError("no thread with a readable thread pointer: cannot demangle jmp_buf")


def saved_registers(target, address, guard, thread_registers=None):
    """A suspended coroutine's registers from its jmp_buf, demangled. fs_base/gs_base come
    from `thread_registers` (the thread that shows the coroutine) so TLS lookups work."""
    facts = arch(target)
    jmpbuf = ucontext(target, address).env[0].member_("__jmpbuf")
    regs = {}
    for name, slot in facts.JMPBUF_SLOTS.items():
        value = jmpbuf[slot].value_() & (1 << 64) - 1
        regs[name] = facts.demangle(value, guard) if name in facts.JMPBUF_MANGLED else value
    for name in ("fs_base", "gs_base"):
        if thread_registers and name in thread_registers:
            regs[name] = thread_registers[name]
    return regs


def leader(target, thread):
    """The address of `thread`'s leader: the pseudo-coroutine that stands for the thread's
    own stack (a coroutine entered from outside any coroutine has it as caller)."""
    try:
        name, file = _ucontext_variable(target, "leader")
        address, _ = target.variable_address(name, file=file, thread=thread)
        return address
    except MissingDebugInfo:
        return None


def kernel_worker(target, thread):
    """Whether `thread` has no user-level state (pc and sp zero): a kernel worker thread of
    the process, as KVM's in a qemu-system core. It has no stack, TLS or coroutine to read."""
    facts = arch(target)
    return not thread.registers.get(facts.PC) and not thread.registers.get(facts.SP)


def current_coroutine(target, thread):
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


def callers(target, address, limit=CHAIN_LIMIT):
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


def to_bottom(frames):
    """Frames up to coroutine_trampoline: below it are glibc's __start_context and junk."""
    for i, frame in enumerate(frames):
        if frame.location.function == BOTTOM:
            return frames[:i + 1]
    return frames


def suspended_in(frames):
    """The first Location outside the coroutine machinery (inline frames included)."""
    for frame in frames:
        for loc in [*frame.location.inlined, frame.location]:
            if loc.function not in MACHINERY:
                return loc
    return None


def describe(target, address, guard, thread_registers=None, unwind=True):
    """A CoroutineRecord for the coroutine at `address` (state/waits left to the caller)."""
    rec = CoroutineRecord(address=int(address))
    try:
        co = Object(target, target.lookup_type("Coroutine"), rec.address)
        if not read_fields(rec, co, entry=lambda: _symbol_name(target, co.entry.value_()),
                           entry_arg="entry_arg", caller=lambda: co.caller.value_() or None):
            return rec
        rec.registers = saved_registers(target, rec.address, guard, thread_registers)
        facts = arch(target)
        rec.pc, rec.sp = rec.registers[facts.PC], rec.registers[facts.SP]
        if unwind:
            rec.frames = to_bottom(target.unwind(rec.registers))
            rec.suspended_in = suspended_in(rec.frames)
    except TargetError as e:
        rec.error = str(e)
    return rec


def _symbol_name(target, pc):
    """The function containing pc, None for NULL."""
    return target.symbolize(pc).function if pc else None


# Roots: each yields (Coroutine address, why it waits, state).

def _thread_roots(target, threads):
    for th in threads:
        try:
            current = current_coroutine(target, th)
        except TargetError:
            continue
        if current is None:
            continue
        yield current, f"current on thread {th.num} (LWP {th.tid})", "running", th
        below, thread_leader = current, leader(target, th)
        for caller in callers(target, current):
            if caller == thread_leader:
                break
            yield caller, f"caller of {below:#x} (thread {th.num})", "suspended", th
            below = caller


def _node_name(bs):
    try:
        return bs.node_name.string_() or f"{bs.address_:#x}"
    except TargetError:
        return f"{bs.address_:#x}"


def coqueue_waiters(queue):
    """The coroutines parked in a CoQueue (entries, linked by co_queue_next)."""
    return qsimpleq_foreach(queue.entries, "co_queue_next")


def comutex_waiters(mutex):
    """The coroutines waiting for a CoMutex (CoWaitRecords in from_push and to_pop)."""
    for head in ("from_push", "to_pop"):
        for record in qslist_foreach(mutex.member_(head), "next"):
            yield record.co.value_()


def _request_roots(target):
    for bs in all_bdrv_states(target):
        name = _node_name(bs)
        if strip_typedefs(bs.reqs_lock.type_).name == "CoMutex":  # QEMU < 8.0
            holder = bs.reqs_lock.holder.value_()
            if holder:
                yield holder, f"holds reqs_lock of node {name}", "suspended"
            for co in comutex_waiters(bs.reqs_lock):
                yield co, f"waits for reqs_lock of node {name}", "suspended"
        for req in qlist_foreach(bs.tracked_requests, "list"):
            what = (f"{req.type.enum_name_() or req.type.value_()} offset {req.offset.value_()}"
                    f" bytes {req.bytes.value_()}")
            if req.co.value_():
                yield req.co.value_(), f"tracked request on node {name}: {what}", "suspended"
            for co in coqueue_waiters(req.wait_queue):
                yield co.address_, (f"waits for serialising request on node {name}: "
                                    f"{what}"), "suspended"


def _backend_roots(target):
    for blk in block_backends(target):
        try:
            name = blk.name.string_() if blk.name.value_() else ""
        except TargetError:
            name = ""
        name = name or f"{blk.address_:#x}"
        for co in coqueue_waiters(blk.queued_requests):
            yield co.address_, f"queued on BlockBackend {name} while it is quiesced", \
                "suspended"


def _throttle_roots(target):
    groups = target.variable("throttle_groups", file="throttle-groups.c")
    try:
        directions = [n.removeprefix("THROTTLE_").lower()
                      for n, _ in target.lookup_type("enum ThrottleDirection").enumerators
                      if n != "THROTTLE_MAX"]
    except MissingDebugInfo:
        directions = ["read", "write"]  # QEMU < 8.1: indexed by is_write
    for tg in qtailq_foreach(groups, "list"):
        gname = tg.name.string_()
        for member in qlist_foreach(tg.head, "round_robin"):
            reqs = member.throttled_reqs
            for i in range(strip_typedefs(reqs.type_).length or 0):
                d = directions[i] if i < len(directions) else str(i)
                for co in coqueue_waiters(reqs[i]):
                    yield co.address_, f"throttled {d} in throttle group {gname}", "suspended"


def _job_roots(target):
    for job in all_jobs(target):
        co = job.co.value_()
        if co:
            status = job.status.enum_name_() or job.status.value_()
            yield co, f"job {job.id.string_()} ({status})", "suspended"


def _scheduled_roots(target, threads):
    ctx_type = target.lookup_type("AioContext")
    for address, names, _ in known_contexts(target, threads):
        ctx = Object(target, ctx_type, address)
        label = f"AioContext {address:#x}" + (f" ({', '.join(names)})" if names else "")
        for co in qslist_foreach(ctx.scheduled_coroutines, "co_scheduled_next"):
            yield co.address_, f"scheduled on {label}", "suspended"


def _pools(target, threads, shared, per_thread):
    """[(label, pool list head)]: the shared pool variable, then each thread's TLS one."""
    pools = [(shared.replace("_", " "), target.variable(shared, file="qemu-coroutine.c"))]
    try:
        name, file = first_variable(target, co_tls(per_thread), ("qemu-coroutine.c",))
    except MissingDebugInfo:
        return pools
    for th in threads:
        try:
            pools.append((f"thread {th.num} {per_thread.replace('_', ' ')}",
                          target.variable(name, file=file, thread=th)))
        except TargetError:
            continue
    return pools


def _pool_roots(target, threads):
    if target.has_type("CoroutinePoolBatch"):  # QEMU >= 7.2.50: batches of coroutines
        for where, pool in _pools(target, threads, "global_pool", "local_pool"):
            for batch in qslist_foreach(pool, "next"):
                for co in qslist_foreach(batch.list, "pool_next"):
                    yield co.address_, f"idle in {where}", "pooled"
        return
    for where, pool in _pools(target, threads, "release_pool", "alloc_pool"):
        for co in qslist_foreach(pool, "pool_next"):
            yield co.address_, f"idle in {where}", "pooled"


@dataclass
class CoroutineList:
    coroutines: list
    errors: list   # roots that could not be walked (one line each)
    missing: list = field(default_factory=list)  # roots this program lacks, with the reason


def all_coroutines(target, unwind=True, pooled=True):
    """Every coroutine reachable from the known roots, merged by address: threads' current
    coroutines and callers, jobs, tracked requests and their waiters, BlockBackends'
    queued_requests, throttle group queues, AioContext scheduled lists and (with pooled)
    the coroutine pools."""
    target.lookup_type("CoroutineUContext")  # MissingDebugInfo: not QEMU (ucontext backend)
    threads = target.threads()
    guard = pointer_guard(target, threads)
    main_regs = threads[0].registers if threads else None
    found = {}
    errors = []

    def add(address, why, state, thread=None):
        rec = found.get(address)
        if rec is None:
            found[address] = rec = CoroutineRecord(address=address, state=state)
        if state == "running" or rec.state == "pooled":
            rec.state = state
        if thread is not None and state == "running":
            rec.thread = thread.num
        if why not in rec.waits:
            rec.waits.append(why)

    roots = [("threads", lambda: _thread_roots(target, threads)),
             ("jobs", lambda: _job_roots(target)),
             ("tracked requests", lambda: _request_roots(target)),
             ("BlockBackend queues", lambda: _backend_roots(target)),
             ("throttle groups", lambda: _throttle_roots(target)),
             ("AioContexts", lambda: _scheduled_roots(target, threads))]
    if pooled:
        roots.append(("coroutine pools", lambda: _pool_roots(target, threads)))
    missing = []
    for what, walk in roots:
        try:
            for item in walk():
                add(*item)
        except MissingDebugInfo as e:
            missing.append(f"{what}: {e}")
        except TargetError as e:
            errors.append(f"{what}: {e}")
    out = []
    for address, rec in found.items():
        full = describe(target, address, guard, main_regs,
                        unwind=unwind and rec.state == "suspended")
        full.state, full.waits, full.thread = rec.state, rec.waits, rec.thread
        out.append(full)
    return CoroutineList(out, errors, missing)


def thread_coroutine_chain(target, thread, guard):
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
class ThreadBacktrace:
    """A thread's stack and the coroutines in the co->caller chain of its current one."""
    num: int
    tid: int
    name: str | None
    frames: list = field(default_factory=list)
    current: CoroutineRecord | None = None
    callers: list = field(default_factory=list)
    error: str | None = None
    kernel_worker: bool = False   # no user-level state (see kernel_worker): nothing to read


def backtraces(target, threads):
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
