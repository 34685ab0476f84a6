"""qemu-coredump on the real fixture cores, run as a user runs it (the installed console
script), checked against gdb's own `thread apply all bt` and QMP answers captured before
the dump, and against the facts the crash fixtures' C sources put there."""

import html
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from oracle import fixture_core, gdb_bt, qmp

pytestmark = pytest.mark.slow
CLI = shutil.which("qemu-coredump")


core = fixture_core


def run(*args, check=True):
    assert CLI, "qemu-coredump is not installed: pip install -e ."
    proc = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, NO_COLOR="1"))
    if check:   # complete: the fixture cores are read whole
        assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def gdb_frames(thread):
    """A `qemu-coredump bt --json` thread as gdb's bt lines: (function, pc on the first
    line of each physical frame)."""
    out = []
    for frame in thread["frames"]:
        loc = frame["location"]
        for i, f in enumerate([*loc["inlined"], loc]):
            out.append((f["function"], frame["pc"] if i == 0 else None))
    return out


def test_bt_all_json_equals_gdb(any_core):
    """Every thread's frames equal gdb's `thread apply all bt` on the same core: functions
    in order, and every pc gdb prints (tests/test_inputs_unchanged.py checks the inputs)."""
    threads = json.loads(run("bt", any_core["core"], "--exe", any_core["exe"], "--all", "--json").stdout)
    want = gdb_bt(any_core)
    assert sorted(want) == [t["num"] for t in threads]
    assert {t["tid"] for t in threads} == set(any_core["tids"])
    for t in threads:
        got = gdb_frames(t)
        expected = want[t["num"]]
        # Below a coroutine's outermost frame, coroutine_trampoline, gdb names glibc's
        # __start_context only sometimes ("??" in other cores) and adds junk frames from
        # its heuristic unwinder: compare down to coroutine_trampoline.
        names = [name for name, _ in got]
        if "coroutine_trampoline" in names:
            end = names.index("coroutine_trampoline") + 1
            got, expected = got[:end], expected[:end]
        assert len(got) == len(expected), (t["num"], expected, got)
        for (name, pc), (gname, gpc) in zip(got, expected):
            assert name == gname or gname == f"__GI_{name}", (t["num"], expected, got)
            assert gpc is None or pc == gpc, (t["num"], expected, got)


def test_block_graph_qmp_json_equals_qmp(qemu_core):
    """block-graph --format qmp-json has QMP's nodes (type, name) and edges (by names)."""
    got = json.loads(run("block-graph", qemu_core["core"], "-f", "qmp-json").stdout)
    want = qmp(qemu_core, "x-debug-query-block-graph")

    def named(graph):
        names = {n["id"]: (n["type"], n["name"]) for n in graph["nodes"]}
        edges = sorted((names[e["parent"]], names[e["child"]], e["name"], tuple(sorted(e["perm"])),
                        tuple(sorted(e["shared-perm"]))) for e in graph["edges"])
        return sorted(names.values()), edges

    assert named(got) == named(want)


def test_block_graph_pictures(qemu_core, tmp_path):
    """DOT renders with graphviz to SVG and PNG naming every node QMP knows."""
    svg = tmp_path / "graph.svg"
    run("block-graph", qemu_core["core"], "-f", "svg", "-o", svg)
    text = html.unescape(svg.read_text())  # graphviz writes "-" as &#45;
    assert text.lstrip().startswith("<?xml") and "</svg>" in text
    for node in qmp(qemu_core, "query-named-block-nodes"):
        assert node["node-name"] in text
    png = tmp_path / "graph.png"
    run("block-graph", qemu_core["core"], "-f", "png", "-o", png)
    assert png.read_bytes().startswith(b"\x89PNG")


def report_text(meta):
    """The report's text on a core of our C fixtures, made by the code `qemu-coredump
    report` runs: the CLI itself refuses them, as they are not QEMU
    (test_crash_fixtures_are_not_qemu)."""
    from qemu_coredump.main import REGISTRY   # the CLI's registry, loaded
    from qemu_coredump.session import open_session
    command = REGISTRY["report"]
    args = command.default_args(format="text", highlight=None)
    with open_session(meta["core"], meta["exe"]) as session:
        return command.render(command.run(session.target, args), "text", args)


def test_crash_fixtures_are_not_qemu(crash_core):
    """Our C programs are not QEMU: the CLI's QEMU commands exit 2 with one line saying
    so; bt reads them as any program."""
    for command in ("report", "block-graph", "aio"):
        proc = run(command, crash_core["core"], "--exe", crash_core["exe"], check=False)
        assert proc.returncode == 2 and proc.stdout == "" and proc.stderr == (
            f"qemu-coredump: {crash_core['exe']} is not QEMU: it has neither QEMU's version "
            f"text nor QEMU's main loop or block layer\n"), proc.stderr
    assert run("bt", crash_core["core"], "--exe", crash_core["exe"]).returncode == 0


def test_report_assert(tmp_path):
    """The assert() fixture: the assertion text (glibc's __abort_msg) and the frame that
    asserted, as the C source put them (oracle/expected.json)."""
    meta = core("crash-assert-kernel")
    expected = json.loads((Path(meta["oracle"]) / "expected.json").read_text())
    out = report_text(meta)
    assert "signal:       SIGABRT" in out
    abort = next(line for line in out.splitlines() if line.startswith("abort:"))
    assert abort.split(None, 1)[1] == expected["abort_msg"].rstrip("\n")
    crashing = out.split("== Crashing thread", 1)[1].split("\n== ", 1)[0]
    assert f"in {expected['function']} at {expected['file']}:{expected['line']}" in crashing


