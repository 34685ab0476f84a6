#!/usr/bin/env python3
"""Fuzz corefile and `qemu-coredump report` with mutated fixture cores and binaries.

    python3 tests/fuzz/fuzz_core.py -n 10000 --seed 1 --jobs 2 --out /tmp/fuzz-run

Each input is a recipe: a seed (a fixture core and its executable) and a list of
structural mutations (ELF header fields, program headers, note headers and contents,
segment contents, truncation; or, in a copy of the executable, DWARF section bytes and
section headers). Recipes are JSON and name places by structure (phdr 3, note 5, section
.debug_info), so a once-failing input is kept as a few lines in tests/fuzz/corpus/ and
replayed against freshly made fixtures (tests/test_fuzz_corpus.py).

The mutated files live in a scratch directory (tmpfs when there is one); the fixture cores
and binaries are only read. Each input runs in a forked child under a 10 s alarm and an
address-space limit: corefile.open, every thread's backtrace, a few type and variable
lookups and symbolize, then the CLI's `report` in-process (click's runner). Outcome:
  success   everything read
  partial   read, with partial reasons or items marked unreadable (CLI exit 1)
  error     a documented error: corefile.CorefileError, qemugdb TargetError, CLI exit 2
  failure   any other exception, a hang (> 10 s), a memory blowup, a dead child
The run writes results.jsonl and failures/*.json (recipes) into --out and prints a summary.
"""

import argparse
import json
import os
import random
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "fixtures", ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

BUDGET = 10           # seconds of CPU time per input
WALL_FACTOR = 6       # ... and of wall time, times this (a child blocked, not computing)
MEMORY_LIMIT = 6 << 30  # address space a child may add (cores are mmap'ed) to what it inherits
HEAD = 1 << 20          # bytes of a core mutate() looks at (headers and notes)
TYPES = ("struct Coroutine", "BlockDriverState", "AioContext", "int", "char")
VARIABLES = ("all_bdrv_states", "qemu_aio_context", "main_loop_tlg")
SMALL_SEEDS = ("crash-assert-kernel", "crash-segv-kernel", "synthetic-kernel", "synthetic-gcore")
QSD_SEEDS = ("qsd-10.0-kernel", "qsd-7.2-kernel")

EHDR_FIELDS = {"e_type": (16, "H"), "e_machine": (18, "H"), "e_phoff": (32, "Q"),
               "e_shoff": (40, "Q"), "e_phentsize": (54, "H"), "e_phnum": (56, "H"),
               "ei_class": (4, "B"), "ei_data": (5, "B")}
PHDR_FIELDS = {"p_type": (0, "I"), "p_flags": (4, "I"), "p_offset": (8, "Q"),
               "p_vaddr": (16, "Q"), "p_filesz": (32, "Q"), "p_memsz": (40, "Q")}
NOTE_FIELDS = {"namesz": (0, "I"), "descsz": (4, "I"), "type": (8, "I")}
SHDR_FIELDS = {"sh_type": (4, "I"), "sh_flags": (8, "Q"), "sh_offset": (24, "Q"),
               "sh_size": (32, "Q"), "sh_link": (40, "I")}
DWARF_SECTIONS = (".debug_info", ".debug_abbrev", ".debug_line", ".debug_str",
                  ".debug_line_str", ".debug_aranges", ".debug_rnglists", ".debug_loclists",
                  ".debug_str_offsets", ".debug_addr", ".eh_frame", ".eh_frame_hdr",
                  ".symtab", ".strtab")


class RecipeError(Exception):
    """A recipe names a place its seed does not have."""


# -- the structure of an ELF file, to resolve recipes -----------------------------------

@dataclass
class Layout:
    phoff: int
    phentsize: int
    phdrs: list     # (p_type, p_flags, p_offset, p_filesz) per program header
    notes: list     # file offset of each note header (all PT_NOTE segments)
    sections: dict  # name -> (shdr offset, sh_offset, sh_size)
    loads: list = field(default_factory=list)   # (p_vaddr, p_offset, p_filesz) of PT_LOADs

    def file_offset(self, vaddr, size=1):
        """The core's file offset of virtual address vaddr (size bytes held in the file)."""
        for p_vaddr, p_offset, p_filesz in self.loads:
            if p_vaddr <= vaddr and vaddr + size <= p_vaddr + p_filesz:
                return p_offset + vaddr - p_vaddr
        raise RecipeError(f"{vaddr:#x} is not in the core's file")


def layout(data) -> Layout:
    phoff, = struct.unpack_from("<Q", data, 32)
    shoff, = struct.unpack_from("<Q", data, 40)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 54)
    phdrs, notes, loads = [], [], []
    for i in range(phnum):
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        phdrs.append((p_type, p_flags, p_offset, p_filesz))
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        if p_type == 4:
            off, end = p_offset, min(p_offset + p_filesz, len(data))
            while off + 12 <= end:
                namesz, descsz = struct.unpack_from("<II", data, off)
                notes.append(off)
                off += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    sections = {}   # none when the headers lie past `data` (a gcore's, in its first MiB)
    if shoff and shnum and shstrndx < shnum and shoff + shnum * shentsize <= len(data):
        _, _, _, _, str_off = struct.unpack_from("<IIQQQ", data, shoff + shstrndx * shentsize)
        for i in range(shnum):
            base = shoff + i * shentsize
            name_off, = struct.unpack_from("<I", data, base)
            sh_offset, sh_size = struct.unpack_from("<QQ", data, base + 24)
            name = bytes(data[str_off + name_off:str_off + name_off + 64]).split(b"\0")[0]
            sections[name.decode("latin-1")] = (base, sh_offset, sh_size)
    return Layout(phoff, phentsize, phdrs, notes, sections, loads)


