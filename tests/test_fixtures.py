"""The fixtures themselves: real cores open in gdb and agree with QEMU's own oracle;
the synthetic C fixture holds what its source put there. Uses gdb alone, never our tool."""
import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import builds
import corelist  # fixtures/, on sys.path through conftest.py
from oracle import gdb_throttle_nodes
from qmp import QMP, QMPError

QEMU_ORACLE = ["x-debug-query-block-graph.json", "query-named-block-nodes.json",
               "query-block-jobs.json", "query-jobs.json", "query-block-exports.json",
               "qom-list-objects.json",
               "gdb-bt.txt", "maps.txt", "tids.json"]
CRASH_ORACLE = ["gdb-bt.txt", "maps.txt", "tids.json", "expected.json"]
META_KEYS = {"name", "exe", "core", "kind", "program", "qemu_version", "pid", "tids", "argv",
             "distro", "debug_dir", "key", "created"}

# Run inside gdb: QEMU's node and job lists, walked with gdb expressions only.
COUNT_SCRIPT = """
import json
names = []
bs = gdb.parse_and_eval("'block.c'::all_bdrv_states")["tqh_first"]
while bs and len(names) < 10000:
    names.append(bs["node_name"].string())
    bs = bs["bs_list"]["tqe_next"]
jobs = []
job = gdb.parse_and_eval("'job.c'::jobs")["lh_first"]
while job and len(jobs) < 1000:
    jobs.append({"id": job["id"].string(), "status": str(job["status"])})
    job = job["job_list"]["le_next"]
print("RESULT " + json.dumps({"nodes": names, "jobs": jobs}))
"""


def result(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0][len("RESULT "):])


def oracle(meta, name):
    path = Path(meta["oracle"]) / name
    text = path.read_text()
    return json.loads(text) if name.endswith(".json") else text


def bt_lwps(bt_text):
    return sorted(int(m) for m in re.findall(r"^Thread \d+ \(.*?LWP (\d+)\)", bt_text, re.M))


# ---------------------------------------------------------------- every core (slow)

def test_meta(any_core):
    assert META_KEYS <= set(any_core), META_KEYS - set(any_core)
    assert any_core["kind"] in ("gcore", "kernel")
    assert Path(any_core["exe"]).is_absolute() and Path(any_core["exe"]).is_file()
    assert Path(any_core["core"]) == Path(any_core["dir"]) / "core"
    assert any_core["tids"] and any_core["pid"] in any_core["tids"]
    if any_core["program"].startswith("qemu-"):
        # QMP's query-version (asked of the running process) against the VERSION file of
        # the source tree its build came from: the core is of the build its name says.
        # (report's own version detection is checked against QMP in test_field_identity.)
        series = re.search(r"-(\d+\.\d+)-", any_core["name"]).group(1)
        source_version = (Path(builds.qemu_dir(series)) / "src" / "VERSION").read_text().strip()
        v = any_core["query_version"]["qemu"]
        assert f"{v['major']}.{v['minor']}.{v['micro']}" == source_version


def test_core_opens_in_gdb(any_core, gdb_batch):
    out = gdb_batch(any_core["exe"], any_core["core"], ["info threads"],
                    debug_dirs=corelist.gdb_debug_dirs(any_core["debug_dir"]))
    lwps = sorted(int(t) for t in re.findall(r"^\*?\s+\d+\s+(?:Thread 0x\w+ \()?LWP (\d+)", out, re.M))
    assert lwps == sorted(any_core["tids"])


def test_bt_has_one_block_per_tid(any_core):
    tids = oracle(any_core, "tids.json")
    assert [t["tid"] for t in tids] == any_core["tids"]
    assert all(t["comm"] for t in tids)
    assert bt_lwps(oracle(any_core, "gdb-bt.txt")) == sorted(any_core["tids"])


def test_maps_name_the_exe(any_core):
    maps = oracle(any_core, "maps.txt")
    assert re.match(r"^[0-9a-f]+-[0-9a-f]+ [r-][w-][x-][ps] ", maps)
    assert any_core["exe"] in maps


# ---------------------------------------------------------------- real QEMU (slow)

def test_qemu_oracle_parses(qemu_core):
    for name in QEMU_ORACLE:
        assert (Path(qemu_core["oracle"]) / name).is_file(), name
        oracle(qemu_core, name)
    graph = oracle(qemu_core, "x-debug-query-block-graph.json")
    assert graph["nodes"] and graph["edges"]
    assert any(o["type"] == "child<iothread>" for o in oracle(qemu_core, "qom-list-objects.json"))
    jobs = oracle(qemu_core, "query-jobs.json")
    assert {j["status"] for j in jobs} == {"running"}
    for bj in oracle(qemu_core, "query-block-jobs.json"):
        assert bj["speed"] == 65536 and bj["len"] > 0
    if qemu_core["program"] == "qemu-storage-daemon":
        exports = oracle(qemu_core, "query-block-exports.json")
        assert {e["id"] for e in exports} == {"exp-a", "exp-b"}
        assert {j["type"] for j in jobs} == {"stream", "mirror"}
    else:
        assert oracle(qemu_core, "query-iothreads.json")


