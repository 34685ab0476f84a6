"""The block graph: BlockDriverStates, BlockBackends, block jobs and the BdrvChild edges.

Follows block.c (all_bdrv_states via bs_list, graph_bdrv_states via node_list, bs->children
via next), block-backend.c (block_backends via link) and blockjob.c (block jobs' `nodes`
GSList of BdrvChild). An edge's parent is a BDS (klass == &child_of_bds), a BlockBackend
(&child_root) or a block job (&child_job). Permissions and roles are decoded by name from
DWARF; QMP's permission spelling comes from BlockPermission_lookup in memory. Records are
read member by member (obj.read_fields): a member this QEMU lacks is marked absent.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

from . import enums
from .glib import gslist_data
from .aio import known_contexts
from .coroutine import Coroutines
from .job import block_jobs
from ..obj import Object, read_field, read_fields, strip_typedefs
from .qom import canonical_path
from .queue import qlist_foreach
from .roots import all_bdrv_states, block_backends, graph_bdrv_states
from ..result import Record
from ..target import MissingDebugInfo, NoDebugInfo, NotFound, Target, TargetError

# include/block/block-common.h: BDRV_O_* are #defines, absent from DWARF.
OPEN_FLAGS = (
    ("BDRV_O_NO_SHARE", 0x0001), ("BDRV_O_RDWR", 0x0002), ("BDRV_O_RESIZE", 0x0004),
    ("BDRV_O_SNAPSHOT", 0x0008), ("BDRV_O_TEMPORARY", 0x0010), ("BDRV_O_NOCACHE", 0x0020),
    ("BDRV_O_NATIVE_AIO", 0x0080), ("BDRV_O_NO_BACKING", 0x0100),
    ("BDRV_O_NO_FLUSH", 0x0200), ("BDRV_O_COPY_ON_READ", 0x0400),
    ("BDRV_O_INACTIVE", 0x0800), ("BDRV_O_CHECK", 0x1000), ("BDRV_O_ALLOW_RDWR", 0x2000),
    ("BDRV_O_UNMAP", 0x4000), ("BDRV_O_PROTOCOL", 0x8000), ("BDRV_O_NO_IO", 0x10000),
    ("BDRV_O_AUTO_RDONLY", 0x20000), ("BDRV_O_IO_URING", 0x40000),
    ("BDRV_O_CBW_DISCARD_SOURCE", 0x80000),
)
BDRV_O_RDWR = dict(OPEN_FLAGS)["BDRV_O_RDWR"]
# include/block/block-common.h, used only when the anonymous BLK_PERM_* enum is not reachable.
BLK_PERM_TABLE = (("BLK_PERM_CONSISTENT_READ", 0x01), ("BLK_PERM_WRITE", 0x02),
                  ("BLK_PERM_WRITE_UNCHANGED", 0x04), ("BLK_PERM_RESIZE", 0x08))
CHILD_ROLE_TABLE = (("BDRV_CHILD_DATA", 1), ("BDRV_CHILD_METADATA", 2),
                    ("BDRV_CHILD_FILTERED", 4), ("BDRV_CHILD_COW", 8),
                    ("BDRV_CHILD_PRIMARY", 16))


@dataclass
class Permission(Record):
    """One BLK_PERM_* bit and its QMP name (BlockPermission)."""
    ERRORS = ()
    MISSING = ()
    name: str      # BLK_PERM_WRITE
    qmp: str       # write
    bit: int


@dataclass
class BlockLayout(Record):
    """What the version's debug info says about permissions, roles and flags."""
    ERRORS = ()
    MISSING = ()
    permissions: list
    permission_source: str
    roles: enums.Flags
    open_flags: enums.Flags
    child_classes: dict     # address of a BdrvChildClass -> "block-driver"|"block-backend"|"block-job"

    def perm_names(self, value: int) -> list[str]:
        names = [p.qmp for p in self.permissions if value & p.bit]
        rest = value & ~sum(p.bit for p in self.permissions)
        return names + ([f"{rest:#x}"] if rest else [])


