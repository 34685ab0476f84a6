"""Enumerator lookup (Target.lookup_enumerator): gdb's answer, corefile's, and QEMU's flags.

An anonymous enum is reachable only through its enumerators' names; gdb finds them as
constant symbols, corefile through its name index. Both are checked against gdb's own
`ptype NAME` on a small C program, then on the real QEMU binaries (BLK_PERM_*, BH_* are
anonymous enums there; BDRV_CHILD_* is enum BdrvChildRoleBits).
"""

import json
import re
import subprocess

import pytest

from builds import qemu_bin
from corefile.dwarf import DebugInfo
from corefile.elf import ElfImage
from gdbrun import run_gdb

HEADER = """
enum { FLAG_A = 1, FLAG_B = 2, FLAG_C = 4 };
typedef enum { T_NEG = -1, T_SEVEN = 7 } Tee;
enum Color { RED, GREEN = 5, BLUE };
"""
MAIN = """
#include "flags.h"
enum { OTHER_X = 10, OTHER_Y = 20 };
int flags = FLAG_A | FLAG_C;
Tee tee = T_SEVEN;
enum Color color = GREEN;
int other = OTHER_Y;
int more(void);
int main(void) { return flags + tee + color + other + more(); }
"""
MORE = """
#include "flags.h"
int more_flags = FLAG_B;
int more(void) { return more_flags; }
"""
NAMES = ["FLAG_A", "FLAG_B", "FLAG_C", "T_NEG", "T_SEVEN", "RED", "BLUE", "OTHER_X",
         "OTHER_Y"]
ABSENT = ["NO_SUCH_ENUMERATOR", "flags", "main"]   # unknown, a variable, a function


def gdb_ptype(binary, names):
    """{name: [(enumerator, value)]} of the enum gdb's `ptype NAME` prints (None if gdb
    knows no such constant)."""
    out = subprocess.run(["gdb", "-nx", "-batch", *sum((["-ex", f"ptype {n}"] for n in names),
                                                       []), str(binary)],
                         capture_output=True, text=True, timeout=300).stdout
    types = re.findall(r"^type = enum (?:\w+ )?\{(.*)\}$", out, re.M)
    result = {}
    for name, body in zip(names, types):
        values, nxt = [], 0
        for item in body.split(", "):
            n, _, v = item.partition(" = ")
            nxt = int(v) if v else nxt
            values.append((n, nxt))
            nxt += 1
        result[name] = values
    return result


GDB_PROBE = ("python import json; from qemugdb.gdb.target import GdbTarget; t = GdbTarget(); "
             "from qemugdb.target import MissingDebugInfo\n"
             "def probe(n):\n"
             "    try:\n"
             "        e = t.lookup_enumerator(n)\n"
             "    except MissingDebugInfo:\n"
             "        return None\n"
             "    return [e.kind, e.name, e.enumerators]\n"
             "print(json.dumps({{n: probe(n) for n in {names!r}}}))")


def gdb_target_answers(binary, names):
    parts, _ = run_gdb([str(binary)], [GDB_PROBE.format(names=names)])
    return json.loads(parts[0].strip().splitlines()[-1])


def corefile_answers(binary, names, cache_dir):
    di = DebugInfo(str(binary), ElfImage(str(binary)).build_id, cache_dir=str(cache_dir))
    out = {}
    for n in names:
        t = di.find_enumerator(n)
        out[n] = None if t is None else [t.kind, t.name, [list(e) for e in t.enumerators]]
    return out


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    d = tmp_path_factory.mktemp("enums")
    (d / "flags.h").write_text(HEADER)
    (d / "main.c").write_text(MAIN)
    (d / "more.c").write_text(MORE)
    exe = d / "enums"
    subprocess.run(["gcc", "-O0", "-g", "-o", str(exe), str(d / "main.c"), str(d / "more.c")],
                   check=True)
    return exe


def test_small_program_both_backends_agree_with_ptype(program, tmp_path):
    oracle = gdb_ptype(program, NAMES)
    assert sorted(oracle) == sorted(NAMES), oracle
    via_gdb = gdb_target_answers(program, NAMES + ABSENT)
    via_corefile = corefile_answers(program, NAMES + ABSENT, tmp_path)
    for name in NAMES:
        want = [list(e) for e in oracle[name]]
        assert via_gdb[name][0] == "enum" and via_gdb[name][2] == want, name
        assert via_corefile[name][0] == "enum" and via_corefile[name][2] == want, name
    assert via_gdb["RED"][1] == via_corefile["RED"][1] == "Color"
    assert via_corefile["FLAG_A"][1] is None    # anonymous
    for name in ABSENT:
        assert via_gdb[name] is None and via_corefile[name] is None, name


QEMU_NAMES = ["BLK_PERM_CONSISTENT_READ", "BLK_PERM_WRITE", "BDRV_CHILD_DATA", "BH_PENDING",
              "BH_SCHEDULED"]


@pytest.mark.slow
@pytest.mark.parametrize("version,program", [("7.2", "qemu-storage-daemon"),
                                             ("10.0", "qemu-storage-daemon"),
                                             ("10.0", "qemu-system-x86_64")])
def test_qemu_flags_in_dwarf(version, program, tmp_path):
    """On QEMU's binaries the flag enums are in the DWARF: both backends return gdb's
    values, so the walkers never fall back to the header tables."""
    binary = qemu_bin(version, program) / program
    oracle = gdb_ptype(binary, QEMU_NAMES)
    assert sorted(oracle) == sorted(QEMU_NAMES), f"gdb does not know them in {binary}"
    via_gdb = gdb_target_answers(binary, QEMU_NAMES)
    via_corefile = corefile_answers(binary, QEMU_NAMES, tmp_path)
    for name in QEMU_NAMES:
        want = [list(e) for e in oracle[name]]
        assert via_gdb[name][2] == want and via_corefile[name][2] == want, name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qsd-7.2-gcore", "qsd-10.0-gcore"])
def test_header_tables_only_for_what_dwarf_lacks(name):
    """BH_* and BLK_PERM_* come from the DWARF (no "from QEMU's headers" note for them), in
    the CLI and in gdb; BDRV_O_* are #defines, absent from DWARF (gdb agrees): noted."""
    import corelist
    meta = corelist.core(name)
    absent = subprocess.run(["gdb", "-nx", "-batch", "-ex", "p BDRV_O_RDWR", meta["exe"]],
                            capture_output=True, text=True, timeout=300)
    assert "No symbol" in absent.stdout + absent.stderr
    cli = subprocess.run(["qemu-coredump", "report", meta["core"], "--exe", meta["exe"]],
                         capture_output=True, text=True, timeout=600)
    parts, _ = run_gdb([meta["exe"], meta["core"]], ["qemu bhs", "qemu block-graph"])
    for text in (cli.stdout, "".join(parts)):
        assert "BH flag values from" not in text
        assert "permission bits from" not in text
        assert "open flags from QEMU's headers (not in the debug info)" in text
