"""Coroutines parked behind block requests, on the hang cores made for them
(fixtures/hangs.py): writes waiting for a serialising request (BdrvTrackedRequest
.wait_queue), reads queued on a quiesced BlockBackend (queued_requests), and the holder of a
node's reqs_lock (a CoMutex before QEMU 8.0).

Through the CLI (coroutines, waits, bdrv NODE, locks, --json) and through gdb (qemu
coroutines, qemu waits), checked against truth.json: the requests the scenario sent and the
request and coroutine addresses gdb read in the live process before the dump; against the
QMP answers captured before the stall; and against gdb's own reading of the core (each
coroutine's entry function; the drained node's tracked requests). Never against our own
output."""

import json
import re
import subprocess
from pathlib import Path

import pytest

import hangs
from gdbrun import run_gdb
from oracle import fixture_core, qmp

pytestmark = pytest.mark.slow

SERIALISING = [n for n in hangs.NAMES if n.startswith("hang-serialising-")]
QUEUED = [n for n in hangs.NAMES if n.startswith("hang-queued-requests-")]
REQS_LOCK = [n for n in hangs.NAMES if n.startswith("hang-reqs-lock-")]


def truth(meta, key):
    return json.loads((Path(meta["oracle"]) / "truth.json").read_text())[key]