def test_gdb_lists_match_oracle(qemu_core, gdb_batch):
    got = result(gdb_batch(qemu_core["exe"], qemu_core["core"], script=COUNT_SCRIPT,
                           debug_dirs=corelist.gdb_debug_dirs(qemu_core["debug_dir"])))
    nodes = oracle(qemu_core, "query-named-block-nodes.json")
    jobs = oracle(qemu_core, "query-jobs.json")
    assert len(got["nodes"]) == len(nodes)
    assert sorted(got["nodes"]) == sorted(n["node-name"] for n in nodes)
    assert len(got["jobs"]) == len(jobs)
    assert sorted(j["id"] for j in got["jobs"]) == sorted(j["id"] for j in jobs)
    assert {j["status"] for j in got["jobs"]} == {"JOB_STATUS_RUNNING"}


def test_qsd_reads_parked_in_throttle_queues(qsd_core, gdb_batch):
    """The NBD clients' reads wait in both throttle groups (main loop and iothread0)."""
    got = gdb_throttle_nodes(qsd_core, gdb_batch)
    assert set(got) == {"a-throttle", "b-throttle"}
    for node, q in got.items():
        assert q["pending"][0] > 1 and q["queued"][0], (node, q)


# ---------------------------------------------------------------- our crash programs (slow)

def test_crash_oracle_parses(crash_core):
    for name in CRASH_ORACLE:
        oracle(crash_core, name)
    expected = oracle(crash_core, "expected.json")
    bt = oracle(crash_core, "gdb-bt.txt")
    assert f"Program terminated with signal {expected['signal']}" in bt
    assert f"in {expected['function']} (" in bt


def test_crash_facts_in_gdb(crash_core, gdb_batch):
    expected = oracle(crash_core, "expected.json")
    if expected["signal"] == "SIGABRT":
        out = gdb_batch(crash_core["exe"], crash_core["core"], script=(
            "import json; print('RESULT ' + json.dumps("
            "gdb.parse_and_eval('(char *)__abort_msg->msg').string()))"))  # msg is char[0]
        assert result(out) == expected["abort_msg"]
        frames = re.findall(r"^#\d+ .*? in (\w+) \(", oracle(crash_core, "gdb-bt.txt"), re.M)
        i = frames.index(expected["frames"][0])
        assert frames[i:i + len(expected["frames"])] == expected["frames"]
    else:
        out = gdb_batch(crash_core["exe"], crash_core["core"], script=(
            "import json\n"
            "si = gdb.parse_and_eval('$_siginfo')\n"
            "co = gdb.parse_and_eval('suspended_co').dereference()\n"
            "frames, f = [], gdb.newest_frame()\n"
            "while f and len(frames) < 4:\n"
            "    frames.append(f.name()); f = f.older()\n"
            "print('RESULT ' + json.dumps({'addr': int(si['_sifields']['_sigfault']['si_addr']),"
            " 'entry': gdb.block_for_pc(int(co['entry'])).function.name,"
            " 'arg': int(co['entry_arg']), 'frames': frames}))\n"))
        got = result(out)
        assert got["addr"] == expected["fault_address"]
        assert got["frames"] == expected["frames"]
        assert got["entry"] == expected["suspended_coroutine"]["entry"]
        assert got["arg"] == expected["suspended_coroutine"]["entry_arg"]


# ---------------------------------------------------------------- synthetic C fixture (fast)

# Run inside gdb: walk each list of expected.json by its QEMU field names.
WALK_SCRIPT = """
import json
LINKS = {"QLIST": ("lh_first", "le_next"), "QSLIST": ("slh_first", "sle_next"),
         "QTAILQ": ("tqh_first", "tqe_next"), "QSIMPLEQ": ("sqh_first", "sqe_next")}
item_t = gdb.lookup_type("Item")
offset = {f.name: f.bitpos // 8 for f in item_t.fields()}
out = {}
for name, spec in EXPECTED["lists"].items():
    first, nxt = LINKS[spec["kind"]]
    head = gdb.parse_and_eval(name)
    p, seen, values, end = head[first], [], [], "null"
    expect = int(head.address)   # what the first element's back-link holds
    while int(p):
        if int(p) in seen:
            end = "cycle"; cycle_to = seen.index(int(p)); break
        link = p[spec["field"]]
        try:
            value = int(p["value"])
            back = (int(link["le_prev"]) if spec["kind"] == "QLIST" else
                    int(link["tqe_circ"]["tql_prev"]) if spec["kind"] == "QTAILQ" else 0)
        except gdb.MemoryError:
            end = "unmapped"; break
        if back and back != expect:
            end = "broken"; break
        values.append(value)
        seen.append(int(p))
        expect = int(link[nxt].address) if spec["kind"] == "QLIST" else int(link.address)
        p = link[nxt]
    got = {"values": values, "end": end}
    if end == "cycle":
        got["cycle_to"] = cycle_to
    if end == "unmapped":
        got["bad_address"] = int(p)
    tail = None
    if spec["kind"] == "QTAILQ":
        tail = int(head["tqh_circ"]["tql_prev"])
    elif spec["kind"] == "QSIMPLEQ":
        tail = int(head["sqh_last"])
    if tail is not None and values:
        item = gdb.Value(tail - offset[spec["field"]]).cast(item_t.pointer())
        got["tail"] = int(item["value"])
    out[name] = got
jobs, j = [], gdb.parse_and_eval("jobs")["lh_first"]
while int(j):
    jobs.append({"id": j["id"].string(), "status": str(j["status"]), "speed": int(j["speed"])})
    j = j["job_list"]["le_next"]
nodes, bs = [], gdb.parse_and_eval("all_bdrv_states")["tqh_first"]
while int(bs):
    nodes.append({"node_name": bs["node_name"].string(), "refcnt": int(bs["refcnt"])})
    bs = bs["bs_list"]["tqe_next"]
frame = gdb.selected_frame()
while frame and frame.name() != "synthetic_stop":
    frame = frame.older()
print("RESULT " + json.dumps({"lists": out, "jobs": jobs, "nodes": nodes,
                              "stop": bool(frame)}))
"""


