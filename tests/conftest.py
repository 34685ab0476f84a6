"""Session helpers shared by the tests.

Fixtures:
  qemu_core, qsd_core, crash_core,  meta dict of one fixture core (fixtures/corelist.py);
  any_core                          a test using one runs once per core, marked `slow`.
                                    A missing core FAILS, saying to run fixtures/make_cores.py.
  qemu_builds                       {"7.2": bindir, "10.0": bindir} (fixtures/build-qemu.sh)
  synthetic                         fixtures/synthetic/ compiled and dumped once per session:
                                    {"exe", "kernel_core", "gcore", "source", "expected"}
  corrupt                           fixtures/corrupt/ likewise: {"exe", "kernel_core", "gcore"}
  gdb_batch                         run(exe, core=None, commands=(), script=None,
                                    debug_dirs=None) -> stdout of `gdb -batch -nx`; SCRIPT is
                                    Python run inside gdb; DEBUG_DIRS gdb's
                                    debug-file-directory (corelist.gdb_debug_dirs()).
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The machine's own debuginfod settings (Debian's profile script sets DEBUGINFOD_URLS)
# would make every test read over the network: the tests that use debuginfod set their own.
for _name in [n for n in os.environ if n.startswith("DEBUGINFOD_")]:
    del os.environ[_name]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
sys.path.insert(0, str(FIXTURES))
import corelist  # noqa: E402
from oracle import fixture_core  # noqa: E402

CORE_SETS = {
    "qemu_core": corelist.QEMU_NAMES,
    "qsd_core": [n for n in corelist.QEMU_NAMES if n.startswith("qsd-")],
    "crash_core": corelist.CRASH_NAMES,
    "any_core": corelist.NAMES,
}


def pytest_generate_tests(metafunc):
    for fixture, names in CORE_SETS.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(
                fixture, [pytest.param(n, id=n, marks=pytest.mark.slow) for n in names],
                indirect=True)


_core = fixture_core


@pytest.fixture
def qemu_core(request):
    return _core(request.param)


@pytest.fixture
def qsd_core(request):
    return _core(request.param)


@pytest.fixture
def crash_core(request):
    return _core(request.param)


@pytest.fixture
def any_core(request):
    return _core(request.param)


@pytest.fixture(scope="session")
def qemu_builds():
    r = subprocess.run([str(FIXTURES / "build-qemu.sh"), "bookworm", "trixie"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"fixtures/build-qemu.sh failed:\n{r.stderr[-2000:]}", pytrace=False)
    dirs = dict(line.split(None, 1) for line in r.stdout.splitlines() if line.strip())
    return {"7.2": Path(dirs["bookworm"]) / "bin", "10.0": Path(dirs["trixie"]) / "bin"}


def _build(name, tmp_path_factory):
    """fixtures/NAME/build.py's build() into a fresh directory."""
    spec = importlib.util.spec_from_file_location(f"{name}_build", FIXTURES / name / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build(tmp_path_factory.mktemp(name))


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    return _build("synthetic", tmp_path_factory)


@pytest.fixture(scope="session")
def corrupt(tmp_path_factory):
    """fixtures/corrupt/ (QEMU-shaped structures, corrupted) compiled and dumped:
    {"exe", "kernel_core", "gcore"}."""
    return _build("corrupt", tmp_path_factory)


def run_gdb(exe, core=None, commands=(), script=None, timeout=120, debug_dirs=None):
    """stdout of `gdb -batch -nx EXE [CORE]` running COMMANDS, then SCRIPT (Python); gdb
    reads separate debug info from DEBUG_DIRS (":"-separated) when given."""
    argv = ["gdb", "-batch", "-nx", "-ex", "set pagination off", "-ex", "set width 0"]
    if debug_dirs:
        argv += ["-iex", f"set debug-file-directory {debug_dirs}"]
    for c in commands:
        argv += ["-ex", c]
    if script is not None:
        argv += ["-ex", f"python exec({script!r})"]
    argv.append(str(exe))
    if core is not None:
        argv.append(str(core))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 or "Traceback" in r.stderr or "Error while executing Python" in r.stderr:
        pytest.fail(f"gdb failed ({r.returncode}): {' '.join(argv[-2:])}\n{r.stderr[-3000:]}",
                    pytrace=False)
    return r.stdout


@pytest.fixture(scope="session")
def gdb_batch():
    return run_gdb
