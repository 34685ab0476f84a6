"""The on-disk cache of what corefile derives from ELF/DWARF files, keyed by build-id under
$XDG_CACHE_HOME/qemugdb (never next to the inputs). Entries are marshal data; a missing,
unreadable or malformed entry reads as None, and an unwritable cache only costs speed."""

import marshal
import os


def default_dir():
    """$XDG_CACHE_HOME/qemugdb or ~/.cache/qemugdb."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "qemugdb")


def load(path):
    """The data stored at path, or None."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:  # loads(read()): load(f) is ~10x slower
            return marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None


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
