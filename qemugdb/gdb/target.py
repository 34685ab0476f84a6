"""The Target protocol over gdb's Python API (runs inside gdb only).

Types are wrapped lazily as duck-typed objects with the attributes target.py describes;
wrappers are cached per gdb type and dropped when a new objfile loads. Memory is never cached.
Every method that selects a thread to answer restores the user's thread and frame.
"""

import contextlib
import re

import gdb

from ..target import (FAULT_SIGNALS, FaultError, Location, MissingDebugInfo, Process, Target,
                      TargetError, Thread)
from . import unwinder
from .frames import format_address, frame_registers, module_of, text, to_int

_KINDS = {
    gdb.TYPE_CODE_STRUCT: "struct", gdb.TYPE_CODE_UNION: "union", gdb.TYPE_CODE_ENUM: "enum",
    gdb.TYPE_CODE_PTR: "pointer", gdb.TYPE_CODE_ARRAY: "array", gdb.TYPE_CODE_INT: "int",
    gdb.TYPE_CODE_CHAR: "int", gdb.TYPE_CODE_BOOL: "bool", gdb.TYPE_CODE_FLT: "float",
    gdb.TYPE_CODE_VOID: "void", gdb.TYPE_CODE_FUNC: "function",
    gdb.TYPE_CODE_TYPEDEF: "typedef",
}


class Member:
    """A struct/union member. For a bitfield, bit_offset counts from the start of the
    containing struct (gdb.Field.bitpos) and offset is the byte holding its first bit."""

    __slots__ = ("name", "type", "offset", "bit_size", "bit_offset")

    def __init__(self, name, type_, offset, bit_size=0, bit_offset=None):
        self.name = name
        self.type = type_
        self.offset = offset
        self.bit_size = bit_size
        self.bit_offset = bit_offset

    def __repr__(self):
        return f"Member({self.name!r}, offset={self.offset})"


