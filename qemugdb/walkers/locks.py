"""Locks and blocked threads: what each thread waits for (from the system call it sits in
and its stack), and every lock reachable from QEMU's globals and the objects the other
walkers know, with its owner and its waiters.

A thread in the kernel has the system call number in orig_rax and its arguments in
rdi, rsi, ...: for futex, rdi is the futex word, which names the pthread mutex, condition
variable or QemuEvent the thread waits for; the stack tells which. An address is named
from the symbol table (a global or file-static, gdb's `info symbol`) or as a member of an
object the walkers know (an AioContext, a node, its driver's state, a BlockBackend, a
throttle group): member paths and lock types come from DWARF, never from offsets.
"""

from dataclasses import dataclass, field

from ..obj import Object, find_member, first_variable, strip_typedefs, thread_flag
from ..result import Record
from ..target import MissingDebugInfo, Target, TargetError, Thread
from . import aio, coroutine, system
from .queue import qsimpleq_foreach, qtailq_foreach
from .roots import (all_bdrv_states, backend_name, block_backends, node_name,
                    throttle_group_members, throttle_groups)
from . import threads
from .threads import COND_WAITS, MUTEX_WAITS, iothread_ids, thread_role

# Lock types found by their DWARF type name inside known objects.
LOCK_TYPES = ("QemuMutex", "QemuRecMutex", "CoMutex", "CoRwlock", "CoQueue")
MEMBER_DEPTH = 3        # how deep embedded structs are searched for locks
EVENT_WAITS = ("qemu_event_wait",)
JOIN_WAITS = ("__pthread_clockjoin_ex", "___pthread_join", "pthread_join")
POLLS = ("poll", "ppoll", "epoll_wait", "epoll_pwait", "epoll_pwait2", "select", "pselect6",
         "io_uring_enter")
SLEEPS = ("nanosleep", "clock_nanosleep", "pause")
IO_CALLS = ("read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev",
            "preadv2", "pwritev2", "fsync", "fdatasync", "fallocate", "io_getevents")
# Frames to skip when naming the function that waits: QEMU's wrappers and BQL takers.
WAIT_WRAPPERS = frozenset({*threads.WAIT_WRAPPERS, *system.BQL_TAKERS})
# Event loops: a thread polling in one of these with nothing nested waits for work.
EVENT_LOOPS = ("main_loop_wait", "os_host_main_loop_wait", "g_main_loop_run",
               "g_main_context_iteration")


@dataclass
class Wait(Record):
    """What a blocked thread waits for."""
    ERRORS = ()
    MISSING = ()
    kind: str                      # mutex | condvar | event | join | futex | aio-wait | drain | io
                                   # | syscall
    address: int | None = None     # the mutex, condvar, event or futex word
    name: str | None = None        # its QEMU name: a variable, or an object's member
    owner_tid: int | None = None   # a mutex's owner (glibc's __owner), a joined thread
    owner_thread: int | None = None
    detail: str | None = None      # e.g. the fd of an I/O call


@dataclass
class ThreadState(Record):
    """One thread: its role, whether it is blocked and on what, and its BQL flag."""
    MISSING = ()
    num: int
    tid: int
    role: str
    state: str                     # blocked | idle | guest | sleeping | running | unknown
    syscall: str | None = None
    where: str | None = None       # the QEMU function that waits (or runs)
    waits_for: Wait | None = None
    bql: bool | None = None        # its bql_locked / iothread_locked flag
    error: str | None = None


@dataclass
class Lock(Record):
    """A lock, its owner and its waiters."""
    MISSING = ()
    kind: str                      # QemuMutex | QemuRecMutex | CoMutex | CoRwlock | CoQueue | graph-lock
    name: str
    address: int
    locked: bool | None = None
    owner_tid: int | None = None   # pthread mutexes
    owner_thread: int | None = None
    holder: int | None = None      # CoMutex: the holding coroutine
    count: int | None = None       # recursion count, CoMutex lockers (holder and waiters),
                                   # CoRwlock owners, graph-lock readers
    waiting_threads: list = field(default_factory=list)     # thread numbers
    waiting_coroutines: list = field(default_factory=list)  # Coroutine addresses
    readers: list = field(default_factory=list)  # graph lock: [{"context", "count"}]
    error: str | None = None


