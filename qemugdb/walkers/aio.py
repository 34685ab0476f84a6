"""The event loop: AioContexts, their bottom halves, fd handlers and timers.

AioContexts: qemu_aio_context and iohandler_ctx (util/main-loop.c statics), each IOThread's
ctx, each thread's current context (util/async.c's __thread co_tls_my_aiocontext, which
also says which thread runs which context), and any context a block node or job points to.
BHs: ctx->bh_list (QSLIST via next) holds the *enqueued* BHs (QEMU >= 5.0 keeps no list of
idle ones) and ctx->bh_slice_list the slices aio_bh_poll() is draining. Handlers:
ctx->aio_handlers (QLIST via node); a handler also on node_deleted is being deleted.
Timers: main_loop_tlg and each context's tlg, tl[] indexed by QEMUClockType, each
QEMUTimerList's active_timers chained by QEMUTimer.next.

Differences probed, not assumed: every member is read on its own (obj.read_fields), so one
this QEMU lacks is marked absent (shown as n/a) and the rest of the record is still read,
e.g. AioContext.external_disable_cnt, which exists before QEMU 8.2 only; the AioHandler
callbacks present vary (io_poll_ready since 7.0); BH flags are an anonymous enum, read from
DWARF when the backend can look enumerators up.
"""

from dataclasses import dataclass, field

from . import enums
from ..obj import Object, co_tls, read_fields, strip_typedefs, thread_variable
from .coroutine import symbol
from .iothread import iothreads
from .queue import LIMIT, qlist_foreach, qlist_is_inserted, qsimpleq_foreach, qslist_foreach
from .roots import all_bdrv_states, all_jobs, main_loop_context
from ..result import Record
from ..target import CorruptError, MissingDebugInfo, NotFound, Target, TargetError, Thread

# util/async.c's anonymous enum, used only when the backend cannot reach it in DWARF.
BH_FLAGS_TABLE = (("BH_PENDING", 1), ("BH_SCHEDULED", 2), ("BH_DELETED", 4),
                  ("BH_ONESHOT", 8), ("BH_IDLE", 16))
KnownContexts = list[tuple[int, list[str], list[dict]]]   # what known_contexts() returns


@dataclass
class ContextRecord(Record):
    address: int
    names: list = field(default_factory=list)    # "main loop", "iohandler", "iothread ID", ...
    threads: list = field(default_factory=list)  # [{"num", "tid"}]
    notify_me: int | None = None
    notified: bool | None = None
    poll_disable_cnt: int | None = None
    external_disable_cnt: int | None = None      # QEMU < 8.2
    bhs: int | None = None
    bhs_pending: int | None = None
    handlers: int | None = None
    handlers_deleted: int | None = None
    timers: int | None = None
    scheduled_coroutines: int | None = None
    error: str | None = None
    absent: list = field(default_factory=list)   # fields this QEMU version does not have


@dataclass
class BH(Record):
    ctx: int
    address: int
    name: str | None = None
    cb: int | None = None
    cb_symbol: str | None = None
    opaque: int | None = None
    flags: int | None = None
    flag_names: list = field(default_factory=list)
    slice: int | None = None          # index in bh_slice_list, None for bh_list
    error: str | None = None
    absent: list = field(default_factory=list)


@dataclass
class Handler(Record):
    ctx: int
    address: int
    fd: int | None = None
    events: int | None = None
    callbacks: dict = field(default_factory=dict)   # io_read: symbol, ... (set ones only)
    opaque: int | None = None
    deleted: bool | None = None
    error: str | None = None
    absent: list = field(default_factory=list)


@dataclass
class Timer(Record):
    group: str                 # "main_loop_tlg" or "AioContext 0x..."
    clock: str
    timer_list: int
    address: int | None = None
    expire_time: int | None = None
    scale: int | None = None
    cb: int | None = None
    cb_symbol: str | None = None
    opaque: int | None = None
    attributes: int | None = None
    error: str | None = None
    absent: list = field(default_factory=list)


@dataclass
class Listing(Record):
    """What a command returns: the records, the errors met walking (inline), notes."""
    ERRORS = ('errors',)
    MISSING = ()
    NOTES = ('notes',)
    items: list
    errors: list = field(default_factory=list)
    notes: list = field(default_factory=list)


# ---------------------------------------------------------------- contexts

def _iothread_or_main_context(target, thread, pid):
    """The AioContext `thread` runs in a QEMU without util/async.c's my_aiocontext: its
    IOThread's (iothread.c's `__thread IOThread *my_iothread`, what that QEMU's
    qemu_get_current_aio_context() reads), else the main loop's on the process's main
    thread (where QEMU runs its main loop); None on other threads."""
    iothread = thread_variable(target, ("my_iothread",), ("iothread.c",), thread)
    if iothread.value_():
        return iothread.deref_().ctx.value_()
    return main_loop_context(target, "qemu_aio_context") if thread.tid == pid else None