def _field(fields, name, base):
    off, fmt = fields[name]
    return base + off, fmt


def resolve(op: dict, data, lay: Layout):
    """(offset, bytes) patches, or ("truncate", size), of one recipe operation."""
    kind = op["op"]
    if kind == "truncate":
        if "segment" in op:
            loads = [p for p in lay.phdrs if p[0] == 1]
            if op["segment"] >= len(loads):
                raise RecipeError(f"no PT_LOAD {op['segment']}")
            _, _, off, filesz = loads[op["segment"]]
            return ("truncate", off + int(filesz * op.get("fraction", 0.5)))
        if "note" in op:
            return ("truncate", _note(lay, op["note"]) + op.get("at", 0))
        return ("truncate", int(len(data) * op["fraction"]))
    if kind == "ehdr":
        off, fmt = EHDR_FIELDS[op["field"]]
        return [(off, _pack(fmt, op["value"]))]
    if kind == "phdr":
        if op["index"] >= len(lay.phdrs):
            raise RecipeError(f"no program header {op['index']}")
        off, fmt = _field(PHDR_FIELDS, op["field"], lay.phoff + op["index"] * lay.phentsize)
        return [(off, _pack(fmt, op["value"]))]
    if kind == "note":
        off, fmt = _field(NOTE_FIELDS, op["field"],
                          _note(lay, op.get("index"), data, op.get("ntype")))
        return [(off, _pack(fmt, op["value"]))]
    if kind == "note_desc":
        base = _note(lay, op.get("index"), data, op.get("ntype"))
        namesz, descsz = struct.unpack_from("<II", data, base)
        desc = base + 12 + ((namesz + 3) & ~3)
        return [(desc + op["at"] % max(descsz, 1), bytes.fromhex(op["bytes"]))]
    if kind == "nt_file_name":   # a byte of the file name of NT_FILE mapping `index`
        base = _note(lay, None, data, 0x46494C45)
        namesz, = struct.unpack_from("<I", data, base)
        desc = base + 12 + ((namesz + 3) & ~3)
        count, = struct.unpack_from("<Q", data, desc)
        pos = desc + 16 + 24 * count
        for _ in range(op["index"] % max(count, 1)):
            pos = data.find(b"\0", pos) + 1
        return [(pos + op["at"], bytes.fromhex(op["bytes"]))]
    if kind == "segment":
        loads = [p for p in lay.phdrs if p[0] == 1 and p[3]]
        if op["segment"] >= len(loads):
            raise RecipeError(f"no PT_LOAD with contents {op['segment']}")
        _, _, off, filesz = loads[op["segment"]]
        return [(off + op["at"] % filesz, bytes.fromhex(op["bytes"]))]
    if kind == "section":
        if op["name"] not in lay.sections:
            raise RecipeError(f"no section {op['name']}")
        _, sh_offset, sh_size = lay.sections[op["name"]]
        return [(sh_offset + op["at"] % max(sh_size, 1), bytes.fromhex(op["bytes"]))]
    if kind == "shdr":
        if op["name"] not in lay.sections:
            raise RecipeError(f"no section {op['name']}")
        off, fmt = _field(SHDR_FIELDS, op["field"], lay.sections[op["name"]][0])
        return [(off, _pack(fmt, op["value"]))]
    raise RecipeError(f"unknown operation {kind!r}")


def sparse_copy(src, dst):
    """Copy src to dst keeping its holes (a 300 MB gcore holds a few MB of data)."""
    with open(src, "rb") as f, open(dst, "wb") as g:
        fd, size, off = f.fileno(), os.fstat(f.fileno()).st_size, 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:   # ENXIO: only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            f.seek(start)
            g.seek(start)
            while start < end:
                chunk = f.read(min(end - start, 1 << 20))
                if not chunk:
                    break
                g.write(chunk)
                start += len(chunk)
            off = end
        g.truncate(size)


def _resolve_object(op, data, lay, objects):
    """The patch of an "object" operation (qemu_objects), in the core's file offsets."""
    from fuzz import qemu_objects
    if objects is None:
        raise RecipeError("an object operation needs the seed's objects")

    def read(vaddr, size):
        off = lay.file_offset(vaddr, size)
        return bytes(data[off:off + size])
    try:
        vaddr, b = qemu_objects.resolve(op, objects, read)
    except qemu_objects.NotFound as e:
        raise RecipeError(str(e)) from None
    return [(lay.file_offset(vaddr, len(b)), b)]


def _note(lay, index, data=None, ntype=None):
    """File offset of note `index`, or of the first note of type `ntype`."""
    if ntype is not None:
        for off in lay.notes:
            if struct.unpack_from("<I", data, off + 8)[0] == ntype:
                return off
        raise RecipeError(f"no note of type {ntype:#x}")
    if index >= len(lay.notes):
        raise RecipeError(f"no note {index}")
    return lay.notes[index]


def _pack(fmt, value):
    return struct.pack("<" + fmt, value & ((1 << (8 * struct.calcsize(fmt))) - 1))


