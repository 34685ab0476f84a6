"""Corrupted QEMU structures (fixtures/corrupt/: block.c, block-backend.c, job.c with
QEMU's names) through both backends, gdb and corefile: every bad item is marked where the
C source broke it (a self-cycle, a cycle after N, NULL in the middle, pointers to unmapped
memory, a core truncated inside the data), each walk ends in bounded time, and the rest of
the output (and of the report) still appears. Addresses come from gdb's `p &x`."""

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main as cli_main
from gdbrun import run_gdb

ROOT = Path(__file__).resolve().parent.parent
UNMAPPED = 0xdead0000
BUDGET = 10   # seconds for any one command


@pytest.fixture(scope="module")
def built(corrupt):
    b = corrupt
    out = Path(b["exe"]).parent
    # A copy of the kernel core (notes first, unlike a gcore) cut inside the segment
    # holding bdrv[2] (base): base and all that follows in the file are lost.
    addrs = {k: gdb_addresses(b["exe"], b[k]) for k in ("kernel_core", "gcore")}
    cut = out / "qemu_corrupt.truncated"
    offset = file_offset(b["kernel_core"], addrs["kernel_core"]["bdrv2"])
    with open(b["kernel_core"], "rb") as f:
        cut.write_bytes(f.read(offset))
    addrs["truncated"] = addrs["kernel_core"]
    return {**b, "truncated": str(cut), "addrs": addrs}


def gdb_addresses(exe, core):
    names = {"bdrv0": "&bdrv[0]", "bdrv1": "&bdrv[1]", "bdrv2": "&bdrv[2]", "bdrv3": "&bdrv[3]",
             "blk0": "&blk[0]", "child2": "&children[2]", "job0": "&block_job[0]",
             "job1": "&block_job[1]", "ctx": "&aio_ctx[0]", "bh0": "&bhs[0]", "bh1": "&bhs[1]",
             "bh2": "&bhs[2]", "h0": "&handlers[0]", "h1": "&handlers[1]", "t0": "&timers_[0]",
             "t1": "&timers_[1]", "t2": "&timers_[2]", "t3": "&timers_[3]",
             "req0": "&requests[0]", "req1": "&requests[1]", "co0": "coroutines[0]",
             "co1": "coroutines[1]", "co2": "coroutines[2]", "co3": "coroutines[3]",
             "co4": "coroutines[4]", "as1": "&spaces[1]", "mr3": "&regions[3]",
             "reqs_lock": "&bdrv[0].reqs_lock", "holder": "bdrv[0].reqs_lock.holder",
             "pushed": "bdrv[0].reqs_lock.from_push.slh_first->co",
             "popped": "bdrv[0].reqs_lock.to_pop.slh_first->co"}
    out = subprocess.run(["gdb", "-batch", "-nx", *sum((["-ex", f"p/x {e}"] for e in names.values()), []),
                          exe, core], capture_output=True, text=True, timeout=60).stdout
    values = [int(v, 16) for v in re.findall(r"^\$\d+ = (0x[0-9a-f]+)", out, re.M)]
    assert len(values) == len(names), out
    return dict(zip(names, values))


def file_offset(core, addr):
    import corefile
    with corefile.open(core) as prog:
        seg = next(s for s in prog.core.segments if s.vaddr <= addr < s.vaddr + s.memsz)
        return seg.offset + addr - seg.vaddr


def cli(core, exe, *args):
    start = time.monotonic()
    r = CliRunner().invoke(cli_main, [args[0], core, "-e", exe, *args[1:]],
                           env={"NO_COLOR": "1"})
    assert time.monotonic() - start < BUDGET
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout


def gdb(core, exe, *commands):
    start = time.monotonic()
    out, err = run_gdb([exe, core], list(commands))
    assert time.monotonic() - start < BUDGET * len(commands)
    assert "Traceback" not in err
    return out


def both(built, core_key, command, *args):
    """(corefile output, gdb output) of the same command as JSON."""
    code, text = cli(built[core_key], built["exe"], command, *args, "--json")
    assert code == 1    # partial: some items were unreadable
    (gdb_text,) = gdb(built[core_key], built["exe"], f"qemu {command} {' '.join(args)} --format json")
    return json.loads(text), json.loads(gdb_text)


