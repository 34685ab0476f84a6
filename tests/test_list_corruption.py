"""The list walkers (qemugdb/walkers/queue.py) on the synthetic fixture's well-formed and broken
lists (self-cycle, cycle after N, NULL next, next into unmapped memory), through gdb and
through corefile, against what qemu_shapes.c put there (expected.json)."""

import json
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


def check(walked, expected):
    for head, spec in expected["lists"].items():
        got = walked[head]
        assert got["values"] == spec["values"], head
        assert got["end"] == spec["end"], (head, got)
        if spec["end"] == "cycle":
            assert got["at"] == got["addresses"][spec["cycle_to"]], head
        if spec["end"] == "unmapped":
            assert got["at"] == spec["bad_address"], head


@pytest.mark.parametrize("which", ["kernel_core", "gcore"])
def test_corefile_backend(synthetic, which):
    with corefile.open(synthetic[which], exe=synthetic["exe"]) as prog:
        check(walk_all(CoreTarget(prog), synthetic["expected"]["lists"]), synthetic["expected"])


@pytest.mark.parametrize("which", ["kernel_core", "gcore"])
def test_gdb_backend(synthetic, which, gdb_batch):
    out = gdb_batch(synthetic["exe"], synthetic[which], script=GDB_SCRIPT)
    line = next(x for x in out.splitlines() if x.startswith("WALK "))
    check(json.loads(line[5:]), synthetic["expected"])
