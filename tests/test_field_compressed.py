"""Cores as systemd-coredump stores them: zstd, xz, lz4 and gzip, compressed with the real
tools, are read as they are (told by their first bytes, not their name), give the same
answers as the plain core, leave nothing behind, and a damaged one is one line naming the
user's file. Fast: the QEMU-shaped corrupt fixture; slow: real QEMU cores against QMP."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oracle import fixture_core, qmp

ROOT = Path(__file__).resolve().parent.parent
# The compressor as systemd-coredump's formats are made from the command line.
COMPRESS = {"zstd": ["zstd", "-q", "-c"], "xz": ["xz", "-c"], "lz4": ["lz4", "-q", "-c"],
            "gzip": ["gzip", "-c"]}
SUFFIX = {"zstd": ".zst", "xz": ".xz", "lz4": ".lz4", "gzip": ".gz"}


def compress(src, dst, fmt):
    with open(dst, "wb") as out:
        subprocess.run([*COMPRESS[fmt], str(src)], stdout=out, check=True)
    return dst


def cli(*args, env=None):
    """qemu-coredump from this checkout in a child process: (exit status, stdout, stderr)."""
    r = subprocess.run([sys.executable, "-c", "from cli.main import main; main()",
                        *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env={**os.environ, "NO_COLOR": "1", **(env or {})})
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout, r.stderr


@pytest.fixture
def tmpdir_env(tmp_path):
    """An empty TMPDIR of our own: decompression must leave nothing in it."""
    d = tmp_path / "tmpdir"
    d.mkdir()
    return d, {"TMPDIR": str(d)}


@pytest.mark.parametrize("fmt", list(COMPRESS))
def test_compressed_core_reads_like_the_plain_one(fmt, corrupt, tmp_path, tmpdir_env):
    """Named `core` (no suffix): the magic bytes decide; every thread's frames and a
    report equal the plain core's; no file is left beside the core or in TMPDIR."""
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    core = compress(corrupt["kernel_core"], evidence / "core", fmt)
    tmpdir, env = tmpdir_env
    for command in (["bt", "--all", "--json"], ["report", "--json"]):
        want = cli(command[0], corrupt["kernel_core"], "-e", corrupt["exe"], *command[1:])
        got = cli(command[0], core, "-e", corrupt["exe"], *command[1:], env=env)
        assert got[0] == want[0] and got[1] == want[1], got[2]
    assert os.listdir(evidence) == ["core"] and os.listdir(tmpdir) == []


def test_plain_core_with_a_compressed_name(corrupt, tmp_path):
    """A plain core named like a compressed one is read as the plain core it is."""
    named = tmp_path / "core.zst"
    shutil.copyfile(corrupt["kernel_core"], named)
    assert cli("bt", named, "-e", corrupt["exe"]) == \
        cli("bt", corrupt["kernel_core"], "-e", corrupt["exe"])


@pytest.mark.parametrize("fmt", list(COMPRESS))
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_compressed_core_is_one_line(fmt, damage, corrupt, tmp_path, tmpdir_env):
    """Cut short, or with bytes flipped in the middle: exit 2, one line naming the user's
    file and saying what is wrong, never a temporary path."""
    packed = compress(corrupt["kernel_core"], tmp_path / f"packed{SUFFIX[fmt]}", fmt)
    data = bytearray(packed.read_bytes())
    if damage == "truncated":
        data = data[:len(data) // 2]
    else:
        for i in range(len(data) // 2, len(data) // 2 + 64):
            data[i] ^= 0x55
    bad = tmp_path / f"bad{SUFFIX[fmt]}"
    bad.write_bytes(data)
    tmpdir, env = tmpdir_env
    status, out, err = cli("report", bad, "-e", corrupt["exe"], env=env)
    assert status == 2 and out == "", err
    assert err.count("\n") == 1 and err.startswith(
        f"qemu-coredump: {bad}: the {fmt}-compressed core is truncated or corrupt ("), err
    assert str(tmpdir) not in err and os.listdir(tmpdir) == []


def test_missing_decompressor_is_named(corrupt, tmp_path):
    """lz4 and zstd need their programs: without one, one line saying which to install."""
    packed = compress(corrupt["kernel_core"], tmp_path / "core.lz4", "lz4")
    status, _, err = cli("bt", packed, "-e", corrupt["exe"], env={"PATH": str(tmp_path)})
    assert status == 2 and err == (f"qemu-coredump: {packed} is lz4-compressed and the lz4 "
                                   f"program is not installed (Debian: apt install lz4)\n")


def test_gdb_gets_the_decompressed_core(corrupt, tmp_path):
    """`qemu-coredump gdb` on a compressed core: gdb (which reads no compressed core)
    opens the decompressed copy and shows the same stack."""
    packed = compress(corrupt["kernel_core"], tmp_path / "core.xz", "xz")
    r = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", "gdb",
                        str(packed), "-e", corrupt["exe"]], cwd=ROOT, input="bt\nquit\n",
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "corrupt_stop" in r.stdout, r.stdout + r.stderr


# ---------------------------------------------------------------- real QEMU cores

def _named_graph(graph):
    names = {n["id"]: (n["type"], n["name"]) for n in graph["nodes"]}
    return sorted(names.values()), sorted(
        (names[e["parent"]], names[e["child"]], e["name"], tuple(sorted(e["perm"])),
         tuple(sorted(e["shared-perm"]))) for e in graph["edges"])


_core = fixture_core


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(COMPRESS))
def test_coredumpctl_core_graph_equals_qmp(fmt, tmp_path, tmpdir_env):
    """A real qemu-storage-daemon core as systemd-coredump names and compresses it
    (core.COMM.UID.BOOTID.PID.USEC.EXT under /var/lib/systemd/coredump, COMM cut to the
    kernel's 15 characters): the block graph equals QMP's x-debug-query-block-graph
    captured before the dump."""
    meta = _core("qsd-10.0-kernel")
    store = tmp_path / "var" / "lib" / "systemd" / "coredump"
    store.mkdir(parents=True)
    boot_id = "0123456789abcdef0123456789abcdef"
    name = f"core.qemu-storage-da.0.{boot_id}.{meta['pid']}.1733120000000000{SUFFIX[fmt]}"
    core = compress(meta["core"], store / name, fmt)
    tmpdir, env = tmpdir_env
    status, out, err = cli("block-graph", core, "-e", meta["exe"], "-f", "qmp-json", env=env)
    assert status == 0, err
    assert _named_graph(json.loads(out)) == _named_graph(qmp(meta, "x-debug-query-block-graph"))
    assert os.listdir(store) == [name] and os.listdir(tmpdir) == []