def test_report_segv_shows_coroutine_chain():
    """The SIGSEGV fixture: the fault address, the faulting coroutine's frames down to
    coroutine_trampoline, and the chain that entered it, down to the thread's own stack."""
    meta = core("crash-segv-kernel")
    expected = json.loads((Path(meta["oracle"]) / "expected.json").read_text())
    out = report_text(meta)
    assert f"signal:       SIGSEGV at {expected['fault_address']:#x}" in out
    crashing = out.split("== Crashing thread", 1)[1].split("\n== Threads", 1)[0]
    functions = [line.split(" in ", 1)[1].split(" at ")[0] if " in " in line else line.split()[1]
                 for line in crashing.splitlines() if line.startswith("#")]
    assert functions[:len(expected["frames"])] == expected["frames"]
    assert f"entry {expected['crashing_coroutine']['entry']}" in crashing
    leader = crashing.split("Thread stack outside coroutines", 1)[1]
    assert [line.split(" in ", 1)[1].split(" at ")[0] for line in leader.splitlines()
            if line.startswith("#")] == expected["leader_frames"]


def test_report_html(qemu_core, tmp_path):
    page = tmp_path / "report.html"
    run("report", qemu_core["core"], "--html", page)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "<script" not in text
    for job in qmp(qemu_core, "query-jobs"):
        assert job["id"] in text


def test_zstd_core_reads_like_the_plain_one(tmp_path):
    """systemd-coredump's zstd-compressed cores are read as they are."""
    meta = core("qsd-7.2-kernel")
    packed = tmp_path / "core.zst"
    subprocess.run(["zstd", "-q", "-o", packed, meta["core"]], check=True)
    plain = run("bt", meta["core"], "--exe", meta["exe"], "-a", "--json").stdout
    assert run("bt", packed, "--exe", meta["exe"], "-a", "--json").stdout == plain
    assert os.listdir(tmp_path) == ["core.zst"]


def test_bad_input_one_line_exit_2(tmp_path):
    """Not a core, a truncated core, the wrong executable: exit 2 and one line, no traceback."""
    meta = core("qsd-10.0-gcore")
    other = core("qsd-7.2-gcore")
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a core at all" * 10)
    truncated = tmp_path / "truncated"
    with open(meta["core"], "rb") as f:
        truncated.write_bytes(f.read(3000))
    for args in (["bt", junk], ["bt", truncated, "--exe", meta["exe"]],
                 ["bt", meta["core"], "--exe", other["exe"]]):
        proc = run(*args, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("qemu-coredump: ")


def test_context_argument_after_core(qemu_core):
    """`handlers CORE main`: the optional AioContext comes after CORE; the main loop's
    context has exactly one aio_context_notifier_cb handler (QEMU's own event notifier)."""
    items = json.loads(run("handlers", qemu_core["core"], "main", "--json").stdout)["items"]
    notifiers = [h for h in items if h["callbacks"].get("io_read") == "aio_context_notifier_cb"]
    assert len(notifiers) == 1 and len({h["ctx"] for h in items}) == 1


def test_unknown_names_are_bad_input(qemu_core):
    """A node or AioContext that does not exist: exit 2 with one line naming it."""
    for args in (["bdrv", qemu_core["core"], "no-such-node"], ["bhs", qemu_core["core"], "no-such-ctx"]):
        proc = run(*args, check=False)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "no-such-" in proc.stderr


# How QEMU names its threads with `-name debug-threads=on` (the system fixture), and KVM
# its worker thread in the process (kvm-nx-lpage-recovery), and the role the report must
# give each.
COMM_ROLES = [("IO ", lambda comm: f"iothread {comm[3:]}"), ("CPU ", lambda comm: "vCPU"),
              ("call_rcu", lambda comm: "rcu"), ("worker", lambda comm: "worker"),
              ("kvm-", lambda comm: "kernel worker")]


@pytest.mark.parametrize("name", ["system-10.0-gcore", "system-10.0-kernel"])
def test_report_thread_roles_match_qemu_thread_names(name):
    """Every thread's role in the report agrees with the name QEMU gave the thread
    (/proc/PID/task/TID/comm captured before the dump). The main thread keeps the process
    name; so does a thread QEMU started before it read debug-threads=on (the RCU thread,
    at times): those are the main loop only for tid == pid."""
    meta = core(name)
    comms = {t["tid"]: t["comm"] for t in json.loads((Path(meta["oracle"]) / "tids.json").read_text())}
    rep = json.loads(run("report", meta["core"], "--json").stdout)
    assert {t["tid"] for t in rep["threads"]} == set(comms)
    for t in rep["threads"]:
        comm = comms[t["tid"]]
        if comm == comms[meta["pid"]]:
            assert (t["role"] == "main loop") == (t["tid"] == meta["pid"]), (t, comm)
            continue
        want = next((role(comm) for prefix, role in COMM_ROLES if comm.startswith(prefix)), "other")
        assert t["role"] == want, (t, comm)
