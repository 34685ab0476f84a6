#!/usr/bin/env python3
"""Benchmark: the same work on the same QEMU core, done by corefile, gdb -batch and drgn.

The work: open the core, resolve ~30 QEMU types, walk all_bdrv_states (node-name and
driver name pointer of every node: drgn cannot read the exe's .rodata from a gcore), unwind every thread. Each run is a fresh process; wall time is the median
of --runs, peak RSS the largest maxrss of those runs (os.wait4). corefile runs cold (an
empty cache directory each run) and warm (a cache primed by one earlier run); gdb has no
persistent cache here; drgn keeps none.

    python3 tests/benchmarks/bench_core.py [--runs 5] [CORE-NAME ...]

CORE-NAME is a fixture core (fixtures/make_cores.py), default qsd-10.0-gcore. Needs drgn
(`pip install drgn`). Prints a Markdown table for docs/performance.md.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "fixtures"))

import corelist  # noqa: E402

RESULT = re.compile(r"^\d+ \d+$")  # "nodes frames", the last line each script prints
TYPES = ["BlockDriverState", "BdrvChild", "BlockBackend", "BlockJob", "Job", "AioContext",
         "QEMUBH", "AioHandler", "QEMUTimer", "QEMUTimerList", "QEMUTimerListGroup",
         "Coroutine", "CoroutineUContext", "IOThread", "CoQueue", "CoMutex",
         "ThrottleGroupMember", "BdrvTrackedRequest", "BlockDriver", "JobDriver",
         "BlockJobDriver", "BdrvChildClass", "ThrottleGroup", "ThrottleState", "QemuMutex",
         "QemuCond", "QemuThread", "BlockExport", "BDRVQcow2State", "QemuLockCnt"]

COREFILE = r"""
import sys
sys.path.insert(0, {root!r})
import corefile
from qemugdb.core.target import CoreTarget
from qemugdb.walkers.queue import qtailq_foreach
t = CoreTarget(corefile.open({core!r}, exe={exe!r}, debug_dirs={debug_dirs!r}))
for name in {types!r}:
    t.lookup_type(name).size
nodes = [(bs.node_name.string_(), bs.drv.deref_().format_name.value_())
         for bs in qtailq_foreach(t.variable("all_bdrv_states"), "bs_list")]
frames = sum(len(t.unwind(th.registers)) for th in t.threads())
print(len(nodes), frames)
"""

GDB = r"""
import gdb
for name in {types!r}:
    gdb.lookup_type(name).sizeof
nodes = []
bs = gdb.parse_and_eval("all_bdrv_states")["tqh_first"]
while bs:
    nodes.append((bs["node_name"].string(), int(bs["drv"]["format_name"])))
    bs = bs["bs_list"]["tqe_next"]
frames = 0
for th in gdb.selected_inferior().threads():
    th.switch()
    f = gdb.newest_frame()
    while f is not None:
        frames += 1
        f = f.older()
print(len(nodes), frames)
"""

DRGN_OPEN = r"""
import drgn
prog = drgn.Program()
prog.debug_info_options.directories = {debug_dirs!r} + tuple(prog.debug_info_options.directories)
prog.set_core_dump({core!r})
try:
    prog.load_debug_info([{exe!r}], default=True)
except drgn.MissingDebugInfoError:
    pass  # libraries without debug info: unwinding still uses their .eh_frame
"""

# What the walking scripts (bench_report, bench_waits) share: a pc's symbol, a list's items.
DRGN_WALK = DRGN_OPEN + r"""
from drgn import Object


def symbol(address):
    try:
        return prog.symbol(address).name
    except LookupError:
        return None


def chain(first, *link):
    p = first
    while p.value_():
        yield p
        for name in link:
            p = p.member_(name)
"""

DRGN = DRGN_OPEN + r"""
for name in {types!r}:
    drgn.sizeof(prog.type(name))
nodes = []
bs = prog["all_bdrv_states"].tqh_first
while bs:
    nodes.append((bs.node_name.string_().decode(), bs.drv.format_name.value_()))
    bs = bs.bs_list.tqe_next
