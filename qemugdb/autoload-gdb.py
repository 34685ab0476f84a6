"""gdb auto-load snippet: load qemugdb whenever gdb opens a QEMU binary.

gdb runs OBJFILE-gdb.py found next to a binary's real path (symlinks resolved) or under
its auto-load directory, once the path is trusted. Symlink this file there under the
binary's name plus "-gdb.py", then trust it once in ~/.gdbinit:

    exe=$(readlink -f "$(command -v qemu-system-x86_64)")
    ln -s /path/to/checkout/qemugdb/autoload-gdb.py "$exe-gdb.py"
    echo "add-auto-load-safe-path $exe-gdb.py" >> ~/.gdbinit

docs/guide.md has a variant that leaves the binary's directory alone.

The symlink leads back to the checkout; a copy needs QEMUGDB_CHECKOUT=/path/to/checkout.
"""

import os
import sys

_checkout = os.environ.get("QEMUGDB_CHECKOUT") or \
    os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
if _checkout not in sys.path:
    sys.path.insert(0, _checkout)
import qemugdb.gdb_load  # noqa: E402,F401  (importing it loads everything, as `source` does)
