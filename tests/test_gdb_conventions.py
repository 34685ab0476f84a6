"""qemugdb behaves as gdb's own commands do, checked in gdb on a fixture core: bare `qemu`
lists its subcommands as `info` does; `help qemu X` says X's help once; the convenience
functions are documented; option names, formats and block node names complete (the
nodes: QMP's query-named-block-nodes captured before the dump); gdb's one-dash options
work as argparse's; every error is one line (gdb.GdbError), never a Python traceback."""

import json

import pytest

from gdbrun import run_gdb
from oracle import fixture_core, qmp
from qemugdb import cmd
from qemugdb.commands import REGISTRY

pytestmark = pytest.mark.slow
cmd.load()
QSD = "qsd-10.0-kernel"


def core(name=QSD):
    return fixture_core(name)


def gdb(commands, name=QSD):
    m = core(name)
    out, err = run_gdb([m["exe"], m["core"]], commands)
    assert "Traceback" not in err and "Python Exception" not in err, err
    return out


def flat(text):
    return " ".join(text.split())


def test_bare_qemu_lists_subcommands_as_info_does():
    bare, help_, info = gdb(["qemu", "help qemu", "info"])
    assert bare == help_
    assert "List of info subcommands:" in info and "List of qemu subcommands:" in bare
    for name in REGISTRY:
        if " " not in name:
            assert f"\nqemu {name} -- " in bare, name


def test_help_says_each_commands_text_once():
    names = sorted(REGISTRY)
    texts = gdb([f"help qemu {name}" for name in names])
    for name, text in zip(names, texts):
        assert flat(text).count(flat(REGISTRY[name].help)) == 1, (name, text)
        assert f"usage: qemu {name}" in text


def test_convenience_functions_are_documented():
    pc, sp = gdb(["help function qemu_coroutine_pc", "help function qemu_coroutine_sp"])
    assert pc.startswith("$qemu_coroutine_pc(co): the saved program counter"), pc
    assert sp.startswith("$qemu_coroutine_sp(co): the saved stack pointer"), sp


def completed(text):
    """The words `complete LINE` offers after the line's command words."""
    return [line.split(" ", 2)[2] for line in text.splitlines() if line.count(" ") >= 2]


def test_node_names_options_and_formats_complete():
    nodes = sorted(n["node-name"] for n in qmp(core(), "query-named-block-nodes"))
    jobs = REGISTRY["jobs"]
    options = sorted(["-format", "-help"] +
                     ["-" + f[2:] for a in jobs.arguments for f in a.flags if f.startswith("--")])
    out = gdb(["complete qemu bdrv ", "complete qemu bdrv a-t", "complete qemu jobs -",
               "complete qemu jobs --", "complete qemu jobs -format ",
               "complete qemu coroutine all_bdrv_st"])
    assert completed(out[0]) == nodes
    assert completed(out[1]) == [n for n in nodes if n.startswith("a-t")]
    assert completed(out[2]) == options
    assert completed(out[3]) == ["-" + o for o in options]
    assert completed(out[4]) == [f"-format {f}" for f in sorted(jobs.formats())]
    assert completed(out[5]) == ["all_bdrv_states"]   # an expression: gdb's own completion


def test_gdb_style_options_are_argparses():
    out = gdb(["qemu jobs --stack", "qemu jobs -stack", "qemu jobs -st",
               "qemu bt --all --format json", "qemu bt -a -format json", "qemu bt -a -form=json"])
    assert out[0] == out[1] == out[2] and "#0 " in out[0]
    assert out[3] == out[4] == out[5]
    assert len(json.loads(out[3])) > 1


ERRORS = ["qemu bdrv no-such-node", "qemu jobs -no-such-option", "qemu jobs --format nosuch",
          "qemu bhs no-such-ctx", "qemu mtree", "qemu nosuch", "qemu coroutine 0",
          "p $qemu_coroutine_pc(0)", "qemu coroutine select 0x10"]


def test_errors_are_one_line(tmp_path):
    """Each error reaches Python's gdb.execute as one gdb.error line: a gdb.GdbError, not
    "Error occurred in Python" (an exception gdb prints with its traceback)."""
    script = tmp_path / "errors.py"
    script.write_text("\n".join([
        "import gdb",
        f"for c in {ERRORS!r}:",
        "    try:",
        "        gdb.execute(c, to_string=True)",
        "        print('NOERROR', c)",
        "    except gdb.error as e:",
        "        print('ERROR', repr(str(e)))", ""]))
    out = gdb([f"source {script}"])[0]
    lines = [line for line in out.splitlines() if line.startswith(("ERROR", "NOERROR"))]
    assert len(lines) == len(ERRORS), out
    for command, line in zip(ERRORS, lines):
        assert line.startswith("ERROR"), (command, line)
        message = eval(line.split(" ", 1)[1])
        assert "\n" not in message and "Error occurred in Python" not in message, (command, message)