def materialize(recipe: dict, target: str, seed_path: str, path: Path, objects=None):
    """Write the seed file with the recipe's operations on `target` ("core", "exe", or a
    separate debug file: "debug", "dwz") applied to path (a copy: the seed is only read).
    objects (qemu_objects.SeedObjects of the seed) resolves "object" operations."""
    import mmap
    ops = [op for op in recipe["ops"] if op.get("target", "core") == target
           and op["op"] not in ("compress", "cache")]
    sparse_copy(seed_path, path)
    if not ops:
        return
    with open(path, "r+b") as f:
        data = mmap.mmap(f.fileno(), 0)
        try:
            lay = layout(data)
            cut = None
            for op in ops:
                try:   # earlier operations may have broken what this one names
                    r = resolve(op, data, lay) if op["op"] != "object" else \
                        _resolve_object(op, data, lay, objects)
                except (struct.error, IndexError, ValueError) as e:
                    raise RecipeError(f"{op['op']}: {e}") from None
                if isinstance(r, tuple):
                    cut = r[1] if cut is None else min(cut, r[1])
                    continue
                for off, b in r:
                    if 0 <= off < len(data):
                        b = b[:len(data) - off]
                        data[off:off + len(b)] = b
        finally:
            data.close()
        if cut is not None:
            f.truncate(max(cut, 0))


# -- seeds ------------------------------------------------------------------------------

@dataclass
class Seed:
    name: str
    core: str
    exe: str
    debug_dir: str | None = None   # separate debug info (the distribution-shaped cores)


def seeds(names, scratch: Path) -> dict:
    """Seed name -> Seed: fixture cores by corelist name, synthetic-kernel/-gcore built
    from fixtures/synthetic into scratch."""
    import corelist
    out = {}
    synthetic = None
    for name in names:
        if name.startswith("synthetic-"):
            if synthetic is None:
                synthetic = build_synthetic(scratch / "synthetic")
            kind = name.split("-", 1)[1]
            out[name] = Seed(name, synthetic["kernel_core" if kind == "kernel" else "gcore"],
                             synthetic["exe"])
        else:
            meta = corelist.core(name)
            out[name] = Seed(name, meta["core"], meta["exe"], meta.get("debug_dir"))
    return out


def build_synthetic(outdir: Path) -> dict:
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "synthetic_build", ROOT / "fixtures" / "synthetic" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build(outdir)


# -- the files of one input ------------------------------------------------------------

COMPRESSORS = {"zstd": ["zstd", "-q", "-1", "-c"], "xz": ["xz", "-0", "-T1", "-c"],
               "lz4": ["lz4", "-q", "-1", "-c"], "gzip": ["gzip", "-1", "-c"]}
COMPRESS_MAX = 128 << 20   # larger cores (sparse gcores) cost seconds to compress
CACHE_ACTIONS = ("truncate", "empty", "corrupt", "foreign", "old-format", "symlink-zero",
                 "symlink-fifo", "symlink-dir", "symlink-dangling", "symlink-loop",
                 "two-writers")


@dataclass
class Inputs:
    """What one recipe runs on (prepare()): the core (maybe compressed), the executable,
    the debug directories and the cache home (XDG_CACHE_HOME). two_writers: run a second
    reader at the same time on the same, initially empty, cache."""
    core: str
    exe: str
    debug_dirs: list
    cache_home: str
    two_writers: bool = False


