"""qemu-coredump: qemugdb's commands on a core file, without gdb.

Every command of qemugdb.commands.REGISTRY becomes `qemu-coredump NAME CORE [options]`;
`gdb` is the CLI's own. Exit status (docs/guide.md#exit-status): 0 complete, 1 partial (some
items unreadable, marked in the output), 2 bad input, 3 an internal error (a bug of ours).
"""

import json
import os
import shutil
import sys
import types

import click

import corefile

from qemugdb import cmd as declarations
from qemugdb.commands import REGISTRY, to_plain
from qemugdb.walkers.identity import not_qemu
from qemugdb.walkers.signature import crash_signature
from qemugdb.result import problems
from qemugdb.target import MissingDebugInfo, NotFound, TargetError

from .graph import DotMissing, render_dot
from .highlight import terminal as highlight_terminal
from .session import BadInput, open_session, progress
from .style import colour, encodable, use_colour, visible

EXIT_PARTIAL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
# Commands that mean something on any program's core; the others need QEMU.
ANY_PROGRAM = ("bt", "locks", "waits")


# click.Path types, made once: each one costs a gettext lookup (~0.3 ms, every subcommand
# builds its options at start-up).
EXISTING_FILE = click.Path(exists=True, dir_okay=False)
EXISTING_DIR = click.Path(exists=True, file_okay=False)
NEW_FILE = click.Path(dir_okay=False)


def core_params():
    """CORE and the options that say how to read it, first in every subcommand."""
    return [
        click.Argument(["core"], type=EXISTING_FILE, required=False),
        click.Option(["--pid"], type=int, metavar="PID",
                     help="A running process instead of CORE (/proc and ptrace; its threads "
                          "are stopped a few milliseconds, see --no-stop)."),
        click.Option(["--no-stop"], is_flag=True,
                     help="With --pid: never stop the whole process (each thread is "
                          "interrupted alone for its registers); the answer may be "
                          "inconsistent."),
        click.Option(["-e", "--exe"], type=EXISTING_FILE,
                     help="The executable; found from the core when not given."),
        click.Option(["--sysroot"], type=EXISTING_DIR,
                     help="Root under which the core's libraries are found (a core from another machine)."),
        click.Option(["--debug-dir", "debug_dirs"], multiple=True,
                     type=EXISTING_DIR,
                     help="Extra directory of separate debug info (repeatable)."),
        click.Option(["--offline"], is_flag=True,
                     help="Local files only: no debuginfod download (DEBUGINFOD_URLS)."),
    ]


def emit(text, output, terminal_text=True):
    """Write the output; terminal_text (text for people, not JSON or DOT) has the core's
    control characters made visible and, on a terminal, colour."""
    if isinstance(text, str):
        text = visible(text) if terminal_text else encodable(text)
    if output:
        try:
            with open(output, "wb" if isinstance(text, bytes) else "w") as f:
                f.write(text)
        except OSError as e:
            fail(f"cannot write {output}: {e.strerror}")
        click.echo(f"wrote {output}", err=True)
    elif isinstance(text, bytes):
        click.get_binary_stream("stdout").write(text)
    else:
        if terminal_text and use_colour():
            text = colour(text)
        click.echo(text, nl=not text.endswith("\n"))


def picture(dot, fmt, output):
    """SVG/PNG bytes of DOT; without graphviz's dot, write the DOT beside and say so."""
    try:
        return render_dot(dot, fmt)
    except DotMissing as e:
        if output:
            emit(e.dot, os.path.splitext(output)[0] + ".dot", terminal_text=False)
        fail(str(e))


