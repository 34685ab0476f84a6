"""Raw DWARF decoding: ELF debug sections, unit headers, abbreviations, attribute forms, DIEs.

Pure standard library and deliberately low level: a DIE is decoded straight from the
section bytes into (tag, {attribute: value}) only when a lookup needs it, so nothing here
builds per-DIE objects for a whole unit.
"""

import bisect
import mmap
import os
import re
import struct
import zlib


from . import cache
from .errors import MissingDebugInfoError


class DwarfError(MissingDebugInfoError):
    """The debug information is missing, malformed or uses something not supported."""

# Tags (DWARF 5, section 7.5.3)
TAG_array_type = 0x01
TAG_enumeration_type = 0x04
TAG_formal_parameter = 0x05
TAG_lexical_block = 0x0B
TAG_member = 0x0D
TAG_pointer_type = 0x0F
TAG_structure_type = 0x13
TAG_subroutine_type = 0x15
TAG_typedef = 0x16
TAG_union_type = 0x17
TAG_inlined_subroutine = 0x1D
TAG_subrange_type = 0x21
TAG_base_type = 0x24
TAG_const_type = 0x26
TAG_enumerator = 0x28
TAG_subprogram = 0x2E
TAG_variable = 0x34
TAG_volatile_type = 0x35
TAG_restrict_type = 0x37
TAG_atomic_type = 0x47
TAG_unspecified_type = 0x3B
TAG_imported_unit = 0x3D
TAG_GNU_call_site = 0x4109
TAG_call_site = 0x48

# Attributes
AT_sibling = 0x01
AT_location = 0x02
AT_name = 0x03
AT_byte_size = 0x0B
AT_bit_offset = 0x0C
AT_bit_size = 0x0D
AT_stmt_list = 0x10
AT_low_pc = 0x11
AT_high_pc = 0x12
AT_comp_dir = 0x1B
AT_const_value = 0x1C
AT_lower_bound = 0x22
AT_upper_bound = 0x2F
AT_abstract_origin = 0x31
AT_count = 0x37
AT_data_member_location = 0x38
AT_declaration = 0x3C
AT_encoding = 0x3E
AT_external = 0x3F
AT_specification = 0x47
AT_type = 0x49
AT_ranges = 0x55
AT_entry_pc = 0x52
AT_import = 0x18
AT_call_file = 0x58
AT_call_line = 0x59
AT_signature = 0x69
AT_data_bit_offset = 0x6B
AT_str_offsets_base = 0x72
AT_addr_base = 0x73
AT_rnglists_base = 0x74
AT_loclists_base = 0x8C
AT_linkage_name = 0x6E
AT_MIPS_linkage_name = 0x2007

# Forms
FORM_addr = 0x01
FORM_block2 = 0x03
FORM_block4 = 0x04
FORM_data2 = 0x05
FORM_data4 = 0x06
FORM_data8 = 0x07
FORM_string = 0x08
FORM_block = 0x09
FORM_block1 = 0x0A
FORM_data1 = 0x0B
FORM_flag = 0x0C
FORM_sdata = 0x0D
FORM_strp = 0x0E
FORM_udata = 0x0F
FORM_ref_addr = 0x10
FORM_ref1 = 0x11
FORM_ref2 = 0x12
FORM_ref4 = 0x13
FORM_ref8 = 0x14
FORM_ref_udata = 0x15
FORM_indirect = 0x16
FORM_sec_offset = 0x17
FORM_exprloc = 0x18
FORM_flag_present = 0x19
FORM_strx = 0x1A
FORM_addrx = 0x1B
FORM_ref_sup4 = 0x1C
FORM_strp_sup = 0x1D
FORM_data16 = 0x1E
FORM_line_strp = 0x1F
FORM_ref_sig8 = 0x20
FORM_implicit_const = 0x21
FORM_loclistx = 0x22
FORM_rnglistx = 0x23
FORM_ref_sup8 = 0x24
FORM_strx1 = 0x25
FORM_strx2 = 0x26
FORM_strx3 = 0x27
FORM_strx4 = 0x28
FORM_addrx1 = 0x29
FORM_addrx2 = 0x2A
FORM_addrx3 = 0x2B
FORM_addrx4 = 0x2C
FORM_GNU_addr_index = 0x1F01
FORM_GNU_str_index = 0x1F02
FORM_GNU_ref_alt = 0x1F20
FORM_GNU_strp_alt = 0x1F21

