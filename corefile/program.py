"""Program: a core file with its executable and libraries, as one readable process."""

import bisect
import dataclasses
import os
import stat
import struct
from dataclasses import dataclass, field

from . import cache
from .callsites import find_chain
from .elf import (ElfImage, Symbol, SymbolTable, _by_build_id, _debug_dirs, find_alt_file,
                  find_debug_file, merge_symbols)
from .errors import CorefileError, FaultError, MismatchError, MissingDebugInfoError
from .dwarf import DebugInfo
from .unwind import CFIError, CFITable, Unwinder

AT_PHDR, AT_ENTRY, AT_EXECFN, AT_SYSINFO_EHDR = 3, 9, 31, 33


@dataclass
class Location:
    """Where a pc is. function/file/line are the innermost frame (an inlined function
    when pc is inside one), as gdb shows it. inlined is every frame gdb lists at this pc,
    innermost first, as (function, file, line): the inlined functions, then the
    out-of-line function holding them (empty without DWARF)."""
    pc: int
    function: str | None = None
    offset: int | None = None     # from the entry of the function holding pc
    file: str | None = None
    line: int | None = None
    inlined: list = field(default_factory=list)
    module: str | None = None     # the file holding pc as read here (exe: Program.exe_path)


@dataclass
class Frame:
    """A frame: a physical one, or a tail-call frame gdb rebuilds from DWARF call sites
    (tailcall=True; its registers are its caller's). pc is what gdb prints (the return
    address for callers); location was looked up at pc - 1 for callers, as gdb does.
    fallback: found without CFI (frame-pointer chain), may be wrong. signal: the signal
    trampoline ("<signal handler called>")."""
    level: int
    pc: int
    sp: int
    cfa: int | None
    registers: dict
    location: Location
    fallback: bool = False
    signal: bool = False
    tailcall: bool = False