def block_layout(target: Target) -> BlockLayout:
    """Read BlockLayout from the target (cheap; call once per command)."""
    qapi = [(n, v) for n, v in enums.enumerators(target, "enum BlockPermission")
            if not n.endswith("__MAX")]
    spelled = enums.qapi_names(target, "enum BlockPermission", "BlockPermission_lookup")
    blk = enums.flags(target, enumerator="BLK_PERM_WRITE", prefix="BLK_PERM_",
                      table=BLK_PERM_TABLE)
    bits = dict(blk.bits)
    perms = []
    for n, v in sorted(qapi, key=lambda nv: nv[1]):
        name = "BLK_PERM_" + n.removeprefix("BLOCK_PERMISSION_")
        if name in bits:
            perms.append(Permission(name, spelled[v], bits[name]))
    if not perms:  # no BlockPermission in the debug info: the BLK_PERM_* names alone
        perms = [Permission(n, n.removeprefix("BLK_PERM_").lower().replace("_", "-"), b)
                 for n, b in blk.bits]
    roles = enums.flags(target, "enum BdrvChildRoleBits", prefix="BDRV_CHILD_",
                        table=CHILD_ROLE_TABLE)
    classes = {}
    for var, file, kind in (("child_of_bds", None, "block-driver"),
                            ("child_root", "block-backend.c", "block-backend"),
                            ("child_job", "blockjob.c", "block-job")):
        try:
            classes[target.variable_address(var, file=file)[0]] = kind
        except TargetError:
            pass
    return BlockLayout(perms, blk.source, roles,
                       enums.Flags(list(OPEN_FLAGS), enums.HEADERS), classes)


# ---------------------------------------------------------------- records

@dataclass
class Child(Record):
    """A BdrvChild edge from `parent` (a BDS, BlockBackend or job address) to node `child`."""
    address: int
    name: str | None = None
    parent: int | None = None
    parent_type: str | None = None   # block-driver, block-backend, block-job, or None
    child: int | None = None
    role: list = field(default_factory=list)
    perm: list = field(default_factory=list)
    shared_perm: list = field(default_factory=list)
    frozen: bool | None = None
    error: str | None = None
    absent: list = field(default_factory=list)   # fields this QEMU version does not have


@dataclass
class Node(Record):
    """A BlockDriverState."""
    address: int
    node_name: str | None = None
    driver: str | None = None
    filename: str | None = None
    aio_context: int | None = None
    refcnt: int | None = None
    open_flags: int | None = None
    open_flag_names: list = field(default_factory=list)
    read_only: bool | None = None
    in_flight: int | None = None
    quiesce_counter: int | None = None
    tracked_requests: int | None = None
    implicit: bool | None = None  # a filter QEMU inserted itself (a job's), hidden by query-block
    in_graph: bool = True       # on graph_bdrv_states (what QMP lists)
    children: list = field(default_factory=list)   # Child records
    error: str | None = None
    absent: list = field(default_factory=list)


@dataclass
class Backend(Record):
    """A BlockBackend."""
    address: int
    name: str | None = None
    device: str | None = None     # attached device's id or QOM path, when there is one
    root: int | None = None       # BdrvChild address
    root_node: int | None = None  # its BDS
    aio_context: int | None = None
    refcnt: int | None = None
    perm: list = field(default_factory=list)
    shared_perm: list = field(default_factory=list)
    in_flight: int | None = None
    quiesce_counter: int | None = None
    child: Child | None = None
    error: str | None = None
    absent: list = field(default_factory=list)


@dataclass
class GraphJob(Record):
    """A block job as a graph node, with its BdrvChild edges (BlockJob.nodes)."""
    address: int
    id: str | None = None
    type: str | None = None
    aio_context: int | None = None
    children: list = field(default_factory=list)
    error: str | None = None
    absent: list = field(default_factory=list)


@dataclass
class BlockGraph(Record):
    ERRORS = ('errors',)
    MISSING = ()
    backends: list
    jobs: list
    nodes: list
    permission_source: str
    open_flags_source: str
    aio_contexts: dict = field(default_factory=dict)   # address -> name (main loop, ...)
    errors: list = field(default_factory=list)   # list-level failures (a broken link)


@dataclass
class TrackedRequest(Record):
    ERRORS = ('error', 'co_error')
    NOTES = ('co_note',)
    address: int
    offset: int | None = None
    bytes: int | None = None
    type: str | None = None
    serialising: bool | None = None
    co: int | None = None
    waiting_for: int | None = None
    suspended_in: object = None     # Location where its coroutine waits (_add_coroutines)
    co_error: str | None = None     # its coroutine could not be read
    co_note: str | None = None      # why it is not unwound: it runs on a thread
    error: str | None = None
    absent: list = field(default_factory=list)


@dataclass
class NodeDetail(Record):
    ERRORS = ('request_error',)
    node: Node
    backing: int | None
    file: int | None
    parents: list          # Child records whose child is this node
    requests: list         # TrackedRequest
    request_error: str | None = None
    absent: list = field(default_factory=list)   # of backing, file, parents


# ---------------------------------------------------------------- walkers

