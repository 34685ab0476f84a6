"""The distribution-shaped fixture cores (fixtures/distro.py: QEMU packaged as Debian and
Fedora package it: dwz, separate debug files, Fedora's MiniDebugInfo) checked as the plain
builds' cores are. The fixture checks of test_fixtures and the CLI's oracle comparisons of
test_cli run on them with gdb and qemu-coredump pointed at the distribution's debug
directory (`-iex 'set debug-file-directory D'`, `--debug-dir D`), as a user who installed
the debug packages runs them; test_distro_block and test_distro_gdb do the same with
test_block_slow and test_gdb_cores. The packaging itself is checked with binutils."""

import re
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

import corelist
import test_cli
import test_fixtures
from gdbrun import run_gdb
from oracle import fixture_core  # noqa: E402

pytestmark = pytest.mark.slow
RUN_CLI = test_cli.run


def names(part):
    return [n for n in corelist.DISTRO_NAMES if part in n.split("-")]


meta = fixture_core


def debug_dir_iex(m):
    """gdb's arguments that point it at M's debug directory (and the system's)."""
    return ["-iex", f"set debug-file-directory {corelist.gdb_debug_dirs(m['debug_dir'])}"]


@contextmanager
def gdb_reads_debug_dir(module, m):
    """MODULE's run_gdb (tests/gdbrun.py's), gdb pointed at M's debug directory."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "run_gdb", lambda target, *args, **kw: run_gdb(
            [*debug_dir_iex(m), *target], *args, **kw))
        yield


def cli(m, *args, **kw):
    """test_cli's run (qemu-coredump as a user runs it), with M's debug directory."""
    return RUN_CLI(*args, "--debug-dir", m["debug_dir"], **kw)


@pytest.fixture(params=corelist.DISTRO_NAMES)
def core(request):
    return meta(request.param)


@pytest.fixture(params=names("qsd"))
def qsd(request):
    return meta(request.param)


@pytest.fixture(params=names("debian"))
def debian(request):
    return meta(request.param)


@pytest.fixture(params=names("fedora"))
def fedora(request):
    return meta(request.param)


@pytest.fixture
def cli_reads_debug_dir(core, monkeypatch):
    """test_cli's tests, run on CORE, give qemu-coredump `--debug-dir` its debug directory."""
    monkeypatch.setattr(test_cli, "run", lambda *args, **kw: cli(core, *args, **kw))


def readelf(*args):
    return subprocess.run(["readelf", "-W", *map(str, args)], capture_output=True, text=True,
                          errors="replace",
                          check=True).stdout


def section_flags(path):
    """{section name: readelf's flags} of an ELF file."""
    return dict(re.findall(r"^\s*\[\s*\d+\] (\S+) +\S+ +[0-9a-f]+ [0-9a-f]+ [0-9a-f]+ [0-9a-f]+ "
                           r" *([A-Za-z]*) +\d+ +\d+ +\d+$", readelf("-S", path), re.M))


def string_section(path, name):
    """The first string of section NAME (.gnu_debuglink, .gnu_debugaltlink)."""
    m = re.search(r"^\s*\[\s*0\]\s+(.*)$", readelf("-p", name, path), re.M)
    return m.group(1)


def build_id(path):
    return re.search(r"Build ID: ([0-9a-f]+)", readelf("-n", path)).group(1)


def debug_file(m):
    """The binary's separate debug file, by build-id as gdb finds it."""
    bid = build_id(m["exe"])
    return Path(m["debug_dir"]) / ".build-id" / bid[:2] / f"{bid[2:]}.debug"