@dataclass
class LockList(Record):
    """What `qemu locks` shows."""
    ERRORS = ('errors',)
    MISSING = ('missing',)
    bql_flag: str | None           # bql_locked / iothread_locked, as this QEMU names it
    threads: list                  # ThreadState
    locks: list                    # Lock
    errors: list = field(default_factory=list)
    missing: list = field(default_factory=list)


def _functions(frames):
    """(function, module) of every frame, inline ones included, innermost first."""
    for f in frames:
        for loc in f.locations():
            yield loc.function or "?", f.location.module, loc.file or ""


def _signed(value):
    return value - (1 << 64) if value is not None and value >> 63 else value


def _waiter(functions, executable, after=()):
    """The first QEMU function (in the executable, not a wrapper or a header's inline
    function) outward of the innermost of `after` (of the whole stack without `after`)."""
    start = 0
    for i, (name, _, _) in enumerate(functions):
        if name in after:
            start = i + 1
            break
    for name, module, file in functions[start:]:
        if module == executable and name not in WAIT_WRAPPERS and not file.startswith("/usr/"):
            return name
    return None


def _body(functions):
    """The thread's body: the function qemu_thread_start calls, main's loop otherwise."""
    names = [n for n, _, _ in functions]
    if "qemu_thread_start" in names:
        i = names.index("qemu_thread_start")
        return names[i - 1] if i else None
    return None


# ---------------------------------------------------------------- naming addresses

class Names:
    """Names addresses: variables from the symbol table, members of known objects."""

    def __init__(self, target: Target):
        self.target = target
        self.objects = []          # (start, end, label, type)
        self._layouts = {}

    def add(self, label: str, obj: Object) -> None:
        """Name the addresses inside obj as `label.member`.

        :param obj: any struct"""
        try:
            size = strip_typedefs(obj.type_).size or 0
        except TargetError:
            return
        if obj.address_ and size:
            self.objects.append((obj.address_, obj.address_ + size, label, obj.type_))

    def name(self, address: int, exact: bool = False) -> str | None:
        """`variable.member.path`, `LABEL.member` or None; with `exact`, only when address
        is where that member starts."""
        found = self.target.data_symbol(address)
        if found is not None:
            symbol, offset = found
            try:
                _, type_ = self.target.variable_address(symbol)
                if offset < (strip_typedefs(type_).size or 0):
                    return _exact(symbol, *member_path(type_, offset), exact)
            except TargetError:
                pass
            return symbol + (f"+{offset}" if offset else "") if not exact or not offset \
                else None
        for start, end, label, type_ in self.objects:
            if start <= address < end:
                return _exact(label, *member_path(type_, address - start), exact)
        return None


def _exact(label, path, rest, exact):
    return None if exact and rest else label + path + (f"+{rest}" if rest else "")


# Types shown whole: a path into a lock stops at the lock.
LEAF_TYPES = (*LOCK_TYPES, "QemuCond", "QemuEvent", "QemuSemaphore", "QemuLockCnt",
              "pthread_mutex_t", "pthread_cond_t")


def member_path(type_: object, offset: int, depth: int = 8) -> tuple[str, int]:
    """(`.a.b`, offset left) of the member at `offset` in type_, down to a lock."""
    path = ""
    for _ in range(depth):
        if _type_names(type_) & set(LEAF_TYPES):
            break
        t = strip_typedefs(type_)
        if t.kind == "array" and t.target is not None:
            size = strip_typedefs(t.target).size or 0
            if not size:
                break
            path += f"[{offset // size}]"
            type_, offset = t.target, offset % size
            continue
        if t.kind not in ("struct", "union"):
            break
        inner = [m for m in t.members if m.name and m.offset <= offset <
                 m.offset + (strip_typedefs(m.type).size or 0)]
        if not inner:
            break
        m = inner[0]
        path += f".{m.name}"
        type_, offset = m.type, offset - m.offset
    return path, offset


