"""Every command of qemugdb.commands.REGISTRY as `qemu NAME` in gdb, plus the convenience
functions $qemu_coroutine_sp(co) and $qemu_coroutine_pc(co) (gdb only).

As gdb's own commands: bare `qemu` lists the subcommands (as `info` does); options are
written gdb's way (`-stack`, abbreviated `-st`) or argparse's (`--stack`), parsed with
argparse from the Arg declarations (`--format` offers Command.formats()); option names,
formats and block node names complete; errors reach the user as one line (gdb.GdbError),
`set qemu debug on` shows Python tracebacks instead.
"""

import argparse
import traceback

import gdb

from ..walkers import coroutine as co
from ..walkers.roots import all_bdrv_states
from ..commands import REGISTRY
from ..render.table import visible
from .target import GdbTarget
from ..target import TargetError

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
    summary = ""

    def error(self, message):
        raise _Usage(f'{self.prog}: {message} (see "help {self.prog}")')

    def exit(self, status=0, message=None):
        raise _Usage(message or "")

    def format_help(self):
        """The command's help once, then its usage and options."""
        return f"{self.summary}\n\n{super().format_help()}"

    def print_help(self, file=None):
        gdb.write(self.format_help())


def build_parser(cmd):
    parser = _Parser(prog=f"qemu {cmd.name}", add_help=True,
                     epilog="Options also take gdb's form: one dash, abbreviated when "
                     "unambiguous (-format json, -form json).")
    parser.summary = cmd.help
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


def long_options(cmd):
    """The command's `--name` options, --format and --help included."""
    return [f for a in cmd.arguments for f in a.flags if f.startswith("--")] + \
        ["--format", "--help"]


def gdb_style(cmd, words):
    """gdb's option style as argparse's: `-stack`, or a unique abbreviation `-st`, is
    `--stack` (`-format=json` too); a short option (`-a`) and the words after `--` stay."""
    longs = long_options(cmd)
    shorts = {f for a in cmd.arguments for f in a.flags if not f.startswith("--")} | {"-h"}
    out = []
    for i, w in enumerate(words):
        if w == "--":
            return out + words[i:]
        if w.startswith("-") and not w.startswith("--") and w not in shorts:
            name, eq, value = w[1:].partition("=")
            found = [o for o in longs if o[2:].startswith(name)] if name else []
            found = [o for o in found if o[2:] == name] or found
            if len(found) == 1:
                w = found[0] + eq + value
        out.append(w)
    return out


def parse(parser, cmd, argv):
    """argparse on gdb_style(argv), except that a positional argument named `expr` (a gdb
    expression) takes the words argparse leaves over: `qemu coroutine (Coroutine *) $x`
    needs no quotes."""
    argv = gdb_style(cmd, argv)
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


class _QemuPrefix(_Prefix):
    def invoke(self, argument, from_tty):
        """Bare `qemu` lists its subcommands, as `info` does."""
        if argument.strip():
            raise gdb.GdbError(f'Undefined qemu command: "{argument.strip()}".  '
                               'Try "help qemu".')
        gdb.execute("help qemu", from_tty)


def one_line(name, e, debug):
    """The gdb.GdbError saying what went wrong in `name` in one line; the traceback is
    printed first when `set qemu debug on`."""
    if debug.value:
        traceback.print_exc()
    if isinstance(e, (TargetError, gdb.error)):
        return gdb.GdbError(f"{name}: {e}")
    return gdb.GdbError(f"{name}: internal error: {type(e).__name__}: {e} "
                        "(set qemu debug on for the traceback)")


def completions(cmd, text, word):
    """What completes the word being typed (gdb's `word` is its tail after gdb's word
    break characters, such as `-` and `#`): option names in gdb's form (`-stack`), the
    formats after -format, block node names for a node argument, gdb's expression
    completion for an expression."""
    words = text.split(" ")
    typed, before = words[-1], [w for w in words[:-1] if w]
    if before and gdb_style(cmd, before[-1:]) == ["--format"]:
        names = list(cmd.formats())
    elif typed.startswith("--"):
        names = long_options(cmd)
    elif typed.startswith("-"):
        names = ["-" + o[2:] for o in long_options(cmd)]
    elif any(a.name == "node" and not a.flags for a in cmd.arguments):
        names = [bs.node_name.string_() for bs in all_bdrv_states(target())]
    elif any(a.name == "expr" and not a.flags for a in cmd.arguments):
        return gdb.COMPLETE_EXPRESSION
    else:
        return []
    cut = len(typed) - len(word)
    return sorted(n[cut:] for n in names if n and n.startswith(typed))


def _bind(cmd, is_prefix, debug):
    parser = build_parser(cmd)

    class Bound(gdb.Command):
        __doc__ = parser.format_help()

        def __init__(self):
            super().__init__(f"qemu {cmd.name}", gdb.COMMAND_DATA, prefix=is_prefix)

        def complete(self, text, word):
            try:
                return completions(cmd, text, word)
            except Exception:  # nothing to offer (no process, unreadable list)
                return []

        def invoke(self, argument, from_tty):
            try:
                args = parse(parser, cmd, gdb.string_to_argv(argument))
            except _Usage as e:
                if str(e):
                    raise gdb.GdbError(str(e).strip()) from None
                return
            try:
                t = target()
                t.refresh()
                records = cmd.run(t, args)
                text = cmd.render(records, args.format, args)
            except gdb.GdbError:
                raise
            except Exception as e:  # one line for the user; the traceback on request
                raise one_line(f"qemu {cmd.name}", e, debug) from None
            if text:
                if args.format == "text":   # a core's strings must not drive the terminal
                    text = visible(text)
                gdb.write(text.rstrip("\n") + "\n")

    Bound()


class _CoroutineRegister(gdb.Function):
    def __init__(self, name, register, what, debug):
        self.__doc__ = (f"${name}(co): the saved {what} of the suspended coroutine co (a "
                        "Coroutine *), read from its jmp_buf and demangled, as a void *.\n"
                        f"Usage: p ${name}(co), or x/i ${name}(co) ...")
        self._name, self._register, self._debug = name, register, debug
        super().__init__(name)

    def invoke(self, coroutine):
        try:
            t = target()
            address = int(coroutine.cast(gdb.lookup_type("unsigned long")))
            guard = co.pointer_guard(t)
            value = co.saved_registers(t, address, guard)[getattr(t.facts, self._register)]
            return gdb.Value(value).cast(gdb.lookup_type("void").pointer())
        except Exception as e:
            raise one_line(f"${self._name}", e, self._debug) from None


_registered = False


def register():
    """Create the `qemu` prefix, one gdb command per REGISTRY entry, the settings and the
    convenience functions (once)."""
    global _registered
    if _registered:
        return
    _QemuPrefix("qemu", "QEMU debugging commands (qemugdb). `help qemu` lists them.")
    _Prefix("set qemu", "qemugdb settings.")
    _Prefix("show qemu", "qemugdb settings.")
    debug = DebugParameter()
    names = sorted(REGISTRY)  # a prefix ("coroutine") sorts before "coroutine select"
    for name in names:
        is_prefix = any(other.startswith(name + " ") for other in names)
        _bind(REGISTRY[name], is_prefix, debug)
    _CoroutineRegister("qemu_coroutine_sp", "SP", "stack pointer", debug)
    _CoroutineRegister("qemu_coroutine_pc", "PC", "program counter (where it resumes)", debug)
    _registered = True