# Sizes of forms that do not depend on the unit (None: variable or unit dependent).
_FIXED = {
    FORM_block2: None, FORM_data2: 2, FORM_data4: 4, FORM_data8: 8, FORM_data1: 1,
    FORM_flag: 1, FORM_ref1: 1, FORM_ref2: 2, FORM_ref4: 4, FORM_ref8: 8,
    FORM_flag_present: 0, FORM_ref_sup4: 4, FORM_data16: 16, FORM_ref_sig8: 8,
    FORM_implicit_const: 0, FORM_ref_sup8: 8, FORM_strx1: 1, FORM_strx2: 2, FORM_strx3: 3,
    FORM_strx4: 4, FORM_addrx1: 1, FORM_addrx2: 2, FORM_addrx3: 3, FORM_addrx4: 4,
}
_OFFSET_SIZED = (FORM_strp, FORM_sec_offset, FORM_line_strp, FORM_strp_sup,
                 FORM_GNU_ref_alt, FORM_GNU_strp_alt)
_ADDR_FORMS = (FORM_addr, FORM_addrx, FORM_addrx1, FORM_addrx2, FORM_addrx3, FORM_addrx4,
               FORM_GNU_addr_index)
_REF_FORMS = (FORM_ref1, FORM_ref2, FORM_ref4, FORM_ref8, FORM_ref_udata)
# Forms naming a DIE or a string of the dwz supplementary file (GNU's, then DWARF 5's).
_ALT_FORMS = (FORM_GNU_ref_alt, FORM_GNU_strp_alt, FORM_ref_sup4, FORM_ref_sup8,
              FORM_strp_sup)

_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_u64 = struct.Struct("<Q").unpack_from


def uleb(data, pos):
    """Decode an unsigned LEB128 at pos: (value, new_pos)."""
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def sleb(data, pos):
    """Decode a signed LEB128 at pos: (value, new_pos)."""
    result = 0
    shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            if b & 0x40:
                result -= 1 << shift
            return result, pos


def cstring(data, pos):
    """The NUL-terminated bytes at pos."""
    return data[pos:data.index(b"\0", pos)]


def string_end(data, pos):
    """Offset of the NUL ending the string at pos (data: bytes or an mmap)."""
    end = data.find(b"\0", pos)
    if end < 0:
        raise DwarfError(f"unterminated string at {pos:#x}")
    return end


# ---------------------------------------------------------------------------------------
# ELF sections

MAX_DEFLATE_RATIO = 1032   # deflate's best: what a compressed section can claim to hold