def _type_names(type_):
    """Every name a type has through its typedef chain."""
    names = set()
    for _ in range(8):
        if type_.name:
            names.add(type_.name)
        if type_.kind != "typedef":
            break
        type_ = type_.target
    return names


# ---------------------------------------------------------------- glibc

def _offset(target, type_name, *path):
    """Offset of a member path in a glibc type (from DWARF)."""
    type_ = target.lookup_type(type_name)
    total = 0
    for name in path:
        found = find_member(type_, name)
        if found is None:
            raise MissingDebugInfo(f"{type_name} has no member {name!r}")
        total += found[0]
        type_ = found[1].type
    return total


def pthread_mutex(obj: Object) -> Object:
    """The pthread_mutex_t inside a QemuMutex / QemuRecMutex (or the object itself).

    :param obj: QemuMutex, QemuRecMutex or pthread_mutex_t
    :returns: pthread_mutex_t"""
    for _ in range(4):
        t = strip_typedefs(obj.type_)
        if obj.type_.name == "pthread_mutex_t" or t.kind == "union":
            return obj
        if t.kind != "struct" or not t.members:
            break
        obj = obj.member_(t.members[0].name)
    raise MissingDebugInfo(f"no pthread_mutex_t in {obj.type_.name}")


def mutex_state(mutex: Object) -> tuple[bool, int, int]:
    """(locked, owner tid, recursion count) of a pthread_mutex_t Object.

    :param mutex: pthread_mutex_t"""
    data = mutex.member_("__data")
    return bool(data.member_("__lock").value_()), data.member_("__owner").value_(), \
        data.member_("__count").value_()


# ---------------------------------------------------------------- threads

def thread_states(target: Target, threads: list[Thread] | None = None,
                  names: Names | None = None,
                  iothreads: dict[int, str] | None = None) -> list[ThreadState]:
    """ThreadState of each thread; `iothreads` is {tid: IOThread id} when known."""
    threads = threads if threads is not None else target.threads()
    names = names or Names(target)
    facts = target.facts
    executable = target.process().executable
    by_tid = {th.tid: th.num for th in threads}
    iothreads = iothread_ids(target) if iothreads is None else iothreads
    try:
        flag, _ = first_variable(target, system.BQL_FLAGS, ("cpus.c",))
    except MissingDebugInfo:
        flag = None
    out = []
    for th in threads:
        st = ThreadState(th.num, th.tid, "other", "unknown")
        out.append(st)
        if flag:
            st.bql = thread_flag(target, (flag,), ("cpus.c",), th)
        try:
            fr = target.unwind(th.registers)
            functions = list(_functions(fr))
            st.role = "kernel worker" if coroutine.kernel_worker(target, th) else thread_role(fr)
            if st.role == "coroutine":   # its stack goes on in the co->caller chain
                st.role = thread_role(fr + _caller_frames(target, threads, th))
            if st.role == "iothread" and th.tid in iothreads:   # as the report names it
                st.role = f"iothread {iothreads[th.tid]}"
            _classify(target, facts, st, th.registers, functions, executable, names)
        except TargetError as e:
            st.error = str(e)
        if st.waits_for and st.waits_for.owner_tid:
            st.waits_for.owner_thread = by_tid.get(st.waits_for.owner_tid)
    return out


def _caller_frames(target, threads, thread):
    """The frames of the coroutines in the co->caller chain of the thread's current one,
    down to the thread's own stack (its leader's); [] when unreadable."""
    try:
        _, chain = coroutine.thread_coroutine_chain(target, thread,
                                                    coroutine.pointer_guard(target, threads))
    except TargetError:
        return []
    return [f for rec in chain for f in rec.frames]


