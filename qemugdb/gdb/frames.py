"""gdb's frames as the Target protocol's: Locations, Frames and their registers."""

import re

import gdb

from ..target import Frame, Location

FORMAT_ADDRESS = re.compile(r"<(?P<name>[^+>]+)(?:\+(?P<off>\d+))?>")


def to_int(value):
    """A gdb.Value (pointer, flags, int) as a Python int."""
    if value.type.strip_typedefs().code == gdb.TYPE_CODE_PTR:
        value = value.cast(gdb.lookup_type("unsigned long"))
    return int(value)


def frame_registers(frame, names):
    """The registers of a gdb.Frame that it has, as ints."""
    regs = {}
    for name in names:
        try:
            v = frame.read_register(name)
        except (ValueError, gdb.error):
            continue
        if v.is_optimized_out:
            continue
        try:
            regs[name] = to_int(v) & (1 << 64) - 1
        except gdb.error:  # <unavailable>
            continue
    return regs


def module_of(pc):
    """The file holding pc: a shared library, the executable when a symbol of it covers
    pc, else None."""
    progspace = gdb.current_progspace()
    solib = progspace.solib_name(pc)
    if solib:
        return solib
    if format_address(pc):
        return progspace.filename
    return None


def text(get):
    """get(), a name or file name gdb read from the debug info; None when its bytes are not
    UTF-8 (a damaged string section), which gdb's Python cannot decode."""
    try:
        return get()
    except UnicodeDecodeError:
        return None


def format_address(pc):
    """FORMAT_ADDRESS's match on gdb's `<symbol+offset>` for pc, or None."""
    return FORMAT_ADDRESS.search(text(lambda: gdb.format_address(pc)) or "")


def location_of_frame(frame):
    """A Location for a gdb.Frame as `bt` shows it (inline frames not merged)."""
    pc = frame.pc()
    sal = frame.find_sal()
    loc = Location(pc=pc, function=text(frame.name))
    if sal.symtab is not None:
        loc.file, loc.line = text(lambda: sal.symtab.filename), sal.line
    if frame.type() != gdb.INLINE_FRAME:
        m = format_address(pc)
        if m:
            loc.offset = int(m.group("off") or 0)
    loc.module = module_of(pc)
    return loc


def frames_from(frame, facts, stop_functions=(), limit=4096):
    """Frame records from gdb.Frame `frame` outwards: one record per physical frame with the
    inline frames gdb shows above it in location.inlined (innermost first); stops after a
    frame whose function is in stop_functions. `facts`: the architecture's (Target.facts)."""
    out = []
    inlined = []
    level = 0
    while frame is not None and level < limit:
        loc = location_of_frame(frame)
        if frame.type() == gdb.INLINE_FRAME:
            inlined.append(loc)
        else:
            loc.inlined = inlined
            inlined = []
            regs = frame_registers(frame, (facts.SP, facts.PC, facts.FP))
            out.append(Frame(level=len(out), pc=loc.pc, sp=regs.get(facts.SP, 0), location=loc,
                             registers=regs))
            if loc.function in stop_functions:
                break
        try:
            frame = frame.older()
        except gdb.error:
            break
        level += 1
    return out
