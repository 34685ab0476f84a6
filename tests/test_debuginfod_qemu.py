"""debuginfod with a real QEMU: the plain qemu-storage-daemon 10.0 fixture core read with a
copy of its binary whose debug info was split off into the directory a real debuginfod
serves, and nowhere else: the CLI's block graph equals QMP's, and gdb's own client then
finds that debug info in the shared cache (its bt equals the oracle's). Also the
Debian-shaped fixture's debug file and dwz supplementary file fetched by build-id, and the
Fedora-shaped fixture's MiniDebugInfo."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import corelist
from corefile.debuginfod import Client
from corefile.elf import ElfImage, find_alt_file, find_debug_file
from debuginfod_server import debuginfod, down
from oracle import fixture_core, gdb_bt, named_block_graph, parse_gdb_bt, qmp

pytestmark = pytest.mark.slow
CLI = shutil.which("qemu-coredump")
DISTRO = corelist.CACHE / "distro"


_core = fixture_core


def _env(cache, *urls):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUGINFOD_")}
    return {**env, "DEBUGINFOD_URLS": " ".join(urls), "DEBUGINFOD_CACHE_PATH": str(cache),
            "XDG_CACHE_HOME": str(cache.parent / "xdg"), "NO_COLOR": "1"}


def _cli(*args, env, stdin=None):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=900,
                       env=env, input=stdin)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_qsd_debug_info_only_from_debuginfod(tmp_path):
    """Offline: no debug info (exit 2). With the server: the graph equals QMP's, the
    download is in the cache. Then gdb, its server down, finds it there."""
    meta = _core("qsd-10.0-kernel")
    served, exe = tmp_path / "served", tmp_path / "qemu-storage-daemon"
    served.mkdir()
    subprocess.run(["objcopy", "--only-keep-debug", meta["exe"], served / "qsd.debug"],
                   check=True)
    subprocess.run(["objcopy", "--strip-debug", meta["exe"], exe], check=True)
    cache = tmp_path / "cache"

    offline = _cli("block-graph", meta["core"], "-e", exe, "-f", "qmp-json", "--offline",
                   env=_env(cache))
    assert offline.returncode == 2 and "no debug info" in offline.stderr, offline.stderr

    with debuginfod(served, tmp_path) as url:
        r = _cli("block-graph", meta["core"], "-e", exe, "-f", "qmp-json", env=_env(cache, url))
    assert r.returncode == 0, r.stderr
    assert "Downloading debug info" in r.stderr
    assert named_block_graph(json.loads(r.stdout)) == \
        named_block_graph(qmp(meta, "x-debug-query-block-graph"))
    build_id = ElfImage(str(exe)).build_id.hex()
    assert (cache / build_id / "debuginfo").read_bytes() == (served / "qsd.debug").read_bytes()

    with down() as dead:   # gdb's client: from the cache, its server down
        r = _cli("gdb", meta["core"], "-e", exe, env=_env(cache, dead),
                 stdin="set width 0\nset pagination off\nthread apply all bt\n")
    assert parse_gdb_bt(r.stdout) == gdb_bt(meta), r.stdout[-3000:]


def test_debian_core_debug_info_and_dwz_file_from_debuginfod(tmp_path):
    """The Debian-shaped qsd 10.0 core (stripped binary, dwz multifile) with its debug
    directory served by debuginfod and not given: the debug file and the dwz
    supplementary file it needs are fetched, and the graph equals QMP's."""
    meta = _core("qsd-10.0-debian-gcore")
    cache = tmp_path / "cache"
    with debuginfod(meta["debug_dir"], tmp_path) as url:
        r = _cli("block-graph", meta["core"], "-f", "qmp-json", env=_env(cache, url))
    assert r.returncode == 0, r.stderr
    assert named_block_graph(json.loads(r.stdout)) == \
        named_block_graph(qmp(meta, "x-debug-query-block-graph"))
    exe = ElfImage(meta["exe"])
    name, alt_id = ElfImage(str(cache / exe.build_id.hex() / "debuginfo")).debugaltlink()
    assert (cache / alt_id.hex() / "debuginfo").is_file()