def _string(obj):
    """A char * or char[] member as str, None for NULL."""
    if strip_typedefs(obj.type_).kind == "pointer" and not obj.value_():
        return None
    return obj.string_()


def child_record(layout: BlockLayout, child: Object) -> Child:
    """A Child record for a BdrvChild Object.

    :param child: BdrvChild"""
    rec = Child(address=child.address_)
    read_fields(rec, child, name=lambda: _string(child.name),
                child=lambda: child.bs.value_() or None,
                parent_type=lambda: layout.child_classes.get(child.klass.value_()),
                parent="opaque",
                role=lambda: layout.roles.decode(child.role.value_(), "BDRV_CHILD_"),
                perm=lambda: layout.perm_names(child.perm.value_()),
                shared_perm=lambda: layout.perm_names(child.shared_perm.value_()),
                frozen=lambda: bool(child.frozen.value_()))
    if rec.error is not None:
        return rec
    # Pointers shown but not followed must point at memory: an edge to a node that is not
    # there, or a class that is not there (None is also another QEMU's class), is marked.
    unknown_class = rec.parent_type is None and "parent_type" not in rec.absent
    for what, address in (("child node", rec.child),
                          ("klass", child.klass.value_() if unknown_class else None)):
        if address and rec.error is None:
            try:
                child.target_.read(address, 1)
            except TargetError as e:
                rec.error = f"{what} {address:#x}: {e}"
    return rec


def node_record(layout: BlockLayout, bs: Object, in_graph: bool = True) -> Node:
    """A Node record for a BlockDriverState Object, children included.

    :param bs: BlockDriverState"""
    rec = Node(address=bs.address_, in_graph=in_graph)
    read_fields(rec, bs, node_name=lambda: bs.node_name.string_(),
                driver=lambda: (bs.drv.deref_().format_name.string_() if bs.drv.value_()
                                else None),
                filename=lambda: bs.filename.string_(), aio_context="aio_context",
                refcnt="refcnt", open_flags="open_flags",
                open_flag_names=lambda: layout.open_flags.decode(bs.open_flags.value_()),
                read_only=lambda: not bs.open_flags.value_() & BDRV_O_RDWR,
                in_flight="in_flight", quiesce_counter="quiesce_counter",
                implicit=lambda: bool(bs.implicit.value_()),
                tracked_requests=lambda: sum(1 for _ in qlist_foreach(bs.tracked_requests,
                                                                      "list")))
    try:   # the children before a broken link are kept
        read_field(rec, "children", lambda: _child_records(
            layout, qlist_foreach(bs.children, "next"), rec.children))
    except TargetError as e:
        rec.error = rec.error or f"children: {e}"
    return rec


def _child_records(layout, children, out):
    """Child records of the BdrvChild Objects `children` appended to `out` as they are read
    (those before a broken link are kept); `out`."""
    for child in children:
        out.append(child_record(layout, child))
    return out


def backend_record(layout: BlockLayout, blk: Object) -> Backend:
    """A Backend record for a BlockBackend Object, its root edge included.

    :param blk: BlockBackend"""
    rec = Backend(address=blk.address_)
    read_fields(rec, blk, name=lambda: _string(blk.name) or "",
                device=lambda: _device(blk), aio_context="ctx", refcnt="refcnt",
                perm=lambda: layout.perm_names(blk.perm.value_()),
                shared_perm=lambda: layout.perm_names(blk.shared_perm.value_()),
                in_flight="in_flight", quiesce_counter="quiesce_counter",
                root=lambda: blk.root.value_() or None,
                child=lambda: (child_record(layout, blk.root.deref_()) if blk.root.value_()
                               else None),
                root_node=lambda: blk.root.value_() and blk.root.deref_().bs.value_() or None)
    return rec


def _device(blk):
    """blk_get_attached_dev_id(): the attached device's id, else its QOM path; None when
    no device is attached."""
    dev = blk.dev.value_()
    if not dev:
        return None
    return _string(blk.dev.deref_().id) or canonical_path(
        Object(blk.target_, blk.target_.lookup_type("Object"), dev)) or ""


def graph_job_record(layout: BlockLayout, job: Object) -> GraphJob:
    """A GraphJob for a BlockJob Object (its BdrvChildren from the `nodes` GSList).

    :param job: BlockJob"""
    rec = GraphJob(address=job.address_)
    read_fields(rec, job, id=lambda: _string(job.job.id), aio_context="job.aio_context",
                type=lambda: enums.enum_name(job.job.driver.deref_().job_type)
                .removeprefix("JOB_TYPE_").lower(),
                children=lambda: _child_records(layout, _job_edges(job), rec.children))
    return rec


