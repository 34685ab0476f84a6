"""gdb auto-load snippet: load qemugdb whenever gdb opens a QEMU binary.

gdb runs OBJFILE-gdb.py found next to a binary's real path (symlinks resolved) or under
its auto-load directory, once the path is trusted. Symlink this file there under the
binary's name plus "-gdb.py", then trust it once in ~/.gdbinit:

    exe=$(readlink -f "$(command -v qemu-system-x86_64)")
    ln -s "$(dirname "$(qemu-coredump --gdb-script)")/autoload-gdb.py" "$exe-gdb.py"
    echo "add-auto-load-safe-path $exe-gdb.py" >> ~/.gdbinit

docs/guide.md has a variant that leaves the binary's directory alone.

The symlink leads back to the installed (or checked-out) qemugdb/ and its gdb_load.py; a
copy needs QEMUGDB_CHECKOUT=/path/to/checkout (the directory holding qemugdb/).
"""

import os
import runpy

_root = os.environ.get("QEMUGDB_CHECKOUT")
_qemugdb = os.path.join(_root, "qemugdb") if _root else os.path.dirname(os.path.realpath(__file__))
runpy.run_path(os.path.join(_qemugdb, "gdb_load.py"))