class GdbType:
    """A gdb.Type seen through the Target's type attributes (computed on first use)."""

    def __init__(self, target, gtype):
        self._target = target
        self._gtype = gtype
        self.kind = _KINDS.get(gtype.code, "int" if gtype.code == gdb.TYPE_CODE_RANGE else "other")
        self.name = gtype.tag if self.kind in ("struct", "union", "enum") else gtype.name
        self._members = None

    def __repr__(self):
        return f"GdbType({self.kind} {self.name})"

    @property
    def size(self):
        if self.kind in ("void", "function"):
            return None
        try:
            return self._gtype.sizeof
        except gdb.error:
            return None

    @property
    def target(self):
        if self.kind in ("pointer", "array", "typedef", "function"):
            return self._target.wrap_type(self._gtype.target())
        return None

    @property
    def length(self):
        if self.kind != "array":
            return None
        low, high = self._gtype.range()
        return high - low + 1 if high >= low else None

    @property
    def signed(self):
        if self.kind not in ("int", "enum", "bool"):
            return False
        try:
            return self._gtype.is_signed
        except ValueError:
            return False

    @property
    def enumerators(self):
        if self.kind != "enum":
            return []
        return [(f.name, f.enumval) for f in self._gtype.fields()]

    @property
    def members(self):
        if self.kind not in ("struct", "union"):
            return []
        if self._members is None:
            out = []
            for f in self._gtype.fields():
                if not hasattr(f, "bitpos"):  # a static member (C++ only)
                    continue
                t = self._target.wrap_type(f.type)
                if f.bitsize:
                    out.append(Member(f.name, t, f.bitpos // 8, f.bitsize, f.bitpos))
                else:
                    out.append(Member(f.name, t, f.bitpos // 8))
            self._members = out
        return self._members


@contextlib.contextmanager
def preserved_selection():
    """Restore the selected thread and frame (when there are some) on exit."""
    thread = gdb.selected_thread()
    try:
        frame = gdb.selected_frame() if thread is not None else None
    except gdb.error:
        frame = None
    try:
        yield
    finally:
        if thread is not None and thread.is_valid():
            thread.switch()
            if frame is not None and frame.is_valid():
                frame.select()


def _gdb_thread(num):
    for th in gdb.selected_inferior().threads():
        if th.num == num:
            return th
    raise TargetError(f"no thread {num}")


_INFO_SYMBOL = re.compile(r"(?P<name>\S+)(?: \+ (?P<off>\d+))? in section ")



def _in_file(sym, file):
    """Whether gdb.Symbol sym is of the unit whose file name ends with file."""
    return (text(lambda: sym.symtab.filename) or "").endswith(file)


class GdbTarget(Target):
    """The inferior gdb has selected: a live process or a core."""

    def __init__(self):
        self._types = {}
        self._by_name = {}
        self._threads = None
        gdb.events.new_objfile.connect(self._forget_types)
        for event in (gdb.events.stop, gdb.events.cont, gdb.events.exited,
                      gdb.events.new_thread):
            event.connect(self.refresh)

    def close(self):
        gdb.events.new_objfile.disconnect(self._forget_types)
        for event in (gdb.events.stop, gdb.events.cont, gdb.events.exited,
                      gdb.events.new_thread):
            event.disconnect(self.refresh)

    def _forget_types(self, _event=None):
        self._types.clear()
        self._by_name.clear()
        self._threads = None

    def refresh(self, _event=None):
        """Forget what may change while the program runs (the threads' registers)."""
        self._threads = None

    # Memory.

    def read(self, address, size):
        if address < 0 or address + size > 1 << 64:
            raise FaultError(address, size)
        try:
            return bytes(gdb.selected_inferior().read_memory(address, size))
        except gdb.MemoryError as e:
            raise FaultError(address, size) from e
        except gdb.error as e:  # e.g. no process and no core
            raise FaultError(address, size, f"cannot read memory at {address:#x}: {e}") from e

    # Types.

    def wrap_type(self, gtype):
        """The wrapper of a gdb.Type; cached by spelling unless anonymous ("{...}"), whose
        wrappers live in their parent's member list instead."""
        gtype = gtype.unqualified()
        spelling = str(gtype)
        if "{...}" in spelling:
            return GdbType(self, gtype)
        key = (gtype.code, spelling)
        t = self._types.get(key)
        if t is None:
            t = self._types[key] = GdbType(self, gtype)
        return t

    def lookup_type(self, name):
        t = self._by_name.get(name)
        if t is None:
            try:
                gtype = gdb.lookup_type(name)
            except gdb.error as e:
                raise MissingDebugInfo(f"no type {name!r} in the debug info") from e
            if gtype.code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION) and not gtype.fields() \
                    and gtype.sizeof == 0:
                raise MissingDebugInfo(f"type {name!r} is only declared in the debug info")
            t = self._by_name[name] = self.wrap_type(gtype)
        return t

    def lookup_enumerator(self, name):
        sym = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
        if sym is None or sym.addr_class != gdb.SYMBOL_LOC_CONST or sym.type is None \
                or sym.type.strip_typedefs().code != gdb.TYPE_CODE_ENUM:
            raise MissingDebugInfo(f"no enumerator {name!r} in the debug info")
        return self.wrap_type(sym.type)

    # Symbols.

    def _symbol(self, name, file, function=None):
        if function is not None:
            sym = self._function_static(name, file, function)
            if sym is None:
                raise MissingDebugInfo(f"no static {name!r} in {function}() of {file}")
            return sym
        if file is not None:
            for sym in gdb.lookup_static_symbols(name):
                if sym.symtab is not None and _in_file(sym, file):
                    return sym
            raise MissingDebugInfo(f"no static {name!r} in {file}")
        sym = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
        if sym is None:
            raise MissingDebugInfo(f"no symbol {name!r} in the debug info")
        return sym

    @staticmethod
    def _function_static(name, file, function):
        """The static variable `name` of `function` in `file` (qom/object.c's root, in
        object_get_root()), or None: gdb files it in the function's block, where
        lookup_static_symbols does not look."""
        for sym in (gdb.lookup_global_symbol(function), *gdb.lookup_static_symbols(function)):
            if sym is None or not sym.is_function or sym.symtab is None \
                    or not _in_file(sym, file):
                continue
            scope = gdb.block_for_pc(int(sym.value().address))
            while scope is not None and scope.function is None:
                scope = scope.superblock
            for local in scope or ():
                if text(lambda: local.name) == name and local.addr_class == gdb.SYMBOL_LOC_STATIC:
                    return local
        return None

    def variable_address(self, name, file=None, thread=None, function=None):
        sym = self._symbol(name, file, function)
        with preserved_selection():
            if thread is not None:
                _gdb_thread(thread.num).switch()
            try:
                value = sym.value(gdb.selected_frame()) if sym.needs_frame else sym.value()
                address = value.address
            except gdb.error as e:
                raise TargetError(f"cannot locate {name}: {e}") from e
        if address is None:
            raise MissingDebugInfo(f"{name} has no address (optimized out?)")
        return to_int(address), self.wrap_type(value.type)

    def function_address(self, name):
        try:
            sym = self._symbol(name, None)
        except MissingDebugInfo:
            try:
                return to_int(gdb.parse_and_eval(f"(unsigned long)&'{name}'"))
            except gdb.error:
                return None
        if sym.type is None or sym.type.code != gdb.TYPE_CODE_FUNC:
            return None
        return to_int(sym.value().address)

    def data_symbol(self, address):
        try:
            text = gdb.execute(f"info symbol {address:#x}", to_string=True)
        except gdb.error:
            return None
        m = _INFO_SYMBOL.match(text)
        return (m.group("name"), int(m.group("off") or 0)) if m else None

    # Threads.

    def threads(self):
        if self._threads is None:
            self._threads = self._read_threads()
        return list(self._threads)

    def _read_threads(self):
        inferior = gdb.selected_inferior()
        if inferior.pid == 0:
            return []
        out = []
        with preserved_selection():
            for th in sorted(inferior.threads(), key=lambda t: t.num):
                th.switch()
                try:
                    regs = frame_registers(gdb.newest_frame(), self.facts.THREAD_REGISTERS)
                except gdb.error:
                    regs = {}
                out.append(Thread(num=th.num, tid=th.ptid[1] or th.ptid[0], name=th.name,
                                  registers=regs))
        return out

    def process(self):
        """The Process: gdb sets $_exitsignal for a core of a process killed by a signal
        (kernel cores; gcore leaves it void); the thread whose $_siginfo carries that
        signal took it."""
        progspace = gdb.current_progspace()
        exe = progspace.filename
        objfile = gdb.lookup_objfile(exe) if exe else None
        inferior = gdb.selected_inferior()
        proc = Process(executable=exe, build_id=objfile.build_id if objfile else None,
                       pid=inferior.pid or None)
        # convenience_variable(), not parse_and_eval: reading `$_exitsignal` would create
        # it in the user's session when gdb has not (a core whose signal it does not know).
        signal = gdb.convenience_variable("_exitsignal")
        proc.signal = None if signal is None else int(signal)
        if proc.signal is None:
            return proc
        with preserved_selection():
            for th in sorted(inferior.threads(), key=lambda t: t.num):
                th.switch()
                try:
                    info = gdb.parse_and_eval("$_siginfo")
                    if int(info["si_signo"]) != proc.signal:
                        continue
                    proc.crashed_thread = th.num
                    proc.signal_code = int(info["si_code"])
                    if proc.signal in FAULT_SIGNALS:
                        proc.fault_address = to_int(info["_sifields"]["_sigfault"]["si_addr"])
                    break
                except gdb.error:
                    continue
        return proc

    # Code.

    def symbolize(self, pc):
        loc = Location(pc=pc)
        loc.module = module_of(pc)
        try:
            block = gdb.block_for_pc(pc)
        except RuntimeError:
            block = None
        functions = []
        while block is not None:
            if block.function is not None:
                functions.append((block.function, block.start))
            block = block.superblock
        sal = gdb.find_pc_line(pc)
        if sal.symtab is not None:
            loc.file, loc.line = text(lambda: sal.symtab.filename), sal.line
        if functions:
            outer, start = functions[-1]
            loc.function, loc.offset = text(lambda: outer.name), pc - start
            loc.inlined = [Location(pc=None, function=text(lambda: f.name))
                           for f, _ in functions[:-1]]
            return loc
        m = format_address(pc)
        if m:
            loc.function, loc.offset = m.group("name"), int(m.group("off") or 0)
        return loc

    def selected_thread(self):
        """The Thread gdb has selected, or None."""
        th = gdb.selected_thread()
        if th is None:
            return None
        for t in self.threads():
            if t.num == th.num:
                return t
        return None

    def evaluate(self, expr):
        """The address a gdb expression denotes: a pointer's or integer's value, an
        lvalue's address otherwise."""
        try:
            value = gdb.parse_and_eval(expr)
            code = value.type.strip_typedefs().code
            if code in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_INT, gdb.TYPE_CODE_ENUM):
                return to_int(value) & (1 << 64) - 1
            if value.address is not None:
                return to_int(value.address)
        except gdb.error as e:
            raise TargetError(str(e)) from e
        raise TargetError(f"{expr}: neither a pointer nor an lvalue")

    def select_coroutine(self, registers, label):
        return unwinder.select(self, registers, label)

    def deselect_coroutine(self):
        return unwinder.deselect()

    def unwind(self, registers):
        """Frames for a register set; a thread's own registers give exactly gdb's `bt`."""
        for th in self.threads():
            if all(th.registers.get(r) == registers.get(r) for r in (self.facts.PC, self.facts.SP)):
                return unwinder.thread_frames(th.num, self.facts)
        return unwinder.unwind(self, registers)


