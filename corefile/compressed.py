"""Cores compressed as systemd-coredump stores them (zstd, xz, lz4, gzip), told apart by
their magic bytes. A compressed core is streamed into an unlinked temporary file in
$TMPDIR, written sparse (all-zero blocks become holes: gcore's arenas are mostly zeros),
which open_core then maps like a plain core; it vanishes when the last user closes it."""

import gzip
import lzma
import os
import subprocess
import tempfile
import zlib

from .errors import BadCoreError

# (magic, format): the frame magic of each format systemd-coredump can write.
FORMATS = ((b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"),
           (b"\x04\x22\x4d\x18", "lz4"), (b"\x1f\x8b", "gzip"))
# Formats the standard library cannot read: their own program, decompressing to stdout.
PROGRAMS = {"zstd": ("zstd", "-d", "-c", "-q", "--"), "lz4": ("lz4", "-d", "-c", "-q", "--")}
CHUNK = 1 << 20    # bytes read at a time
HOLE = 1 << 16     # an all-zero block of this size (and alignment) is skipped, not written
ZEROS = bytes(HOLE)


def format_of(head: bytes) -> str | None:
    """The compression format of a file starting with head, None for anything else."""
    return next((fmt for magic, fmt in FORMATS if head.startswith(magic)), None)


def decompress(path: str, fmt: str) -> int:
    """A read-only file descriptor of path's decompressed contents (an unlinked temporary
    file). BadCoreError, naming path, when the format's program is missing or the data is
    truncated or corrupt."""
    with tempfile.TemporaryFile(prefix="qemu-coredump-") as out:
        try:
            if fmt in PROGRAMS:
                _from_program(path, fmt, out)
            else:
                opener = gzip.GzipFile if fmt == "gzip" else lzma.LZMAFile
                with opener(path, "rb") as stream:
                    _copy_sparse(stream, out)
        except _WriteError as e:
            raise BadCoreError(f"cannot decompress {path} into {tempfile.gettempdir()} "
                               f"({e}): set TMPDIR to a roomier place") from None
        except (EOFError, OSError, lzma.LZMAError, zlib.error) as e:
            raise BadCoreError(f"{path}: the {fmt}-compressed core is truncated or corrupt "
                               f"({e})") from None
        return os.dup(out.fileno())


class _WriteError(Exception):
    """The temporary file could not be written (no room)."""


def _from_program(path: str, fmt: str, out):
    argv = PROGRAMS[fmt]
    try:
        proc = subprocess.Popen(argv + (path,), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise BadCoreError(f"{path} is {fmt}-compressed and the {argv[0]} program is not "
                           f"installed (Debian: apt install {argv[0]})") from None
    with proc:
        try:
            _copy_sparse(proc.stdout, out)
        finally:
            proc.stdout.close()
            err = proc.stderr.read().decode(errors="replace").strip()
            proc.wait()
    if proc.returncode != 0:
        raise EOFError(err.splitlines()[-1] if err else f"{argv[0]} exited {proc.returncode}")


def _copy_sparse(stream, out):
    """Copy stream to out, seeking over all-zero HOLE-sized blocks; out gets the full
    length even when it ends in a hole."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    while n := _fill(stream, view):
        size += n
        try:
            for i in range(0, n, HOLE):
                if n - i >= HOLE and buf[i:i + HOLE] == ZEROS:
                    out.seek(HOLE, os.SEEK_CUR)
                else:
                    out.write(view[i:min(i + HOLE, n)])
        except OSError as e:
            raise _WriteError(e.strerror) from None
    try:
        out.truncate(size)
    except OSError as e:
        raise _WriteError(e.strerror) from None


def _fill(stream, view) -> int:
    """Read into view until it is full or the stream ends (a pipe gives 64 KiB at a time):
    the bytes read."""
    n = 0
    while n < len(view):
        got = stream.readinto(view[n:])
        if not got:
            break
        n += got
    return n
