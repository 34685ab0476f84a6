"""Walker paths the main fixture cores do not reach, on real cores made for them
(fixtures/edge_cores.py), checked against gdb and what the fixture was told to create:
QEMU 5.2's per-thread coroutine pools (`__thread alloc_pool`, before co_tls_), a storage
daemon with no monitor and no throttle group (nothing global names a QOM object), and the
Fedora-shaped build's sources under /usr/src/debug (fixtures/distro.py)."""

import json
import re

import pytest
from click.testing import CliRunner

import corelist
from cli.main import main as cli_main
from gdbrun import run_gdb
from oracle import fixture_core

pytestmark = pytest.mark.slow


def cli(core, *args):
    """qemu-coredump ARGS[0] CORE ARGS[1:] (this checkout's): (exit status, stdout, stderr)."""
    r = CliRunner().invoke(
        cli_main, [args[0], core["core"], "--exe", core["exe"], *args[1:]], env={"NO_COLOR": "1"})
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.stderr, r.stderr
    return r.exit_code, r.stdout, r.stderr


def gdb_json(core, script, gdb_batch):
    """The JSON a gdb Python SCRIPT prints after "@@", gdb reading CORE."""
    out = gdb_batch(core["exe"], core["core"], script=script, timeout=300,
                    debug_dirs=corelist.gdb_debug_dirs(core.get("debug_dir")))
    return json.loads(out.split("@@", 1)[1])


# ---------------------------------------------------------------- QEMU 5.2's pools

# util/qemu-coroutine.c before 7.0: a shared `release_pool` and a `__thread alloc_pool`,
# both QSLIST_HEAD(, Coroutine) chained by pool_next, with their counters.
_POOLS_SCRIPT = """
import json
import re
def walk(head):
    cos, co = [], head["slh_first"]
    while co and len(cos) < 100000:
        cos.append(int(co))
        co = co["pool_next"]["sle_next"]
    return cos
def var(name):
    return gdb.parse_and_eval("'qemu-coroutine.c'::" + name)
out = {"co_tls": [n for n in ("co_tls_alloc_pool", "co_tls_release_pool")
                  if gdb.lookup_static_symbol(n) or gdb.lookup_global_symbol(n)],
       "release": walk(var("release_pool")), "release_size": int(var("release_pool_size")),
       "alloc": {}, "alloc_size": {}}
for th in gdb.selected_inferior().threads():
    th.switch()
    out["alloc"][th.num] = walk(var("alloc_pool"))
    out["alloc_size"][th.num] = int(var("alloc_pool_size"))
print("@@" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def qsd52():
    return fixture_core("qsd-5.2-kernel")


def test_52_pools_are_plain_thread_locals(qsd52, gdb_batch):
    """The fixture reaches the pre-7.0 path: no co_tls_ pool variable, and gdb's walk of
    each pool is as long as QEMU's own counter of it, with some thread's alloc_pool full."""
    assert qsd52["qemu_version"] == "5.2.0"
    pools = gdb_json(qsd52, _POOLS_SCRIPT, gdb_batch)
    assert pools["co_tls"] == []
    assert len(pools["release"]) == pools["release_size"] > 0
    for num, cos in pools["alloc"].items():
        assert len(cos) == pools["alloc_size"][num], num
    assert any(pools["alloc"].values()), "no thread's alloc_pool has a coroutine"


def test_52_pool_walk_equals_gdb(qsd52, gdb_batch):
    """`coroutines --pooled` lists exactly the coroutines gdb finds in release_pool and in
    each thread's alloc_pool, each labelled with its pool (and thread)."""
    pools = gdb_json(qsd52, _POOLS_SCRIPT, gdb_batch)
    status, out, err = cli(qsd52, "coroutines", "--pooled", "--json")
    assert status == 0, err
    got = {}
    for rec in json.loads(out)["coroutines"]:
        if rec["state"] == "pooled":
            got.setdefault(tuple(rec["waits"]), set()).add(rec["address"])
    want = {("idle in release pool",): set(pools["release"])}
    for num, cos in pools["alloc"].items():
        if cos:
            want[(f"idle in thread {num} alloc pool",)] = set(cos)
    assert got == want


