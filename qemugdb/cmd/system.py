"""System-emulator commands: mtree, tcg-lock-status (qemu-system-* only)."""

from ..walkers import system
from ..commands import command
from ..render import system as render


@command("mtree", "Show the memory region tree of every address space, as HMP "
         "`info mtree -D` does (qemu-system only).", text=render.render_mtree)
def mtree(target, args):
    return system.memory_tree(target)


@command("tcg-lock-status", "Show, per thread, whether it holds the big QEMU lock "
         "(bql_locked, or iothread_locked before QEMU 8.2) or the replay lock, and whether "
         "it is blocked waiting for a mutex (qemu-system only).",
         text=render.render_lock_status)
def tcg_lock_status(target, args):
    return system.lock_status(target)
