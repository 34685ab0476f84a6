"""The C type model shared by the DWARF reader and its users (pure standard library).

A Type is built eagerly for what is cheap (kind, name) and lazily for the rest: the reader
passes a loader that fills size, target, members, length and enumerators on first access,
so recursive types (a struct with a pointer to itself) and huge type graphs cost nothing
until used. Hand-made types (tests, synthetic targets) pass those values directly.
const/volatile qualifiers are not represented: they never change a layout.
"""

KINDS = ("struct", "union", "enum", "pointer", "array", "int", "bool", "float", "void",
         "function", "typedef")

_UNSET = object()


class Member:
    """A struct or union member. name is None for an anonymous struct/union member.

    offset is in bytes from the start of the containing struct; for a bitfield, bit_offset
    is its first bit counted from that same start (DWARF data_bit_offset semantics, so
    offset == bit_offset // 8) and bit_size its width; both are None otherwise.
    """
    __slots__ = ("name", "type", "offset", "bit_size", "bit_offset")

    def __init__(self, name, type, offset, bit_size=None, bit_offset=None):
        self.name = name
        self.type = type
        self.offset = offset
        self.bit_size = bit_size
        self.bit_offset = bit_offset

    def __repr__(self):
        bits = f" bits={self.bit_offset}:{self.bit_size}" if self.bit_size is not None else ""
        return f"<Member {self.name or '<anonymous>'}: {self.type} @{self.offset}{bits}>"


class Type:
    """A C type: see KINDS. Lazily resolved attributes are properties."""
    __slots__ = ("kind", "name", "signed", "_size", "_target", "_members", "_length",
                 "_enumerators", "_loader")

    def __init__(self, kind, name=None, size=_UNSET, *, target=_UNSET, members=_UNSET,
                 length=_UNSET, enumerators=_UNSET, signed=False, loader=None):
        if kind not in KINDS:
            raise ValueError(f"unknown type kind {kind!r}")
        self.kind = kind
        self.name = name
        self.signed = signed
        self._size = size
        self._target = target
        self._members = members
        self._length = length
        self._enumerators = enumerators
        self._loader = loader

    def _load(self):
        loader = self._loader
        if loader is not None:
            self._loader = None  # no re-entry while it runs
            try:
                loader(self)
            except BaseException:
                self._loader = loader  # fail again next time, never half-filled
                raise
        for slot in ("_size", "_target", "_members", "_length", "_enumerators"):
            if getattr(self, slot) is _UNSET:
                setattr(self, slot, [] if slot in ("_members", "_enumerators") else None)

    def _get(self, slot):
        value = getattr(self, slot)
        if value is _UNSET:
            self._load()
            value = getattr(self, slot)
        return value

    def set_lazy(self, **values):
        """Fill lazily computed attributes (for loaders): size, target, members, length,
        enumerators."""
        for key, value in values.items():
            setattr(self, "_" + key, value)

    @property
    def size(self):
        """Byte size (sizeof), or None when unknown (void, function, incomplete types);
        0 for an array without a bound, as gdb says."""
        size = self._get("_size")
        if size is None:
            if self.kind == "typedef" and self.target is not None:
                return self.target.size
            if self.kind == "array":
                if self.length is None:
                    return 0  # flexible array member: gdb's sizeof is 0 too
                elem = self.target.size if self.target is not None else None
                return None if elem is None else elem * self.length
        return size

    @property
    def target(self):
        """Pointed-to type (pointer), element type (array), aliased type (typedef), return
        type (function); None for void targets."""
        return self._get("_target")

    @property
    def members(self):
        """[Member] of a struct or union, in declaration order."""
        return self._get("_members")

    @property
    def length(self):
        """Element count of an array; None for a flexible or unknown bound."""
        return self._get("_length")

    @property
    def enumerators(self):
        """[(name, value)] of an enum."""
        return self._get("_enumerators")

    def strip_typedefs(self):
        """The type a typedef chain ends in (self when not a typedef)."""
        t = self
        for _ in range(64):
            if t.kind != "typedef" or t.target is None:
                return t
            t = t.target
        return t

    def member(self, name):
        """The Member called name, looking inside anonymous struct/union members too, with
        offset (and bit_offset) counted from the start of this type; None when absent."""
        t = self.strip_typedefs()
        if t.kind not in ("struct", "union"):
            return None
        for m in t.members:
            if m.name == name:
                return m
        for m in t.members:
            if m.name is None:
                inner = m.type.member(name)
                if inner is not None:
                    bit = None if inner.bit_offset is None else inner.bit_offset + 8 * m.offset
                    return Member(inner.name, inner.type, inner.offset + m.offset,
                                  inner.bit_size, bit)
        return None

    def enumerator(self, name):
        """The value of an enum constant, or None."""
        for n, v in self.strip_typedefs().enumerators:
            if n == name:
                return v
        return None

    def __str__(self):
        kind = self.kind
        if kind in ("struct", "union", "enum"):
            return f"{kind} {self.name}" if self.name else f"{kind} {{...}}"
        if kind == "pointer":
            target = str(self.target) if self.target is not None else "void"
            return f"{target}*" if target.endswith("*") else f"{target} *"
        if kind == "array":
            dims = ""
            t = self
            while t is not None and t.kind == "array":
                dims += f"[{'' if t.length is None else t.length}]"
                t = t.target
            return f"{t}{dims}"
        if kind == "function":
            return f"{self.target if self.target is not None else 'void'} (...)"
        return self.name or kind

    def __repr__(self):
        return f"<Type {self.kind} {str(self)!r} size={self.size}>"