def known_contexts(target: Target, threads: list[Thread] | None = None) -> KnownContexts:
    """[(address, [names], [threads])] of every AioContext we can name, in a stable order:
    the main loop's, the IOThreads', then those only block nodes or jobs point to."""
    threads = threads if threads is not None else target.threads()
    found = {}

    def add(address, name=None, thread=None):
        if not address:
            return
        names, runners = found.setdefault(address, ([], []))
        if name and name not in names:
            names.append(name)
        if thread is not None and thread not in runners:
            runners.append(thread)

    for var, name in (("qemu_aio_context", "main loop"), ("iohandler_ctx", "iohandler")):
        add(main_loop_context(target, var), name)
    try:
        for it in iothreads(target, threads):
            add(it.aio_context, f"iothread {it.id}")
    except TargetError:
        pass
    pid = None
    for th in threads:
        try:
            try:
                ctx = thread_variable(target, co_tls("my_aiocontext"), ("async.c",), th).value_()
            except MissingDebugInfo:  # QEMU before my_aiocontext (5.2)
                pid = pid or target.process().pid
                ctx = _iothread_or_main_context(target, th, pid)
            add(ctx, None, {"num": th.num, "tid": th.tid})
        except TargetError:
            continue
    main = found.get(main_loop_context(target, "qemu_aio_context"))
    iohandler = main_loop_context(target, "iohandler_ctx")
    if main and iohandler in found:  # the main loop thread polls iohandler_ctx via glib
        for th in main[1]:
            add(iohandler, None, th)
    try:
        for bs in all_bdrv_states(target):
            add(bs.aio_context.value_())
    except TargetError:
        pass
    try:
        for job in all_jobs(target):
            add(job.aio_context.value_())
    except TargetError:
        pass
    return [(a, names, runners) for a, (names, runners) in found.items()]


def context_label(contexts: KnownContexts, address: int) -> str:
    """A short name for a context address from known_contexts() output."""
    for a, names, _ in contexts:
        if a == address:
            return names[0] if names else f"{address:#x}"
    return f"{address:#x}" if address else "none"


def _count(iterator):
    return sum(1 for _ in iterator)


def contexts(target: Target, threads: list[Thread] | None = None) -> list[ContextRecord]:
    """ContextRecords with counters."""
    ctx_type = target.lookup_type("AioContext")
    pending = _pending_bit(target)
    out = []
    for address, names, runners in known_contexts(target, threads):
        rec = ContextRecord(address=address, names=names, threads=runners)
        ctx = Object(target, ctx_type, address)
        read_fields(
            rec, ctx, notify_me="notify_me", notified=lambda: bool(ctx.notified.value_()),
            poll_disable_cnt="poll_disable_cnt",
            external_disable_cnt="external_disable_cnt",   # removed in QEMU 8.2
            bhs=lambda: _count(_bh_objects(ctx)),
            bhs_pending=lambda: sum(1 for _, bh in _bh_objects(ctx)
                                    if bh.flags.value_() & pending),
            handlers=lambda: _count(qlist_foreach(ctx.aio_handlers, "node")),
            handlers_deleted=lambda: sum(1 for h in qlist_foreach(ctx.aio_handlers, "node")
                                         if _deleted(h)),
            timers=lambda: sum(_count(_timer_chain(tl)) for _, tl in _timer_lists(ctx.tlg)),
            scheduled_coroutines=lambda: _count(
                qslist_foreach(ctx.scheduled_coroutines, "co_scheduled_next")))
        out.append(rec)
    return out


def select_contexts(target: Target, spec: str | None = None,
                    threads: list[Thread] | None = None) -> list[tuple[int, str]]:
    """[(address, label)] of the contexts a command asked for: all, or the one whose
    address or name (main loop, also `main` or `main-loop`; iohandler; iothread ID, or just
    the ID) is `spec`."""
    known = known_contexts(target, threads)
    pairs = [(a, context_label(known, a)) for a, _, _ in known]
    if spec is None:
        return pairs
    try:
        wanted = int(spec, 0)
    except ValueError:
        wanted = None
    words = {"main": "main loop"}.get(spec, spec.replace("-", " "))
    for a, names, _ in known:
        if a == wanted or words in names or f"iothread {spec}" in names:
            return [(a, context_label(known, a))]
    if wanted:
        return [(wanted, f"{wanted:#x}")]
    raise NotFound(f"no AioContext {spec!r}; known: "
                      + ", ".join(label for _, label in pairs))


# ---------------------------------------------------------------- BHs

def _pending_bit(target):
    return dict(bh_flags(target).bits).get("BH_PENDING", 1)


def bh_flags(target: Target) -> enums.Flags:
    return enums.flags(target, enumerator="BH_PENDING", prefix="BH_", table=BH_FLAGS_TABLE)


def _bh_objects(ctx):
    """(slice index or None, QEMUBH Object) of bh_list, then of each bh_slice_list slice."""
    for bh in qslist_foreach(ctx.bh_list, "next"):
        yield None, bh
    for i, s in enumerate(qsimpleq_foreach(ctx.bh_slice_list, "next")):
        for bh in qslist_foreach(s.bh_list, "next"):
            yield i, bh


