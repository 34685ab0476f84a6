"""Crash signatures on real QEMU crashes: qemu-system-x86_64 driven over its qtest protocol
into assertions it really has (made here, a kernel core each): the IDE DMA assertion of
10.2 (hw/ide/core.c ide_dma_cb, glibc's assert) twice; qtest's own g_assert()s on a
malformed `outb` (missing value, and port > 0xffff) in 10.0 and 10.2 (different lines of
qtest.c), and in 10.0 as Fedora ships it (read from its MiniDebugInfo symbols alone); the
crash fixtures (assert and SIGSEGV in our C programs) as other bugs. Oracles: QEMU's own
stderr (the assertion it printed) and gdb's frames of the crashing thread."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import corelist
import distro
from json_paths import documented, output_paths
from builds import qemu_bin
from make_cores import core_limit, kernel_core_path
from oracle import fixture_core  # noqa: E402

pytestmark = pytest.mark.slow
CLI = shutil.which("qemu-coredump")
# qtest input: the IDE reproducer of QEMU issue 2777 (AHCI command list in guest memory).
IDE_DMA = """outl 0xcf8 0x8000fa24
outl 0xcfc 0xe0000000
outl 0xcf8 0x8000fa04
outw 0xcfc 0x06
write 0x0 0x1 0x27
write 0x1 0x1 0x80
write 0x2 0x1 0x25
write 0xe00003b8 0x1 0x02
write 0xe0000398 0x1 0x01
"""
OUTB_NO_VALUE = "outb 0x80\n"
OUTB_BAD_PORT = "outb 0x10000 1\n"


def crash(binary, qtest, work):
    """Run qemu-system-x86_64 on a q35 with an IDE disk under qtest, feed it `qtest`; it
    must abort and leave a kernel core. {"core", "exe", "stderr"}."""
    work.mkdir(parents=True)
    proc = subprocess.Popen(
        [str(binary), "-display", "none", "-machine", "q35,accel=qtest,dump-guest-core=off",
         "-m", "32M", "-nodefaults", "-bios", "/usr/share/seabios/bios-256k.bin",
         "-drive", "file=null-co://,if=none,format=raw,id=disk0",
         "-device", "ide-hd,drive=disk0", "-qtest", "stdio"],
        cwd=work, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, preexec_fn=core_limit)
    _, stderr = proc.communicate(qtest, timeout=120)
    assert proc.returncode == -6, (binary, proc.returncode, stderr)
    core = kernel_core_path(work, proc.pid)
    assert core.exists(), f"{binary} aborted but left no core in {work}"
    return {"core": str(core), "exe": str(binary), "stderr": stderr.strip().splitlines()[-1]}


@pytest.fixture(scope="module")
def cores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crashes")
    system = {v: qemu_bin(v, "qemu-system-x86_64") / "qemu-system-x86_64" for v in ("10.0", "10.2")}
    fedora = Path(distro.make(qemu_bin("10.0", "qemu-system-x86_64").parent, "fedora")["root"])
    made = {
        "ide-10.2-a": crash(system["10.2"], IDE_DMA, tmp / "ide-a"),
        "ide-10.2-b": crash(system["10.2"], IDE_DMA, tmp / "ide-b"),
        "outb-10.0": crash(system["10.0"], OUTB_NO_VALUE, tmp / "outb-10.0"),
        "outb-10.2": crash(system["10.2"], OUTB_NO_VALUE, tmp / "outb-10.2"),
        "outb-10.0-fedora": crash(fedora / "usr/bin/qemu-system-x86_64", OUTB_NO_VALUE,
                                  tmp / "outb-fedora"),
        "port-10.0": crash(system["10.0"], OUTB_BAD_PORT, tmp / "port-10.0"),
        "port-10.2": crash(system["10.2"], OUTB_BAD_PORT, tmp / "port-10.2"),
    }
    for name in corelist.CRASH_NAMES:
        meta = fixture_core(name)
        made[name] = {"core": meta["core"], "exe": meta["exe"], "stderr": None}
    return made


def run(*args):
    assert CLI, "qemu-coredump is not installed: pip install -e ."
    proc = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def signatures(cores):
    """{name: (hash, text)} from one `qemu-coredump signature` over every core."""
    names = list(cores)
    proc = run("signature", *(cores[n]["core"] for n in names))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(names)
    out = {}
    for name, line in zip(names, lines):
        hash_, core, text = line.split("\t")
        assert core == cores[name]["core"] and len(hash_) == 16
        out[name] = (hash_, text)
    return out


def test_same_bug_same_signature(signatures):
    """Two runs of one assertion; one assertion in two QEMU versions (at other lines of
    qtest.c, other addresses) and in a Fedora-shaped build read from its symbols alone."""
    assert signatures["ide-10.2-a"] == signatures["ide-10.2-b"]
    for bug in ("outb", "port"):
        assert signatures[f"{bug}-10.0"] == signatures[f"{bug}-10.2"]
    assert signatures["outb-10.0-fedora"] == signatures["outb-10.0"]


def test_different_bugs_differ(signatures):
    """The IDE assertion, qtest's two assertions in the same function, our C programs'
    assert and SIGSEGV: five bugs, five signatures."""
    bugs = ["ide-10.2-a", "outb-10.0", "port-10.0", *corelist.CRASH_NAMES]
    assert len({signatures[b][0] for b in bugs}) == len(bugs)


def gdb_functions(meta):
    """Names of the crashing thread's frames in the executable, innermost first, as gdb
    shows them (inline frames included), from gdb's Python API."""
    script = ("import gdb\n"
              "f = gdb.newest_frame()\n"
              "while f is not None:\n"
              "    if gdb.current_progspace().solib_name(f.pc()) is None and f.name():\n"
              "        print('FRAME', f.name())\n"
              "    f = f.older()\n")
    path = Path(meta["core"]).with_suffix(".py")
    path.write_text(script)
    out = subprocess.run(["gdb", "-batch", "-nx", "-ex", f"source {path}", meta["exe"],
                          meta["core"]], capture_output=True, text=True, timeout=300).stdout
    return [line.split()[1] for line in out.splitlines() if line.startswith("FRAME ")]


