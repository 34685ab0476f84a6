"""corefile's shortcuts give the answers of the long way: exports through .gnu.hash equal a
scan of .dynsym, and a warm cache (index, line tables, function ranges, call sites) gives
the same backtraces as a cold one, on a real QEMU core."""

import os
import sys

import pytest

import corefile
from corefile.elf import _read_symbols

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fixtures"))
import corelist  # noqa: E402


def _scan_exports(img):
    out = {}
    for sym in _read_symbols(img, (".dynsym",)):
        if sym.is_function and sym.is_global and not sym.old_version:
            out.setdefault(sym.name, sym.address)
    return out


def _backtraces(meta, cache_dir):
    with corefile.open(meta["core"], exe=meta["exe"], cache_dir=str(cache_dir)) as prog:
        return [[(e.kind, e.pc, e.function, e.file, e.line) for e in prog.backtrace(t.registers)]
                for t in prog.threads]


@pytest.mark.slow
def test_gnu_hash_exports_equal_dynsym_scan():
    meta = corelist.core("qsd-10.0-gcore")
    with corefile.open(meta["core"], exe=meta["exe"]) as prog:
        checked = 0
        for mod in prog.modules:
            want = _scan_exports(mod.image)
            names = set(want) | {s.name for s in mod.image.symbols()} | {"no_such_function"}
            for name in names:
                got = mod.image.exported(name)
                assert (got.address if got else None) == want.get(name), (mod.name, name)
                checked += 1
        assert checked > 1000


@pytest.mark.slow
def test_warm_cache_gives_the_cold_backtraces(tmp_path):
    meta = corelist.core("qsd-10.0-gcore")
    cold = _backtraces(meta, tmp_path)
    assert list((tmp_path / "dwarf").glob("*.lines/*")), "no line table was cached"
    assert list((tmp_path / "dwarf").glob("*.callsites/*")), "no call sites were cached"
    assert _backtraces(meta, tmp_path) == cold
