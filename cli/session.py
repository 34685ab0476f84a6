"""Opening a core for the CLI: corefile's Program behind qemugdb's CoreTarget."""

import contextlib
import os
import sys
import threading

import corefile
from qemugdb.core.target import CoreTarget


class BadInput(Exception):
    """The core or executable cannot be used: one line for the user."""


class Session:
    def __init__(self, program, stop=True):
        self.program = program
        self.stop = stop
        self.target = CoreTarget(program)

    @property
    def live(self):
        """The running process (a corefile.live.LiveProcess), or None for a core."""
        return self.program.core if hasattr(self.program.core, "walk") else None

    def walk(self, fn):
        """fn(target). On a running process: on one consistent moment of it, a new target
        per round (corefile.live), and how long it was stopped said on stderr."""
        live = self.live
        if live is None:
            return fn(self.target)

        def walk_once():
            self.target = CoreTarget(self.program)
            return fn(self.target)
        result = live.walk(walk_once, self.stop)
        print(f"qemu-coredump: {live.pause.describe(live.pid)}", file=sys.stderr)
        return result

    @property
    def exe_path(self):
        return self.program.exe_path

    @property
    def reasons(self):
        """Why the result is partial: what could not be read, the debuginfod servers that
        failed."""
        client = self.program.debuginfod
        return list(self.program.partial_reasons) + (client.problems if client else [])

    def core_for_gdb(self, core):
        """The core file to give gdb, which reads no compressed core: core itself, or the
        decompressed copy as /proc/self/fd/N of a descriptor that gdb inherits."""
        if self.live is not None or self.program.core.compressed is None:
            return core
        fd = os.dup(self.program.core.fd)
        os.set_inheritable(fd, True)
        return f"/proc/self/fd/{fd}"


@contextlib.contextmanager
def progress(message, after=1.0):
    """Say `message` on stderr if the block takes longer than `after` seconds and stderr is
    a terminal (a script or a log gets only what the command has to say)."""
    if not sys.stderr.isatty():
        yield
        return
    timer = threading.Timer(after, lambda: print(f"qemu-coredump: {message}", file=sys.stderr))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def debuginfod_client(offline):
    """The debuginfod client of DEBUGINFOD_URLS, or None with --offline or no server."""
    if offline:
        return None
    from corefile.debuginfod import Client
    return Client.from_environment()


def no_executable(program):
    """Why nothing of the program can be read: neither its executable nor the executable's
    debug file is here. One line."""
    if program.exe_name is None:
        return "the core does not say which file is its executable: give it with -e FILE"
    found = dict(program.missing)
    bid = found.get(program.exe_name)
    others = len(found) - (program.exe_name in found)
    return (f"the executable {program.exe_name} (build-id {bid.hex() if bid else 'unknown'}) "
            f"is not on this machine, nor its debug file: give it with -e FILE, the crashed "
            f"machine's files with --sysroot DIR, its debug file with --debug-dir DIR, or "
            f"set DEBUGINFOD_URLS"
            + (f" ({others} of its libraries are missing too)" if others else ""))


@contextlib.contextmanager
def open_session(core, exe=None, sysroot=None, debug_dirs=(), offline=False, pid=None,
                 no_stop=False):
    """A Session on the core (plain or compressed as systemd-coredump stores them), or on
    the running process pid (no_stop: never stop it as a whole)."""
    if (core is None) == (pid is None):
        raise BadInput("give a CORE file or --pid PID (one of them)")
    if no_stop and pid is None:
        raise BadInput("--no-stop goes with --pid PID")
    if sysroot and pid is not None:
        raise BadInput("--sysroot is for a core from another machine: a process's files are here")
    try:
        if pid is not None:
            program = corefile.attach(pid, exe=exe, debug_dirs=tuple(debug_dirs),
                                      debuginfod=debuginfod_client(offline))
        else:
            program = corefile.open(core, exe=exe, sysroot=sysroot,
                                    debug_dirs=tuple(debug_dirs),
                                    debuginfod=debuginfod_client(offline))
    except corefile.CorefileError as e:
        raise BadInput(str(e)) from None
    except OSError as e:
        raise BadInput(f"{e.filename or core}: {e.strerror}") from None
    if program.exe is None:
        program.close()
        raise BadInput(no_executable(program))
    try:
        yield Session(program, stop=not no_stop)
    finally:
        close = getattr(program, "close", None)
        if close:
            close()
