"""Building QEMU-shaped data in a MockTarget: structs laid out member after member, and a
heap that allocates them and writes members by name."""

import struct

from mock_target import member, struct as mstruct


def layout(name, fields):
    """A struct whose members are laid out one after another, 8-byte aligned."""
    members, off = [], 0
    for fname, ftype in fields:
        members.append(member(fname, ftype, off))
        off += (ftype.size + 7) // 8 * 8
    return mstruct(name, off, members)


class Heap:
    """Allocates objects of mock types in one mapped arena and writes members by name."""

    def __init__(self, t, base=0x100000, size=0x40000):
        self.t, self.next = t, base
        t.map(base, bytes(size))

    def new(self, type_, **values):
        address = self.next
        self.next += (type_.size + 15) // 16 * 16
        self.set(type_, address, **values)
        return address

    def set(self, type_, address, **values):
        for name, value in values.items():
            m = next(m for m in type_.members if m.name == name)
            t = m.type
            while t.kind == "typedef":
                t = t.target
            if t.kind == "array":
                data = value.encode() + b"\0"
            elif t.kind == "struct":  # a list head/link: its first pointer
                data = struct.pack("<Q", value)
            else:
                data = value.to_bytes(t.size, "little", signed=value < 0)
            self.t.write(address + m.offset, data)