# Before my_aiocontext, the context a thread runs is its IOThread's (`__thread IOThread
# *my_iothread` in iothread.c) or, on the main thread, qemu_aio_context.
_52_CONTEXTS_SCRIPT = """
import json
out = {"main": int(gdb.parse_and_eval("'main-loop.c'::qemu_aio_context")), "threads": {}}
for th in gdb.selected_inferior().threads():
    th.switch()
    iothread = gdb.parse_and_eval("'iothread.c'::my_iothread")
    if iothread:
        out["threads"].setdefault(int(iothread["ctx"]), []).append(th.ptid[1])
print("@@" + json.dumps(out))
"""


def test_52_aio_contexts_have_their_threads(qsd52, gdb_batch):
    """`aio` gives the main loop's AioContext the main thread and each IOThread's context
    the thread whose my_iothread points to it (gdb)."""
    want = gdb_json(qsd52, _52_CONTEXTS_SCRIPT, gdb_batch)
    status, out, err = cli(qsd52, "aio", "--json")
    assert status == 0, err
    got = {c["address"]: sorted(t["tid"] for t in c["threads"])
           for c in json.loads(out)}
    assert got[want["main"]] == [qsd52["pid"]]
    assert want["threads"] and all(got[int(ctx)] == sorted(tids)
                                   for ctx, tids in want["threads"].items())


# ---------------------------------------------------------------- no monitor, no throttle group

