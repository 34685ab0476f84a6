"""Cores from the field: which program a core is (QEMU or not, which QEMU), the executable
matched by build-id whatever its path, and a core from another machine naming each file
it lacks with its build-id. Build-ids are read with readelf, the version from QMP.

Fast: a bash core made on the spot and the QEMU-shaped corrupt fixture (fixtures/corrupt/);
slow: the real QEMU fixture cores and the distribution-shaped ones."""

import importlib.util
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import corelist
from make_cores import kernel_core_path
from qemugdb.walkers.identity import qemu_version
from oracle import fixture_core  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
NOT_QEMU = "is not QEMU: it has neither QEMU's version text nor QEMU's main loop or block layer"


def cli(*args, cwd=ROOT):
    """qemu-coredump from this checkout: (exit status, stdout, stderr)."""
    r = subprocess.run([sys.executable, "-c", "from cli.main import main; main()",
                        *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       timeout=600, env={**os.environ, "NO_COLOR": "1",
                                         "PYTHONPATH": str(ROOT)})
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout, r.stderr


def build_id(path):
    """The GNU build-id of an ELF file, as elfutils' readelf prints it."""
    return re.search(r"Build ID: ([0-9a-f]+)", eu_readelf_notes(path)).group(1)


def mapped_files(core):
    """The files a core's NT_FILE note names, as elfutils' readelf prints them."""
    return set(re.findall(r"^ +[0-9a-f]+-[0-9a-f]+ [0-9a-f]+ +\d+ +(/.*)$",
                          eu_readelf_notes(core), re.M))


def eu_readelf_notes(path):
    return subprocess.run(["eu-readelf", "-n", str(path)], capture_output=True, text=True,
                          check=True).stdout


def _unlimited_cores():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


@pytest.fixture(scope="module")
def bash_core(tmp_path_factory):
    """A core of bash, killed by SIGSEGV on the spot."""
    d = tmp_path_factory.mktemp("bash")
    proc = subprocess.Popen(["bash", "-c", "kill -SEGV $$"], cwd=d, preexec_fn=_unlimited_cores)
    assert proc.wait(timeout=60) == -11
    core = kernel_core_path(d, proc.pid)
    assert core.exists(), f"bash left no core at {core}"
    return core


def test_bash_core_is_not_qemu(bash_core):
    """report and every QEMU command: exit 2 and one line; bt still reads any program."""
    bash = shutil.which("bash")
    for command in ("report", "block-graph", "aio", "jobs", "coroutines"):
        status, out, err = cli(command, bash_core)
        assert (status, out, err) == (2, "", f"qemu-coredump: {os.path.realpath(bash)} "
                                             f"{NOT_QEMU}\n"), command
    status, out, _ = cli("bt", bash_core)
    assert status == 0 and "kill" in out


@pytest.mark.parametrize("program, pkgversion", [("QEMU emulator", ""),
                                                  ("%s", " (Debian 1:10.0.2+ds-1)")])
def test_version_with_pkgversion(program, pkgversion, tmp_path):
    """The version text of a build configured --with-pkgversion, as scripts/qemu-version.sh
    writes QEMU_FULL_VERSION and vl.c / qemu-io.c print it, compiled into .rodata."""
    banner = (f"{program} version 10.0.2{pkgversion}\\n"
              "Copyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers\\n")
    (tmp_path / "v.c").write_text(f'const char *version(void) {{ return "{banner}"; }}\n')
    subprocess.run(["gcc", "-c", "-o", str(tmp_path / "v.o"), str(tmp_path / "v.c")],
                   check=True)
    assert qemu_version(str(tmp_path / "v.o")) == f"10.0.2{pkgversion}"


@pytest.fixture(scope="module")
def prefix_mapped(tmp_path_factory):
    """The corrupt fixture compiled as a distribution compiles, its sources renamed under
    /usr/src/debug (-fdebug-prefix-map), and dumped: {"exe", "kernel_core", "gcore"}."""
    spec = importlib.util.spec_from_file_location("synthetic_build",
                                                  FIXTURES / "synthetic" / "build.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    sources = sorted((FIXTURES / "corrupt").glob("*.c"))
    return builder.compile_and_dump(sources, tmp_path_factory.mktemp("prefix_mapped"), "qemu_corrupt",
                            [f"-fdebug-prefix-map={ROOT}=/usr/src/debug/qemu-corrupt-1.0"])


def threads_where(*args, cwd=ROOT):
    status, out, err = cli("report", *args, "--json", cwd=cwd)
    assert status == 1, err   # partial: fixtures/corrupt's lists are broken
    return [(t["num"], t["where"]) for t in json.loads(out)["threads"]]


def test_where_column_under_usr_src_debug(prefix_mapped):
    """Fedora-style source paths (/usr/src/debug/...): QEMU's own frames are told by the
    module holding the pc, not by path, so the column names the crashing function."""
    where = dict(threads_where(prefix_mapped["kernel_core"], "-e", prefix_mapped["exe"]))
    assert where[1] == "corrupt_stop at /usr/src/debug/qemu-corrupt-1.0/fixtures/corrupt/main.c:5"


def test_executable_matched_by_build_id(corrupt, tmp_path):
    """-e as a symlink, a relative path, a copy elsewhere: the same report column as the
    executable at its own path, never empty."""
    want = threads_where(corrupt["kernel_core"], "-e", corrupt["exe"])
    assert want and all(where for _, where in want)
    link = tmp_path / "link"
    link.symlink_to(corrupt["exe"])
    copy = tmp_path / "elsewhere" / "renamed"
    copy.parent.mkdir()
    shutil.copy(corrupt["exe"], copy)
    assert threads_where(corrupt["kernel_core"], "-e", link) == want
    assert threads_where(corrupt["kernel_core"], "-e", copy) == want
    assert threads_where(corrupt["kernel_core"], "-e", "elsewhere/renamed", cwd=tmp_path) == want


def test_wrong_executable_names_both_build_ids(corrupt, synthetic):
    """Another program given as -e: exit 2, one line with both build-ids."""
    status, out, err = cli("report", corrupt["kernel_core"], "-e", synthetic["exe"])
    assert status == 2 and out == ""
    assert err == (f"qemu-coredump: {synthetic['exe']} has build-id {build_id(synthetic['exe'])} "
                   f"but the core's executable {corrupt['exe']} has build-id "
                   f"{build_id(corrupt['exe'])}: it is not the program that dumped this core\n")


def test_library_given_as_executable(corrupt):
    """A library of the process given as -e: exit 2, saying which file it is."""
    libc = next(p for p in mapped_files(corrupt["kernel_core"]) if "/libc.so" in p)
    status, _, err = cli("report", corrupt["kernel_core"], "-e", libc)
    assert status == 2 and err == (
        f"qemu-coredump: {libc} (build-id {build_id(libc)}) is {libc} of this process, not "
        f"its executable {corrupt['exe']} (build-id {build_id(corrupt['exe'])})\n")


def test_core_from_another_machine_lists_missing_files(corrupt, tmp_path):
    """--sysroot holding the executable alone: exit 1 (partial), and each library the
    process mapped is listed with its build-id, on stderr and in the report."""
    root = tmp_path / "root"
    exe = root / corrupt["exe"].lstrip("/")
    exe.parent.mkdir(parents=True)
    shutil.copy(corrupt["exe"], exe)
    status, out, err = cli("report", corrupt["kernel_core"], "--sysroot", root)
    assert status == 1, err
    libraries = {p for p in mapped_files(corrupt["kernel_core"]) if p != corrupt["exe"]}
    assert libraries
    for lib in libraries:
        line = f"missing {lib} under {root}: build-id {build_id(lib)}"
        assert f"qemu-coredump: partial: {line}\n" in err and f"\n  {line}\n" in out + "\n"


def test_missing_executable_is_exit_2(corrupt, tmp_path):
    """Nothing of the process here (an empty --sysroot), no debug file: exit 2, one line
    naming the executable with its build-id, and how many libraries are missing too."""
    root = tmp_path / "empty"
    root.mkdir()
    status, out, err = cli("report", corrupt["kernel_core"], "--sysroot", root)
    libraries = len(mapped_files(corrupt["kernel_core"]) - {corrupt["exe"]})
    assert status == 2 and out == "" and err == (
        f"qemu-coredump: the executable {corrupt['exe']} (build-id {build_id(corrupt['exe'])}) "
        f"is not on this machine, nor its debug file: give it with -e FILE, the crashed "
        f"machine's files with --sysroot DIR, its debug file with --debug-dir DIR, or set "
        f"DEBUGINFOD_URLS ({libraries} of its libraries are missing too)\n")


def test_missing_executable_read_from_its_debug_file(corrupt, tmp_path):
    """The executable missing but its separate debug file at hand (found by the build-id
    the core kept): QEMU's data is read through it as with the executable (aio), exit 1,
    and the executable is listed as missing."""
    root, debug = tmp_path / "root", tmp_path / "debug"
    for lib in mapped_files(corrupt["kernel_core"]) - {corrupt["exe"]}:
        (root / lib.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lib, root / lib.lstrip("/"))
    bid = build_id(corrupt["exe"])
    debug_file = debug / ".build-id" / bid[:2] / f"{bid[2:]}.debug"
    debug_file.parent.mkdir(parents=True)
    subprocess.run(["objcopy", "--only-keep-debug", corrupt["exe"], str(debug_file)],
                   check=True)
    want = cli("aio", corrupt["kernel_core"], "--json")
    status, out, err = cli("aio", corrupt["kernel_core"], "--json", "--sysroot", root,
                           "--debug-dir", debug)
    assert status == 1 and out == want[1], err
    assert err.splitlines() == [
        f"qemu-coredump: partial: missing executable {corrupt['exe']} under {root}: build-id "
        f"{bid}",
        f"qemu-coredump: partial: reading the debug file {debug_file} for the missing "
        f"{corrupt['exe']}: frames in its code are guessed"]


# ---------------------------------------------------------------- real QEMU

_core = fixture_core


def full_version(answer):
    """QEMU_FULL_VERSION from QMP's query-version: the same inputs QEMU builds it from
    (scripts/qemu-version.sh: VERSION, then " (PKGVERSION)" when there is one)."""
    q = answer["qemu"]
    version = f"{q['major']}.{q['minor']}.{q['micro']}"
    return f"{version} ({answer['package']})" if answer["package"] else version


@pytest.mark.slow
@pytest.mark.parametrize("name", corelist.QEMU_NAMES + corelist.DISTRO_NAMES)
def test_version_is_qmps(name):
    """report's QEMU version is QMP's query-version answer, on our builds and on the
    stripped distribution-shaped binaries."""
    meta = _core(name)
    extra = ["--debug-dir", meta["debug_dir"]] if meta.get("debug_dir") else []
    status, out, err = cli("report", meta["core"], "-e", meta["exe"], *extra, "--json")
    assert status == 0, err
    assert json.loads(out)["qemu_version"] == full_version(meta["query_version"])


@pytest.mark.slow
def test_stripped_qemu_without_debug_info_is_qemu(tmp_path):
    """A stripped qemu-storage-daemon with no debug info anywhere is still QEMU (its
    version text is data): report runs, names the version, and marks as partial what the
    missing debug info would have given."""
    meta = _core("qsd-10.0-kernel")
    stripped = tmp_path / "qemu-storage-daemon"
    subprocess.run(["strip", "--strip-all", "-o", str(stripped), meta["exe"]], check=True)
    status, out, err = cli("report", meta["core"], "-e", stripped)
    assert status == 1, err   # partial: what the missing debug info would say is unknown
    assert f"QEMU:         {full_version(meta['query_version'])}\n" in out
    assert "== Not in this program" not in out   # the program has them: it is not absent
    lacks = out.split("== Partial: some items could not be read\n", 1)[1]
    assert f"AioContexts: {stripped} has no debug info" in lacks
