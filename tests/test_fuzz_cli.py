"""The CLI backend's fuzzer (tests/fuzz/fuzz_cli.py): a CI-sized deterministic run on the
corrupt fixture (QEMU-shaped structures), the places its object mutations write checked
against gdb, and the differential check's verdicts on hand-made outputs."""

import re

import pytest

from fuzz import fuzz_cli, fuzz_core, qemu_objects


def test_smoke(tmp_path):
    """One input per command variant of the CLI (every command, format and switch):
    none fails, the differential check compares records and finds no mismatch."""
    variants = fuzz_cli.load_variants()
    args = fuzz_cli.parser().parse_args([
        "-n", str(len(variants)), "--seed", "5", "--jobs", "1", "--batch", "100",
        "--out", str(tmp_path / "out"), "--seeds", "corrupt-kernel"])
    summary = fuzz_cli.fuzz(args)
    failures = [p.read_text() for p in (tmp_path / "out" / "failures").glob("*.json")]
    assert not summary["failure_classes"], failures[:3]
    assert summary["outcomes"].get("skipped", 0) <= len(variants) // 10, summary["outcomes"]
    assert sorted(summary["by_variant"]) == sorted(variants)
    assert all(sum(c.values()) == 1 for c in summary["by_variant"].values())
    assert len(variants) > 30 and any("qmp-json" in v for v in variants) and \
        "report --html" in variants
    assert summary["differential"].get("same", 0) > 0, summary["differential"]
    assert not summary["mismatch_inputs"], summary["differential"]


def test_object_places_are_gdbs(corrupt, gdb_batch, tmp_path):
    """The address an object operation writes is gdb's &((TYPE *)ADDR)->MEMBER."""
    seed = fuzz_core.Seed("corrupt-kernel", corrupt["kernel_core"], corrupt["exe"])
    info, _, _ = fuzz_cli.seed_info(seed, tmp_path / "scratch", str(tmp_path / "cache"),
                                    tmp_path / "baselines", wanted=[])
    objs = info.objects
    assert {"BlockDriverState", "BdrvChild", "AioContext", "Coroutine"} <= set(objs.kinds())
    ops, exprs = [], []
    for kind in objs.kinds():
        for member in sorted(objs.layouts[kind])[::7][:4]:
            ops.append({"op": "object", "kind": kind, "index": 0, "member": member,
                        "value": {"int": 1}})
            exprs.append(f"p/x (unsigned long)&((struct {objs.types[kind]} *)"
                         f"{objs.addresses[kind][0]})->{member}")
    out = gdb_batch(corrupt["exe"], commands=exprs)
    gdb_addrs = [int(m, 16) for m in re.findall(r"= (0x[0-9a-f]+)", out)]
    ours = [qemu_objects.resolve(op, objs, lambda a, n: bytes(n))[0] for op in ops]
    assert len(ours) >= 12 and gdb_addrs == ours


def _objects():
    objs = qemu_objects.SeedObjects(
        {"BlockDriverState": [0x1000, 0x2000], "BlockBackend": [0x3000]},
        {"BlockDriverState": ["a", "b"], "BlockBackend": ["blk"]},
        {"BlockDriverState": {"drv": qemu_objects.Leaf(8, 8, "pointer"),
                              "refcnt": qemu_objects.Leaf(16, 4, "int")},
         "BlockBackend": {"root": qemu_objects.Leaf(0, 8, "pointer")}})
    return objs


BASE = {"nodes": [{"id": "0x1000", "driver": "raw", "refcnt": 1, "error": None},
                  {"id": "0x2000", "driver": "file", "refcnt": 1, "error": None},
                  {"id": "0x3000", "root": "0x1000", "error": None}],
        "errors": []}


def _with(changes, errors=()):
    nodes = [dict(n, **changes.get(n["id"], {})) for n in BASE["nodes"]
             if changes.get(n["id"]) != "drop"]
    return {"nodes": nodes, "errors": list(errors)}


