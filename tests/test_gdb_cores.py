"""qemugdb in gdb on the fixture cores (fixtures/make_cores.py), against the oracle captured
before each dump (QMP query-jobs, gdb's own `thread apply all bt`), against the corefile
backend, and against upstream's scripts/qemugdb on the same core."""

import json
import re
import sys
from pathlib import Path

import pytest

from gdbrun import frame_names, run_gdb
from oracle import gdb_throttle_nodes
from test_gdb_live import assert_same_through_corefile, expanded_names, to_trampoline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import corelist  # noqa: E402

pytestmark = pytest.mark.slow
QEMU = corelist.QEMU_NAMES


def meta(name):
    try:
        return corelist.core(name)
    except corelist.CoreMissing as e:
        pytest.fail(str(e))


def oracle(m, name):
    return json.loads((Path(m["oracle"]) / name).read_text())


@pytest.fixture(scope="module", params=QEMU)
def core(request):
    m = meta(request.param)
    out, err = run_gdb([m["exe"], m["core"]], ["qemu coroutines --format json", "qemu bt -a"])
    m["coroutines"] = json.loads(out[0])
    m["bt"] = out[1]
    m["stderr"] = err
    return m


def test_every_running_job_and_throttled_request_has_its_coroutine(core, gdb_batch):
    """The jobs' coroutines are query-jobs' jobs (ids, statuses, types); the throttled
    coroutines are those gdb finds queued in each throttle node's throttled_reqs."""
    found = core["coroutines"]
    assert found["errors"] == []
    assert "Traceback" not in core["stderr"]
    jobs = oracle(core, "query-jobs.json")
    waits = {w: c for c in found["coroutines"] for w in c["waits"]}
    ours = {m.groups() for m in (re.match(r"job (\S+) \((\w+)\)$", w) for w in waits) if m}
    assert ours == {(j["id"], f"JOB_STATUS_{j['status'].upper()}") for j in jobs}
    for job in jobs:
        names = expanded_names(waits[f"job {job['id']} (JOB_STATUS_RUNNING)"]["frames"])
        assert names[0] == "qemu_coroutine_switch" and names[-1] == "coroutine_trampoline"
        assert f"{job['type']}_run" in names and "job_co_entry" in names
    throttled = {(c["address"], m.group(1), m.group(2)) for c in found["coroutines"]
                 for m in (re.match(r"throttled (\w+) in throttle group (\S+)$", w)
                           for w in c["waits"]) if m}
    direction = ["read", "write"]  # THROTTLE_READ/WRITE, is_write before 8.1
    theirs = {(co, direction[i], node["group"]) for node in
              gdb_throttle_nodes(core, gdb_batch).values()
              for i, cos in enumerate(node["queued"]) for co in cos}
    assert theirs and throttled == theirs
    for c in found["coroutines"]:
        if any(w.startswith("throttled ") for w in c["waits"]):
            assert "throttle_group_co_io_limits_intercept" in expanded_names(c["frames"])
            assert any(w.startswith("tracked request on node ") for w in c["waits"])


def test_thread_stacks_equal_gdb_bt_oracle(core):
    ours = [t.split("(running coroutine ")[0]  # the thread's own stack, not the chain
            for t in re.split(r"^Thread \d+ ", core["bt"], flags=re.M)[1:]]
    text = (Path(core["oracle"]) / "gdb-bt.txt").read_text()
    theirs = re.split(r"^Thread \d+ ", text, flags=re.M)[1:]
    assert len(ours) == len(theirs) == len(core["tids"])
    assert sorted(frame_names(t) for t in ours) == sorted(map(to_trampoline, theirs))


def test_running_coroutines_chain_to_the_thread_stack(core):
    """Wherever a thread runs a coroutine at dump time, its entry is on the thread's stack
    and the chain ends in the leader: the thread's stack outside coroutines."""
    for chunk in re.split(r"^Thread \d+ ", core["bt"], flags=re.M)[1:]:
        if "(running coroutine " not in chunk:
            continue
        thread, rest = chunk.split("(running coroutine ")
        entry = re.match(r"0x[0-9a-f]+, entry (\S+)\)", rest).group(1)
        assert entry in frame_names(thread)
        assert frame_names(thread)[-1] == "coroutine_trampoline"
        leader = frame_names(rest.split("(leader ")[1])
        assert leader[0] == "qemu_coroutine_switch" and leader[-1] in ("main", "clone3")


def test_corefile_backend_agrees(core):
    assert_same_through_corefile(core["core"], core["exe"], core["coroutines"])


