"""Enumerations and flag words decoded by name, from DWARF where QEMU gives it a type.

QEMU spells its constants three ways: named enums (BdrvChildRoleBits, BlockPermission,
JobStatus), anonymous enums (BLK_PERM_*, BH_*) and #defines (BDRV_O_*). Named enums come
from target.lookup_type; an anonymous enum is found through an enumerator's name
(target.lookup_enumerator); #defines are not in DWARF at all. When the debug info lacks
a value, a table copied from QEMU's headers is the fallback, and the result says so
(`source`).
"""

from collections.abc import Iterable
from dataclasses import dataclass

from ..obj import Object, strip_typedefs
from ..result import Record
from ..target import MissingDebugInfo, Target, TargetError


@dataclass
class Flags(Record):
    """Single-bit constants [(name, value)] and where they were read from."""
    ERRORS = ()
    MISSING = ()
    bits: list
    source: str   # "debug info" or "QEMU's headers (not in the debug info)"

    def decode(self, value: int, strip: str = "") -> list[str]:
        """Names of the bits set in value (prefix `strip` removed, lower-case when
        stripping), unknown bits as one hex number."""
        names = []
        rest = value
        for name, bit in self.bits:
            if value & bit:
                names.append(name.removeprefix(strip).lower() if strip else name)
                rest &= ~bit
        if rest:
            names.append(f"{rest:#x}")
        return names


HEADERS = "QEMU's headers (not in the debug info)"


def _single_bits(enumerators, prefix):
    return [(n, v) for n, v in enumerators
            if n.startswith(prefix) and v > 0 and v & (v - 1) == 0]


def enum_type(target: Target, name: str) -> object:
    """An enum type by name ("JobStatus", "enum BlockPermission"); MissingDebugInfo if absent."""
    t = strip_typedefs(target.lookup_type(name))
    if t.kind != "enum":
        raise MissingDebugInfo(f"{name} is not an enum in the debug info")
    return t


def enumerators(target: Target, name: str) -> list[tuple[str, int]]:
    """[(name, value)] of a named enum, [] when the debug info lacks it."""
    try:
        return list(enum_type(target, name).enumerators)
    except MissingDebugInfo:
        return []


def anonymous_enum(target: Target, enumerator: str) -> object | None:
    """The enum type holding `enumerator` (e.g. "BH_PENDING"), or None when the debug info
    lacks it."""
    try:
        return strip_typedefs(target.lookup_enumerator(enumerator))
    except MissingDebugInfo:
        return None


def flags(target: Target, type_name: str | None = None, enumerator: str | None = None,
          prefix: str = "", table: Iterable[tuple[str, int]] = ()) -> Flags:
    """A Flags from the named enum `type_name`, else the anonymous enum holding
    `enumerator`, else `table` (QEMU's header values; source says so)."""
    if type_name:
        bits = _single_bits(enumerators(target, type_name), prefix)
        if bits:
            return Flags(bits, "debug info")
    if enumerator:
        t = anonymous_enum(target, enumerator)
        if t is not None:
            bits = _single_bits(t.enumerators, prefix)
            if bits:
                return Flags(bits, "debug info")
    return Flags(list(table), HEADERS)


def enum_name(obj: Object) -> str:
    """An enum Object's enumerator name, or its number as a string.

    :param obj: any enum type"""
    name = obj.enum_name_()
    return name if name is not None else str(obj.value_())


def qapi_names(target: Target, enum: str, lookup: str) -> dict[int, str]:
    """{value: QMP spelling} of a QAPI enum: the strings of its QEnumLookup variable
    (e.g. JobStatus_lookup) when readable, else the enumerator names lower-cased after the
    common prefix with '-' for '_' (QAPI's own rule for the usual names)."""
    values = [(n, v) for n, v in enumerators(target, enum) if not n.endswith("__MAX")]
    if not values:
        return {}
    try:
        array = target.variable(lookup).array
        return {v: array[v].string_() for _, v in values}
    except (TargetError, TypeError):
        pass
    prefix = _common_prefix([n for n, _ in values])
    return {v: n[len(prefix):].lower().replace("_", "-") for n, v in values}


def _common_prefix(names):
    first = names[0]
    end = len(first) if len(names) > 1 else first.rfind("_") + 1
    for n in names[1:]:
        while not n.startswith(first[:end]):
            end -= 1
    return first[:first[:end].rfind("_") + 1]