class Module:
    """An ELF file mapped into the process: its bias, symbols, CFI and debug info."""

    def __init__(self, program, name: str, host_path: str, start: int, end: int,
                 image: ElfImage):
        self.program = program
        self.name = name
        self.host_path = host_path
        self.start = start
        self.end = end
        self.image = image
        self.build_id = image.build_id
        self.bias = 0
        self._debug = False
        self._symtab = None
        self._data_symbols = None
        self._cfi = None
        self._dwarf = False
        self.dwarf_problem = None  # why the DWARF cannot be read, when it exists

    def __repr__(self):
        return f"<Module {self.name} 0x{self.start:x}-0x{self.end:x} bias 0x{self.bias:x}>"

    @property
    def debug_image(self) -> ElfImage | None:
        """The separate debug file (by build-id or .gnu_debuglink), else the image
        itself when it has DWARF, else None."""
        if self._debug is False:
            self._debug = None
            prog = self.program
            path = None
            if self.image.path is not None:
                path = find_debug_file(self.image, prog.debug_dirs, prog.sysroot,
                                       prog.debuginfod, self.name)
            if path:
                try:
                    self._debug = ElfImage(path)
                except CorefileError as e:
                    prog.partial_reasons.append(str(e))
            if self._debug is None and self.image.has_dwarf():
                self._debug = self.image
        return self._debug

    @property
    def symtab(self) -> SymbolTable:
        """ELF symbols of the file (MiniDebugInfo's included) and its debug file, cached
        by build-id."""
        if self._symtab is None:
            dbg = self.debug_image
            merged = dbg is not None and dbg is not self.image
            variant = ("+debug" if merged else "") + \
                ("+mini" if self.image.section(".gnu_debugdata") else "")
            path = self.program.cache_path("symbols", self.build_id, variant)
            syms = cache.load(path)
            try:
                syms = None if syms is None else [Symbol._make(s) for s in syms]
            except (TypeError, ValueError):   # an entry of another shape: made again
                syms = None
            if syms is None:
                syms = self.image.symbols()
                if merged:
                    syms = merge_symbols(syms, dbg.symbols())
                cache.store(path, [tuple(s) for s in syms])
            self._symtab = SymbolTable(syms)
        return self._symtab

    @property
    def data_symbols(self) -> tuple:
        """(addresses, ends, names) of the sized data symbols (variables), sorted, unbiased;
        cached by build-id apart from the whole symbol table, which naming an address does
        not need to load."""
        if self._data_symbols is None:
            path = self.program.cache_path("data-symbols", self.build_id)
            found = cache.load(path)
            if not (isinstance(found, tuple) and len(found) == 3 and
                    all(isinstance(x, list) and len(x) == len(found[0]) for x in found)):
                objects = self.symtab.objects
                found = ([s.address for s in objects], [s.address + s.size for s in objects],
                         [s.name for s in objects])
                cache.store(path, found)
            self._data_symbols = found
        return self._data_symbols

    @property
    def cfi(self) -> CFITable:
        if self._cfi is None:
            img = self.image
            eh = img.section(".eh_frame")
            hdr = img.section(".eh_frame_hdr")

            def debug_frame():
                dbg_img = self.debug_image or img
                data = dbg_img.section_data(".debug_frame") or img.section_data(
                    ".debug_frame")
                return (data, 0) if data else None

            self._cfi = CFITable(
                (img.section_data(".eh_frame"), eh.addr) if eh else None,
                (img.section_data(".eh_frame_hdr"), hdr.addr) if hdr else None,
                debug_frame)
        return self._cfi

    @property
    def dwarf(self):
        """corefile.dwarf.DebugInfo of this module, or None without DWARF."""
        if self._dwarf is False:
            self._dwarf = None
            dbg = self.debug_image
            if dbg is not None and dbg.has_dwarf():
                prog = self.program
                link = dbg.debugaltlink()
                alt = None
                if link is not None:
                    alt = find_alt_file(*link, dbg.path, prog.debug_dirs, prog.sysroot,
                                        prog.debuginfod)
                    if alt is None:
                        self.dwarf_problem = (
                            f"the debug info of {self.host_path} is in two files: the dwz "
                            f"supplementary file {link[0]} (build-id {link[1].hex()}) "
                            f"was not found (--debug-dir, --sysroot, DEBUGINFOD_URLS)")
                        prog.partial_reasons.append(self.dwarf_problem)
                        return None
                self._dwarf = DebugInfo(dbg.path, self.build_id, cache_dir=prog.cache_dir,
                                        alt_path=alt)
        return self._dwarf

    def dwarf_call(self, method: str, *args):
        """self.dwarf.method(*args); None (and a partial reason) when the DWARF is
        unusable."""
        dwarf = self.dwarf
        if dwarf is None:
            return None
        try:
            return getattr(dwarf, method)(*args)
        except (CorefileError, ValueError, IndexError, KeyError) as e:
            reason = f"debug info of {self.name} unusable: {e}"
            if reason not in self.program.partial_reasons:
                self.program.partial_reasons.append(reason)
            self._dwarf = None
            return None

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end


