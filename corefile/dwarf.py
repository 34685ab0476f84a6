"""DWARF debug information of one ELF file: types, variables, functions, pc -> source.

    di = DebugInfo(path, build_id)        # cheap: nothing is read until a lookup
    di.find_type("BlockDriverState")      # typedef / base type; or "struct X", "union X",
                                          # "enum X"; C spellings: "unsigned long", "char *"
    di.find_variable("co_tls_current", file="util/coroutine-ucontext.c")
    di.find_function("main")              # unbiased entry address
    di.find_enumerator("BH_PENDING")      # the (anonymous) enum Type defining it
    di.locate(pc)                         # Location(function, file, line, inlined_chain)
    di.function_entry(pc)                 # entry address of the function holding pc
    di.call_sites(pc)                     # its DW_TAG_call_site entries (tail-call frames)

Type, variable and function lookups go through a name index of every unit's top-level DIEs
(corefile.dwarf_index), built by a fast scanner on first use and cached under
cache_dir/dwarf/BUILD-ID.index; a type is decoded from its own DIEs only, and lazily
(corefile.types). locate() reads only the unit that holds the pc (.debug_aranges), its
line table and the DIEs of the function; a unit's decoded line table and function ranges and
a function's call sites are cached under cache_dir/dwarf/BUILD-ID.{lines,functions,callsites}
too (a file each: a warm run reads what its pcs need). Addresses are unbiased (as in the ELF
file).
Handles DWARF 2-5 as gcc writes it, type units, SHF_COMPRESSED sections (inflated once into
the cache), and dwz's output: partial and imported units, and a supplementary file
(alt_path: .gnu_debugaltlink or .debug_sup) whose DIEs and strings the file refers to;
refuses split DWARF with a DwarfError."""

import bisect
import functools
import os
import struct
import zlib
from collections import namedtuple

from . import cache
from . import dwarf_format as F
from .callsites import read_call_sites
from .dwarf_format import ALT_BASE, DwarfError, ElfSections, Reader
from .dwarf_index import NameIndex, build_index, dies, scan_unit
from .dwarf_lines import LineTable
from .elf import parse_altlink
from .types import Member, Type

__all__ = ["DebugInfo", "DwarfError", "Location", "Frame"]

Frame = namedtuple("Frame", "function file line")
Location = namedtuple("Location", "function file line inlined_chain")
Location.__doc__ = """Where a pc is. function/file/line describe the innermost frame (an
inlined function when the pc is inside one); inlined_chain is every frame at this pc as gdb's
`bt` lists them, innermost first: [Frame(inlined fn, file, line of pc), Frame(its caller,
call site file, call site line), ..., Frame(the real function, ...)], so its last entry is
the out-of-line function and it has a single entry when nothing is inlined."""

_TAG_KIND = {F.TAG_structure_type: "struct", 0x02: "struct", F.TAG_union_type: "union",
             F.TAG_enumeration_type: "enum"}
_KIND_TAG = {"struct": F.TAG_structure_type, "union": F.TAG_union_type,
             "enum": F.TAG_enumeration_type}
_QUALIFIERS = (F.TAG_const_type, F.TAG_volatile_type, F.TAG_restrict_type, F.TAG_atomic_type,
               0x4B)  # DW_TAG_immutable_type
_POINTERS = (F.TAG_pointer_type, 0x10, 0x42, 0x1F)  # pointer, reference, rvalue ref, ptr_to_member
# DW_ATE_* encodings
_ATE_BOOL = (0x02,)
_ATE_FLOAT = (0x03, 0x04, 0x09, 0x0F)  # complex_float, float, imaginary_float, decimal_float
_ATE_SIGNED = (0x05, 0x06, 0x0D)  # signed, signed_char, signed_fixed


# What decoding malformed bytes raises; public methods turn these into one DwarfError.
_MALFORMED = (IndexError, KeyError, ValueError, TypeError, AttributeError, ArithmeticError,
              struct.error, zlib.error, RecursionError)


