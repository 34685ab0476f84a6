#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine (as root): installs what it needs,
# builds (or reuses) real QEMU 7.2, 10.0 and 10.2 (and 5.2, for one core) with debug info,
# makes the fixture cores (plain and distribution-shaped builds, paths those miss, and real
# hangs) with QEMU's own ground truth beside them, then runs pytest. Extra arguments go to
# pytest, e.g. `bash tests/run.sh -m "not slow"` for the fast tier alone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash fixtures/deps.sh
fixtures/build-qemu.sh bookworm trixie sid >/dev/null
python3 fixtures/make_cores.py
python3 fixtures/edge_cores.py  # builds QEMU 5.2 (build-qemu.sh bullseye) for its core
python3 fixtures/hangs.py
exec python3 -m pytest -ra "$@"