frames = sum(len(th.stack_trace()) for th in prog.threads())
print(len(nodes), frames)
"""


def run(argv, env=None, ok=(0,)):
    """(seconds, peak RSS in MB, stdout) of one process; an exit status not in ok fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in ok:
        raise SystemExit(f"{argv[0]} failed: {err.decode(errors='replace')[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, out.decode().strip()


def measure(label, make_argv, runs, env_for_run=lambda i: None, ok=(0,)):
    """Median time, peak RSS and the result lines (a script's last "N M" line, else the
    number of lines printed) of runs of one command."""
    times, rss, outs = [], [], set()
    for i in range(runs):
        t, r, out = run(make_argv(), env_for_run(i), ok)
        times.append(t)
        rss.append(r)
        lines = out.splitlines()
        outs.add(next((line for line in reversed(lines) if RESULT.match(line)),
                      f"{len(lines)} lines"))
    return {"label": label, "median": statistics.median(times), "rss": max(rss), "out": outs}


def debug_dirs(meta):
    """The separate debug info directories of a fixture core (a distribution-shaped one's
    debug root): every tool in a benchmark reads the same files."""
    return (meta["debug_dir"],) if meta.get("debug_dir") else ()


def gdb_argv(meta, *commands):
    """gdb -batch on the core with the fixture's debug directories, then commands."""
    argv = ["gdb", "-nx", "-batch"]
    if debug_dirs(meta):
        argv += ["-iex", "set debug-file-directory " + ":".join(debug_dirs(meta) + ("/usr/lib/debug",))]
    for c in commands:
        argv += ["-ex", c]
    return argv + [meta["exe"], meta["core"]]


def command_argv(meta, command):
    """`qemu-coredump COMMAND` on a fixture core, with its executable and debug dirs."""
    script = os.path.join(os.path.dirname(sys.executable), "qemu-coredump")
    argv = [script] if os.path.exists(script) else \
        [sys.executable, "-c", "from qemu_coredump.main import main; main()"]
    argv += [command, meta["core"], "--exe", meta["exe"]]
    for d in debug_dirs(meta):
        argv += ["--debug-dir", d]
    return argv


def bench_command(meta, runs, command, drgn):
    """`qemu-coredump COMMAND` cold (an empty cache each run) and warm, gdb -batch running
    `qemu COMMAND` with qemugdb loaded, and the drgn script DRGN doing that work."""
    results, dirs = [], []

    def fresh_cache(_i=None):
        d = tempfile.mkdtemp(prefix="qemugdb-bench-")
        dirs.append(d)
        return dict(os.environ, XDG_CACHE_HOME=d)

    argv = lambda: command_argv(meta, command)  # noqa: E731
    results.append(measure(f"qemu-coredump {command} cold", argv, runs, fresh_cache,
                           ok=(0, 1)))
    warm_env = fresh_cache()
    measure("prime", argv, 1, lambda i: warm_env, ok=(0, 1))
    results.append(measure(f"qemu-coredump {command} warm", argv, runs, lambda i: warm_env,
                           ok=(0, 1)))
    load = os.path.join(ROOT, "qemugdb", "gdb_load.py")
    results.append(measure(f"gdb -batch qemu {command}",
                           lambda: gdb_argv(meta, f"source {load}", f"qemu {command}"), runs))
    script = drgn.format(core=meta["core"], exe=meta["exe"], debug_dirs=debug_dirs(meta))
    results.append(measure("drgn 0.3 script", lambda: [sys.executable, "-c", script], runs))
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    return results


def compile_sources():
    """Byte-compile this project's modules first, as an installation does: without it a run
    whose environment sets PYTHONDONTWRITEBYTECODE compiles them from source every time."""
    for package in ("corefile", "qemugdb", "cli"):
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, package)],
                       check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE=""))


def bench(meta, runs):
    core, exe = meta["core"], meta["exe"]
    fmt = dict(root=ROOT, core=core, exe=exe, types=TYPES, debug_dirs=debug_dirs(meta))
    py = sys.executable
    results = []
    cold_dirs = []

    def cold_env(i):
        d = tempfile.mkdtemp(prefix="qemugdb-bench-")
        cold_dirs.append(d)
        return dict(os.environ, XDG_CACHE_HOME=d)

    corefile_argv = lambda: [py, "-c", COREFILE.format(**fmt)]  # noqa: E731
    results.append(measure("corefile cold", corefile_argv, runs, cold_env))
    warm = tempfile.mkdtemp(prefix="qemugdb-bench-")
    warm_env = dict(os.environ, XDG_CACHE_HOME=warm)
    run(corefile_argv(), warm_env)
    results.append(measure("corefile warm", corefile_argv, runs, lambda i: warm_env))
    script = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
    script.write(GDB.format(**fmt))
    script.close()
    results.append(measure("gdb -batch", lambda: gdb_argv(meta, f"source {script.name}"), runs))
    results.append(measure("drgn 0.3", lambda: [py, "-c", DRGN.format(**fmt)], runs))
    os.unlink(script.name)
    for d in cold_dirs + [warm]:
        shutil.rmtree(d, ignore_errors=True)
    return results


def print_tables(bench, title, column, drgn_label, gdb_label):
    """Parse --runs and core names, run bench(meta, runs) per core, print the Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("cores", nargs="*", default=["qsd-10.0-gcore"])
    args = ap.parse_args()
    compile_sources()
    print(f"{args.runs} runs each{title}.\n")
    print(f"| core | tool | median s | peak RSS MB | {column} | vs drgn | vs gdb |")
    print("|---|---|---|---|---|---|---|")
    for name in args.cores:
        results = bench(corelist.core(name), args.runs)
        by = {r["label"]: r for r in results}
        drgn, gdb = by[drgn_label]["median"], by[gdb_label]["median"]
        for r in results:
            print(f"| {name} | {r['label']} | {r['median']:.3f} | {r['rss']:.0f} | "
                  f"{' / '.join(sorted(r['out']))} | {r['median'] / drgn:.2f}x | "
                  f"{r['median'] / gdb:.2f}x |")


def main():
    print_tables(bench, f"; the work: open, {len(TYPES)} types, walk all_bdrv_states, unwind "
                 "every thread", "nodes, frames", "drgn 0.3", "gdb -batch")


if __name__ == "__main__":
    main()
