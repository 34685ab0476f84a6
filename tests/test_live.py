"""qemu-coredump --pid on live QEMU (slow tier): the fixture scenarios of
fixtures/make_cores.py (qemu-storage-daemon 7.2, 10.0 and 10.2 when built, a qemu-system
10.0 VM) and the hangs of fixtures/hangs.py, started for real. What we say is compared with
what QEMU's QMP answered right before and with gdb attached right after, never with our own
output; the process must go on exactly as before."""

import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import click
import pytest

import corelist
import hangs
import make_cores
from oracle import named_block_graph, parse_gdb_bt
from test_cli import gdb_frames

pytestmark = pytest.mark.slow

VERSIONS = ["7.2", "10.0"] + (["10.2"] if glob.glob(str(corelist.CACHE / "qemu-10.2*/DONE"))
                              else [])
LIVE = [("qsd", v) for v in VERSIONS] + [("system", "10.0")]
RUNS = 20


def run(*args, timeout=300, **kw):
    return subprocess.run(["qemu-coredump", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


@pytest.fixture(scope="module", params=LIVE, ids=[f"{p}-{v}" for p, v in LIVE])
def live(request):
    """A fixture scenario running: make_cores.Qemu with its QMP (q.qmp, q.proc.pid)."""
    prog, version = request.param
    work = Path(tempfile.mkdtemp(prefix="qemugdb-live-"))
    q = make_cores.Qemu(make_cores.qemu_bindir(version), work, "gcore")
    try:
        make_cores.PROGRAMS[prog][1](q)
        yield q
    finally:
        q.close()
        subprocess.run(["rm", "-rf", str(work)])


def gdb_threads(pid):
    """{tid: [(function, pc)]} of gdb's `thread apply all bt` attached to pid."""
    text = subprocess.run(["gdb", "-batch", "-nx", "-iex", "set width 0", "-iex", "set height 0",
                           "-ex", "thread apply all bt", "-p", str(pid)],
                          capture_output=True, text=True, timeout=300).stdout
    lwp = {int(n): int(t) for n, t in re.findall(r"^Thread (\d+) \(.*?LWP (\d+)", text, re.M)}
    return {lwp[n]: frames for n, frames in parse_gdb_bt(text).items()}


def same_frames(got, want):
    """Our frames of a thread equal gdb's: functions in order (gdb may name glibc's
    __GI_ alias) and every pc gdb prints; down to coroutine_trampoline, as in test_cli."""
    names = [n for n, _ in got]
    if "coroutine_trampoline" in names:
        end = names.index("coroutine_trampoline") + 1
        got, want = got[:end], want[:end]
    return len(got) == len(want) and all(
        (n == g or g == f"__GI_{n}") and (gpc is None or pc == gpc)
        for (n, pc), (g, gpc) in zip(got, want))


def test_block_graph_equals_qmp(live):
    """block-graph --format qmp-json --pid has the nodes and edges QMP gave right before."""
    want = live.qmp.execute("x-debug-query-block-graph")
    r = run("block-graph", "--pid", live.proc.pid, "-f", "qmp-json")
    assert r.returncode == 0, r.stderr
    assert named_block_graph(json.loads(r.stdout)) == named_block_graph(want)
    assert re.search(r"stopped [\d.]+ ms for the answer", r.stderr)


def test_bt_all_equals_gdb(live):
    """bt --all --pid equals gdb's `thread apply all bt` attached right after, thread by
    thread (LWP). Threads of a busy process move between the two looks: the pair is taken
    again, up to 5 times, until every thread is alike."""
    for _ in range(5):
        r = run("bt", "--all", "--json", "--pid", live.proc.pid)
        assert r.returncode == 0, r.stderr
        got = {t["tid"]: gdb_frames(t) for t in json.loads(r.stdout)}
        want = gdb_threads(live.proc.pid)
        differ = [tid for tid in got if tid not in want or not same_frames(got[tid], want[tid])]
        if set(got) == set(want) and not differ:
            return
    pytest.fail(f"threads {sorted(set(got) ^ set(want))} seen by one only; frames differ in "
                f"{differ}: ours {[got[t] for t in differ]}, gdb {[want.get(t) for t in differ]}")


def test_report_says_how_long_stopped(live):
    r = run("report", "--pid", live.proc.pid, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["pid"] == live.proc.pid and rep["signal"] is None
    assert rep["live"]["stopped"] and rep["live"]["consistent"]
    assert 0 < rep["live"]["stopped_ms"] <= rep["live"]["total_ms"]
    assert rep["live"]["pages"] > 0 and rep["live"]["stops"] >= 2
    text = run("report", "--pid", live.proc.pid).stdout
    assert re.search(r"^stopped: +[\d.]+ ms for this report", text, re.M)


def test_no_stop(live):
    """--no-stop: an answer marked possibly inconsistent, never a crash."""
    r = run("report", "--pid", live.proc.pid, "--no-stop", "--json")
    assert r.returncode in (0, 1), r.stderr
    rep = json.loads(r.stdout)
    assert rep["live"]["stopped"] is False and rep["live"]["consistent"] is False
    assert "possibly inconsistent" in r.stderr
    assert rep["threads"]


def _jobs_progress(q):
    return {j["id"]: j["current-progress"] for j in q.qmp.execute("query-jobs")}


def test_keeps_serving(live):
    """After RUNS reads (every command kind, --no-stop too) and Ctrl-C/SIGTERM sent to
    qemu-coredump at random points, the process is not traced nor stopped, answers QMP,
    and its jobs still move data (block I/O)."""
    pid = live.proc.pid
    before = _jobs_progress(live)
    commands = [["report"], ["bt", "--all"], ["block-graph", "-f", "qmp-json"], ["waits"],
                ["aio"], ["report", "--no-stop"]]
    for i in range(RUNS):
        r = run(*commands[i % len(commands)], "--pid", pid)
        assert r.returncode in (0, 1), r.stderr
    for i, sig in enumerate([signal.SIGINT, signal.SIGTERM] * 4):
        p = subprocess.Popen(["qemu-coredump", "report", "--pid", str(pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.15 * (i + 1))
        p.send_signal(sig)
        p.wait(timeout=60)
    status = Path(f"/proc/{pid}/status").read_text()
    assert re.search(r"^TracerPid:\t0$", status, re.M)
    for task in os.listdir(f"/proc/{pid}/task"):
        state = Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state not in "tT", (task, state)
    assert live.qmp.execute("query-version")["qemu"]
    deadline = time.monotonic() + 30
    while _jobs_progress(live) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _jobs_progress(live) != before


def _frozen(pid):
    """A digest of every readable mapping's bytes and every thread's syscall state (its
    sp and pc) of a stopped process."""
    h = hashlib.sha256()
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            span, perms = line.split()[:2]
            start, end = (int(x, 16) for x in span.split("-"))
            if perms[0] != "r" or start >= 1 << 63:
                continue
            for addr in range(start, end, 1 << 20):
                try:
                    h.update(os.pread(fd, min(1 << 20, end - addr), addr))
                except OSError:
                    h.update(b"unreadable")
    finally:
        os.close(fd)
    for task in sorted(os.listdir(f"/proc/{pid}/task")):
        h.update(Path(f"/proc/{pid}/task/{task}/syscall").read_bytes())
    return h.hexdigest()


def test_no_writes(live):
    """With the process stopped (SIGSTOP), our reads change none of its memory nor its
    threads' registers, and leave it stopped; it runs again on SIGCONT."""
    pid = live.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10
        while "T (stopped)" not in Path(f"/proc/{pid}/status").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        before = _frozen(pid)
        for command in (["report"], ["bt", "--all"], ["coroutines"]):
            r = run(*command, "--pid", pid)
            assert r.returncode in (0, 1), r.stderr
            assert "T (stopped)" in Path(f"/proc/{pid}/status").read_text()
        assert _frozen(pid) == before
    finally:
        os.kill(pid, signal.SIGCONT)
    assert live.qmp.execute("query-version")["qemu"]


def test_refusals(live):
    """ptrace not permitted: exit 2 and one line saying what to do."""
    pid = live.proc.pid
    # gdb reading commands from a pipe: detached cleanly at the end (a gdb killed while its
    # SIGSTOPs are pending would leave the process stopped).
    gdb = subprocess.Popen(["gdb", "-q", "-nx", "-p", str(pid)], stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while re.search(r"^TracerPid:\t0$", Path(f"/proc/{pid}/status").read_text(), re.M):
            assert time.monotonic() < deadline, "gdb did not attach"
            time.sleep(0.1)
        r = run("bt", "--pid", pid)
        assert r.returncode == 2
        assert r.stderr == f"qemu-coredump: process {pid} is already traced by gdb (pid " \
                           f"{gdb.pid}): detach it (quit gdb or strace) and run again\n"
    finally:
        gdb.communicate(b"detach\nquit\n", timeout=120)
    src = Path(__file__).resolve().parents[1]
    # nobody must reach the checkout to run the CLI (a `mktemp -d` clone is 0700), and runs
    # the system's Python with a copy of click: root's own interpreter and site-packages
    # may be out of its reach (/root is 0700 on a fresh Debian)
    for d in Path(__file__).resolve().parents:
        os.chmod(d, os.stat(d).st_mode | 0o005)
    deps = Path(tempfile.mkdtemp())
    try:
        deps.chmod(0o755)
        shutil.copytree(Path(click.__file__).parent, deps / "click")
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            "/usr/bin/python3", "-c",
                            f"import sys; sys.path[:0] = [{str(src)!r}, {str(deps)!r}]; "
                            "from cli.main import main; main()", "bt", "--pid", str(pid)],
                           capture_output=True, text=True, timeout=120, cwd="/")
    finally:
        shutil.rmtree(deps)
    assert r.returncode == 2, r.stderr
    assert r.stderr == f"qemu-coredump: process {pid} belongs to uid 0: run as root (sudo) " \
                       f"or as that user\n"
    assert live.qmp.execute("query-version")["qemu"]


def test_bad_pids(tmp_path):
    for args, message in [(["--pid", "999999999"], "no process 999999999"),
                          ([], "give a CORE file or --pid PID (one of them)"),
                          (["--pid", "1", __file__], "give a CORE file or --pid PID (one of them)"),
                          ([__file__, "--no-stop"], "--no-stop goes with --pid PID"),
                          (["--pid", "1", "--sysroot", "/"], "--sysroot is for a core from "
                           "another machine: a process's files are here")]:
        r = run("bt", *args)
        assert (r.returncode, r.stderr) == (2, f"qemu-coredump: {message}\n")


# ---------------------------------------------------------------- hangs

HANGS = [(s, v) for s, sc in hangs.SCENARIOS.items() for v in sc.versions
         if v is None or v in VERSIONS]


def _canon(text):
    text = re.sub(r"0x[0-9a-f]+", "0x?", text or "")
    return re.sub(r"(thread|LWP) \d+", r"\1 N", text)


def _waits_shape(w):
    """What a wait-for graph says, without what differs between two runs of a scenario
    (addresses, thread numbers, idle threads): Counters of blocked nodes and edges, the
    diagnosis's clauses."""
    clauses = _canon(w["diagnosis"]).rstrip(".").split("; ")
    return {"diagnosis": Counter(re.sub(r" \(\d+ more blocked threads?\)$", "", c)
                                 for c in clauses),
            "blocked": Counter(_canon(f"{n['kind']} {n['state']} {n['where']} {n['label']}")
                               for n in w["nodes"] if n["state"] != "idle"),
            "edges": Counter(_canon(f"{e['kind']} {e['what']}") for e in w["edges"])}


def assert_same_hang(live, core):
    """live says what core says. A hung process goes on hanging: a thread may join a wait
    before one observation and after the other (qemu-system's rcu thread comes to wait for
    the BQL the vCPU holds, in the core or in the live process) -- more waiters, on a lock
    the other shows waited for, and nothing else."""
    live, core = _waits_shape(live), _waits_shape(core)
    assert not core["diagnosis"] - live["diagnosis"], (live["diagnosis"], core["diagnosis"])
    for more, other in ((live, core), (core, live)):
        extra = more["edges"] - other["edges"]
        assert set(extra) <= set(other["edges"]), (extra, other["edges"])
        assert sum((more["blocked"] - other["blocked"]).values()) == sum(extra.values()), \
            (more["blocked"], other["blocked"])


@pytest.mark.parametrize("scenario,version", HANGS, ids=["-".join(filter(None, h)) for h in HANGS])
def test_hang_diagnosis_live_equals_core(scenario, version):
    """The hang fixtures' waits (diagnosis, blocked threads and coroutines, edges) are the
    same from the live hung process as from its fixture core; the live deadlock's threads
    are the ones the scenario made."""
    name = "-".join(filter(None, ("hang", scenario, version, "gcore")))
    core = corelist.core(name)
    from_core = json.loads(run("waits", core["core"], "--json").stdout)
    with hangs.hung(scenario, version) as h:
        r = run("waits", "--pid", h.pid, "--json")
        assert r.returncode in (0, 1), r.stderr
        live = json.loads(r.stdout)
        qemu = hangs.SCENARIOS[scenario].program.startswith("qemu")  # report: QEMU only
        report = json.loads(run("report", "--pid", h.pid, "--json").stdout) if qemu else None
        if h.truth["cycle"]:
            threads = json.loads(run("bt", "--all", "--json", "--pid", h.pid).stdout)
            tid = {f"thread {t['num']}": t["tid"] for t in threads}
            [cycle] = live["cycles"]
            assert sorted(tid[live["edges"][i]["waiter"]] for i in cycle) == \
                sorted(h.truth["cycle"])
    assert_same_hang(live, from_core)
    if report is not None:
        assert_same_hang({**live, "diagnosis": report["diagnosis"]}, from_core)
