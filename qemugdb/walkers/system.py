"""System-emulator state: the memory region tree (`qemu mtree`) and who holds the big QEMU
lock (`qemu tcg-lock-status`). Both need qemu-system-*; on other programs the symbols are
missing and the walkers raise MissingDebugInfo saying so."""

from dataclasses import dataclass, field

from ..obj import Object, first_variable, read_fields, strip_typedefs, thread_flag
from .queue import qtailq_foreach
from .threads import COND_WAITS, MUTEX_WAITS, WAIT_WRAPPERS
from ..result import Record
from ..target import MissingDebugInfo, Target, TargetError

MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------- mtree

@dataclass
class Region(Record):
    """One MemoryRegion as system/memory.c mtree_print_mr shows it."""
    level: int
    start: int
    end: int
    name: str
    type: str                  # ram | rom | romd | ramd | i/o (of the alias target for aliases)
    priority: int
    enabled: bool
    address: int
    nonvolatile: bool = False
    alias: str | None = None   # the aliased region's name
    alias_start: int | None = None
    alias_end: int | None = None
    error: str | None = None
    absent: list = field(default_factory=list)   # fields this QEMU version does not have


@dataclass
class MemoryTree(Record):
    """Region trees: one per address space (`address-space: NAME`), then one per region that
    an alias points to (`memory-region: NAME`), in the order `info mtree` prints them."""
    ERRORS = ('errors',)
    MISSING = ()
    trees: list = field(default_factory=list)  # [(heading, [Region])]
    errors: list = field(default_factory=list)


def int128(obj: Object) -> int:
    """An Int128 as a Python int: a 16-byte integer, or struct { lo; hi; }.

    :param obj: Int128"""
    t = strip_typedefs(obj.type_)
    if t.kind == "struct":
        return obj.lo.value_() | obj.hi.value_() << 64
    return obj.value_()


def region_name(mr: Object) -> str:
    """A MemoryRegion's name, "anonymous" when it has none.

    :param mr: MemoryRegion"""
    name = mr.name.value_()
    return mr.name.string_() if name else "anonymous"


def region_type(mr: Object, depth: int = 0) -> str:
    """system/memory.c memory_region_type.

    :param mr: MemoryRegion"""
    alias = mr.alias.value_()
    if alias and depth < 16:
        return region_type(mr.alias.deref_(), depth + 1)
    if mr.ram_device.value_():
        return "ramd"
    if mr.rom_device.value_() and mr.romd_mode.value_():
        return "romd"
    if mr.ram.value_() and mr.readonly.value_():
        return "rom"
    return "ram" if mr.ram.value_() else "i/o"


def mr_size(size: int) -> int:
    """MR_SIZE: size - 1 (as a 64-bit address), 0 for an empty region."""
    return (size - 1) & MASK64 if size else 0


def _walk(mr, level, base, out, aliases, seen, limit):
    if len(out) >= limit:
        raise TargetError(f"more than {limit} memory regions")
    start = (base + mr.addr.value_()) & MASK64
    rec = Region(level=level, start=start, end=start, name="?", type="?", priority=0,
                 enabled=True, address=mr.address_)
    out.append(rec)
    try:
        if not read_fields(
                rec, mr, name=lambda: region_name(mr),
                end=lambda: (start + mr_size(int128(mr.size))) & MASK64, priority="priority",
                enabled=lambda: bool(mr.enabled.value_()),
                nonvolatile=lambda: bool(mr.nonvolatile.value_()),
                type=lambda: region_type(mr),
                alias=lambda: region_name(mr.alias.deref_()) if mr.alias.value_() else None,
                alias_start=lambda: mr.alias_offset.value_() if mr.alias.value_() else None,
                alias_end=lambda: ((mr.alias_offset.value_() + mr_size(int128(mr.size)))
                                   & MASK64 if mr.alias.value_() else None)):
            return
        alias = None if "alias" in rec.absent else mr.alias.value_()
        if alias and alias not in aliases:
            aliases.append(alias)
        if mr.address_ in seen:
            raise TargetError(f"region {mr.address_:#x} contains itself")
        seen = seen | {mr.address_}
        for sub in qtailq_foreach(mr.subregions, "subregions_link", limit=limit):
            _walk(sub, level + 1, start, out, aliases, seen, limit)
    except TargetError as e:
        rec.error = str(e)


