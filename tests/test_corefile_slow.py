"""corefile on the real QEMU fixture cores: every thread's backtrace equals gdb's
`thread apply all bt` captured on the same core (oracle/gdb-bt.txt)."""

import os
import re
import sys

import pytest

import corefile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
import corelist  # noqa: E402

pytestmark = pytest.mark.slow

_THREAD = re.compile(r"^Thread (\d+) ")
_FRAME = re.compile(r"^#(\d+)\s+(.*)$")
_ADDR = re.compile(r"^(0x[0-9a-f]+) in (\S*)")


def parse_gdb_bt(text):
    """{thread number: [(function, pc or None)]} from `thread apply all bt` output;
    function is None for "??", "<signal>" for the signal trampoline."""
    threads = {}
    frames = None
    for line in text.splitlines():
        m = _THREAD.match(line)
        if m:
            frames = threads[int(m.group(1))] = []
            continue
        m = _FRAME.match(line)
        if m is None or frames is None or int(m.group(1)) != len(frames):
            continue
        rest = m.group(2)
        if rest.startswith("<signal handler called>"):
            frames.append(("<signal>", None))
            continue
        a = _ADDR.match(rest)
        name = a.group(2) if a else rest.split(" (", 1)[0]
        frames.append((None if name in ("", "??") else name,
                       int(a.group(1), 16) if a else None))
    return threads


def same_function(gdb_name, entry):
    """gdb prints glibc's functions by their DW_AT_linkage_name (__GI_ aliases)."""
    if entry.kind == "signal":
        return gdb_name == "<signal>"
    return gdb_name == entry.function or (
        entry.function is not None and gdb_name == "__GI_" + entry.function)


def assert_backtraces_match(prog, gdb_text):
    gdb_threads = parse_gdb_bt(gdb_text)
    assert sorted(gdb_threads) == [t.num for t in prog.threads]
    for thread in prog.threads:
        want = gdb_threads[thread.num]
        got = prog.backtrace(thread.registers)
        mine = [(e.kind, e.function, hex(e.pc)) for e in got]
        assert len(got) == len(want), (thread.num, want, mine)
        for (name, pc), entry in zip(want, got):
            assert same_function(name, entry), (thread.num, want, mine)
            assert pc is None or pc == entry.pc, (thread.num, want, mine)
        assert not any(e.frame.fallback for e in got), (thread.num, mine)


@pytest.mark.parametrize("name", corelist.NAMES)
def test_backtraces_equal_gdb(name, tmp_path):
    try:
        meta = corelist.core(name)
    except corelist.CoreMissing as e:
        pytest.fail(str(e))
    with open(os.path.join(meta["oracle"], "gdb-bt.txt")) as f:
        gdb_text = f.read()
    with corefile.open(meta["core"], exe=meta["exe"], cache_dir=str(tmp_path)) as prog:
        assert {t.tid for t in prog.threads} == set(meta["tids"])
        assert_backtraces_match(prog, gdb_text)