@pytest.mark.parametrize("core_key", ["kernel_core", "gcore"])
def test_block_graph_marks_each_bad_item(built, core_key):
    a = built["addrs"][core_key]
    for graph in both(built, core_key, "block-graph"):
        nodes = [n for n in graph["nodes"] if n["type"] == "block-driver"]
        by_id = {int(n["id"], 16): n for n in nodes}
        # graph_bdrv_states: top, mid, then the unmapped next, marked; all_bdrv_states adds
        # base and wild (not in the graph) and cycles back to mid.
        assert [int(n["id"], 16) for n in nodes] == [a["bdrv0"], a["bdrv1"], UNMAPPED,
                                                    a["bdrv2"], a["bdrv3"]]
        assert [by_id[x]["name"] for x in (a["bdrv0"], a["bdrv1"], a["bdrv2"])] == \
            ["top", "mid", "base"]
        assert "cannot read memory" in by_id[UNMAPPED]["error"]
        assert f"{UNMAPPED:#x}" in by_id[a["bdrv3"]]["error"]        # wild: drv unmapped
        assert f"list cycles back to {a['child2']:#x}" in by_id[a["bdrv1"]]["error"]
        assert "children: cannot read memory at 0xdead00" in by_id[a["bdrv0"]]["error"]
        errors = "\n".join(graph["errors"])
        assert f"block_backends: list cycles back to {a['blk0']:#x}" in errors
        assert f"all_bdrv_states: list cycles back to {a['bdrv1']:#x}" in errors
        assert "graph_bdrv_states: cannot read memory at 0xdead" in errors
        assert "jobs: cannot read memory" in errors
        edges = {(e["parent"], e["name"]): e for e in graph["edges"]}
        assert int(edges[(hex(a["bdrv0"]), "file")]["child"], 16) == a["bdrv1"]
        assert edges[(hex(a["bdrv0"]), "backing")]["child"] is None   # NULL in the middle
        assert int(edges[(hex(a["bdrv1"]), "file")]["child"], 16) == a["bdrv2"]
        unmapped = edges[(hex(a["bdrv2"]), "backing")]            # bs points at no node
        assert int(unmapped["child"], 16) == UNMAPPED
        assert unmapped["error"] == f"child node {UNMAPPED:#x}: cannot read memory at {UNMAPPED:#x}"


@pytest.mark.parametrize("core_key", ["kernel_core", "gcore"])
def test_jobs_mark_each_bad_item(built, core_key):
    a = built["addrs"][core_key]
    for result in both(built, core_key, "jobs"):
        jobs = result["jobs"]
        assert [j["address"] for j in jobs] == [a["job0"], a["job1"], UNMAPPED]
        stream = jobs[0]
        assert (stream["id"], stream["type"], stream["status"], stream["current"],
                stream["total"], stream["speed"], stream["error"]) == \
            ("stream0", "stream", "running", 4096, 65536, 65536, None)
        assert jobs[1]["id"] == "mirror0" and "cannot read memory at 0x8" in jobs[1]["error"]
        assert "cannot read memory at 0xdead0000" in jobs[2]["error"]
        assert "cannot read memory at 0xdead00" in result["error"]


@pytest.mark.parametrize("core_key", ["kernel_core", "gcore"])
def test_tracked_requests_cycle(built, core_key):
    """base's tracked requests cycle after 2: both requests shown, then the cycle."""
    a = built["addrs"][core_key]
    for detail in both(built, core_key, "bdrv", "base"):
        assert detail["node"]["address"] == a["bdrv2"]
        assert [(r["address"], r["offset"], r["bytes"], r["serialising"])
                for r in detail["requests"]] == [(a["req0"], 0, 4096, False),
                                                 (a["req1"], 65536, 512, True)]
        assert detail["request_error"] == f"list cycles back to {a['req0']:#x}"


