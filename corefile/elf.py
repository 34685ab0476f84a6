"""Executables and shared libraries: opened read-only, build-id, separate debug info,
program headers, and ELF symbol lookup (addr -> name + offset)."""

import bisect
import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

from .dwarf_format import uleb
from .errors import CorefileError

PT_LOAD = 1
PT_TLS = 7
PT_NOTE = 4
NT_GNU_BUILD_ID = 3
STT_OBJECT, STT_FUNC, STT_TLS, STT_GNU_IFUNC = 1, 2, 6, 10
SHN_UNDEF = 0
STB_LOCAL = 0

DEFAULT_DEBUG_DIR = "/usr/lib/debug"


class Symbol(NamedTuple):
    address: int     # unbiased (as in the file)
    name: str
    size: int
    is_function: bool
    is_tls: bool = False   # address is an offset in the module's TLS block
    old_version: bool = False  # name@VERSION, not the default name@@VERSION
    is_global: bool = False    # STB_GLOBAL or STB_WEAK: what other modules link to


@dataclass
class Section:
    name: str
    type: int
    flags: int
    addr: int        # unbiased
    offset: int
    size: int
    link: int


SHT_NOBITS = 8
SHT_NOTE = 7
SHF_COMPRESSED = 0x800
ELFCOMPRESS_ZLIB = 1
MAX_DEFLATE_RATIO = 1032   # deflate's best: a compressed section claiming more is bogus
MAX_MINIDEBUGINFO = 1 << 26   # bytes: a symbol table, far smaller than this