class ElfSections:
    """The sections of an ELF file, each read (and decompressed when SHF_COMPRESSED) on
    first use. Only little-endian ELF is handled (x86-64 and aarch64 both are).
    cache_prefix + section name is where an inflated compressed section is cached."""

    def __init__(self, path, cache_prefix=None):
        self.path = path
        self.cache_prefix = cache_prefix  # where inflated compressed sections are kept
        self._data = {}
        self._map = None
        with open(path, "rb") as f:
            ident = f.read(64)
            if len(ident) < 52 or ident[:4] != b"\x7fELF":
                raise DwarfError(f"{path}: not an ELF file")
            if ident[5] != 1:
                raise DwarfError(f"{path}: big-endian ELF is not supported")
            self.is64 = ident[4] == 2
            if self.is64:
                shoff, = _u64(ident, 0x28)
                shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ident, 0x3A)
                layout = "<IIQQQQ"
            else:
                shoff, = _u32(ident, 0x20)
                shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ident, 0x2E)
                layout = "<IIIIII"
            f.seek(shoff)
            table = f.read(shentsize * shnum)
            if len(table) < shentsize * shnum or shstrndx >= shnum \
                    or shentsize < struct.calcsize(layout):
                raise DwarfError(f"{path}: truncated section header table")
            headers = [struct.unpack_from(layout, table, i * shentsize) for i in range(shnum)]
            _n, _t, _f, _a, stroff, strsize = headers[shstrndx]
            f.seek(stroff)
            names = f.read(strsize)
        self._headers = {}
        for name_off, typ, flags, _addr, off, size in headers:
            if typ != 8:  # SHT_NOBITS: the contents were stripped into a .debug file
                name = cstring(names, name_off).decode("latin-1")
                self._headers.setdefault(name, (flags, off, size))

    def __contains__(self, name):
        return name in self._headers

    def header(self, name):
        """(flags, file offset, size) of section name, or None: where it lies in the file,
        known without reading (or inflating) it."""
        return self._headers.get(name)

    def view(self, name):
        """(buffer, start, end) holding section name at buffer[start:end]: the file's own
        mmap (no copy) for a stored section, the inflated bytes for a compressed one."""
        if name not in self._headers:
            return b"", 0, 0
        flags, off, size = self._headers[name]
        if flags & 0x800:
            data = self.get(name)
            return data, 0, len(data)
        if self._map is None:
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if off + size > len(self._map):
            raise DwarfError(f"{self.path}: section {name} is truncated")
        return self._map, off, off + size

    def get(self, name, default=None):
        """The bytes of section name, or default when the file has no such section."""
        data = self._data.get(name)
        if data is None:
            if name not in self._headers:
                return default
            flags, off, size = self._headers[name]
            with open(self.path, "rb") as f:
                if off + size > os.fstat(f.fileno()).st_size:   # before allocating size
                    raise DwarfError(f"{self.path}: section {name} is truncated")
                f.seek(off)
                if flags & 0x800:  # SHF_COMPRESSED: the cache needs only its header
                    data = self._cached(name, f.read(24 if self.is64 else 12))
                    if data is not None:
                        self._data[name] = data
                        return data
                    f.seek(off)
                data = f.read(size)
            if len(data) < size:
                raise DwarfError(f"{self.path}: section {name} is truncated")
            if flags & 0x800:  # SHF_COMPRESSED
                data = self._decompress(name, data)
            self._data[name] = data
        return data

    def _cached(self, name, header):
        """The inflated bytes of a compressed section from the cache, or None."""
        if not self.cache_prefix:
            return None
        try:
            if self.is64:
                ch_type, _reserved, ch_size = struct.unpack_from("<IIQ", header, 0)
            else:
                ch_type, ch_size = struct.unpack_from("<II", header, 0)
        except struct.error:
            return None
        if ch_type != 1:
            return None
        return cache.load_bytes(f"{self.cache_prefix}{name}", ch_size)

    def _decompress(self, name, data):
        """A compressed section's contents, through the cache when there is one: zlib
        costs more than reading the inflated bytes back (libc's debug info: ~30 ms)."""
        if self.is64:
            ch_type, _reserved, ch_size = struct.unpack_from("<IIQ", data, 0)
            body = data[24:]
        else:
            ch_type, ch_size = struct.unpack_from("<II", data, 0)
            body = data[12:]
        if ch_type != 1:
            raise DwarfError(f"{self.path}: section {name}: unknown compression {ch_type}")
        cached = f"{self.cache_prefix}{name}" if self.cache_prefix else None
        inflated = cache.load_bytes(cached, ch_size)
        if inflated is not None:
            return inflated
        if ch_size > MAX_DEFLATE_RATIO * len(body) + 1024:
            raise DwarfError(f"{self.path}: section {name} claims {ch_size} bytes, more "
                             f"than {len(body)} compressed bytes can hold")
        try:   # at most ch_size bytes (+1 to see a lie): no unbounded inflation
            inflated = zlib.decompressobj().decompress(body, ch_size + 1)
        except zlib.error as e:
            raise DwarfError(f"{self.path}: section {name}: {e}") from None
        if len(inflated) != ch_size:
            raise DwarfError(f"{self.path}: section {name} inflates to {len(inflated)} "
                             f"bytes, not {ch_size}")
        cache.store_bytes(cached, inflated)
        return inflated


# ---------------------------------------------------------------------------------------
# Abbreviations

# What the index scanner does with a top-level DIE of an abbreviation (Abbrev.action).
SKIP, TYPE_NAME, TAG_DEF, VAR_DEF, FUNC_DEF, CHECK, ENUMERATORS = range(7)
# ENUMERATORS: an anonymous enum, indexed by its enumerators' names only.
_TAG_KINDS = (TAG_structure_type, TAG_union_type, TAG_enumeration_type, 0x02)


class Abbrev:
    """One abbreviation: tag, children flag and the attribute specs.

    sizes holds each attribute's byte size (None: variable); fixed is the byte size of the
    whole DIE after its code when every size is known; sib_at and name_at are the offsets of
    a ref4 DW_AT_sibling, of DW_AT_name and of a ref4 DW_AT_specification or
    DW_AT_abstract_origin (origin_at) when only fixed-size attributes precede them.
    action tells the index scanner what a top-level DIE of this shape defines.
    """
    __slots__ = ("tag", "children", "attrs", "sizes", "fixed", "sib_at", "sib_form", "name_at",
                 "name_form", "origin_at", "action")

    def __init__(self, tag, children, attrs, offset_size, addr_size):
        self.tag = tag
        self.children = children
        self.attrs = attrs
        self.sizes = tuple(form_size(form, offset_size, addr_size) for _a, form, _i in attrs)
        self.sib_at = None
        self.name_at = None
        self.name_form = None
        self.origin_at = None
        pos = 0
        present = {}
        for (at, form, _implicit), size in zip(attrs, self.sizes):
            present[at] = form
            if pos is None:
                continue
            if at == AT_sibling and form == FORM_ref4:
                self.sib_at = pos
            elif at == AT_name:
                self.name_at = pos
                self.name_form = form
            elif at in (AT_specification, AT_abstract_origin) and form == FORM_ref4:
                self.origin_at = pos
            pos = None if size is None else pos + size
        self.fixed = pos
        self.sib_form = present.get(AT_sibling)
        self.action = self._action(tag, present)

    @staticmethod
    def _action(tag, present):
        if present.get(AT_declaration) == FORM_flag:
            return CHECK  # the flag's value is in each DIE
        return die_action(tag, present, AT_declaration in present)

    def attr_pos(self, data, pos, wanted):
        """Offset in data of attribute wanted of the DIE whose attributes start at pos."""
        for (at, form, _implicit), size in zip(self.attrs, self.sizes):
            if at == wanted:
                return pos
            if size is not None:
                pos += size
            else:
                pos = skip_form(data, form, pos)
        return None

    def end(self, data, pos):
        """Offset just past the attributes of the DIE whose attributes start at pos."""
        if self.fixed is not None:
            return pos + self.fixed
        for (at, form, _implicit), size in zip(self.attrs, self.sizes):
            if size is not None:
                pos += size
            else:
                pos = skip_form(data, form, pos)
        return pos


