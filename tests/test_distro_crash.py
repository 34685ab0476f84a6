"""A real assertion failure in QEMU as a distribution ships it (Debian-shaped
qemu-system-x86_64 10.0 and 10.2: stripped, dwz-processed, debug files under a debug
root): `report` names the crashing function and every frame of the crashing thread with
file:line, as gdb does reading the same debug root."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builds import qemu_bin
from test_dwarf_qemu import _gdb_threads
from test_signature import OUTB_NO_VALUE, crash, run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
import corelist  # noqa: E402
import distro  # noqa: E402

pytestmark = pytest.mark.slow


def ours(frames):
    """(function, file, line) of every frame gdb would print, inline frames first."""
    out = []
    for frame in frames:
        loc = frame["location"]
        out += [(i["function"], i["file"], i["line"]) for i in loc["inlined"]]
        out.append((loc["function"], loc["file"], loc["line"]))
    return out


@pytest.mark.parametrize("version", ["10.0", "10.2"])
def test_report_names_the_crash_with_file_and_line(version, tmp_path):
    root = Path(distro.make(qemu_bin(version, "qemu-system-x86_64").parent, "debian")["root"])
    debug = root / "usr/lib/debug"
    made = crash(root / "usr/bin/qemu-system-x86_64", OUTB_NO_VALUE, tmp_path / "crash")
    proc = run("report", made["core"], "--debug-dir", debug, "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["abort_message"] == made["stderr"] and rep["focus_why"]
    gdb = subprocess.run(
        ["gdb", "-nx", "-batch", "-iex",
         f"set debug-file-directory {corelist.gdb_debug_dirs(str(debug))}",
         "-ex", "echo Thread 1\\n", "-ex", "bt", made["exe"], made["core"]],
        capture_output=True, text=True, timeout=300).stdout
    want = [f for _num, _pc, chain in _gdb_threads(gdb)[0] for f in chain if f[2]]
    got = [f for f in ours(rep["focus"]["frames"]) if f[2]]
    assert got == want  # every frame with file:line (glib's have none in either)
    qemu = [f for f in want if not f[1].startswith(("./", "../sysdeps", "/usr/"))]
    assert len(qemu) >= 5 and qemu[0][0] == "qtest_process_command", want
