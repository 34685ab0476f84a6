"""qemugdb in gdb on a live qemu-storage-daemon (QEMU 7.2 and 10.0), checked against gdb's own
unwinding and against QMP; then on a kernel core of that same process."""

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from gdbrun import frame_names, run_gdb
from builds import VERSIONS, qemu_dir
from qsd_live import LiveQsd

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module", params=sorted(VERSIONS))
def live(request):
    with LiveQsd(qemu_dir(request.param)) as q:
        q.version = request.param
        yield q


def coroutine_list(pid):
    (out,), _ = run_gdb(["-p", str(pid)], ["qemu coroutines --format json"])
    return json.loads(out)


def job_coroutine(found):
    return next(c for c in found["coroutines"] if any(w.startswith("job job0") for w in c["waits"]))


def expanded_names(frames):
    return [loc["function"] for f in frames
            for loc in [*f["location"]["inlined"], f["location"]]]


# gdb's own unwinding of a register set: set them on the stopped main thread, bt, restore.
GDB_OWN_BT = """python
import gdb
regs = {regs}
gdb.selected_inferior().threads()[-1].switch()
gdb.newest_frame().select()
old = {{r: int(gdb.parse_and_eval('(unsigned long)$' + r)) for r in regs}}
for r, v in regs.items():
    gdb.execute(f'set ${{r}} = {{v}}')
out = gdb.execute('bt', to_string=True)
for r, v in old.items():
    gdb.execute(f'set ${{r}} = {{v}}')
print(out)
end"""


def test_job_and_throttled_coroutines_match_gdb_own_unwinding(live):
    found = coroutine_list(live.pid)
    assert not found["errors"]
    jobs = [c for c in found["coroutines"] if any(w.startswith("job job0") for w in c["waits"])]
    throttled = [c for c in found["coroutines"]
                 if any(w.startswith("throttled read in throttle group tg0") for w in c["waits"])]
    assert len(jobs) == 1 and jobs[0]["entry"] == "job_co_entry"
    assert throttled, "no request parked in the throttle group queue"
    qmp_jobs = live.qmp.execute("query-block-jobs")
    assert [j["device"] for j in qmp_jobs] == ["job0"]
    for co in jobs + throttled:
        regs = {r: co["registers"][r] for r in ("rbx", "rbp", "r12", "r13", "r14", "r15",
                                                "rsp", "rip")}
        ours, theirs = run_gdb(["-p", str(live.pid)], [
            f"qemu coroutine {co['address']:#x} --format json",
            GDB_OWN_BT.format(regs=regs)])[0]
        names = expanded_names(json.loads(ours)["frames"])
        gdb_names = frame_names(theirs)
        gdb_names = gdb_names[:gdb_names.index("coroutine_trampoline") + 1]
        assert names == gdb_names
        assert names[0] == "qemu_coroutine_switch" and names[-1] == "coroutine_trampoline"
    assert "stream_run" in expanded_names(jobs[0]["frames"])
    assert "throttle_group_co_io_limits_intercept" in expanded_names(throttled[0]["frames"])


def test_select_view_locals_and_restore(live):
    job = job_coroutine(coroutine_list(live.pid))
    addr = f"{job['address']:#x}"
    out, _ = run_gdb(["-p", str(live.pid)], [
        "bt 1", "show backtrace past-main",
        f"qemu coroutine select (Coroutine *){addr}", "bt", "frame 3", "info locals",
        "p job->id", "up", f"p $qemu_coroutine_sp((Coroutine *){addr})",
        f"p $qemu_coroutine_pc((Coroutine *){addr})",
        "qemu coroutine select off", "bt 1", "show backtrace past-main"])
    (bt_before, past_before, selected, bt, frame3, local_vars, job_id, up, sp, pc, off,
     bt_after, past_after) = out
    assert "qemu_coroutine_switch" in selected
    names = frame_names(bt)
    assert names[0].startswith("[thread") and names[1] == "qemu_coroutine_switch"
    assert names[-1] == "coroutine_trampoline"
    assert "job_do_yield_locked" in frame3 and "__PRETTY_FUNCTION__" in local_vars
    assert '"job0"' in job_id
    assert "job_sleep_ns" in up
    assert f"{job['sp']:#x}" in sp and f"{job['pc']:#x}" in pc and "qemu_coroutine_switch" in pc
    assert off.strip() == "coroutine view off"
    assert bt_after == bt_before and past_after == past_before


def test_view_goes_off_before_resuming(live):
    job = job_coroutine(coroutine_list(live.pid))
    out, _ = run_gdb(["-p", str(live.pid)], [
        f"qemu coroutine select {job['address']:#x}",
        "python import threading; threading.Timer(0.5, lambda: gdb.post_event("
        "lambda: gdb.execute('interrupt'))).start()",
        "continue", "bt 1"])
    assert "coroutine view off" in out[2]
    assert "[thread" not in out[3] and "#0" in out[3]