def _classify(target, facts, st, regs, functions, executable, names):
    nr = _signed(regs.get(facts.SYSCALL_NR))
    fnames = [n for n, _, _ in functions]
    st.where = _waiter(functions, executable)
    if nr is None or fnames in ([], ["?"]):
        return   # unknown: no syscall register or no stack to read
    if nr < 0:
        st.state = "running"   # user code: running when dumped, or stopped by a debugger
        return
    call = facts.SYSCALLS.get(nr, f"syscall {nr}")
    if call == "restart_syscall":   # a timed wait a stop (ptrace, gcore) interrupted
        call = _restarted(fnames, facts) or call
        st.syscall = f"{call} (restarted)"
    else:
        st.syscall = call
    args = [regs.get(r) for r in facts.SYSCALL_ARGS]
    body = _body(functions)
    if call == "futex":
        st.state = "blocked"
        st.waits_for = _futex_wait(target, args[0], fnames, names)
        if st.where is not None and st.where == body and st.waits_for.kind != "mutex":
            st.state = "idle"   # a worker or the RCU thread waiting for work
    elif call in POLLS:
        _poll_wait(st, functions, executable, body, fnames)
    elif call == "ioctl" and args[1] == facts.KVM_RUN:
        st.state = "guest"
    elif call in SLEEPS:
        st.state = "sleeping"
    elif call in IO_CALLS:
        st.state = "blocked"
        st.waits_for = Wait("io", detail=f"{call} on fd {args[0]}")
    else:
        st.state = "blocked"
        st.waits_for = Wait("syscall", detail=call)


def _restarted(fnames, facts):
    """The system call restart_syscall resumes (its arguments are still in the registers),
    told by the stack: glibc's waits are futexes, else the first function whose name has
    a system call's name as a word (__GI___poll, __ppoll, qemu_futex_wait)."""
    if any(n in fnames for n in (*MUTEX_WAITS, *COND_WAITS, *EVENT_WAITS, *JOIN_WAITS)):
        return "futex"
    calls = set(facts.SYSCALLS.values())
    for name in fnames:
        found = [w for w in name.lower().split("_") if w in calls]
        if found:
            return found[0]
    return None


def _poll_wait(st, functions, executable, body, fnames):
    """A poll: nested in AIO_WAIT_WHILE (aio_poll called from anything but the thread's
    loop) it waits for that condition; in an event loop it waits for work."""
    loop = next((n for n in fnames if n == "aio_poll" or n in EVENT_LOOPS), None)
    if loop == "aio_poll":
        caller = _waiter(functions, executable, after=("aio_poll",))
        if caller is not None and caller != body and caller not in EVENT_LOOPS:
            st.state, st.where = "blocked", caller
            st.waits_for = Wait("drain" if "drain" in caller else "aio-wait",
                                detail=f"AIO_WAIT_WHILE in {caller}")
            return
    st.state = "idle"


def _futex_wait(target, word, fnames, names):
    """Wait for the futex word: a mutex, condvar or QemuEvent, as the stack says."""
    top = fnames[:8]
    try:
        if any(n in MUTEX_WAITS for n in top):
            address = word - _offset(target, "pthread_mutex_t", "__data", "__lock")
            mutex = Object(target, target.lookup_type("pthread_mutex_t"), address)
            owner = mutex_state(mutex)[1]
            return Wait("mutex", address, names.name(address), owner or None)
        if any(n in COND_WAITS for n in top):
            base = _offset(target, "pthread_cond_t", "__data", "__g_signals")
            for g in (0, 1):   # the waiter's group: either __g_signals[] slot
                name = names.name(word - base - 4 * g, exact=True)
                if name:
                    return Wait("condvar", word - base - 4 * g, name)
            return Wait("condvar", word - base)
        if any(n in JOIN_WAITS for n in top):   # the futex word is the joined thread's tid
            tid = target.read_uint(word, 4)
            return Wait("join", word, f"thread exit of LWP {tid}", tid or None)
        if any(n in EVENT_WAITS for n in fnames):
            address = word - _offset(target, "QemuEvent", "value")
            return Wait("event", address, names.name(address))
    except TargetError:
        pass
    return Wait("futex", word, names.name(word))


