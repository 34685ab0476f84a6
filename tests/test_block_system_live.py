"""The block graph of a live qemu-system-x86_64 (QEMU 10.0, no guest OS) in gdb and on its
gcore through corefile: BlockBackends named by -drive id, by device id and by the device's
QOM path, an IOThread from -object, compared with QMP."""

import json
import os
import subprocess
import tempfile
import time

import pytest

import corefile
from builds import qemu_bin
from gdbrun import run_gdb
from qemugdb.walkers import aio, block, iothread
from qemugdb.render.qmp import qmp_block_graph
from qsd_live import QMP

pytestmark = pytest.mark.slow

BIOS = "/usr/share/seabios/bios-256k.bin"


@pytest.fixture(scope="module")
def vm():
    bindir = qemu_bin("10.0", "qemu-system-x86_64")
    with tempfile.TemporaryDirectory(prefix="qemugdb-sys-") as d:
        for name in ("d0", "d1", "d2"):
            subprocess.run([bindir / "qemu-img", "create", "-q", "-f", "qcow2",
                            f"{d}/{name}.qcow2", "64M"], check=True)
        proc = subprocess.Popen([
            bindir / "qemu-system-x86_64", "-machine", "accel=kvm:tcg", "-m", "128",
            "-nographic", "-vga", "none", "-nodefaults", "-bios", BIOS,
            "-global", "apic-common.vapic=off", "-boot", "strict=on",
            "-object", "iothread,id=io1",
            "-drive", f"if=none,id=drive0,file={d}/d0.qcow2,format=qcow2",
            "-device", "virtio-blk-pci,drive=drive0,id=vblk0,iothread=io1,bootindex=1",
            "-blockdev", f"driver=file,filename={d}/d1.qcow2,node-name=d1-file",
            "-blockdev", "driver=qcow2,file=d1-file,node-name=d1",
            "-device", "virtio-blk-pci,drive=d1",
            "-blockdev", f"driver=file,filename={d}/d2.qcow2,node-name=d2-file",
            "-blockdev", "driver=qcow2,file=d2-file,node-name=d2",
            "-device", "virtio-blk-pci,drive=d2,id=named-dev",
            "-qmp", f"unix:{d}/qmp.sock,server=on,wait=off", "-serial", "none",
            "-monitor", "none"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                if os.path.exists(f"{d}/qmp.sock"):
                    break
                time.sleep(0.05)
            qmp = QMP(f"{d}/qmp.sock")
            graph = qmp.execute("x-debug-query-block-graph")
            iothreads = qmp.execute("query-iothreads")
            out, err = run_gdb(["-p", str(proc.pid)], [
                "qemu block-graph --format qmp-json", "qemu iothreads --format json"])
            subprocess.run(["gcore", "-o", f"{d}/core", str(proc.pid)], check=True,
                           capture_output=True, timeout=300)
            yield dict(pid=proc.pid, graph=graph, iothreads=iothreads, out=out, err=err,
                       exe=str(bindir / "qemu-system-x86_64"), core=f"{d}/core.{proc.pid}",
                       cache=d)
            qmp.close()
        finally:
            proc.kill()
            proc.wait()


def test_qmp_json_in_gdb_equals_qmp(vm):
    ours = json.loads(vm["out"][0])
    assert ours == vm["graph"]
    names = {n["name"] for n in ours["nodes"] if n["type"] == "block-backend"}
    assert names == {"drive0", "/machine/peripheral/named-dev/virtio-backend",
                     "/machine/peripheral-anon/device[0]/virtio-backend"}


def test_iothreads_in_gdb_equal_query_iothreads(vm):
    ours = {r["id"]: r for r in json.loads(vm["out"][1]) if not r["internal"]}
    assert {i["id"]: i["thread-id"] for i in vm["iothreads"]} == {
        i: r["thread_id"] for i, r in ours.items()}


def test_the_same_through_corefile_on_a_gcore(vm):
    from qemugdb.core.target import CoreTarget
    with corefile.open(vm["core"], exe=vm["exe"], cache_dir=vm["cache"]) as program:
        t = CoreTarget(program)
        assert qmp_block_graph(block.block_graph(t)) == vm["graph"]
        ours = {r.id: r.thread_id for r in iothread.iothreads(t) if not r.internal}
        assert ours == {i["id"]: i["thread-id"] for i in vm["iothreads"]}
        names = {n for c in aio.contexts(t) for n in c.names}
        assert {"main loop", "iohandler", "iothread io1"} <= names
