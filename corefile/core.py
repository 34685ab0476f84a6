"""An ELF core file: its PT_LOAD segments (mmap'ed, never read whole) and its notes."""

import mmap
import os
import struct
from dataclasses import dataclass, field

from . import arch as arches
from .compressed import decompress, format_of
from .errors import BadCoreError

ET_CORE = 4
PT_LOAD = 1
PT_NOTE = 4
NT_PRSTATUS = 1
NT_PRPSINFO = 3
NT_AUXV = 6
NT_SIGINFO = 0x53494749
NT_FILE = 0x46494C45

# Resource bounds: a core claiming more is read up to the bound and reported partial.
MAX_NOTES = 1 << 20       # notes in all PT_NOTE segments together
MAX_THREADS = 1 << 16     # NT_PRSTATUS notes (threads)


@dataclass
class Segment:
    """A PT_LOAD: [vaddr, vaddr + memsz) of which the first filesz bytes are in the core;
    the `cut` bytes after them were dumped but lost to a truncated core file."""
    vaddr: int
    memsz: int
    offset: int
    filesz: int
    flags: int
    cut: int = 0


@dataclass
class Mapping:
    """An NT_FILE entry: [start, end) maps `path` from byte `offset`."""
    start: int
    end: int
    offset: int
    path: str


@dataclass
class Thread:
    """A thread of the core: gdb's number, its LWP id, pending signal, registers."""
    num: int
    tid: int
    cursig: int
    registers: dict
    siginfo: dict | None = None


@dataclass
class Siginfo:
    signo: int
    errno: int
    code: int
    addr: int      # si_addr (faults) / first union word
    pid: int       # si_pid (kill, sigqueue)
    uid: int


@dataclass
class Psinfo:
    pid: int
    uid: int
    fname: str
    psargs: str


@dataclass
class Core:
    """Everything parsed from a core: see open_core()."""
    path: str
    arch: object
    data: mmap.mmap
    size: int
    segments: list = field(default_factory=list)
    threads: list = field(default_factory=list)
    psinfo: Psinfo | None = None
    siginfo: Siginfo | None = None
    auxv: dict = field(default_factory=dict)
    mappings: list = field(default_factory=list)
    file_page_size: int = 0
    partial_reasons: list = field(default_factory=list)
    fd: int = -1                  # of the core, or of a compressed core's plain copy
    compressed: str | None = None  # the compression format (corefile.compressed)

    def close(self):
        self.data.close()
        os.close(self.fd)


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def _parse_siginfo(desc: bytes) -> Siginfo:
    signo, errno, code = struct.unpack_from("<iii", desc, 0)
    addr, = struct.unpack_from("<Q", desc, 16)
    pid, uid = struct.unpack_from("<iI", desc, 16)
    return Siginfo(signo, errno, code, addr, pid, uid)


def _parse_nt_file(desc: bytes) -> tuple[int, list]:
    count, page = struct.unpack_from("<QQ", desc, 0)
    if 16 + count * 24 > len(desc):
        raise ValueError("NT_FILE count exceeds note size")
    names = desc[16 + count * 24:].split(b"\0")
    out = []
    for i in range(count):
        start, end, ofs = struct.unpack_from("<QQQ", desc, 16 + i * 24)
        name = names[i].decode("utf-8", "surrogateescape") if i < len(names) else ""
        out.append(Mapping(start, end, ofs * page, name))
    return page, out


def _notes(buf, off: int, end: int, count: list):
    """Yield (name, type, desc) of the notes in buf[off:end] (4-byte aligned);
    count[0] counts them: OverflowError past MAX_NOTES."""
    while off + 12 <= end:
        count[0] += 1
        if count[0] > MAX_NOTES:
            raise OverflowError(f"more than {MAX_NOTES} notes; the rest are ignored")
        namesz, descsz, ntype = struct.unpack_from("<III", buf, off)
        name_off = off + 12
        desc_off = name_off + ((namesz + 3) & ~3)
        nxt = desc_off + ((descsz + 3) & ~3)
        if desc_off + descsz > end:
            raise ValueError(f"note at offset 0x{off:x} runs past its segment")
        yield (bytes(buf[name_off:name_off + namesz]).rstrip(b"\0"), ntype,
               bytes(buf[desc_off:desc_off + descsz]))
        off = nxt