@pytest.mark.parametrize("core_key", ["kernel_core", "gcore"])
def test_coroutines_mark_each_bad_item(built, core_key):
    """coroutine-ucontext.c: the thread's current coroutine co4, its caller co1 cycling on
    itself, the job's co0 (holding top's reqs_lock), scheduled co2 -> co3 -> unmapped (co2
    and co3 waiting for top's reqs_lock): each found, the bad ones marked, and `bt` keeps
    the callers before the cycle."""
    a = built["addrs"][core_key]
    scheduled = "scheduled on AioContext " + hex(a["ctx"])
    for listing, threads in zip(both(built, core_key, "coroutines"), both(built, core_key, "bt")):
        got = [(c["address"], c["state"], [w.split(" (")[0] for w in c["waits"]], c["error"])
               for c in listing["coroutines"]]
        assert got == [(a["co4"], "running", ["current on thread 1"], None),
                       (a["co1"], "suspended", [f"caller of {a['co4']:#x}"], None),
                       (a["co0"], "suspended", ["job stream0", "holds reqs_lock of node top"],
                        None),
                       (a["co2"], "suspended", ["waits for reqs_lock of node top", scheduled],
                        None),
                       (a["co3"], "suspended", ["waits for reqs_lock of node top", scheduled],
                        None),
                       (UNMAPPED, "suspended", [scheduled],
                        f"cannot read memory at {UNMAPPED:#x}")]
        assert f"threads: co->caller chain cycles at {a['co1']:#x}" in listing["errors"]
        (main,) = threads
        assert main["current"]["address"] == a["co4"]
        assert [(c["address"], c["error"]) for c in main["callers"]] == [
            (a["co1"], None), (a["co1"], f"co->caller chain cycles at {a['co1']:#x}")]
        assert main["frames"][-1]["location"]["function"] == "main"


@pytest.mark.parametrize("core_key", ["kernel_core", "gcore"])
def test_reqs_lock_holder_and_waiters(built, core_key):
    """top's reqs_lock (a CoMutex, as before QEMU 8.0; qemu-coroutine-lock.c): held by co0,
    co2 waiting in from_push and co3 in to_pop, locked = 3; `locks` lists it so."""
    a = built["addrs"][core_key]
    assert (a["holder"], a["pushed"], a["popped"]) == (a["co0"], a["co2"], a["co3"])
    for listing in both(built, core_key, "locks"):
        (lock,) = [x for x in listing["locks"] if x["name"] == "node top.reqs_lock"]
        assert (lock["kind"], lock["address"], lock["locked"], lock["count"], lock["holder"],
                lock["error"]) == ("CoMutex", a["reqs_lock"], True, 3, a["holder"], None)
        assert sorted(lock["waiting_coroutines"]) == sorted([a["pushed"], a["popped"]])


@pytest.mark.parametrize("core_key", ["kernel_core", "gcore"])
def test_reqs_lock_wait_edges(built, core_key):
    """The wait graph has a comutex edge from each of top's reqs_lock waiters (co2, co3) to
    its holder (co0), and no other."""
    a = built["addrs"][core_key]
    holder = f"coroutine {a['holder']:#x}"
    for graph in both(built, core_key, "waits"):
        edges = [(e["waiter"], e["holder"], e["address"]) for e in graph["edges"]
                 if e["kind"] == "comutex"]
        assert sorted(edges) == sorted([(f"coroutine {a['pushed']:#x}", holder, a["reqs_lock"]),
                                        (f"coroutine {a['popped']:#x}", holder, a["reqs_lock"])])
        assert all(f"held by {holder}" in e["what"] for e in graph["edges"]
                   if e["kind"] == "comutex")


@pytest.mark.parametrize("core_key", ["kernel_core", "gcore"])
def test_mtree_marks_each_bad_item(built, core_key):
    """memory.c: address_spaces cycles on "I/O"; "system"'s subregions end in unmapped
    memory; "io" -> "pci" -> "io" again. Both trees are printed, each bad item marked."""
    a = built["addrs"][core_key]
    for tree in both(built, core_key, "mtree"):
        (mem_heading, mem), (io_heading, io) = tree["trees"]
        assert mem_heading == ["address-space: memory"] and io_heading == ["address-space: I/O"]
        assert [(r["level"], r["name"], r["start"], r["end"], r["type"]) for r in mem] == [
            (1, "system", 0, 0, "i/o"), (2, "ram", 0, 0x7ffffff, "ram"),
            (2, "rom", 0xfffe0000, 0xffffffff, "rom")]
        assert mem[0]["error"].startswith("cannot read memory at 0xdead00")
        assert [(r["level"], r["name"]) for r in io] == [(1, "io"), (2, "pci"), (3, "io")]
        assert io[2]["error"] == f"region {a['mr3']:#x} contains itself"
        assert tree["errors"] == [f"address_spaces: list cycles back to {a['as1']:#x}"]


