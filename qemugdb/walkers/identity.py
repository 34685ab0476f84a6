"""Whether a target is QEMU, and which QEMU, from QEMU's own data.

Every QEMU program (qemu-system-*, qemu-storage-daemon, qemu-img, qemu-io, qemu-nbd) keeps
its --version text in its read-only data: "NAME version " QEMU_FULL_VERSION "\\n"
QEMU_COPYRIGHT, QEMU_COPYRIGHT being "Copyright (c) 2003-YEAR Fabrice Bellard and the QEMU
Project developers" and QEMU_FULL_VERSION "X.Y.Z", or "X.Y.Z (PKGVERSION)" for a build
configured --with-pkgversion (a distribution's: "10.0.2 (Debian 1:10.0.2+ds-1)"), the
very values of QMP's query-version. A stripped binary keeps it: it is data, not a symbol.
When the executable's bytes cannot be read (only its separate debug file is at hand) the
roots QEMU's walkers start from tell instead: the main loop's AioContext (util/main-loop.c
qemu_aio_context) or the block layer's node list (block.c all_bdrv_states), in the debug
info or the symbol table (.symtab, or MiniDebugInfo's for a Fedora binary).
"""

import mmap
import re

from ..target import Target, TargetError

COPYRIGHT = b"Fabrice Bellard and the QEMU Project developers"
# In the C string holding COPYRIGHT: QEMU_FULL_VERSION ending a line before the copyright
# line (qemu-nbd puts a line between them).
BANNER = re.compile(rb"(\d+\.\d+\.\d+(?: \([^\n]*\))?)\n(?:[^\n]*\n)*?"
                    rb"Copyright \(c\) \d{4}-\d{4} " + COPYRIGHT + rb"$")
BANNER_SPAN = 512        # bytes before the copyright line the version is looked for in
MAX_COPYRIGHTS = 64      # copyright lines looked at (a hostile file may repeat it)
ROOTS = (("qemu_aio_context", "main-loop.c"), ("all_bdrv_states", "block.c"))
ROOT_FUNCTIONS = ("qemu_get_aio_context",)   # main-loop.c's, global: in every .symtab


def qemu_version(executable: str | None) -> str | None:
    """QEMU_FULL_VERSION from the executable's --version text, None when the file has no
    such text (not QEMU, or not readable). The file is searched as it is, not parsed: the
    text is in .rodata, early in the file."""
    try:
        with open(executable, "rb") as f:
            data = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    except (OSError, TypeError, ValueError):   # no file, no path, an empty file
        return None
    with data:
        at = data.find(COPYRIGHT)
        for _ in range(MAX_COPYRIGHTS):
            if at < 0:
                break
            text = data[max(0, at - BANNER_SPAN):at + len(COPYRIGHT)]
            m = BANNER.search(text[text.rfind(b"\0") + 1:])
            if m:
                return m.group(1).decode("utf-8", "replace")
            at = data.find(COPYRIGHT, at + 1)
    return None


def has_qemu_roots(target: Target) -> bool:
    """The program defines QEMU's main loop or block layer (see the module docstring)."""
    for name, file in ROOTS:
        try:
            target.variable_address(name, file=file)
            return True
        except TargetError:
            continue
    return any(target.function_address(name) is not None for name in ROOT_FUNCTIONS)


def not_qemu(target: Target) -> str | None:
    """None when the target is QEMU; else one line saying it is not."""
    executable = target.process().executable
    if qemu_version(executable) is not None or has_qemu_roots(target):
        return None
    return (f"{executable} is not QEMU: it has neither QEMU's version text nor QEMU's main "
            f"loop or block layer")
