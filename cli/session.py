"""Opening a core for the CLI: corefile's Program behind qemugdb's CoreTarget."""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import corefile
from qemugdb.core_target import CoreTarget


class BadInput(Exception):
    """The core or executable cannot be used: one line for the user."""


class Session:
    def __init__(self, program):
        self.program = program
        self.target = CoreTarget(program)

    @property
    def exe_path(self):
        return self.program.exe_path

    @property
    def partial(self):
        return bool(self.program.partial_reasons)


@contextlib.contextmanager
def progress(message, after=1.0):
    """Say `message` on stderr if the block takes longer than `after` seconds."""
    timer = threading.Timer(after, lambda: print(f"qemu-coredump: {message}", file=sys.stderr))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@contextlib.contextmanager
def plain_core(core):
    """The core as an ELF file: systemd-coredump's zstd-compressed cores are decompressed
    into a private temporary directory (never next to the core), removed afterwards."""
    with open(core, "rb") as f:
        magic = f.read(4)
    if magic != ZSTD_MAGIC:
        yield core
        return
    zstd = shutil.which("zstd")
    if zstd is None:
        raise BadInput(f"{core} is zstd-compressed and the zstd program is not installed")
    tmp = tempfile.mkdtemp(prefix="qemu-coredump-")
    try:
        out = os.path.join(tmp, "core")
        with progress(f"decompressing {core}…"), open(out, "wb") as sink:
            r = subprocess.run([zstd, "-q", "-d", "-c", core], stdout=sink, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise BadInput(f"{core}: zstd could not decompress it: "
                           f"{r.stderr.decode(errors='replace').strip()}")
        yield out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def open_session(core, exe=None, sysroot=None, debug_dirs=()):
    with plain_core(core) as path:
        with _open(path, exe, sysroot, debug_dirs) as session:
            yield session


@contextlib.contextmanager
def _open(core, exe, sysroot, debug_dirs):
    try:
        program = corefile.open(core, exe=exe, sysroot=sysroot, debug_dirs=tuple(debug_dirs))
    except corefile.CorefileError as e:
        raise BadInput(str(e)) from None
    except OSError as e:
        raise BadInput(f"{e.filename or core}: {e.strerror}") from None
    try:
        yield Session(program)
    finally:
        close = getattr(program, "close", None)
        if close:
            close()