class ElfImage:
    """One ELF file opened read-only and mmap'ed (or an in-memory image such as the
    vDSO: path None, data given). Headers are parsed with struct, sections on demand."""

    def __init__(self, path: str | None, data: bytes | None = None):
        self.path = path
        if data is None:
            try:
                with open(path, "rb") as f:
                    data = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            except (OSError, ValueError) as e:
                raise CorefileError(f"cannot open {path}: "
                                    f"{getattr(e, 'strerror', None) or e}") from None
        self.data = data
        name = path or "in-memory ELF image"
        if len(data) < 64 or data[:4] != b"\x7fELF":
            raise CorefileError(f"{name}: not an ELF file")
        if data[4] != 2 or data[5] != 1:
            raise CorefileError(f"{name}: only 64-bit little-endian ELF is supported")
        try:
            (self.e_type, self.e_machine, _, _, phoff, shoff, _, _, phentsize, phnum,
             shentsize, shnum, shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
            self.loads = []
            self.tls = None
            self._notes = []
            for i in range(phnum):
                p_type, _, p_offset, p_vaddr, _, p_filesz, p_memsz, p_align = \
                    struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
                if p_type == PT_LOAD:
                    self.loads.append((p_vaddr, p_memsz, p_offset, p_filesz))
                elif p_type == PT_TLS:
                    self.tls = (p_vaddr, p_memsz, p_align)
                elif p_type == PT_NOTE:
                    self._notes.append((p_offset, p_filesz))
            self.sections = {}
            self._by_index = []
            if shoff and shnum and shoff + shnum * shentsize <= len(data):
                raw = [struct.unpack_from("<IIQQQQII", data, shoff + i * shentsize)
                       for i in range(shnum)]
                _, _, _, _, str_off, str_size, _, _ = raw[shstrndx]
                names = bytes(data[str_off:str_off + str_size])
                for sh_name, sh_type, flags, addr, offset, size, link, _ in raw:
                    sname = names[sh_name:names.index(b"\0", sh_name)].decode(
                        "utf-8", "replace")
                    sec = Section(sname, sh_type, flags, addr, offset, size, link)
                    self._by_index.append(sec)
                    self.sections.setdefault(sname, sec)
        except (struct.error, ValueError, IndexError) as e:
            raise CorefileError(f"{name}: malformed ELF headers ({e})") from None
        self._build_id = False
        self._symbols = None
        self._exports = None

    def close(self):
        if isinstance(self.data, mmap.mmap):
            self.data.close()

    @property
    def build_id(self) -> bytes | None:
        """The NT_GNU_BUILD_ID note, from the note segments or the note sections."""
        if self._build_id is False:
            self._build_id = None
            places = list(self._notes) + [(s.offset, s.size) for s in self._by_index
                                          if s.type == SHT_NOTE]
            for off, size in places:
                found = _build_id_note(bytes(self.data[off:off + size]))
                if found:
                    self._build_id = found
                    break
        return self._build_id

    def section(self, name: str) -> Section | None:
        """The section called name, or None when absent or without bytes."""
        sec = self.sections.get(name)
        if sec is None or sec.type == SHT_NOBITS:
            return None
        return sec

    def section_data(self, name: str) -> bytes | None:
        sec = self.section(name)
        return None if sec is None else self._contents(sec)

    def _contents(self, sec: Section) -> bytes | None:
        data = bytes(self.data[sec.offset:sec.offset + sec.size])
        if sec.flags & SHF_COMPRESSED:
            if len(data) < 24:
                return None
            ch_type, _, ch_size = struct.unpack_from("<IIQ", data, 0)
            if ch_type != ELFCOMPRESS_ZLIB or ch_size > MAX_DEFLATE_RATIO * len(data) + 1024:
                return None
            if ch_size == 0:   # max_length 0 would mean no limit
                return b""
            try:   # at most ch_size bytes: a hostile file cannot inflate without bound
                return zlib.decompressobj().decompress(data[24:], ch_size)
            except zlib.error:
                return None
        return data

    def debuglink(self) -> str | None:
        data = self.section_data(".gnu_debuglink")
        if not data:
            return None
        return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    def debugaltlink(self) -> tuple[str, bytes] | None:
        """(file name, id) of the dwz supplementary file this file's DWARF refers to."""
        return parse_altlink(self.section_data(".gnu_debugaltlink"),
                             self.section_data(".debug_sup"))

    def has_dwarf(self) -> bool:
        return self.section(".debug_info") is not None

    def link_base(self) -> int:
        """Page-aligned vaddr of the first PT_LOAD (what offset 0 of the file maps to)."""
        return min((v - o for v, _, o, _ in self.loads if o == 0), default=0)

    def symbols(self) -> list:
        """Function and object symbols of .symtab and .dynsym, sorted by address; without
        .symtab, also MiniDebugInfo's (see minidebuginfo())."""
        if self._symbols is None:
            self._symbols = _read_symbols(self, (".dynsym", ".symtab"))
            mini = self.minidebuginfo() if self.section(".symtab") is None else None
            if mini is not None:
                self._symbols = merge_symbols(self._symbols, _read_symbols(mini, (".symtab",)))
        return self._symbols

    def minidebuginfo(self) -> "ElfImage | None":
        """The ELF image of .gnu_debugdata (MiniDebugInfo, as Fedora ships its stripped
        binaries: xz-compressed, its .symtab holds the functions .dynsym lacks), or None
        when absent or unreadable."""
        data = self.section_data(".gnu_debugdata")
        if not data:
            return None
        import lzma   # only for such files
        try:
            unpack = lzma.LZMADecompressor(lzma.FORMAT_XZ)
            image = unpack.decompress(data, MAX_MINIDEBUGINFO)
            return ElfImage(None, image) if unpack.eof else None
        except (lzma.LZMAError, CorefileError):
            return None

    def exported(self, name: str) -> Symbol | None:
        """The defined global function `name` of .dynsym (default version): what a
        call from another module binds to. Looked up through .gnu.hash as the dynamic
        linker does (no symbol table is read); files without it are scanned once."""
        if self._exports is None:
            self._exports = _GnuHash.of(self) or {}
            if not isinstance(self._exports, _GnuHash):
                for sym in _read_symbols(self, (".dynsym",)):
                    if sym.is_function and sym.is_global and not sym.old_version:
                        self._exports.setdefault(sym.name, sym)
        return self._exports.get(name)


class _GnuHash:
    """Exported functions by name through a .gnu.hash section and its .dynsym (the
    `get` of the dict exported() otherwise builds)."""

    def __init__(self, table, symtab, strtab, versym):
        self.nbuckets, self.symoffset, bloom_size, _ = struct.unpack_from("<IIII", table)
        self.buckets = struct.unpack_from(f"<{self.nbuckets}I", table, 16 + 8 * bloom_size)
        self.chain_pos = 16 + 8 * bloom_size + 4 * self.nbuckets
        self.table, self.symtab, self.strtab, self.versym = table, symtab, strtab, versym

    @classmethod
    def of(cls, img):
        sec = img.section(".gnu.hash")
        dynsym = img.section(".dynsym")
        if sec is None or dynsym is None or dynsym.link >= len(img._by_index):
            return None
        table, symtab = img._contents(sec), img._contents(dynsym)
        strtab = img._contents(img._by_index[dynsym.link])
        if table is None or symtab is None or strtab is None or len(table) < 16:
            return None
        try:
            found = cls(table, symtab, strtab, img.section_data(".gnu.version") or b"")
        except struct.error:
            return None
        return found if found.nbuckets else None

    def get(self, name):
        raw = name.encode("utf-8", "surrogateescape")
        h = 5381
        for c in raw:
            h = (h * 33 + c) & 0xFFFFFFFF
        i = self.buckets[h % self.nbuckets]
        if i < self.symoffset:
            return None
        try:
            while True:
                ch, = struct.unpack_from("<I", self.table, self.chain_pos
                                         + 4 * (i - self.symoffset))
                if ch | 1 == h | 1:
                    sym = self._symbol(i, raw)
                    if sym is not None:
                        return sym
                if ch & 1:
                    return None
                i += 1
        except struct.error:   # a chain running off its table: not found
            return None

    def _symbol(self, i, raw):
        name_off, info, _, shndx, value, size = struct.unpack_from("<IBBHQQ", self.symtab,
                                                                   24 * i)
        end = self.strtab.find(b"\0", name_off)
        if self.strtab[name_off:end if end >= 0 else len(self.strtab)] != raw:
            return None
        kind = info & 0xF
        old = 2 * i + 1 < len(self.versym) and self.versym[2 * i + 1] & 0x80
        if shndx == SHN_UNDEF or kind not in (STT_FUNC, STT_GNU_IFUNC) or old \
                or info >> 4 == STB_LOCAL:
            return None
        return Symbol(value, raw.decode("utf-8", "replace"), size, True, False, False, True)


def _build_id_note(data: bytes) -> bytes | None:
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        desc = pos + 12 + ((namesz + 3) & ~3)
        if ntype == NT_GNU_BUILD_ID and data[pos + 12:pos + 12 + namesz] == b"GNU\0":
            return data[desc:desc + descsz]
        pos = desc + ((descsz + 3) & ~3)
    return None


def _read_symbols(img: ElfImage, tables) -> list:
    """Defined function, object and TLS symbols of the given tables, sorted by
    (address, name), one per (address, name) (a default version wins)."""
    syms = {}
    kinds = (STT_FUNC, STT_OBJECT, STT_TLS, STT_GNU_IFUNC)
    for secname in tables:
        sec = img.section(secname)
        if sec is None or sec.link >= len(img._by_index):
            continue
        strtab = img._contents(img._by_index[sec.link])
        data = img._contents(sec)
        if strtab is None or data is None:   # compressed with an unknown method
            continue
        # .dynsym names carry no @VERSION: a hidden .gnu.version entry marks the
        # non-default versions.
        versym = img.section_data(".gnu.version") if secname == ".dynsym" else None
        for i, (name_off, info, _, shndx, value, size) in enumerate(
                struct.iter_unpack("<IBBHQQ", data[:len(data) - len(data) % 24])):
            kind = info & 0xF
            if shndx == SHN_UNDEF or kind not in kinds:
                continue
            end = strtab.find(b"\0", name_off)
            raw = strtab[name_off:end if end >= 0 else len(strtab)]
            old = bool(versym and 2 * i + 1 < len(versym) and versym[2 * i + 1] & 0x80)
            if b"@" in raw:
                old = old or b"@@" not in raw
                raw = raw.split(b"@", 1)[0]
            if not raw:
                continue
            name = raw.decode("utf-8", "replace")
            known = syms.get((value, name))
            if known is None or known.old_version:
                syms[(value, name)] = Symbol(value, name, size,
                                             kind == STT_FUNC or kind == STT_GNU_IFUNC,
                                             kind == STT_TLS, old, info >> 4 != STB_LOCAL)
    return sorted(syms.values())


def merge_symbols(symbols: list, more: list) -> list:
    """symbols and those of more at another (address, name), sorted."""
    have = {(s.address, s.name) for s in symbols}
    return sorted(symbols + [s for s in more if (s.address, s.name) not in have])


class SymbolTable:
    """addr -> (name, offset) lookup over one module's symbols (unbiased addresses)."""

    def __init__(self, symbols: list):
        """symbols sorted by (address, name). Like gdb's minimal symbols, one name per
        address is shown: the last one in that order."""
        self.funcs = []
        self.objects = []    # sized data symbols (variables), by address
        self.by_name = {}
        self.tls_by_name = {}
        for s in symbols:
            if s.is_tls:
                self.tls_by_name.setdefault(s.name, s)
                continue
            known = self.by_name.get(s.name)
            if known is None or (known.old_version and not s.old_version):
                self.by_name[s.name] = s
            if not s.is_function:
                if s.size:
                    self.objects.append(s)
                continue
            if self.funcs and self.funcs[-1].address == s.address:
                self.funcs[-1] = s._replace(size=s.size or self.funcs[-1].size)
            else:
                self.funcs.append(s)
        self.addrs = [s.address for s in self.funcs]

    def lookup(self, addr: int) -> tuple[str, int] | None:
        i = bisect.bisect_right(self.addrs, addr) - 1
        while i >= 0:
            s = self.funcs[i]
            if s.size == 0 or addr < s.address + s.size:
                return s.name, addr - s.address
            # A sized symbol that ends before addr: try an enclosing earlier one once.
            if i > 0 and self.funcs[i - 1].address + self.funcs[i - 1].size > addr:
                i -= 1
                continue
            return None
        return None

    def function_range(self, name: str) -> tuple[int, int] | None:
        s = self.by_name.get(name)
        if s is None or not s.is_function:
            return None
        return s.address, s.address + max(s.size, 1)


def parse_altlink(gnu_debugaltlink, debug_sup) -> tuple[str, bytes] | None:
    """(file name, id) of a dwz supplementary file from the bytes of .gnu_debugaltlink
    (name, NUL, build-id) or else DWARF 5's .debug_sup (the id is its checksum); None
    when neither names one."""
    if gnu_debugaltlink and b"\0" in gnu_debugaltlink:
        name, bid = bytes(gnu_debugaltlink).split(b"\0", 1)
        return name.decode("utf-8", "surrogateescape"), bid
    sup = _debug_sup(debug_sup)
    if sup is None or sup[0]:
        return None
    return sup[1], sup[2]


def _debug_sup(data) -> tuple[bool, str, bytes] | None:
    """(is_supplementary, file name, checksum) of a DWARF 5 .debug_sup section: version
    u16, is_supplementary u8, NUL-terminated name, ULEB128 length, checksum."""
    data = bytes(data or b"")
    end = data.find(b"\0", 3)
    if len(data) < 4 or data[2] > 1 or end < 0:
        return None
    try:
        n, pos = uleb(data, end + 1)
    except IndexError:   # the section ends inside the length: no checksum
        n, pos = 0, len(data)
    return bool(data[2]), data[3:end].decode("utf-8", "surrogateescape"), data[pos:pos + n]


def _debug_dirs(debug_dirs, sysroot):
    """The caller's debug dirs, then sysroot's /usr/lib/debug (or the system's)."""
    dirs = list(debug_dirs)
    dirs.append(os.path.join(sysroot, DEFAULT_DEBUG_DIR.lstrip("/")) if sysroot
                else DEFAULT_DEBUG_DIR)
    return dirs


def _by_build_id(bid, dirs):
    """DIR/.build-id/xx/rest.debug for the first debug dir that has it."""
    if bid and len(bid) >= 2:
        hexid = bid.hex()
        for d in dirs:
            cand = os.path.join(d, ".build-id", hexid[:2], hexid[2:] + ".debug")
            if os.path.isfile(cand):
                return cand
    return None


def find_alt_file(name: str, bid: bytes, origin: str, debug_dirs=(),
                  sysroot: str | None = None, debuginfod=None) -> str | None:
    """The dwz supplementary file named by origin's .gnu_debugaltlink, as gdb finds it:
    by build-id under the debug dirs, then by its name (relative to origin's directory;
    an absolute name also under the sysroot and re-rooted under each debug dir, as a
    .dwz/ path inside /usr/lib/debug), then from debuginfod (a corefile.debuginfod.Client,
    which serves it as the debuginfo of its build-id). Its build-id (DWARF 5: the checksum
    in its own .debug_sup) must be bid."""
    dirs = _debug_dirs(debug_dirs, sysroot)
    cands = [_by_build_id(bid, dirs)]
    if os.path.isabs(name):
        if sysroot:
            cands.append(os.path.join(sysroot, name.lstrip("/")))
        cands.append(name)
        rel = os.path.relpath(name, DEFAULT_DEBUG_DIR)
        if not rel.startswith(".."):
            cands += [os.path.join(d, rel) for d in dirs]
    else:
        cands.append(os.path.join(os.path.dirname(os.path.realpath(origin)), name))
    for cand in cands:
        if cand and os.path.isfile(cand):
            try:
                other = ElfImage(cand)
            except CorefileError:
                continue
            sup = _debug_sup(other.section_data(".debug_sup"))
            ok = other.build_id == bid or (sup is not None and sup[0] and sup[2] == bid)
            other.close()
            if ok:
                return cand
    return debuginfod.find_debuginfo(bid, name) if debuginfod else None


def find_debug_file(img: ElfImage, debug_dirs=(), sysroot: str | None = None,
                    debuginfod=None, name: str | None = None) -> str | None:
    """The separate debug file of img, by build-id then by .gnu_debuglink, as gdb
    searches: each debug dir (the caller's first, then sysroot's /usr/lib/debug); then
    from debuginfod (a corefile.debuginfod.Client) by build-id. name: img's name in
    messages (default its path)."""
    dirs = _debug_dirs(debug_dirs, sysroot)
    bid = img.build_id
    found = _by_build_id(bid, dirs)
    if found:
        return found
    link = img.debuglink()
    if link:
        here = os.path.dirname(os.path.realpath(img.path))
        cands = [os.path.join(here, link), os.path.join(here, ".debug", link)]
        cands += [os.path.join(d, here.lstrip("/"), link) for d in dirs]
        for cand in cands:
            if os.path.isfile(cand) and os.path.realpath(cand) != os.path.realpath(img.path):
                if bid:
                    try:
                        other = ElfImage(cand)
                    except CorefileError:
                        continue
                    ok = other.build_id in (None, bid)
                    other.close()
                    if not ok:
                        continue
                return cand
    return debuginfod.find_debuginfo(bid, name or img.path) if debuginfod and bid else None