def failure(e):
    """(one line, exit status) for an exception met reading a core: bad input (a bad core,
    malformed or missing debug info, the wrong program, an argument naming nothing:
    NotFound), partial (TargetError) or, re-raised with QEMUGDB_DEBUG set, a bug of ours."""
    if isinstance(e, (BadInput, corefile.CorefileError, MissingDebugInfo, NotFound)):
        return str(e), EXIT_BAD_INPUT
    if isinstance(e, TargetError):
        return str(e), EXIT_PARTIAL
    if os.environ.get("QEMUGDB_DEBUG"):  # a bug of ours: one line unless asked
        raise e
    return (f"internal error: {type(e).__name__}: {e} (QEMUGDB_DEBUG=1 shows the traceback)",
            EXIT_INTERNAL)


def fail(message, status=EXIT_BAD_INPUT):
    click.echo(f"qemu-coredump: {message}", err=True)
    sys.exit(status)


def report_html(target, records, args, path):
    """report --html: the page of the report, with every stack, coroutine and block node in
    detail and the block graph's SVG."""
    from . import html
    graph = records.sections.get("Block graph")
    svg = None
    if graph is not None:
        try:
            svg = render_dot(html.graph_dot(graph), "svg")
        except DotMissing as e:
            click.echo(f"qemu-coredump: {e}; the page has no graph", err=True)
    page = html.page(records, html.details(target, records), svg, args.source_dir)
    emit(page, path, terminal_text=False)


# Options only the CLI has, per command: (click option, what to do with its value).
EXTRA_OPTIONS = {
    "report": [(click.Option(["--html", "html_path"], type=NEW_FILE,
                             help="Also write one self-contained HTML page with the SVG graph."),
                report_html)],
}


def bind(command):
    """A click command running a registry Command on a core."""
    formats = command.formats() + (("svg", "png") if "dot" in command.formats() else ())
    extras = EXTRA_OPTIONS.get(command.name, [])

    def run(core, pid, no_stop, exe, sysroot, debug_dirs, offline, fmt, as_json, output,
            **kwargs):
        fmt = "json" if as_json else fmt
        extra_values = [(kwargs.pop(option.name), act) for option, act in extras]
        try:
            # Debug info is read lazily, as the command needs it: say so when that is slow.
            with progress(f"reading {core or f'process {pid}'} and its debug info…"), \
                    open_session(core, exe, sysroot, debug_dirs, offline, pid,
                                 no_stop) as session:
                if command.name not in ANY_PROGRAM and (why := not_qemu(session.target)):
                    raise BadInput(why)
                terminal = fmt == "text" and not output and use_colour()
                args = types.SimpleNamespace(**kwargs, format=fmt,
                                             highlight=highlight_terminal if terminal else None)
                records = session.walk(lambda target: command.run(target, args))
                reasons = session.reasons
                partial = problems(records) or reasons
                if fmt in ("svg", "png"):
                    text = picture(command.render(records, "dot", args), fmt, output)
                else:
                    text = command.render(records, fmt, args)
                for value, act in extra_values:
                    if value:
                        act(session.target, records, args, value)
        except Exception as e:
            fail(*failure(e))
        emit(text, output, terminal_text=fmt == "text")
        for reason in reasons:  # what the output lacks, and why
            click.echo(f"qemu-coredump: partial: {reason}", err=True)
        if partial:
            sys.exit(EXIT_PARTIAL)

    params = core_params()
    for a in command.arguments:
        if a.flags:
            params.append(click.Option(list(a.flags), is_flag=a.is_flag, default=a.default, help=a.help,
                                       type=click.Choice(a.choices) if a.choices else None,
                                       show_default=a.default not in (None, False)))
        else:
            params.append(click.Argument([a.name], required=a.nargs != "?", default=a.default,
                                         type=click.Choice(a.choices) if a.choices else None))
    params.append(click.Option(["-f", "--format", "fmt"], type=click.Choice(formats), default="text",
                               show_default=True, help="Output format."))
    params.append(click.Option(["--json", "as_json"], is_flag=True, help="Same as --format json."))
    params.append(click.Option(["-o", "--output"], type=NEW_FILE,
                               help="Write to FILE instead of standard output."))
    params += [option for option, _ in extras]
    return click.Command(command.name, callback=run, params=params, help=command.help)


