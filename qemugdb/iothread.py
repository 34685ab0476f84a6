"""IOThreads, found in QOM: the children of type iothread of the /objects container and
of the internal root (mon_iothread's parent).

QOM's root is object_get_root()'s function-scope static `root` (qom/object.c). Backends
that resolve function-scope statics answer it directly; otherwise the root is reached by
climbing Object.parent from an object a global names (a monitor's chardev, a throttle
group, the machine). Children are the `child<...>` properties in Object.properties (a
GHashTable of ObjectProperty, the child in `opaque`).
"""

from dataclasses import dataclass

from .glib import ghash_items
from .obj import Object
from .queue import qtailq_foreach
from .target import CorruptError, MissingDebugInfo, TargetError

PARENT_LIMIT = 64


def _anchors(target):
    """Addresses of QOM objects that globals point to (any will do to find the root)."""
    try:
        for mon in qtailq_foreach(target.variable("mon_list"), "entry"):
            yield mon.chr.chr.value_()
    except TargetError:
        pass
    try:
        for tg in qtailq_foreach(target.variable("throttle_groups", file="throttle-groups.c"),
                                 "list"):
            yield tg.address_
    except TargetError:
        pass
    try:
        yield target.variable("current_machine").value_()
    except TargetError:
        pass


def qom_root(target):
    """The root Object of the QOM tree."""
    object_type = target.lookup_type("Object")
    try:
        root = target.variable("root", file="qom/object.c").value_()
        if root:
            return Object(target, object_type, root)
    except (TargetError, TypeError):
        pass
    for address in _anchors(target):
        if not address:
            continue
        obj = Object(target, object_type, address)
        for _ in range(PARENT_LIMIT):
            parent = obj.parent.value_()
            if not parent:
                return obj
            obj = Object(target, object_type, parent)
        raise CorruptError(f"QOM parents of {address:#x} do not end", address)
    raise MissingDebugInfo("cannot find QOM's root (no function-scope statics in this "
                           "backend and no global names a QOM object)")


def type_name(obj):
    """The QOM type name of an Object (class->type->name)."""
    return obj.member_("class").deref_().type.deref_().name.string_()


def children(obj):
    """(name, Object) of each child property of a QOM Object, sorted by name."""
    target = obj.target_
    prop_type = target.lookup_type("ObjectProperty")
    object_type = target.lookup_type("Object")
    out = []
    for _key, value in ghash_items(target, obj.properties.value_()):
        prop = Object(target, prop_type, value)
        if prop.type.string_().startswith("child<"):
            out.append((prop.name.string_(), Object(target, object_type, prop.opaque.value_())))
    return sorted(out, key=lambda kv: kv[0])


def resolve(obj, path):
    """The Object at a /-separated child path below obj, or None."""
    for part in path.strip("/").split("/"):
        obj = dict(children(obj)).get(part)
        if obj is None:
            return None
    return obj


@dataclass
class IOThreadRecord:
    address: int
    id: str
    internal: bool = False            # made by QEMU itself (iothread_create), not by -object
    aio_context: int | None = None
    thread_id: int | None = None      # LWP
    thread: int | None = None         # the target's thread number
    pthread: int | None = None
    running: bool | None = None
    stopping: bool | None = None
    error: str | None = None


def _internal_root(target):
    """object_get_internal_root(): the parent of mon_iothread, when there is one."""
    try:
        mon = target.variable("mon_iothread").value_()
        if mon:
            obj = Object(target, target.lookup_type("Object"), mon)
            parent = obj.parent.value_()
            return Object(target, obj.type_, parent) if parent else None
    except TargetError:
        pass
    return None


def iothread_objects(target):
    """(id, IOThread Object, internal) for every IOThread under /objects (user-created)
    and under the internal root (iothread_create(), e.g. mon_iothread)."""
    iothread = target.lookup_type("IOThread")
    out = []
    for container, internal in ((resolve(qom_root(target), "objects"), False),
                                (_internal_root(target), True)):
        if container is None:
            continue
        out += [(name, Object(target, iothread, child.address_), internal)
                for name, child in children(container) if type_name(child) == "iothread"]
    return out


def iothreads(target, threads=None):
    """IOThreadRecords, matched to the target's threads by LWP (IOThread.thread_id)."""
    by_tid = {th.tid: th.num for th in (threads if threads is not None else target.threads())}
    out = []
    for name, it, internal in iothread_objects(target):
        rec = IOThreadRecord(address=it.address_, id=name, internal=internal)
        try:
            rec.aio_context = it.ctx.value_()
            rec.thread_id = it.thread_id.value_()
            rec.thread = by_tid.get(rec.thread_id)
            rec.pthread = it.thread.thread.value_()
            rec.running = bool(it.running.value_())
            rec.stopping = bool(it.stopping.value_())
        except TargetError as e:
            rec.error = str(e)
        out.append(rec)
    return out