# gdb's own answers: QOM's root (object_get_root()'s function-scope static), the main
# AioContext, and the AioContext each IOThread's thread runs (its my_aiocontext).
_BARE_SCRIPT = """
import json
def tls(name):
    for n in ("co_tls_" + name, name):
        try:
            return int(gdb.parse_and_eval("'async.c'::" + n))
        except gdb.error:
            pass
out = {"root": int(gdb.parse_and_eval("object_get_root::root")),
       "main": int(gdb.parse_and_eval("'main-loop.c'::qemu_aio_context")), "iothreads": {}}
for th in gdb.selected_inferior().threads():
    th.switch()
    f, names = gdb.newest_frame(), []
    while f is not None:
        names.append(f.name())
        f = f.older()
    if "iothread_run" in names:
        out["iothreads"][th.ptid[1]] = tls("my_aiocontext")
print("@@" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def bare():
    return fixture_core("qsdbare-7.2-kernel")


@pytest.fixture(scope="module")
def bare_gdb(bare, gdb_batch):
    return gdb_json(bare, _BARE_SCRIPT, gdb_batch)


def told(argv, option):
    """The key=value dicts of every OPTION in a command line (what the daemon was told); a
    bare word (--object's QOM type) is under "type"."""
    return [dict(kv.split("=", 1) if "=" in kv else ("type", kv) for kv in value.split(","))
            for opt, value in zip(argv, argv[1:]) if opt == option]


def test_bare_has_no_anchor(bare):
    """The fixture is what it claims: no monitor or chardev, no throttle group, no machine
    (a storage daemon): only IOThread objects."""
    argv = bare["argv"]
    assert not {"--monitor", "--chardev"} & set(argv)
    assert [o["type"] for o in told(argv, "--object")] == ["iothread"]


def test_bare_qom_root_equals_gdb(bare, bare_gdb):
    """corefile finds qom/object.c's `root` (a static of object_get_root()) where gdb does."""
    import corefile
    with corefile.open(bare["core"], bare["exe"]) as prog:
        address, _type = prog.variable("root", file="qom/object.c", function="object_get_root")
        assert prog.read_pointer(address) == bare_gdb["root"] != 0


def test_bare_iothreads_from_qom_root(bare, bare_gdb):
    """`iothreads` lists the --object iothread it was given, on the thread gdb sees running
    iothread_run, with that thread's AioContext."""
    status, out, err = cli(bare, "iothreads", "--json")
    assert status == 0, err
    got = {t["id"]: (t["thread_id"], t["aio_context"]) for t in json.loads(out)}
    (lwp, ctx), = bare_gdb["iothreads"].items()
    (given,) = [o["id"] for o in told(bare["argv"], "--object") if o["type"] == "iothread"]
    assert got == {given: (int(lwp), ctx)}


def test_bare_block_graph_is_its_command_line(bare, bare_gdb):
    """block-graph has the --blockdev nodes (driver, file and backing children), one
    backend per --export on its node-name, and each node in the AioContext gdb finds for
    the export's thread: exp-b's chain in iothread0's, the rest in the main loop's."""
    status, out, err = cli(bare, "block-graph", "--json")
    assert status == 0, err
    graph = json.loads(out)
    assert graph["errors"] == []
    nodes = {n["id"]: n for n in graph["nodes"] if n["type"] == "block-driver"}
    name = {i: n["name"] for i, n in nodes.items()}
    blockdevs = told(bare["argv"], "--blockdev")
    assert sorted((n["name"], n["driver"]) for n in nodes.values()) == \
        sorted((b["node-name"], b["driver"]) for b in blockdevs)
    edges = {(name[e["parent"]], e["name"], name[e["child"]])
             for e in graph["edges"] if e["parent"] in name}
    assert edges == {(b["node-name"], role, b[role]) for b in blockdevs
                     for role in ("file", "backing") if role in b}
    backends = [n for n in graph["nodes"] if n["type"] == "block-backend"]
    exports = told(bare["argv"], "--export")
    assert sorted(name[b["root"]] for b in backends) == sorted(e["node-name"] for e in exports)
    (iothread_ctx,) = bare_gdb["iothreads"].values()
    below = {e["node-name"] for e in exports if e.get("iothread")}
    while True:  # an export's node moves to its IOThread with everything below it
        more = {c for p, _role, c in edges if p in below} - below
        if not more:
            break
        below |= more
    for n in nodes.values():
        want = iothread_ctx if n["name"] in below else bare_gdb["main"]
        assert int(n["aio_context"], 16) == want, n["name"]
    names = {int(c["id"], 16): c["name"] for c in graph["aio_contexts"]}
    assert names[iothread_ctx] == "iothread iothread0" and names[bare_gdb["main"]] == "main loop"


@pytest.mark.parametrize("command", ["report", "locks", "waits", "aio", "jobs", "coroutines",
                                     "bhs", "handlers", "timers", "iothreads", "block-graph"])
def test_bare_commands_complete(bare, command):
    """Every command reads the daemon whole (exit 0, nothing on stderr): no monitor and no
    throttle group is nothing missing."""
    status, out, err = cli(bare, command)
    assert (status, err) == (0, "")
    assert "QOM" not in out and "monitor" not in out.lower(), out


def test_bare_report_names_the_iothread(bare, bare_gdb):
    """report's thread table gives the thread gdb sees in iothread_run the --object's id."""
    status, out, err = cli(bare, "report")
    assert status == 0, err
    (lwp,) = bare_gdb["iothreads"]
    (row,) = [line for line in out.splitlines() if f" LWP {lwp} " in line]
    assert " iothread iothread0 " in row, row


def test_bare_iothreads_in_gdb(bare, bare_gdb):
    """The same through gdb (`qemu iothreads`): gdb's backend finds QOM's root too."""
    (out,), err = run_gdb([bare["exe"], bare["core"]], ["qemu iothreads --format json"])
    assert "Traceback" not in err and "Error" not in err, err
    (lwp, ctx), = bare_gdb["iothreads"].items()
    assert [(t["id"], t["thread_id"], t["aio_context"]) for t in json.loads(out)] == \
        [("iothread0", int(lwp), ctx)]


# ---------------------------------------------------------------- sources under /usr/src/debug

# gdb's own view of the focus thread's frames: each frame's file, line and compilation
# directory, then gdb selecting it as a user does (`frame N`), which prints "LINE\tTEXT" when
# gdb finds the source ("LINE\tFILE: No such file or directory." or "LINE\tin FILE" if not).
_FRAMES_SCRIPT = """
import json, re
[th] = [t for t in gdb.selected_inferior().threads() if t.num == FOCUS]
th.switch()
f, i = gdb.newest_frame(), 0
while f is not None and i < 64:
    sal = f.find_sal()
    f.select()
    comp = re.search(r"^Compilation directory is (.*)$",
                     gdb.execute("info source", to_string=True), re.M)
    print("@@" + json.dumps({"file": sal.symtab.filename if sal.symtab else None,
                             "line": sal.line, "comp_dir": comp and comp.group(1)}))
    gdb.execute("frame %d" % i)
    f, i = f.older(), i + 1
"""
SOURCE_HEAD = re.compile(r"^-- (.+):(\d+)$")
SOURCE_LINE = re.compile(r"^([> ])([ \d]{6})  (.*)$")


@pytest.fixture(scope="module")
def fedora():
    return fixture_core("qsd-10.0-fedora-kernel")


def report_sources(text):
    """(focus thread number, [(file, line, {line number: text}, marked line)]) of report's
    text: its focus thread and the source blocks under it."""
    focus = int(re.search(r"^== .* (\d+) \(LWP \d+\)$", text, re.M).group(1))
    blocks = []
    for line in text.splitlines():
        head, src = SOURCE_HEAD.match(line), SOURCE_LINE.match(line)
        if head:
            blocks.append((head.group(1), int(head.group(2)), {}, None))
        elif src and blocks:
            file, at, lines, marked = blocks[-1]
            n = int(src.group(2))
            lines[n] = src.group(3)
            blocks[-1] = (file, at, lines, n if src.group(1) == ">" else marked)
    return focus, blocks


def gdb_frames(core, focus, gdb_batch, commands=()):
    """_FRAMES_SCRIPT's answer after gdb COMMANDS: [{"file", "line", "comp_dir", "shown":
    [line, text] gdb printed, or None}] from the innermost frame out."""
    out = gdb_batch(core["exe"], core["core"], commands=commands, timeout=300,
                    script=_FRAMES_SCRIPT.replace("FOCUS", str(focus)),
                    debug_dirs=corelist.gdb_debug_dirs(core["debug_dir"]))
    frames = []
    for part in out.split("@@")[1:]:
        head, *printed = part.splitlines()
        frame = json.loads(head)
        m = re.match(r"(\d+)\t(.*)$", printed[1]) if len(printed) > 1 else None
        found = m and not m.group(2).startswith("in ") and \
            not m.group(2).endswith(": No such file or directory.")
        frame["shown"] = [int(m.group(1)), m.group(2)] if found else None
        frames.append(frame)
    return frames


def test_fedora_sources_map_to_a_tree_as_gdb_shows_them(fedora, gdb_batch):
    """The Fedora-shaped build's DWARF names its sources under /usr/src/debug/NVRA (not on
    this machine); `report --source-dir TREE` finds them in TREE and shows, at each frame it
    picks, the line gdb shows for that frame with `set substitute-path` to TREE."""
    tree = fedora["source_dir"]
    status, out, err = cli(fedora, "report", "--debug-dir", fedora["debug_dir"],
                           "--source-dir", tree)
    assert status == 0, err
    focus, blocks = report_sources(out)
    assert blocks, out
    plain = gdb_frames(fedora, focus, gdb_batch)
    assert any(f["comp_dir"] and f["comp_dir"].startswith("/usr/src/debug/") for f in plain)
    assert not any(f["shown"] for f in plain if f["comp_dir"]
                   and f["comp_dir"].startswith("/usr/src/debug/"))  # gdb alone finds none
    built_in = {f["comp_dir"].rsplit("/build", 1)[0] for f in plain
                if f["comp_dir"] and f["comp_dir"].startswith("/usr/src/debug/")}
    mapped = gdb_frames(fedora, focus, gdb_batch,
                        [f"set substitute-path {d} {tree}" for d in built_in])
    shown = {(f["file"], f["line"]): f["shown"] for f in mapped if f["shown"]}
    for file, line, lines, marked in blocks:
        assert marked == line and (file, line) in shown, (file, line, sorted(shown))
        assert shown[file, line] == [line, lines[line]]


def test_fedora_report_without_source_dir_says_so_in_one_line(fedora, gdb_batch):
    """Without --source-dir (or with a tree that lacks the files) the report shows no
    source block and says so in one line, naming QEMU's innermost frame as gdb names it."""
    status, out, err = cli(fedora, "report", "--debug-dir", fedora["debug_dir"])
    assert status == 0, err
    focus, blocks = report_sources(out)
    assert blocks == []
    (note,) = [line for line in out.splitlines() if line.startswith("-- source")]
    assert note.startswith("-- source not shown: ") and "no --source-dir given" in note
    assert [line for line in out.splitlines() if "--source-dir" in line] == [note]
    ours = [f for f in gdb_frames(fedora, focus, gdb_batch) if f["file"]
            and f["comp_dir"] and f["comp_dir"].startswith("/usr/src/debug/")
            and not f["file"].endswith(".h")]
    assert f" at {ours[0]['file']}:{ours[0]['line']} " in note, (note, ours[0])
    status, out, err = cli(fedora, "report", "--debug-dir", fedora["debug_dir"],
                           "--source-dir", fedora["debug_dir"])  # a tree without them
    assert status == 0 and report_sources(out)[1] == [], err
    (note,) = [line for line in out.splitlines() if line.startswith("-- source")]
    assert note.endswith(f": its file is not under {fedora['debug_dir']}"), note