@pytest.mark.parametrize("name", ["ide-10.2-a", "outb-10.2", "outb-10.0-fedora",
                                  "crash-segv-kernel"])
def test_signature_parts_are_qemus_and_gdbs(cores, name):
    """report --json's signature: its functions are gdb's first three frames of the
    executable in the crashing thread (clone suffixes such as .isra.0 dropped), its reason
    the assertion QEMU printed, without the file:line; the report's abort message is that
    very line; the signature command gives the same hash."""
    meta = cores[name]
    rep = json.loads(run("report", meta["core"], "--json").stdout) if meta["stderr"] else None
    proc = run("signature", meta["core"], "--json")
    assert output_paths(proc.stdout) <= documented()["signature"]
    sig = json.loads(proc.stdout)[0]["signature"]
    assert sig["functions"] == [f.split(".")[0] for f in gdb_functions(meta)][:3]
    assert sig["partial"] == []
    if rep is None:   # our C program: not QEMU, the report refuses it
        assert sig["reason"] == "SIGSEGV"
        return
    assert rep["signature"] == sig
    assert output_paths(json.dumps(rep)) <= documented()["report"]
    assert rep["abort_message"] == meta["stderr"]
    assert sig["text"] == f"{sig['reason']} in {' < '.join(sig['functions'])}"
    said = meta["stderr"]
    expression = said.split("`", 1)[1].rsplit("'", 1)[0] if "`" in said else said.split(": ", 1)[1]
    assert sig["reason"].startswith("SIGABRT: ") and expression in sig["reason"]
    line = said.split(":")[2]
    assert f":{line}:" not in sig["reason"]


def test_statuses(cores, tmp_path):
    """A file that is no core among them: one line for it, the others still printed,
    exit 2. A stripped build read without its debug info or symbols: the signature lacks
    the functions, says so, exit 1. A core of a process that did not crash: `-`."""
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a core" * 20)
    proc = run("signature", cores["ide-10.2-a"]["core"], junk)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and str(junk) in proc.stderr
    assert proc.stdout.startswith(run("signature", cores["ide-10.2-a"]["core"]).stdout)
    debian = Path(distro.make(qemu_bin("10.2", "qemu-system-x86_64").parent, "debian")["root"])
    stripped = crash(debian / "usr/bin/qemu-system-x86_64", OUTB_NO_VALUE, tmp_path / "debian")
    proc = run("signature", stripped["core"])
    assert proc.returncode == 1 and "no function names" in proc.stderr
    alive = corelist.core("qsd-10.0-gcore")
    assert run("signature", alive["core"]).stdout == f"-\t{alive['core']}\tno crash\n"


def test_gdb_report_has_the_same_signature(cores, signatures):
    """`qemu report` in gdb (gdb's unwinder and symbols, the same walker) gives the same
    signature line as the CLI."""
    from gdbrun import run_gdb
    for name in ("ide-10.2-a", "outb-10.0"):
        meta = cores[name]
        (text,), err = run_gdb([meta["exe"], meta["core"]], ["qemu report"])
        line = next(line for line in text.splitlines() if line.startswith("signature:"))
        assert line.split()[1:] == [signatures[name][0], *signatures[name][1].split()], err