def die_action(tag, attrs, declaration):
    """What a top-level DIE with this tag and these attributes defines (Abbrev.action)."""
    if tag in (TAG_typedef, TAG_base_type, TAG_unspecified_type):
        return TYPE_NAME if AT_name in attrs else SKIP
    if tag in _TAG_KINDS:
        if declaration:
            return SKIP
        if AT_name in attrs:
            return TAG_DEF
        return ENUMERATORS if tag == TAG_enumeration_type else SKIP
    if declaration:
        return SKIP
    if tag == TAG_variable and AT_location in attrs:
        return VAR_DEF
    if tag == TAG_subprogram and (AT_low_pc in attrs or AT_ranges in attrs):
        return FUNC_DEF
    return SKIP


def skip_form(data, form, pos):
    """Offset past a variable-size value of form at pos."""
    if form == FORM_exprloc or form == FORM_block:
        n, pos = uleb(data, pos)
        return pos + n
    if form == FORM_string:
        return string_end(data, pos) + 1
    if form in (FORM_udata, FORM_sdata, FORM_ref_udata, FORM_strx, FORM_addrx, FORM_loclistx,
                FORM_rnglistx, FORM_GNU_addr_index, FORM_GNU_str_index):
        while data[pos] & 0x80:
            pos += 1
        return pos + 1
    if form == FORM_block1:
        return pos + 1 + data[pos]
    if form == FORM_block2:
        return pos + 2 + _u16(data, pos)[0]
    if form == FORM_block4:
        return pos + 4 + _u32(data, pos)[0]
    raise DwarfError(f"cannot skip DWARF form {form:#x}")


def form_size(form, offset_size, addr_size):
    """The byte size of a form's value, or None when it is variable."""
    if form in _FIXED:
        return _FIXED[form]
    if form in _OFFSET_SIZED or form == FORM_ref_addr:
        return offset_size
    if form == FORM_addr:
        return addr_size
    return None


_shapes = {}  # (offset size, address size) -> {encoded shape: Abbrev}


_ULEB = rb"[\x80-\xff]*[\x00-\x7f]"
# One abbreviation entry: code, then (tag, children flag, attribute specs up to (0, 0)).
# An attribute's name is never 0 and DW_FORM_implicit_const (0x21) carries an SLEB128.
_ENTRY = re.compile(
    rb"(" + _ULEB + rb")(" + _ULEB + rb"[\x00\x01]"
    rb"(?:(?:[\x80-\xff]+[\x00-\x7f]|[\x01-\x7f])(?:\x21" + _ULEB + rb"|" + _ULEB + rb"))*"
    rb"\x00\x00)", re.DOTALL)


def parse_abbrevs(data, offset, offset_size, addr_size):
    """{code: Abbrev} of the abbreviation table at offset of .debug_abbrev.

    Abbrev objects are shared between tables by their encoded shape: most units of a
    program repeat the same few hundred shapes.
    """
    table = {}
    pos = offset
    shapes = _shapes.setdefault((offset_size, addr_size), {})
    match = _ENTRY.match
    while data[pos]:
        m = match(data, pos)
        if m is None:
            raise DwarfError(f"malformed abbreviation at .debug_abbrev offset {pos:#x}")
        code, shape = m.groups()
        code = code[0] if code[0] < 0x80 else uleb(code, 0)[0]
        ab = shapes.get(shape)
        if ab is None:
            ab = shapes[shape] = _decode_abbrev(shape, offset_size, addr_size)
        table[code] = ab
        pos = m.end()
    return table