@pytest.mark.parametrize("value, mut, verdict", [
    ({"ptr": "wild"}, {}, "same"),
    ({"ptr": "wild"}, {"0x1000": {"driver": None, "error": "cannot read memory at 0xdead0000"}},
     "marked"),
    ({"ptr": "wild"}, {"0x1000": {"driver": None}}, "mismatch: mutated object changed unmarked"),
    ({"ptr": "null"}, {"0x1000": {"driver": None}}, "silent: plausible value"),
    ({"ptr": "wild"}, {"0x2000": {"driver": "qcow2"}}, "mismatch: other object changed"),
    ({"ptr": "wild"}, {"0x2000": "drop"}, "mismatch: other object dropped unmarked"),
    ({"ptr": "null"}, {"0x2000": "drop"}, "silent: plausible value"),   # a list ends early
    ({"ptr": "wild"}, {"0x3000": {"root": None}}, "refers to the mutated object"),
])
def test_differential_verdicts(value, mut, verdict):
    """A wild pointer written into node 0x1000's drv: each way the outputs can differ."""
    recipe = {"ops": [{"op": "object", "kind": "BlockDriverState", "index": 0,
                       "member": "drv", "value": value}]}
    verdicts = fuzz_cli.differential(recipe, _objects(), BASE, _with(mut))
    assert verdict in verdicts, verdicts
    assert sum(v.startswith("mismatch") for v in verdicts) == verdict.startswith("mismatch")


def test_dropped_from_a_marked_listing_is_not_a_mismatch():
    recipe = {"ops": [{"op": "object", "kind": "BlockDriverState", "index": 0,
                       "member": "drv", "value": {"ptr": "wild"}}]}
    mut = _with({"0x2000": "drop"}, errors=["list cycles back to 0x1000"])
    verdicts = fuzz_cli.differential(recipe, _objects(), BASE, mut)
    assert verdicts["dropped from a marked listing"] == 1
    assert not [v for v in verdicts if v.startswith("mismatch")], verdicts


def test_narrow_keeps_the_values_a_reader_can_tell_are_bad():
    """A mismatch in a recipe mixing a plausible value (an integer, NULL) with a bad one
    is judged again on the bad one alone; nothing to narrow otherwise."""
    wild = {"op": "object", "kind": "BlockDriverState", "index": 0, "member": "drv",
            "value": {"ptr": "wild"}}
    null = dict(wild, index=1, value={"ptr": "null"})
    count = dict(wild, member="refcnt", value={"int": 0})
    mismatch = {"mismatch: other object changed": 1}
    recipe = {"seed": "s", "command": "c", "ops": [null, wild, count]}
    assert fuzz_cli.narrow(recipe, _objects(), mismatch) == {**recipe, "ops": [wild]}
    assert fuzz_cli.narrow(recipe, _objects(), {"same": 3}) is None
    assert fuzz_cli.narrow({**recipe, "ops": [wild]}, _objects(), mismatch) is None
    assert fuzz_cli.narrow({**recipe, "ops": [null, count]}, _objects(), mismatch) is None


def test_a_coroutine_that_lost_a_reason_to_a_marked_root_is_not_a_mismatch():
    """A coroutine reached through a throttle queue and a tracked request keeps the first
    when the node list breaks (marked): not a mismatch; unmarked, it is one."""
    recipe = {"ops": [{"op": "object", "kind": "BlockDriverState", "index": 0,
                       "member": "drv", "value": {"ptr": "wild"}}]}
    co = {"address": 0x9000, "entry": "f", "waits": ["throttled read", "tracked request"]}
    base = {"coroutines": [co], "errors": []}
    lost = {"coroutines": [dict(co, waits=["throttled read"])],
            "errors": ["tracked requests: list broken at 0x1000"]}
    verdicts = fuzz_cli.differential(recipe, _objects(), base, lost)
    assert verdicts == {"lost a reason to a marked root": 1}, verdicts
    assert fuzz_cli.mismatched(fuzz_cli.differential(recipe, _objects(), base,
                                                     dict(lost, errors=[])))
