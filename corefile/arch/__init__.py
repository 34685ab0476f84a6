"""Per-architecture facts, one module per architecture, chosen by ELF e_machine."""

from . import x86_64

BY_MACHINE = {x86_64.E_MACHINE: x86_64}


def for_machine(e_machine: int):
    """The arch module for an ELF e_machine value, or None."""
    return BY_MACHINE.get(e_machine)
