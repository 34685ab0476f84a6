"""corefile.dwarf on real QEMU builds (slow tier): layouts, variables, functions and lines
equal what gdb reads from the same binary, as built and as distributions ship it (stripped,
debug info split off and processed by dwz: fixtures/distro.py), gdb then reading the same
debug root."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from corefile.dwarf import DebugInfo
from corefile.elf import ElfImage, find_alt_file, find_debug_file
from test_dwarf import assert_lines_equal_gdb, gdb_batch, our_rows, ptype_o

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
import corelist  # noqa: E402
from make_cores import qemu_install  # noqa: E402

pytestmark = pytest.mark.slow


# Present in both 7.2 and 10.0 (several change layout between them).
QEMU_TYPES = [
    "BlockDriverState", "BdrvChild", "BlockBackend", "BlockJob", "Job", "AioContext", "QEMUBH",
    "AioHandler", "QEMUTimer", "QEMUTimerList", "QEMUTimerListGroup", "Coroutine",
    "CoroutineUContext", "IOThread", "CoQueue", "CoMutex", "ThrottleGroupMember",
    "BdrvTrackedRequest", "BlockDriver", "BlockExport", "QemuMutex", "QemuCond", "QemuEvent",
    "QemuLockCnt", "EventNotifier", "BdrvChildClass", "BlockJobDriver", "JobDriver",
    "BlockAIOCB", "ThrottleState", "CoRwlock", "Object", "ObjectClass", "QDict", "QObject",
    "BlockLimits", "QemuOpts", "struct QEMUClock", "struct ThrottleGroup", "NBDExport",
    "struct NBDClient", "GSource", "BlockDriverInfo", "struct BlockExportDriver",
    "MirrorBlockJob", "StreamBlockJob", "struct LinuxAioState",
]
SYSTEM_TYPES = ["CPUState", "MemoryRegion", "AddressSpace", "FlatView", "DeviceState",
                "BusState", "X86CPU", "PCIDevice", "VirtIODevice", "VirtQueue",
                "MachineState", "struct KVMState", "RAMBlock"]


def debug_info(path, debug_dir, cache_dir):
    """DebugInfo of the ELF file at path as Module.dwarf finds it: its separate debug file
    (under debug_dir, then the system's) and the dwz supplementary file that names."""
    dirs = [debug_dir] if debug_dir else []
    debug = find_debug_file(ElfImage(path), dirs) or path
    link = ElfImage(debug).debugaltlink()
    alt = find_alt_file(*link, debug, dirs) if link else None
    assert not link or alt, f"{path}: dwz file {link} not found"
    return DebugInfo(debug, None, cache_dir=str(cache_dir), alt_path=alt)


QSD, SYSTEM = "qemu-storage-daemon", "qemu-system-x86_64"
BINARIES = [(v, QSD, None, QEMU_TYPES) for v in ("7.2", "10.0", "10.2")] + \
    [(v, SYSTEM, None, QEMU_TYPES[:20] + SYSTEM_TYPES) for v in ("10.0", "10.2")] + \
    [("7.2", QSD, "debian", QEMU_TYPES), ("10.0", QSD, "debian", QEMU_TYPES),
     ("10.0", QSD, "fedora", QEMU_TYPES),
     ("10.0", SYSTEM, "debian", QEMU_TYPES[:20] + SYSTEM_TYPES)]


@pytest.fixture(scope="module", params=BINARIES,
                ids=lambda b: "-".join(filter(None, (b[1], b[0], b[2]))))
def target(request, tmp_path_factory):
    """(stripped or plain executable, types, DebugInfo, gdb's debug-file-directory)."""
    version, program, shape, types = request.param
    install = qemu_install(version, shape)
    exe = install["bin"] / program
    debug_dir = install["debug_dir"]
    return (exe, types, debug_info(str(exe), debug_dir, tmp_path_factory.mktemp("cache")),
            corelist.gdb_debug_dirs(debug_dir))


def test_layouts_equal_gdb(target):
    exe, types, di, dirs = target
    expected = ptype_o(exe, types, debug_dirs=dirs)
    for name in types:
        t = di.find_type(name)
        assert t is not None, name
        assert our_rows(t) == expected[name], name


def test_variables_and_functions_equal_gdb(target):
    exe, _types, di, dirs = target
    out = gdb_batch(exe, ["info address co_tls_current", "p &all_bdrv_states",
                          "p &qemu_aio_context", "info address aio_poll",
                          "info address qemu_coroutine_switch", "info address main"],
                    debug_dirs=dirs)
    tls = int(re.search(r"thread-local variable at offset (0x[0-9a-f]+)", out).group(1), 16)
    addrs = [int(a, 16) for a in re.findall(r"\) (0x[0-9a-f]+) <", out)]
    funcs = [int(a, 16) for a in re.findall(r"is a function at address (0x[0-9a-f]+)", out)]
    assert len(addrs) == 2 and len(funcs) == 3, out
    addr, t = di.find_variable("co_tls_current", file="util/coroutine-ucontext.c")
    assert addr == ("tls", tls) and str(t) == "Coroutine *"
    assert di.find_variable("all_bdrv_states")[0] == addrs[0]
    assert di.find_variable("qemu_aio_context")[0] == addrs[1]
    assert [di.find_function(f) for f in ("aio_poll", "qemu_coroutine_switch", "main")] == funcs


def test_lines_equal_gdb(target):
    exe, _types, di, dirs = target
    pcs = []
    for name in ("aio_poll", "qemu_coroutine_switch", "bdrv_open", "coroutine_trampoline"):
        start = di.find_function(name)
        pcs += [start + d for d in range(0, 400, 7)]
    assert_lines_equal_gdb(exe, di, pcs, debug_dirs=dirs)


# ---------------------------------------------------------------------------------------
# locate() against gdb's `thread apply all bt` captured on every fixture core

_FRAME = re.compile(r"^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(\S+) \(.*\)(?: at (\S+):(\d+)| from \S+)?$")


def _build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else None


def _gdb_threads(text):
    """Per thread, per physical frame of gdb's bt: (frame number, pc, [(function, file,
    line)]), the inline frames gdb lists for that pc first."""
    threads = []
    for line in text.splitlines():
        if line.startswith("Thread "):
            threads.append([])
            continue
        m = _FRAME.match(line)
        if not m or not threads:
            continue
        num, pc, func, file, ln = m.groups()
        frame = (func, file, int(ln) if ln else None)
        groups = threads[-1]
        if pc is not None or not groups:
            groups.append((int(num), int(pc, 16) if pc else None, [frame]))
        else:
            groups[-1][2].append(frame)
    return threads


@pytest.mark.parametrize("name", corelist.ALL_NAMES)
def test_locate_equals_gdb_backtraces(name, tmp_path):
    """Every frame gdb printed with debug info: same function names (inline chain
    included), files and lines, looking up pc - 1 in caller frames as gdb does (for a
    distribution-shaped core, both reading its debug root: inline chains and lines of
    functions whose DIEs dwz moved to partial units)."""
    meta = corelist.core(name)
    oracle = Path(meta["oracle"])
    starts = {}
    for line in (oracle / "maps.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[2] == "00000000" and parts[5].startswith("/"):
            starts.setdefault(parts[5], int(parts[0].split("-")[0], 16))
    modules = {}

    def module(pc):
        path, start = max(((p, s) for p, s in starts.items() if s <= pc), key=lambda x: x[1])
        if path not in modules:
            modules[path] = debug_info(path, meta.get("debug_dir"), tmp_path)
        return start, modules[path]

    checked = tail_calls = 0
    for groups in _gdb_threads((oracle / "gdb-bt.txt").read_text()):
        for num, pc, want in groups:
            if pc is None or any(f[1] is None for f in want):
                continue  # no debug info there ("from LIB", "??")
            start, di = module(pc)
            loc = di.locate(pc - start - (1 if num > 0 else 0))
            got = [tuple(f) for f in loc.inlined_chain] if loc else None
            if got != want and got is not None and len(want) == 1 and got[0] == want[0]:
                # A tail-call frame gdb rebuilt from DW_TAG_call_site (corefile.callsites):
                # gdb shows the innermost function at its pc only.
                tail_calls += 1
                continue
            assert got == want, (name, num, hex(pc))
            checked += 1
    assert checked >= 3 and tail_calls <= checked // 4, (checked, tail_calls)


# The globals and file statics qemugdb's walkers read (absent ones must be absent for both).
WALKER_VARIABLES = [
    ("address_spaces", "memory.c"), ("all_bdrv_states", "block.c"),
    ("block_backends", "block-backend.c"), ("current_machine", None),
    ("global_pool", "qemu-coroutine.c"), ("graph_bdrv_states", "block.c"), ("jobs", "job.c"),
    ("main_loop_tlg", None), ("mon_iothread", None), ("mon_list", None),
    ("my_aiocontext", None), ("release_pool", "qemu-coroutine.c"),
    ("throttle_groups", "throttle-groups.c"), ("qemu_aio_context", None), ("__abort_msg", None),
]


def test_walker_variables_equal_gdb(target):
    exe, _types, di, dirs = target
    commands = []
    for name, file in WALKER_VARIABLES:
        commands += ["echo @@\\n",
                     f"info address {name}" if file is None
                     else f"p &'{os.path.basename(file)}'::{name}"]
    answers = gdb_batch(exe, commands, debug_dirs=dirs).split("@@\n")[1:]
    assert len(answers) == len(WALKER_VARIABLES)
    for (name, file), answer in zip(WALKER_VARIABLES, answers):
        m = re.search(r"static storage at address (0x[0-9a-f]+)|\) (0x[0-9a-f]+) <", answer)
        want = int(m.group(1) or m.group(2), 16) if m else None
        found = di.find_variable(name, file=file)
        assert (found[0] if found else None) == want, (name, file, answer)


GLIBC_TYPES = ["struct pthread", "pthread_mutex_t", "struct _IO_FILE", "struct malloc_state",
               "struct link_map", "ucontext_t"]


def test_glibc_separate_debug_file_equals_gdb(tmp_path):
    """Debian's libc6-dbg: a separate, SHF_COMPRESSED .debug file found by build-id (gdb
    loads the same one for libc.so.6)."""
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    debug = find_debug_file(ElfImage(libc))
    assert debug, "libc6-dbg is not installed (fixtures/deps.sh installs it)"
    di = DebugInfo(debug, _build_id(libc), cache_dir=str(tmp_path))
    expected = ptype_o(libc, GLIBC_TYPES)
    for name in GLIBC_TYPES:
        assert our_rows(di.find_type(name)) == expected[name], name
    out = gdb_batch(libc, ["info address __libc_single_threaded", "info address start_thread",
                           "info address abort"])
    var = int(re.search(r"static storage at address (0x[0-9a-f]+)", out).group(1), 16)
    func = int(re.search(r"is a function at address (0x[0-9a-f]+)", out).group(1), 16)
    # gdb files abort under its DW_AT_linkage_name __GI_abort and answers from the ELF
    # symbol; the address is the same
    alias = int(re.search(r'"abort" is at (0x[0-9a-f]+)', out).group(1), 16)
    assert di.find_variable("__libc_single_threaded")[0] == var
    assert di.find_function("start_thread") == func
    assert di.find_function("abort") == alias
