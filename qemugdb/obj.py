"""Typed objects over a Target, in the spirit of drgn's Object.

`Object(target, type, address)` is a C lvalue. Members read as attributes (`bs.node_name`),
array elements and pointer offsets by index, and the helpers end in an underscore so they
never hide a member: value_(), deref_(), string_(), enum_name_(), address_, type_. Memory is read when a value is asked for, never cached across objects.

QEMU's layouts change from version to version, so the walkers probe what they read:
read_fields() fills a record field by field, marking the fields this QEMU's debug info
lacks, and first_variable() finds a variable QEMU has renamed.
"""

import functools
import struct

from .errors import CorruptError, FaultError, MissingDebugInfo, TargetError


def strip_typedefs(type_):
    """The type behind any chain of typedefs."""
    for _ in range(64):
        if type_.kind != "typedef":
            return type_
        type_ = type_.target
    raise CorruptError(f"typedef loop at {type_.name}")


def find_member(type_, name):
    """(offset, Member) of `name` in a struct/union, looking inside anonymous members;
    None when absent."""
    type_ = strip_typedefs(type_)
    if type_.kind not in ("struct", "union"):
        return None
    for m in type_.members:
        if m.name == name:
            return m.offset, m
        if m.name is None:
            inner = find_member(m.type, name)
            if inner is not None:
                return m.offset + inner[0], inner[1]
    return None


def has_member(type_, name):
    return find_member(type_, name) is not None


def type_name(type_):
    """A C spelling of a type, for messages and output."""
    if type_.kind in ("struct", "union", "enum") and type_.name:
        return f"{type_.kind} {type_.name}"
    if type_.kind == "pointer":
        return type_name(type_.target) + " *" if type_.target is not None else "void *"
    if type_.kind == "array":
        n = "" if type_.length is None else type_.length
        return f"{type_name(type_.target)}[{n}]"
    return type_.name or type_.kind


_FLOATS = {4: "<f", 8: "<d"}


class Object:
    """A typed lvalue at `address` in `target`; bit_offset/bit_size for bitfields."""

    __slots__ = ("target_", "type_", "address_", "bit_offset_", "bit_size_")

    def __init__(self, target, type_, address, bit_offset=None, bit_size=None):
        self.target_ = target
        self.type_ = type_
        self.address_ = address
        self.bit_offset_ = bit_offset
        self.bit_size_ = bit_size

    def __repr__(self):
        return f"Object({type_name(self.type_)} at {self.address_:#x})"

    # Members, elements, pointers.

    def member_(self, name):
        found = find_member(self.type_, name)
        if found is None:
            raise MissingDebugInfo(f"{type_name(self.type_)} has no member {name!r}")
        offset, m = found
        if m.bit_size:  # bit_offset counts from the struct that holds m (maybe anonymous)
            return Object(self.target_, m.type, self.address_ + offset - m.offset,
                          m.bit_offset, m.bit_size)
        return Object(self.target_, m.type, self.address_ + offset)

    def __getattr__(self, name):
        if name.startswith("_") or name.endswith("_"):
            raise AttributeError(name)
        return self.member_(name)

    def __getitem__(self, index):
        t = strip_typedefs(self.type_)
        if t.kind == "array":
            if t.length is not None and not 0 <= index < t.length:
                raise IndexError(index)
            base = self.address_
        elif t.kind == "pointer":
            base = self.value_()
        else:
            raise TypeError(f"cannot index {type_name(t)}")
        elem = t.target
        return Object(self.target_, elem, base + index * (strip_typedefs(elem).size or 0))

    def deref_(self):
        """The object a pointer points to."""
        t = strip_typedefs(self.type_)
        if t.kind != "pointer":
            raise TypeError(f"cannot dereference {type_name(t)}")
        if t.target is None:   # void *: the debug info gives the pointee no type
            raise MissingDebugInfo(f"cannot dereference {type_name(t)}")
        return Object(self.target_, t.target, self.value_())

    # Values.

    def read_(self):
        t = strip_typedefs(self.type_)
        return self.target_.read(self.address_, t.size)

    def value_(self):
        """The value: int for integers, enums, bools and pointers; float; bytes otherwise."""
        t = strip_typedefs(self.type_)
        if self.bit_size_:
            return self._bitfield(t)
        if t.kind == "pointer":
            return self.target_.read_pointer(self.address_)
        if t.kind in ("int", "enum", "bool"):
            raw = self.target_.read(self.address_, t.size)
            return int.from_bytes(raw, self.target_.byteorder, signed=bool(t.signed))
        if t.kind == "float" and t.size in _FLOATS:
            return struct.unpack(_FLOATS[t.size], self.target_.read(self.address_, t.size))[0]
        return self.read_()

    def _bitfield(self, t):
        first = self.bit_offset_ // 8
        nbytes = (self.bit_offset_ % 8 + self.bit_size_ + 7) // 8
        raw = int.from_bytes(self.target_.read(self.address_ + first, nbytes), "little")
        v = (raw >> (self.bit_offset_ % 8)) & ((1 << self.bit_size_) - 1)
        if t.signed and v >> (self.bit_size_ - 1):
            v -= 1 << self.bit_size_
        return v

    def __int__(self):
        return int(self.value_())

    def __index__(self):
        return int(self.value_())

    def __bool__(self):
        return bool(self.value_())

    def enum_name_(self):
        """The enumerator's name, or None for a value with no name."""
        t = strip_typedefs(self.type_)
        v = self.value_()
        for name, value in t.enumerators:
            if value == v:
                return name
        return None

    def string_(self, limit=4096):
        """A C string: a char array's contents up to NUL, or what a char * points to."""
        t = strip_typedefs(self.type_)
        if t.kind == "array" and t.length:
            raw = self.target_.read(self.address_, min(t.length, limit))
        elif t.kind == "array":  # a flexible array member: up to the NUL
            raw = read_c_string(self.target_, self.address_, limit)
        elif t.kind == "pointer":
            raw = read_c_string(self.target_, self.value_(), limit)
        else:
            raise TypeError(f"{type_name(t)} is not a string")
        return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def read_c_string(target, address, limit=4096):
    """Bytes of the NUL-terminated string at address (without the NUL), at most `limit`."""
    out = b""
    chunk = 64
    while len(out) < limit:
        try:
            part = target.read(address + len(out), chunk)
        except FaultError:
            if chunk == 1:
                if not out:
                    raise
                break
            chunk = 1  # the string may end just before an unmapped page
            continue
        nul = part.find(b"\0")
        if nul >= 0:
            return out + part[:nul]
        out += part
    return out[:limit]


