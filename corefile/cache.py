"""The on-disk cache of what corefile derives from ELF/DWARF files, keyed by build-id under
$XDG_CACHE_HOME/qemugdb (never next to the inputs). Entries are marshal data; a missing,
unreadable or malformed entry reads as None, and an unwritable cache only costs speed."""

import errno
import marshal
import os
import stat


def default_dir():
    """$XDG_CACHE_HOME/qemugdb or ~/.cache/qemugdb."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "qemugdb")


def load(path):
    """The data stored at path, or None (also for an entry that is not a regular file)."""
    if path is None:
        return None
    try:
        with open_regular(path) as f:  # loads(read()): load(f) is ~10x slower
            return marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None


def open_regular(path):
    """path opened for binary reading if it is a regular file; OSError otherwise. An
    entry replaced by a FIFO or a device (a symlink to /dev/zero) never blocks a reader."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", path)
    return open(fd, "rb")


def store(path, data):
    """Write data at path atomically (a temporary file renamed)."""
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            marshal.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        pass