def _distro(shape):
    """ROOT of the 10.0 fixture packaged as shape ("debian", "fedora") does."""
    root = next(iter(sorted(DISTRO.glob(f"10.0*-{shape}/ROOT"))), None)
    if root is None or not (root.parent / "DONE").exists():
        pytest.fail(f"no {shape}-shaped 10.0 fixture under {DISTRO}: run fixtures/distro.py",
                    pytrace=False)
    return root


def test_dwz_alt_file_by_build_id(tmp_path):
    """The Debian-shaped qemu-storage-daemon's debug file and the dwz supplementary file
    it names (.gnu_debugaltlink) are both fetched by build-id from a server that has
    them, and nothing local: the files the server was given."""
    root = _distro("debian")
    debug = root / "usr/lib/debug"
    exe = ElfImage(str(root / "usr/bin/qemu-storage-daemon"))
    with debuginfod(debug, tmp_path) as url:
        client = Client.from_environment(_env(tmp_path / "cache", url))
        path = find_debug_file(exe, debuginfod=client)
        hexid = exe.build_id.hex()
        assert path == str(tmp_path / "cache" / hexid / "debuginfo")
        assert Path(path).read_bytes() == \
            (debug / ".build-id" / hexid[:2] / f"{hexid[2:]}.debug").read_bytes()
        name, alt_id = ElfImage(path).debugaltlink()
        alt = find_alt_file(name, alt_id, path, debuginfod=client)
    assert alt == str(tmp_path / "cache" / alt_id.hex() / "debuginfo")
    assert Path(alt).read_bytes() == (root / name.lstrip("/")).read_bytes()
    assert client.problems == []


def test_fedora_minidebuginfo_symbols(tmp_path):
    """The Fedora-shaped qemu-storage-daemon (no .symtab): every function nm lists in its
    .gnu_debugdata (cut out by objcopy, unpacked by xz) is one of corefile's symbols, at
    nm's address."""
    exe = _distro("fedora") / "usr/bin/qemu-storage-daemon"
    image = ElfImage(str(exe))
    assert image.section(".symtab") is None
    mini = tmp_path / "mini"
    subprocess.run(["objcopy", f"--dump-section=.gnu_debugdata={mini}.xz", exe,
                    tmp_path / "copy"], check=True)
    subprocess.run(["xz", "-d", f"{mini}.xz"], check=True)
    nm = subprocess.run(["nm", "--defined-only", "--format=sysv", mini], check=True,
                        capture_output=True, text=True).stdout
    functions = {(int(f[1], 16), f[0].strip()) for f in
                 (line.split("|") for line in nm.splitlines() if "|" in line)
                 if "FUNC" in f[3]}
    assert len(functions) > 1000
    assert functions <= {(s.address, s.name) for s in image.symbols() if s.is_function}


def test_fedora_core_minidebuginfo_stacks_equal_gdb(tmp_path):
    """The Fedora-shaped qsd 10.0 core with no debug file for the binary (its debug root
    not given): every thread's frames, named from MiniDebugInfo, equal gdb's (which reads
    .gnu_debugdata too): functions, and every pc gdb prints."""
    meta = _core("qsd-10.0-fedora-kernel")
    gdb = subprocess.run(["gdb", "-batch", "-nx", "-iex", "set debuginfod enabled off",
                          "-ex", "set width 0", "-ex", "thread apply all bt", meta["exe"],
                          meta["core"]], capture_output=True, text=True, timeout=600).stdout
    r = _cli("bt", "--all", meta["core"], "--offline", env=_env(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    want, got = parse_gdb_bt(gdb), parse_gdb_bt(r.stdout)
    assert sorted(want) == sorted(got) and any(
        name == "qemu_poll_ns" for frames in got.values() for name, _ in frames)
    for num, frames in want.items():
        assert [name for name, _ in frames] == [name for name, _ in got[num]], (num, gdb)
        assert all(pc is None or pc == ours for (_, pc), (_, ours) in zip(frames, got[num]))