class Program:
    """A process image opened with its executable: a core file (corefile.open(): core
    is a corefile.core.Core, memory its AddressSpace) or a running process
    (corefile.attach(): a corefile.live.LiveProcess and its ProcessMemory). Everything
    but where memory, threads, registers, mappings and auxv come from is shared."""

    def __init__(self, core, memory, exe: str | None = None, sysroot: str | None = None,
                 debug_dirs=(), cache_dir: str | None = None, debuginfod=None):
        self.sysroot = sysroot
        self.debug_dirs = tuple(debug_dirs)
        self.cache_dir = cache_dir
        self.debuginfod = debuginfod
        self.core = core
        self.arch = self.core.arch
        self.partial_reasons = self.core.partial_reasons   # the program adds its own
        self.memory = memory
        self.threads = self.core.threads
        self.psinfo = self.core.psinfo
        self.auxv = self.core.auxv
        self.mappings = self.core.mappings
        self.crashed_thread = self._crashed_thread()
        self.siginfo = self.crashed_thread.siginfo if self.crashed_thread else None
        self.modules = []
        self.exe = None
        self.exe_name = None  # the executable's path in the core
        self.missing = []     # [(path in the core, build-id or None)]: files not found
        self._jit_loaded = False
        try:
            self._load_modules(exe)
        except BaseException:
            self.close()
            raise
        self.exe_path = self.exe.host_path if self.exe else exe
        self.build_id = self.exe.build_id if self.exe else None
        self._unwinder = Unwinder(self.arch, self.read, self._cfi_for, self._is_code,
                                  self._is_outermost)
        self._call_targets = {}
        self._locations = {}

    def close(self):
        """Release the mappings of the core and of the files it names."""
        for mod in self.modules:
            if mod._debug not in (False, None, mod.image):
                mod._debug.close()
            mod.image.close()
        self.memory.close()
        self.core.close()

    def cache_path(self, kind: str, build_id: bytes | None, variant: str = "") -> str | None:
        """Where data derived from the file with build_id is cached (None: no cache)."""
        if not build_id:
            return None
        return os.path.join(self.cache_dir or cache.default_dir(), kind,
                            build_id.hex() + variant + ".marshal")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- threads -------------------------------------------------------------------

    def _crashed_thread(self):
        """The thread that took the fatal signal: the kernel writes NT_SIGINFO after
        that thread only and sets pr_cursig on all; gcore sets no cursig."""
        threads = self.core.threads
        if not any(t.cursig for t in threads):
            return None
        with_info = [t for t in threads if t.siginfo is not None]
        if len(with_info) == 1:
            return with_info[0]
        return next(t for t in threads if t.cursig)

    # -- memory --------------------------------------------------------------------

    def read(self, addr: int, size: int) -> bytes:
        return self.memory.read(addr, size)

    def read_u64(self, addr: int) -> int:
        return struct.unpack("<Q", self.read(addr, 8))[0]

    def read_pointer(self, addr: int) -> int:
        return self.read_u64(addr)

    # -- modules -------------------------------------------------------------------

    def _load_modules(self, exe: str | None):
        """A Module for each ELF file the core maps (from this machine, under the sysroot or
        from debuginfod), the executable first: the file mapped at AT_ENTRY. A given exe
        stands for it when their build-ids agree (see _exe_by_build_id). Each ELF file the
        process mapped that cannot be found goes to self.missing with the build-id the core
        kept of it, so that the user knows what to fetch."""
        groups = {}
        for m in self.mappings:
            groups.setdefault(m.path, []).append(m)
        firsts = {path: min(maps, key=lambda m: (m.offset, m.start))
                  for path, maps in groups.items()}
        entry = self.auxv.get(AT_ENTRY)
        exe_name = None
        for path, maps in groups.items():
            if entry is not None and any(m.start <= entry < m.end for m in maps):
                exe_name = path
        if exe_name is None and self.psinfo:
            exe_name = next((p for p in groups if os.path.basename(p).startswith(
                self.psinfo.fname)), None)
        if exe is not None:
            exe = os.path.abspath(exe)
            exe_name = self._exe_by_build_id(exe, exe_name, firsts)
            if exe_name is not None:
                self.memory.overrides[exe_name] = exe
        for path, maps in groups.items():
            first = firsts[path]
            if first.offset != 0:
                continue
            host = self.memory.host_path(path)
            if not _looks_like_elf(host):
                host = self._fetch_file(path, first.start) or host
            if not _looks_like_elf(host):
                if path == exe_name or self._elf_header_in_core(first.start):
                    self._missing(path, first.start, path == exe_name)
                host = self._exe_debug_file(path, first.start) if path == exe_name else None
                if host is None:
                    continue
            try:
                img = ElfImage(host)
            except CorefileError as e:
                self.partial_reasons.append(str(e))
                continue
            if img.e_machine != self.arch.E_MACHINE:
                img.close()
                continue
            mod = Module(self, path, host, min(m.start for m in maps),
                         max(m.end for m in maps), img)
            mod.bias = first.start - img.link_base()
            self.modules.append(mod)
            self._check_build_id(mod, first.start, is_exe=path == exe_name)
            if path == exe_name:
                self.exe = mod
        self.exe_name = exe_name
        if exe_name is None:
            self.partial_reasons.append("the core does not say which file is the executable")
        vdso = self._vdso()
        if vdso is not None:
            self.modules.append(vdso)
        self.modules.sort(key=lambda m: m.start)
        if self.exe is not None:
            self.modules.remove(self.exe)
            self.modules.insert(0, self.exe)

    def _core_build_id(self, start: int) -> bytes | None:
        """The build-id in the ELF header page the core kept of the file mapped at start."""
        return _build_id_in_memory(lambda a, n: self.memory.read(a, n, core_only=True), start)

    def _exe_by_build_id(self, exe: str, exe_name: str | None, firsts: dict) -> str | None:
        """The core's path of the executable the given file exe is, by build-id (whatever
        exe's own path: relative, a symlink, a copy, under a sysroot). MismatchError, naming
        both build-ids, when the core's executable has another one."""
        img = ElfImage(exe)
        given = img.build_id
        img.close()
        if given is None:
            return exe_name
        dumped = {path: self._core_build_id(first.start) for path, first in firsts.items()
                  if first.offset == 0}
        same = next((path for path, bid in dumped.items() if bid == given), None)
        if exe_name is None or dumped.get(exe_name) is None:
            return exe_name or same
        if dumped[exe_name] == given:
            return exe_name
        if same is not None:
            raise MismatchError(f"{exe} (build-id {given.hex()}) is {same} of this process, "
                                f"not its executable {exe_name} (build-id "
                                f"{dumped[exe_name].hex()})")
        raise MismatchError(f"{exe} has build-id {given.hex()} but the core's executable "
                            f"{exe_name} has build-id {dumped[exe_name].hex()}: it is not "
                            f"the program that dumped this core")

    def _exe_debug_file(self, path: str, start: int) -> str | None:
        """The separate debug file of a missing executable, by the build-id the core kept
        (the debug dirs, then debuginfod): it stands in for the executable, giving its
        symbols and DWARF (QEMU's data is in the core) but none of its code or CFI."""
        bid = self._core_build_id(start)
        found = _by_build_id(bid, _debug_dirs(self.debug_dirs, self.sysroot))
        if found is None and bid and self.debuginfod is not None:
            found = self.debuginfod.find_debuginfo(bid, path)
        if found is not None:
            self.partial_reasons.append(f"reading the debug file {found} for the missing "
                                        f"{path}: frames in its code are guessed")
        return found

    def _missing(self, path: str, start: int, is_exe: bool):
        """Note an ELF file the process mapped that is not on this machine."""
        bid = self._core_build_id(start)
        self.missing.append((path, bid))
        where = f" under {self.sysroot}" if self.sysroot else ""
        what = "executable " if is_exe else ""
        self.partial_reasons.append(
            f"missing {what}{path}{where}: build-id "
            f"{bid.hex() if bid else 'unknown (not in the core)'}")

    def _fetch_file(self, path: str, start: int) -> str | None:
        """The file the core maps at start but this machine lacks, from debuginfod by the
        build-id in the ELF header page the core kept; memory reads it from there too."""
        if self.debuginfod is None:
            return None
        bid = self._core_build_id(start)
        found = self.debuginfod.find_executable(bid, path) if bid else None
        if found:
            self.memory.overrides[path] = found
        return found

    def _elf_header_in_core(self, addr: int) -> bool:
        """The core holds an ELF header at addr (a mapped ELF file we could not open)."""
        try:
            return self.memory.read(addr, 4, core_only=True) == b"\x7fELF"
        except FaultError:
            return False

    def _check_build_id(self, mod: Module, start: int, is_exe: bool):
        """Compare the file's build-id with the one in the ELF header page the core
        kept of that mapping; raise MismatchError for the executable."""
        core_id = self._core_build_id(start)
        if core_id is None or mod.build_id is None or core_id == mod.build_id:
            return
        msg = (f"{mod.host_path} has build-id {mod.build_id.hex()} but the core was "
               f"dumped with build-id {core_id.hex()}")
        if is_exe:
            raise MismatchError(msg)
        self.partial_reasons.append(msg)

    def _jit_modules(self) -> list:
        """Code registered through gdb's JIT interface (QEMU's TCG registers its code
        buffer with a .debug_frame): in-memory ELF images listed from the executable's
        __jit_debug_descriptor {u32 version, u32 action, entry *relevant, entry *first},
        entry = {next, prev, symfile_addr, u64 symfile_size}."""
        if self.exe is None:
            return []
        found = self.exe.dwarf_call("find_variable", "__jit_debug_descriptor")
        if found is not None and isinstance(found[0], int):
            address = found[0]
        else:   # the executable's symbols are read only when its DWARF lacks it
            sym = self.exe.symtab.by_name.get("__jit_debug_descriptor")
            if sym is None:
                return []
            address = sym.address
        out = []
        try:
            entry = self.read_pointer(address + self.exe.bias + 16)
            for _ in range(1024):
                if not entry:
                    break
                addr, size = struct.unpack("<QQ", self.read(entry + 16, 16))
                if 64 <= size <= 1 << 24:
                    img = ElfImage(None, self.read(addr, size))
                    if img.loads:
                        vaddr, memsz, _, _ = img.loads[0]
                        mod = Module(self, "<jit>", None, vaddr, vaddr + memsz, img)
                        mod._debug = None
                        out.append(mod)
                entry = self.read_pointer(entry)
        except (FaultError, CorefileError, struct.error) as e:
            self.partial_reasons.append(f"JIT code list unreadable: {e}")
        return out

    def _vdso(self) -> Module | None:
        base = self.auxv.get(AT_SYSINFO_EHDR)
        if not base:
            return None
        try:
            hdr = self.read(base, 64)
            shoff, = struct.unpack_from("<Q", hdr, 40)
            shentsize, shnum = struct.unpack_from("<HH", hdr, 58)
            size = shoff + shentsize * shnum
            if size > 1 << 20:
                return None
            img = ElfImage(None, self.read(base, size))
        except (FaultError, CorefileError, struct.error):
            return None
        mod = Module(self, "[vdso]", None, base, base + size, img)
        mod.bias = base - img.link_base()
        mod._debug = None
        return mod

    def module_for(self, addr: int) -> Module | None:
        """The module mapped at addr; code registered through the JIT interface is
        looked for the first time an address falls outside every file."""
        for m in self.modules:
            if m.contains(addr):
                return m
        if not self._jit_loaded and addr >= 0x1000:   # page zero is never code
            self._jit_loaded = True
            self.modules += self._jit_modules()
            return self.module_for(addr)
        return None

    # -- symbols -------------------------------------------------------------------

    def symbolize(self, pc: int) -> Location:
        """function + offset, file:line and inline chain of pc, from DWARF when the
        module has it, else from ELF symbols."""
        loc = self._locations.get(pc)
        if loc is None:
            loc = self._locations[pc] = self._symbolize(pc)
        return dataclasses.replace(loc, inlined=list(loc.inlined))

    def _symbolize(self, pc: int) -> Location:
        loc = Location(pc)
        mod = self.module_for(pc)
        if mod is None:
            return loc
        loc.module = mod.host_path or mod.name
        rel = pc - mod.bias
        found = mod.dwarf_call("locate", rel)
        if found is not None and found[0]:
            loc.function, loc.file, loc.line, chain = found
            loc.inlined = [tuple(f) for f in chain or ()]
            entry = mod.dwarf_call("function_entry", rel)
            if entry is not None:
                loc.offset = rel - entry
                return loc
        sym = mod.symtab.lookup(rel)
        if sym is not None:
            loc.offset = sym[1]
            loc.function = loc.function or sym[0]
        return loc

    def elf_symbol(self, pc: int) -> tuple[str, int, str] | None:
        """(name, offset, module name) of pc from ELF symbols alone (gdb's minimal
        symbols, `info symbol`)."""
        mod = self.module_for(pc)
        if mod is None:
            return None
        sym = mod.symtab.lookup(pc - mod.bias)
        return None if sym is None else (sym[0], sym[1], mod.name)

    def data_symbol(self, addr: int) -> tuple[str, int, str] | None:
        """(name, offset, module name) of the variable whose bytes hold addr, from ELF
        symbols (as gdb's `info symbol`); None for heap, stack or unnamed memory. The
        module is the last one starting below addr: its .bss lies past its mappings."""
        below = [m for m in self.modules if m.start <= addr]
        if not below:
            return None
        mod = max(below, key=lambda m: m.start)
        starts, ends, names = mod.data_symbols
        rel = addr - mod.bias
        i = bisect.bisect_right(starts, rel) - 1
        if i >= 0 and rel < ends[i]:
            return names[i], rel - starts[i], mod.name
        return None

    def symbol_address(self, name: str) -> int | None:
        """Address of a function or variable by name: DWARF first, then ELF symbols,
        the executable before libraries."""
        for mod in self.modules:
            addr = mod.dwarf_call("find_function", name)
            if addr is not None:
                return addr + mod.bias
        for mod in self.modules:
            sym = mod.symtab.by_name.get(name)
            if sym is not None:
                return sym.address + mod.bias
        return None

    def type(self, name: str):
        """A corefile.types.Type by name (struct X, union X, enum X, typedefs...)."""
        self._require_dwarf()
        for mod in self.modules:
            t = mod.dwarf_call("find_type", name)
            if t is not None:
                return t
        return None

    def enumerator(self, name: str):
        """The enum Type (named or anonymous) defining the enumerator name, or None."""
        self._require_dwarf()
        for mod in self.modules:
            t = mod.dwarf_call("find_enumerator", name)
            if t is not None:
                return t
        return None

    def variable(self, name: str, file: str | None = None, thread=None,
                 function: str | None = None):
        """(address, Type) of a global, a file-static (file= a CU name), a static of one
        function of that file (function= its name) or a __thread variable (resolved for
        `thread`, default the first thread); None if unknown."""
        self._require_dwarf()
        for mod in self.modules:
            found = mod.dwarf_call("find_variable", name, file, function)
            if found is None:
                continue
            addr, typ = found
            if isinstance(addr, tuple) and addr[0] == "tls":
                return self.tls_address(mod, addr[1], thread), typ
            return addr + mod.bias, typ
        return None

    def tls_address(self, mod: Module, offset: int, thread=None) -> int:
        """Address of offset in mod's TLS block for thread (a Thread, a thread number
        or None for the first thread). The executable's block is at a fixed place below
        the thread pointer; a library's is found through the thread's DTV, indexed by
        the module id the dynamic linker keeps in its link_map (layout from ld.so's
        DWARF), as libthread_db does for gdb."""
        if thread is None:
            thread = self.threads[0]
        elif isinstance(thread, int):
            thread = self.threads[thread - 1]
        if mod.image.tls is None:
            raise CorefileError(f"{mod.name} has no PT_TLS segment")
        tp = self.arch.thread_pointer(thread.registers)
        if not tp or not thread.registers.get(self.arch.SP):
            raise CorefileError(f"thread {thread.num} (LWP {thread.tid}) has no user-level "
                                f"state (a kernel worker thread): no TLS")
        if mod is self.exe:
            vaddr, memsz, align = mod.image.tls
            return self.arch.static_tls_address(tp, vaddr, memsz, align, offset)
        modid = self._tls_modid(mod)
        dtv = self.read_pointer(tp + self.arch.DTV_OFFSET)
        block = self.read_pointer(dtv + modid * self.arch.DTV_ENTRY_SIZE)
        if block in (0, (1 << 64) - 1):      # TLS_DTV_UNALLOCATED
            raise CorefileError(f"the TLS block of {mod.name} is not allocated in "
                                f"thread {thread.num}")
        return block + offset

    def _tls_modid(self, mod: Module) -> int:
        """mod's TLS module id: its link_map's l_tls_modid, walking _r_debug.r_map."""
        ld = next((m for m in self.modules if "_r_debug" in m.symtab.by_name), None)
        types = ld and (ld.dwarf_call("find_type", "struct link_map"),
                        ld.dwarf_call("find_type", "struct r_debug"))
        if not types or None in types:
            raise MissingDebugInfoError(
                f"TLS of {mod.name} needs the dynamic linker's debug info (struct link_map)")
        link_map, r_debug = types
        lm = self.read_pointer(ld.symtab.by_name["_r_debug"].address + ld.bias
                               + r_debug.member("r_map").offset)
        addr, nxt, modid = (link_map.member(n).offset
                            for n in ("l_addr", "l_next", "l_tls_modid"))
        for _ in range(4096):
            if not lm:
                break
            if self.read_u64(lm + addr) == mod.bias:
                return self.read_u64(lm + modid)
            lm = self.read_pointer(lm + nxt)
        raise CorefileError(f"{mod.name} is not in the dynamic linker's list of modules")

    def _require_dwarf(self):
        """Types and variables need the executable's DWARF."""
        if self.exe is None:
            raise MissingDebugInfoError("the executable is not available: no debug info")
        if self.exe.dwarf is None:
            if self.exe.dwarf_problem:
                raise MissingDebugInfoError(self.exe.dwarf_problem)
            raise MissingDebugInfoError(
                f"{self.exe.host_path} has no debug info (no .debug_info, no separate "
                f"debug file by build-id or .gnu_debuglink)")

    # -- unwinding -----------------------------------------------------------------

    def _cfi_for(self, pc: int):
        mod = self.module_for(pc)
        if mod is None:
            return None
        try:
            table = mod.cfi
        except CorefileError:
            return None
        return table, mod.bias

    def _is_code(self, pc: int) -> bool:
        return self.module_for(pc) is not None

    def _is_outermost(self, pc: int) -> bool:
        """pc is in main or in the function holding the entry point: gdb's bt stops
        there (backtrace past-main / past-entry off)."""
        if self.exe is None or not self.exe.contains(pc):
            return False
        loc = self.symbolize(pc)
        function = loc.inlined[-1][0] if loc.inlined else loc.function
        start = pc - loc.offset if loc.offset is not None else None
        return function == "main" or (start is not None and start == self.auxv.get(AT_ENTRY))

    def unwind(self, registers: dict, past_main: bool = False) -> list:
        """Frames from a register set (a thread's or a coroutine's) to the outermost
        frame gdb would show, with gdb's tail-call frames; inline frames are in each
        frame's location.inlined (see backtrace() for gdb's numbering)."""
        missing = [r for r in (self.arch.PC, self.arch.SP) if r not in registers]
        if missing:
            raise CorefileError(f"cannot unwind without register(s) {', '.join(missing)}")
        steps = []
        try:
            for step in self._unwinder.frames(registers, past_main):
                steps.append(step)
        except (CFIError, struct.error, IndexError, ValueError) as e:
            reason = f"unwinding stopped: {e}"
            if reason not in self.partial_reasons:
                self.partial_reasons.append(reason)
        frames = []
        lookups = []     # gdb looks a caller's pc up at pc - 1 (inside the call)
        for i, step in enumerate(steps):
            caller = i > 0 and not steps[i - 1].signal and not step.signal
            lookups.append(step.pc - 1 if caller else step.pc)
            if caller:
                for ret in self._tail_calls(steps[i - 1], lookups[i - 1], step.pc):
                    frames.append(Frame(len(frames), ret, step.sp, None, step.registers,
                                        self._location(ret, ret - 1), tailcall=True))
            frames.append(Frame(len(frames), step.pc, step.sp, step.cfa, step.registers,
                                self._location(step.pc, lookups[i]), step.fallback,
                                step.signal))
        return frames

    def _location(self, pc, lookup):
        loc = self.symbolize(lookup)
        loc.pc = pc
        if loc.offset is not None:
            loc.offset += pc - lookup
        return loc

    def _tail_calls(self, callee, callee_lookup, caller_ret) -> list:
        """Return pcs of the tail-call frames between a callee frame and its caller."""
        if callee.signal:
            return []
        mod = self.module_for(callee_lookup)
        dwarf = mod.dwarf if mod is not None else None
        if dwarf is None:
            return []
        try:
            entry = dwarf.function_entry(callee_lookup - mod.bias)
            if entry is None:
                return []
            return find_chain(caller_ret, entry + mod.bias, self._sites_at)
        except (CorefileError, ValueError, IndexError, KeyError):
            return []

    def _sites_at(self, pc):
        """Call sites of the function holding absolute pc: [(return pc, is_tail,
        target)] in absolute addresses; targets resolve on first use (a callable)."""
        mod = self.module_for(pc)
        dwarf = mod.dwarf if mod is not None else None
        if dwarf is None:
            return []
        return [(ret + mod.bias, tail, lambda t=target: self._call_target(mod, t))
                for ret, tail, target in dwarf.call_sites(pc - mod.bias)]

    def _call_target(self, mod, target):
        if target is None:
            return None
        kind, value = target
        if kind == "addr":
            return value + mod.bias
        key = (mod.name, value)
        if key not in self._call_targets:
            self._call_targets[key] = self._link_address(value, mod)
        return self._call_targets[key]

    def _link_address(self, name, caller):
        """Where a call from module caller to the function name lands: the first module
        exporting it (executable first, as the dynamic linker binds); else, as nobody
        exports it, one of the caller's own functions (glibc calls its hidden __GI_
        aliases): by the caller's DWARF index (loaded already, unlike its symbol table),
        else the caller's or the executable's ELF symbols."""
        for mod in self.modules:
            sym = mod.image.exported(name)
            if sym is not None:
                return sym.address + mod.bias
        if caller.dwarf is not None:
            entry = caller.dwarf_call("find_function", name)
            if entry is not None:
                return entry + caller.bias
        for mod in (caller, self.exe):
            sym = mod.symtab.by_name.get(name) if mod is not None else None
            if sym is not None and sym.is_function:
                return sym.address + mod.bias
        return None

    def backtrace(self, registers: dict, past_main: bool = False) -> list:
        """gdb's `bt` for a register set: BacktraceEntry per frame gdb numbers, inline
        frames included."""
        out = []
        for frame in self.unwind(registers, past_main):
            loc = frame.location
            chain = loc.inlined if loc.inlined and not frame.tailcall else \
                [(loc.function, loc.file, loc.line)]
            for i, (function, file, line) in enumerate(chain):
                if frame.tailcall:
                    kind = "tailcall"
                elif i < len(chain) - 1:
                    kind = "inline"
                else:
                    kind = "signal" if frame.signal else "normal"
                out.append(BacktraceEntry(len(out), frame.pc, function, file, line, kind,
                                          frame))
        return out


