#!/usr/bin/env python3
"""Benchmark: opening a compressed core (corefile.core.open_core: decompress into an
unlinked temporary file, map it, parse it), per format, written sparse as shipped and, to
compare, written whole (every zero byte).

Each CORE is compressed once into a scratch directory with the formats' own tools (zstd,
xz, lz4, gzip as systemd-coredump would); each open runs in a fresh process: wall time,
the process's peak RSS (VmHWM) and the blocks the temporary file took on disk.

    python3 tests/benchmarks/bench_decompress.py CORE-NAME-OR-PATH ...

A name is a fixture core (fixtures/make_cores.py), e.g. qsd-10.0-gcore. Prints a Markdown
table for docs/performance.md.
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "fixtures"))

import corelist  # noqa: E402

COMPRESS = {"zstd": ["zstd", "-q", "-c"], "xz": ["xz", "-c", "-T0"],
            "lz4": ["lz4", "-q", "-c"], "gzip": ["gzip", "-c"]}
CHILD = r"""
import os, sys, time
sys.path.insert(0, sys.argv[3])
from corefile import compressed
if sys.argv[2] == "whole":
    compressed.HOLE = compressed.CHUNK + 1     # no block is ever skipped
from corefile.core import open_core
t = time.perf_counter()
core = open_core(sys.argv[1])
took = time.perf_counter() - t
blocks = os.fstat(core.fd).st_blocks * 512
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(took, int(hwm.split()[1]) * 1024, blocks, core.size)
"""


def path_of(name):
    return name if os.path.exists(name) else corelist.core(name)["core"]


def main():
    print("| core | format | packed MiB | written | open s | peak RSS MiB | temp file MiB "
          "on disk / size |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-decompress-") as scratch:
        for name in sys.argv[1:]:
            core = path_of(name)
            for fmt, argv in COMPRESS.items():
                packed = os.path.join(scratch, f"core.{fmt}")
                with open(packed, "wb") as out:
                    subprocess.run(argv + [core], stdout=out, check=True)
                for mode in ("sparse", "whole"):
                    r = subprocess.run([sys.executable, "-c", CHILD, packed, mode, ROOT],
                                       capture_output=True, text=True, check=True)
                    took, rss, blocks, size = map(float, r.stdout.split())
                    print(f"| {os.path.basename(name)} | {fmt} | "
                          f"{os.path.getsize(packed) / 2**20:.1f} | {mode} | {took:.2f} | "
                          f"{rss / 2**20:.0f} | {blocks / 2**20:.0f} / {size / 2**20:.0f} |",
                          flush=True)
                os.unlink(packed)


if __name__ == "__main__":
    main()
