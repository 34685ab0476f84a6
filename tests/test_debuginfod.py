"""debuginfod: debug info missing locally is fetched by build-id from Debian's real
debuginfod server on localhost into elfutils' client cache, which gdb's own client then
reads too; a server that is down, silent or sends garbage costs one message and bounded
time, never a traceback. Checked against gdb's bt on the unstripped program. Also
MiniDebugInfo: the symbols of .gnu_debugdata when there is no debug file."""

import io
import os
import re
import resource
import shutil
import stat
import subprocess
import time

import pytest

from corefile.debuginfod import Client
from corefile.elf import ElfImage
from debuginfod_server import debuginfod, down, sending, silent
from make_cores import kernel_core_path
from oracle import parse_gdb_bt

CLI = shutil.which("qemu-coredump")
SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
static int __attribute__((noinline)) leaf(int x) { if (x > 0) abort(); return x; }
static int __attribute__((noinline)) middle(int x) { return leaf(x + 1) + 1; }
int main(int argc, char **argv) { printf("%d\n", middle(argc)); return 0; }
"""
OWN_FRAMES = ["leaf", "middle", "main"]


def _core_limit():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    assert r.returncode == 0, f"{argv}: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    """The C program built with -g ("full"), its debug info split off ("served", the
    server's directory, has it and a copy of the program), the stripped program ("exe",
    all symbols gone) and its kernel core; gdb's bt of the core read with the full
    program ("gdb")."""
    d = tmp_path_factory.mktemp("debuginfod_prog")
    (d / "crash.c").write_text(SOURCE)
    full, exe, served = d / "full", d / "crash", d / "served"
    served.mkdir()
    _run(["gcc", "-g", "-O1", "-o", str(full), str(d / "crash.c")])
    _run(["objcopy", "--only-keep-debug", str(full), str(served / "crash.debug")])
    _run(["strip", "-o", str(exe), str(full)])
    shutil.copy(exe, served)
    core = _dump(exe)
    gdb = _run(["gdb", "-batch", "-nx", "-ex", "bt", str(full), str(core)])
    return {"dir": d, "full": full, "exe": exe, "served": served, "core": core, "gdb": gdb,
            "build_id": ElfImage(str(full)).build_id}


def _dump(exe):
    """The kernel core of exe run (in its directory) until it aborts."""
    proc = subprocess.Popen([str(exe)], cwd=exe.parent, preexec_fn=_core_limit,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait(timeout=60)
    core = kernel_core_path(exe.parent, proc.pid)
    assert core.exists(), f"{exe} exited {proc.returncode} without a core"
    return core


@pytest.fixture(scope="module")
def server(prog, tmp_path_factory):
    with debuginfod(prog["served"], tmp_path_factory.mktemp("debuginfod_server")) as url:
        yield url


def _env(cache, *urls, **more):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUGINFOD_")}
    return {**env, "DEBUGINFOD_URLS": " ".join(urls), "DEBUGINFOD_CACHE_PATH": str(cache),
            "XDG_CACHE_HOME": str(cache.parent / "xdg"), "NO_COLOR": "1", **more}


def _bt(prog, env, *extra, core=None):
    """(exit status, stdout, stderr, seconds) of `qemu-coredump bt` on the core."""
    start = time.monotonic()
    r = subprocess.run([CLI, "bt", str(core or prog["core"]), *extra], capture_output=True,
                       text=True, timeout=120, env=env)
    took = time.monotonic() - start
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout, r.stderr, took


def _functions(text):
    """The function names of the first thread of a bt (gdb's `bt` has no Thread line)."""
    return [name for name, _ in parse_gdb_bt("Thread 1 \n" + text)[1]]


def _lines(text):
    """{function: "file:line"} of the program's own frames in bt text."""
    return dict(re.findall(rf"\b({'|'.join(OWN_FRAMES)}) .*?at (\S+:\d+)", text))


@pytest.fixture(scope="module")
def fetched(prog, server, tmp_path_factory):
    """A cache into which the program's debuginfo was fetched by Client."""
    cache = tmp_path_factory.mktemp("fetched") / "cache"
    assert Client.from_environment(_env(cache, server)).find_debuginfo(prog["build_id"])
    return cache


def test_fetches_debuginfo(prog, server, tmp_path):
    """The stripped program's frames get their names and file:line from the debug info
    the server has (offline: no names); the download lands in elfutils' cache layout."""
    cache = tmp_path / "cache"
    status, out, err, _ = _bt(prog, _env(cache, server), "--offline")
    assert not set(OWN_FRAMES) & set(_functions(out)), out

    status, out, err, took = _bt(prog, _env(cache, server))
    assert status == 0, err
    assert _functions(out) == _functions(prog["gdb"])
    assert _lines(out) == _lines(prog["gdb"]) and len(_lines(out)) == 3, (out, prog["gdb"])
    assert "Downloading debug info" in err
    hexid = prog["build_id"].hex()
    cached = cache / hexid / "debuginfo"
    assert os.listdir(cache / hexid) == ["debuginfo"]       # no temporary left
    assert stat.S_IMODE(cached.stat().st_mode) == 0o400
    assert cached.read_bytes() == (prog["served"] / "crash.debug").read_bytes()


def test_gdb_reads_the_shared_cache(prog, fetched):
    """`qemu-coredump gdb` starts gdb with debuginfod on; gdb's own client (libdebuginfod),
    its server down, finds the file we fetched in the shared cache."""
    with down() as dead:
        r = subprocess.run([CLI, "gdb", str(prog["core"])], input="set width 0\nbt\n",
                           capture_output=True,
                           text=True, timeout=120, env=_env(fetched, dead))
    assert _functions(r.stdout[r.stdout.index("#0"):]) == _functions(prog["gdb"]), r.stdout
    assert _lines(r.stdout) == _lines(prog["gdb"]), r.stdout


def test_negative_cache_entry(prog, server, tmp_path):
    """A build-id no server has leaves an empty file that stands for cache_miss_s, as
    elfutils does: asked again, no server is contacted."""
    cache = tmp_path / "cache"
    missing = bytes(reversed(prog["build_id"]))
    client = Client.from_environment(_env(cache, server))
    assert client.find_debuginfo(missing) is None and client.problems == []
    assert (cache / missing.hex() / "debuginfo").stat().st_size == 0
    with down() as dead:
        again = Client.from_environment(_env(cache, dead))
        assert again.find_debuginfo(missing) is None and again.problems == []
    assert (cache / "cache_miss_s").read_text() == "600"   # written when first read


def test_gdb_command_settings(prog, tmp_path):
    """`qemu-coredump gdb` gives gdb, before it reads the program, the --debug-dir
    directories joined with the default, the sysroot, and debuginfod off when --offline."""
    a, b, root = tmp_path / "a", tmp_path / "b", tmp_path / "root"
    for d in a, b, root:
        d.mkdir()
    r = subprocess.run([CLI, "gdb", str(prog["core"]), "-e", str(prog["exe"]), "--offline",
                        "--debug-dir", str(a), "--debug-dir", str(b), "--sysroot", str(root)],
                       input="show debug-file-directory\nshow sysroot\nshow debuginfod enabled\n",
                       capture_output=True, text=True, timeout=120, env=_env(tmp_path, "x"))
    assert f'"{a}:{b}:/usr/lib/debug"' in r.stdout, r.stdout
    assert f'"{root}"' in r.stdout and "Debuginfod functionality is currently set to " \
        '"off"' in r.stdout, r.stdout


def test_fetches_missing_executable(prog, server, tmp_path):
    """A core whose program is not on this machine (a core from another machine): the
    program, then its debug info, come from the server by the build-id the core kept."""
    gone = tmp_path / "crash"
    shutil.copy(prog["exe"], gone)
    core = _dump(gone)
    gone.unlink()
    status, out, err, _ = _bt(prog, _env(tmp_path / "cache", server), core=core)
    assert _functions(out) == _functions(prog["gdb"]), (out, err)
    assert _lines(out) == _lines(prog["gdb"])
    cached = tmp_path / "cache" / prog["build_id"].hex()
    assert (cached / "executable").read_bytes() == prog["exe"].read_bytes()
    assert (cached / "debuginfo").is_file()


def test_maxsize_verbose(prog, server, tmp_path):
    """DEBUGINFOD_MAXSIZE goes to the server (X-DEBUGINFOD-MAXSIZE), which refuses the
    larger file (HTTP 406): one message, no negative entry (without the limit, the file
    comes). DEBUGINFOD_VERBOSE tells each step on the stream."""
    verbose = io.StringIO()
    client = Client.from_environment(
        _env(tmp_path, server, DEBUGINFOD_MAXSIZE="100", DEBUGINFOD_VERBOSE="1"),
        stream=verbose)
    hexid = prog["build_id"].hex()
    assert client.find_debuginfo(prog["build_id"], "crash") is None
    assert client.problems == [f"debuginfod server {server}: debuginfo of crash: larger than "
                               f"DEBUGINFOD_MAXSIZE=100"]
    assert not (tmp_path / hexid).exists()
    assert f"debuginfod_find_debuginfo {hexid} crash\nurl {server}/buildid/{hexid}/debuginfo\n" \
        in verbose.getvalue()
    unlimited = Client.from_environment(_env(tmp_path, server))
    assert unlimited.find_debuginfo(prog["build_id"]) == str(tmp_path / hexid / "debuginfo")


def test_cache_cleaning(tmp_path):
    """As elfutils, every cache_clean_interval_s: cached files unused (atime) for
    max_unused_age_s are removed, recent ones and files of other names kept."""
    cache = tmp_path / "cache"
    old, recent = cache / ("ab" * 20) / "debuginfo", cache / ("cd" * 20) / "executable"
    for path in old, recent:
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\x7fELF")
    week = time.time() - 604800
    os.utime(old, (week, week))
    (cache / "cache_clean_interval_s").write_text("0")
    (cache / "notes").write_text("not the cache's")
    os.utime(cache / "notes", (week, week))
    with down() as dead:
        Client.from_environment(_env(cache, dead)).find_debuginfo(bytes(20))
    assert not old.exists() and recent.exists() and (cache / "notes").exists()
    assert (cache / "max_unused_age_s").read_text() == "604800"


def _lookup(prog, cache, *urls, **more):
    """(path, messages, seconds) of a Client's lookup of the program's debuginfo; the
    client is asked twice: a failed server is not asked again (no time, no message)."""
    client = Client.from_environment(_env(cache, *urls, **more))
    start = time.monotonic()
    path = client.find_debuginfo(prog["build_id"], str(prog["exe"]))
    took = time.monotonic() - start
    start = time.monotonic()
    assert client.find_debuginfo(prog["build_id"]) == path
    assert time.monotonic() - start < 0.5 and len(client.problems) <= 1
    return path, client.problems, took


def test_servers_in_order(prog, server, tmp_path):
    """Servers are asked in order: one that is down costs one message, the next serves."""
    with down() as dead:
        path, messages, _ = _lookup(prog, tmp_path, dead, server)
    assert path == str(tmp_path / prog["build_id"].hex() / "debuginfo")
    assert messages == [f"debuginfod server {dead}: connection refused; not asked again"]


@pytest.mark.parametrize("kind", ["down", "silent", "trickle"])
def test_unusable_server(prog, tmp_path, kind):
    """Down (connection refused), silent (accepts, never answers) or a trickle (a byte
    every 0.2 s), with DEBUGINFOD_TIMEOUT=1: one message, no file, nothing cached,
    bounded time."""
    serve, reason = {
        "down": (down, "connection refused"),
        "silent": (silent, "no answer (timed out)"),
        "trickle": (lambda: sending(bytes(1 << 20), pause=0.2),
                    "slower than 100 KiB/s for DEBUGINFOD_TIMEOUT=1 s")}[kind]
    with serve() as url:
        path, messages, took = _lookup(prog, tmp_path, url, DEBUGINFOD_TIMEOUT="1")
    assert path is None and messages == [f"debuginfod server {url}: {reason}; not asked again"]
    assert took < 3
    assert not (tmp_path / prog["build_id"].hex()).exists()


@pytest.mark.parametrize("garbage", ["junk", "text", "truncated", "wrong build-id"])
def test_garbage_server(prog, tmp_path, garbage):
    """A server answering 200 with something that is not the file asked for: one message
    saying what it sent, nothing kept in the cache (no temporary file either)."""
    debug = (prog["served"] / "crash.debug").read_bytes()
    body = {"junk": bytes(range(256)) * 64, "text": b"<html>Not here</html>\n",
            "truncated": debug[:len(debug) // 2],
            "wrong build-id": prog["exe"].read_bytes().replace(prog["build_id"],
                                                               bytes(20))}[garbage]
    said = {"junk": "not an ELF file", "text": "not an ELF file",
            "truncated": "a truncated ELF file",
            "wrong build-id": f"an ELF file with build-id {'00' * 20}"}[garbage]
    with sending(body) as url:
        path, messages, took = _lookup(prog, tmp_path, url)
    assert path is None and messages == [f"debuginfod server {url}: sent {said} for build-id "
                                         f"{prog['build_id'].hex()}; not asked again"]
    assert took < 3
    assert not (tmp_path / prog["build_id"].hex()).exists()


def test_cli_server_down(prog, tmp_path):
    """The CLI with its only server down: one line on stderr saying why the result is
    partial, no traceback, the stack without the program's names, exit status 1."""
    with down() as url:
        status, out, err, took = _bt(prog, _env(tmp_path / "cache", url))
    assert [line for line in err.splitlines() if "partial:" in line] == [
        f"qemu-coredump: partial: debuginfod server {url}: connection refused; not asked again"]
    assert status == 1 and "#0" in out and not set(OWN_FRAMES) & set(_functions(out))
    assert took < 10


def test_minidebuginfo_symbols(prog, tmp_path):
    """Fedora's MiniDebugInfo, made as find-debuginfo's add_minidebug does (the debug
    file's functions that .dynsym lacks, objcopy -S, xz, .gnu_debugdata in the stripped
    program): with no debug file, the frames have gdb's function names (and, as in gdb,
    no file:line; test_fetches_debuginfo shows the program without it has no names)."""
    debug = prog["served"] / "crash.debug"
    dynamic = {line.split()[0] for line in _run(
        ["nm", "-D", "--format=posix", "--defined-only", str(prog["exe"])]).splitlines()}
    functions = {line.split("|")[0].strip() for line in _run(
        ["nm", "--format=sysv", "--defined-only", str(debug)]).splitlines()
        if "|" in line and "FUNC" in line.split("|")[3]}
    (tmp_path / "keep").write_text("".join(f"{name}\n" for name in sorted(functions - dynamic)))
    mini, exe = tmp_path / "mini_debuginfo", tmp_path / "crash"
    _run(["objcopy", "-S", "--remove-section", ".gdb_index", "--remove-section", ".comment",
          f"--keep-symbols={tmp_path / 'keep'}", str(debug), str(mini)])
    _run(["xz", str(mini)])
    _run(["objcopy", f"--add-section=.gnu_debugdata={mini}.xz", str(prog["exe"]), str(exe)])
    core = _dump(exe)
    gdb = _run(["gdb", "-batch", "-nx", "-ex", "bt", str(exe), str(core)])
    assert set(OWN_FRAMES) <= set(_functions(gdb)), gdb

    status, out, err, _ = _bt(prog, _env(tmp_path / "cache"), "--offline", core=core)
    assert _functions(out) == _functions(gdb) and _lines(out) == {}, (out, gdb)
