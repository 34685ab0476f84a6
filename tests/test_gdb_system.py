"""qemu mtree and qemu tcg-lock-status in gdb on a live qemu-system-x86_64 (QEMU 10.0),
against HMP `info mtree -D` and gdb's own backtraces; one-line errors on qemu-storage-daemon."""

import os
import subprocess
import tempfile
import time

import pytest

from gdbrun import run_gdb
from qsd_live import QMP, _wait_for
from builds import qemu_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def system():
    d = qemu_dir("10.0")
    exe = os.path.join(d, "bin", "qemu-system-x86_64")
    assert os.path.exists(exe), f"{exe} missing: fixtures/build-qemu.sh trixie builds it"
    with tempfile.TemporaryDirectory(prefix="qemugdb-sys-") as tmp:
        sock = os.path.join(tmp, "qmp.sock")
        proc = subprocess.Popen([
            exe, "-M", "pc", "-accel", "tcg", "-display", "none", "-m", "128", "-vga", "none",
            "-nodefaults", "-bios", "/usr/share/seabios/bios-256k.bin",
            "-global", "apic-common.vapic=off", "-qmp", f"unix:{sock},server=on,wait=off",
            "-S"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for(sock, proc)
            time.sleep(0.5)
            qmp = QMP(sock)
            proc.mtree = qmp.execute("human-monitor-command",
                                 **{"command-line": "info mtree -D"}).replace("\r", "")
            yield proc
        finally:
            proc.kill()
            proc.wait()


def test_mtree_equals_hmp_info_mtree(system):
    (out,), err = run_gdb(["-p", str(system.pid)], ["qemu mtree"])
    ours = sorted(line for line in out.splitlines() if line.strip())
    theirs = sorted(line for line in system.mtree.splitlines() if line.strip())
    assert len(theirs) > 100
    assert ours == theirs


def test_tcg_lock_status(system):
    out, err = run_gdb(["-p", str(system.pid)], ["qemu tcg-lock-status", "thread apply all bt"])
    lines = out[0].splitlines()
    assert lines[0] == "BQL (bql): owner free; per-thread flag bql_locked"
    rows = [line.split(", ", 3) for line in lines[2:]]
    # -S: the vCPU thread holds the BQL flag while it sleeps on its halt condition.
    vcpu = [r for r in rows if r[1] == "true"]
    assert len(vcpu) == 1
    assert vcpu[0][3] == "waiting on a condition variable in qemu_wait_io_event"
    tid = vcpu[0][0].split("/")[1]
    gdb_bt = out[1].split(f"(LWP {tid})")[1].split("\nThread ")[0]
    assert "___pthread_cond_wait" in gdb_bt and "qemu_wait_io_event" in gdb_bt
    assert "<bql>" in gdb_bt  # gdb agrees the condition's mutex is the BQL


def test_system_commands_on_qsd_fail_in_one_line():
    exe = os.path.join(qemu_dir("10.0"), "bin", "qemu-storage-daemon")
    out, err = run_gdb([exe], ["qemu mtree", "qemu tcg-lock-status"])
    assert "needs qemu-system" in err and "Traceback" not in err + "".join(out)
    assert len([l for l in err.splitlines() if l.startswith("qemu ")]) == 2


def test_upstream_fails_where_ours_matches(system):
    """Upstream's mtree overflows on the 2^64-byte root region (native Int128) and its
    tcg-lock-status looks for `iothread_locked`; ours match HMP (tests above)."""
    upstream = os.path.join(qemu_dir("10.0"), "src", "scripts", "qemu-gdb.py")
    out, err = run_gdb(["-p", str(system.pid)], [
        f"source {upstream}", "qemu mtree", "qemu tcg-lock-status"], load=False)
    assert "OverflowError" in err
    assert 'No symbol "iothread_locked"' in err