# ---------------------------------------------------------------- locks

def _lock_layout(target, type_, cache, depth=MEMBER_DEPTH):
    """[(path, offset, lock type name, count)] of the locks embedded in type_ (arrays of
    them too), from DWARF; cached per type."""
    # Keyed by the type object, not id(type_): a wrapper made afresh (an anonymous
    # struct's) dies after use and a later type could get its id, and its layout.
    if type_ in cache:
        return cache[type_]
    out = []
    t = strip_typedefs(type_)
    if t.kind in ("struct", "union") and depth:
        for m in t.members:
            mt, count = strip_typedefs(m.type), None
            member_type = m.type
            if mt.kind == "array" and mt.target is not None:
                count, member_type = mt.length or 0, mt.target
            name = _lock_type_name(member_type)
            if name:
                out.append((m.name or "", m.offset, name, count))
            elif count is None and mt.kind in ("struct", "union"):
                for path, off, lname, n in _lock_layout(target, m.type, cache, depth - 1):
                    out.append(((m.name + "." if m.name else "") + path, m.offset + off,
                                lname, n))
    cache[type_] = out
    return out


def _lock_type_name(type_):
    """The lock type a member has (a LOCK_TYPES name through typedefs), else None."""
    return next((n for n in LOCK_TYPES if n in _type_names(type_)), None)


def read_lock(target: Target, kind: str, name: str, address: int) -> Lock:
    """A Lock for the lock of type `kind` at address."""
    rec = Lock(kind, name, address)
    try:
        obj = Object(target, target.lookup_type(kind), address)
        if kind in ("QemuMutex", "QemuRecMutex"):
            rec.locked, owner, count = mutex_state(pthread_mutex(obj))
            rec.owner_tid = owner or None
            rec.count = count if kind == "QemuRecMutex" else None
        elif kind == "CoMutex":
            rec.count = obj.locked.value_()   # pending lockers: the holder and its waiters
            rec.locked = bool(rec.count)
            rec.holder = obj.holder.value_() or None
            rec.waiting_coroutines = list(coroutine.comutex_waiters(obj))
        elif kind == "CoRwlock":
            rec.count = obj.owners.value_()
            rec.locked = rec.count != 0 or bool(obj.mutex.locked.value_())
            rec.holder = obj.mutex.holder.value_() or None
            rec.waiting_coroutines = [t.co.value_() for t in
                                      qsimpleq_foreach(obj.tickets, "next")]
            rec.waiting_coroutines += list(coroutine.comutex_waiters(obj.mutex))
        elif kind == "CoQueue":
            rec.waiting_coroutines = [c.address_ for c in coroutine.coqueue_waiters(obj)]
            rec.locked = None
    except TargetError as e:
        rec.error = str(e)
    return rec


def _object_locks(target, label, obj, cache):
    """Locks embedded in a known object (layout from DWARF)."""
    out = []
    for path, offset, kind, count in _lock_layout(target, obj.type_, cache):
        if count is None:
            out.append(read_lock(target, kind, f"{label}.{path}", obj.address_ + offset))
            continue
        size = strip_typedefs(target.lookup_type(kind)).size
        for i in range(count):
            out.append(read_lock(target, kind, f"{label}.{path}[{i}]",
                                 obj.address_ + offset + i * size))
    return out