def bhs(target: Target, spec: str | None = None) -> Listing:
    """Listing of BH records of the selected contexts."""
    ctx_type = target.lookup_type("AioContext")
    flags = bh_flags(target)
    out = Listing([], notes=[
        "bh_list holds enqueued BHs only (scheduled, or deleted and awaiting aio_bh_poll)"])
    if flags.source != "debug info":
        out.notes.append(f"BH flag values from {flags.source}")
    for address, label in select_contexts(target, spec):
        ctx = Object(target, ctx_type, address)
        try:
            for index, bh in _bh_objects(ctx):
                rec = BH(ctx=address, address=bh.address_, slice=index)
                out.items.append(rec)
                read_fields(rec, bh, name=lambda: bh.name.string_() if bh.name.value_() else None,
                            cb="cb", cb_symbol=lambda: symbol(target, bh.cb.value_()),
                            opaque="opaque", flags="flags",
                            flag_names=lambda: flags.decode(bh.flags.value_(), "BH_"))
        except TargetError as e:
            out.errors.append(f"{label}: {e}")
    return out


# ---------------------------------------------------------------- handlers

HANDLER_CALLBACKS = ("io_read", "io_write", "io_poll", "io_poll_ready", "io_poll_begin",
                     "io_poll_end")


def _deleted(handler):
    return qlist_is_inserted(handler, "node_deleted")


def _callbacks(target, handler):
    """{callback: symbol} of an AioHandler's set callbacks, among those this version has."""
    out = {}
    for name in HANDLER_CALLBACKS:
        try:
            cb = handler.member_(name).value_()
        except MissingDebugInfo:
            continue
        if cb:
            out[name] = symbol(target, cb)
    return out


def handlers(target: Target, spec: str | None = None) -> Listing:
    """Listing of fd Handler records of the selected contexts."""
    ctx_type = target.lookup_type("AioContext")
    out = Listing([])
    for address, label in select_contexts(target, spec):
        ctx = Object(target, ctx_type, address)
        try:
            for h in qlist_foreach(ctx.aio_handlers, "node"):
                rec = Handler(ctx=address, address=h.address_)
                out.items.append(rec)
                read_fields(rec, h, fd="pfd.fd", events="pfd.events",
                            callbacks=lambda: _callbacks(target, h), opaque="opaque",
                            deleted=lambda: _deleted(h))
        except TargetError as e:
            out.errors.append(f"{label}: {e}")
    return out


# ---------------------------------------------------------------- timers

def clock_names(target: Target) -> dict[int, str]:
    """{QEMUClockType value: name} from DWARF (QEMU_CLOCK_REALTIME -> realtime)."""
    return {v: n.removeprefix("QEMU_CLOCK_").lower()
            for n, v in enums.enumerators(target, "QEMUClockType") if n != "QEMU_CLOCK_MAX"}


def _timer_lists(tlg):
    """(clock index, QEMUTimerList Object) of a QEMUTimerListGroup's non-NULL tl[]."""
    tl = tlg.tl
    for i in range(strip_typedefs(tl.type_).length or 0):
        if tl[i].value_():
            yield i, tl[i].deref_()


def _timer_chain(timer_list, limit=LIMIT):
    """QEMUTimer Objects of a QEMUTimerList's active_timers (linked by next), bounded."""
    seen = set()
    cur = timer_list.active_timers
    while cur.value_():
        t = cur.deref_()
        if t.address_ in seen or len(seen) >= limit:
            raise CorruptError(f"timer list cycles at {t.address_:#x}", t.address_)
        seen.add(t.address_)
        yield t
        cur = t.next


def timers(target: Target, spec: str | None = None) -> Listing:
    """Listing of Timer records: main_loop_tlg (unless a context is asked for) and the
    selected contexts' tlg."""
    names = clock_names(target)
    groups = []
    if spec is None:
        try:
            groups.append(("main_loop_tlg", target.variable("main_loop_tlg")))
        except TargetError as e:
            groups.append(("main_loop_tlg", None))
            main_error = str(e)
    ctx_type = target.lookup_type("AioContext")
    for address, label in select_contexts(target, spec):
        groups.append((f"{label} ({address:#x})", Object(target, ctx_type, address).tlg))
    out = Listing([])
    for group, tlg in groups:
        if tlg is None:
            out.errors.append(f"{group}: {main_error}")
            continue
        try:
            lists = list(_timer_lists(tlg))
        except TargetError as e:
            out.errors.append(f"{group}: {e}")
            continue
        for index, tl in lists:   # a broken list does not hide the other clocks' lists
            clock = names.get(index, str(index))
            try:
                for t in _timer_chain(tl):
                    rec = Timer(group=group, clock=clock, timer_list=tl.address_,
                                address=t.address_)
                    out.items.append(rec)
                    read_fields(rec, t, expire_time="expire_time", scale="scale", cb="cb",
                                cb_symbol=lambda: symbol(target, t.cb.value_()),
                                opaque="opaque", attributes="attributes")
            except TargetError as e:
                out.errors.append(f"{group} {clock}: {e}")
    return out
