"""debuginfod with a real QEMU: the plain qemu-storage-daemon 10.0 fixture core read with a
copy of its binary whose debug info was split off into the directory a real debuginfod
serves, and nowhere else: the CLI's block graph equals QMP's, and gdb's own client then
finds that debug info in the shared cache (its bt equals the oracle's). Also the dwz
supplementary file of the Debian-shaped fixture, fetched by its build-id."""

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
from oracle import gdb_bt, named_block_graph, parse_gdb_bt, qmp

pytestmark = pytest.mark.slow
CLI = shutil.which("qemu-coredump")
DISTRO = corelist.CACHE / "distro"


def _core(name):
    try:
        return corelist.core(name)
    except corelist.CoreMissing as e:
        pytest.fail(str(e), pytrace=False)


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
    assert r.returncode in (0, 1), r.stderr
    assert "Downloading debug info" in r.stderr
    assert named_block_graph(json.loads(r.stdout)) == \
        named_block_graph(qmp(meta, "x-debug-query-block-graph"))
    build_id = ElfImage(str(exe)).build_id.hex()
    assert (cache / build_id / "debuginfo").read_bytes() == (served / "qsd.debug").read_bytes()

    with down() as dead:   # gdb's client: from the cache, its server down
        r = _cli("gdb", meta["core"], "-e", exe, env=_env(cache, dead),
                 stdin="set width 0\nset pagination off\nthread apply all bt\n")
    assert parse_gdb_bt(r.stdout) == gdb_bt(meta), r.stdout[-3000:]


def test_dwz_alt_file_by_build_id(tmp_path):
    """The Debian-shaped qemu-storage-daemon's debug file and the dwz supplementary file
    it names (.gnu_debugaltlink) are both fetched by build-id from a server that has
    them, and nothing local: the files the server was given."""
    root = next(iter(sorted(DISTRO.glob("10.0*-debian/ROOT"))), None)
    assert root is not None and (root.parent / "DONE").exists(), \
        f"no Debian-shaped 10.0 fixture under {DISTRO}: run fixtures/distro.py"
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