# The file to `source` in gdb, beside the qemugdb package wherever it is installed.
GDB_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(declarations.__file__))),
                          "gdb_load.py")


def print_gdb_script(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        click.echo(GDB_SCRIPT)
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qemugdb")
@click.option("--gdb-script", is_flag=True, expose_value=False, is_eager=True,
              callback=print_gdb_script,
              help="Print the path of gdb_load.py (for gdb's `source`) and exit.")
def main():
    """Analyse a QEMU core file: coroutines, AioContexts, the block graph, jobs."""


declarations.load()
for _command in REGISTRY.values():
    if not _command.gdb_only:
        main.add_command(bind(_command))


def gdb_command(core, pid, no_stop, exe, sysroot, debug_dirs, offline):
    """Start gdb on the core (or attached to --pid, stopping the process while gdb runs)
    with qemugdb loaded, reading the same debug info as the other commands: the
    --debug-dir directories, --sysroot, and debuginfod unless --offline."""
    gdb = shutil.which("gdb")
    if gdb is None:
        fail("gdb is not installed")
    try:
        with open_session(core, exe, sysroot, debug_dirs, offline, pid, no_stop) as session:
            exe = session.exe_path
            core = session.core_for_gdb(core)
            fetching = session.program.debuginfod is not None
    except BadInput as e:
        fail(str(e))
    from corefile.elf import DEFAULT_DEBUG_DIR
    dirs = [os.path.abspath(d) for d in debug_dirs] + [DEFAULT_DEBUG_DIR]
    argv = [gdb, "-q", "-iex", f"set debug-file-directory {':'.join(dirs)}",
            "-iex", f"set debuginfod enabled {'on' if fetching else 'off'}"]
    if sysroot:
        argv += ["-iex", f"set sysroot {os.path.abspath(sysroot)}"]
    argv += ["-ex", f"source {GDB_SCRIPT}"]
    os.execv(gdb, argv + ([exe, "-p", str(pid)] if pid is not None else [exe, core]))


main.add_command(click.Command("gdb", callback=gdb_command, params=core_params(),
                               help=gdb_command.__doc__))


def signature_command(cores, sysroot, debug_dirs, offline, as_json):
    """Print each core's crash signature, then the core's path, then the signature's text
    (TAB-separated): cores with the same signature are the same bug. A core of a process
    that did not crash (alive, gcore'd, killed from outside) has `-`. The exit status is
    the worst of the cores'; a core that cannot be read is one line on stderr."""
    status, found = 0, []
    for core in cores:
        try:
            with open_session(core, sysroot=sysroot, debug_dirs=debug_dirs,
                              offline=offline) as session:
                sig = crash_signature(session.target)
                reasons = session.reasons + (sig.partial if sig else [])
        except Exception as e:
            message, code = failure(e)
            where = "" if message.startswith(core) else f"{core}: "
            click.echo(f"qemu-coredump: {where}{message}", err=True)
            status = max(status, code)
            continue
        for reason in reasons:
            click.echo(f"qemu-coredump: {core}: partial: {reason}", err=True)
        status = max(status, EXIT_PARTIAL if reasons else 0)
        if as_json:
            found.append({"core": core, "signature": to_plain(sig)})
        elif sig is None:
            click.echo(f"-\t{core}\tno crash")
        else:
            click.echo(f"{sig.hash}\t{core}\t{visible(sig.text)}")
    if as_json:
        click.echo(json.dumps(found, indent=2))
    sys.exit(status)


main.add_command(click.Command(
    "signature", callback=signature_command, help=signature_command.__doc__,
    params=[click.Argument(["cores"], nargs=-1, required=True, type=EXISTING_FILE),
            *[p for p in core_params() if p.name in ("sysroot", "debug_dirs", "offline")],
            click.Option(["--json", "as_json"], is_flag=True,
                         help="A JSON list of {core, signature} instead.")]))
