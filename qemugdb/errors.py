"""The errors a walker may see from a target."""


class TargetError(Exception):
    """Base of every error a walker may see from a target."""


class FaultError(TargetError):
    """Memory at `address` cannot be read."""

    def __init__(self, address, size=None, message=None):
        self.address = address
        self.size = size
        super().__init__(message or f"cannot read memory at {address:#x}")


class CorruptError(TargetError):
    """A structure is inconsistent: a cycle, an impossible value, a runaway list."""

    def __init__(self, message, address=None):
        self.address = address
        super().__init__(message)


class MissingDebugInfo(TargetError):
    """A type, member, variable or function the debug info does not have."""


class NoDebugInfo(MissingDebugInfo):
    """The program's debug info itself is missing (a stripped binary without its debug
    file): what it would have said is unknown, not absent."""


class NotFound(TargetError):
    """An argument names nothing: no such block node, AioContext or coroutine."""
