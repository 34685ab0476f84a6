"""Every command of qemugdb.commands.REGISTRY as `qemu NAME` in gdb, plus the convenience
functions $qemu_coroutine_sp(co) and $qemu_coroutine_pc(co) (gdb only).

Arguments are parsed with argparse from the Arg declarations; `--format` offers
Command.formats(). Errors reach the user as one line (gdb.GdbError); `set qemu debug on`
shows Python tracebacks instead.
"""

import argparse
import traceback

import gdb

from . import coroutine as co
from .commands import REGISTRY
from .render.table import visible
from .gdb_target import GdbTarget
from .target import TargetError

_target = None


def target():
    """The one GdbTarget of this gdb session."""
    global _target
    if _target is None:
        _target = GdbTarget()
    return _target


class _Usage(Exception):
    """argparse wanted to print and stop (an error or --help)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Usage(f"{self.prog}: {message}\n{self.format_usage().strip()}")

    def exit(self, status=0, message=None):
        raise _Usage(message or "")

    def print_help(self, file=None):
        gdb.write(self.format_help())


def build_parser(cmd):
    parser = _Parser(prog=f"qemu {cmd.name}", description=cmd.help, add_help=True)
    for arg in cmd.arguments:
        if arg.is_flag:
            parser.add_argument(*arg.flags, dest=arg.name, action="store_true", help=arg.help)
            continue
        kwargs = {"help": arg.help, "default": arg.default}
        if arg.choices:
            kwargs["choices"] = arg.choices
        if arg.flags:
            parser.add_argument(*arg.flags, dest=arg.name, **kwargs)
        else:
            parser.add_argument(arg.name, nargs=arg.nargs, **kwargs)
    formats = cmd.formats()
    parser.add_argument("--format", choices=formats, default=formats[0],
                        help="output format")
    return parser


def parse(parser, cmd, argv):
    """argparse, except that a positional argument named `expr` (a gdb expression) takes
    the words argparse leaves over: `qemu coroutine (Coroutine *) $x` needs no quotes."""
    if not any(a.name == "expr" and not a.flags for a in cmd.arguments):
        return parser.parse_args(argv)
    args, extra = parser.parse_known_args(argv)
    bad = [w for w in extra if w.startswith("--")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        args.expr = " ".join([args.expr, *extra]) if args.expr else " ".join(extra)
    return args


class DebugParameter(gdb.Parameter):
    """Show Python tracebacks of qemu commands (for reporting bugs)."""
    set_doc = "Set whether qemu commands show Python tracebacks."
    show_doc = "Show whether qemu commands show Python tracebacks."

    def __init__(self):
        super().__init__("qemu debug", gdb.COMMAND_MAINTENANCE, gdb.PARAM_BOOLEAN)
        self.value = False


class _Prefix(gdb.Command):
    def __init__(self, name, doc):
        self.__doc__ = doc
        super().__init__(name, gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


def _bind(cmd, is_prefix, debug):
    parser = build_parser(cmd)

    class Bound(gdb.Command):
        __doc__ = f"{cmd.help}\n\n{parser.format_help()}"

        def __init__(self):
            super().__init__(f"qemu {cmd.name}", gdb.COMMAND_DATA, gdb.COMPLETE_EXPRESSION,
                             is_prefix)

        def invoke(self, argument, from_tty):
            try:
                args = parse(parser, cmd, gdb.string_to_argv(argument))
            except _Usage as e:
                if str(e):
                    raise gdb.GdbError(str(e).strip()) from None
                return
            t = target()
            t.refresh()
            try:
                records = cmd.run(t, args)
                text = cmd.render(records, args.format, args)
            except gdb.GdbError:
                raise
            except Exception as e:  # one line for the user; the traceback on request
                if debug.value:
                    traceback.print_exc()
                if isinstance(e, (TargetError, gdb.error)) or \
                        type(e) is LookupError:  # a walker's "no such node/context"
                    raise gdb.GdbError(f"qemu {cmd.name}: {e}") from None
                raise gdb.GdbError(f"qemu {cmd.name}: internal error: "
                                   f"{type(e).__name__}: {e} (set qemu debug on for "
                                   "the traceback)") from None
            if text:
                if args.format == "text":   # a core's strings must not drive the terminal
                    text = visible(text)
                gdb.write(text.rstrip("\n") + "\n")

    Bound()


class _CoroutineRegister(gdb.Function):
    def __init__(self, name, register):
        self._register = register
        super().__init__(name)

    def invoke(self, coroutine):
        t = target()
        try:
            address = int(coroutine.cast(gdb.lookup_type("unsigned long")))
            guard = co.pointer_guard(t)
            facts = co.arch(t)
            value = co.saved_registers(t, address, guard)[getattr(facts, self._register)]
        except TargetError as e:
            raise gdb.GdbError(str(e)) from None
        return gdb.Value(value).cast(gdb.lookup_type("void").pointer())


_registered = False


def register():
    """Create the `qemu` prefix, one gdb command per REGISTRY entry, the settings and the
    convenience functions (once)."""
    global _registered
    if _registered:
        return
    _Prefix("qemu", "QEMU debugging commands (qemugdb). `help qemu` lists them.")
    _Prefix("set qemu", "qemugdb settings.")
    _Prefix("show qemu", "qemugdb settings.")
    debug = DebugParameter()
    names = sorted(REGISTRY)  # a prefix ("coroutine") sorts before "coroutine select"
    for name in names:
        is_prefix = any(other.startswith(name + " ") for other in names)
        _bind(REGISTRY[name], is_prefix, debug)
    _CoroutineRegister("qemu_coroutine_sp", "SP")
    _CoroutineRegister("qemu_coroutine_pc", "PC")
    _registered = True
