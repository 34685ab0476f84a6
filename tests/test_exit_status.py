"""The exit status contract of qemu-coredump, command by command (docs/guide.md#exit-status):
0 complete, 1 partial, 2 bad input, 3 an internal error; errors are one line on stderr.

Every registry command runs on real fixture cores: complete (qsd and the KVM qemu-system
core, whose kernel worker thread is no unreadable item), partial (a sysroot holding the
executable alone: the libraries are missing), bad input (not a core, a program that is not
QEMU, no debug info, a name naming nothing, an unwritable -o). The internal error is a
command's run raising an exception no walker raises, in-process (click's runner)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import corelist
from oracle import fixture_core, qmp

pytestmark = pytest.mark.slow
CLI = shutil.which("qemu-coredump")
QSD, SYSTEM = "qsd-10.0-kernel", "system-10.0-kernel"
SYSTEM_ONLY = ("mtree", "tcg-lock-status")
ANY_PROGRAM = ("bt", "locks", "waits")


core = fixture_core


def run(*args):
    assert CLI, "qemu-coredump is not installed: pip install -e ."
    proc = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, NO_COLOR="1"))
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def one_line(proc):
    lines = proc.stderr.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("qemu-coredump: ")


def gdb_print(meta, expression):
    """gdb's value of `p/x EXPRESSION` on the core (the oracle for an argument)."""
    out = subprocess.run(["gdb", "-batch", "-nx", "-ex", f"p/x {expression}", meta["exe"],
                          meta["core"]], capture_output=True, text=True, timeout=300).stdout
    return out.strip().splitlines()[-1].split(" = ", 1)[1]


@pytest.fixture(scope="module")
def commands():
    """{name: the arguments after CORE that name something real} for every CLI command."""
    from qemu_coredump.main import REGISTRY
    qsd = core(QSD)
    nodes = [n["node-name"] for n in qmp(qsd, "query-named-block-nodes")]
    extra = {"bdrv": [next(n for n in nodes if not n.startswith("#"))],
             "coroutine": [gdb_print(qsd, "'job.c'::jobs.lh_first->co")],
             "bt": ["-a"]}
    return {name: extra.get(name, []) for name, c in REGISTRY.items() if not c.gdb_only}


def where(name):
    return core(SYSTEM if name in SYSTEM_ONLY else QSD)


def test_complete_exits_0(commands):
    for name, args in commands.items():
        proc = run(name, where(name)["core"], *args)
        assert proc.returncode == 0, (name, proc.stderr)


def test_kvm_kernel_worker_is_no_unreadable_item():
    """The KVM core's thread with all registers zero (gdb: `#0 0x0000000000000000 in ??`)
    is a kernel worker thread, named so: `bt -a` and `report` are complete."""
    meta = core(SYSTEM)
    out = subprocess.run(["gdb", "-batch", "-nx", "-ex", "thread apply all p/x (long)$sp | (long)$pc",
                          meta["exe"], meta["core"]], capture_output=True, text=True,
                         timeout=300).stdout
    threads, num = [], None
    for line in out.splitlines():
        if line.startswith("Thread "):
            num = int(line.split()[1])
        elif line.startswith("$") and line.endswith(" = 0x0"):
            threads.append(num)
    assert threads, "the KVM fixture core has no thread without user-level state"
    bt = run("bt", meta["core"], "-a")
    assert bt.returncode == 0 and "<error" not in bt.stdout, bt.stderr
    rep = run("report", meta["core"], "--json")
    assert rep.returncode == 0, rep.stderr
    roles = {t["num"]: t for t in json.loads(rep.stdout)["threads"]}
    for num in threads:
        assert roles[num]["role"] == "kernel worker" and roles[num]["error"] is None


def test_partial_exits_1(commands, tmp_path):
    """A core from another machine whose sysroot has the executable but none of the
    libraries: every command says what is missing and exits 1."""
    roots = {}
    for name, args in commands.items():
        meta = where(name)
        root = roots.get(meta["exe"])
        if root is None:
            root = roots[meta["exe"]] = tmp_path / meta["name"]
            exe = root / meta["exe"].lstrip("/")
            exe.parent.mkdir(parents=True)
            shutil.copy(meta["exe"], exe)
        proc = run(name, meta["core"], "--sysroot", root, *args)
        assert proc.returncode == 1, (name, proc.stderr)
        assert "qemu-coredump: partial: missing " in proc.stderr


