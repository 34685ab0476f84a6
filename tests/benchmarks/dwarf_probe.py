#!/usr/bin/env python3
"""Time corefile.dwarf alone on a QEMU binary: cold (empty cache) and warm (cache primed).

The work, in a fresh process each run: open DebugInfo, resolve ~30 QEMU types and read
every member's offset and type size, look up a few variables and functions, and locate() 40
pcs. Wall and CPU time (process start to exit, CPU including forked index scanners) are
medians of --runs; peak RSS is the largest ru_maxrss. Python runs with its bytecode cache
(as an installed package does). gdb -batch doing the same type lookups (ptype/o) is timed
for reference.

    python3 tests/benchmarks/dwarf_probe.py [--runs 5] BINARY [BINARY ...]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TYPES = ["BlockDriverState", "BdrvChild", "BlockBackend", "BlockJob", "Job", "AioContext",
         "QEMUBH", "AioHandler", "QEMUTimer", "QEMUTimerList", "QEMUTimerListGroup",
         "Coroutine", "CoroutineUContext", "IOThread", "CoQueue", "CoMutex",
         "ThrottleGroupMember", "BdrvTrackedRequest", "BlockDriver", "JobDriver",
         "BlockJobDriver", "BdrvChildClass", "struct ThrottleGroup", "ThrottleState",
         "QemuMutex", "QemuCond", "QemuThread", "BlockExport", "BDRVQcow2State", "QemuLockCnt"]

WORK = r"""
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, ROOT)
from corefile.dwarf import DebugInfo
di = DebugInfo(EXE, BUILD_ID, cache_dir=CACHE)
n = 0
for name in TYPES:
    t = di.find_type(name)
    if t is None:
        continue
    for m in t.strip_typedefs().members:
        n += m.offset + (m.type.size or 0)
t1 = time.perf_counter()
di.find_variable("all_bdrv_states")
di.find_variable("co_tls_current", file="util/coroutine-ucontext.c")
di.find_variable("qemu_aio_context")
pcs = []
for f in ("aio_poll", "qemu_coroutine_switch", "coroutine_trampoline", "bdrv_open",
          "aio_bh_poll", "qemu_coroutine_enter", "main", "blk_co_preadv"):
    a = di.find_function(f)
    if a is not None:
        pcs += [a + 5 * i for i in range(5)]
locs = [di.locate(pc) for pc in pcs]
t2 = time.perf_counter()
print(f"types {t1 - t0:.3f} vars+locate {t2 - t1:.3f}", file=sys.stderr)
"""


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            return line.split()[-1]
    return None


def run(code):
    """(wall seconds, CPU seconds, peak RSS MiB, its stderr) of one fresh python process
    running code."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # time what an installed package does
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, env=env)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode()
    if status:
        raise SystemExit(f"probe failed:\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, err.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    for exe in args.binaries:
        bid = build_id(exe)
        print(f"## {exe} (build-id {bid})")
        with tempfile.TemporaryDirectory() as cache:
            def code(cache_dir):
                return (f"ROOT={ROOT!r}; EXE={exe!r}; BUILD_ID={bid!r}; CACHE={cache_dir!r}; "
                        f"TYPES={TYPES!r}\n" + WORK)
            cold = []
            for i in range(args.runs):
                cold.append(run(code(os.path.join(cache, f"cold{i}"))))
            warm_dir = os.path.join(cache, "warm")
            run(code(warm_dir))
            warm = [run(code(warm_dir)) for _ in range(args.runs)]
        gdb = []
        cmd = ["gdb", "-nx", "-batch"] + [a for t in TYPES for a in ("-ex", f"ptype/o {t}")]
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run(cmd + [exe], capture_output=True, check=False)
            gdb.append(time.perf_counter() - start)
        for label, rows in (("cold", cold), ("warm", warm)):
            wall = statistics.median(r[0] for r in rows)
            cpu = statistics.median(r[1] for r in rows)
            rss = max(r[2] for r in rows)
            print(f"corefile.dwarf {label}: {wall:.3f} s median wall, {cpu:.3f} s CPU, "
                  f"peak RSS {rss:.0f} MiB  (last run: {rows[-1][3]})")
        print(f"gdb -batch ptype/o x{len(TYPES)}: {statistics.median(gdb):.3f} s median wall")


if __name__ == "__main__":
    main()