def _job_edges(job):
    """The BdrvChild Objects of a BlockJob's `nodes` GSList."""
    child_type = job.target_.lookup_type("BdrvChild")
    return (Object(job.target_, child_type, data) for data in gslist_data(job.nodes))


def block_graph(target: Target, layout: BlockLayout | None = None) -> BlockGraph:
    """The whole graph as QMP x-debug-query-block-graph sees it (backends, block jobs,
    graph_bdrv_states), plus nodes only on all_bdrv_states (in_graph False)."""
    try:
        target.variable_address("all_bdrv_states", file="block.c")
    except NoDebugInfo:
        raise
    except MissingDebugInfo as e:
        raise MissingDebugInfo(f"no block layer in the debug info ({e})") from None
    layout = layout or block_layout(target)
    graph = BlockGraph([], [], [], layout.permission_source, layout.open_flags.source)
    try:
        for blk in block_backends(target):
            graph.backends.append(backend_record(layout, blk))
    except TargetError as e:
        graph.errors.append(f"block_backends: {e}")
    try:
        for job in block_jobs(target):
            graph.jobs.append(graph_job_record(layout, job))
    except TargetError as e:
        graph.errors.append(f"jobs: {e}")
    seen = set()
    try:
        for bs in graph_bdrv_states(target):
            seen.add(bs.address_)
            graph.nodes.append(node_record(layout, bs))
    except TargetError as e:
        graph.errors.append(f"graph_bdrv_states: {e}")
    try:
        for bs in all_bdrv_states(target):
            if bs.address_ not in seen:
                graph.nodes.append(node_record(layout, bs, in_graph=False))
    except TargetError as e:
        graph.errors.append(f"all_bdrv_states: {e}")
    for address, names, _ in known_contexts(target):
        graph.aio_contexts[address] = names[0] if names else f"{address:#x}"
    return graph


def find_node(target: Target, spec: str) -> Object:
    """The BlockDriverState Object whose node-name is `spec`, else at the address `spec`
    denotes (a number, or a debugger expression where the target evaluates them).

    :returns: BlockDriverState"""
    for bs in all_bdrv_states(target):
        try:
            if bs.node_name.string_() == spec:
                return bs
        except TargetError:
            continue
    try:
        address = target.evaluate(spec)
    except TargetError as e:
        raise NotFound(f"no block node named {spec!r} ({e})") from None
    return Object(target, target.lookup_type("BlockDriverState"), address)


def tracked_requests(bs: Object) -> Iterator[TrackedRequest]:
    """TrackedRequest records of a BlockDriverState Object (list `tracked_requests`).

    :param bs: BlockDriverState"""
    for req in qlist_foreach(bs.tracked_requests, "list"):
        rec = TrackedRequest(address=req.address_)
        read_fields(rec, req, offset="offset", bytes="bytes",
                    type=lambda: enums.enum_name(req.type).removeprefix("BDRV_TRACKED_").lower(),
                    serialising=lambda: bool(req.serialising.value_()),
                    co=lambda: req.co.value_() or None,
                    waiting_for=lambda: req.waiting_for.value_() or None)
        yield rec


def node_detail(target: Target, spec: str) -> NodeDetail:
    """NodeDetail for `qemu bdrv NODE`."""
    layout = block_layout(target)
    bs = find_node(target, spec)
    node = node_record(layout, bs)
    detail = NodeDetail(node, None, None, [], [])
    try:
        read_field(detail, "backing", lambda: bs.backing.value_() or None)
        read_field(detail, "file", lambda: bs.file.value_() or None)
        read_field(detail, "parents", lambda: _child_records(
            layout, qlist_foreach(bs.parents, "next_parent"), detail.parents))
    except TargetError as e:
        node.error = node.error or str(e)
    try:   # the requests before a broken link are kept
        for request in tracked_requests(bs):
            detail.requests.append(request)
    except TargetError as e:
        detail.request_error = str(e)
    _add_coroutines(target, detail.requests)
    return detail


def _add_coroutines(target, requests):
    """Where each request's coroutine is suspended (unless it runs on a thread)."""
    if not any(r.co for r in requests):
        return
    reader = Coroutines(target)
    try:
        reader.guard  # noqa: B018 -- read once: without it no coroutine can be described
        running = reader.running()
    except TargetError as e:
        for r in requests:
            r.co_error = str(e)
        return
    for r in requests:
        if not r.co:
            continue
        if r.co in running:
            r.co_note = "running on a thread"
            continue
        co = reader.describe(r.co)
        r.suspended_in, r.co_error = co.suspended_in, co.error
