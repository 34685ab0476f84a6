"""corefile.live on small real processes (fast tier, no QEMU): memory read through
/proc/PID/mem, stops of a process whose threads come and go, Ctrl-C inside a stop, the
refusals, and `bt --all --pid` against gdb attached right after."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import corefile
from corefile import live
from oracle import parse_gdb_bt
from test_cli import gdb_frames
from test_live import same_frames

CHILD = r"""
import ctypes, threading, time
buf = ctypes.create_string_buffer(bytes(range(256)) * 40)   # 10 KiB: crosses pages
def churn():                       # threads created and exiting all the time
    while True:
        t = threading.Thread(target=time.sleep, args=(0.0005,))
        t.start()
        t.join()
for _ in range(3):
    threading.Thread(target=churn, daemon=True).start()
print(ctypes.addressof(buf), flush=True)
time.sleep(600)
"""


@pytest.fixture
def child():
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    address = int(p.stdout.readline())
    yield p.pid, address
    p.kill()
    p.wait()


def traced(pid):
    return not re.search(r"^TracerPid:\t0$", Path(f"/proc/{pid}/status").read_text(), re.M)


def stopped_tasks(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
        except OSError:
            continue                    # exited meanwhile
        if stat.rsplit(")", 1)[1].split()[0] in "tT":
            out.append(task)
    return out


def test_memory(child):
    pid, address = child
    with corefile.attach(pid) as program:
        want = bytes(range(256)) * 40
        assert program.core.walk(lambda: program.read(address, len(want))) == want
        assert program.core.pause.consistent and program.core.pause.pages >= 3
        for bad in (0x10, 1 << 63, (1 << 64) - 8):
            with pytest.raises(corefile.FaultError):
                program.read(bad, 8)
    assert not traced(pid) and not stopped_tasks(pid)


def test_stops_while_threads_come_and_go(child):
    pid, _ = child
    process = live.open_process(pid)
    try:
        for _ in range(30):
            process.stop()
            assert process.threads[0].tid == pid and process.threads[0].num == 1
            assert [t.num for t in process.threads] == list(range(1, len(process.threads) + 1))
            assert all(t.registers["rip"] and t.registers["fs_base"] for t in process.threads)
    finally:
        process.memory.close()
    assert process.pause.stops == 30
    assert not traced(pid) and not stopped_tasks(pid)
    os.kill(pid, 0)


def test_ctrl_c_inside_a_stop_waits_for_the_detach(child):
    pid, _ = child
    process = live.open_process(pid)
    copy = process.memory.copy
    seen = []

    def interrupted_copy(pages):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)                # the handler has run: it must not raise here
        seen.append(traced(pid))
        copy(pages)

    process.memory.copy = interrupted_copy
    try:
        with pytest.raises(KeyboardInterrupt):
            process.stop()
    finally:
        process.memory.close()
    assert seen == [True]
    assert not traced(pid) and not stopped_tasks(pid)


def test_refusals(child):
    pid, _ = child
    tid = next(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    for bad, message in [(tid, f"{tid} is a thread of process {pid}: give --pid {pid}"),
                         (os.getpid(), "cannot read qemu-coredump's own process"),
                         (2 ** 22 + 1, f"no process {2 ** 22 + 1}")]:
        with pytest.raises(live.NotPermittedError) as e:
            live.check_permitted(bad)
        assert str(e.value) == message


def test_bt_all_equals_gdb():
    """A single-threaded C program (sleep) read live: its frames are gdb's."""
    p = subprocess.Popen(["sleep", "600"])
    try:
        time.sleep(0.2)
        r = subprocess.run(["qemu-coredump", "bt", "--all", "--json", "--pid", str(p.pid)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        [thread] = json.loads(r.stdout)
        gdb = subprocess.run(["gdb", "-batch", "-nx", "-ex", "bt", "-p", str(p.pid)],
                             capture_output=True, text=True, timeout=120).stdout
        want = parse_gdb_bt("Thread 1 (x)\n" + gdb)[1]
        assert same_frames(gdb_frames(thread), want), (gdb_frames(thread), want)
    finally:
        p.kill()
        p.wait()
