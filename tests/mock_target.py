"""A Target built from bytes and hand-made types, for walker tests without a process.

    t = MockTarget()
    t.add_type(struct("Node", 16, [member("next", pointer(...), 0), member("v", INT, 8)]))
    t.map(0x1000, b"...")          # readable memory; anything else raises FaultError
    t.add_variable("head", 0x1000, some_type)
"""

import struct as _struct
from dataclasses import dataclass, field

from qemugdb.target import FaultError, MissingDebugInfo, Target


@dataclass(eq=False)
class MockType:
    kind: str
    name: str | None = None
    size: int | None = None
    members: list = field(default_factory=list)
    target: "MockType | None" = None
    length: int | None = None
    enumerators: list = field(default_factory=list)
    signed: bool = False


@dataclass
class MockMember:
    name: str | None
    type: MockType
    offset: int
    bit_size: int = 0
    bit_offset: int | None = None


def integer(name, size, signed=False):
    return MockType("int", name, size, signed=signed)


INT = integer("int", 4, signed=True)
UINT64 = integer("uint64_t", 8)
CHAR = integer("char", 1, signed=True)
BOOL = MockType("bool", "_Bool", 1)
VOID = MockType("void", "void")


def pointer(target):
    return MockType("pointer", None, 8, target=target)


def array(target, length):
    return MockType("array", None, (target.size or 0) * (length or 0), target=target,
                    length=length)


def typedef(name, target):
    return MockType("typedef", name, target.size, target=target)


def enum(name, size, enumerators, signed=False):
    return MockType("enum", name, size, enumerators=list(enumerators), signed=signed)


def struct(name, size, members, kind="struct"):
    return MockType(kind, name, size, members=list(members))


def member(name, type_, offset, bit_size=0, bit_offset=None):
    return MockMember(name, type_, offset, bit_size, bit_offset)


class MockTarget(Target):
    def __init__(self):
        self.segments = []       # (start, bytearray)
        self.types = {}
        self.variables = {}

    def map(self, address, data):
        self.segments.append((address, bytearray(data)))

    def write(self, address, data):
        for start, buf in self.segments:
            if start <= address and address + len(data) <= start + len(buf):
                buf[address - start:address - start + len(data)] = data
                return
        raise AssertionError(f"{address:#x} not mapped")

    def write_u64(self, address, *values):
        self.write(address, _struct.pack(f"<{len(values)}Q", *values))

    def add_type(self, type_, name=None):
        key = name or (f"{type_.kind} {type_.name}" if type_.kind in ("struct", "union", "enum")
                       else type_.name)
        self.types[key] = type_
        if type_.kind in ("struct", "union", "enum") and name is None:
            self.types.setdefault(type_.name, type_)
        return type_

    def add_variable(self, name, address, type_, file=None):
        self.variables[(name, file)] = (address, type_)

    def read(self, address, size):
        for start, buf in self.segments:
            if start <= address and address + size <= start + len(buf):
                return bytes(buf[address - start:address - start + size])
        raise FaultError(address, size)

    def lookup_type(self, name):
        try:
            return self.types[name]
        except KeyError:
            raise MissingDebugInfo(f"no type {name!r}") from None

    def variable_address(self, name, file=None, thread=None, function=None):
        try:
            return self.variables[(name, file)]
        except KeyError:
            raise MissingDebugInfo(f"no variable {name!r}") from None

    def function_address(self, name):
        return None

    def threads(self):
        return []
