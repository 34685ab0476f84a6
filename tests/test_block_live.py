"""Block graph, jobs, IOThreads and the event loop in gdb attached to a live
qemu-storage-daemon (QEMU 7.2 and 10.0), against QMP asked right before and after."""

import json
import os

import pytest

from gdbrun import run_gdb
from builds import VERSIONS, qemu_dir
from qsd_live import LiveQsd

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module", params=sorted(VERSIONS))
def live(request):
    with LiveQsd(qemu_dir(request.param)) as q:
        before = q.qmp.execute("x-debug-query-block-graph")
        jobs_before = q.qmp.execute("query-block-jobs")
        out, err = run_gdb(["-p", str(q.pid)], [
            "qemu block-graph --format qmp-json", "qemu jobs --format json",
            "qemu iothreads --format json", "qemu aio --format json",
            "qemu bdrv thr", "qemu timers nosuch", "qemu bdrv nosuch"])
        q.out, q.err = out, err
        q.graph_before, q.graph_after = before, q.qmp.execute("x-debug-query-block-graph")
        q.jobs_before, q.jobs_after = jobs_before, q.qmp.execute("query-block-jobs")
        q.objects = q.qmp.execute("qom-list", path="/objects")
        yield q


def test_qmp_json_equals_qmp_on_a_live_process(live):
    assert live.graph_before == live.graph_after, "the graph changed meanwhile"
    assert json.loads(live.out[0]) == live.graph_before


def test_jobs_on_a_live_process(live):
    ours = {j["id"]: j for j in json.loads(live.out[1])["jobs"]}
    assert set(ours) == {j["device"] for j in live.jobs_before} == {"job0"}
    before, after = live.jobs_before[0], live.jobs_after[0]
    j = ours["job0"]
    assert (j["type"], j["speed"], j["total"]) == (before["type"], before["speed"], before["len"])
    assert before["offset"] <= j["current"] <= after["offset"]


def test_iothreads_and_contexts_on_a_live_process(live):
    iothreads = {r["id"]: r for r in json.loads(live.out[2])}
    assert {o["name"] for o in live.objects if o["type"] == "child<iothread>"} == {
        i for i, r in iothreads.items() if not r["internal"]}
    tids = {int(t) for t in os.listdir(f"/proc/{live.pid}/task")}
    contexts = {n: c for c in json.loads(live.out[3]) for n in c["names"]}
    assert [t["tid"] for t in contexts["main loop"]["threads"]] == [live.pid]
    io0 = iothreads["io0"]
    assert io0["thread_id"] in tids
    assert [t["tid"] for t in contexts["iothread io0"]["threads"]] == [io0["thread_id"]]


def test_bdrv_and_bad_input_on_a_live_process(live):
    assert live.out[4].startswith("Node thr (") and "driver:          throttle" in live.out[4]
    assert "Tracked requests:" in live.out[4]
    assert "Traceback" not in "".join(live.out) + live.err
    assert "qemu timers: no AioContext 'nosuch'" in live.err
    assert "qemu bdrv: no block node named 'nosuch'" in live.err
