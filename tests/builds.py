"""The real QEMU builds fixtures/build-qemu.sh leaves under $QEMUGDB_CACHE, for the slow tier."""

import os
from pathlib import Path

CACHE = Path(os.environ.get("QEMUGDB_CACHE", Path.home() / ".cache" / "qemugdb"))
VERSIONS = {"7.2": "qemu-7.2+*", "10.0": "qemu-10.0*", "10.2": "qemu-10.2*"}


def qemu_bin(version, program="qemu-storage-daemon"):
    """DIR/bin of the finished QEMU `version` build that has `program`."""
    for d in sorted(CACHE.glob(VERSIONS[version])):
        if (d / "DONE").exists() and (d / "bin" / program).exists():
            return d / "bin"
    raise AssertionError(f"no QEMU {version} {program} under {CACHE}: run "
                         "`fixtures/build-qemu.sh bookworm trixie sid` (tests/run.sh does)")


def qemu_dir(version):
    """The build directory (DIR, with DIR/bin and DIR/src) of QEMU `version`."""
    return str(qemu_bin(version).parent)
