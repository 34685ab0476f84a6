"""Block graph, jobs, IOThreads and the event loop on the real fixture cores, through both
backends (gdb with qemugdb loaded, and corefile), against what QEMU said over QMP right
before the dump (oracle/*.json) and the process's thread list."""

import argparse
import html
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

import corefile
from gdbrun import run_gdb
from oracle import gdb_block_exports, gdb_child_roles, gdb_event_loop, gdb_timers
from qemugdb import cmd
from qemugdb.commands import REGISTRY

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
import corelist  # noqa: E402

pytestmark = pytest.mark.slow

COMMANDS = {  # key -> (command, format, extra args)
    "qmp": ("block-graph", "qmp-json", []),
    "graph": ("block-graph", "json", []),
    "dot": ("block-graph", "dot", []),
    "jobs": ("jobs", "json", []),
    "iothreads": ("iothreads", "json", []),
    "aio": ("aio", "json", []),
    "handlers": ("handlers", "json", []),
    "timers": ("timers", "json", []),
    "bhs": ("bhs", "json", []),
}
JOB_PROGRESS_SLACK = 8 << 20   # a job may copy on between the QMP query and the dump


def _meta(name):
    try:
        return corelist.core(name)
    except corelist.CoreMissing as e:
        pytest.fail(str(e))


def _gdb_outputs(meta):
    lines = [f"qemu {c} --format {f} {' '.join(a)}".strip() for c, f, a in COMMANDS.values()]
    parts, stderr = run_gdb([meta["exe"], meta["core"]], lines, timeout=300)
    out = {}
    for key, text in zip(COMMANDS, parts):
        assert text.strip(), (key, stderr)
        out[key] = text if COMMANDS[key][1] == "dot" else json.loads(text)
    return out


def _corefile_outputs(meta, cache_dir):
    from qemugdb.core.target import CoreTarget
    cmd.load()
    out = {}
    with corefile.open(meta["core"], exe=meta["exe"], cache_dir=str(cache_dir)) as program:
        target = CoreTarget(program)
        for key, (name, fmt, _) in COMMANDS.items():
            command = REGISTRY[name]
            args = argparse.Namespace(format=fmt, ctx=None, stack=False)
            text = command.render(command.run(target, args), fmt, args)
            out[key] = text if fmt == "dot" else json.loads(text)
    return out


