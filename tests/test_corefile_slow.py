"""corefile on the real QEMU fixture cores: every thread's backtrace equals gdb's
`thread apply all bt` captured on the same core (oracle/gdb-bt.txt)."""

import os
import subprocess
import sys
import time

import pytest

import corefile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
import corelist  # noqa: E402
from oracle import fixture_core, parse_gdb_bt  # noqa: E402

pytestmark = pytest.mark.slow


def same_function(gdb_name, entry):
    if entry.kind == "signal":
        return gdb_name == "<signal>"
    return gdb_name == entry.function


def assert_backtraces_match(prog, gdb_text):
    gdb_threads = parse_gdb_bt(gdb_text)
    assert sorted(gdb_threads) == [t.num for t in prog.threads]
    for thread in prog.threads:
        want = gdb_threads[thread.num]
        got = prog.backtrace(thread.registers)
        mine = [(e.kind, e.function, hex(e.pc)) for e in got]
        # Below coroutine_trampoline is glibc's __start_context, whose return address
        # gdb names "__start_context" or "??" depending on what it expanded before;
        # then its heuristic unwinder goes on with frames made of stack garbage.
        # corefile stops after __start_context's frame: compare its pc only.
        names = [name for name, _ in want]
        if "coroutine_trampoline" in names:
            cut = len(names) - names[::-1].index("coroutine_trampoline")
            if len(want) > cut:
                want = want[:cut] + [(got[cut].function if len(got) > cut else None,
                                      want[cut][1])]
        assert len(got) == len(want), (thread.num, want, mine)
        for (name, pc), entry in zip(want, got):
            assert same_function(name, entry), (thread.num, want, mine)
            assert pc is None or pc == entry.pc, (thread.num, want, mine)
        assert not any(e.frame.fallback for e in got), (thread.num, mine)


@pytest.mark.parametrize("name", corelist.NAMES)
def test_backtraces_equal_gdb(name, tmp_path):
    meta = fixture_core(name)
    with open(os.path.join(meta["oracle"], "gdb-bt.txt")) as f:
        gdb_text = f.read()
    with corefile.open(meta["core"], exe=meta["exe"], cache_dir=str(tmp_path)) as prog:
        assert {t.tid for t in prog.threads} == set(meta["tids"])
        assert_backtraces_match(prog, gdb_text)


@pytest.mark.parametrize("name", [n for n in corelist.NAMES if not n.startswith("crash-")])
def test_tls_and_globals_equal_gdb(name, tmp_path):
    """co_tls_current (a static __thread of util/coroutine-ucontext.c) in every thread,
    and the address of a global, equal gdb's `p &...` on the same core."""
    meta = fixture_core(name)
    with corefile.open(meta["core"], exe=meta["exe"], cache_dir=str(tmp_path)) as prog:
        # A KVM core can hold a kernel worker thread with no user-level state (rip and
        # rsp zero): no TLS (gdb: "Cannot find user-level thread").
        threads = [t for t in prog.threads if t.registers["rsp"]]
        for t in prog.threads:
            if t not in threads:
                with pytest.raises(corefile.CorefileError):
                    prog.variable("co_tls_current", file="util/coroutine-ucontext.c",
                                  thread=t)
        cmds = ["p/x &all_bdrv_states"]
        for t in threads:
            cmds += [f"thread {t.num}", "p/x &co_tls_current", "p/x co_tls_current"]
        args = ["gdb", "-batch", "-nx"] + [a for c in cmds for a in ("-ex", c)]
        out = subprocess.run(args + [meta["exe"], meta["core"]], capture_output=True,
                             text=True, timeout=300).stdout
        values = [int(l.split()[-1], 16) for l in out.splitlines() if l.startswith("$")]
        assert len(values) == 1 + 2 * len(threads), out
        addr, _type = prog.variable("all_bdrv_states")
        assert addr == values[0]
        for i, t in enumerate(threads):
            addr, _type = prog.variable("co_tls_current", file="util/coroutine-ucontext.c",
                                        thread=t)
            assert addr == values[1 + 2 * i], t.num
            assert prog.read_pointer(addr) == values[2 + 2 * i], t.num


def test_tcg_generated_code_frames_equal_gdb(tmp_path):
    """A TCG vCPU thread inside generated code: corefile finds the code buffer's CFI
    through gdb's JIT interface (__jit_debug_descriptor) and unwinds through it as
    gdb does."""
    try:
        exe = corelist.core("system-10.0-gcore")["exe"]
    except corelist.CoreMissing as e:
        pytest.fail(str(e))
    rom = bytearray(b"\x90" * 65536)
    rom[0xFFF0:0xFFF2] = b"\xeb\xfe"          # the reset vector: jmp .
    (tmp_path / "spin.bin").write_bytes(rom)
    qemu = subprocess.Popen([exe, "-accel", "tcg", "-m", "64", "-display", "none",
                             "-nodefaults", "-bios", str(tmp_path / "spin.bin"),
                             "-global", "apic-common.vapic=off", "-monitor", "none",
                             "-serial", "none"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    core = str(tmp_path / f"gc.{qemu.pid}")
    try:
        time.sleep(1)
        for _ in range(5):      # the vCPU is nearly always inside the spinning block
            subprocess.run(["gcore", "-o", str(tmp_path / "gc"), str(qemu.pid)],
                           check=True, capture_output=True, timeout=300)
            out = subprocess.run(["gdb", "-batch", "-nx", "-ex", "thread apply all bt",
                                  exe, core], capture_output=True, text=True,
                                 timeout=300).stdout
            if "in code_gen_buffer ()" in out:
                break
    finally:
        qemu.kill()
        qemu.wait()
    assert "in code_gen_buffer ()" in out
    with corefile.open(core, exe=exe, cache_dir=str(tmp_path / "cache")) as prog:
        assert_backtraces_match(prog, out)
