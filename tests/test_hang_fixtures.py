"""The hang fixtures (fixtures/hangs.py) hold what their truth.json says, by gdb's account.

Each hang core, and each scenario as a live process (hangs.hung), is read with gdb alone
(never with qemugdb): the threads' backtraces show the waits the scenario made, the
pthread mutexes' __owner fields name the owners, the drained nodes keep their in_flight
requests and the qcow2 CoMutex its holder and queued coroutines. Slow tier: needs the QEMU
builds and `python3 fixtures/hangs.py`.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
import corelist  # noqa: E402
import hangs  # noqa: E402

pytestmark = pytest.mark.slow

# Run in gdb: print one JSON line with every thread's frames and what ASK (a JSON dict
# set before this runs) wants: values of C expressions, block nodes, a qcow2 CoMutex.
GDB_FACTS = hangs.GDB_NODE + r"""
import json

def slist_len(head):
    n, rec = 0, head["slh_first"]
    while rec:
        n, rec = n + 1, rec["next"]["sle_next"]
    return n

facts = {"threads": {}, "values": {}, "nodes": {}}
for t in gdb.selected_inferior().threads():
    t.switch()
    names, f = [], gdb.newest_frame()
    while f is not None:
        names.append(f.name() or "??")
        f = f.older()
    facts["threads"][str(t.ptid[1])] = names
for expr in ASK.get("values", []):
    facts["values"][expr] = int(gdb.parse_and_eval(expr))
for name in ASK.get("nodes", []):
    bs = node(name)
    ctx = bs["aio_context"].dereference()
    facts["nodes"][name] = {"in_flight": int(bs["in_flight"]),
                            "quiesce_counter": int(bs["quiesce_counter"]),
                            "aio_context_lock": int(ctx["lock"].address)
                            if "lock" in [f.name for f in ctx.type.fields()] else None}
if "qcow2_lock" in ASK:
    lock = node(ASK["qcow2_lock"])["opaque"].cast(
        gdb.lookup_type("BDRVQcow2State").pointer())["lock"]
    holder = lock["holder"]
    facts["qcow2_lock"] = {"locked": int(lock["locked"]), "holder": int(holder),
                           "holder_caller": int(holder["caller"]) if holder else None,
                           "queued": slist_len(lock["from_push"]) + slist_len(lock["to_pop"])}
print("FACTS " + json.dumps(facts))
"""


def gdb_facts(exe, target, ask, tmp_path):
    """gdb's facts on TARGET (["core"] or ["-p", pid]) as a dict, for ASK."""
    script = tmp_path / "facts.py"
    script.write_text(f"ASK = {json.dumps(ask)!r}\nimport json; ASK = json.loads(ASK)\n"
                      + GDB_FACTS
                      + (hangs.GDB_HOME_THREAD.replace("NODE", repr(ask["home"]))
                         if "home" in ask else ""))
    r = subprocess.run(["gdb", "-batch", "-nx", "-ex", "set pagination off",
                        "-ex", f"source {script}", str(exe), *map(str, target)],
                       capture_output=True, text=True, timeout=300)
    lines = [line for line in r.stdout.splitlines() if line.startswith("FACTS ")]
    assert lines, f"gdb gave no facts:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    facts = json.loads(lines[0][len("FACTS "):])
    facts["threads"] = {int(t): f for t, f in facts["threads"].items()}
    if "home" in ask:
        facts["home_thread"] = hangs.home_thread(r.stdout)
    return facts


def ask_for(truth):
    """What gdb must evaluate to check TRUTH."""
    ask = {"values": [], "nodes": []}
    for lock in truth["locks"]:
        if lock["kind"] == "mutex":
            ask["values"].append(owner_expr(lock))
            if "context" not in lock:
                ask["values"].append(f"(long) &{lock['name']}")
        else:
            ask["qcow2_lock"] = lock["node"]
    for b in truth["blocked"]:
        if b["waits_for"]["kind"] == "drain":
            ask["nodes"] += b["waits_for"]["nodes"]
    if "export" in truth:
        ask["home"] = truth["export"]["node"]
        ask["nodes"] = sorted(set(ask["nodes"]) | {ask["home"]})
    return ask


def owner_expr(lock):
    """gdb expression: glibc's owner tid of the pthread mutex (first member of a QemuMutex)."""
    return f"((pthread_mutex_t *) {lock['address']})->__data.__owner"