def container_of(pointer, type_, member):
    """The `type_` object whose `member` is at the address `pointer` holds (QEMU's container_of)."""
    target = pointer.target_
    if isinstance(type_, str):
        type_ = target.lookup_type(type_)
    found = find_member(type_, member)
    if found is None:
        raise MissingDebugInfo(f"{type_name(type_)} has no member {member!r}")
    address = pointer.value_() if strip_typedefs(pointer.type_).kind == "pointer" else pointer.address_
    return Object(target, type_, address - found[0])


def read_field(rec, name, reader):
    """rec.NAME = reader(), a function of no arguments; when it meets MissingDebugInfo (a
    member, type or variable this QEMU version does not have), rec.NAME = None and NAME is
    appended to rec.absent. Other TargetErrors propagate."""
    try:
        value = reader()
    except MissingDebugInfo:
        value = None
        rec.absent.append(name)
    setattr(rec, name, value)


def read_fields(rec, obj, **fields):
    """Fill the record `rec` field by field with read_field, so that a field this QEMU
    lacks is marked absent and the others are still read. A field's reader is a member
    path of the Object `obj` ("pfd.fd", read with value_()) or a function of no arguments.
    Any other TargetError (unreadable memory, a corrupt list) ends the record: rec.error says
    why and the fields not read yet keep their defaults. Returns whether it was read
    without error."""
    for name, reader in fields.items():
        if isinstance(reader, str):
            reader = functools.partial(_member_value, obj, reader)
        try:
            read_field(rec, name, reader)
        except TargetError as e:
            rec.error = str(e)
            return False
    return True


def _member_value(obj, path):
    for name in path.split("."):
        obj = obj.member_(name)
    return obj.value_()


def co_tls(name):
    """The names QEMU's per-thread variable NAME has had: co_tls_NAME since QEMU 7.0
    (QEMU_DEFINE_STATIC_CO_TLS), a plain __thread NAME before; for first_variable."""
    return (f"co_tls_{name}", name)


def first_variable(target, names, files=(None,)):
    """(name, file) of the first of `names` the debug info has as a variable, trying every
    name in each of `files` in turn (None: a global): how a variable QEMU renamed is found
    (co_tls_bql_locked, co_tls_iothread_locked, iothread_locked). A per-thread variable that
    needs a thread to be read counts as found. MissingDebugInfo when none is there."""
    for file in files:
        for name in names:
            try:
                target.variable_address(name, file=file)
                return name, file
            except MissingDebugInfo:
                continue
            except TargetError:
                return name, file
    raise MissingDebugInfo(f"no variable {' / '.join(names)} in the debug info")


def thread_variable(target, names, files, thread):
    """`thread`'s copy of the first of `names` in `files` (see first_variable), an Object."""
    name, file = first_variable(target, names, files)
    return target.variable(name, file=file, thread=thread)


def thread_flag(target, names, files, thread):
    """A per-thread boolean (the first of `names` in `files`) for `thread`; None when it
    cannot be read."""
    try:
        return bool(thread_variable(target, names, files, thread).value_())
    except TargetError:
        return None