def _decode_abbrev(entry, offset_size, addr_size):
    tag, pos = uleb(entry, 0)
    children = entry[pos] != 0
    pos += 1
    attrs = []
    while True:
        at, pos = uleb(entry, pos)
        form, pos = uleb(entry, pos)
        if at == 0 and form == 0:
            return Abbrev(tag, children, tuple(attrs), offset_size, addr_size)
        implicit = None
        if form == FORM_implicit_const:
            implicit, pos = sleb(entry, pos)
        attrs.append((at, form, implicit))


# ---------------------------------------------------------------------------------------
# Units

class Unit:
    """A unit header of .debug_info and, once read, the attributes of its root DIE."""
    __slots__ = ("offset", "end", "version", "unit_type", "addr_size", "offset_size",
                 "abbrev_offset", "die_offset", "abbrevs", "str_offsets_base", "addr_base",
                 "rnglists_base", "loclists_base", "name", "comp_dir", "stmt_list",
                 "low_pc", "root", "skips", "signature")

    def __init__(self, offset, end, version, unit_type, addr_size, offset_size,
                 abbrev_offset, die_offset):
        self.offset = offset
        self.end = end
        self.version = version
        self.unit_type = unit_type
        self.addr_size = addr_size
        self.offset_size = offset_size
        self.abbrev_offset = abbrev_offset
        self.die_offset = die_offset
        self.abbrevs = None
        self.skips = None
        self.signature = None  # type units: (type signature, offset of the type's DIE)
        self.str_offsets_base = 8
        self.addr_base = 8
        self.rnglists_base = None
        self.loclists_base = None
        self.name = None
        self.comp_dir = None
        self.stmt_list = None
        self.low_pc = 0
        self.root = None


def parse_unit_headers(info, pos, size, shift=0):
    """The Unit headers of the .debug_info bytes info[pos:size], in order (cheap: headers
    only); their offsets are positions in info plus shift (see Reader)."""
    units = []
    while pos + 11 <= size:
        start = pos
        length, = _u32(info, pos)
        pos += 4
        offset_size = 4
        if length == 0xFFFFFFFF:
            length, = _u64(info, pos)
            pos += 8
            offset_size = 8
        end = pos + length
        if end > size:
            raise DwarfError(f".debug_info unit at {start:#x} runs past the section end")
        version, = _u16(info, pos)
        pos += 2
        unit_type = 1
        if version >= 5:
            unit_type = info[pos]
            addr_size = info[pos + 1]
            pos += 2
            abbrev_offset = int.from_bytes(info[pos:pos + offset_size], "little")
            pos += offset_size
            if unit_type in (2, 6):  # DW_UT_type, DW_UT_split_type: signature + type offset
                signature = int.from_bytes(info[pos:pos + 8], "little")
                type_die = start + shift + int.from_bytes(info[pos + 8:pos + 8 + offset_size], "little")
                pos += 8 + offset_size
            elif unit_type in (4, 5):  # DW_UT_skeleton, DW_UT_split_compile: dwo id
                pos += 8
        elif version in (2, 3, 4):
            abbrev_offset = int.from_bytes(info[pos:pos + offset_size], "little")
            pos += offset_size
            addr_size = info[pos]
            pos += 1
        else:
            raise DwarfError(f".debug_info unit at {start:#x}: unsupported DWARF version {version}")
        unit = Unit(start + shift, end + shift, version, unit_type, addr_size, offset_size,
                    abbrev_offset, pos + shift)
        if unit_type in (2, 6):
            unit.signature = (signature, type_die)
        units.append(unit)
        pos = end
    return units


_BASES = (AT_str_offsets_base, AT_addr_base, AT_rnglists_base, AT_loclists_base)


def _skips(abbrevs):
    """For the index scanner: by code, how to step over a DIE that defines no name.

    n >= 0: the DIE has no children and n bytes of attributes; n < -1: jump to the ref4
    DW_AT_sibling found -n - 2 bytes into the attributes; -1: no shortcut.
    """
    skips = [-1] * max(0x80, max(abbrevs, default=0) + 1)  # no bounds check for 1-byte codes
    for code, ab in abbrevs.items():
        if ab.action != SKIP:
            continue
        if not ab.children and ab.fixed is not None:
            skips[code] = ab.fixed
        elif ab.children and ab.sib_at is not None:
            skips[code] = -ab.sib_at - 2
    return skips


# Offsets of DIEs in a dwz supplementary file (.gnu_debugaltlink, .debug_sup) start here:
# one number names a DIE of either file (no ELF file is 16 TiB).
ALT_BASE = 1 << 44