@pytest.mark.parametrize("core_key", ["kernel_core", "gcore"])
def test_event_loop_walkers_mark_each_bad_item(built, core_key):
    """async.c / main-loop.c: BHs cycle after 3, handlers end in unmapped memory, a timer
    list cycles on itself while the next clock's list is unmapped, iohandler_ctx is
    unmapped; each is marked and the walks around it go on."""
    a = built["addrs"][core_key]
    for contexts, (bhs, handlers, timers) in zip(
            both(built, core_key, "aio"),
            zip(*(both(built, core_key, c) for c in ("bhs", "handlers", "timers")))):
        main, iohandler = contexts
        assert (main["address"], main["names"], main["notify_me"]) == (a["ctx"], ["main loop"], 2)
        assert main["error"] == f"list cycles back to {a['bh1']:#x}"
        assert iohandler["address"] == UNMAPPED and "cannot read memory" in iohandler["error"]
        assert [(b["address"], b["name"], b["cb_symbol"], b["flag_names"]) for b in bhs["items"]] == [
            (a["bh0"], "bh-zero", "corrupt_bh_cb", ["pending", "scheduled"]),
            (a["bh1"], "bh-one", "corrupt_bh_cb", ["pending"]),
            (a["bh2"], "bh-two", None, ["deleted"])]
        assert bhs["errors"][0] == f"main loop: list cycles back to {a['bh1']:#x}"
        assert bhs["errors"][1].startswith("iohandler: cannot read memory at 0xdead00")
        h = handlers["items"]
        assert [(x["address"], x["fd"], x["callbacks"]) for x in h[:2]] == [
            (a["h0"], 5, {"io_read": "corrupt_read_cb"}), (a["h1"], 6, {"io_write": "corrupt_write_cb"})]
        assert h[2]["address"] == UNMAPPED and "cannot read memory" in h[2]["error"]
        assert handlers["errors"][0].startswith("main loop: cannot read memory at 0xdead00")
        t = [(x["group"], x["clock"], x["address"], x["expire_time"], x["cb_symbol"])
             for x in timers["items"]]
        group = f"main loop ({a['ctx']:#x})"
        assert t == [("main_loop_tlg", "realtime", a["t2"], 3000, "corrupt_timer_cb"),
                     ("main_loop_tlg", "realtime", a["t3"], 4000, None),
                     (group, "realtime", a["t0"], 1000, "corrupt_timer_cb"),
                     (group, "realtime", a["t1"], 2000, "corrupt_timer_cb")]
        assert timers["errors"][0] == f"{group} realtime: timer list cycles at {a['t1']:#x}"
        assert timers["errors"][1].startswith(f"{group} virtual: cannot read memory at 0xdead00")
        assert timers["errors"][2].startswith(f"iohandler ({UNMAPPED:#x}): cannot read memory")


@pytest.mark.parametrize("core_key", ["kernel_core", "gcore", "truncated"])
def test_report_still_appears(built, core_key):
    code, text = cli(built[core_key], built["exe"], "report")
    (gdb_text,) = gdb(built[core_key], built["exe"], "qemu report")
    assert code == 1
    for out in (text, gdb_text):
        for section in ("== Process", "== Threads", "== Jobs", "== Block graph"):
            assert section in out, (section, out)
        assert "<error: " in out


def test_truncated_core(built):
    """Cut inside the data: top and mid (before the cut) are intact in both backends;
    corefile reports the bytes past the cut unreadable (not the executable's unrelocated
    .data, which gdb falls back to: its walk still ends, with an error)."""
    a = built["addrs"]["truncated"]
    code, text = cli(built["truncated"], built["exe"], "block-graph", "--json")
    assert code == 1   # partial: the nodes past the cut are unreadable
    (gdb_text,) = gdb(built["truncated"], built["exe"], "qemu block-graph --format json")
    ours, theirs = json.loads(text), json.loads(gdb_text)
    for graph, error in ((ours, "cannot read memory"), (theirs, "")):
        by_id = {int(n["id"], 16): n for n in graph["nodes"] if n["type"] == "block-driver"}
        assert by_id[a["bdrv0"]]["name"] == "top" and by_id[a["bdrv1"]]["name"] == "mid"
        # gdb's .data fallback holds base's link-time back-link: "list broken at ..."
        assert any(e.startswith(f"all_bdrv_states: {error}") for e in graph["errors"])
    lost = [int(x, 16) for e in ours["errors"] if e.startswith("all_bdrv_states")
            for x in re.findall(r"cannot read memory at (0x[0-9a-f]+)", e)]
    assert lost and a["bdrv2"] <= lost[0] < a["bdrv3"], (ours["errors"], hex(a["bdrv2"]))
