"""corefile: read an ELF core without gdb: memory, threads, symbols, CFI unwinding,
and (through corefile.dwarf) types and variables. Knows nothing of QEMU."""

from .errors import (BadCoreError, CorefileError, FaultError, MismatchError,
                     MissingDebugInfoError)

# corefile.program is imported on first use (PEP 562), so that corefile.arch (pure data,
# imported by qemugdb inside gdb's Python) stays a light import.
_LAZY = ("Frame", "Location", "Module", "Program")


def __getattr__(name):
    if name in _LAZY:
        from . import program
        return getattr(program, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open(core: str, exe: str | None = None, sysroot: str | None = None,
         debug_dirs=(), cache_dir: str | None = None, debuginfod=None) -> "Program":
    """Open a core file. exe defaults to the file the core names (NT_FILE / AT_ENTRY);
    sysroot prefixes the paths the core names; debug_dirs are searched for separate
    debug info before /usr/lib/debug; cache_dir is where parsed debug info is cached;
    debuginfod (a corefile.debuginfod.Client, None: no network) fetches the debug info
    and files found nowhere else."""
    from .core import open_core
    from .memory import AddressSpace
    from .program import Program
    image = open_core(core)
    return Program(image, AddressSpace(image, sysroot), exe, sysroot, debug_dirs, cache_dir,
                   debuginfod)


def attach(pid: int, exe: str | None = None, debug_dirs=(), cache_dir: str | None = None,
           debuginfod=None) -> "Program":
    """A running process as a Program (corefile.live): nothing is stopped until
    program.core.walk(fn) runs fn on one consistent moment of it. The other arguments as
    for open(). corefile.live.NotPermittedError when ptrace is not permitted."""
    from .live import open_process
    from .program import Program
    process = open_process(pid)
    return Program(process, process.memory, exe, None, debug_dirs, cache_dir, debuginfod)


__all__ = ["open", "attach", "Program", "Module", "Frame", "Location", "CorefileError",
           "FaultError", "BadCoreError", "MismatchError", "MissingDebugInfoError"]