def known_objects(target: Target, contexts: aio.KnownContexts, errors: list[str],
                  missing: list[str], cache: dict) -> list[tuple[str, Object]]:
    """(label, Object) of every object whose locks are listed: AioContexts and the
    objects they point to that hold locks (their thread pool, ...), nodes and their
    drivers' state, BlockBackends, throttle groups and their members.

    :returns: (label, Object) pairs: AioContext, a struct an AioContext points to,
        BlockDriverState, BDRV<Name>State, BlockBackend, ThrottleGroup, ThrottleGroupMember"""
    out = []
    ctx_type = target.lookup_type("AioContext")
    for address, labels, _ in contexts:
        label = f"AioContext {address:#x}" + (f" ({labels[0]})" if labels else "")
        ctx = Object(target, ctx_type, address)
        out.append((label, ctx))
        try:
            out += _pointed_objects(target, label, ctx, cache)
        except TargetError as e:
            errors.append(f"{label}: {e}")

    def nodes():
        for bs in all_bdrv_states(target):
            node = node_name(bs)
            yield f"node {node}", bs
            state = driver_state(target, bs)
            if state is not None:
                yield f"node {node} {state.type_.name}", state

    def backends():
        for blk in block_backends(target):
            yield f"BlockBackend {backend_name(blk)}", blk

    def groups():   # not named throttle_groups: that is the roots walker it calls
        for tg in throttle_groups(target):
            gname = tg.name.string_()
            yield f"throttle group {gname}", tg
            for member in throttle_group_members(tg):
                yield f"throttle group {gname} member {member.address_:#x}", member

    for what, source in (("block nodes", nodes), ("BlockBackends", backends),
                         ("throttle groups", groups)):
        try:
            for item in source():   # what a source gave before it broke is kept
                out.append(item)
        except MissingDebugInfo as e:
            missing.append(f"{what}: {e}")
        except TargetError as e:
            errors.append(f"{what}: {e}")
    return out


def _pointed_objects(target, label, obj, cache):
    """(LABEL->member, Object) of the non-NULL pointer members of obj whose structs hold
    locks (DWARF decides which)."""
    out = []
    for m in strip_typedefs(obj.type_).members:
        t = strip_typedefs(m.type)
        if t.kind != "pointer" or t.target is None or not m.name:
            continue
        pointed = strip_typedefs(t.target)
        if pointed.kind != "struct" or not pointed.members:
            try:   # a declaration here: the full type is in another unit
                pointed = target.lookup_type(pointed.name) if pointed.name else pointed
            except MissingDebugInfo:
                continue
        if pointed.kind != "struct" or not _lock_layout(target, pointed, cache):
            continue
        address = obj.member_(m.name).value_()
        if address:
            out.append((f"{label}->{m.name}", Object(target, pointed, address)))
    return out


def driver_state(target: Target, bs: Object) -> Object | None:
    """bs->opaque as its driver's state type, found by the driver's format name
    (BDRV<Name>State, e.g. BDRVQcow2State) and checked against drv->instance_size;
    None when no such type has that size.

    :param bs: BlockDriverState
    :returns: BDRV<Name>State"""
    if not bs.drv.value_() or not bs.opaque.value_():
        return None
    drv = bs.drv.deref_()
    fmt = drv.format_name.string_()
    size = drv.instance_size.value_()
    for candidate in (f"BDRV{fmt[:1].upper()}{fmt[1:]}State", f"BDRV{fmt.upper()}State"):
        try:
            t = target.lookup_type(candidate)
        except MissingDebugInfo:
            continue
        if strip_typedefs(t).size == size:
            return Object(target, t, bs.opaque.value_())
    return None


