"""QOM: the object tree (qom/object.c), read from Object.parent and the child<...>
properties in Object.properties (a GHashTable of ObjectProperty, the child in `opaque`).

QOM's root is object_get_root()'s function-scope static `root`. Backends that resolve
function-scope statics answer it directly; otherwise the root is reached by climbing
Object.parent from an object a global names (a monitor's chardev, a throttle group, the
machine).
"""

from .glib import ghash_items
from ..obj import Object
from .queue import qtailq_foreach
from ..target import CorruptError, MissingDebugInfo, Target, TargetError

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


def qom_root(target: Target) -> Object:
    """The root Object of the QOM tree.

    :returns: Object (QOM's)"""
    object_type = target.lookup_type("Object")
    try:
        root = target.variable("root", file="qom/object.c",
                               function="object_get_root").value_()
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


def type_name(obj: Object) -> str:
    """The QOM type name of an Object (class->type->name).

    :param obj: Object (QOM's)"""
    return obj.member_("class").deref_().type.deref_().name.string_()


def children(obj: Object) -> list[tuple[str, Object]]:
    """(name, Object) of each child property of a QOM Object, sorted by name.

    :param obj: Object (QOM's)
    :returns: (name, Object (QOM's)) pairs"""
    target = obj.target_
    prop_type = target.lookup_type("ObjectProperty")
    object_type = target.lookup_type("Object")
    out = []
    for _key, value in ghash_items(target, obj.properties.value_()):
        prop = Object(target, prop_type, value)
        if prop.type.string_().startswith("child<"):
            out.append((prop.name.string_(), Object(target, object_type, prop.opaque.value_())))
    return sorted(out, key=lambda kv: kv[0])


def resolve(obj: Object, path: str) -> Object | None:
    """The Object at a /-separated child path below obj, or None.

    :param obj: Object (QOM's)
    :returns: Object (QOM's)"""
    for part in path.strip("/").split("/"):
        obj = dict(children(obj)).get(part)
        if obj is None:
            return None
    return obj


def canonical_path(obj: Object) -> str | None:
    """object_get_canonical_path(): the child property names from the root down to obj,
    or None when obj is not in the tree.

    :param obj: Object (QOM's)"""
    target = obj.target_
    object_type = target.lookup_type("Object")
    parts = []
    for _ in range(PARENT_LIMIT):
        parent = obj.parent.value_()
        if not parent:
            return "/" + "/".join(reversed(parts))
        parent_obj = Object(target, object_type, parent)
        name = next((n for n, child in children(parent_obj) if child.address_ == obj.address_),
                    None)
        if name is None:
            return None
        parts.append(name)
        obj = parent_obj
    raise CorruptError(f"QOM parents of {obj.address_:#x} do not end", obj.address_)
