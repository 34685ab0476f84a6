"""Input files are only read: the core and the executable hash the same, and the core's
directory holds the same files (same sizes and times), after every `qemu-coredump`
subcommand and every `qemu` gdb command run on them.

Fast tier: a copy of the corrupt (CLI) and synthetic (gdb) fixtures in a directory of
their own. Slow tier: a real
qemu-storage-daemon core in its fixture directory."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import corelist
from gdbrun import LOAD
from oracle import qmp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from qemugdb import cmd as declarations  # noqa: E402
from qemugdb.commands import REGISTRY  # noqa: E402

declarations.load()

# Each command's exit status (docs/guide.md#exit-status). fixtures/corrupt holds no IOThread
# and no BQL flag (it is not qemu-system): bad input; every other command meets one of its
# corrupt lists: partial. On a qemu-storage-daemon core the commands are complete but
# those that read qemu-system's state.
CORRUPT_STATUS, CORRUPT_DEFAULT = {"iothreads": 2, "tcg-lock-status": 2}, 1
QSD_STATUS, QSD_DEFAULT = {"mtree": 2, "tcg-lock-status": 2}, 0


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def snapshot(core, exe):
    """Hashes of core and exe, and (name, size, mtime) of every file beside each."""
    listing = {}
    for d in {Path(core).parent, Path(exe).parent}:
        listing[str(d)] = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                 for p in d.iterdir())
    return digest(core), digest(exe), listing


def cli_invocations(out_dir, node="nosuchnode", coroutine="0x1000"):
    """Every CLI subcommand: text and JSON, each format, files written to out_dir (never
    beside the core)."""
    runs = []
    for c in REGISTRY.values():
        if c.gdb_only:
            continue
        args = [coroutine if a.name == "expr" else node
                for a in c.arguments if not a.flags and a.nargs != "?"]
        for fmt in c.formats():
            runs.append([c.name, *args, "-f", fmt])
        if "dot" in c.formats():
            runs.append([c.name, *args, "-f", "svg", "-o", str(out_dir / f"{c.name}.svg")])
        for a in c.arguments:
            if a.is_flag:
                runs.append([c.name, *args, a.flags[-1]])
    runs.append(["report", "--html", str(out_dir / "report.html")])
    runs.append(["block-graph", "-f", "dot", "-o", str(out_dir / "graph.dot")])
    return runs


def run_cli_in_process(argv, core, exe, status):
    from click.testing import CliRunner
    from cli.main import main
    r = CliRunner().invoke(main, [argv[0], str(core), "-e", str(exe), *argv[1:]],
                           env={"NO_COLOR": "1"})
    assert r.exception is None or isinstance(r.exception, SystemExit), (argv, r.exception)
    assert r.exit_code == status, (argv, r.exit_code, r.output[-2000:])
    return r


def run_cli(argv, core, exe, status):
    r = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", argv[0],
                        str(core), "-e", str(exe), *argv[1:]], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, NO_COLOR="1"))
    assert "Traceback" not in r.stderr, (argv, r.stderr)
    assert r.returncode == status, (argv, r.returncode, r.stderr[-2000:])
    return r


def gdb_commands(node="nosuchnode", coroutine="0"):
    cmds = []
    for c in REGISTRY.values():
        args = " ".join(coroutine if a.name == "expr" else node
                        for a in c.arguments if not a.flags and a.nargs != "?")
        cmds.append(f"qemu {c.name} {args}".rstrip())
        cmds.append(f"qemu {c.name} {args} --format json".replace("  ", " "))
    return cmds + ["qemu coroutine select off", "qemu bt -a", "qemu jobs --stack",
                   "qemu coroutines --pooled", "p $qemu_coroutine_sp(0)", "bt"]


def run_gdb_all(core, exe, commands, extra=()):
    argv = ["gdb", "-batch", "-nx", "-iex", "set confirm off", "-ex", f"source {LOAD}"]
    for c in [*extra, *commands]:
        argv += ["-ex", c]
    r = subprocess.run(argv + [str(exe), str(core)], capture_output=True, text=True,
                       timeout=600, cwd=Path(core).parent)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr[-2000:]
    return r


def evidence(fixture, tmp_path):
    """A fixture's kernel core and executable alone in a directory of their own."""
    d = tmp_path / "evidence"
    d.mkdir()
    core, exe = d / "core", d / Path(fixture["exe"]).name
    core.write_bytes(Path(fixture["kernel_core"]).read_bytes())
    exe.write_bytes(Path(fixture["exe"]).read_bytes())
    exe.chmod(0o755)
    return core, exe


