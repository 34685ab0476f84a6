"""The list walkers (qemugdb/walkers/queue.py) on the synthetic fixture's well-formed and broken
lists (self-cycle, cycle after N, NULL next, next into unmapped memory, next into another
list's element whose back-link does not point back), through gdb and through corefile,
against what qemu_shapes.c put there (expected.json; element addresses from gdb)."""

import json
import re
from pathlib import Path

import pytest

import corefile
from list_walk import walk_all
from qemugdb.core.target import CoreTarget

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
GDB_SCRIPT = f"""
import json, sys
sys.path[:0] = [{str(ROOT)!r}, {str(TESTS)!r}]
from qemugdb.gdb.target import GdbTarget
from list_walk import walk_all
lists = json.load(open({str(ROOT / "fixtures" / "synthetic" / "expected.json")!r}))["lists"]
print("WALK " + json.dumps(walk_all(GdbTarget(), lists)))
"""


def check(walked, expected, strays):
    """strays: {head: the address its stray next points to}, from gdb."""
    for head, spec in expected["lists"].items():
        got = walked[head]
        assert got["values"] == spec["values"], head
        assert got["end"] == spec["end"], (head, got)
        if spec["end"] == "cycle":
            assert got["at"] == got["addresses"][spec["cycle_to"]], head
        if spec["end"] == "unmapped":
            assert got["at"] == spec["bad_address"], head
        if spec["end"] == "broken":
            assert got["at"] == strays[head], head


def strays(synthetic, which, gdb_batch):
    """{head: the stray next of its last element}, as gdb reads it in the core `which` (the
    kernel core and the gcore come from two runs of the fixture)."""
    heads = {h: s for h, s in synthetic["expected"]["lists"].items() if "stray_to" in s}
    nxt = {"QLIST": "le_next", "QTAILQ": "tqe_next"}
    out = gdb_batch(synthetic["exe"], synthetic[which], commands=[
        f"p/x {h}_items[{len(s['values']) - 1}].{s['field']}.{nxt[s['kind']]}"
        for h, s in heads.items()])
    values = [int(v, 16) for v in re.findall(r"^\$\d+ = (0x[0-9a-f]+)", out, re.M)]
    assert len(values) == len(heads), out
    return dict(zip(heads, values))


@pytest.mark.parametrize("which", ["kernel_core", "gcore"])
def test_corefile_backend(synthetic, which, gdb_batch):
    with corefile.open(synthetic[which], exe=synthetic["exe"]) as prog:
        check(walk_all(CoreTarget(prog), synthetic["expected"]["lists"]), synthetic["expected"],
              strays(synthetic, which, gdb_batch))


@pytest.mark.parametrize("which", ["kernel_core", "gcore"])
def test_gdb_backend(synthetic, which, gdb_batch):
    out = gdb_batch(synthetic["exe"], synthetic[which], script=GDB_SCRIPT)
    line = next(x for x in out.splitlines() if x.startswith("WALK "))
    check(json.loads(line[5:]), synthetic["expected"], strays(synthetic, which, gdb_batch))
