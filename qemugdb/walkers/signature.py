"""A crash's signature, to group cores of the same bug (as ABRT's duphash does): the fatal
signal, the assertion or abort message without what changes between builds and runs
(program name, file:line, addresses, values), and the innermost QEMU functions of the
crashing stack (the executable's frames, without addresses, libc, glib and the assert or
abort machinery), names without the compiler's clone suffixes (.isra.0, .constprop.0,
.part.0, .cold). The hash is over that readable text."""

import hashlib
import re
from dataclasses import dataclass, field

from ..result import Record
from ..target import Frame, Target, TargetError
from .crash import abort_message, is_crash, signal_name

FUNCTIONS = 3   # innermost QEMU functions kept, as ABRT's duphash keeps three frames
# QEMU's own functions that only report a failure (util/error.c's &error_abort path,
# util/qemu-thread-posix.c's error_exit): the bug is in their caller.
MACHINERY = frozenset({"error_handle", "error_setv", "error_setg_internal",
                       "error_setg_errno_internal", "error_propagate", "error_exit"})
GLIBC_ASSERT = re.compile(r"Assertion [`'](?P<expr>.*)' failed")
GLIB_ASSERT = re.compile(r"^ERROR:[^:]*:\d+:[^:]*: (?P<what>.*)$", re.S)
GLIB_VALUES = re.compile(r"^(?P<what>assertion failed \(.*\)): \(.*\)$", re.S)  # cmpint's values
ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
LINE = re.compile(r":\d+(?=:)")


@dataclass
class Signature(Record):
    ERRORS = ('partial',)
    MISSING = ()
    hash: str                   # 16 hex digits of the SHA-256 of `text`
    text: str                   # `REASON in F1 < F2 < F3`: the functions innermost first
    reason: str                 # signal and normalised assertion or abort message
    functions: list = field(default_factory=list)
    partial: list = field(default_factory=list)  # why it may not match its bug's others


def message_reason(message: str) -> str:
    """What an abort message says, without what varies between builds and runs: glibc's
    `PROG: FILE:LINE: FUNC: Assertion `EXPR' failed.` gives `assertion `EXPR' failed`, glib's
    `ERROR:FILE:LINE:FUNC: assertion failed: (EXPR)` gives `assertion failed: (EXPR)`;
    other messages lose addresses and line numbers."""
    message = message.strip()
    if m := GLIBC_ASSERT.search(message):
        return f"assertion `{m.group('expr')}' failed"
    if m := GLIB_ASSERT.match(message):
        what = m.group("what")
        values = GLIB_VALUES.match(what)
        return values.group("what") if values else what
    return LINE.sub("", ADDRESS.sub("0x?", message))


def function_name(name: str) -> str:
    """A function's name without the compiler's clone suffixes (foo.isra.0 -> foo)."""
    return name.split(".", 1)[0]


def qemu_functions(frames: list[Frame], executable: str | None,
                   limit: int = FUNCTIONS) -> list[str | None]:
    """The innermost `limit` functions of the executable's frames (inline ones included,
    as gdb shows them), outside MACHINERY; None for a frame without a name (a stripped
    executable without its debug info)."""
    out = []
    for f in frames:
        if f.location.module != executable:
            continue
        for loc in f.locations():
            name = loc.function and function_name(loc.function)
            if name not in MACHINERY:
                out.append(name)
                if len(out) == limit:
                    return out
    return out


def signature(signal: str, message: str | None, frames: list[Frame],
              executable: str | None) -> Signature:
    """The Signature of a crash: `signal` its name (SIGABRT), `message` the abort message
    or None, `frames` the crashing thread's."""
    reason = signal + (f": {message_reason(message)}" if message else "")
    functions = qemu_functions(frames, executable)
    partial = []
    if not frames:
        partial.append("the crashing thread's stack could not be read")
    if None in functions:
        partial.append("the executable's frames have no function names (no symbols or "
                       "debug info for it)")
        functions = [f for f in functions if f]
    text = f"{reason} in {' < '.join(functions)}" if functions else reason
    return Signature(hashlib.sha256(text.encode()).hexdigest()[:16], text, reason, functions,
                     partial)


def crash_signature(target: Target) -> Signature | None:
    """The Signature of the target's crash, or None when it did not crash (alive, gcore'd,
    or killed from outside to dump it)."""
    p = target.process()
    if not is_crash(p):
        return None
    thread = next(t for t in target.threads() if t.num == p.crashed_thread)
    try:
        frames = target.unwind(thread.registers)
    except TargetError:
        frames = []
    return signature(signal_name(p.signal), abort_message(target), frames,
                     p.executable)