@pytest.fixture
def synthetic_copy(synthetic, tmp_path):
    return evidence(synthetic, tmp_path)


def test_cli_leaves_inputs_unchanged(corrupt, tmp_path):
    """On the QEMU-shaped corrupt fixture, which every command reads (the CLI's commands
    but bt, locks and waits refuse a program that is not QEMU, such as the synthetic one)."""
    core, exe = evidence(corrupt, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(core, exe)
    runs = cli_invocations(out)
    for argv in runs:
        run_cli_in_process(argv, core, exe, CORRUPT_STATUS.get(argv[0], CORRUPT_DEFAULT))
        assert snapshot(core, exe) == before, argv
    assert "report.html" in {p.name for p in out.iterdir()}
    r = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", "gdb",
                        str(core), "-e", str(exe)], cwd=ROOT, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert snapshot(core, exe) == before


def test_gdb_commands_leave_inputs_unchanged(synthetic_copy):
    core, exe = synthetic_copy
    before = snapshot(core, exe)
    r = run_gdb_all(core, exe, gdb_commands())
    errors = {line.split(":", 1)[0] for line in r.stderr.splitlines() if line.startswith("qemu ")}
    anywhere = {"qemu bt", "qemu report", "qemu locks", "qemu waits"}   # any program's threads
    assert {f"qemu {c.name}" for c in REGISTRY.values()} - anywhere <= errors
    assert "#5 " in r.stdout   # the commands after the errors ran (bt)
    assert snapshot(core, exe) == before


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qsd-10.0-kernel", "qsd-7.2-gcore"])
def test_real_core_unchanged(name, tmp_path):
    """Every gdb command (and a coroutine selected and deselected) and every CLI
    subcommand on a real core, in its fixture directory: nothing changed or added."""
    try:
        meta = corelist.core(name)
    except corelist.CoreMissing as e:
        pytest.fail(str(e), pytrace=False)
    core, exe = meta["core"], meta["exe"]
    node = qmp(meta, "query-named-block-nodes")[0]["node-name"]
    before = snapshot(core, exe)
    listing = sorted(os.listdir(Path(core).parent))
    r = run_gdb_all(core, exe, gdb_commands(node=node, coroutine="0") + [
        "python import json; print('CO', json.loads(gdb.execute('qemu coroutines --format json', "
        "to_string=True))['coroutines'][0]['address'])"])
    co = next(line.split()[1] for line in r.stdout.splitlines() if line.startswith("CO "))
    run_gdb_all(core, exe, [f"qemu coroutine select {co}", "bt", "frame 2", "info locals",
                            "qemu coroutine select off", f"qemu coroutine {co}"])
    assert snapshot(core, exe) == before
    out = tmp_path / "out"
    out.mkdir()
    for argv in cli_invocations(out, node=node, coroutine=co):
        if "-f" in argv and argv[argv.index("-f") + 1] not in ("text", "svg"):
            continue    # the formats share their walk with text: keep the slow tier short
        run_cli(argv, core, exe, QSD_STATUS.get(argv[0], QSD_DEFAULT))
    assert snapshot(core, exe) == before
    assert sorted(os.listdir(Path(core).parent)) == listing
