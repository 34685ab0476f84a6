"""qemugdb: QEMU's coroutines, event loop and block layer, read from a live process or a core.

Layers: a read-only Target (target.py; over gdb in gdb_target.py, over corefile in
core_target.py) -> typed Objects (obj.py) -> walkers that yield records (coroutine.py, aio.py,
block.py, ...) -> renderers (render/) -> commands declared once (commands.py, cmd/) and bound
in gdb (gdb_commands.py) and in the CLI (cli/).
"""
