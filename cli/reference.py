"""The command reference (docs/reference.md), generated from the one command registry and
the CLI's own options so that it cannot drift: `python3 -m qemu_coredump.reference >
docs/reference.md`; a test fails when the file and the registry disagree."""

from qemugdb.commands import REGISTRY

import click

from .main import EXTRA_OPTIONS, main

HEADER = """# Command reference

Generated from the command registry (`qemugdb/cmd/*.py`) by
`python3 -m qemu_coredump.reference > docs/reference.md`; `tests/test_reference.py` fails when
this file and the registry disagree. Every command runs in gdb as `qemu NAME ...` (after
`source qemugdb/gdb_load.py`) and, unless marked gdb only, on a core without gdb as
`qemu-coredump NAME CORE ...`.

Common to every `qemu-coredump` command: `CORE` (a core file; systemd-coredump's
compressed cores, zstd, xz, lz4 or gzip, are read as they are) or `--pid PID` (a running
process instead, read through /proc and ptrace: every thread is stopped a few milliseconds
while the pages the command needs are copied, and the output says how long; `--no-stop`
never stops the whole process, the answer may then be inconsistent; see
[guide](guide.md#a-hung-vm-in-production)), `-e/--exe FILE` (found from
the core when not given; matched to the core's executable by build-id),
`--sysroot DIR` (a core from another machine), `--debug-dir DIR` (repeatable), `--offline`
(no debuginfod: otherwise what is missing locally is fetched by build-id from the servers
in `DEBUGINFOD_URLS`), `-f/--format`,
`--json` (same as `--format json`), `-o/--output FILE`. Commands with a `dot` format also
write `svg` and `png` through graphviz's `dot`. Exit status: 0 complete, 1 partial, 2 bad
input, 3 an internal error ([guide](guide.md#exit-status)).

gdb only: the convenience functions `$qemu_coroutine_sp(co)` and `$qemu_coroutine_pc(co)`
(a suspended coroutine's saved stack pointer and program counter).
"""



def _usage(command, prefix, core=False):
    words = [prefix, command.name] + (["CORE"] if core else [])
    for a in command.arguments:
        if a.flags:
            flag = a.flags[-1] if a.is_flag else f"{a.flags[-1]} {a.name.upper()}"
            words.append(f"[{flag}]")
        else:
            words.append(f"[{a.name.upper()}]" if a.nargs == "?" else a.name.upper())
    return " ".join(words)


def reference():
    """The Markdown text of docs/reference.md."""
    out = [HEADER]
    for name in sorted(REGISTRY):
        c = REGISTRY[name]
        out.append(f"## `{name}`\n")
        out.append(f"{c.help}\n")
        out.append(f"- gdb: `{_usage(c, 'qemu')}`")
        if c.gdb_only:
            out.append("- qemu-coredump: none (gdb only)")
        else:
            out.append(f"- qemu-coredump: `{_usage(c, 'qemu-coredump', core=True)}`")
        out.append(f"- formats: {', '.join(c.formats())}")
        for a in c.arguments:
            what = ", ".join(f"`{f}`" for f in a.flags) if a.flags else f"`{a.name.upper()}`"
            default = f" (default: {a.default})" if a.default not in (None, False) else ""
            out.append(f"- {what}: {a.help}{default}")
        for option, _ in EXTRA_OPTIONS.get(name, []):
            out.append(f"- {', '.join(f'`{o}`' for o in option.opts)} (qemu-coredump only): {option.help}")
        out.append("")
    for name in sorted(set(main.commands) - set(REGISTRY)):   # the CLI's own commands
        command = main.commands[name]
        usage = command.collect_usage_pieces(click.Context(command, info_name=name))
        out.append(f"## `{name}` (qemu-coredump only)\n")
        out.append(" ".join(command.help.split()) + "\n")
        out.append(f"- qemu-coredump: `qemu-coredump {name} {' '.join(usage)}`")
        out += [f"- {', '.join(f'`{o}`' for o in p.opts)}: {p.help}"
                for p in command.params if isinstance(p, click.Option)]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(reference(), end="")