@dataclass
class BacktraceEntry:
    """One line of gdb's bt: kind is normal, inline, tailcall or signal."""
    num: int
    pc: int
    function: str | None
    file: str | None
    line: int | None
    kind: str
    frame: Frame


def _looks_like_elf(path: str) -> bool:
    """A regular file starting with an ELF header (a core may name FIFOs and devices,
    which must not be opened for reading: a FIFO blocks)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, 4) == b"\x7fELF"
    except OSError:
        return False
    finally:
        os.close(fd)


def _build_id_in_memory(read, base: int) -> bytes | None:
    """The GNU build-id note of the ELF image mapped at base, from memory."""
    try:
        hdr = read(base, 64)
        if hdr[:4] != b"\x7fELF":
            return None
        phoff, = struct.unpack_from("<Q", hdr, 32)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 54)
        phdrs = read(base + phoff, phentsize * phnum)
        first_vaddr = None
        notes = []
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz, _ = struct.unpack_from(
                "<IIQQQQQ", phdrs, i * phentsize)
            if p_type == 1 and first_vaddr is None:
                first_vaddr = p_vaddr - p_offset
            elif p_type == 4:
                notes.append((p_vaddr, p_filesz))
        for vaddr, size in notes:
            data = read(base + vaddr - (first_vaddr or 0), size)
            pos = 0
            while pos + 12 <= len(data):
                namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
                name_end = pos + 12 + ((namesz + 3) & ~3)
                if ntype == 3 and data[pos + 12:pos + 12 + namesz] == b"GNU\0":
                    return data[name_end:name_end + descsz]
                pos = name_end + ((descsz + 3) & ~3)
    except (FaultError, struct.error):
        return None
    return None