@pytest.fixture(scope="module", params=[(n, b) for n in corelist.QEMU_NAMES
                                        for b in ("gdb", "corefile")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def core(request, tmp_path_factory):
    name, backend = request.param
    meta = _meta(name)
    if backend == "gdb":
        meta["out"] = _gdb_outputs(meta)
    else:
        meta["out"] = _corefile_outputs(meta, tmp_path_factory.mktemp("cache"))
    return meta


def oracle(meta, name):
    with open(os.path.join(meta["oracle"], f"{name}.json")) as f:
        return json.load(f)


def by_name(graph):
    """QMP graph with ids replaced by (type, name): nodes and edges as multisets."""
    ids = {n["id"]: (n["type"], n["name"]) for n in graph["nodes"]}
    nodes = Counter(ids.values())
    edges = Counter((ids[e["parent"]], ids[e["child"]], e["name"], frozenset(e["perm"]),
                     frozenset(e["shared-perm"])) for e in graph["edges"])
    return nodes, edges


def test_qmp_block_graph_equals_x_debug_query_block_graph(core):
    ours, theirs = core["out"]["qmp"], oracle(core, "x-debug-query-block-graph")
    assert by_name(ours) == by_name(theirs)
    assert ours == theirs  # ids, order and permission order too (same walk as block.c)


def test_nodes_agree_with_query_named_block_nodes(core):
    ours = {n["name"]: n for n in core["out"]["graph"]["nodes"]
            if n["type"] == "block-driver" and n["in_graph"]}
    theirs = {n["node-name"]: n for n in oracle(core, "query-named-block-nodes")}
    assert set(ours) == set(theirs)
    for name, q in theirs.items():
        n = ours[name]
        assert (n["driver"], n["filename"], n["read_only"]) == (q["drv"], q["file"], q["ro"]), name
        assert ("BDRV_O_NOCACHE" in n["open_flags"]) == q["cache"]["direct"], name
        assert ("BDRV_O_NO_FLUSH" in n["open_flags"]) == q["cache"]["no-flush"], name
        assert n["error"] is None


def test_edges_decode_roles_for_every_child(core, gdb_batch):
    """Every node's children, as gdb walks them, with the role bits gdb names."""
    edges = core["out"]["graph"]["edges"]
    assert edges and all(e["error"] is None for e in edges)
    nodes = {n["id"] for n in core["out"]["graph"]["nodes"] if n["type"] == "block-driver"}
    ours = sorted((int(e["parent"], 16), e["name"], int(e["child"], 16), sorted(e["role"]))
                  for e in edges if e["parent"] in nodes)
    theirs = sorted(gdb_child_roles(core, gdb_batch))
    assert theirs and ours == theirs


def test_jobs_agree_with_query_block_jobs_and_query_jobs(core):
    ours = {j["id"]: j for j in core["out"]["jobs"]["jobs"]}
    assert core["out"]["jobs"]["error"] is None
    block_jobs = {j["device"]: j for j in oracle(core, "query-block-jobs")}
    jobs = {j["id"]: j for j in oracle(core, "query-jobs")}
    assert set(ours) == set(jobs)
    for jid, q in jobs.items():
        j = ours[jid]
        assert (j["type"], j["status"], j["total"]) == (q["type"], q["status"],
                                                        q["total-progress"]), jid
        assert 0 <= j["current"] - q["current-progress"] <= JOB_PROGRESS_SLACK, (j, q)
        assert j["error"] is None and j["co"]
    for jid, q in block_jobs.items():
        j = ours[jid]
        assert j["block_job"] and j["speed"] == q["speed"] and j["total"] == q["len"], jid
        assert 0 <= j["current"] - q["offset"] <= JOB_PROGRESS_SLACK, (j, q)
        assert j["paused"] == q["paused"], jid
        if not j["busy"]:  # a sleeping job's coroutine waits in the rate limit or a timer
            assert j["suspended_in"]["function"], j


def test_iothreads_agree_with_qom_and_the_thread_list(core):
    ours = core["out"]["iothreads"]
    user = {r["id"]: r for r in ours if not r["internal"]}
    theirs = {o["name"] for o in oracle(core, "qom-list-objects")
              if o["type"] == "child<iothread>"}
    assert set(user) == theirs
    for r in ours:
        assert r["error"] is None and r["thread_id"] in core["tids"], r
        assert r["thread"] is not None and r["running"], r
    path = os.path.join(core["oracle"], "query-iothreads.json")
    if os.path.exists(path):
        with open(path) as f:
            for q in json.load(f):
                assert user[q["id"]]["thread_id"] == q["thread-id"]


def test_every_aio_context_is_run_by_a_thread_of_the_process(core):
    contexts = core["out"]["aio"]
    names = {n: c for c in contexts for n in c["names"]}
    assert "main loop" in names and "iohandler" in names
    assert [t["tid"] for t in names["main loop"]["threads"]] == [core["pid"]]
    iothreads = {r["id"]: r for r in core["out"]["iothreads"]}
    for iid, r in iothreads.items():
        ctx = names[f"iothread {iid}"]
        assert ctx["address"] == r["aio_context"]
        assert [t["tid"] for t in ctx["threads"]] == [r["thread_id"]]
    for c in contexts:
        assert c["error"] is None, c
        assert {t["tid"] for t in c["threads"]} <= set(core["tids"])


def test_every_aio_context_has_its_own_event_notifier_handler(core):
    # aio_context_new() registers ctx->notifier with aio_context_notifier_cb
    handlers = core["out"]["handlers"]
    assert not handlers["errors"]
    for c in core["out"]["aio"]:
        own = [h for h in handlers["items"] if h["ctx"] == c["address"]
               and h["callbacks"].get("io_read") == "aio_context_notifier_cb"]
        assert len(own) == 1 and not own[0]["deleted"] and own[0]["fd"] >= 0, c
        assert c["handlers"] == sum(1 for h in handlers["items"] if h["ctx"] == c["address"])


def test_sleeping_jobs_have_their_sleep_timer_armed(core):
    # job_sleep_ns() arms job->sleep_timer (job_sleep_timer_cb, opaque = the job)
    timers = core["out"]["timers"]
    assert not timers["errors"]
    armed = {t["opaque"]: t for t in timers["items"] if t["cb_symbol"] == "job_sleep_timer_cb"}
    for j in core["out"]["jobs"]["jobs"]:
        if j["status"] == "running" and not j["busy"]:
            assert j["address"] in armed, j
            assert armed[j["address"]]["clock"] == "realtime"
    assert all(t["error"] is None and t["expire_time"] > 0 for t in timers["items"])


_GDB_TIMERS = {}  # core name -> gdb's walk of its timer lists (one gdb run per core)


def test_timers_equal_gdbs_walk_of_every_clocks_timer_lists(core, gdb_batch):
    """The active timers of main_loop_tlg and every AioContext are those gdb finds on each
    clock's list of timer lists (qemu_clocks[].timerlists), with the same clock, callback,
    opaque and expiry."""
    if core["name"] not in _GDB_TIMERS:
        _GDB_TIMERS[core["name"]] = gdb_timers(core, gdb_batch)
    theirs = _GDB_TIMERS[core["name"]]
    ours = {t["address"]: [t["clock"], t["cb_symbol"], t["opaque"], t["expire_time"]]
            for t in core["out"]["timers"]["items"]}
    assert theirs and ours == theirs


_GDB_EVENT_LOOP = {}  # core name -> gdb's walk of its AioContexts (one gdb run per core)


def gdb_event_loop_of(core, gdb_batch):
    if core["name"] not in _GDB_EVENT_LOOP:
        _GDB_EVENT_LOOP[core["name"]] = gdb_event_loop(
            core, [c["address"] for c in core["out"]["aio"]], [], gdb_batch)
    return _GDB_EVENT_LOOP[core["name"]]


def test_bhs_equal_gdbs_walk_of_each_bh_list(core, gdb_batch):
    """Every AioContext's bh_list, as gdb walks it: the same BHs, each with its callback's
    function name (gdb's), opaque and flags."""
    bhs = core["out"]["bhs"]
    assert not bhs["errors"] and all(b["error"] is None for b in bhs["items"])
    theirs = gdb_event_loop_of(core, gdb_batch)["bhs"]
    assert all(cb for cb, _, _ in theirs.values()), theirs  # gdb names every callback
    ours = {b["address"]: [b["cb_symbol"], b["opaque"], b["flags"]]
            for b in bhs["items"] if b["slice"] is None}
    assert ours == theirs


def test_handlers_equal_gdbs_walk_of_each_aio_handlers_list(core, gdb_batch):
    """Every AioContext's aio_handlers, as gdb walks them: fd, io_read, io_write, opaque."""
    theirs = gdb_event_loop_of(core, gdb_batch)["handlers"]
    ours = {h["address"]: [h["fd"], h["callbacks"].get("io_read"),
                           h["callbacks"].get("io_write"), h["opaque"]]
            for h in core["out"]["handlers"]["items"]}
    assert theirs and ours == theirs


def test_dot_is_accepted_by_graphviz(core):
    proc = subprocess.run(["dot", "-Tsvg"], input=core["out"]["dot"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    svg = html.unescape(proc.stdout)
    for n in oracle(core, "query-named-block-nodes"):
        assert f">{n['node-name']}<" in svg, n["node-name"]


def test_backends_agree_with_query_block(core, gdb_batch):
    graph = core["out"]["graph"]
    nodes = {n["id"]: n for n in graph["nodes"]}
    path = os.path.join(core["oracle"], "query-block.json")
    if not os.path.exists(path):
        # qemu-storage-daemon has no query-block: its backends are its exports'. Each
        # export's BlockBackend (gdb walks block_exports) is one of ours, its root the node
        # query-block-exports names (blk_bs(), implicit filters included).
        assert core["program"] == "qemu-storage-daemon"
        blks = gdb_block_exports(core, gdb_batch)
        ours = {(eid, nodes[f"{blk:#x}"]["type"], nodes[nodes[f"{blk:#x}"]["root"]]["name"])
                for eid, blk in blks.items()}
        assert ours == {(e["id"], "block-backend", e["node-name"])
                        for e in oracle(core, "query-block-exports")}
        return
    with open(path) as f:
        theirs = {(b["device"], b.get("qdev"), b.get("inserted", {}).get("node-name"))
                  for b in json.load(f)}
    filtered = {e["parent"]: e["child"] for e in graph["edges"] if "filtered" in e["role"]}

    def shown(node_id):  # bdrv_skip_implicit_filters()
        while nodes[node_id]["implicit"]:
            node_id = filtered[node_id]
        return nodes[node_id]["name"]

    ours = {(n["name"] or "", n["device"], shown(n["root"]))
            for n in graph["nodes"] if n["type"] == "block-backend" and (n["name"] or n["device"])}
    assert ours == theirs
