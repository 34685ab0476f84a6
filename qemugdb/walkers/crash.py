"""How a process died: its fatal signal, whether it raised it itself, the abort message."""

import signal as signals

from ..obj import find_member, read_c_string
from ..target import Process, Target, TargetError

SI_USER = 0  # si_code of a signal sent by kill(): a hung process dumped from outside


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def is_crash(process: Process) -> bool:
    """Whether the process died of a signal it raised itself: not alive, gcore'd or killed
    from outside to dump it."""
    return (process.signal is not None and process.crashed_thread is not None
            and process.signal_code != SI_USER)


def abort_message(target: Target) -> str | None:
    """glibc's __abort_msg (set by assert() and abort messages), else glib's
    __glib_assert_msg (set by g_assert()), or None."""
    try:
        pointer = target.variable("__abort_msg")
        if pointer.value_():
            msg = pointer.deref_()
            if find_member(msg.type_, "msg") is not None:
                return msg.msg.string_().rstrip("\n")
    except TargetError:
        pass
    try:
        address = target.function_address("__glib_assert_msg")  # a char *, by ELF symbol
        pointer = target.read_pointer(address) if address else 0
        if pointer:
            return read_c_string(target, pointer).decode("utf-8", "backslashreplace").rstrip("\n")
        return None
    except TargetError:
        return None
