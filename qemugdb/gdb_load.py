"""Load qemugdb into gdb: the one file to source.

    (gdb) source /path/to/qemugdb/gdb_load.py
    (gdb) help qemu

The path is a checkout's qemugdb/ or the installed package's: `qemu-coredump --gdb-script`
prints it. To load it whenever gdb opens a QEMU binary, see qemugdb/autoload-gdb.py.

Runs in gdb's embedded Python. It imports qemugdb and corefile from beside this file and
takes nothing else from there: installed, that directory is a site-packages whose other
packages belong to another interpreter (sys.path is left alone).
"""

import importlib.machinery
import importlib.util
import os
import sys

import gdb

_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
for _name in ("corefile", "qemugdb"):
    if _name not in sys.modules:  # sourced before (or by autoload-gdb.py)
        _spec = importlib.machinery.PathFinder.find_spec(_name, [_ROOT])
        sys.modules[_name] = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(sys.modules[_name])

from qemugdb import cmd  # noqa: E402
from qemugdb.gdb import commands, unwinder  # noqa: E402

cmd.load()
commands.register()
unwinder.install()
# QEMU signals itself with SIGUSR1 all the time (as upstream's script sets it).
gdb.execute("handle SIGUSR1 pass noprint nostop", to_string=True)
