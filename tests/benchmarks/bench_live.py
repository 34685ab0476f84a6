#!/usr/bin/env python3
"""Benchmark: `qemu-coredump report --pid` on a running QEMU, against the two ways to get
the same answer without it, on the same process:

- ours: `qemu-coredump report --pid PID` with a warm cache. Pause: how long every thread
  was stopped for the answer (the report's `live.stopped_ms`), and all stops of the run
  (`live.total_ms`: the first stop, for registers only, too).
- gdb: `gdb -batch -p PID` with qemugdb loaded running `qemu report` (the same walkers
  through gdb). Pause: attach to detach.
- gcore: `gcore PID`, then `qemu-coredump report` on its core (warm). Pause: gcore's
  attach to detach.

gdb's and gcore's pauses are timed by a thread polling /proc/PID/status's TracerPid every
0.2 ms (the window it is non-zero); ours are our own clock around the stop, and the same
poller's window is printed beside them as a check. The process is fixtures/make_cores.py's
scenario (qemu-system-x86_64 VM by default, `--program qsd` for qemu-storage-daemon), each
tool run --runs times, alternating. Prints a Markdown table for docs/performance.md.

    python3 tests/benchmarks/bench_live.py [--runs 7] [--program system|qsd] [--version 10.0]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_core import ROOT, compile_sources, run

sys.path.insert(0, str(Path(ROOT) / "fixtures"))
import make_cores  # noqa: E402


class TracerWindow:
    """Polls /proc/PID/status; windows: [seconds TracerPid was non-zero] in order."""

    def __init__(self, pid):
        self.pid, self.windows, self._stop = pid, [], threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        path, start = f"/proc/{self.pid}/status", None
        while not self._stop.is_set():
            with open(path) as f:
                traced = "TracerPid:\t0\n" not in f.read()
            now = time.perf_counter()
            if traced and start is None:
                start = now
            elif not traced and start is not None:
                self.windows.append(now - start)
                start = None
            time.sleep(0.0002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        time.sleep(0.01)
        self._stop.set()
        self._thread.join()


def ours(pid):
    with TracerWindow(pid) as w:
        t, _, out = run(["qemu-coredump", "report", "--pid", str(pid), "--json"], ok=(0, 1))
    live = json.loads(out)["live"]
    return {"total": t, "pause": live["stopped_ms"] / 1e3, "all_stops": live["total_ms"] / 1e3,
            "polled": sum(w.windows)}


def gdb_report(pid):
    argv = ["gdb", "-nx", "-batch", "-ex", f"source {ROOT}/qemugdb/gdb_load.py",
            "-ex", "qemu report", "-p", str(pid)]
    with TracerWindow(pid) as w:
        t, _, _ = run(argv)
    return {"total": t, "pause": sum(w.windows)}


def gcore_report(pid, tmp):
    prefix = os.path.join(tmp, "core")
    with TracerWindow(pid) as w:
        t1, _, _ = run(["gcore", "-o", prefix, str(pid)])
    core = f"{prefix}.{pid}"
    t2, _, _ = run(["qemu-coredump", "report", core], ok=(0, 1))
    size = os.path.getsize(core)
    os.unlink(core)
    return {"total": t1 + t2, "pause": sum(w.windows), "gcore": t1, "report": t2,
            "core_mb": size / (1 << 20)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--program", choices=("system", "qsd"), default="system")
    ap.add_argument("--version", default="10.0")
    args = ap.parse_args()
    compile_sources()
    work = Path(tempfile.mkdtemp(prefix="qemugdb-bench-live-"))
    q = make_cores.Qemu(make_cores.qemu_bindir(args.version), work, "gcore")
    try:
        make_cores.PROGRAMS[args.program][1](q)
        pid = q.proc.pid
        ours(pid)                               # warm the caches (DWARF index, symbols)
        results = {"ours": [], "gdb": [], "gcore": []}
        start = time.strftime("%H:%M:%S")
        load = os.getloadavg()
        for _ in range(args.runs):
            results["ours"].append(ours(pid))
            results["gdb"].append(gdb_report(pid))
            results["gcore"].append(gcore_report(pid, str(work)))
        load = max(load[0], os.getloadavg()[0])
        q.qmp.execute("query-version")          # still serving
    finally:
        q.close()
        shutil.rmtree(work, ignore_errors=True)

    def med(tool, key):
        return statistics.median(r[key] for r in results[tool])

    gcore_total = med("gcore", "total")
    print(f"{args.program}-{args.version}, {args.runs} runs each, {start}-"
          f"{time.strftime('%H:%M:%S')} UTC, load average up to {load:.1f}; medians:\n")
    print("| tool | pause ms | total s | total vs gcore + report |")
    print("|---|---|---|---|")
    print(f"| qemu-coredump report --pid | {med('ours', 'pause') * 1e3:.1f} (all stops "
          f"{med('ours', 'all_stops') * 1e3:.1f}; polled {med('ours', 'polled') * 1e3:.1f}) | "
          f"{med('ours', 'total'):.3f} | {med('ours', 'total') / gcore_total:.2f}x |")
    print(f"| gdb -p + qemu report | {med('gdb', 'pause') * 1e3:.0f} | {med('gdb', 'total'):.3f} "
          f"| {med('gdb', 'total') / gcore_total:.2f}x |")
    print(f"| gcore + qemu-coredump report | {med('gcore', 'pause') * 1e3:.0f} | {gcore_total:.3f} "
          f"(gcore {med('gcore', 'gcore'):.3f}, report {med('gcore', 'report'):.3f}; core "
          f"{med('gcore', 'core_mb'):.0f} MB) | 1.00x |")
    print("\npauses of each run, ms: ours " +
          " ".join(f"{r['pause'] * 1e3:.1f}" for r in results["ours"]) + "; gdb " +
          " ".join(f"{r['pause'] * 1e3:.0f}" for r in results["gdb"]) + "; gcore " +
          " ".join(f"{r['pause'] * 1e3:.0f}" for r in results["gcore"]))


if __name__ == "__main__":
    main()