def prepare(recipe: dict, seed: Seed, workdir: Path, cache_home: str, objects=None) -> Inputs:
    """Make the files of recipe in workdir (emptied first): the mutated core (ELF and
    QEMU-object operations, then "compress"), the mutated executable, a copy of the seed's
    debug directory with its separate debug file or dwz file mutated, and a private cache
    for anything whose build-id stays but whose bytes differ, or that "cache" operations
    damage (a copy of cache_home, the warm shared cache, which is never touched)."""
    workdir = Path(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    ops = recipe["ops"]
    targets = {op.get("target", "core") for op in ops}
    core = workdir / "core"
    materialize(recipe, "core", seed.core, core, objects)
    exe, private = seed.exe, False
    if "exe" in targets:
        materialize(recipe, "exe", seed.exe, workdir / "exe")
        exe, private = str(workdir / "exe"), True
    debug_dirs = [seed.debug_dir] if seed.debug_dir else []
    if targets & {"debug", "dwz"}:
        debug_dirs, private = [str(mirror_debug_dir(recipe, seed, workdir / "debug"))], True
    for op in ops:
        if op["op"] == "compress":
            core = compress(core, op)
    cache_ops = [op for op in ops if op["op"] == "cache"]
    two_writers = any(op["action"] == "two-writers" for op in cache_ops)
    if cache_ops and not two_writers:
        private_home = workdir / "cache"
        shutil.copytree(cache_home, private_home, symlinks=True)
        for op in cache_ops:
            damage_cache(op, private_home / "qemugdb", seed)
        cache_home = str(private_home)
    elif private or two_writers:
        cache_home = str(workdir / "cache")
        os.mkdir(cache_home)
    return Inputs(str(core), exe, debug_dirs, cache_home, two_writers)


def debug_files(seed: Seed) -> dict:
    """{"debug": the executable's separate debug file, "dwz": the dwz file its DWARF
    refers to} as found in seed.debug_dir (either may be missing)."""
    from corefile.elf import ElfImage, find_alt_file, find_debug_file, parse_altlink
    out = {}
    if not seed.debug_dir:
        return out
    img = ElfImage(seed.exe)
    try:
        debug = find_debug_file(img, [seed.debug_dir])
    finally:
        img.close()
    if debug is None:
        return out
    out["debug"] = debug
    dbg = ElfImage(debug)
    try:
        link = parse_altlink(dbg.section_data(".gnu_debugaltlink"),
                             dbg.section_data(".debug_sup"))
    finally:
        dbg.close()
    if link:
        alt = find_alt_file(link[0], link[1], debug, [seed.debug_dir])
        if alt:
            out["dwz"] = alt
    return out


def section_layouts(paths: dict) -> dict:
    """{role: (Layout, size)} of the ELF files {role: path}, read through a mapping."""
    from corefile.elf import ElfImage
    out = {}
    for role, path in paths.items():
        img = ElfImage(path)
        try:
            out[role] = (layout(img.data), len(img.data))
        finally:
            img.close()
    return out


def mirror_debug_dir(recipe: dict, seed: Seed, dest: Path) -> Path:
    """A copy of seed.debug_dir made of symlinks to its files, except the debug or dwz
    file the recipe mutates (a real, mutated file in its place, under every name)."""
    files = debug_files(seed)
    mutated = {}
    for role in ("debug", "dwz"):
        if any(op.get("target") == role for op in recipe["ops"]):
            if role not in files:
                raise RecipeError(f"the seed has no {role} file")
            dest.parent.mkdir(parents=True, exist_ok=True)
            path = dest.parent / f"mutated.{role}"
            materialize(recipe, role, files[role], path)
            mutated[os.path.realpath(files[role])] = path
    src = Path(seed.debug_dir)
    for dirpath, dirnames, filenames in os.walk(src):
        out = dest / Path(dirpath).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            real = os.path.realpath(os.path.join(dirpath, name))
            if real in mutated:
                os.link(mutated[real], out / name)
            else:
                os.symlink(real, out / name)
    return dest


def compress(core: Path, op: dict) -> Path:
    """core compressed with op["method"] (a systemd-coredump-style compressed core), then
    op["damage"]: {"truncate": fraction} or {"at": fraction, "bytes": hex} or None."""
    import subprocess
    out = core.with_name(f"core.{op['method']}")
    with open(core, "rb") as src, open(out, "wb") as dst:
        subprocess.run(COMPRESSORS[op["method"]], stdin=src, stdout=dst, check=True)
    core.unlink()
    damage = op.get("damage")
    if damage:
        size = out.stat().st_size
        with open(out, "r+b") as f:
            if "truncate" in damage:
                f.truncate(int(size * damage["truncate"]))
            else:
                f.seek(min(int(size * damage["at"]), max(size - 1, 0)))
                f.write(bytes.fromhex(damage["bytes"]))
    return out


def cache_entries(cache_dir: Path, build_ids) -> list:
    """The cache's files (paths relative to cache_dir, sorted) of these build-ids (hex)."""
    out = []
    for path in sorted(Path(cache_dir).rglob("*")):
        rel = str(path.relative_to(cache_dir))
        if path.is_file() and any(b in rel for b in build_ids):
            out.append(rel)
    return out


def _entry_pattern(rel: str) -> str:
    """A cache entry's path with build-ids (40 hex digits) and per-unit keys (hex file
    names) as *: structural, so a recipe names the same entry of a rebuilt seed (its "n"
    picks one of the matches)."""
    import re
    return re.sub(r"/[0-9a-f]+$", "/*", re.sub(r"[0-9a-f]{40}", "*", rel))


def damage_cache(op: dict, cache_dir: Path, seed: Seed):
    """Apply a "cache" operation to the private cache: op["entry"] a pattern (build-ids as
    *), op["n"] which match (modulo), op["action"] one of CACHE_ACTIONS."""
    import fnmatch
    import marshal
    entries = [e for e in cache_entries(cache_dir, seed_build_ids(seed))
               if fnmatch.fnmatch(e, op["entry"])]
    if not entries:
        raise RecipeError(f"no cache entry {op['entry']}")
    path = cache_dir / entries[op.get("n", 0) % len(entries)]
    action = op["action"]
    data = path.read_bytes()
    if action in ("truncate", "empty"):
        path.write_bytes(data[:int(len(data) * op.get("fraction", 0.5))] if action == "truncate" else b"")
    elif action == "corrupt":
        at = int(len(data) * op.get("at", 0.5))
        path.write_bytes(data[:at] + bytes.fromhex(op["bytes"]) + data[at + len(op["bytes"]) // 2:])
    elif action == "foreign":   # the same kind of entry of another build-id (version)
        others = [e for e in cache_entries(cache_dir, [""])
                  if fnmatch.fnmatch(e, op["entry"]) and cache_dir / e != path
                  and e not in entries]
        if not others:
            raise RecipeError(f"no other build-id's {op['entry']} in the cache")
        shutil.copyfile(cache_dir / others[op.get("n", 0) % len(others)], path)
    elif action == "old-format":
        path.write_bytes(marshal.dumps((0, "qemugdb cache of another version", [1, 2])))
    else:
        path.unlink()
        if action == "symlink-zero":
            os.symlink("/dev/zero", path)
        elif action == "symlink-fifo":
            os.mkfifo(path.with_name(path.name + ".fifo"))
            os.symlink(path.name + ".fifo", path)
        elif action == "symlink-dir":
            os.symlink("/", path)
        elif action == "symlink-dangling":
            os.symlink("/nonexistent/qemugdb-cache-entry", path)
        elif action == "symlink-loop":
            os.symlink(path.name, path)
        else:
            raise RecipeError(f"unknown cache action {action}")


_BUILD_IDS = {}


def seed_build_ids(seed: Seed) -> list:
    """Hex build-ids of the seed's executable and its debug and dwz files."""
    if seed.name not in _BUILD_IDS:
        from corefile.elf import ElfImage
        ids = []
        for path in [seed.exe, *debug_files(seed).values()]:
            img = ElfImage(path)
            bid = img.build_id
            img.close()
            if bid:
                ids.append(bid.hex())
        _BUILD_IDS[seed.name] = ids
    return _BUILD_IDS[seed.name]


def core_view(path):
    """The core mapped read-only, for mutate() and layout(): its headers, notes and section
    headers wherever they lie (gdb's gcore writes its notes at the end)."""
    import mmap
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)


# -- random recipes ---------------------------------------------------------------------

@dataclass
class SeedInfo:
    """What random_recipe() needs of a seed, read once: the core (its first MiB, or all of
    it mapped: core_view()), the executable's section layout and size, its QEMU objects
    (qemu_objects.SeedObjects or None), the section layouts of its separate debug and
    dwz files, and the cache entries its unmutated runs wrote (patterns)."""
    seed: Seed
    head: bytes
    exe_layout: tuple | None = None   # (Layout, size)
    objects: object = None
    debug_layouts: dict = field(default_factory=dict)   # role -> Layout
    cache_patterns: list = field(default_factory=list)


FAMILIES = {"elf": 0.22, "object": 0.45, "dwarf": 0.07, "debug": 0.07, "compress": 0.08,
            "cache": 0.11}
# A mutated executable is indexed afresh: under a second for qemu-storage-daemon (12-14 MB),
# 4-5 s for qemu-system-x86_64 (77 MB), so an executable over BIG_EXE has its DWARF
# mutated at the weight DWARF_BIG instead.
BIG_EXE, DWARF_BIG = 64 << 20, 0.01


def random_recipe(rng, info: SeedInfo, family: str | None = None) -> dict:
    """A random recipe for the seed: family "elf" (headers, notes, segment bytes,
    truncation: mutate()), "object" (1-3 QEMU object members), "dwarf" (the executable's
    sections), "debug" (the separate debug file's or dwz file's sections), "compress" (a
    core mutated by elf or object operations, compressed, maybe damaged) or "cache" (the
    warm cache damaged, or two writers on an empty one). Families the seed cannot take
    fall back to "elf"."""
    possible = {f for f in FAMILIES
                if not (f == "object" and not (info.objects and info.objects.kinds()))
                and not (f == "dwarf" and info.exe_layout is None)
                and not (f == "debug" and not info.debug_layouts)
                and not (f == "cache" and not info.cache_patterns)
                and not (f == "compress" and os.path.getsize(info.seed.core) > COMPRESS_MAX)}
    if family is None:
        fams = sorted(possible)
        big = info.exe_layout is not None and info.exe_layout[1] > BIG_EXE
        family = rng.choices(fams, [DWARF_BIG if f == "dwarf" and big else FAMILIES[f]
                                    for f in fams])[0]
    elif family not in possible:
        family = "elf"
    name = info.seed.name
    if family == "dwarf":
        return mutate_sections(rng, name, "exe", *info.exe_layout)
    if family == "debug":
        role = rng.choice(sorted(info.debug_layouts))
        lay, size = info.debug_layouts[role]
        return mutate_sections(rng, name, role, lay, size)
    if family == "object":
        from fuzz import qemu_objects
        return {"seed": name, "ops": [qemu_objects.random_op(rng, info.objects)
                                      for _ in range(rng.choice([1, 1, 1, 2, 3]))]}
    if family == "compress":
        inner = random_recipe(rng, info, rng.choice(["elf", "object"]))
        method = rng.choice(sorted(COMPRESSORS))
        damage = rng.choice([None, None, {"truncate": round(rng.random(), 3)},
                             {"at": round(rng.random(), 3), "bytes": rng.randbytes(rng.choice([1, 4, 16])).hex()}])
        ops = [op for op in inner["ops"] if op.get("target", "core") == "core"]
        if rng.random() < 0.3:
            ops = []
        return {"seed": name, "ops": ops + [{"op": "compress", "method": method, "damage": damage}]}
    if family == "cache":
        action = rng.choice(CACHE_ACTIONS)
        op = {"op": "cache", "action": action, "entry": rng.choice(info.cache_patterns),
              "n": rng.randrange(64)}
        if action in ("truncate",):
            op["fraction"] = round(rng.random(), 3)
        elif action == "corrupt":
            op.update(at=round(rng.random(), 3), bytes=rng.randbytes(rng.choice([1, 8, 64])).hex())
        return {"seed": name, "ops": [op]}
    return mutate(rng, name, info.head, None)


def mutate_sections(rng, seed_name, target, lay, size) -> dict:
    """1-4 operations on the DWARF/CFI/symbol sections of an ELF file (target "exe",
    "debug" or "dwz"): section bytes, or a section header field."""
    names = [n for n in DWARF_SECTIONS + (".gnu_debugaltlink", ".debug_sup")
             if n in lay.sections]
    if not names:
        raise RecipeError(f"no DWARF sections in the seed's {target}")
    ops = []
    for _ in range(rng.randint(1, 4)):
        name = rng.choice(names)
        if rng.random() < 0.25:
            field_ = rng.choice(["sh_size", "sh_offset", "sh_type", "sh_flags"])
            _, sh_offset, sh_size = lay.sections[name]
            orig = sh_size if field_ == "sh_size" else sh_offset
            ops.append({"op": "shdr", "target": target, "name": name, "field": field_,
                        "value": interesting(rng, orig, size)})
        else:
            ops.append({"op": "section", "target": target, "name": name,
                        "at": rng.getrandbits(32),
                        "bytes": rng.randbytes(rng.choice([1, 1, 2, 4, 8, 16])).hex()})
    return {"seed": seed_name, "ops": ops}


# -- mutations --------------------------------------------------------------------------

def interesting(rng, orig=None, size=None):
    values = [0, 1, 2, 7, 0x38, 0x40, 0xff, 0x1000, 0x7fffffff, 0x80000000, 0xffffffff,
              1 << 32, 1 << 40, 1 << 63, (1 << 64) - 1, (1 << 64) - 8, rng.getrandbits(64)]
    if orig is not None:
        values += [orig + 1, orig - 1, orig * 2, orig // 2, orig + 0x1000, orig ^ (1 << rng.randrange(64))]
    if size is not None:
        values += [size, size - 1, size + 1, rng.randrange(max(size, 1))]
    return rng.choice(values)


def mutate(rng, seed_name: str, core: bytes, exe: bytes | None) -> dict:
    """A random recipe of 1-4 operations on the core (and sometimes the exe's DWARF)."""
    lay = layout(core)
    loads = [i for i, p in enumerate(p for p in lay.phdrs if p[0] == 1 and p[3])]
    writable = [i for i, p in enumerate(p for p in lay.phdrs if p[0] == 1 and p[3]) if p[1] & 2]
    ops = []
    if exe is not None and rng.random() < 0.2:
        xlay = layout(exe)
        names = [n for n in DWARF_SECTIONS if n in xlay.sections]
        for _ in range(rng.randint(1, 4)):
            name = rng.choice(names)
            if rng.random() < 0.25:
                field = rng.choice(["sh_size", "sh_offset", "sh_type", "sh_flags"])
                _, sh_offset, sh_size = xlay.sections[name]
                orig = sh_size if field == "sh_size" else sh_offset
                ops.append({"op": "shdr", "target": "exe", "name": name, "field": field,
                            "value": interesting(rng, orig, len(exe))})
            else:
                n = rng.choice([1, 1, 2, 4, 8, 16])
                ops.append({"op": "section", "target": "exe", "name": name,
                            "at": rng.getrandbits(32), "bytes": rng.randbytes(n).hex()})
        return {"seed": seed_name, "ops": ops}
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
        r = rng.random()
        if r < 0.06:
            field = rng.choice(list(EHDR_FIELDS))
            ops.append({"op": "ehdr", "field": field, "value": interesting(rng, None, len(core))})
        elif r < 0.22:
            field = rng.choice(list(PHDR_FIELDS))
            i = rng.randrange(len(lay.phdrs))
            ops.append({"op": "phdr", "index": i, "field": field,
                        "value": interesting(rng, None, len(core))})
        elif r < 0.34:
            ops.append({"op": "note", "index": rng.randrange(len(lay.notes)),
                        "field": rng.choice(list(NOTE_FIELDS)), "value": interesting(rng)})
        elif r < 0.45:
            n = rng.choice([1, 2, 4, 8, 8, 16])
            ops.append({"op": "note_desc", "index": rng.randrange(len(lay.notes)),
                        "at": rng.getrandbits(16), "bytes": rng.randbytes(n).hex()})
        elif r < 0.52:
            ops.append({"op": "nt_file_name", "index": rng.getrandbits(8), "at": rng.randrange(8),
                        "bytes": rng.choice([b"\xd8", b"\x1b[", b"\n", b"<", b"\0"]).hex()})
        elif r < 0.9 and loads:
            # Pointer smashes in writable segments (heap, .data, stacks): where the
            # walkers' lists and the unwinder's saved registers are.
            seg = rng.choice(writable or loads)
            for _ in range(rng.choice([1, 4, 16, 64])):
                value = rng.choice([0, 1, (1 << 64) - 1, rng.getrandbits(64),
                                    rng.getrandbits(47) & ~7, 0xdead0000])
                ops.append({"op": "segment", "segment": seg,
                            "at": rng.getrandbits(32) & ~7,
                            "bytes": struct.pack("<Q", value).hex()})
        else:
            choice = rng.random()
            if choice < 0.4 and loads:
                ops.append({"op": "truncate", "segment": rng.choice(loads),
                            "fraction": round(rng.random(), 3)})
            elif choice < 0.6 and lay.notes:
                ops.append({"op": "truncate", "note": rng.randrange(len(lay.notes)),
                            "at": rng.randrange(64)})
            else:
                ops.append({"op": "truncate", "fraction": round(rng.random(), 4)})
    return {"seed": seed_name, "ops": ops}


# -- running one input ------------------------------------------------------------------

class Hang(Exception):
    pass


def _documented(e):
    import corefile
    from qemugdb.target import TargetError
    return isinstance(e, (corefile.CorefileError, TargetError))


def exercise(core: str, exe: str) -> dict:
    """Run corefile and the CLI's report on one core; the outcome and what happened."""
    import corefile
    from click.testing import CliRunner
    from cli.main import main as cli_main

    result = {"outcome": "success", "steps": []}
    worst = {"success": 0, "partial": 1, "error": 2, "failure": 3}

    def note(outcome, detail=None):
        if worst[outcome] > worst[result["outcome"]]:
            result["outcome"] = outcome
        if detail:
            result["steps"].append(detail)

    def step(name, fn):
        try:
            return fn()
        except Hang:
            raise
        except Exception as e:
            if _documented(e):
                note("partial", f"{name}: {type(e).__name__}: {e}")
            else:
                note("failure", f"{name}: {_where(e)}")
            return None

    try:
        prog = corefile.open(core, exe)
    except Hang:
        raise
    except Exception as e:
        note("error" if _documented(e) else "failure", f"open: {_where(e)}")
        prog = None
    if prog is not None:
        try:
            for t in prog.threads[:16]:
                step(f"backtrace {t.num}", lambda t=t: prog.backtrace(t.registers))
            for name in TYPES:
                step(f"type {name}", lambda n=name: prog.type(n))
            for name in VARIABLES:
                step(f"variable {name}", lambda n=name: prog.variable(n))
            if prog.threads:
                pc = prog.threads[0].registers.get(prog.arch.PC, 0)
                step("symbolize", lambda: prog.symbolize(pc))
            if prog.partial_reasons:
                note("partial")
        finally:
            prog.close()
    run = CliRunner().invoke(cli_main, ["report", core, "-e", exe],
                             env={"QEMUGDB_DEBUG": "1", "NO_COLOR": "1"})
    if isinstance(run.exception, Hang):
        raise run.exception
    if run.exception is not None and not isinstance(run.exception, SystemExit):
        note("failure", f"report: {_where(run.exception, run.exc_info)}")
    elif run.exit_code == 1:
        note("partial")
    elif run.exit_code == 2:
        note("error", f"report: exit 2: {run.stderr.strip()[:200]}")
    elif run.exit_code != 0:
        note("failure", f"report: exit {run.exit_code}")
    return result


def _where(e, exc_info=None):
    """exception type, message and the innermost frame of ours (file:line function)."""
    tb = (exc_info or (type(e), e, e.__traceback__))[2]
    frames = [f for f in traceback.extract_tb(tb) if str(ROOT) in f.filename]
    where = ""
    if frames:
        f = frames[-1]
        where = f" at {os.path.relpath(f.filename, ROOT)}:{f.lineno} {f.name}"
    return f"{type(e).__name__}: {str(e)[:200]}{where}"


def run_child(core: str, exe: str, cache_home: str) -> dict:
    """Fork; the child runs exercise() under the alarm and memory limit."""
    return call_in_child(lambda: exercise(core, exe), cache_home)


def _address_space() -> int:
    """This process's virtual memory size in bytes (VmSize)."""
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) << 10 for ln in f if ln.startswith("VmSize:"))


def call_in_child(fn, cache_home: str, budget: int = BUDGET) -> dict:
    """fn() (returning a JSON-able dict with an "outcome") in a forked child with
    XDG_CACHE_HOME=cache_home and the memory limit, given `budget` s of CPU time (a loop)
    and WALL_FACTOR times that in wall time (a wait; the machine is shared, so wall time
    alone would call a slow input hung); a hang, a MemoryError or a dead child is a
    "failure" outcome."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            os.environ["XDG_CACHE_HOME"] = cache_home
            limit = _address_space() + MEMORY_LIMIT   # the parent's mappings count too
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

            def alarm(*_):
                raise Hang(f"over {budget} s of CPU time")
            signal.signal(signal.SIGPROF, alarm)
            signal.setitimer(signal.ITIMER_PROF, budget)
            try:
                res = fn()
            except Hang as e:
                res = {"outcome": "failure", "steps": [f"hang: {_where(e)}"]}
            except MemoryError as e:
                res = {"outcome": "failure", "steps": [f"memory: {_where(e)}"]}
            signal.setitimer(signal.ITIMER_PROF, 0)
            with os.fdopen(w, "wb") as out:
                out.write(json.dumps(res).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    start = time.monotonic()
    chunks = []
    with os.fdopen(r, "rb") as f:
        while True:
            left = WALL_FACTOR * budget - (time.monotonic() - start)
            ready, _, _ = select.select([f], [], [], max(left, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"outcome": "failure",
                        "steps": [f"hang: killed after {WALL_FACTOR * budget} s"]}
            chunk = os.read(f.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return {"outcome": "failure", "steps": [f"child died (status {status})"]}


def run_recipe(recipe: dict, seed: Seed, workdir: Path, cache_home: str,
               child=True) -> dict:
    """Materialize the recipe's files in workdir and run them."""
    core_path, exe_path = workdir / "core", workdir / "exe"
    materialize(recipe, "core", seed.core, core_path)
    exe_ops = any(op.get("target") == "exe" for op in recipe["ops"])
    if exe_ops:
        materialize(recipe, "exe", seed.exe, exe_path)
        cache_home = tempfile.mkdtemp(dir=workdir)   # DWARF differs, build-id does not
    exe = str(exe_path) if exe_ops else seed.exe
    saved = os.environ.get("XDG_CACHE_HOME")
    try:
        if child:
            return run_child(str(core_path), exe, cache_home)
        os.environ["XDG_CACHE_HOME"] = cache_home
        return exercise(str(core_path), exe)
    finally:
        if not child:
            if saved is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = saved
        if exe_ops:
            shutil.rmtree(cache_home, ignore_errors=True)


def failure_class(res: dict) -> str:
    """A failure's class: exception type and our innermost frame, message dropped."""
    for s in res["steps"]:
        if s.startswith(("hang", "memory", "child")):
            return s.split(":", 1)[0]
        if " at " in s and ("Error" in s or "Exception" in s):
            head = s.split(": ", 2)
            return f"{head[1]}{s[s.rfind(' at '):]}"
    return res["steps"][0] if res["steps"] else "unknown"


# -- main -------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--inputs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1, help="random seed")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--qsd-share", type=float, default=0.05,
                    help="fraction of inputs mutating qemu-storage-daemon cores")
    ap.add_argument("--out", default="fuzz-out")
    ap.add_argument("--seeds", nargs="*", default=list(SMALL_SEEDS + QSD_SEEDS))
    ap.add_argument("--replay", metavar="DIR",
                    help="run the recipes DIR/*.json (e.g. an earlier run's failures/) instead")
    args = ap.parse_args()
    replay = [json.loads(p.read_text()) for p in sorted(Path(args.replay).glob("*.json"))] \
        if args.replay else None
    if replay is not None:
        args.inputs = len(replay)
        args.seeds = sorted({r["seed"] for r in replay})

    preload()
    out = Path(args.out)
    (out / "failures").mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="qemugdb-fuzz-",
                                    dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        all_seeds = seeds(args.seeds, scratch)
        small = [s for s in all_seeds if s not in QSD_SEEDS]
        big = [s for s in all_seeds if s in QSD_SEEDS]
        # What mutate() looks at: the core's headers and notes (its first MiB at most
        # holds them in these cores), the exe whole (small ones only).
        heads = {}
        for name, s in all_seeds.items():
            with open(s.core, "rb") as f:
                heads[s.core] = f.read(HEAD)
            if name in small:
                heads.setdefault(s.exe, Path(s.exe).read_bytes())
        cache_home = str(scratch / "cache")
        # Warm the shared DWARF/symbol cache once per seed (unmutated).
        for name, s in all_seeds.items():
            res = run_recipe({"seed": name, "ops": []}, s, _slot(scratch, 0), cache_home)
            print(f"seed {name}: {res['outcome']} {res['steps'][:2]}", flush=True)
        rng = random.Random(args.seed)
        results = out / "results.jsonl"
        counts, by_seed, classes = Counter(), defaultdict(Counter), defaultdict(list)
        slowest = []
        started = time.monotonic()
        with open(results, "w") as log:
            pending = list(enumerate(replay or []))
            for i in range(args.inputs if replay is None else 0):
                name = rng.choice(big) if big and rng.random() < args.qsd_share else rng.choice(small)
                s = all_seeds[name]
                recipe = mutate(rng, name, heads[s.core], heads.get(s.exe))
                pending.append((i, recipe))
            _run_all(pending, all_seeds, scratch, cache_home, args.jobs, log,
                     counts, by_seed, classes, slowest, out)
        elapsed = time.monotonic() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = {"inputs": args.inputs, "seconds": round(elapsed, 1), "outcomes": dict(counts),
               "by_seed": {k: dict(v) for k, v in by_seed.items()},
               "failure_classes": {k: len(v) for k, v in classes.items()},
               "failure_examples": {k: v[:3] for k, v in classes.items()},
               "slowest": sorted(slowest, reverse=True)[:5],
               "command": " ".join(["python3", *sys.argv])}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