class Reader:
    """Decodes attribute values and DIEs of the units of one .debug_info section, and of
    its dwz supplementary file's (alt, a Reader with shift ALT_BASE) when it has one.

    DIE offsets (units, DIEs, the index) are positions in self.info plus self.shift; the
    main Reader hands an alt file's unit (offset >= ALT_BASE) to alt.
    """

    def __init__(self, sections, alt=None, shift=0):
        # self.info may be the whole file mapped: the section is info[info_start:info_end].
        self.shift = shift
        self.alt = alt
        self.info, self.info_start, self.info_end = sections.view(".debug_info")
        self.abbrev = sections.get(".debug_abbrev", b"")
        self.str = sections.get(".debug_str", b"")
        self.line_str = sections.get(".debug_line_str", b"")
        self.sections = sections
        self._abbrev_cache = {}
        self.units = parse_unit_headers(self.info, self.info_start, self.info_end, shift)
        self._signatures = None
        self._unit_starts = [u.offset for u in self.units]

    # Sections that only some lookups need.
    str_offsets = property(lambda self: self.sections.get(".debug_str_offsets", b""))
    addr = property(lambda self: self.sections.get(".debug_addr", b""))
    rnglists = property(lambda self: self.sections.get(".debug_rnglists", b""))
    ranges = property(lambda self: self.sections.get(".debug_ranges", b""))

    def unit_at(self, offset):
        """The prepared Unit that contains .debug_info offset."""
        if offset >= ALT_BASE and self.alt is not None:
            return self.alt.unit_at(offset)
        i = bisect.bisect_right(self._unit_starts, offset) - 1
        if i < 0 or offset >= self.units[i].end:
            raise DwarfError(f"no unit contains .debug_info offset {offset:#x}")
        return self.prepare(self.units[i])

    def prepare(self, unit):
        """Load the unit's abbreviations and the attributes of its root DIE."""
        if unit.abbrevs is not None:
            return unit
        if unit.offset >= ALT_BASE and self.alt is not None:
            return self.alt.prepare(unit)
        key = (unit.abbrev_offset, unit.offset_size, unit.addr_size)
        cached = self._abbrev_cache.get(key)
        if cached is None:
            abbrevs = parse_abbrevs(self.abbrev, unit.abbrev_offset, unit.offset_size,
                                    unit.addr_size)
            cached = self._abbrev_cache[key] = (abbrevs, _skips(abbrevs))
        unit.abbrevs, unit.skips = cached
        # The base attributes must be known before any *x form is resolved.
        code = uleb(self.info, unit.die_offset - self.shift)[0]
        if code in unit.abbrevs and any(at in _BASES for at, _f, _i in unit.abbrevs[code].attrs):
            attrs = self.read_die(unit, unit.die_offset, raw=True)[1]
            unit.str_offsets_base = attrs.get(AT_str_offsets_base, (0, 8))[1]
            unit.addr_base = attrs.get(AT_addr_base, (0, 8))[1]
            if AT_rnglists_base in attrs:
                unit.rnglists_base = attrs[AT_rnglists_base][1]
            if AT_loclists_base in attrs:
                unit.loclists_base = attrs[AT_loclists_base][1]
        root = self.read_die(unit, unit.die_offset)[1]
        unit.root = root
        unit.name = root.get(AT_name)
        unit.comp_dir = root.get(AT_comp_dir)
        unit.stmt_list = root.get(AT_stmt_list)
        unit.low_pc = root.get(AT_low_pc, 0)
        return unit

    def read_die(self, unit, pos, raw=False):
        """Decode the DIE at pos: (tag, {attr: value}, has_children, next_pos).

        A null entry gives (0, None, False, pos + 1). With raw, values are (form, raw value)
        pairs and nothing is resolved through other sections.
        """
        shift = self.shift
        if not shift and unit.offset >= ALT_BASE:
            return self.alt.read_die(unit, pos, raw)
        pos -= shift
        info = self.info
        code = info[pos]
        if code >= 0x80:
            code, pos = uleb(info, pos)
        else:
            pos += 1
        if code == 0:
            return 0, None, False, pos + shift
        ab = unit.abbrevs.get(code)
        if ab is None:
            raise DwarfError(f"DIE at {pos:#x}: unknown abbreviation {code}")
        attrs = {}
        base = unit.offset
        strtab = self.str
        dwarf32 = unit.offset_size == 4 and not raw
        for at, form, implicit in ab.attrs:
            if dwarf32:  # the common forms, decoded inline
                if form == FORM_ref4:
                    attrs[at] = base + _u32(info, pos)[0]
                    pos += 4
                    continue
                if form == FORM_data1:
                    attrs[at] = info[pos]
                    pos += 1
                    continue
                if form == FORM_strp:
                    o = _u32(info, pos)[0]
                    attrs[at] = strtab[o:strtab.index(b"\0", o)]
                    pos += 4
                    continue
                if form == FORM_flag_present:
                    attrs[at] = True
                    continue
            if form == FORM_implicit_const:
                v = implicit
            else:
                v, pos = self.raw_value(unit, form, pos)
                if form == FORM_indirect:
                    form, v = v
            if raw:
                attrs[at] = (form, v)
            elif at == AT_high_pc and form not in _ADDR_FORMS:
                attrs[at] = attrs.get(AT_low_pc, 0) + v  # constant class: offset from low_pc
            elif at == AT_entry_pc and form not in _ADDR_FORMS:
                attrs[at] = ("offset", v)  # from the entity's first address: see entry_pc()
            else:
                attrs[at] = self.value(unit, form, v)
        return ab.tag, attrs, ab.children, pos + shift

    def raw_value(self, unit, form, pos):
        """(raw value, new pos) of an attribute of the given form at pos."""
        info = self.info
        if form == FORM_ref4 or form == FORM_data4 or form == FORM_ref_sup4:
            return _u32(info, pos)[0], pos + 4
        if form == FORM_data1 or form == FORM_ref1 or form == FORM_flag or form == FORM_strx1 \
                or form == FORM_addrx1:
            return info[pos], pos + 1
        if form == FORM_strp or form == FORM_sec_offset or form == FORM_line_strp \
                or form == FORM_ref_addr or form in _OFFSET_SIZED:
            n = unit.offset_size if (form != FORM_ref_addr or unit.version > 2) else unit.addr_size
            return int.from_bytes(info[pos:pos + n], "little"), pos + n
        if form == FORM_data2 or form == FORM_ref2 or form == FORM_strx2 or form == FORM_addrx2:
            return _u16(info, pos)[0], pos + 2
        if form == FORM_data8 or form == FORM_ref8 or form == FORM_ref_sig8 \
                or form == FORM_ref_sup8:
            return _u64(info, pos)[0], pos + 8
        if form == FORM_addr:
            n = unit.addr_size
            return int.from_bytes(info[pos:pos + n], "little"), pos + n
        if form == FORM_flag_present:
            return True, pos
        if form in (FORM_udata, FORM_ref_udata, FORM_strx, FORM_addrx, FORM_loclistx,
                    FORM_rnglistx, FORM_GNU_addr_index, FORM_GNU_str_index):
            return uleb(info, pos)
        if form == FORM_sdata:
            return sleb(info, pos)
        if form == FORM_string:
            end = string_end(info, pos)
            return info[pos:end], end + 1
        if form == FORM_exprloc or form == FORM_block:
            n, pos = uleb(info, pos)
            return info[pos:pos + n], pos + n
        if form == FORM_block1:
            n = info[pos]
            return info[pos + 1:pos + 1 + n], pos + 1 + n
        if form == FORM_block2:
            n, = _u16(info, pos)
            return info[pos + 2:pos + 2 + n], pos + 2 + n
        if form == FORM_block4:
            n, = _u32(info, pos)
            return info[pos + 4:pos + 4 + n], pos + 4 + n
        if form == FORM_data16:
            return info[pos:pos + 16], pos + 16
        if form == FORM_strx3 or form == FORM_addrx3:
            return int.from_bytes(info[pos:pos + 3], "little"), pos + 3
        if form == FORM_strx4 or form == FORM_addrx4:
            return _u32(info, pos)[0], pos + 4
        if form == FORM_indirect:
            real, pos = uleb(info, pos)
            if real == FORM_implicit_const:
                raise DwarfError("DW_FORM_indirect to DW_FORM_implicit_const")
            v, pos = self.raw_value(unit, real, pos)
            return (real, v), pos
        raise DwarfError(f"unsupported DWARF form {form:#x}")

    def value(self, unit, form, v):
        """The meaning of a raw value: names as bytes, references (to type units too) as
        absolute offsets."""
        if not self.shift and unit.offset >= ALT_BASE:
            return self.alt.value(unit, form, v)
        if form in _REF_FORMS:
            return unit.offset + v
        if form == FORM_strp:
            return cstring(self.str, v)
        if form == FORM_line_strp:
            return cstring(self.line_str, v)
        if form in (FORM_strx, FORM_strx1, FORM_strx2, FORM_strx3, FORM_strx4,
                    FORM_GNU_str_index):
            n = unit.offset_size
            p = unit.str_offsets_base + v * n
            return cstring(self.str, int.from_bytes(self.str_offsets[p:p + n], "little"))
        if form in (FORM_addrx, FORM_addrx1, FORM_addrx2, FORM_addrx3, FORM_addrx4,
                    FORM_GNU_addr_index):
            n = unit.addr_size
            p = unit.addr_base + v * n
            return int.from_bytes(self.addr[p:p + n], "little")
        if form == FORM_rnglistx:
            return ("rnglistx", v)
        if form == FORM_loclistx:
            return ("loclistx", v)
        if form == FORM_ref_addr:
            return ("ref_addr", self.info_start + self.shift + v)
        if form in _ALT_FORMS:
            if self.alt is None:
                raise DwarfError("a reference into a dwz supplementary file, which is "
                                 "not loaded")
            if form == FORM_GNU_strp_alt or form == FORM_strp_sup:
                return cstring(self.alt.str, v)
            return ("ref_alt", ALT_BASE + self.alt.info_start + v)
        if form == FORM_ref_sig8:
            if self._signatures is None:
                self._signatures = dict(u.signature for u in self.units if u.signature)
            if v not in self._signatures:
                raise DwarfError(f"no type unit with signature {v:#x} in .debug_info "
                                 "(DWARF 4 .debug_types is not supported)")
            return self._signatures[v]
        return v

    def ref(self, unit, value):
        """An attribute value from value() that names a DIE, as an absolute .debug_info offset."""
        if type(value) is tuple:
            return value[1]
        return value

    # -- address ranges -------------------------------------------------------------

    def die_ranges(self, unit, attrs):
        """[(low, high)] covered by a DIE with low_pc/high_pc or ranges, else []."""
        if AT_low_pc in attrs:
            low = attrs[AT_low_pc]
            high = attrs.get(AT_high_pc)
            if high is None:
                return [(low, low + 1)]
            return [(low, high)]
        if AT_ranges in attrs:
            return self.ranges_at(unit, attrs[AT_ranges])
        return []

    def entry_pc(self, unit, attrs):
        """Where a function or inlined call starts (gdb's BLOCK_ENTRY_PC): DW_AT_entry_pc,
        else the start of its first range; None when it has no address."""
        ranges = self.die_ranges(unit, attrs)
        entry = attrs.get(AT_entry_pc)
        if type(entry) is tuple:
            return ranges[0][0] + entry[1] if ranges else None
        if entry is not None:
            return entry
        return ranges[0][0] if ranges else None

    def ranges_at(self, unit, value):
        """Ranges of a DW_AT_ranges value (rnglistx index or section offset)."""
        base = unit.low_pc or 0
        if unit.version >= 5:
            if type(value) is tuple:
                n = unit.offset_size
                p = unit.rnglists_base + value[1] * n
                value = unit.rnglists_base + int.from_bytes(self.rnglists[p:p + n], "little")
            return self._rnglist(unit, value, base)
        return self._ranges_v4(unit, value, base)

    def _rnglist(self, unit, pos, base):
        data = self.rnglists
        out = []
        asz = unit.addr_size
        while True:
            kind = data[pos]
            pos += 1
            if kind == 0:  # DW_RLE_end_of_list
                return out
            if kind == 1:  # base_addressx
                i, pos = uleb(data, pos)
                base = self._addrx(unit, i)
            elif kind == 2:  # startx_endx
                a, pos = uleb(data, pos)
                b, pos = uleb(data, pos)
                out.append((self._addrx(unit, a), self._addrx(unit, b)))
            elif kind == 3:  # startx_length
                a, pos = uleb(data, pos)
                n, pos = uleb(data, pos)
                s = self._addrx(unit, a)
                out.append((s, s + n))
            elif kind == 4:  # offset_pair
                a, pos = uleb(data, pos)
                b, pos = uleb(data, pos)
                out.append((base + a, base + b))
            elif kind == 5:  # base_address
                base = int.from_bytes(data[pos:pos + asz], "little")
                pos += asz
            elif kind == 6:  # start_end
                a = int.from_bytes(data[pos:pos + asz], "little")
                b = int.from_bytes(data[pos + asz:pos + 2 * asz], "little")
                pos += 2 * asz
                out.append((a, b))
            elif kind == 7:  # start_length
                a = int.from_bytes(data[pos:pos + asz], "little")
                pos += asz
                n, pos = uleb(data, pos)
                out.append((a, a + n))
            else:
                raise DwarfError(f"bad range list entry kind {kind} at {pos - 1:#x}")

    def _ranges_v4(self, unit, pos, base):
        data = self.ranges
        asz = unit.addr_size
        top = (1 << (8 * asz)) - 1
        out = []
        while pos + 2 * asz <= len(data):
            a = int.from_bytes(data[pos:pos + asz], "little")
            b = int.from_bytes(data[pos + asz:pos + 2 * asz], "little")
            pos += 2 * asz
            if a == 0 and b == 0:
                break
            if a == top:
                base = b
            else:
                out.append((base + a, base + b))
        return out

    def _addrx(self, unit, i):
        n = unit.addr_size
        p = unit.addr_base + i * n
        return int.from_bytes(self.addr[p:p + n], "little")
