"""qemugdb: QEMU's coroutines, event loop and block layer, read from a live process or a core.

Layers, each importing only those below it (docs/design.md, tests/test_layers.py):
  errors.py          the errors a walker may see (NotFound: an argument naming nothing)
  obj.py             typed Objects over a Target
  target.py          the read-only Target protocol; its architecture facts (Target.facts,
                     corefile/arch/<arch>.py)
  result.py          the one result contract: records declare their errors, what is missing
  walkers/           QEMU's structures, read into records (roots, coroutine, aio, block, ...)
  render/            records as text, DOT and QMP JSON
  commands.py, cmd/  every command declared once
  gdb/, core/        the backends: inside gdb (with gdb's commands and unwinder), over corefile;
                     the CLI (cli/) binds the same commands to a core without gdb
"""