def first_lines(argv, n):
    """The first N lines a command prints (readelf's DWARF dumps run to gigabytes)."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as p:
        lines = [line for _, line in zip(range(n), p.stdout)]
        p.kill()
    return "".join(lines)


# ---------------------------------------------------------------- the packaging itself

def test_binary_is_stripped_with_a_debuglink(core):
    root = Path(core["debug_dir"]).parents[2]
    assert core["distro"] in ("debian", "fedora")
    assert Path(core["exe"]).parent == root / "usr" / "bin"
    have = section_flags(core["exe"])
    assert ".symtab" not in have and not [s for s in have if s.startswith(".debug_")]
    dbg = debug_file(core)
    assert ".debug_info" in section_flags(dbg)
    assert string_section(core["exe"], ".gnu_debuglink") == dbg.resolve().name


def test_debian_dwz_common_file_by_path_only(debian):
    """Debian: the binaries of a package share one dwz file, named by an absolute path
    under /usr/lib/debug/.dwz/<triplet>/ and found by that path only (no build-id link);
    qemu-system-x86_64, alone in its package here, is dwz'ed alone. Debug sections are
    compressed."""
    dbg = debug_file(debian)
    assert "C" in section_flags(dbg)[".debug_info"]
    if debian["program"] == "qemu-system-x86_64":
        assert ".gnu_debugaltlink" not in section_flags(dbg)
        assert "DW_TAG_partial_unit" in first_lines(["readelf", "--debug-dump=info", dbg], 1000)
        return
    alt = string_section(dbg, ".gnu_debugaltlink")
    assert re.fullmatch(r"/usr/lib/debug/\.dwz/[a-z0-9_]+-linux-gnu/qemu-utils\.debug", alt)
    common = Path(debian["debug_dir"]) / alt.removeprefix("/usr/lib/debug/")
    assert "C" in section_flags(common)[".debug_info"]
    links = Path(debian["debug_dir"], ".build-id").glob("*/*")
    assert common.resolve() not in [p.resolve() for p in links]


def test_fedora_minidebuginfo_sources_and_dwz(fedora, tmp_path):
    """Fedora: .gnu_debugdata holds an xz-compressed ELF whose .symtab has the functions
    .dynsym lacks; the DWARF's paths are under /usr/src/debug/qemu-NVRA, where the sources
    are; the dwz file is named relative to the debug file and has a build-id link."""
    mini = tmp_path / "mini.xz"
    subprocess.run(["objcopy", "--dump-section", f".gnu_debugdata={mini}", fedora["exe"],
                    tmp_path / "exe"], check=True)
    subprocess.run(["xz", "-d", mini], check=True)
    assert re.search(r" FUNC +\w+ +\w+ +\d+ bdrv_open$", readelf("-s", tmp_path / "mini"), re.M)
    assert not re.search(r" bdrv_open$", readelf("--dyn-syms", fedora["exe"]), re.M)
    dbg = debug_file(fedora)
    src = Path(fedora["source_dir"])
    dirs = re.findall(r"^\s*\[\s*[0-9a-f]+\]\s+(/\S*)$", readelf("-p", ".debug_line_str", dbg), re.M)
    assert f"/usr/src/debug/{src.name}/build" in dirs
    assert not [d for d in dirs if "/.cache/" in d]  # no path of the build tree is left
    assert (src / "block.c").is_file() and (src / "include" / "block" / "block_int-common.h").is_file()
    alt = string_section(dbg, ".gnu_debugaltlink")
    common = (dbg.resolve().parent / alt).resolve()
    assert alt.startswith("../") and common.parent.name == ".dwz"
    bid = build_id(common)
    assert (Path(fedora["debug_dir"], ".build-id", bid[:2], f"{bid[2:]}.debug")).resolve() == common


def test_gdb_oracle_read_the_debug_info(core):
    """gdb's `thread apply all bt` (the oracle) shows QEMU's functions with file:line."""
    bt = (Path(core["oracle"]) / "gdb-bt.txt").read_text()
    assert re.search(r"\bmain_loop_wait \(.*\) at \S*util/main-loop\.c:\d+$", bt, re.M), bt


# ---------------------------------------------------------------- test_fixtures' checks

def test_meta(core):
    test_fixtures.test_meta(core)


def test_core_opens_in_gdb(core, gdb_batch):
    test_fixtures.test_core_opens_in_gdb(core, gdb_batch)


def test_bt_has_one_block_per_tid(core):
    test_fixtures.test_bt_has_one_block_per_tid(core)


def test_maps_name_the_exe(core):
    test_fixtures.test_maps_name_the_exe(core)


def test_qemu_oracle_parses(core):
    test_fixtures.test_qemu_oracle_parses(core)


def test_gdb_lists_match_oracle(core, gdb_batch):
    test_fixtures.test_gdb_lists_match_oracle(core, gdb_batch)


def test_qsd_reads_parked_in_throttle_queues(qsd, gdb_batch):
    test_fixtures.test_qsd_reads_parked_in_throttle_queues(qsd, gdb_batch)


# ---------------------------------------------------------------- test_cli's comparisons

def test_bt_all_json_equals_gdb(core, cli_reads_debug_dir):
    test_cli.test_bt_all_json_equals_gdb(core)


def test_block_graph_qmp_json_equals_qmp(core, cli_reads_debug_dir):
    test_cli.test_block_graph_qmp_json_equals_qmp(core)


def test_block_graph_pictures(core, cli_reads_debug_dir, tmp_path):
    test_cli.test_block_graph_pictures(core, tmp_path)


def test_report_html(core, cli_reads_debug_dir, tmp_path):
    test_cli.test_report_html(core, tmp_path)
