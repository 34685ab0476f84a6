"""Hostile cores and files: absurd sizes stay within bounds (corefile.core's MAX_NOTES and
MAX_THREADS, elf.MAX_DEFLATE_RATIO), files a core names that are not regular files are not
opened for reading, and mutated symbol tables are read without an exception.
Limits are documented in docs/robustness.md."""

import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import corefile
from corefile import core as corecore
from corefile.arch import x86_64
from corefile.elf import ElfImage, Section, SHF_COMPRESSED

ROOT = Path(__file__).resolve().parent.parent


def note(name, ntype, desc):
    name = name + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def prstatus(tid, rip=0x401000, rsp=0x7ffc0000):
    desc = bytearray(x86_64.PRSTATUS_SIZE)
    struct.pack_into("<i", desc, x86_64.PRSTATUS_PID, tid)
    regs = dict.fromkeys(x86_64.USER_REGS, 0)
    regs.update(rip=rip, rsp=rsp)
    struct.pack_into(f"<{len(regs)}Q", desc, x86_64.PRSTATUS_REG,
                     *(regs[r] for r in x86_64.USER_REGS))
    return note(b"CORE", corecore.NT_PRSTATUS, bytes(desc))


def write_core(path, notes_size, loads=(), write_notes=None):
    """An x86_64 ELF core: one PT_NOTE of notes_size bytes at offset 0x1000 (filled by
    write_notes(f) or left sparse, i.e. zero notes), then PT_LOADs (vaddr, filesz, memsz)
    whose contents are past the end of the file unless the file is that long."""
    phnum = 1 + len(loads)
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    ehdr[6] = 1
    struct.pack_into("<HHIQQQIHHHHHH", ehdr, 16, corecore.ET_CORE, x86_64.E_MACHINE, 1,
                     0, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", corecore.PT_NOTE, 0, 0x1000, 0, 0, notes_size, 0, 4)
    off = 0x1000 + notes_size
    for vaddr, filesz, memsz in loads:
        phdrs += struct.pack("<IIQQQQQQ", corecore.PT_LOAD, 6, off, vaddr, 0, filesz, memsz,
                             0x1000)
        off += filesz
    with open(path, "wb") as f:
        f.write(ehdr + phdrs)
        f.seek(0x1000)
        if write_notes:
            write_notes(f)
        f.truncate(0x1000 + notes_size)
    return path


def open_in_child(path, code="", limit=2 << 30, timeout=60):
    """Open the core in a fresh python under an address-space limit: (stdout, maxrss MiB)."""
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        sys.path.insert(0, {str(ROOT)!r})
        import corefile
        prog = corefile.open({str(path)!r})
        {code}
        print(len(prog.threads), prog.partial_reasons)
        # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's (pytest's) peak
        print(next(int(l.split()[1]) for l in open("/proc/self/status")
                   if l.startswith("VmHWM:")) // 1024)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    out, rss = r.stdout.strip().rsplit("\n", 1)
    return out, int(rss)


def test_terabyte_segments(tmp_path):
    """PT_LOADs claiming terabytes of contents the file does not have: the core opens,
    says it is truncated, and reads there fault; nothing is allocated for them."""
    path = write_core(tmp_path / "core", 1024, loads=[(0x10000, 1 << 40, 1 << 40),
                                                      ((1 << 46), 1 << 44, 1 << 45)],
                      write_notes=lambda f: f.write(prstatus(7)))
    out, rss = open_in_child(path, code="""
        from corefile import FaultError
        for addr in (0x10000, 0x10000 + (1 << 39), 1 << 46):
            try:
                prog.read(addr, 1 << 20)
                raise SystemExit("read succeeded")
            except FaultError:
                pass
        for t in prog.threads:
            prog.unwind(t.registers)
    """)
    assert out.startswith("1 ") and "core truncated" in out
    assert rss < 200


def test_billions_of_notes(tmp_path):
    """A PT_NOTE of 12 GB of zeros (a billion empty notes, sparse on disk) after one
    thread: notes are read up to MAX_NOTES, the core is partial, memory stays small."""
    path = write_core(tmp_path / "core", 12 << 30, write_notes=lambda f: f.write(prstatus(7)))
    out, rss = open_in_child(path, limit=64 << 30)   # the core is mmap'ed: address space
    assert out.startswith("1 ") and f"more than {corecore.MAX_NOTES} notes" in out
    assert rss < 200


def test_million_threads(tmp_path):
    """10^6 NT_PRSTATUS notes: MAX_THREADS threads are read, the rest reported."""
    one = prstatus(7)
    count = 10 ** 6

    def write(f):
        block = one * 10000
        for _ in range(count // 10000):
            f.write(block)
    path = write_core(tmp_path / "core", len(one) * count, write_notes=write)
    out, rss = open_in_child(path)
    assert out.startswith(f"{corecore.MAX_THREADS} ")
    assert f"more than {corecore.MAX_THREADS} threads" in out
    assert rss < 1024


def test_compressed_section_bomb():
    """A compressed section inflates to at most what its header claims, and not at all
    when it claims more than deflate can hold (1032:1)."""
    payload = zlib.compress(b"\0" * (64 << 20), 9)   # 64 MiB of zeros, ~64 KiB packed

    def contents(ch_size):
        data = struct.pack("<IIQQ", 1, 0, ch_size, 1) + payload
        fake = type("Image", (), {"data": data})()
        return ElfImage._contents(fake, Section("x", 1, SHF_COMPRESSED, 0, 0, len(data), 0))
    assert len(contents(4096)) == 4096
    assert contents(1 << 40) is None
    assert contents(0) == b""


def test_fifo_named_by_the_core_is_not_opened(synthetic, tmp_path):
    """Under a sysroot where every file the core maps is a FIFO, opening the core does
    not block on them: those modules are missing (partial), nothing hangs."""
    with corefile.open(synthetic["kernel_core"], exe=synthetic["exe"]) as prog:
        paths = {m.path for m in prog.mappings}
    root = tmp_path / "root"
    for p in paths:
        host = root / p.lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(host)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import corefile
        prog = corefile.open({synthetic['kernel_core']!r}, sysroot={str(root)!r})
        for t in prog.threads:
            prog.unwind(t.registers)
        print(prog.exe is None, len(prog.partial_reasons) > 0)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]


def test_symbol_names_without_terminator(synthetic, tmp_path):
    """A .strtab whose last name lost its NUL, a .symtab cut mid-entry: symbols still read."""
    data = bytearray(Path(synthetic["exe"]).read_bytes())
    img = ElfImage(synthetic["exe"])
    strtab, symtab = img.sections[".strtab"], img.sections[".symtab"]
    want = {s.name for s in img.symbols()}
    data[strtab.offset + strtab.size - 1] = ord("x")
    shdr = img_shdr_offset(data, ".symtab")
    struct.pack_into("<Q", data, shdr + 32, symtab.size - 5)
    bad = tmp_path / "exe"
    bad.write_bytes(data)
    got = {s.name for s in ElfImage(str(bad)).symbols()}
    assert got and len(want - got) <= 2


def img_shdr_offset(data, name):
    """File offset of the section header of `name`."""
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
    str_off, = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 24)
    for i in range(shnum):
        base = shoff + i * shentsize
        n, = struct.unpack_from("<I", data, base)
        if bytes(data[str_off + n:str_off + n + len(name) + 1]) == name.encode() + b"\0":
            return base
    raise KeyError(name)