def _checked(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except DwarfError:
            raise
        except _MALFORMED as e:
            raise DwarfError(f"{self.path}: malformed DWARF ({type(e).__name__}: {e})") from None
        except OSError as e:
            raise DwarfError(f"{self.path}: cannot read debug information: {e}") from None
    return wrapper


UNIT_CACHE_VERSION = 2   # of the per-unit cache entries (line tables, function ranges)


class DebugInfo:
    """The DWARF of one ELF file (an executable, a library, or its separate .debug file)."""

    def __init__(self, path, build_id, cache_dir=None, alt_path=None):
        self.path = path
        self.alt_path = alt_path
        if isinstance(build_id, (bytes, bytearray)):
            build_id = build_id.hex()
        self.build_id = build_id
        self.cache_dir = cache_dir or cache.default_dir()
        self.alt_id = None
        self._sections = None
        self._link = None
        self._reader = None
        self._index = None
        self._types = {}
        self._aranges = None
        self._per_unit = {}

    # -- loading --------------------------------------------------------------------

    @property
    @_checked
    def sections(self):
        """The file's ElfSections (headers only until a section is read), and the dwz
        supplementary file it names (alt_id)."""
        if self._sections is None:
            sections = ElfSections(self.path, self._cache_prefix())
            if ".debug_info" not in sections:
                raise DwarfError(f"{self.path}: no debug information (.debug_info)")
            self._link = parse_altlink(sections.get(".gnu_debugaltlink"),
                                       sections.get(".debug_sup"))
            self.alt_id = self._link[1].hex() if self._link else None
            self._sections = sections
        return self._sections

    @property
    @_checked
    def reader(self):
        if self._reader is None:
            sections = self.sections
            self._reader = Reader(sections, alt=self._alt_reader())
        return self._reader

    def _alt_reader(self):
        """The Reader of the dwz supplementary file the sections refer to, or None."""
        if self._link is None:
            return None
        name, alt_id = self._link
        if self.alt_path is None:
            raise DwarfError(f"{self.path}: its debug info needs the dwz supplementary "
                             f"file {name} (build-id {alt_id.hex()}), which was not found")
        prefix = self._cache_prefix(alt_id.hex())
        alt = ElfSections(self.alt_path, prefix)
        if ".debug_info" not in alt:
            raise DwarfError(f"{self.alt_path}: no debug information (.debug_info)")
        return Reader(alt, shift=ALT_BASE)

    @property
    @_checked
    def index(self):
        """The NameIndex: loaded from the cache, else built and stored there."""
        if self._index is None:
            prefix = self._cache_prefix()
            path = None if prefix is None else prefix + ".index"
            index = None
            # Where the section lies in the file, and which supplementary file was read:
            # from the headers, so that a name the index lacks costs no section read.
            size = (self.sections.header(".debug_info"), self.alt_id)
            data = cache.load(path)
            if data is not None:
                try:
                    index = NameIndex.from_data(data, size)
                except (ValueError, TypeError):
                    index = None
            if index is None:
                index = build_index(self.reader)
                cache.store(path, index.to_data(size))
            self._index = index
        return self._index

    def _cache_prefix(self, build_id=None):
        """cache_dir/dwarf/BUILD-ID: + ".index" for the name index, + ".debug_info" (etc.)
        for compressed sections once inflated; None without a (hex) build-id. build_id:
        another file's (the supplementary file's), else this one's."""
        build_id = build_id or self.build_id
        if not build_id or not all(c in "0123456789abcdefABCDEF" for c in build_id):
            return None
        return os.path.join(self.cache_dir, "dwarf", build_id)

    # -- types ----------------------------------------------------------------------

    @_checked
    def find_type(self, name, file=None):
        """The Type called name, or None when the program defines no such type.

        name is "T" (a typedef or base type), "struct T", "union T" or "enum T"; C spellings
        of base types work as in gdb ("unsigned long" is DWARF's "long unsigned int"),
        "void" too; qualifiers are ignored and trailing "*"s make pointers. With file, the
        definition in the unit whose name ends with file, for names that several files
        define differently.
        """
        words = [w for w in name.replace("*", " * ").split()
                 if w not in ("const", "volatile", "restrict")]
        stars = 0
        while words and words[-1] == "*":
            words.pop()
            stars += 1
        if not words or "*" in words:
            return None
        index = self.index if file is None else self._unit_index(file)
        if words[0] in _KIND_TAG and len(words) == 2:
            off = index.tags.get((_KIND_TAG[words[0]], words[1].encode()))
            t = None if off is None else self.type_at(off)
        elif words == ["void"]:
            t = Type("void", "void", None)
        else:
            off = index.types.get(_c_base_name(words).encode())
            t = None if off is None else self.type_at(off)
        if t is None or not stars:
            return t
        t = None if t.kind == "void" else t  # as in DWARF: a void pointer has no target
        for _ in range(stars):
            t = Type("pointer", None, self.reader.units[0].addr_size, target=t)
        return t

    @_checked
    def find_enumerator(self, name):
        """The enum Type (often anonymous: `enum { BH_PENDING = 1, ... }`) whose enumerator
        is called name, or None. Enums defined at the top level of a unit only."""
        off = self.index.enumerators.get(name.encode())
        return None if off is None else self.type_at(off)

    def _unit_index(self, file):
        """The NameIndex of the first unit whose name ends with file (empty if none), and
        of the partial units it imports (dwz moves shared definitions there)."""
        index = NameIndex()
        reader = self.reader
        for unit in reader.units:
            if unit.unit_type == 1 and _unit_matches(reader.prepare(unit), file):
                todo, done, seen = [unit], set(), set()
                while todo:
                    unit = todo.pop(0)
                    if unit.offset in done:
                        continue
                    done.add(unit.offset)
                    scan_unit(reader.alt if unit.offset >= ALT_BASE else reader, unit, index,
                              seen)
                    todo += [reader.unit_at(reader.ref(unit, attrs[F.AT_import]))
                             for _off, tag, attrs in self.children(unit, unit.die_offset)
                             if tag == F.TAG_imported_unit and F.AT_import in attrs]
                break
        return index

    @_checked
    def type_at(self, off):
        """The Type of the DIE at .debug_info offset off (qualifiers skipped)."""
        t = self._types.get(off)
        if t is None:
            t = self._build_type(off)
            self._types[off] = t
        return t

    def _type_ref(self, unit, attrs):
        """The Type named by DW_AT_type in attrs (None: void)."""
        ref = attrs.get(F.AT_type)
        if ref is None:
            return None
        return self.type_at(self.reader.ref(unit, ref))

    def _build_type(self, off):
        reader = self.reader
        unit = reader.unit_at(off)
        tag, attrs, _children, _next = reader.read_die(unit, off)
        if tag == 0:
            raise DwarfError(f"type reference to a null entry at {off:#x}")
        name = attrs.get(F.AT_name)
        name = name.decode("utf-8", "replace") if name is not None else None
        size = attrs.get(F.AT_byte_size)
        if tag in _QUALIFIERS:
            inner = self._type_ref(unit, attrs)
            return inner if inner is not None else Type("void", "void", None)
        if tag == F.TAG_base_type:
            enc = attrs.get(F.AT_encoding)
            kind = "bool" if enc in _ATE_BOOL else "float" if enc in _ATE_FLOAT else "int"
            return Type(kind, name, size, signed=enc in _ATE_SIGNED)
        if tag == F.TAG_unspecified_type:
            return Type("void", name or "void", None)
        if tag in _POINTERS:
            return Type("pointer", None, size if size is not None else unit.addr_size,
                        loader=self._lazy(lambda t: t.set_lazy(
                            target=self._type_ref(unit, attrs))))
        if tag == F.TAG_typedef:
            return Type("typedef", name, loader=self._lazy(lambda t: t.set_lazy(
                target=self._type_ref(unit, attrs))))
        if tag == F.TAG_subroutine_type:
            return Type("function", None, None, loader=self._lazy(lambda t: t.set_lazy(
                target=self._type_ref(unit, attrs))))
        if tag == F.TAG_array_type:
            return self._array(unit, off, attrs)
        if tag in _TAG_KIND:
            kind = _TAG_KIND[tag]
            if F.AT_signature in attrs:
                return self.type_at(attrs[F.AT_signature])  # defined in a type unit
            if attrs.get(F.AT_declaration) and name is not None:
                full = self.index.tags.get((tag, name.encode()))
                if full is not None and full != off:
                    return self.type_at(full)
                return Type(kind, name, None, members=[], enumerators=[])
            if kind == "enum":
                return self._enum(unit, off, attrs, name, size)
            return Type(kind, name, size,
                        loader=self._lazy(lambda t: t.set_lazy(
                            members=self._members(unit, off))))
        if tag in (F.TAG_variable, F.TAG_formal_parameter, F.TAG_member):
            inner = self._type_ref(unit, attrs)
            return inner if inner is not None else Type("void", "void", None)
        raise DwarfError(f"DIE at {off:#x}: tag {tag:#x} is not a type")

    def _lazy(self, loader):
        """loader for a Type, turning malformed-DWARF errors into DwarfError."""
        @_checked
        def load(_self, t):
            loader(t)
        return functools.partial(load, self)

    def children(self, unit, off):
        """(offset, tag, attrs) of each child of the DIE at off."""
        reader = self.reader
        tag, attrs, has_children, pos = reader.read_die(unit, off)
        if not has_children:
            return
        while True:
            child = pos
            tag, attrs, has_children, pos = reader.read_die(unit, pos)
            if tag == 0:
                return
            yield child, tag, attrs
            if has_children:
                sib = attrs.get(F.AT_sibling)
                if sib is not None and not child < sib <= unit.end:
                    raise DwarfError(f"DIE at {child:#x}: bad DW_AT_sibling {sib:#x}")
                pos = sib if sib is not None else self._skip_children(unit, pos)

    def _skip_children(self, unit, pos):
        reader = self.reader
        depth = 1
        while depth:
            tag, _attrs, has_children, pos = reader.read_die(unit, pos)
            if tag == 0:
                depth -= 1
            elif has_children:
                depth += 1
        return pos

    def _members(self, unit, off):
        members = []
        for _child, tag, attrs in self.children(unit, off):
            if tag != F.TAG_member:
                continue
            name = attrs.get(F.AT_name)
            name = name.decode("utf-8", "replace") if name is not None else None
            mtype = self._type_ref(unit, attrs)
            loc = attrs.get(F.AT_data_member_location, 0)
            if isinstance(loc, bytes):
                loc = _member_location_expr(loc)
            bit_size = attrs.get(F.AT_bit_size)
            bit_offset = None
            if bit_size is not None:
                if F.AT_data_bit_offset in attrs:
                    bit_offset = attrs[F.AT_data_bit_offset]
                else:
                    # DWARF 2-4: bit_offset counts from the storage unit's most
                    # significant bit (little-endian layout assumed, as on x86-64/aarch64).
                    storage = attrs.get(F.AT_byte_size)
                    if storage is None:
                        storage = mtype.size if mtype is not None else 0
                    bit_offset = loc * 8 + storage * 8 - attrs.get(F.AT_bit_offset, 0) - bit_size
                loc = bit_offset // 8
            members.append(Member(name, mtype, loc, bit_size, bit_offset))
        return members

    def _enum(self, unit, off, attrs, name, size):
        base = self._type_ref(unit, attrs)
        signed = base.strip_typedefs().signed if base is not None else False
        reader = self.reader
        values = []
        for child, tag, _attrs in self.children(unit, off):
            if tag != F.TAG_enumerator:
                continue
            _tag, raw, _c, _n = reader.read_die(unit, child, raw=True)
            ename = reader.value(unit, *raw[F.AT_name]).decode("utf-8", "replace")
            form, v = raw[F.AT_const_value]
            width = {F.FORM_data1: 8, F.FORM_data2: 16, F.FORM_data4: 32,
                     F.FORM_data8: 64}.get(form)
            if width and v >> (width - 1):
                if signed:
                    v -= 1 << width
            if v < 0:
                signed = True
            values.append((ename, v))
        return Type("enum", name, size, enumerators=values, signed=signed)

    def _array(self, unit, off, attrs):
        reader = self.reader
        dims = []
        for child, tag, _attrs in self.children(unit, off):
            if tag != F.TAG_subrange_type:
                continue
            raw = reader.read_die(unit, child, raw=True)[1]
            count = _constant(raw.get(F.AT_count))
            upper = _constant(raw.get(F.AT_upper_bound))
            if count is None and upper is not None:
                lower = _constant(raw.get(F.AT_lower_bound)) or 0
                # gcc writes "no element" as an all-ones bound: -1 + 1 == 0
                count = (upper - lower + 1) & ((1 << 64) - 1)
                if count >= 1 << 63:
                    count = 0
            dims.append(count)  # None: a flexible or variable-length array
        if not dims:
            dims = [None]
        size = attrs.get(F.AT_byte_size)

        def make(level):
            def load(t):
                if level + 1 < len(dims):
                    t.set_lazy(target=make(level + 1))
                else:
                    t.set_lazy(target=self._type_ref(unit, attrs))
            return Type("array", None, size if level == 0 else None, length=dims[level],
                        loader=self._lazy(load))
        return make(0)

    # -- variables and functions ----------------------------------------------------

    @_checked
    def find_variable(self, name, file=None, function=None):
        """(address, Type) of a global or file-static variable, or None.

        address is unbiased, or ('tls', offset) for a __thread variable (its offset in this
        module's TLS block). With file, only the unit whose name ends with file is searched
        (e.g. file="util/coroutine-ucontext.c" for a static variable of that file). With
        function too, the static variable is one of that function's (qom/object.c's
        `root`, the `static Object *root` of object_get_root()).
        """
        if function is not None and file is not None:
            offsets = self._function_statics(file, function.encode()).get(name.encode(), ())
        else:
            offsets = dies(self.index.variables, name.encode())
        return self._variable(offsets, file)

    def _function_statics(self, file, function):
        """{name: [DIE offset]} of the variables declared in the function named function of
        the units whose name ends with file (no name index has them: those units alone are
        read, their top-level DIEs and that function's)."""
        memo = self._per_unit.setdefault("function statics", {})
        if (file, function) not in memo:
            found = {}
            for name in self.index.units:
                if _name_matches(name, file):
                    for unit in map(self.reader.unit_at, dies(self.index.units, name)):
                        for off, tag, attrs in self.children(unit, unit.die_offset):
                            if tag == F.TAG_subprogram and attrs.get(F.AT_name) == function:
                                self._scope_variables(unit, off, found)
            memo[(file, function)] = found
        return memo[(file, function)]

    def _scope_variables(self, unit, scope, found):
        for off, tag, attrs in self.children(unit, scope):
            if tag == F.TAG_variable and F.AT_name in attrs and F.AT_location in attrs:
                found.setdefault(attrs[F.AT_name], []).append(off)
            elif tag == F.TAG_lexical_block:
                self._scope_variables(unit, off, found)

    def _variable(self, offsets, file):
        """(address, Type) of the best of the variable DIEs at offsets (in a unit named
        file, if given) that has a fixed address: an external one first."""
        reader = self.reader
        best = None
        for off in offsets:
            unit = reader.unit_at(off)
            if file is not None and not _unit_matches(unit, file):
                continue
            _tag, attrs, _c, _n = reader.read_die(unit, off)
            addr = _location_address(reader, unit, attrs.get(F.AT_location))
            if addr is None:
                continue
            external = attrs.get(F.AT_external) or self._spec_attr(unit, attrs, F.AT_external)
            if best is None or (external and not best[0]):
                best = (bool(external), addr, unit, off, attrs)
        if best is None:
            return None
        _external, addr, unit, off, attrs = best
        if F.AT_type not in attrs:
            spec = attrs.get(F.AT_specification)
            if spec is not None:
                off = reader.ref(unit, spec)
        return addr, self.type_at(off)

    def _spec_attr(self, unit, attrs, at):
        spec = attrs.get(F.AT_specification)
        if spec is None:
            return None
        target = self.reader.ref(unit, spec)
        return self.reader.read_die(self.reader.unit_at(target), target)[1].get(at)

    @_checked
    def find_function(self, name):
        """The unbiased entry address of the function called name, or None.

        An out-of-line copy named after it through DW_AT_abstract_origin (a .constprop or
        .part clone) is used only when no DIE carries the name itself.
        """
        offsets = dies(self.index.functions, name.encode())
        if not offsets:
            return None
        reader = self.reader
        best = None
        for off in offsets:
            unit = reader.unit_at(off)
            _tag, attrs, _c, _n = reader.read_die(unit, off)
            rank = (F.AT_name in attrs or F.AT_specification in attrs,
                    bool(attrs.get(F.AT_external) or self._spec_attr(unit, attrs, F.AT_external)))
            entry = reader.entry_pc(unit, attrs)
            if entry is None:
                continue
            if best is None or rank > best[0]:
                best = (rank, entry)
        return None if best is None else best[1]

    # -- pc -> source ---------------------------------------------------------------

    @_checked
    def locate(self, pc):
        """Location of an unbiased pc, or None when no unit describes it (function None and
        an empty chain when only the line table covers it).

        For a caller frame pass its return address - 1, as gdb does.
        """
        unit = self._unit_for_pc(pc)
        if unit is None:
            return None
        func = self._function_at(unit, pc)
        lines = self._line_table(unit)
        row = lines.lookup(pc) if lines is not None else None
        file, line = row if row is not None else (None, None)
        if func is None:
            # Padding between functions still has a line row, as gdb's `info line` shows.
            return None if row is None else Location(None, file, line, [])
        frames = []
        chain = self._inline_chain(unit, func, pc)
        # chain: [subprogram, inlined_1, ..., inlined_n] (outermost first)
        for i in range(len(chain) - 1, -1, -1):
            off, attrs = chain[i]
            fname = self._die_name(unit, off, attrs)
            frames.append(Frame(fname, file, line))
            file = lines.file_name(attrs.get(F.AT_call_file)) if lines is not None else None
            line = attrs.get(F.AT_call_line)
        first = frames[0]
        return Location(first.function, first.file, first.line, frames)

    def _die_name(self, unit, off, attrs):
        """A function's name as gdb prints it for C: DW_AT_linkage_name when the DIE or
        its origins have one (glibc's __GI_abort), else DW_AT_name."""
        reader = self.reader
        name = None
        for _ in range(8):
            linkage = attrs.get(F.AT_linkage_name, attrs.get(F.AT_MIPS_linkage_name))
            if linkage is not None:
                return linkage.decode("utf-8", "replace")
            if name is None:
                name = attrs.get(F.AT_name)
            target = attrs.get(F.AT_abstract_origin, attrs.get(F.AT_specification))
            if target is None:
                break
            off = reader.ref(unit, target)
            unit = reader.unit_at(off)
            attrs = reader.read_die(unit, off)[1]
        return None if name is None else name.decode("utf-8", "replace")

    def _unit_for_pc(self, pc):
        if self._aranges is None:
            self._aranges = self._load_aranges()
        starts, ends, units = self._aranges
        i = bisect.bisect_right(starts, pc) - 1
        if i >= 0 and pc < ends[i]:
            return self.reader.unit_at(units[i])
        return None

    def _load_aranges(self):
        """Sorted (starts, ends, unit offsets) from .debug_aranges, else the units' ranges."""
        reader = self.reader
        spans = []
        data = reader.sections.get(".debug_aranges", b"")
        pos = 0
        covered = set()
        while pos + 16 <= len(data):
            length = int.from_bytes(data[pos:pos + 4], "little")
            osz = 4
            hdr = pos + 4
            if length == 0xFFFFFFFF:
                length = int.from_bytes(data[pos + 4:pos + 12], "little")
                osz = 8
                hdr = pos + 12
            end = hdr + length
            cu = reader.info_start + int.from_bytes(data[hdr + 2:hdr + 2 + osz], "little")
            asz = data[hdr + 2 + osz]
            p = hdr + 4 + osz
            p += (-(p - pos)) % (2 * asz)  # tuples are aligned to twice the address size
            fmt = {4: "<II", 8: "<QQ"}.get(asz)
            if fmt is None:
                raise DwarfError(f".debug_aranges: address size {asz} is not supported")
            stop = p + (end - p) // (2 * asz) * (2 * asz)
            for a, n in struct.iter_unpack(fmt, data[p:stop]):
                if a == 0 and n == 0:
                    break
                if n:
                    spans.append((a, a + n, cu))
            covered.add(cu)
            pos = end
        for unit in reader.units:
            if unit.offset in covered or unit.unit_type != 1:  # DW_UT_partial: no code
                continue
            reader.prepare(unit)
            for a, b in reader.die_ranges(unit, unit.root):
                if b > a:
                    spans.append((a, b, unit.offset))
        spans.sort()
        return [s[0] for s in spans], [s[1] for s in spans], [s[2] for s in spans]

    def _unit_cached(self, kind, unit, compute, key=None, decode=None):
        """compute(), cached in memory and in cache_dir/dwarf/BUILD-ID.KIND/KEY, KEY being
        the unit's offset or a DIE offset in it (a file per unit or function: a run reads
        only what its pcs need). The entry records where .debug_info lies in the file,
        like the index. decode turns the stored value into the one returned; an entry it
        cannot decode is computed again."""
        decode = decode or (lambda v: v)
        key = unit.offset if key is None else key
        memo = self._per_unit.setdefault(kind, {})
        if key in memo:
            return memo[key]
        prefix = self._cache_prefix()
        path = None if prefix is None else f"{prefix}.{kind}/{key:x}"
        where = (UNIT_CACHE_VERSION, self.reader.info_start, self.reader.info_end, unit.end)
        value = None
        data = cache.load(path)
        if isinstance(data, tuple) and len(data) == 2 and data[0] == where:
            try:
                value = decode(data[1])
            except (ValueError, TypeError, IndexError):
                value = None
        if value is None:
            stored = compute()
            cache.store(path, (where, stored))
            value = decode(stored)
        memo[key] = value
        return value

    @_checked
    def function_entry(self, pc):
        """The unbiased entry address of the function whose code holds pc, or None."""
        found = self._function_die(pc)
        return None if found is None else found[2]

    @_checked
    def call_sites(self, pc):
        """[(return pc, is_tail_call, target)] of the DW_TAG_call_site entries of the
        function holding pc, target being ('addr', unbiased address), ('name', function
        name) or None (see corefile.callsites)."""
        found = self._function_die(pc)
        if found is None:
            return []
        unit, off, _entry = found
        return self._unit_cached("callsites", unit,
                                 lambda: read_call_sites(self, unit, off), key=off)

    def _function_die(self, pc):
        """(unit, DIE offset, entry address) of the function holding pc, or None."""
        unit = self._unit_for_pc(pc)
        if unit is None:
            return None
        off = self._function_at(unit, pc)
        if off is None:
            return None
        attrs = self.reader.read_die(unit, off)[1]
        entry = attrs.get(F.AT_entry_pc)
        if not isinstance(entry, int) or entry < 0x1000:
            ranges = self.reader.die_ranges(unit, attrs)
            if not ranges:
                return None
            entry = ranges[0][0]
        return unit, off, entry

    def _function_at(self, unit, pc):
        """(offset, attrs) of the subprogram of unit whose ranges contain pc."""
        starts, spans = self._unit_cached("functions", unit,
                                          lambda: self._function_ranges(unit))
        i = bisect.bisect_right(starts, pc) - 1
        while i >= 0:
            a, b, off = spans[i]
            if a <= pc < b:
                return off
            if pc - a > 1 << 24:
                break
            i -= 1
        return None

    def _function_ranges(self, unit):
        """Sorted ranges of the unit's top-level functions, found by scanning this unit
        alone (locate() never needs the whole-program index)."""
        part = NameIndex()
        scan_unit(self.reader, unit, part, set())
        reader = self.reader
        spans = []
        for name in part.functions:
            for off in dies(part.functions, name):
                for a, b in reader.die_ranges(unit, reader.read_die(unit, off)[1]):
                    if b > a:
                        spans.append((a, b, off))
        spans.sort()
        return [s[0] for s in spans], spans

    def _inline_chain(self, unit, func, pc):
        """[(offset, attrs)] from the subprogram at func down the inlined calls holding pc."""
        reader = self.reader
        chain = [(func, reader.read_die(unit, func)[1])]
        scope = func
        while True:
            for off, tag, attrs in self._scope_children(unit, scope):
                if tag in (F.TAG_inlined_subroutine, F.TAG_lexical_block) and any(
                        a <= pc < b for a, b in reader.die_ranges(unit, attrs)):
                    if tag == F.TAG_inlined_subroutine:
                        chain.append((off, attrs))
                    scope = off
                    break
            else:
                return chain

    def _scope_children(self, unit, off):
        """Children of a scope DIE, looking through lexical blocks that have no address
        range (gdb files their contents under the enclosing block)."""
        for child, tag, attrs in self.children(unit, off):
            if tag == F.TAG_lexical_block and F.AT_low_pc not in attrs \
                    and F.AT_ranges not in attrs:
                yield from self._scope_children(unit, child)
            else:
                yield child, tag, attrs

    def _line_table(self, unit):
        if unit.stmt_list is None:
            return None
        data = self.reader.sections.get(".debug_line")
        if data is None:
            return None
        return self._unit_cached(
            "lines", unit, lambda: LineTable(data, unit.stmt_list, self.reader, unit).to_data(),
            decode=lambda stored: LineTable.from_data(stored, unit))


_SPECIFIERS = {"signed", "unsigned", "short", "long", "int", "char", "float", "double",
               "_Bool", "__int128"}


def _c_base_name(words):
    """The name gcc gives a C base type in DWARF, from its C spelling (other names as they
    are): "unsigned long" -> "long unsigned int", "short" -> "short int"."""
    if not set(words) <= _SPECIFIERS:
        return " ".join(words)
    unsigned = "unsigned" in words
    signed = "signed" in words
    longs = words.count("long")
    for base in ("char", "float", "double", "_Bool", "__int128"):
        if base in words:
            if base == "char":
                return "unsigned char" if unsigned else "signed char" if signed else "char"
            if base == "double" and longs:
                return "long double"
            if base == "__int128":
                return "__int128 unsigned" if unsigned else "__int128"
            return base
    core = "short " if "short" in words else "long long " if longs >= 2 else \
        "long " if longs else ""
    return f"{core}unsigned int" if unsigned else f"{core}int"


def _unit_matches(unit, file):
    return _name_matches(unit.name, file)


def _name_matches(name, file):
    """Whether a unit's DW_AT_name (bytes or None) is file or ends with /file."""
    name = name.decode("utf-8", "replace") if name else ""
    file = file.lstrip("./")
    return name == file or name.endswith("/" + file)


_CONSTANT_FORMS = (F.FORM_data1, F.FORM_data2, F.FORM_data4, F.FORM_data8, F.FORM_udata,
                   F.FORM_sdata, F.FORM_implicit_const)


def _constant(raw):
    """The value of a raw (form, value) attribute of the constant class, else None (a
    reference or an expression: a bound known only at run time)."""
    if raw is None or raw[0] not in _CONSTANT_FORMS:
        return None
    return raw[1]


def _member_location_expr(expr):
    """A DW_AT_data_member_location expression: DWARF 2's DW_OP_plus_uconst N."""
    if expr and expr[0] == 0x23:
        return F.uleb(expr, 1)[0]
    raise DwarfError("unsupported DW_AT_data_member_location expression")


def _location_address(reader, unit, expr):
    """The static address of a DW_AT_location expression: an int, ('tls', offset), or None
    for locations that are not a fixed address (registers, location lists)."""
    if not isinstance(expr, bytes) or not expr:
        return None
    op = expr[0]
    if op == 0x03 and len(expr) == 1 + unit.addr_size:  # DW_OP_addr
        return int.from_bytes(expr[1:], "little")
    if op in (0xA1, 0xFB) and len(expr) >= 2:  # DW_OP_addrx, DW_OP_GNU_addr_index
        i, p = F.uleb(expr, 1)
        if p == len(expr):
            return reader._addrx(unit, i)
    if expr[-1] in (0xE0, 0x9B):  # DW_OP_GNU_push_tls_address, DW_OP_form_tls_address
        body = expr[:-1]
        value = None
        if body[:1] in (b"\x08", b"\x0a", b"\x0c", b"\x0e"):  # DW_OP_const1u/2u/4u/8u
            n = {0x08: 1, 0x0A: 2, 0x0C: 4, 0x0E: 8}[body[0]]
            if len(body) == 1 + n:
                value = int.from_bytes(body[1:], "little")
        elif body[:1] in (b"\x10", b"\xa2", b"\xfc"):  # constu, constx, GNU_const_index
            value, p = F.uleb(body, 1)
            if p != len(body):
                value = None
            elif body[0] != 0x10:
                value = reader._addrx(unit, value)
        if value is not None:
            return ("tls", value)
    return None
