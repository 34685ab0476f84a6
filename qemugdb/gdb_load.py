"""Load qemugdb into gdb: the one file to source.

    (gdb) source /path/to/checkout/qemugdb/gdb_load.py
    (gdb) help qemu

To load it whenever gdb opens a QEMU binary, see qemugdb/autoload-gdb.py.

Runs in gdb's embedded Python (standard library and this checkout only).
"""

import os
import sys

import gdb

_CHECKOUT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
if _CHECKOUT not in sys.path:
    sys.path.insert(0, _CHECKOUT)

from qemugdb import cmd, gdb_commands, gdb_unwinder  # noqa: E402

cmd.load()
gdb_commands.register()
gdb_unwinder.install()
# QEMU signals itself with SIGUSR1 all the time (as upstream's script sets it).
gdb.execute("handle SIGUSR1 pass noprint nostop", to_string=True)