@pytest.mark.parametrize("which", ["kernel_core", "gcore", None])
def test_synthetic_values_in_gdb(synthetic, gdb_batch, which):
    """The kernel core, the gcore and the executable itself (static data) all show the
    values qemu_shapes.c put there."""
    expected = synthetic["expected"]
    script = f"EXPECTED = {expected!r}\n" + WALK_SCRIPT
    if which is None:  # no process: .data of the executable, no frames
        script = script.replace("frame = gdb.selected_frame()", "frame = None")
    got = result(gdb_batch(synthetic["exe"], synthetic[which] if which else None, script=script))
    for name, spec in expected["lists"].items():
        want = {k: spec[k] for k in ("values", "end", "cycle_to", "bad_address", "tail")
                if k in spec}
        assert got["lists"][name] == want, name
    assert got["jobs"] == expected["jobs"]["items"]
    assert got["nodes"] == expected["all_bdrv_states"]["items"]
    assert got["stop"] == (which is not None)


def test_synthetic_expected_covers_every_shape(synthetic):
    lists = synthetic["expected"]["lists"]
    for kind in ("qlist", "qslist", "qtailq", "qsimpleq"):
        assert {f"{kind}_{s}" for s in ("ok", "empty", "self", "cycle", "null", "wild")} <= set(lists)
    source = Path(synthetic["source"]).read_text()
    for name in lists:
        assert re.search(rf"\b{name}\b = ", source), name


# ---------------------------------------------------------------- helpers themselves (fast)

def test_missing_core_says_how_to_make_it(monkeypatch, tmp_path):
    monkeypatch.setattr(corelist, "CORES", tmp_path)
    assert corelist.cores() == []
    with pytest.raises(corelist.CoreMissing, match=r"fixtures/make_cores\.py qsd-7\.2-kernel"):
        corelist.core("qsd-7.2-kernel")


def test_edge_cores_are_listed(monkeypatch, tmp_path):
    """fixtures/edge_cores.py makes corelist.EDGE_NAMES, and a missing one names it."""
    import edge_cores
    assert [s.name for s in edge_cores.SPECS] == corelist.EDGE_NAMES
    monkeypatch.setattr(corelist, "CORES", tmp_path)
    with pytest.raises(corelist.CoreMissing, match=r"fixtures/edge_cores\.py qsd-5\.2-kernel"):
        corelist.core("qsd-5.2-kernel")


def test_make_cores_rejects_unknown_names():
    make_cores = Path(__file__).resolve().parent.parent / "fixtures" / "make_cores.py"
    r = subprocess.run([sys.executable, str(make_cores), "no-such-core"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "unknown core no-such-core" in r.stderr


def test_qmp_client(tmp_path):
    """Greeting, capabilities, a command, an event on the way, an error."""
    path = str(tmp_path / "qmp.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    seen = []

    def serve():
        conn, _ = server.accept()
        f = conn.makefile("rwb")
        f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        f.flush()
        for reply in (b'{"return": {}}\n',
                      b'{"event": "JOB_STATUS_CHANGE", "data": {}}\n{"return": [1, 2]}\n',
                      b'{"error": {"class": "GenericError", "desc": "no such job"}}\n'):
            seen.append(json.loads(f.readline()))
            f.write(reply)
            f.flush()
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    with QMP(path) as qmp:
        assert qmp.execute("query-jobs") == [1, 2]
        assert [e["event"] for e in qmp.events] == ["JOB_STATUS_CHANGE"]
        with pytest.raises(QMPError, match="no such job"):
            qmp.execute("job-cancel", id="x")
    t.join(5)
    server.close()
    assert seen == [{"execute": "qmp_capabilities"}, {"execute": "query-jobs"},
                    {"execute": "job-cancel", "arguments": {"id": "x"}}]
