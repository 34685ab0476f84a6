"""The one registry of commands, bound twice: as `qemu NAME` in gdb (qemugdb.gdb.commands)
and as `qemu-coredump NAME` (the CLI).

A command is declared once with its arguments, its help, a `run(target, args)` that returns
records (dataclasses or lists of them, from the walkers) and renderers per output format
(`text` always; `json` is derived from the records unless a command gives its own).
"""

import dataclasses
import json
import types
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Arg:
    """One argument. `flags` empty means positional (`name`); `nargs="?"` makes it optional."""
    name: str
    help: str
    flags: tuple = ()          # e.g. ("-a", "--all")
    default: object = None
    choices: tuple = ()
    is_flag: bool = False      # a boolean switch
    nargs: str | None = None   # None (exactly one) or "?"


@dataclass
class Command:
    name: str
    help: str
    run: object                # run(target, args) -> records
    arguments: tuple = ()
    renderers: dict = field(default_factory=dict)   # format -> render(records, args) -> str
    gdb_only: bool = False     # e.g. `coroutine select`, which needs gdb's frames

    def formats(self):
        return tuple(self.renderers) + (() if "json" in self.renderers else ("json",))

    def default_args(self, **values):
        """Arguments as the bindings pass them, every one at its default unless given."""
        args = {a.name: a.default for a in self.arguments}
        args.update(values)
        return types.SimpleNamespace(**args)

    def render(self, records, fmt, args):
        if fmt == "json" and "json" not in self.renderers:
            return to_json(records)
        return self.renderers[fmt](records, args)


REGISTRY = {}


def command(name, help, arguments=(), gdb_only=False, **renderers):
    """Decorator declaring a command: @command("jobs", "List block jobs", text=render_jobs)."""
    def register(run):
        if name in REGISTRY:
            raise ValueError(f"command {name!r} declared twice")
        REGISTRY[name] = Command(name, help, run, tuple(arguments), renderers, gdb_only)
        return run
    return register


def to_plain(records):
    """Records (dataclasses, lists, dicts) as plain JSON-able data."""
    if dataclasses.is_dataclass(records) and not isinstance(records, type):
        return {f.name: to_plain(getattr(records, f.name)) for f in dataclasses.fields(records)}
    if isinstance(records, (list, tuple)):
        return [to_plain(r) for r in records]
    if isinstance(records, dict):
        return {str(k): to_plain(v) for k, v in records.items()}
    if isinstance(records, bytes):
        return records.decode("utf-8", "backslashreplace")
    return records


def to_json(records):
    return json.dumps(to_plain(records), indent=2, sort_keys=False)