def open_core(path: str) -> Core:
    """Parse the core at `path` (read-only), plain or compressed (corefile.compressed).
    Raises BadCoreError for anything that is not a usable core; records a truncated tail
    in partial_reasons."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise BadCoreError(f"cannot open core {path}: {e.strerror}") from None
    try:
        fmt = format_of(os.pread(fd, 8, 0))
        if fmt is not None:
            plain = decompress(path, fmt)
            os.close(fd)
            fd = plain
        size = os.fstat(fd).st_size
        if size < 64:
            raise BadCoreError(f"{path}: not an ELF core (file is {size} bytes)")
        data = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    except BaseException as e:
        os.close(fd)
        if isinstance(e, OSError):
            raise BadCoreError(f"cannot map core {path}: {e.strerror}") from None
        raise
    try:
        core = _parse(path, data, size)
    except BadCoreError:
        data.close()
        os.close(fd)
        raise
    core.fd, core.compressed = fd, fmt
    return core


def _parse(path: str, data, size: int) -> Core:
    if data[:4] != b"\x7fELF":
        raise BadCoreError(f"{path}: not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise BadCoreError(f"{path}: only 64-bit little-endian cores are supported")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_type != ET_CORE:
        raise BadCoreError(f"{path}: ELF file is not a core (e_type {e_type})")
    arch = arches.for_machine(e_machine)
    if arch is None:
        raise BadCoreError(f"{path}: unsupported architecture (e_machine {e_machine})")
    e_phoff, = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    if e_phoff + e_phnum * e_phentsize > size or e_phentsize < 56:
        raise BadCoreError(f"{path}: truncated core (program headers missing)")
    core = Core(path, arch, data, size)
    notes = []
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz = struct.unpack_from(
            "<IIQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == PT_LOAD:
            avail = max(0, min(p_filesz, size - p_offset))
            if avail < p_filesz:
                core.partial_reasons.append(
                    f"core truncated: segment 0x{p_vaddr:x}-0x{p_vaddr + p_memsz:x} has "
                    f"{avail} of {p_filesz} bytes")
            core.segments.append(Segment(p_vaddr, p_memsz, p_offset, avail, p_flags,
                                         p_filesz - avail))
        elif p_type == PT_NOTE:
            notes.append((p_offset, p_filesz))
    core.segments.sort(key=lambda s: s.vaddr)
    if not notes:
        raise BadCoreError(f"{path}: core has no notes")
    count = [0]
    for off, length in notes:
        if off + length > size:
            raise BadCoreError(f"{path}: truncated core (notes cut off at byte {size})")
        try:
            _read_notes(core, data, off, off + length, count)
        except OverflowError as e:
            core.partial_reasons.append(f"core notes: {e}")
            break
        except (ValueError, struct.error, IndexError) as e:
            raise BadCoreError(f"{path}: malformed core notes: {e}") from None
    if not core.threads:
        raise BadCoreError(f"{path}: core has no thread (no NT_PRSTATUS note)")
    return core


def _read_notes(core: Core, data, off: int, end: int, count: list):
    arch = core.arch
    for name, ntype, desc in _notes(data, off, end, count):
        if name not in (b"CORE", b"LINUX"):
            continue
        if name == b"CORE" and ntype == NT_PRSTATUS:
            if len(core.threads) == MAX_THREADS:
                raise OverflowError(f"more than {MAX_THREADS} threads; the rest are ignored")
            if len(desc) < arch.PRSTATUS_SIZE:
                raise ValueError("NT_PRSTATUS note too small")
            cursig, = struct.unpack_from("<h", desc, arch.PRSTATUS_CURSIG)
            tid, = struct.unpack_from("<i", desc, arch.PRSTATUS_PID)
            values = struct.unpack_from(f"<{len(arch.USER_REGS)}Q", desc, arch.PRSTATUS_REG)
            core.threads.append(Thread(len(core.threads) + 1, tid, cursig,
                                       dict(zip(arch.USER_REGS, values))))
        elif name == b"CORE" and ntype == NT_PRPSINFO:
            pid, = struct.unpack_from("<i", desc, arch.PRPSINFO_PID)
            uid, = struct.unpack_from("<I", desc, arch.PRPSINFO_UID)
            fo, fl = arch.PRPSINFO_FNAME
            ao, al = arch.PRPSINFO_PSARGS
            core.psinfo = Psinfo(pid, uid, _cstr(desc[fo:fo + fl]), _cstr(desc[ao:ao + al]))
        elif name == b"CORE" and ntype == NT_SIGINFO:
            si = _parse_siginfo(desc)
            # The kernel writes one, after the dumping thread; gcore one per thread.
            if core.threads:
                core.threads[-1].siginfo = si
            if core.siginfo is None:
                core.siginfo = si
        elif name == b"CORE" and ntype == NT_AUXV:
            for i in range(0, len(desc) - 15, 16):
                key, val = struct.unpack_from("<QQ", desc, i)
                if key == 0:
                    break
                core.auxv[key] = val
        elif name == b"CORE" and ntype == NT_FILE:
            core.file_page_size, core.mappings = _parse_nt_file(desc)
