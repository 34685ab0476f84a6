"""GLib containers QEMU keeps its state in: GSList and GHashTable.

GSList is public ({data, next}) and read from DWARF. GHashTable is private to glib
(ghash.c) and glib ships without debug info here, so when the debug info has no complete
`struct _GHashTable`, the layout of glib >= 2.59 (stable since, x86-64 LP64) is used:
    gsize size; gint mod; guint mask; guint nnodes; guint noccupied;
    guint have_big_keys:1, have_big_values:1; gpointer keys; guint *hashes; gpointer values;
Small keys/values are stored as guint32; a bucket is in use when hashes[i] >= 2.
"""

from collections.abc import Iterator

from ..obj import Object, find_member, strip_typedefs
from ..target import CorruptError, MissingDebugInfo, Target

LIMIT = 1_000_000

# ghash.c (glib >= 2.59): field -> (offset, size); used only without glib's debug info.
GHASHTABLE_LAYOUT = {"size": (0, 8), "nnodes": (16, 4), "flags": (24, 4),
                     "keys": (32, 8), "hashes": (40, 8), "values": (48, 8)}


def gslist_data(head: Object, limit: int = LIMIT) -> Iterator[int]:
    """The data pointers of a GSList * Object, bounded; CorruptError on a cycle.

    :param head: GSList *
    :returns: iterator of the nodes' gpointer data, as addresses"""
    node = head.value_()
    seen = set()
    gslist = strip_typedefs(head.type_).target
    while node:
        if node in seen or len(seen) >= limit:
            raise CorruptError(f"GSList cycles or runs away at {node:#x}", node)
        seen.add(node)
        elem = Object(head.target_, gslist, node)
        yield elem.data.value_()
        node = elem.next.value_()


def _layout(target):
    try:
        t = strip_typedefs(target.lookup_type("struct _GHashTable"))
        if t.members and find_member(t, "have_big_keys"):
            out = {}
            for name in ("size", "nnodes", "keys", "hashes", "values"):
                off, m = find_member(t, name)
                out[name] = (off, strip_typedefs(m.type).size)
            out["flags"] = (find_member(t, "have_big_keys")[0], 4)
            return out
    except MissingDebugInfo:
        pass
    return GHASHTABLE_LAYOUT


def ghash_items(target: Target, address: int, limit: int = LIMIT) -> Iterator[tuple[int, int]]:
    """(key, value) pointers of the GHashTable at address (values == keys for a set)."""
    if not address:
        return
    layout = _layout(target)

    def field(name):
        off, size = layout[name]
        return target.read_uint(address + off, size)

    size, nnodes = field("size"), field("nnodes")
    if size > limit or nnodes > size or size & (size - 1):
        raise CorruptError(f"GHashTable at {address:#x}: size {size}, nnodes {nnodes}",
                           address)
    flags = field("flags")
    big_keys, big_values = flags & 1, flags >> 1 & 1
    keys, hashes, values = field("keys"), field("hashes"), field("values")
    hash_words = target.read(hashes, 4 * size)
    kw = 8 if big_keys else 4
    vw = 8 if big_values else 4
    key_bytes = target.read(keys, kw * size)
    value_bytes = key_bytes if values == keys else target.read(values, vw * size)
    if values == keys:
        vw = kw
    for i in range(size):
        if int.from_bytes(hash_words[4 * i:4 * i + 4], "little") < 2:
            continue
        yield (int.from_bytes(key_bytes[kw * i:kw * i + kw], "little"),
               int.from_bytes(value_bytes[vw * i:vw * i + vw], "little"))
