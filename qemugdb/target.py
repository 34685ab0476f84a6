"""The read-only target protocol the walkers run on.

A Target answers five questions about a QEMU process or core: what bytes are at an address,
what a type looks like (also the enum defining an enumerator), where a variable or function is, which threads there are (with their
registers), and what a pc means (symbolize/unwind). Two implementations: qemugdb.gdb.target
(inside gdb) and qemugdb.core.target (over corefile, for qemu-coredump). Walkers take a Target
explicitly and never import gdb or corefile.

Types are described by duck-typed objects with the attributes of corefile.types.Type:
kind ("struct" "union" "enum" "pointer" "array" "int" "bool" "float" "void" "function"
"typedef"), name, size, members (Member: name, type, offset, bit_size, bit_offset), target,
length, enumerators [(name, value)], signed. Qualifiers are stripped by the backend.
"""

import functools
import importlib
from dataclasses import dataclass, field

from .errors import (CorruptError, FaultError, MissingDebugInfo, NoDebugInfo, NotFound,
                     TargetError)
from .obj import Object

__all__ = ["CorruptError", "FaultError", "MissingDebugInfo", "NoDebugInfo", "NotFound",
           "TargetError", "FAULT_SIGNALS", "Location", "Frame", "Thread", "Process", "Target"]

# SIGILL, SIGBUS, SIGFPE, SIGSEGV: the signals whose si_addr is the fault address.
FAULT_SIGNALS = (4, 7, 8, 11)


@dataclass
class Location:
    """What a pc means: the physical (not inlined) function containing it, the offset from
    its entry and the source position within it; `inlined` holds the inline frames gdb shows
    above it at that pc, innermost first, each a Location with function, file and line."""
    pc: int
    function: str | None = None
    offset: int | None = None
    file: str | None = None
    line: int | None = None
    module: str | None = None
    inlined: list = field(default_factory=list)


@dataclass
class Frame:
    """One unwound frame. `pc` is as gdb prints it (a caller's pc is the return address)."""
    level: int
    pc: int
    sp: int
    location: Location
    registers: dict = field(default_factory=dict, repr=False)
    fallback: bool = False  # found by a heuristic, not by CFI

    def locations(self):
        """What gdb shows at this frame's pc, innermost first: the inline frames, then the
        physical function's Location."""
        return [*self.location.inlined, self.location]


@dataclass
class Thread:
    """A thread of the target: gdb's thread number, the kernel's tid, its name if known."""
    num: int
    tid: int
    name: str | None
    registers: dict = field(repr=False)
    crashed: bool = False


@dataclass
class Process:
    """The process as a whole: its program, and the fatal signal when it died of one."""
    executable: str | None
    build_id: str | None
    pid: int | None
    signal: int | None = None          # the fatal signal (kernel cores); None if alive/gcore
    signal_code: int | None = None     # si_code
    fault_address: int | None = None   # si_addr for SIGSEGV/SIGBUS/SIGILL/SIGFPE
    crashed_thread: int | None = None  # gdb thread number that took the signal
    partial: list = field(default_factory=list)  # what could not be read, one line each
    live: object = None   # a running process read by corefile: how (corefile.live.Pause)


class Target:
    """Abstract read-only target; see the module docstring."""

    arch = "x86_64"
    pointer_size = 8
    byteorder = "little"

    @functools.cached_property
    def facts(self):
        """The architecture's facts as data (corefile/arch/<arch>.py: register names and
        numbering, jmp_buf slots and pointer mangling, the pointer guard's place, system
        calls): walkers and backends read them here, never by architecture name."""
        return importlib.import_module(f"corefile.arch.{self.arch}")

    def read(self, address, size):
        """Bytes at address; FaultError when unreadable."""
        raise NotImplementedError

    def lookup_type(self, name):
        """A type by C name ("BlockDriverState", "struct Coroutine", "enum QEMUClockType");
        MissingDebugInfo when absent."""
        raise NotImplementedError

    def lookup_enumerator(self, name):
        """The enum type defining the enumerator `name` ("BH_PENDING"), also an anonymous
        one; MissingDebugInfo when absent."""
        raise MissingDebugInfo(f"no enumerator {name!r} in the debug info")

    def variable_address(self, name, file=None, thread=None, function=None):
        """(address, type) of a global, of a file-static in the CU whose name ends with `file`
        (with `function`, a static variable of that function of the file), or of a __thread
        variable for `thread` (a Thread); MissingDebugInfo when absent."""
        raise NotImplementedError

    def function_address(self, name):
        """Entry address of a function, or None."""
        raise NotImplementedError

    def data_symbol(self, address):
        """(name, offset) of the variable whose bytes hold `address` (a global or
        file-static, from the symbol table as gdb's `info symbol`), or None."""
        return None

    def threads(self):
        """Every thread, as a list of Thread."""
        raise NotImplementedError

    def process(self):
        """A Process describing the whole target."""
        raise NotImplementedError

    def selected_thread(self):
        """The thread commands act on by default: gdb's selected thread; on a core read
        without gdb, the one that took the fatal signal, else the first."""
        threads = self.threads()
        return next((t for t in threads if t.crashed), threads[0] if threads else None)

    def evaluate(self, text):
        """The address the user means by `text`: a number here; gdb evaluates expressions."""
        try:
            return int(text, 0)
        except ValueError:
            raise TargetError(f"not an address: {text!r} (without gdb, give a number)") from None

    def symbolize(self, pc):
        """A Location for pc."""
        raise NotImplementedError

    def unwind(self, registers):
        """Frames unwound from a register set (a thread's or a suspended coroutine's)."""
        raise NotImplementedError

    def select_coroutine(self, registers, label):
        """Make a suspended coroutine's frames (from its saved registers) the debugger's
        own, shown below a frame labelled `label`; its first frame's text. gdb only."""
        raise TargetError("only gdb can select a coroutine's frames")

    def deselect_coroutine(self):
        """Give the debugger its own frames back; whether a coroutine was selected."""
        raise TargetError("only gdb can select a coroutine's frames")

    # Helpers every backend shares.

    def read_uint(self, address, size=8):
        return int.from_bytes(self.read(address, size), self.byteorder)

    def read_pointer(self, address):
        return self.read_uint(address, self.pointer_size)

    def has_type(self, name):
        try:
            self.lookup_type(name)
            return True
        except MissingDebugInfo:
            return False

    def variable(self, name, file=None, thread=None, function=None):
        """A typed Object for a variable (see variable_address)."""
        address, type_ = self.variable_address(name, file=file, thread=thread,
                                               function=function)
        return Object(self, type_, address)
