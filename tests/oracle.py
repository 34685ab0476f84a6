"""Readers of the oracle files captured beside each fixture core, and gdb's own walks of a
core (never our own output)."""

import json
import re
from pathlib import Path

import pytest

import corelist  # fixtures/, on sys.path through conftest.py

def fixture_core(name):
    """The meta dict of fixture core NAME; a core not made yet fails the test, saying how
    to make it."""
    try:
        return corelist.core(name)
    except corelist.CoreMissing as e:
        pytest.fail(str(e), pytrace=False)


_THREAD = re.compile(r"^Thread (\d+) ")
# gdb prints "in  () at LIB" (an empty name) for some pcs without a symbol in gcore cores.
_FRAME = re.compile(r"^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(<signal handler called>|\S*)")


def parse_gdb_bt(text):
    """{thread number: [(function, pc or None)]} from `thread apply all bt` output;
    function is None for "??" (or no name), "<signal>" for the signal trampoline."""
    threads = {}
    frames = None
    for line in text.splitlines():
        m = _THREAD.match(line)
        if m:
            frames = threads[int(m.group(1))] = []
            continue
        m = _FRAME.match(line)
        if m and frames is not None and int(m.group(1)) == len(frames):
            name = m.group(3)
            name = {"??": None, "": None, "<signal handler called>": "<signal>"}.get(name, name)
            frames.append((name, int(m.group(2), 16) if m.group(2) else None))
    return threads


def gdb_bt(meta):
    """parse_gdb_bt of the core's oracle/gdb-bt.txt."""
    return parse_gdb_bt((Path(meta["oracle"]) / "gdb-bt.txt").read_text())


def qmp(meta, name):
    """The QMP answer captured before the dump, e.g. qmp(meta, "query-jobs")."""
    return json.loads((Path(meta["oracle"]) / f"{name}.json").read_text())


def named_block_graph(graph):
    """An x-debug-query-block-graph answer with nodes by (type, name) instead of ids (which
    differ between processes): (nodes, edges), sorted, to compare two answers."""
    names = {n["id"]: (n["type"], n["name"]) for n in graph["nodes"]}
    return sorted(names.values()), sorted(
        (names[e["parent"]], names[e["child"]], e["name"], tuple(sorted(e["perm"])),
         tuple(sorted(e["shared-perm"]))) for e in graph["edges"])


_EVENT_LOOP_SCRIPT = """
import json
def sym(v):
    s = str(v)
    return s[s.index("<") + 1:s.rindex(">")] if "<" in s else None
out = {"bhs": {}, "handlers": {}, "timers": {}}
for ctx in CONTEXTS:
    c = gdb.parse_and_eval("*(AioContext *)%d" % ctx)
    bh = c["bh_list"]["slh_first"]
    while int(bh):
        out["bhs"][int(bh)] = [sym(bh["cb"]), int(bh["opaque"]), int(bh["flags"])]
        bh = bh["next"]["sle_next"]
    h = c["aio_handlers"]["lh_first"]
    while int(h):
        out["handlers"][int(h)] = [int(h["pfd"]["fd"]), sym(h["io_read"]), sym(h["io_write"]),
                                   int(h["opaque"])]
        h = h["node"]["le_next"]
for a in TIMERS:
    t = gdb.parse_and_eval("*(QEMUTimer *)%d" % a)
    out["timers"][a] = [sym(t["cb"]), int(t["opaque"]), int(t["expire_time"]), int(t["scale"])]
print("@@" + json.dumps(out))
"""


def gdb_event_loop(core, contexts, timers, gdb_batch):
    """gdb's own walk of the core: {"bhs": {address: [cb symbol, opaque, flags]} of each
    AioContext's bh_list in CONTEXTS, "handlers": {address: [fd, io_read, io_write,
    opaque]} of their aio_handlers, "timers": {address: [cb, opaque, expire_time, scale]}
    of the QEMUTimers at TIMERS}; a symbol is None where gdb names no function."""
    script = _EVENT_LOOP_SCRIPT.replace("CONTEXTS", repr(sorted(contexts))).replace(
        "TIMERS", repr(sorted(timers)))
    stdout = gdb_batch(core["exe"], core["core"], script=script, timeout=300,
                       debug_dirs=corelist.gdb_debug_dirs(core.get("debug_dir")))
    out = json.loads(stdout.split("@@", 1)[1])
    return {kind: {int(a): v for a, v in records.items()} for kind, records in out.items()}