def test_bad_input_exits_2(commands, tmp_path):
    """Not a core, a core of a program that is not QEMU (every command but bt, locks and
    waits), an unwritable -o (or report's --html): exit 2 and one line."""
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a core at all" * 10)
    crash = core("crash-assert-kernel")
    for name, args in commands.items():
        meta = where(name)
        cases = [[junk, *args], [meta["core"], *args, "-o", tmp_path / "no" / "dir"]]
        if name not in ANY_PROGRAM:
            cases.append([crash["core"], *args])
        if name == "report":
            cases.append([meta["core"], "--html", tmp_path / "no" / "page.html"])
        for case in cases:
            proc = run(name, *case)
            assert proc.returncode == 2 and one_line(proc), (name, case, proc.stderr)
    assert "cannot write" in run("jobs", core(QSD)["core"], "-o", tmp_path / "no" / "x").stderr


def test_names_and_programs_lacking_it_exit_2():
    """An argument naming nothing, a program lacking what the command reads (qsd has no
    memory regions, a binary without debug info has no coroutines): exit 2, one line."""
    qsd = core(QSD)
    cases = [("bdrv", qsd, ["no-such-node"]), ("bhs", qsd, ["no-such-ctx"]),
             ("mtree", qsd, []), ("tcg-lock-status", qsd, [])]
    fedora = Path(corelist.CORES / "qsd-10.0-fedora-kernel")
    if fedora.is_dir():   # a distro fixture: a Fedora-shaped binary without its debug root
        meta = core(fedora.name)
        cases += [(name, meta, args) for name, args in
                  (("coroutine", ["0x1000"]), ("coroutines", []), ("jobs", []))]
    for name, meta, args in cases:
        proc = run(name, meta["core"], *args)
        assert proc.returncode == 2 and one_line(proc), (name, proc.stderr)


def test_internal_error_exits_3(commands, monkeypatch):
    """A command whose run raises what no walker raises (a bug of ours) exits 3 with one
    line naming the exception; QEMUGDB_DEBUG=1 shows the traceback instead."""
    from qemu_coredump.main import REGISTRY, main
    monkeypatch.delenv("QEMUGDB_DEBUG", raising=False)
    for name, args in commands.items():
        command = REGISTRY[name]
        real = command.run

        def broken(target, a, real=real):
            real(target, a)
            raise ZeroDivisionError("a bug")

        monkeypatch.setattr(command, "run", broken)
        result = CliRunner().invoke(main, [name, where(name)["core"], *args])
        monkeypatch.setattr(command, "run", real)
        assert result.exit_code == 3, (name, result.stderr)
        assert result.stderr == ("qemu-coredump: internal error: ZeroDivisionError: a bug "
                                 "(QEMUGDB_DEBUG=1 shows the traceback)\n"), result.stderr


def test_signature_command_statuses(monkeypatch, tmp_path):
    """`signature CORE...`, the CLI's own command: 0 on cores it reads whole, 2 with a file
    that is no core among them, 3 when reading one raises what no walker raises
    (tests/test_signature.py: 1 for a stripped build without its symbols)."""
    from qemu_coredump import main as cli
    crash = core("crash-segv-kernel")["core"]
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a core at all" * 10)
    assert run("signature", crash, core(QSD)["core"]).returncode == 0
    proc = run("signature", junk, crash)
    assert proc.returncode == 2 and one_line(proc) and proc.stdout.count("\n") == 1

    def broken(target):
        raise ZeroDivisionError("a bug")

    monkeypatch.delenv("QEMUGDB_DEBUG", raising=False)
    monkeypatch.setattr(cli, "crash_signature", broken)
    result = CliRunner().invoke(cli.main, ["signature", crash])
    assert result.exit_code == 3 and "internal error: ZeroDivisionError: a bug" in result.stderr
