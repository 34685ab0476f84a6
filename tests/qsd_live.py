"""A live qemu-storage-daemon in a known state, for the gdb tests (slow tier).

`LiveQsd(qemu_dir)` starts DIR/bin/qemu-storage-daemon with an iothread, a throttled qcow2
chain (base <- top <- throttle filter), an NBD export on the iothread, a throttled
block-stream job and an NBD client whose reads wait in the throttle group queue; QMP answers
on a unix socket. Use as a context manager; everything is killed and removed on exit.
"""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from qmp import QMP  # noqa: E402


def _wait_for(path, proc, timeout=20):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"qemu-storage-daemon did not create {path}")
        time.sleep(0.05)


class LiveQsd:
    def __init__(self, qemu_dir):
        self.bin = os.path.join(qemu_dir, "bin")
        self.procs = []

    def _run(self, *args):
        subprocess.run([os.path.join(self.bin, args[0]), *args[1:]], check=True,
                       stdout=subprocess.DEVNULL, cwd=self.dir)

    def __enter__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="qemugdb-live-")
        self.dir = d = self._tmp.name
        try:
            self._run("qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2", "64M")
            self._run("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 8M", "base.qcow2")
            self._run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2",
                      "-F", "qcow2", "top.qcow2")
            qsd = subprocess.Popen([
                os.path.join(self.bin, "qemu-storage-daemon"),
                "--object", "iothread,id=io0",
                "--object", "throttle-group,id=tg0,limits.bps-total=65536",
                "--blockdev", "file,node-name=base-file,filename=base.qcow2",
                "--blockdev", "qcow2,node-name=base,file=base-file",
                "--blockdev", "file,node-name=top-file,filename=top.qcow2",
                "--blockdev", "qcow2,node-name=top,file=top-file,backing=base",
                "--blockdev", "throttle,node-name=thr,throttle-group=tg0,file=top",
                "--nbd-server", "addr.type=unix,addr.path=nbd.sock",
                "--export", "type=nbd,id=exp0,node-name=thr,name=exp0,writable=on,"
                            "iothread=io0,fixed-iothread=on",
                "--chardev", "socket,id=qmp,path=qmp.sock,server=on,wait=off",
                "--monitor", "chardev=qmp",
            ], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(qsd)
            self.pid = qsd.pid
            _wait_for(os.path.join(d, "qmp.sock"), qsd)
            _wait_for(os.path.join(d, "nbd.sock"), qsd)
            self.qmp = QMP(os.path.join(d, "qmp.sock"))
            self.qmp.execute("block-stream", **{"job-id": "job0", "device": "top", "speed": 65536})
            client = subprocess.Popen([
                os.path.join(self.bin, "qemu-io"), "-f", "raw",
                "-c", "aio_read 0 1M", "-c", "aio_read 1M 1M", "-c", "aio_read 2M 1M",
                "-c", "aio_flush", f"nbd+unix:///exp0?socket={d}/nbd.sock"],
                cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(client)
            time.sleep(1.0)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            p.kill()
            p.wait()
        self._tmp.cleanup()