# bs->opaque of a throttle filter node is its ThrottleGroupMember; tgm->throttle_state is
# &ThrottleGroup.ts; each throttled_reqs[direction] is a CoQueue of Coroutines (co_queue_next).
_THROTTLE_SCRIPT = """
import json
tgm_t = gdb.lookup_type("ThrottleGroupMember").pointer()
tg_t = gdb.lookup_type("ThrottleGroup")
ts_offset = next(f.bitpos // 8 for f in tg_t.fields() if f.name == "ts")
out = {}
bs = gdb.parse_and_eval("'block.c'::all_bdrv_states")["tqh_first"]
while bs:
    if bs["drv"] and bs["drv"]["format_name"].string() == "throttle":
        tgm = bs["opaque"].cast(tgm_t)
        tg = gdb.Value(int(tgm["throttle_state"]) - ts_offset).cast(tg_t.pointer())
        reqs = tgm["throttled_reqs"]
        queued = []
        for i in range(reqs.type.range()[1] + 1):
            cos, co = [], reqs[i]["entries"]["sqh_first"]
            while co and len(cos) < 100000:
                cos.append(int(co))
                co = co["co_queue_next"]["sqe_next"]
            queued.append(cos)
        out[bs["node_name"].string()] = {
            "group": tg["name"].string(), "queued": queued,
            "pending": [int(tgm["pending_reqs"][i]) for i in range(len(queued))]}
    bs = bs["bs_list"]["tqe_next"]
print("@@" + json.dumps(out))
"""


def gdb_throttle_nodes(core, gdb_batch):
    """gdb's walk of the core's throttle filter nodes: {node name: {"group": its throttle
    group's name, "queued": [[coroutine address] per direction], "pending": [pending_reqs
    per direction]}}."""
    stdout = gdb_batch(core["exe"], core["core"], script=_THROTTLE_SCRIPT, timeout=300,
                       debug_dirs=corelist.gdb_debug_dirs(core.get("debug_dir")))
    return json.loads(stdout.split("@@", 1)[1])


_EXPORTS_SCRIPT = """
import json
out, exp = {}, gdb.parse_and_eval("'export.c'::block_exports")["lh_first"]
while exp and len(out) < 10000:
    out[exp["id"].string()] = int(exp["blk"])
    exp = exp["next"]["le_next"]
print("@@" + json.dumps(out))
"""


def gdb_block_exports(core, gdb_batch):
    """gdb's walk of export.c's block_exports: {export id: its BlockBackend's address}."""
    stdout = gdb_batch(core["exe"], core["core"], script=_EXPORTS_SCRIPT, timeout=300,
                       debug_dirs=corelist.gdb_debug_dirs(core.get("debug_dir")))
    return json.loads(stdout.split("@@", 1)[1])


# util/qemu-timer.c: every QEMUTimerList of a clock is on qemu_clocks[type].timerlists
# (main_loop_tlg's and each AioContext's alike), its active_timers chained by next.
_TIMERS_SCRIPT = """
import json
def sym(v):
    s = str(v)
    return s[s.index("<") + 1:s.rindex(">")] if "<" in s else None
clocks = gdb.parse_and_eval("'qemu-timer.c'::qemu_clocks")
out = {}
for i in range(clocks.type.range()[1] + 1):
    clock = str(clocks[i]["type"]).removeprefix("QEMU_CLOCK_").lower()
    tl = clocks[i]["timerlists"]["lh_first"]
    while tl:
        t = tl["active_timers"]
        while t and len(out) < 100000:
            out[int(t)] = [clock, sym(t["cb"]), int(t["opaque"]), int(t["expire_time"])]
            t = t["next"]
        tl = tl["list"]["le_next"]
print("@@" + json.dumps(out))
"""


def gdb_timers(core, gdb_batch):
    """gdb's walk of every clock's timer lists: {QEMUTimer address: [clock ("realtime",
    "virtual"...), cb symbol, opaque, expire_time]}."""
    stdout = gdb_batch(core["exe"], core["core"], script=_TIMERS_SCRIPT, timeout=300,
                       debug_dirs=corelist.gdb_debug_dirs(core.get("debug_dir")))
    return {int(a): v for a, v in json.loads(stdout.split("@@", 1)[1]).items()}


# Each node's children (bs->children, linked by next), the role's bits named by gdb from
# enum BdrvChildRoleBits' own enumerators (single bits only: BDRV_CHILD_IMAGE is
# DATA | METADATA).
_CHILD_ROLES_SCRIPT = """
import json
bits = [(f.name, f.enumval) for f in gdb.lookup_type("enum BdrvChildRoleBits").fields()
        if f.enumval and not f.enumval & (f.enumval - 1)]
out = []
bs = gdb.parse_and_eval("'block.c'::all_bdrv_states")["tqh_first"]
while bs:
    c = bs["children"]["lh_first"]
    while c:
        role = int(c["role"])
        out.append([int(bs), c["name"].string(), int(c["bs"]),
                    sorted(n.removeprefix("BDRV_CHILD_").lower() for n, v in bits if role & v)])
        c = c["next"]["le_next"]
    bs = bs["bs_list"]["tqe_next"]
print("@@" + json.dumps(out))
"""


def gdb_child_roles(core, gdb_batch):
    """gdb's walk of every node's children: [(parent address, child name, child node's
    address, [role bits, lower case without BDRV_CHILD_])]."""
    stdout = gdb_batch(core["exe"], core["core"], script=_CHILD_ROLES_SCRIPT, timeout=300,
                       debug_dirs=corelist.gdb_debug_dirs(core.get("debug_dir")))
    return [tuple(c) for c in json.loads(stdout.split("@@", 1)[1])]
