"""Executables and shared libraries: opened read-only, build-id, separate debug info,
program headers, and ELF symbol lookup (addr -> name + offset)."""

import bisect
import os
import struct
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .errors import CorefileError

PT_LOAD = 1
PT_TLS = 7
PT_NOTE = 4
NT_GNU_BUILD_ID = 3
STT_OBJECT, STT_FUNC, STT_TLS, STT_GNU_IFUNC = 1, 2, 6, 10
SHN_UNDEF = 0

DEFAULT_DEBUG_DIR = "/usr/lib/debug"


@dataclass
class Symbol:
    name: str
    address: int     # unbiased (as in the file)
    size: int
    is_function: bool
    is_tls: bool = False   # address is an offset in the module's TLS block
    old_version: bool = False  # name@VERSION, not the default name@@VERSION


class ElfImage:
    """One ELF file opened read-only (or an in-memory image such as the vDSO)."""

    def __init__(self, path: str, stream=None):
        self.path = path
        try:
            self._file = stream if stream is not None else open(path, "rb")
        except OSError as e:
            raise CorefileError(f"cannot open {path}: {e.strerror}") from None
        try:
            self.elf = ELFFile(self._file)
        except (ELFError, struct.error, ValueError) as e:
            raise CorefileError(f"{path}: not a valid ELF file ({e})") from None
        self.e_machine = self.elf.header["e_machine"]
        self.loads = []
        self.tls = None
        for seg in self.elf.iter_segments():
            h = seg.header
            if h.p_type == "PT_LOAD":
                self.loads.append((h.p_vaddr, h.p_memsz, h.p_offset, h.p_filesz))
            elif h.p_type == "PT_TLS":
                self.tls = (h.p_vaddr, h.p_memsz, h.p_align)
        self._build_id = False
        self._symbols = None

    def close(self):
        self._file.close()

    @property
    def build_id(self) -> bytes | None:
        if self._build_id is False:
            self._build_id = None
            for sec in self.elf.iter_sections():
                if sec.header.sh_type == "SHT_NOTE":
                    for note in sec.iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID":
                            self._build_id = bytes.fromhex(note["n_desc"])
                            return self._build_id
        return self._build_id

    def section(self, name: str):
        """The section's header and a reader, or None when absent or without bytes."""
        sec = self.elf.get_section_by_name(name)
        if sec is None or sec.header.sh_type == "SHT_NOBITS":
            return None
        return sec

    def section_data(self, name: str) -> bytes | None:
        sec = self.section(name)
        return None if sec is None else sec.data()

    def debuglink(self) -> str | None:
        data = self.section_data(".gnu_debuglink")
        if not data:
            return None
        return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    def has_dwarf(self) -> bool:
        return self.section(".debug_info") is not None

    def link_base(self) -> int:
        """Page-aligned vaddr of the first PT_LOAD (what offset 0 of the file maps to)."""
        return min((v - o for v, _, o, _ in self.loads if o == 0), default=0)

    def symbols(self) -> list:
        """Function and object symbols of .symtab and .dynsym, sorted by address."""
        if self._symbols is None:
            self._symbols = _read_symbols(self)
        return self._symbols


def _read_symbols(img: ElfImage) -> list:
    syms = {}
    for secname in (".dynsym", ".symtab"):
        sec = img.section(secname)
        if sec is None:
            continue
        strtab = img.elf.get_section(sec.header.sh_link).data()
        data = sec.data()
        # .dynsym names carry no @VERSION: a hidden .gnu.version entry marks the
        # non-default versions.
        versym = img.section_data(".gnu.version") if secname == ".dynsym" else None
        for i, (name_off, info, _, shndx, value, size) in enumerate(
                struct.iter_unpack("<IBBHQQ", data)):
            kind = info & 0xF
            if shndx == SHN_UNDEF or kind not in (STT_FUNC, STT_OBJECT, STT_TLS,
                                                  STT_GNU_IFUNC):
                continue
            end = strtab.index(b"\0", name_off)
            raw = strtab[name_off:end]
            name = raw.split(b"@", 1)[0].decode("utf-8", "replace")
            old = b"@" in raw and b"@@" not in raw or bool(
                versym and versym[2 * i + 1] & 0x80)
            if name and ((value, name) not in syms or syms[(value, name)].old_version):
                syms[(value, name)] = Symbol(name, value, size,
                                             kind in (STT_FUNC, STT_GNU_IFUNC),
                                             kind == STT_TLS, old)
    return sorted(syms.values(), key=lambda s: (s.address, s.name))


class SymbolTable:
    """addr -> (name, offset) lookup over one module's symbols (unbiased addresses)."""

    def __init__(self, symbols: list):
        """symbols sorted by (address, name). Like gdb's minimal symbols, one name per
        address is shown: the last one in that order."""
        self.funcs = []
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
                continue
            if self.funcs and self.funcs[-1].address == s.address:
                size = self.funcs[-1].size
                self.funcs[-1] = Symbol(s.name, s.address, s.size or size, True)
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


def find_debug_file(img: ElfImage, debug_dirs=(), sysroot: str | None = None) -> str | None:
    """The separate debug file of img, by build-id then by .gnu_debuglink, as gdb
    searches: each debug dir (the caller's first, then sysroot's /usr/lib/debug)."""
    dirs = list(debug_dirs)
    dirs.append(os.path.join(sysroot, DEFAULT_DEBUG_DIR.lstrip("/")) if sysroot
                else DEFAULT_DEBUG_DIR)
    bid = img.build_id
    if bid and len(bid) >= 2:
        hexid = bid.hex()
        for d in dirs:
            cand = os.path.join(d, ".build-id", hexid[:2], hexid[2:] + ".debug")
            if os.path.isfile(cand):
                return cand
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
    return None
