"""A QEMU whose debug info lacks a member, made from the real fixture cores: the CLI's
CoreTarget behind a wrapper whose types leave out QEMUBH.name, AioHandler.pfd,
QEMUTimer.scale and BlockDriverState.node_name. Each record still has every other field,
equal to what gdb prints for the same core (BHs, fd handlers, timers) and to what QEMU
said over QMP before the dump (block nodes); the hidden field is null and named in
`absent`."""

import argparse
import json
from collections import Counter
from types import SimpleNamespace

import pytest

import corefile
import oracle
from qemugdb import cmd
from qemugdb.commands import REGISTRY
from qemugdb.core.target import CoreTarget
from qemugdb.target import Target

pytestmark = pytest.mark.slow

HIDDEN = {"QEMUBH": {"name"}, "AioHandler": {"pfd"}, "QEMUTimer": {"scale"},
          "BlockDriverState": {"node_name"}}


class HiddenType:
    """A type of the wrapped target, its structs without the members HIDDEN names
    (in every type reached through it: members' types, pointer and array targets)."""

    def __init__(self, inner, wrap):
        self._inner, self._wrap, self._members = inner, wrap, None

    def __getattr__(self, name):
        value = getattr(self._inner, name)
        if name == "target":
            return self._wrap(value)
        if name == "members":
            if self._members is None:
                gone = HIDDEN.get(self._inner.name, ()) if self._inner.kind in (
                    "struct", "union") else ()
                self._members = [SimpleNamespace(name=m.name, type=self._wrap(m.type),
                                                 offset=m.offset, bit_size=m.bit_size,
                                                 bit_offset=m.bit_offset)
                                 for m in value if m.name not in gone]
            return self._members
        return value


class HidingTarget(Target):
    """`inner` (a CoreTarget) as a QEMU whose debug info lacks the HIDDEN members."""

    def __init__(self, inner):
        self.inner = inner
        self._types = {}

    def _wrap(self, type_):
        if type_ is None:
            return None
        if id(type_) not in self._types:
            self._types[id(type_)] = (type_, HiddenType(type_, self._wrap))
        return self._types[id(type_)][1]

    def read(self, address, size):
        return self.inner.read(address, size)

    def lookup_type(self, name):
        return self._wrap(self.inner.lookup_type(name))

    def lookup_enumerator(self, name):
        return self._wrap(self.inner.lookup_enumerator(name))

    def variable_address(self, name, file=None, thread=None, function=None):
        address, type_ = self.inner.variable_address(name, file=file, thread=thread,
                                                     function=function)
        return address, self._wrap(type_)

    def function_address(self, name):
        return self.inner.function_address(name)

    def threads(self):
        return self.inner.threads()

    def process(self):
        return self.inner.process()

    def symbolize(self, pc):
        return self.inner.symbolize(pc)

    def unwind(self, registers):
        return self.inner.unwind(registers)


COMMANDS = ("bhs", "handlers", "timers", "block-graph")


def run(target, name, fmt="json"):
    """`qemu-coredump NAME --format FMT` as the CLI runs it, on `target`."""
    command = REGISTRY[name]
    args = argparse.Namespace(format=fmt, ctx=None)
    text = command.render(command.run(target, args), fmt, args)
    return json.loads(text) if fmt == "json" else text


@pytest.fixture
def outputs(qsd_core, tmp_path):
    """{"full": {command: JSON}, "hidden": {command: JSON}} on one core."""
    cmd.load()
    with corefile.open(qsd_core["core"], exe=qsd_core["exe"], cache_dir=str(tmp_path)) as p:
        target = CoreTarget(p)
        qsd_core["full"] = {c: run(target, c) for c in COMMANDS}
        hiding = HidingTarget(target)
        qsd_core["hidden"] = {c: run(hiding, c) for c in COMMANDS}
        qsd_core["hidden_text"] = {c: run(hiding, c, "text") for c in ("bhs", "handlers")}
    return qsd_core


def without(record, *names):
    return {k: v for k, v in record.items() if k not in names + ("absent",)}


def check_fields(full, hidden, names):
    """Each hidden-run record lacks `names` (null, in absent) and equals the full run's
    otherwise; neither run has errors."""
    assert len(full) == len(hidden)
    for f, h in zip(full, hidden):
        assert f["error"] is None and f["absent"] == []
        assert h["error"] is None and sorted(h["absent"]) == sorted(names)
        assert all(h[n] is None for n in names)
        assert without(h, *names) == without(f, *names)


def test_event_loop_records_without_a_member_equal_gdbs(outputs, gdb_batch):
    full, hidden = outputs["full"], outputs["hidden"]
    check_fields(full["bhs"]["items"], hidden["bhs"]["items"], ["name"])
    check_fields(full["handlers"]["items"], hidden["handlers"]["items"], ["fd", "events"])
    check_fields(full["timers"]["items"], hidden["timers"]["items"], ["scale"])
    assert hidden["handlers"]["items"] and hidden["timers"]["items"]
    contexts = {h["ctx"] for h in hidden["handlers"]["items"]}
    gdb = oracle.gdb_event_loop(outputs, contexts,
                                [t["address"] for t in hidden["timers"]["items"]], gdb_batch)
    bhs = [b for b in hidden["bhs"]["items"] if b["slice"] is None]
    assert {b["address"]: [b["cb_symbol"], b["opaque"], b["flags"]] for b in bhs} == gdb["bhs"]
    assert {h["address"]: [full_h["fd"], h["callbacks"].get("io_read"),
                           h["callbacks"].get("io_write"), h["opaque"]]
            for h, full_h in zip(hidden["handlers"]["items"], full["handlers"]["items"])} \
        == gdb["handlers"]
    assert {t["address"]: [t["cb_symbol"], t["opaque"], t["expire_time"], full_t["scale"]]
            for t, full_t in zip(hidden["timers"]["items"], full["timers"]["items"])} \
        == gdb["timers"]
    if bhs:
        assert "n/a: this QEMU's QEMUBH has no name" in outputs["hidden_text"]["bhs"]
    assert "n/a: this QEMU's AioHandler has no events, fd" in outputs["hidden_text"]["handlers"]


def test_block_nodes_without_node_name_equal_qmps(outputs):
    full, hidden = outputs["full"]["block-graph"], outputs["hidden"]["block-graph"]
    nodes = [n for n in hidden["nodes"] if n["type"] == "block-driver"]
    check_fields([n for n in full["nodes"] if n["type"] == "block-driver"], nodes, ["name"])
    assert hidden["edges"] == full["edges"]
    with open(f"{outputs['oracle']}/query-named-block-nodes.json") as f:
        qmp = json.load(f)
    assert Counter((n["driver"], n["filename"], n["read_only"]) for n in nodes if n["in_graph"]) \
        == Counter((q["drv"], q["file"], q["ro"]) for q in qmp)
