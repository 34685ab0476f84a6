"""qemugdb: QEMU's coroutines, event loop and block layer, read from a live process or a core.

Layers, each importing only those below it (docs/design.md):
  target.py, arch/   the read-only Target protocol and the architecture facts
  gdb/, core/        its backends: inside gdb (and gdb's commands and unwinder), over corefile
  obj.py             typed Objects over a Target
  walkers/           QEMU's structures, read into records (roots, coroutine, aio, block, ...)
  render/            records as text, DOT and QMP JSON
  commands.py, cmd/  every command declared once, bound in gdb (gdb/) and in the CLI (cli/)
"""
