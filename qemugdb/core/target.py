"""The Target protocol over a corefile.Program: qemugdb's walkers on a core without gdb.
Used by the CLI; inside gdb, qemugdb.gdb.target serves instead."""

import corefile

from ..target import (FAULT_SIGNALS, FaultError, Frame, Location, MissingDebugInfo, NoDebugInfo,
                      Process, Target, Thread)


def _location(loc, tailcall=False):
    """corefile lists every function gdb shows at a pc (innermost first, the physical one
    last); the protocol keeps the physical one in the Location and the inline ones above it
    in `inlined`. A tail-call frame (found from DWARF call sites) shows its function alone."""
    chain = [] if tailcall else list(loc.inlined)
    function, file, line = (chain.pop() if chain else (loc.function, loc.file, loc.line))
    inlined = [Location(pc=loc.pc, function=f, file=fl, line=ln) for f, fl, ln in chain]
    return Location(pc=loc.pc, function=function, offset=loc.offset, file=file, line=line,
                    module=loc.module, inlined=inlined)


class CoreTarget(Target):
    """A core file read through corefile; every answer comes from the core and its ELF/DWARF."""

    def __init__(self, program):
        self.program = program
        self._threads = [Thread(num=t.num, tid=t.tid, name=None, registers=t.registers,
                                crashed=t is program.crashed_thread)
                         for t in program.threads]
        self._types = {}
        self._variables = {}

    def read(self, address, size):
        try:
            return self.program.read(address, size)
        except corefile.FaultError as e:
            raise FaultError(e.address, size) from None

    def lookup_type(self, name):
        try:
            return self._types[name]
        except KeyError:
            pass
        try:
            t = self.program.type(name)
        except corefile.MissingDebugInfoError as e:
            raise NoDebugInfo(str(e)) from None
        if t is None:
            raise MissingDebugInfo(f"no type {name!r} in the debug info")
        self._types[name] = t
        return t

    def lookup_enumerator(self, name):
        try:
            t = self.program.enumerator(name)
        except corefile.MissingDebugInfoError as e:
            raise NoDebugInfo(str(e)) from None
        if t is None:
            raise MissingDebugInfo(f"no enumerator {name!r} in the debug info")
        return t

    def variable_address(self, name, file=None, thread=None, function=None):
        key = (name, file, None if thread is None else thread.num, function)
        if key in self._variables:   # a core does not change: walkers ask again and again
            found = self._variables[key]
        else:
            core_thread = None if thread is None else self.program.threads[thread.num - 1]
            try:
                found = self.program.variable(name, file=file, thread=core_thread,
                                              function=function)
            except corefile.MissingDebugInfoError as e:
                raise NoDebugInfo(str(e)) from None
            except corefile.CorefileError as e:
                raise MissingDebugInfo(f"{name}: {e}") from None
            self._variables[key] = found
        if found is None:
            where = f" in {file}" if file else ""
            if function:
                where = f" in {function}(){where}"
            raise MissingDebugInfo(f"no variable {name!r}{where} in the debug info")
        return found

    def function_address(self, name):
        return self.program.symbol_address(name)

    def data_symbol(self, address):
        found = self.program.data_symbol(address)
        return None if found is None else found[:2]

    def threads(self):
        return list(self._threads)

    def process(self):
        p = self.program
        si = p.siginfo
        crashed = p.crashed_thread
        signal = si.signo if si else (crashed.cursig if crashed else None)
        return Process(
            executable=p.exe_path, build_id=p.build_id.hex() if p.build_id else None,
            pid=p.psinfo.pid if p.psinfo else (p.threads[0].tid if p.threads else None),
            signal=signal, signal_code=si.code if si else None,
            fault_address=si.addr if si and si.signo in FAULT_SIGNALS else None,
            crashed_thread=crashed.num if crashed else None, partial=list(p.partial_reasons),
            live=getattr(p.core, "pause", None))

    def symbolize(self, pc):
        return _location(self.program.symbolize(pc))

    def unwind(self, registers):
        return [Frame(level=f.level, pc=f.pc, sp=f.sp, location=_location(f.location, f.tailcall),
                      registers=f.registers, fallback=f.fallback)
                for f in self.program.unwind(registers)]
