"""Servers for the debuginfod tests: Debian's real debuginfod on localhost, and the broken
ones a client must survive (down, silent, sending garbage)."""

import contextlib
import http.server
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

READY = {'thread_work_total{role="traverse"}': lambda v: v >= 1,
         'thread_work_pending{role="scan"}': lambda v: v == 0,
         'thread_busy{role="scan"}': lambda v: v == 0}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(url):
    with urllib.request.urlopen(f"{url}/metrics", timeout=2) as r:
        values = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values


@contextlib.contextmanager
def debuginfod(directory, workdir):
    """`debuginfod -F DIRECTORY` on a free localhost port, once it has scanned every file
    (its /metrics say so); yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(workdir / "debuginfod.log", "w")
    proc = subprocess.Popen(["debuginfod", "-p", str(port), "-d", str(workdir / "db.sqlite"),
                             "-t", "0", "-g", "0", "-F", str(directory)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                values = _metrics(url)
                if all(name in values and ok(values[name]) for name, ok in READY.items()):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"debuginfod did not come up: "
                            f"{(workdir / 'debuginfod.log').read_text()[-2000:]}", pytrace=False)
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@contextlib.contextmanager
def down():
    """The URL of a localhost port nothing listens on (connection refused)."""
    yield f"http://127.0.0.1:{free_port()}"


@contextlib.contextmanager
def silent():
    """The URL of a socket that accepts connections (the kernel's backlog) and never
    answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@contextlib.contextmanager
def sending(body: bytes, pause: float = 0):
    """The URL of an HTTP server answering every request 200 with body; with pause, one
    byte every pause seconds (a trickle)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(0, len(body), 1 if pause else len(body)):
                    self.wfile.write(body[i:i + (1 if pause else len(body))])
                    self.wfile.flush()
                    time.sleep(pause)
            except OSError:   # the client gave up
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
