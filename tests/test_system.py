"""system.py on a MockTarget: both BQL namings, Int128 sizes, the mtree walk."""

import struct

import pytest

from mock_target import (BOOL, CHAR, INT, UINT64, MockTarget, member, pointer,
                         struct as mstruct)
from qemugdb.walkers import system
from qemugdb.target import MissingDebugInfo


def _mutex_type():
    data = mstruct("__pthread_mutex_s", 40, [member("__lock", INT, 0), member("__owner", INT, 8)])
    lock = mstruct(None, 40, [member("__data", data, 0)], kind="union")
    return mstruct("QemuMutex", 48, [member("lock", lock, 0)])


@pytest.mark.parametrize("flag,mutex", [("co_tls_iothread_locked", "qemu_global_mutex"),
                                        ("co_tls_bql_locked", "bql")])
def test_lock_status_finds_either_naming(flag, mutex):
    t = MockTarget()
    t.map(0x1000, struct.pack("<iiI", 0, 0, 4242) + bytes(36))
    t.add_variable(flag, 0x2000, BOOL, file="cpus.c")
    t.add_variable(mutex, 0x1000, _mutex_type(), file="cpus.c")
    status = system.lock_status(t)
    assert status.flag_name == flag.removeprefix("co_tls_")
    assert status.mutex_name == mutex and status.owner_tid == 4242


def test_lock_status_without_bql_says_so():
    with pytest.raises(MissingDebugInfo, match="needs qemu-system"):
        system.lock_status(MockTarget())


def test_mtree_walk_with_struct_int128_alias_and_disabled():
    t = MockTarget()
    mr = mstruct("MemoryRegion", 0, [])
    p = pointer(mr)
    i128 = mstruct("Int128", 16, [member("lo", UINT64, 0), member("hi", UINT64, 8)])
    tqh = mstruct(None, 16, [member("tqh_first", p, 0), member("tqh_circ", UINT64, 8)],
                  kind="union")
    tqe = mstruct(None, 16, [member("tqe_next", p, 0), member("tqe_circ", UINT64, 8)],
                  kind="union")
    fields = [("ram", BOOL), ("readonly", BOOL), ("rom_device", BOOL), ("romd_mode", BOOL),
              ("ram_device", BOOL), ("enabled", BOOL), ("nonvolatile", BOOL)]
    members = [member(n, ty, i) for i, (n, ty) in enumerate(fields)]
    members += [member("size", i128, 16), member("addr", UINT64, 32), member("alias", p, 40),
                member("alias_offset", UINT64, 48), member("priority", INT, 56),
                member("subregions", tqh, 64), member("subregions_link", tqe, 80),
                member("name", pointer(CHAR), 96)]
    mr.members, mr.size = members, 104
    t.add_type(mr)
    as_t = mstruct("AddressSpace", 0, [])
    as_link = mstruct(None, 16, [member("tqe_next", pointer(as_t), 0),
                                 member("tqe_circ", UINT64, 8)], kind="union")
    as_t.members = [member("name", pointer(CHAR), 0), member("root", p, 8),
                    member("address_spaces_link", as_link, 16)]
    heads = mstruct(None, 16, [member("tqh_first", pointer(as_t), 0),
                               member("tqh_circ", UINT64, 8)], kind="union")

    def region(addr, name_at, *, size, base=0, ram=0, enabled=1, alias=0, off=0, prio=0,
               sub=0, nxt=0):
        flags = bytes([ram, 0, 0, 0, 0, enabled, 0]) + bytes(9)
        t.map(addr, flags + struct.pack("<QQQQQi4xQQQQQ", size & (2**64 - 1), size >> 64,
                                        base, alias, off, prio, sub, 0, nxt, 0, name_at))

    t.map(0x100, b"system\0ram\0alias\0memory\0")
    region(0x1000, 0x100, size=1 << 64, sub=0x2000)                     # system, 2^64 bytes
    region(0x2000, 0x107, size=0x1000, base=0x8000, ram=1, nxt=0x3000)  # ram
    region(0x3000, 0x10b, size=0x100, base=0x9000, alias=0x2000, off=0x10, enabled=0, prio=-1)
    t.map(0x4000, struct.pack("<QQQQ", 0x111, 0x1000, 0, 0))            # AddressSpace memory
    t.map(0x5000, struct.pack("<QQ", 0x4000, 0))
    t.add_variable("address_spaces", 0x5000, heads, file="memory.c")
    tree = system.memory_tree(t)
    (heading, regions), (alias_heading, alias_regions) = tree.trees
    assert heading == ["address-space: memory"] and alias_heading == ["memory-region: ram"]
    assert [(r.level, r.start, r.end, r.name, r.type) for r in regions] == [
        (1, 0, 2**64 - 1, "system", "i/o"),
        (2, 0x8000, 0x8fff, "ram", "ram"),
        (2, 0x9000, 0x90ff, "alias", "ram")]
    assert (regions[2].alias, regions[2].alias_start, regions[2].alias_end) == ("ram", 0x10, 0x10f)
    assert not regions[2].enabled and regions[2].priority == -1
    assert alias_regions[0].start == 0x8000  # printed at its own addr, base 0
