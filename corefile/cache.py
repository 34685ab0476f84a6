"""The on-disk cache of what corefile derives from ELF/DWARF files, keyed by build-id under
$XDG_CACHE_HOME/qemugdb (never next to the inputs). Entries are bytes (marshal data, or a
section's inflated bytes) followed by their CRC-32: a missing, unreadable, damaged or
malformed entry reads as None and is made again, and an unwritable cache only costs speed."""

import errno
import marshal
import os
import stat
import zlib


def default_dir():
    """$XDG_CACHE_HOME/qemugdb or ~/.cache/qemugdb."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "qemugdb")


def load(path):
    """The data stored at path, or None (also for an entry that is not a regular file)."""
    raw = load_bytes(path)
    try:   # loads(bytes): load(f) is ~10x slower
        return None if raw is None else marshal.loads(raw)
    except (EOFError, ValueError, TypeError):
        return None


def load_bytes(path, size=None):
    """The bytes stored at path (size of them, if given) when their CRC-32 matches, or None."""
    if path is None:
        return None
    try:
        with open_regular(path) as f:
            raw = f.read() if size is None else f.read(size + 5)
    except OSError:
        return None
    if len(raw) < 4 or size is not None and len(raw) != size + 4:
        return None
    body = raw[:-4]
    return body if zlib.crc32(body).to_bytes(4, "little") == raw[-4:] else None


def open_regular(path):
    """path opened for binary reading if it is a regular file; OSError otherwise. An
    entry replaced by a FIFO or a device (a symlink to /dev/zero) never blocks a reader."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", path)
    return open(fd, "rb")


def store(path, data):
    """Write data (marshal data) at path: store_bytes."""
    store_bytes(path, marshal.dumps(data))


def store_bytes(path, body):
    """Write body and its CRC-32 at path atomically (a temporary file renamed)."""
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(body)
            f.write(zlib.crc32(body).to_bytes(4, "little"))
        os.replace(tmp, path)
    except OSError:
        pass
