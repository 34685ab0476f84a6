"""QEMU's own objects in a seed core, as places for structural mutations.

An object mutation names its place by structure, never by address:

    {"op": "object", "kind": "BlockDriverState", "index": 1, "member": "children.lh_first",
     "value": {"ptr": "wild", "low": 48}}

resolved against the unmutated seed at replay: the object's address is the `index`-th of
its kind in the seed's own listing (the CLI's --json output: `block-graph` for nodes,
backends and BdrvChild edges, `jobs`, `aio`, `bhs`, `handlers`, `timers`, `coroutines`),
the member's offset and size come from the seed's DWARF (corefile), and the value from
the recipe (and, for relative values, the bytes the seed holds there). The listing is used
only to find the places; it is never the oracle of a run.

    objects = locate(listings, program)       # SeedObjects of one seed
    op = random_op(rng, objects)              # a recipe operation
    vaddr, data = resolve(op, objects, read)  # the bytes to write at a virtual address
"""

import struct
from dataclasses import dataclass, field

# kind -> (DWARF type names tried in order, listing command, how to pick its records)
KINDS = {
    "BlockDriverState": (("BlockDriverState",), "block-graph",
                         lambda j: [r for r in j.get("nodes", []) if r.get("type") == "block-driver"]),
    "BlockBackend": (("BlockBackend",), "block-graph",
                     lambda j: [r for r in j.get("nodes", []) if r.get("type") == "block-backend"]),
    "BdrvChild": (("BdrvChild",), "block-graph", lambda j: j.get("edges", [])),
    "Job": (("BlockJob", "Job"), "jobs", lambda j: j.get("jobs", [])),
    "AioContext": (("AioContext",), "aio", lambda j: j if isinstance(j, list) else []),
    "QEMUBH": (("QEMUBH",), "bhs", lambda j: j.get("items", [])),
    "AioHandler": (("AioHandler",), "handlers", lambda j: j.get("items", [])),
    "QEMUTimer": (("QEMUTimer",), "timers", lambda j: j.get("items", [])),
    "Coroutine": (("CoroutineUContext", "Coroutine"), "coroutines",
                  lambda j: j.get("coroutines", [])),
}
LISTINGS = sorted({cmd for _, cmd, _ in KINDS.values()})
MAX_DEPTH = 3        # nested struct members followed (BlockDriverState.bl.request_alignment)
WILD = 0xdead0000    # an address no fixture maps
# Values a reader cannot tell from a real one (plain data, NULL, another object of the
# member's own kind): output may change silently. The others must be marked or ignored.
PLAUSIBLE_PTRS = ("null", "same-kind")


class NotFound(LookupError):
    """A recipe names an object or member the seed does not have."""


@dataclass
class Leaf:
    """A member path's place in its object: byte offset, size, class (pointer/int/chars)."""
    offset: int
    size: int
    cls: str


@dataclass
class SeedObjects:
    """Addresses of each kind's objects (listing order) and each kind's member leaves."""
    addresses: dict = field(default_factory=dict)   # kind -> [address]
    names: dict = field(default_factory=dict)       # kind -> [name or None]
    layouts: dict = field(default_factory=dict)     # kind -> {member path: Leaf}
    types: dict = field(default_factory=dict)       # kind -> the DWARF struct's name

    def to_json(self):
        return {"addresses": self.addresses, "names": self.names, "types": self.types,
                "layouts": {k: {m: [l.offset, l.size, l.cls] for m, l in v.items()}
                            for k, v in self.layouts.items()}}

    @classmethod
    def from_json(cls, d):
        return cls(d["addresses"], d["names"],
                   {k: {m: Leaf(*l) for m, l in v.items()} for k, v in d["layouts"].items()},
                   d.get("types", {}))

    def keep(self, wanted):
        """Keep only the objects whose address wanted(address) accepts."""
        for kind in list(self.addresses):
            pairs = [(a, n) for a, n in zip(self.addresses[kind], self.names[kind]) if wanted(a)]
            self.addresses[kind] = [a for a, _ in pairs]
            self.names[kind] = [n for _, n in pairs]

    def kinds(self):
        """Kinds with at least one object and one member."""
        return [k for k in KINDS if self.addresses.get(k) and self.layouts.get(k)]

    def owner(self, address):
        """(kind, index) of the object at address, or None."""
        for kind, addrs in self.addresses.items():
            if address in addrs:
                return kind, addrs.index(address)
        return None


def _address(record):
    value = record.get("address", record.get("id"))
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return value


def locate(listings: dict, program) -> SeedObjects:
    """SeedObjects from the seed's listings ({command: parsed --json output}) and its
    corefile Program (for the layouts)."""
    objs = SeedObjects()
    for kind, (type_names, command, pick) in KINDS.items():
        records = [r for r in pick(listings.get(command) or {}) if isinstance(r, dict)]
        addrs = [(a, r.get("name")) for r in records if (a := _address(r))]
        if not addrs:
            continue
        typ = name = None
        for name in type_names:
            try:
                typ = program.type(name)
            except Exception:   # a seed without this type's DWARF
                typ = None
            if typ is not None and typ.strip_typedefs().kind == "struct":
                break
        if typ is None:
            continue
        objs.addresses[kind] = [a for a, _ in addrs]
        objs.names[kind] = [n if isinstance(n, str) else None for _, n in addrs]
        objs.layouts[kind] = leaves(typ)
        objs.types[kind] = name
    return objs