def cli(meta, command, *args):
    """qemu-coredump COMMAND CORE ARGS --json: its JSON; complete (exit 0)."""
    proc = subprocess.run(["qemu-coredump", command, meta["core"], *args, "--exe", meta["exe"],
                           "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def in_gdb(meta, *commands):
    """qemu COMMAND --format json in gdb on the core, for each command: their JSON."""
    parts, stderr = run_gdb([meta["exe"], meta["core"]],
                            [f"qemu {c} --format json" for c in commands], timeout=600)
    assert "Traceback" not in stderr, stderr
    return [json.loads(p) for p in parts]


def gdb_entries(meta, coroutines):
    """{Coroutine address: its entry function} as gdb reads them in the core."""
    script = "".join(f"print('ENTRY', {a}, gdb.parse_and_eval('((Coroutine *) {a})->entry')"
                     ".format_string(symbols=True))\n" for a in coroutines)
    (text,), _ = run_gdb([meta["exe"], meta["core"]], [f"python exec({script!r})"],
                         load=False)
    return {int(a): name for a, name in re.findall(r"^ENTRY (\d+) .*<(\w+)>$", text, re.M)}


def coroutines_with(result, prefix):
    """{address: record} of the coroutines one of whose reasons starts with PREFIX."""
    return {c["address"]: c for c in result["coroutines"]
            if any(w.startswith(prefix) for w in c["waits"])}


# ---------------------------------------------------------------- serialising requests

def check_serialising(meta, coroutines, waits):
    want = truth(meta, "serialising")
    node, holder, waiters = want["node"], want["holder"], want["waiters"]
    request = f"offset {holder['offset']} bytes {holder['bytes']}"
    parked = coroutines_with(coroutines, f"waits for serialising request on node {node}: ")
    assert set(parked) == {w["co"] for w in waiters}
    for w in waiters:
        [why] = [x for x in parked[w["co"]]["waits"] if x.startswith("waits for serialising")]
        assert why.endswith(request) and "WRITE" in why, why
    by_address = {c["address"]: c for c in coroutines["coroutines"]}
    assert any(x.startswith(f"tracked request on node {node}: ") and x.endswith(request)
               for x in by_address[holder["co"]]["waits"])
    # waits: each waiter waits (coqueue) for the holder's request, released by its coroutine
    edges = sorted((e["waiter"], e["holder"], e["address"], e["what"])
                   for e in waits["edges"] if e["kind"] == "coqueue")
    assert edges == sorted((f"coroutine {w['co']:#x}", f"coroutine {holder['co']:#x}",
                            holder["request"],
                            f"serialising request {holder['request']:#x} on node {node}")
                           for w in waiters)


@pytest.mark.parametrize("name", SERIALISING)
def test_serialising_waiters_through_the_cli(name):
    meta = fixture_core(name)
    want = truth(meta, "serialising")
    # QMP before the stall: the export the writes went to is the blkdebug node
    [export] = qmp(meta, "query-block-exports")
    [node] = [n for n in qmp(meta, "query-named-block-nodes")
              if n["node-name"] == want["node"]]
    assert (export["node-name"], node["drv"]) == (want["node"], "blkdebug")
    coroutines = cli(meta, "coroutines")
    check_serialising(meta, coroutines, cli(meta, "waits"))
    # bdrv NODE: every tracked request, its coroutine, serialising flag and waiting_for
    requests = {r["address"]: r for r in cli(meta, "bdrv", want["node"])["requests"]}
    sent = [want["holder"], *want["waiters"]]
    assert set(requests) == {r["request"] for r in sent}
    for r in sent:
        got = requests[r["request"]]
        assert (got["offset"], got["bytes"], got["co"], got["serialising"], got["type"]) == (
            r["offset"], r["bytes"], r["co"], True, "write")
        assert (got["waiting_for"] or 0) == r["waiting_for"]
    # the writes are the NBD server's: gdb names each coroutine's entry
    entries = gdb_entries(meta, [r["co"] for r in sent])
    assert set(entries.values()) == {"nbd_trip"}, entries
    entry = {c["address"]: c["entry"] for c in coroutines["coroutines"]}
    assert {co: entry[co] for co in entries} == entries


@pytest.mark.parametrize("name", SERIALISING)
def test_serialising_waiters_in_gdb(name):
    meta = fixture_core(name)
    check_serialising(meta, *in_gdb(meta, "coroutines", "waits"))


# ---------------------------------------------------------------- queued_requests

# gdb Python on the core: "DRAINED JSON": the tracked requests of node NODE (type, co),
# BlockBackend BLK's quiesce_counter, and gdb's thread number of each LWP.
GDB_DRAINED = """
import json
reqs, bs = [], gdb.parse_and_eval("'block.c'::all_bdrv_states")["tqh_first"]
while bs:
    if bs["node_name"].string() == NODE:
        req = bs["tracked_requests"]["lh_first"]
        while req:
            reqs.append({"type": str(req["type"]), "co": int(req["co"])})
            req = req["list"]["le_next"]
    bs = bs["bs_list"]["tqe_next"]
blk = gdb.parse_and_eval("(BlockBackend *) %d" % BLK)
print("DRAINED " + json.dumps({"requests": reqs, "quiesce_counter": int(blk["quiesce_counter"]),
                               "threads": {t.ptid[1]: t.num
                                           for t in gdb.selected_inferior().threads()}}))
"""


def gdb_drained(meta, want):
    """gdb's reading of the core: (the truncate request's coroutine on the drained node,
    the BlockBackend's quiesce_counter, {LWP: gdb's thread number})."""
    script = GDB_DRAINED.replace("NODE", repr(want["node"])).replace("BLK", str(want["address"]))
    (text,), _ = run_gdb([meta["exe"], meta["core"]], [f"python exec({script!r})"],
                         load=False)
    got = json.loads(re.search(r"^DRAINED (.*)$", text, re.M).group(1))
    [truncate] = [r["co"] for r in got["requests"] if r["type"] == "BDRV_TRACKED_TRUNCATE"]
    return truncate, got["quiesce_counter"], {int(k): v for k, v in got["threads"].items()}


def check_drained(meta, waits):
    """Each queued coroutine waits for the end of the drained section (block_resize's),
    released by the truncate's coroutine, whose thread-pool I/O the stalled worker holds:
    the chain from each ends there, and the diagnosis says so."""
    want = truth(meta, "queued")
    truncate, quiesce, num = gdb_drained(meta, want)
    assert quiesce > 0
    [stall] = [b for b in truth(meta, "blocked") if b["waits_for"]["kind"] == "stall"]
    assert stall["waits_for"]["call"] == "ftruncate64"
    worker = f"thread {num[stall['tid']]}"
    what = f"the end of the drained section on BlockBackend {want['backend']} " \
           f"(quiesce_counter {quiesce})"
    truncate_id = f"coroutine {truncate:#x}"
    edges = sorted((e["waiter"], e["holder"], e["address"], e["what"])
                   for e in waits["edges"] if e["kind"] == "drained")
    assert edges == sorted((f"coroutine {co:#x}", truncate_id, want["address"], what)
                           for co in want["coroutines"])
    # the CoQueue is not also left as a wait nobody releases
    assert not [e for e in waits["edges"] if e["kind"] == "coqueue"]
    paths = {c["path"][0]: c for c in waits["chains"]}
    for co in want["coroutines"]:
        chain = paths[f"coroutine {co:#x}"]
        assert chain["path"] == [f"coroutine {co:#x}", truncate_id, worker], chain
        assert chain["end"].startswith(f"worker {worker} is sleeping (pause)"), chain
    diagnosis = waits["diagnosis"]
    assert diagnosis.startswith(f"{len(want['coroutines'])} coroutines wait for {what}; "
                                f"{truncate_id} (tracked request truncate on node "
                                f"{want['node']}) waits for I/O completion (thread pool)"), \
        diagnosis
    assert f"released by {worker}; worker {worker} is sleeping (pause)" in diagnosis, diagnosis


def check_queued(meta, coroutines, locks):
    want = truth(meta, "queued")
    queued = coroutines_with(coroutines, f"queued on BlockBackend {want['backend']} while it is "
                                         "quiesced")
    assert set(queued) == set(want["coroutines"])
    [queue] = [lk for lk in locks["locks"]
               if lk["name"] == f"BlockBackend {want['backend']}.queued_requests"]
    assert (queue["kind"], queue["waiting_coroutines"]) == ("CoQueue", want["coroutines"])
    return queued


@pytest.mark.parametrize("name", QUEUED)
def test_queued_requests_through_the_cli(name):
    meta = fixture_core(name)
    want = truth(meta, "queued")
    # QMP before the stall: the BlockBackend is drive0, over node disk0
    [device] = [d for d in qmp(meta, "query-block") if d["device"] == want["backend"]]
    assert device["inserted"]["node-name"] == want["node"]
    coroutines = cli(meta, "coroutines")
    queued = check_queued(meta, coroutines, cli(meta, "locks"))
    assert len(queued) == len(want["reads"])
    # the reads are qemu-io's aio_read (blk_aio_preadv): gdb names each coroutine's entry
    entries = gdb_entries(meta, want["coroutines"])
    assert set(entries.values()) == {"blk_aio_read_entry"}, entries
    assert {co: queued[co]["entry"] for co in entries} == entries
    check_drained(meta, cli(meta, "waits"))
    assert cli(meta, "report")["diagnosis"].startswith(f"{len(want['reads'])} coroutines wait "
                                                       "for the end of the drained section")


@pytest.mark.parametrize("name", QUEUED)
def test_queued_requests_in_gdb(name):
    meta = fixture_core(name)
    coroutines, locks, waits = in_gdb(meta, "coroutines", "locks", "waits")
    check_queued(meta, coroutines, locks)
    check_drained(meta, waits)


# ---------------------------------------------------------------- reqs_lock (QEMU < 8.0)

def check_reqs_lock(meta, coroutines, locks):
    want = truth(meta, "reqs_lock")
    holder = want["holder"]
    [lock] = [lk for lk in locks["locks"] if lk["name"] == f"node {want['node']}.reqs_lock"]
    assert (lock["kind"], lock["address"], lock["locked"], lock["count"], lock["holder"]) == (
        "CoMutex", want["address"], True, want["locked"], holder["co"])
    assert len(lock["waiting_coroutines"]) == want["waiters"]
    holders = coroutines_with(coroutines, f"holds reqs_lock of node {want['node']}")
    assert list(holders) == [holder["co"]]
    [rec] = holders.values()
    tids = {t["num"]: t["tid"] for t in locks["threads"]}
    assert (rec["state"], tids[rec["thread"]]) == (holder["state"], holder["tid"])
    return rec


@pytest.mark.parametrize("name", REQS_LOCK)
def test_reqs_lock_holder_through_the_cli(name):
    meta = fixture_core(name)
    want = truth(meta, "reqs_lock")
    [node] = [n for n in qmp(meta, "query-named-block-nodes") if n["node-name"] == want["node"]]
    assert node["drv"] == "raw"
    rec = check_reqs_lock(meta, cli(meta, "coroutines"), cli(meta, "locks"))
    # the holder is the NBD read's coroutine, stopped in its tracked_request_begin
    assert want["holder"]["frames"][:2] == ["qemu_co_mutex_unlock", "tracked_request_begin"]
    assert rec["entry"] == want["holder"]["frames"][-2] == "nbd_trip"
    assert want["holder"]["frames"][-1] == "coroutine_trampoline"
    # no thread waits for anything, and nothing waits for the lock
    waits = cli(meta, "waits")
    assert not [e for e in waits["edges"] if e["kind"] == "comutex"]
    assert waits["diagnosis"].startswith("Nothing is blocked"), waits["diagnosis"]


@pytest.mark.parametrize("name", REQS_LOCK)
def test_reqs_lock_holder_in_gdb(name):
    meta = fixture_core(name)
    check_reqs_lock(meta, *in_gdb(meta, "coroutines", "locks"))