def test_select_frame_locals_on_the_core(core):
    job = next(j for j in oracle(core, "query-jobs.json") if j["status"] == "running")
    co = next(c for c in core["coroutines"]["coroutines"]
              if f"job {job['id']} (JOB_STATUS_RUNNING)" in c["waits"])
    (selected,), _ = run_gdb([core["exe"], core["core"]],
                             [f"qemu coroutine select {co['address']:#x}"])
    first = int(re.match(r"#(\d+) ", selected).group(1))  # levels above it: the thread's
    level = first + expanded_names(co["frames"]).index("job_do_yield_locked")
    out, err = run_gdb([core["exe"], core["core"]], [
        f"qemu coroutine select {co['address']:#x}", f"frame {level}", "info locals",
        "p job->id", "qemu coroutine select off", "bt 1"])
    assert "job_do_yield_locked (job=" in out[1]
    assert '__PRETTY_FUNCTION__ = "job_do_yield_locked"' in out[2]
    assert f'"{job["id"]}"' in out[3]
    assert "[thread" not in out[5] and "Traceback" not in err


def test_upstream_fails_where_we_do_not(core):
    """Upstream's `qemu coroutine` on a core: 7.2 errors, 10.0 walks a bogus rbp chain; its
    `qemu bt` shows no coroutine frames. Ours reaches coroutine_trampoline."""
    upstream = Path(core["exe"]).parents[1] / "src" / "scripts" / "qemu-gdb.py"
    job = next(c for c in core["coroutines"]["coroutines"]
               if any(w.startswith("job ") for w in c["waits"]))
    out, err = run_gdb([core["exe"], core["core"]], [
        f"source {upstream}", f"qemu coroutine {job['address']:#x}"], load=False)
    theirs = frame_names(out[1])
    assert theirs[-1:] != ["coroutine_trampoline"] or "Error" in err
    assert expanded_names(job["frames"])[-1] == "coroutine_trampoline"


def test_coroutine_fixture_program_matches_its_expectations():
    """crash-segv copies coroutine-ucontext.c's shape (plain `current`/`leader` TLS) and
    dies inside a coroutine while another is parked in qemu_coroutine_yield."""
    m = meta("crash-segv-kernel")
    expected = oracle(m, "expected.json")
    susp = expected["suspended_coroutine"]
    out, err = run_gdb([m["exe"], m["core"]], [
        "qemu bt", f"qemu coroutine {susp['symbol']} --format json",
        "qemu coroutines --format json", f"p {expected['crashing_coroutine']['symbol']}"])
    assert "Traceback" not in err
    thread, rest = out[0].split("(running coroutine ")
    assert frame_names(thread) == expected["frames"]
    assert rest.startswith(out[3].split(") ")[-1].strip() + ", entry "
                           + expected["crashing_coroutine"]["entry"])
    assert frame_names(rest.split("(leader ")[1]) == expected["leader_frames"]
    co = json.loads(out[1])
    assert expanded_names(co["frames"]) == susp["frames"]
    assert (co["entry"], co["entry_arg"]) == (susp["entry"], susp["entry_arg"])
    found = json.loads(out[2])
    running = [c for c in found["coroutines"] if c["state"] == "running"]
    assert [c["entry"] for c in running] == [expected["crashing_coroutine"]["entry"]]
    assert found["errors"] == [] and found["missing"]  # no jobs, nodes... in this program


def test_upstream_bt_fails_on_the_coroutine_fixture():
    """Upstream's `qemu bt` on a core wants co_tls_current; ours (above) follows the chain."""
    m = meta("crash-segv-kernel")
    upstream = Path(corelist.CACHE).glob("qemu-10.0*/src/scripts/qemu-gdb.py")
    out, err = run_gdb([m["exe"], m["core"]], [f"source {next(upstream)}", "qemu bt"],
                       load=False)
    assert 'No symbol "co_tls_current"' in err
    assert "leader" not in out[1]


def test_non_qemu_core_gives_one_line_errors():
    m = meta("crash-assert-kernel")
    out, err = run_gdb([m["exe"], m["core"]], ["qemu coroutines", "qemu bt", "qemu mtree"])
    assert "Traceback" not in err + "".join(out)
    errors = [line for line in err.splitlines() if line.startswith("qemu ")]
    assert errors == ["qemu coroutines: no type 'CoroutineUContext' in the debug info",
                      "qemu mtree: no address spaces (no static 'address_spaces' in "
                      "memory.c): qemu mtree needs qemu-system-*"]
    assert "#0  0x" in out[1] and "main at crash_" in out[1]  # qemu bt: the thread's stack


@pytest.mark.parametrize("name", [n for n in corelist.QEMU_NAMES if n.startswith("system-")])
def test_system_commands_on_system_cores(name):
    m = meta(name)
    out, err = run_gdb([m["exe"], m["core"]], ["qemu mtree", "qemu tcg-lock-status"])
    assert "Traceback" not in err and "<error: " not in out[0]
    assert "address-space: memory" in out[0] and ": system\n" in out[0] and "pc.ram" in out[0]
    rows = out[1].splitlines()[2:]
    assert sorted(int(r.split(",")[0].split("/")[1]) for r in rows) == sorted(m["tids"])
    assert out[1].startswith("BQL (bql): owner ")
