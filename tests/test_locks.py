"""qemu locks, qemu waits and the report's Diagnosis on real cores, through the CLI and gdb.

The hang fixtures (fixtures/hangs.py) are checked against the truth of how each hang was
made (truth.json: who waits for what, lock owners, the cycle); numbers the scenario does
not fix (a node's in_flight) against gdb's own reading of the core. The ordinary fixture
cores are idle: the BQL owner and each thread's flag match gdb's `p`, every thread is idle
(gdb's stacks show it polling or waiting for work) and the Diagnosis says nothing is
blocked."""

import json
import re
import subprocess

import pytest

import hangs
from gdbrun import run_gdb
from oracle import fixture_core  # noqa: E402

pytestmark = pytest.mark.slow

BACKENDS = ("cli", "gdb")
COMMANDS = ("locks", "waits", "report")   # report: QEMU only


_core = fixture_core


def outputs(meta, backend):
    """{command: JSON} of locks, waits and report on the core, by one backend."""
    commands = COMMANDS if meta.get("qemu_version") else COMMANDS[:2]
    if backend == "cli":
        out = {}
        for command in commands:
            proc = subprocess.run(["qemu-coredump", command, meta["core"], "--exe", meta["exe"],
                                   "--json"], capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr   # complete: the cores are read whole
            out[command] = json.loads(proc.stdout)
        return out
    parts, stderr = run_gdb([meta["exe"], meta["core"]],
                            [f"qemu {c} --format json" for c in commands], timeout=600)
    assert "Traceback" not in stderr, stderr
    return {c: json.loads(p) for c, p in zip(commands, parts)}


# ---------------------------------------------------------------- hang fixtures

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", hangs.NAMES)
def test_hang_matches_its_truth(name, backend):
    meta = _core(name)
    truth = json.load(open(f"{meta['oracle']}/truth.json"))
    got = outputs(meta, backend)
    if "report" in got:
        assert got["report"]["diagnosis"] == got["waits"]["diagnosis"]
    check_truth(truth, got["locks"], got["waits"])


# Every hang scenario on every version, live, in gdb attached to it.
LIVE = [(s, v) for s, sc in hangs.SCENARIOS.items() for v in sc.versions]


@pytest.mark.parametrize("scenario,version", LIVE)
def test_live_hang_in_gdb_matches_its_truth(scenario, version):
    with hangs.hung(scenario, version) as h:
        parts, stderr = run_gdb(["-p", str(h.pid)], ["qemu locks --format json",
                                                     "qemu waits --format json"], timeout=600)
        assert "Traceback" not in stderr, stderr
        check_truth(h.truth, *map(json.loads, parts))


def same_name(ours, want):
    """Our name of a mutex is the truth's: a variable's name, or for a member of an
    IOThread's AioContext ("AioContext.lock", "context": the IOThread) that AioContext's
    label and the member."""
    if "context" not in want:
        return ours == want["name"]
    kind, member = want["name"].split(".")
    return re.fullmatch(rf"{kind} 0x[0-9a-f]+ \(iothread {want['context']}\)\.{member}",
                        ours) is not None


def check_truth(truth, locks, waits):
    """Our locks and waits JSON say what truth.json says the scenario made."""
    diagnosis = waits["diagnosis"]
    by_tid = {t["tid"]: t for t in locks["threads"]}
    tid_of = {t["num"]: t["tid"] for t in locks["threads"]}
    num = {tid: t["num"] for tid, t in by_tid.items()}
    stalled = {s["tid"] for s in truth.get("stalled", [])}
    assert diagnosis, "no Diagnosis for a hung process"
    for blocked in truth["blocked"]:
        st, want = by_tid[blocked["tid"]], blocked["waits_for"]
        if want["kind"] == "stall":
            assert (st["state"], st["syscall"]) == ("sleeping", "pause"), st
            continue
        assert st["state"] == "blocked", st
        if want["kind"] == "mutex":
            w = st["waits_for"]
            assert (w["kind"], w["address"], w["owner_tid"]) == (
                "mutex", want["address"], want["owner"])
            assert same_name(w["name"], want)
            assert f"thread {st['num']} waits for mutex {w['name']}" in diagnosis
        elif want["kind"] == "thread-exit":
            assert (st["waits_for"]["kind"], st["waits_for"]["owner_tid"]) == ("join", want["tid"])
        elif want["kind"] == "drain":
            assert st["waits_for"]["kind"] == "drain"
            edges = [e for e in waits["edges"] if e["waiter"] == f"thread {st['num']}"]
            assert edges and all(f"{n} (in_flight " in e["what"] for n in want["nodes"]
                                 for e in edges)
            # The drain waits for request coroutines whose I/O the stalled workers hold, or
            # that run on the stalled IOThread, or that wait (coqueue) for a serialising
            # request of such a coroutine.
            for e in edges:
                assert e["holder"].startswith("coroutine ")
                io = [x for x in waits["edges"] if x["waiter"] == e["holder"]]
                serialising = {x["holder"] for x in io if x["kind"] == "coqueue"}
                if serialising:
                    io = [x for x in waits["edges"] if x["waiter"] in serialising]
                assert io and {x["kind"] for x in io} <= {"io-completion", "runs-on"}
                assert {tid_of[int(x["holder"].split()[1])] for x in io} <= stalled
            assert f"thread {st['num']} waits for a drain" in diagnosis
            assert all(n in diagnosis for n in want["nodes"])
            assert re.search(r"thread (\d+) is sleeping \(pause\)", diagnosis)
        else:
            pytest.fail(f"unknown truth {want}")
    for want in truth.get("locks", []):
        if want["kind"] == "mutex":
            [ours] = [lk for lk in locks["locks"] if lk["address"] == want["address"]]
            assert same_name(ours["name"], want)
            assert (ours["address"], ours["owner_tid"], ours["locked"]) == (
                want["address"], want["owner"], True)
            assert {tid_of[n] for n in ours["waiting_threads"]} >= set(want["waiters"])
            assert f"held by thread {num[want['owner']]}" in diagnosis
        elif want["kind"] == "comutex":
            [ours] = [lk for lk in locks["locks"] if lk["kind"] == "CoMutex" and re.fullmatch(
                rf"node {want['node']} \w+\.{want['member']}", lk["name"])]
            assert ours["count"] == want["locked"] and ours["holder"]
            assert len(ours["waiting_coroutines"]) == want["waiters"]
            io = [e for e in waits["edges"] if e["waiter"] == f"coroutine {ours['holder']:#x}"]
            assert io and {e["kind"] for e in io} == {"io-completion"}
            assert {tid_of[int(e["holder"].split()[1])] for e in io} == \
                set(want["holder"]["waits_for"]["tids"])
            assert f"{want['waiters']} coroutines wait for CoMutex {ours['name']}" in diagnosis
            stuck = num[want["holder"]["waits_for"]["tids"][0]]
            assert f"thread {stuck} is sleeping (pause)" in diagnosis
        else:
            pytest.fail(f"unknown truth {want}")
    if truth.get("cycle"):
        [cycle] = waits["cycles"]
        assert {tid_of[int(waits["edges"][i]["waiter"].split()[1])] for i in cycle} == \
            set(truth["cycle"])
        assert diagnosis.startswith("Deadlock:")
        assert all(f"thread {num[t]} " in diagnosis for t in truth["cycle"])
    else:
        assert waits["cycles"] == [] and not diagnosis.startswith("Deadlock")


DRAINS = [n for n in hangs.NAMES if n.startswith("hang-drain-")]


@pytest.mark.parametrize("name", DRAINS)
def test_drain_in_flight_is_what_gdb_reads(name):
    """The drain edge's in_flight and quiesce_counter per node equal gdb's `p` of them
    (7.2's drain-iothread-stuck blocks on an AioContext lock before it drains: no drain)."""
    meta = _core(name)
    truth = json.load(open(f"{meta['oracle']}/truth.json"))
    waits = outputs(meta, "cli")["waits"]
    drains = {e["what"] for e in waits["edges"] if e["kind"] == "drain"}
    if not any(b["waits_for"]["kind"] == "drain" for b in truth["blocked"]):
        assert not drains
        return
    script = ("bs = gdb.parse_and_eval('all_bdrv_states.tqh_first')\n"
              "while int(bs):\n"
              "    print('NODE', bs['node_name'].string(), int(bs['in_flight']),"
              " int(bs['quiesce_counter']))\n"
              "    bs = bs['bs_list']['tqe_next']\n")
    (text,), _ = run_gdb([meta["exe"], meta["core"]], [f"python exec({script!r})"], load=False)
    nodes = re.findall(r"^NODE (\S+) (\d+) (\d+)$", text, re.M)
    busy = [(n, i, q) for n, i, q in nodes if int(i)]
    assert busy, nodes   # a drain that waits has requests in flight
    [what] = drains
    for node, in_flight, quiesce in busy:
        assert f"{node} (in_flight {in_flight}, quiesce_counter {quiesce})" in what


# ---------------------------------------------------------------- idle fixture cores

IDLE_MARKERS = {"idle": ("poll", "worker_thread", "call_rcu_thread"),
                "guest": ("kvm_vcpu_ioctl",),
                "sleeping": ("clock_nanosleep", "g_usleep")}   # call_rcu_thread's batching


def gdb_thread_blocks(text):
    """{LWP: that thread's frames} from gdb's `thread apply all bt` text."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(
        r"^Thread \d+ \(.*?LWP (\d+)\)\)?:?\n((?:(?:#|warning: ).*\n?)*)", text, re.M)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_idle_core_has_nothing_blocked(qemu_core, backend):
    got = outputs(qemu_core, backend)
    locks = got["locks"]
    assert got["report"]["diagnosis"].startswith("Nothing is blocked")
    assert got["waits"]["chains"] == [] and got["waits"]["cycles"] == []
    stacks = gdb_thread_blocks(open(f"{qemu_core['oracle']}/gdb-bt.txt").read())
    states = {t["tid"]: t["state"] for t in locks["threads"]}
    assert "blocked" not in states.values()
    for tid, state in states.items():
        if state in IDLE_MARKERS:
            assert any(m in stacks[tid] for m in IDLE_MARKERS[state]), (tid, stacks[tid])
        else:
            assert state == "unknown" and not re.search(r"#1 ", stacks.get(tid, "")), tid


def test_bql_and_flags_are_gdbs(qemu_core):
    """The BQL's owner and each thread's bql_locked flag as gdb's `p` prints them; both
    backends list the same threads and locks."""
    cli, gdb = outputs(qemu_core, "cli")["locks"], outputs(qemu_core, "gdb")["locks"]
    key = ("num", "tid", "role", "state", "syscall", "where", "bql")
    assert [[t[k] for k in key] for t in cli["threads"]] == \
        [[t[k] for k in key] for t in gdb["threads"]]
    assert [(lk["name"], lk["owner_tid"], lk["count"]) for lk in cli["locks"]] == \
        [(lk["name"], lk["owner_tid"], lk["count"]) for lk in gdb["locks"]]
    bql = [lk for lk in cli["locks"] if lk["name"] in ("bql", "qemu_global_mutex")]
    commands = ["p &bql", "p &qemu_global_mutex"]
    if bql:
        commands += [f"p {bql[0]['name']}.lock.__data.__owner",
                     f"thread apply all -s p co_tls_{cli['bql_flag']}"]
    parts, stderr = run_gdb([qemu_core["exe"], qemu_core["core"]], commands, load=False)
    if not bql:   # qemu-storage-daemon: no BQL in the program at all
        assert cli["bql_flag"] is None
        assert stderr.count("No symbol") == 2
        return
    owner = int(re.search(r"= (-?\d+)", parts[2]).group(1))
    assert bql[0]["owner_tid"] == (owner or None)
    flags = {int(tid): value == "true" for tid, value in re.findall(
        r"LWP (\d+)\)\):\n\$\d+ = (true|false)", parts[3])}
    assert flags and {t["tid"]: t["bql"] for t in cli["threads"] if t["tid"] in flags} == flags


def test_graph_lock_readers_are_named_by_their_aiocontext(qemu_core):
    """Each AioContext's reader_count of the block graph lock (QEMU >= 8.0) as gdb's `p` of
    ctx->bdrv_graph->reader_count, under the context's name: the main loop's and each
    IOThread's (the iothread objects QMP's qom-list /objects listed)."""
    cli = outputs(qemu_core, "cli")["locks"]
    graph = [lk for lk in cli["locks"] if lk["kind"] == "graph-lock"]
    commands = ["p qemu_aio_context->bdrv_graph->reader_count"]
    parts, stderr = run_gdb([qemu_core["exe"], qemu_core["core"]], commands, load=False)
    if not graph:   # QEMU 7.2: no graph lock
        assert "There is no member named bdrv_graph" in stderr or "No symbol" in stderr
        return
    readers = {r["context"]: r["count"] for r in graph[0]["readers"]}
    main = int(re.search(r"= (\d+)", parts[0]).group(1))
    assert readers.get("main loop", 0) == main
    objects = json.load(open(f"{qemu_core['oracle']}/qom-list-objects.json"))
    iothreads = {f"iothread {o['name']}" for o in objects if o["type"] == "child<iothread>"}
    assert {c for c in readers if c.startswith("iothread ")} <= iothreads
    assert not [c for c in readers if c.startswith("0x")], readers   # every context named