def memory_tree(target: Target, limit: int = 100_000) -> MemoryTree:
    """MemoryTree of every AddressSpace (address_spaces list) and aliased region."""
    try:
        head = target.variable("address_spaces", file="memory.c")
    except MissingDebugInfo as e:
        raise MissingDebugInfo(f"no address spaces ({e}): qemu mtree needs qemu-system-*") \
            from None
    result = MemoryTree()
    spaces = []
    try:   # the spaces before a broken link are shown
        for space in qtailq_foreach(head, "address_spaces_link"):
            spaces.append(space)
    except TargetError as e:
        result.errors.append(f"address_spaces: {e}")
    aliases = []
    mr_type = target.lookup_type("MemoryRegion")
    printed_roots = {}
    for space in spaces:
        try:
            name = space.name.string_()
            root = space.root.value_()
        except TargetError as e:
            result.errors.append(f"address space {space.address_:#x}: {e}")
            continue
        heading = f"address-space: {name}"
        if root in printed_roots:  # mtree_info prints a shared root once, naming both
            result.trees[printed_roots[root]][0].append(heading)
            continue
        regions = []
        if root:
            _walk(space.root.deref_(), 1, 0, regions, aliases, frozenset(), limit)
        printed_roots[root] = len(result.trees)
        result.trees.append(([heading], regions))
    for alias in aliases:  # the queue grows while it is printed, as in mtree_info
        regions = []
        _walk(Object(target, mr_type, alias), 1, 0, regions, aliases, frozenset(), limit)
        result.trees.append(([f"memory-region: {regions[0].name}"], regions))
    return result


# ---------------------------------------------------------------- BQL

# The BQL's TLS flag and mutex under each name QEMU has used (cpus.c).
BQL_FLAGS = ("co_tls_bql_locked", "co_tls_iothread_locked", "iothread_locked")
BQL_MUTEXES = ("bql", "qemu_global_mutex")
BQL_TAKERS = ("bql_lock_impl", "qemu_mutex_lock_iothread_impl", "bql_lock")


@dataclass
class ThreadLock(Record):
    MISSING = ()
    num: int
    tid: int
    name: str | None
    bql: bool | None = None        # this thread's TLS flag says it holds the BQL
    replay: bool | None = None     # replay_locked (record/replay mutex)
    blocked: str = "not blocked"
    error: str | None = None


@dataclass
class LockStatus(Record):
    ERRORS = ()
    MISSING = ()
    flag_name: str                 # which BQL naming this QEMU uses
    mutex_name: str | None
    owner_tid: int | None          # the BQL's pthread owner (0: free)
    threads: list = field(default_factory=list)


def lock_status(target: Target) -> LockStatus:
    """LockStatus: for each thread, whether it holds the BQL (iothread_locked in QEMU < 8.2,
    bql_locked after), the replay lock, and whether it is blocked on a mutex."""
    try:
        flag, _ = first_variable(target, BQL_FLAGS, ("cpus.c",))
    except MissingDebugInfo:
        raise MissingDebugInfo("no BQL flag (bql_locked / iothread_locked): "
                               "qemu tcg-lock-status needs qemu-system-*") from None
    mutex_name, owner = None, None
    try:
        mutex_name, _ = first_variable(target, BQL_MUTEXES, ("cpus.c",))
        owner = target.variable(mutex_name, file="cpus.c").lock.member_("__data") \
            .member_("__owner").value_()
    except TargetError:
        pass
    status = LockStatus(flag.removeprefix("co_tls_"), mutex_name, owner)
    for th in target.threads():
        rec = ThreadLock(th.num, th.tid, th.name)
        rec.bql = thread_flag(target, (flag,), ("cpus.c",), th)
        rec.replay = thread_flag(target, ("replay_locked",), ("replay-internal.c",), th)
        try:
            rec.blocked = _blocked(target.unwind(th.registers), owner, target)
        except TargetError as e:
            rec.error = str(e)
        status.threads.append(rec)
    return status


def _blocked(frames, owner, target):
    names = [loc.function or "?" for f in frames for loc in f.locations()]

    def waiter():
        return next((n for n in names if not n.startswith(("_", "pthread_", "futex", "?",
                                                           "syscall"))
                     and n not in WAIT_WRAPPERS), "?")

    if any(n in MUTEX_WAITS for n in names[:4]):
        if any(n in BQL_TAKERS for n in names):
            holder = f"LWP {owner}" if owner else "nobody"
            for th in target.threads():
                if th.tid == owner:
                    holder = f"thread {th.num} (LWP {owner})"
            return f"waiting for the BQL in {waiter()}, held by {holder}"
        return f"waiting for a mutex in {waiter()}"
    if any(n in COND_WAITS for n in names[:6]):
        return f"waiting on a condition variable in {waiter()}"
    return "not blocked"