def preload():
    """Import what exercise() uses once, before forking (a child then starts warm)."""
    import click.testing  # noqa: F401
    import corefile.program  # noqa: F401
    import cli.main  # noqa: F401
    import qemugdb.core.target  # noqa: F401


def _slot(scratch, k):
    d = scratch / f"slot{k}"
    d.mkdir(exist_ok=True)
    return d


def _run_all(pending, all_seeds, scratch, cache_home, jobs, log, counts, by_seed,
             classes, slowest, out):
    """Run the recipes, `jobs` at a time (one forked worker process per slot)."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    queue_in, queue_out = ctx.Queue(), ctx.Queue()

    def worker(k):
        slot = _slot(scratch, k)
        while True:
            item = queue_in.get()
            if item is None:
                return
            i, recipe = item
            t0 = time.monotonic()
            try:
                res = run_recipe(recipe, all_seeds[recipe["seed"]], slot, cache_home)
            except RecipeError as e:
                res = {"outcome": "skipped", "steps": [str(e)]}
            except Exception as e:   # a bug of the harness: say so, keep going
                res = {"outcome": "skipped", "steps": [f"harness: {_where(e)}"]}
            res["seconds"] = round(time.monotonic() - t0, 3)
            queue_out.put((i, recipe, res))

    procs = [ctx.Process(target=worker, args=(k,)) for k in range(jobs)]
    for p in procs:
        p.start()
    for item in pending:
        queue_in.put(item)
    for _ in procs:
        queue_in.put(None)
    for n in range(len(pending)):
        i, recipe, res = queue_out.get()
        counts[res["outcome"]] += 1
        by_seed[recipe["seed"]][res["outcome"]] += 1
        slowest.append((res["seconds"], i, recipe["seed"]))
        slowest.sort(reverse=True)
        del slowest[5:]
        if res["outcome"] == "failure":
            cls = failure_class(res)
            classes[cls].append(i)
            (out / "failures" / f"{i:06d}.json").write_text(
                json.dumps({**recipe, "why": res["steps"]}, indent=1))
        log.write(json.dumps({"i": i, "recipe": recipe, **res}) + "\n")
        if (n + 1) % 500 == 0:
            log.flush()
            print(f"{n + 1} inputs: {dict(counts)}", flush=True)
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