def graph_lock(target: Target, contexts: aio.KnownContexts) -> Lock:
    """block/graph-lock.c's reader/writer lock (QEMU >= 8.0): has_writer, each
    AioContext's reader_count, orphaned readers, and reader_queue's waiting coroutines."""
    writer = target.variable("has_writer", file="graph-lock.c")
    rec = Lock("graph-lock", "graph lock (block/graph-lock.c)", writer.address_)
    try:
        rec.locked = bool(writer.value_())
        by_graph = {}   # BdrvGraphRWlock address -> its AioContext's name
        for address, labels, _ in contexts:
            try:
                ctx = Object(target, target.lookup_type("AioContext"), address)
                by_graph[ctx.bdrv_graph.value_()] = labels[0] if labels else f"{address:#x}"
            except TargetError:
                continue
        for lock in qtailq_foreach(target.variable("aio_context_list", file="graph-lock.c"),
                                   "next_aio"):
            n = lock.reader_count.value_()
            if n:
                rec.readers.append({"context": by_graph.get(lock.address_,
                                                            f"{lock.address_:#x}"),
                                    "count": n})
        orphaned = target.variable("orphaned_reader_count", file="graph-lock.c").value_()
        if orphaned:
            rec.readers.append({"context": "orphaned", "count": orphaned})
        rec.count = sum(r["count"] for r in rec.readers)
        queue = target.variable("reader_queue", file="graph-lock.c")
        rec.waiting_coroutines = [c.address_ for c in coroutine.coqueue_waiters(queue)]
    except TargetError as e:
        rec.error = str(e)
    return rec


# Global mutexes besides the BQL, probed (absent in some versions).
GLOBAL_MUTEXES = (("job_mutex", "job.c"), ("aio_context_list_lock", "graph-lock.c"))


def all_locks(target: Target, threads: list[Thread] | None = None,
              contexts: aio.KnownContexts | None = None) -> LockList:
    """A LockList: every thread's state and every lock found, with owners and waiters;
    `contexts` is aio.known_contexts() when the caller has it."""
    threads = threads if threads is not None else target.threads()
    if contexts is None:
        contexts = aio.known_contexts(target, threads)
    names = Names(target)
    result = LockList(None, [], [])
    cache = {}
    objects = []
    try:
        objects = known_objects(target, contexts, result.errors, result.missing, cache)
    except MissingDebugInfo as e:
        result.missing.append(f"AioContexts: {e}")
    for label, obj in objects:
        names.add(label, obj)
    iothreads = {r["tid"]: label.removeprefix("iothread ") for _, labels, runners in contexts
                 for label in labels[:1] if label.startswith("iothread ") for r in runners}
    result.threads = thread_states(target, threads, names, iothreads)
    try:
        result.bql_flag = first_variable(target, system.BQL_FLAGS, ("cpus.c",))[0] \
            .removeprefix("co_tls_")
    except MissingDebugInfo:
        pass
    for var, file in [(m, "cpus.c") for m in system.BQL_MUTEXES] + list(GLOBAL_MUTEXES):
        try:   # a file-static, or a global defined there
            var, file = first_variable(target, (var,), (file, None))
            address, type_ = target.variable_address(var, file=file)
        except MissingDebugInfo:
            continue
        kind = _lock_type_name(type_) or "QemuMutex"
        result.locks.append(read_lock(target, kind, var, address))
    try:
        result.locks.append(graph_lock(target, contexts))
    except MissingDebugInfo as e:
        result.missing.append(f"graph lock: {e}")
    for label, obj in objects:
        try:
            result.locks += _object_locks(target, label, obj, cache)
        except TargetError as e:
            result.errors.append(f"{label}: {e}")
    # A mutex a thread waits for that no root named is still listed, by its address.
    known = {lock.address for lock in result.locks}
    for st in result.threads:
        w = st.waits_for
        if w and w.kind == "mutex" and w.address not in known:
            lock = Lock("pthread_mutex_t", w.name or f"mutex {w.address:#x}", w.address)
            try:
                mutex = Object(target, target.lookup_type("pthread_mutex_t"), w.address)
                lock.locked, owner, lock.count = mutex_state(mutex)
                lock.owner_tid = owner or None
            except TargetError as e:
                lock.error = str(e)
            result.locks.append(lock)
            known.add(w.address)
    by_tid = {th.tid: th.num for th in threads}
    for lock in result.locks:
        if lock.owner_tid:
            lock.owner_thread = by_tid.get(lock.owner_tid)
        lock.waiting_threads = [st.num for st in result.threads
                                if st.waits_for and st.waits_for.address == lock.address]
    return result