def leaves(typ, prefix="", base=0, depth=0) -> dict:
    """{member path: Leaf} of a struct: pointers, integers (enums, bools) and char arrays,
    nested structs and unions followed MAX_DEPTH levels, other arrays by their element 0."""
    out = {}
    t = typ.strip_typedefs()
    for m in t.members or []:
        if m.bit_size is not None:
            continue
        path = f"{prefix}{m.name}" if m.name else prefix.rstrip(".")
        mt = m.type.strip_typedefs()
        off = base + m.offset
        if mt.kind == "array" and mt.target is not None:
            elem = mt.target.strip_typedefs()
            if elem.kind == "int" and elem.size == 1 and mt.size:
                out[path] = Leaf(off, mt.size, "chars")
                continue
            mt, path = elem, f"{path}[0]"
        if mt.kind in ("struct", "union") and depth < MAX_DEPTH:
            out.update(leaves(mt, f"{path}." if path else "", off, depth + 1))
        elif mt.kind == "pointer" and mt.size == 8:
            out[path] = Leaf(off, 8, "pointer")
        elif mt.kind in ("int", "enum", "bool") and mt.size in (1, 2, 4, 8):
            out[path] = Leaf(off, mt.size, "int")
    return out


# -- operations -------------------------------------------------------------------------

def random_op(rng, objs: SeedObjects, kind=None) -> dict:
    """One object operation on a random object and member of the seed."""
    kind = kind or rng.choice(objs.kinds())
    index = rng.randrange(len(objs.addresses[kind]))
    member = rng.choice(sorted(objs.layouts[kind]))
    leaf = objs.layouts[kind][member]
    r = rng.random()
    if r < 0.1:
        value = {"bytes": rng.randbytes(leaf.size).hex()}
    elif leaf.cls == "pointer":
        how = rng.choice(["null", "wild", "wild", "max", "noncanonical", "unaligned", "flip",
                          "self", "same-kind", "other-kind"])
        value = {"ptr": how}
        if how == "wild":
            value["low"] = rng.randrange(0, 0x1000, 8)
        elif how == "flip":
            value["bit"] = rng.randrange(3, 47)
        elif how in ("same-kind", "other-kind"):
            other = kind if how == "same-kind" else rng.choice(objs.kinds())
            value.update(kind=other, index=rng.randrange(len(objs.addresses[other])))
    elif leaf.cls == "chars":
        filler = rng.choice([b"\xff\xfe", b"\x1b[31m", b"<script>", b"A", b"\n\"\\"])
        value = {"bytes": (filler * leaf.size)[:leaf.size].hex()}
    else:
        bits = 8 * leaf.size
        value = {"int": rng.choice([0, 1, 2, 3, -1, 1 << (bits - 1), (1 << (bits - 1)) - 1,
                                    rng.getrandbits(bits)])}
    return {"op": "object", "kind": kind, "index": index, "member": member, "value": value}


def resolve(op: dict, objs: SeedObjects, read) -> tuple:
    """(virtual address, bytes) of an object operation; read(vaddr, size) gives the
    seed's bytes (for unaligned and flip)."""
    kind, index, member = op["kind"], op["index"], op["member"]
    addrs = objs.addresses.get(kind, [])
    if index >= len(addrs):
        raise NotFound(f"no {kind} {index} in the seed")
    leaf = objs.layouts.get(kind, {}).get(member)
    if leaf is None:
        raise NotFound(f"no member {member} in the seed's {kind}")
    where = addrs[index] + leaf.offset
    value = op["value"]
    if "bytes" in value:
        return where, bytes.fromhex(value["bytes"])[:leaf.size]
    if "int" in value:
        return where, value["int"].to_bytes(8, "little", signed=value["int"] < 0)[:leaf.size]
    how = value["ptr"]
    orig, = struct.unpack("<Q", read(where, 8))
    if how in ("same-kind", "other-kind"):
        others = objs.addresses.get(value["kind"], [])
        if value["index"] >= len(others):
            raise NotFound(f"no {value['kind']} {value['index']} in the seed")
    ptr = {"null": lambda: 0, "wild": lambda: WILD + value.get("low", 0),
           "max": lambda: (1 << 64) - 1, "noncanonical": lambda: (1 << 63) | orig,
           "unaligned": lambda: orig + 1, "flip": lambda: orig ^ (1 << value.get("bit", 12)),
           "self": lambda: addrs[index],
           "same-kind": lambda: objs.addresses[value["kind"]][value["index"]],
           "other-kind": lambda: objs.addresses[value["kind"]][value["index"]]}[how]()
    return where, struct.pack("<Q", ptr & ((1 << 64) - 1))


def must_be_marked(op: dict, objs: SeedObjects) -> bool:
    """Whether a reader can tell the written value is bad: an unmapped or non-canonical
    pointer, or garbage over a pointer. NULL, another object of the member's own kind,
    integers and char arrays can be read as real data (silently wrong in principle)."""
    leaf = objs.layouts[op["kind"]][op["member"]]
    value = op["value"]
    if leaf.cls != "pointer":
        return False
    if "bytes" in value:
        return True
    return value["ptr"] in ("wild", "max", "noncanonical")