def test_bad_input_is_one_line(live):
    out, err = run_gdb(["-p", str(live.pid)], [
        "qemu coroutine nosuchsymbol", "qemu coroutine 0", "qemu coroutine 0x10",
        "qemu coroutines --format nope", "qemu bt --bogus"])
    assert "Traceback" not in "".join(out) + err
    assert 'No symbol "nosuchsymbol"' in err
    assert "NULL coroutine" in err
    assert "cannot read memory at 0x" in err
    assert "invalid choice" in err


def test_qemu_bt_all_threads_match_gdb(live):
    out, _ = run_gdb(["-p", str(live.pid)], ["qemu bt -a", "thread apply all bt"])
    ours = re.split(r"^Thread \d+ ", out[0], flags=re.M)[1:]
    theirs = re.split(r"^Thread \d+ ", out[1], flags=re.M)[1:]
    assert len(ours) == len(theirs) > 2
    assert sorted(frame_names(t) for t in ours) == sorted(map(to_trampoline, theirs))


def to_trampoline(bt):
    """gdb's frame names, cut after coroutine_trampoline (junk frames follow it)."""
    names = frame_names(bt)
    if "coroutine_trampoline" in names:
        names = names[:names.index("coroutine_trampoline") + 1]
    return names


def test_qemu_bt_in_a_running_coroutine(live):
    """Stopped inside the job's coroutine: the thread's stack (as gdb's bt), the running
    coroutine (the job's), then the leader: the thread's stack outside coroutines."""
    job = job_coroutine(coroutine_list(live.pid))
    out, err = run_gdb(["-p", str(live.pid)], [
        "break job_sleep_ns", "continue", "delete", "qemu bt", "bt"], timeout=120)
    ours = out[3]
    thread_part, rest = ours.split("(running coroutine ")
    assert frame_names(thread_part) == to_trampoline(out[4])
    assert rest.startswith(f"{job['address']:#x}, entry job_co_entry)")
    assert "Thread stack outside coroutines (leader 0x" in rest
    leader = frame_names(rest.split("(leader ")[1])
    assert leader[0] == "qemu_coroutine_switch" and "qemu_aio_coroutine_enter" in leader
    assert leader[-2:] == ["start_thread", "clone3"] or leader[-1] == "main"


def test_kernel_core_of_the_same_process(live, tmp_path):
    """Frames read from a kernel core equal those read from the process; on the core,
    select + frame + info locals work."""
    before = coroutine_list(live.pid)
    job = job_coroutine(before)
    core = dump_kernel_core(live, tmp_path)
    exe = os.path.join(live.bin, "qemu-storage-daemon")
    out, err = run_gdb([exe, core], [
        "qemu coroutines --format json",
        f"qemu coroutine select {job['address']:#x}", "frame 3", "info locals",
        "p job->id", "bt", "qemu coroutine select off", "qemu bt"])
    after = json.loads(out[0])
    by_addr = {c["address"]: c for c in after["coroutines"]}
    for c in before["coroutines"]:
        if c["state"] == "suspended" and c["address"] in by_addr:
            assert expanded_names(by_addr[c["address"]]["frames"]) == expanded_names(c["frames"])
    assert job["address"] in by_addr
    assert_same_through_corefile(core, exe, after)
    assert "job_do_yield_locked (job=job@entry=0x" in out[2]
    assert '__PRETTY_FUNCTION__ = "job_do_yield_locked"' in out[3]
    assert '"job0"' in out[4]  # the job's id, as QMP named it
    assert "stream_run" in out[5]
    assert "Traceback" not in "".join(out) + err


def assert_same_through_corefile(core, exe, from_gdb):
    """The coroutine walkers through the corefile backend find the same coroutines, states,
    reasons and frames as through gdb."""
    import corefile
    from qemugdb.walkers import census
    from qemugdb.commands import to_plain
    from qemugdb.core.target import CoreTarget
    ours = to_plain(census.all_coroutines(CoreTarget(corefile.open(core, exe))))

    def key(found):
        return {c["address"]: (c["state"], c["waits"], c["entry"], expanded_names(c["frames"]))
                for c in found["coroutines"]}
    assert key(ours) == key(from_gdb)
    assert ours["errors"] == from_gdb["errors"] == []


def dump_kernel_core(live, tmp_path):
    """SIGABRT the daemon (RLIMIT_CORE raised with prlimit) and return its core's path."""
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    assert pattern == "core", f"core_pattern is {pattern!r}; the test expects 'core'"
    subprocess.run(["prlimit", f"--pid={live.pid}", "--core=unlimited"], check=True)
    os.kill(live.pid, signal.SIGABRT)
    qsd = live.procs[0]
    qsd.wait(timeout=60)
    for name in (f"core.{live.pid}", "core"):
        path = os.path.join(live.dir, name)
        if os.path.exists(path):
            target = tmp_path / "core"
            os.rename(path, target)
            return str(target)
    raise AssertionError(f"no core in {live.dir}: {os.listdir(live.dir)}")
