"""Errors raised by corefile. All subclass CorefileError and carry one clear message."""


class CorefileError(Exception):
    """Base class of every error corefile raises on bad input."""


class FaultError(CorefileError):
    """Memory at .address is not in the core nor in any file it maps."""

    def __init__(self, address: int, message: str | None = None):
        self.address = address
        super().__init__(message or f"cannot read memory at 0x{address:x}")


class BadCoreError(CorefileError):
    """The file is not a usable ELF core (truncated, not a core, unsupported arch)."""


class MismatchError(CorefileError):
    """The executable given is not the program the core was dumped from."""


class MissingDebugInfoError(CorefileError):
    """No debug information was found for a module that needs it."""