def check(truth, facts):
    """Assert gdb's FACTS agree with TRUTH."""
    threads = facts["threads"]
    for tid in truth["threads"].values():
        assert tid in threads, f"thread {tid} of the truth is not in gdb's threads"
    for lock in truth["locks"]:
        if lock["kind"] == "mutex":
            owner = facts["values"][owner_expr(lock)]
            assert owner == lock["owner"], f"{lock['name']}'s __owner is {owner}"
            if "context" in lock:  # the AioContext of the export's node, in that IOThread
                assert lock["context"] == truth["export"]["iothread"]
                node = facts["nodes"][truth["export"]["node"]]
                assert node["aio_context_lock"] == lock["address"], node
            else:
                assert facts["values"][f"(long) &{lock['name']}"] == lock["address"]
        else:
            got = facts["qcow2_lock"]
            assert got["locked"] == lock["locked"]
            assert got["queued"] == lock["waiters"]
            assert got["holder"] and got["holder_caller"] == 0  # suspended: nobody entered it
    for b in truth["blocked"]:
        frames, wait = threads[b["tid"]], b["waits_for"]
        if wait["kind"] == "mutex":
            assert "___pthread_mutex_lock" in frames or "__pthread_mutex_lock" in frames, frames
        elif wait["kind"] == "drain":
            assert {"bdrv_drain_all_begin", "aio_poll"} <= set(frames), frames
            assert "qmp_" + wait["command"].replace("-", "_") in frames, frames
            for name in wait["nodes"]:
                node = facts["nodes"][name]
                assert node["quiesce_counter"] >= 1, (name, node)
                assert node["in_flight"] == wait["in_flight"].get(name, 0), (name, node)
        elif wait["kind"] == "stall":
            assert frames[:2] == ["__libc_pause", "stall_forever"], frames
            assert wait["call"] in frames, frames
        elif wait["kind"] == "thread-exit":
            assert "___pthread_join" in frames, frames
        else:
            pytest.fail(f"unknown wait kind {wait['kind']}")
    stalled = {s["tid"] for s in truth["stalled"]}
    assert stalled <= {b["tid"] for b in truth["blocked"]}
    if truth["cycle"]:
        owners = {lock["name"]: lock["owner"] for lock in truth["locks"]}
        waits = {b["tid"]: b["waits_for"]["name"] for b in truth["blocked"]
                 if b["waits_for"]["kind"] == "mutex"}
        cycle = truth["cycle"]
        for i, tid in enumerate(cycle):
            assert owners[waits[tid]] == cycle[(i + 1) % len(cycle)]
    if "export" in truth:
        assert facts["home_thread"] == truth["threads"][truth["export"]["iothread"]]


def scenario_frames(truth, facts):
    """Where each scenario's threads are, beyond the kinds of their waits."""
    threads = facts["threads"]
    role = {b["role"]: b["tid"] for b in truth["blocked"]}
    if truth["scenario"] == "bql-held":
        assert {"qemu_mutex_lock_impl", "main_loop_wait"} <= set(threads[role["main loop"]])
        vcpu = threads[role["vCPU"]]
        assert {"pthread_cond_wait", "qemu_cond_wait_impl"} <= set(vcpu), vcpu
        assert any(f.endswith("_cpu_thread_fn") for f in vcpu), vcpu  # mttcg_, rr_
    elif truth["scenario"] in ("drain-iothread", "comutex"):
        for s in truth["stalled"]:
            assert {"worker_thread", "handle_aiocb_rw"} <= set(threads[s["tid"]])
        assert "iothread_run" in threads[truth["threads"]["iothread0"]]
    elif truth["scenario"] == "drain-iothread-stuck":
        assert "bdrv_drain_all_begin" in threads[role["main loop"]]
        assert {"laio_co_submit", "nbd_trip"} <= set(threads[role["iothread0"]])
    elif truth["scenario"] == "pthread-cycle":
        assert "evict_thread" in threads[role["evict"]]
        assert "flush_thread" in threads[role["flush"]]


@pytest.mark.parametrize("name", hangs.NAMES)
def test_hang_core(name, tmp_path):
    try:
        meta = corelist.core(name)
    except corelist.CoreMissing:
        pytest.fail(f"hang core {name} not made: run `python3 fixtures/hangs.py {name}`",
                    pytrace=False)
    truth = json.loads((Path(meta["oracle"]) / "truth.json").read_text())
    assert meta["hang"] == truth["scenario"]
    assert set(truth["threads"].values()) <= set(meta["tids"])
    facts = gdb_facts(meta["exe"], [meta["core"]], ask_for(truth), tmp_path)
    assert sorted(facts["threads"]) == meta["tids"]
    check(truth, facts)
    scenario_frames(truth, facts)


LIVE = [(s, v) for s, sc in hangs.SCENARIOS.items() for v in sc.versions]


@pytest.mark.parametrize("scenario,version", LIVE, ids=[f"{s}-{v}" if v else s for s, v in LIVE])
def test_hang_live(scenario, version, tmp_path):
    with hangs.hung(scenario, version) as h:
        facts = gdb_facts(h.exe, ["-p", h.pid], ask_for(h.truth), tmp_path)
        check(h.truth, facts)
        scenario_frames(h.truth, facts)
        assert Path(f"/proc/{h.pid}").exists()  # gdb left it hung, not dead
    assert not Path(f"/proc/{h.pid}").exists()  # killed and reaped on exit
