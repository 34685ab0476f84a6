"""obj.py and queue.py against a MockTarget: values, members, bitfields, anonymous members,
strings, and list walks over NULL, cycles and unmapped pointers."""

import struct

import pytest

from mock_target import (BOOL, CHAR, INT, UINT64, MockTarget, array, enum, integer, member,
                         pointer, struct as mstruct, typedef)
from qemugdb.obj import Object, container_of, find_member, has_member, type_name
from qemugdb.walkers.queue import qlist_foreach, qsimpleq_foreach, qslist_foreach, qtailq_foreach
from qemugdb.target import CorruptError, FaultError, MissingDebugInfo

BASE = 0x10000


@pytest.fixture
def t():
    return MockTarget()


def test_scalars_and_pointers(t):
    color = enum("Color", 4, [("RED", 0), ("GREEN", 7)])
    s = t.add_type(mstruct("S", 32, [member("i", INT, 0), member("u", UINT64, 8),
                                     member("c", color, 16), member("b", BOOL, 20),
                                     member("d", integer("double", 8), 24)]))
    s.members[4].type.kind = "float"
    t.map(BASE, struct.pack("<iI Q I B3x d", -5, 0, 2**64 - 1, 7, 1, 2.5))
    o = Object(t, s, BASE)
    assert o.i.value_() == -5
    assert o.u.value_() == 2**64 - 1
    assert o.c.enum_name_() == "GREEN" and int(o.c) == 7
    assert o.b.value_() == 1 and bool(o.b)
    assert o.d.value_() == 2.5
    assert repr(o) == "Object(struct S at 0x10000)"


def test_missing_member_is_missing_debug_info(t):
    s = t.add_type(mstruct("S", 4, [member("i", INT, 0)]))
    with pytest.raises(MissingDebugInfo):
        Object(t, s, BASE).nosuch
    assert not has_member(s, "nosuch") and has_member(s, "i")


def test_anonymous_members_and_typedefs(t):
    inner = mstruct(None, 8, [member("x", INT, 0), member("y", INT, 4)])
    u = mstruct(None, 8, [member(None, inner, 0), member("raw", UINT64, 0)], kind="union")
    s = t.add_type(mstruct("Outer", 16, [member("tag", INT, 0), member(None, u, 8)]))
    td = typedef("Outer", s)
    t.map(BASE, struct.pack("<i4xii", 1, 2, 3))
    o = Object(t, td, BASE)
    assert find_member(td, "y")[0] == 12
    assert (o.tag.value_(), o.x.value_(), o.y.value_()) == (1, 2, 3)
    assert o.raw.value_() == 2 | 3 << 32
    assert type_name(pointer(s)) == "struct Outer *"


def test_bitfields_signed_spanning_and_nested(t):
    # struct { unsigned a:3; int b:5; unsigned c:12; } at bits 0, 3, 8; then an anonymous
    # struct at byte 4 holding `unsigned d:4` at bit 2 of its own start.
    u32, s32 = integer("unsigned int", 4), integer("int", 4, signed=True)
    anon = mstruct(None, 4, [member("d", u32, 0, 4, 2)])
    s = t.add_type(mstruct("B", 8, [member("a", u32, 0, 3, 0), member("b", s32, 0, 5, 3),
                                    member("c", u32, 1, 12, 8), member(None, anon, 4)]))
    word = 0b101 | (0b10110 << 3) | (0xABC << 8)
    t.map(BASE, struct.pack("<II", word, 0b1011 << 2))
    o = Object(t, s, BASE)
    assert o.a.value_() == 5
    assert o.b.value_() == 0b10110 - 32  # sign-extended
    assert o.c.value_() == 0xABC
    assert o.d.value_() == 0b1011


def test_arrays_strings_and_pointer_index(t):
    s = t.add_type(mstruct("N", 28, [member("name", array(CHAR, 8), 0),
                                     member("p", pointer(CHAR), 8),
                                     member("v", array(INT, 3), 16)]))
    t.map(BASE, b"node0\0\0\0" + struct.pack("<Q3i", BASE + 0x100, 10, 20, 30))
    t.map(BASE + 0x100, b"hello\0")
    o = Object(t, s, BASE)
    assert o.name.string_() == "node0"
    assert o.p.string_() == "hello"
    assert [o.v[i].value_() for i in range(3)] == [10, 20, 30]
    with pytest.raises(IndexError):
        o.v[3]
    assert o.p[1].value_() == ord("e")
    assert o.p.deref_().value_() == ord("h")


def test_string_ending_at_unmapped_page(t):
    t.map(BASE, b"abc")
    ptr = t.add_type(mstruct("P", 8, [member("p", pointer(CHAR), 0)]))
    t.map(BASE + 0x1000, struct.pack("<Q", BASE))
    assert Object(t, ptr, BASE + 0x1000).p.string_() == "abc"


def test_unmapped_read_raises_fault_with_address(t):
    s = t.add_type(mstruct("S", 8, [member("p", pointer(INT), 0)]))
    t.map(BASE, struct.pack("<Q", 0xdead0000))
    with pytest.raises(FaultError) as e:
        Object(t, s, BASE).p.deref_().value_()
    assert e.value.address == 0xdead0000


def test_container_of(t):
    s = t.add_type(mstruct("C", 16, [member("a", UINT64, 0), member("link", UINT64, 8)]))
    link = Object(t, UINT64, BASE + 8)
    assert container_of(link, s, "link").address_ == BASE
    t.add_type(s, "C")
    assert container_of(link, "C", "link").address_ == BASE


# queue.h walkers: a node type with every kind of link.

def _node_type(t):
    node = mstruct("Node", 40, [])
    p = pointer(node)
    le = mstruct(None, 16, [member("le_next", p, 0), member("le_prev", pointer(p), 8)])
    tqe = mstruct(None, 16, [member("tqe_next", p, 0), member("tqe_circ", UINT64, 8)],
                  kind="union")
    node.members = [member("value", INT, 0), member("link", le, 8), member("tq", tqe, 24)]
    t.add_type(node)
    head = mstruct(None, 8, [member("lh_first", p, 0)])
    tqh = mstruct(None, 16, [member("tqh_first", p, 0), member("tqh_circ", UINT64, 8)],
                  kind="union")
    return node, head, tqh


def _chain(t, nexts, values=None, head=0x100):
    """Nodes at BASE + 0x100*i; nexts[i] is the index node i links to (None = NULL). Each
    node's back-links (le_prev, and tqe_circ's second word) point at the first link to it:
    the head's for node 0."""
    prev = {0: head}
    for i, n in enumerate(nexts):
        if n is not None:
            prev.setdefault(n, BASE + 0x100 * i)
    for i, n in enumerate(nexts):
        nxt = 0 if n is None else BASE + 0x100 * n
        back = prev.get(i, 0)
        t.map(BASE + 0x100 * i, struct.pack("<i4xQQQQ", (values or nexts)[i] if values else i,
                                             nxt, back and back + 8 * (back != head), nxt,
                                             back and back + 24 * (back != head)))


def test_qlist_and_qtailq_walk(t):
    node, head, tqh = _node_type(t)
    _chain(t, [1, 2, None])
    t.map(0x100, struct.pack("<QQ", BASE, 0))
    assert [n.value.value_() for n in qlist_foreach(Object(t, head, 0x100), "link")] == [0, 1, 2]
    assert [n.value.value_() for n in qtailq_foreach(Object(t, tqh, 0x100), "tq")] == [0, 1, 2]


def test_empty_list(t):
    node, head, _ = _node_type(t)
    t.map(0x100, bytes(8))
    assert list(qlist_foreach(Object(t, head, 0x100), "link")) == []


def test_cycle_raises_corrupt_after_the_good_elements(t):
    node, head, _ = _node_type(t)
    _chain(t, [1, 2, 0])
    t.map(0x100, struct.pack("<Q", BASE))
    seen = []
    with pytest.raises(CorruptError) as e:
        for n in qlist_foreach(Object(t, head, 0x100), "link"):
            seen.append(n.value.value_())
    assert seen == [0, 1, 2] and e.value.address == BASE


def test_limit_bounds_the_walk(t):
    node, head, _ = _node_type(t)
    _chain(t, [1, 2, 3, None])
    t.map(0x100, struct.pack("<Q", BASE))
    with pytest.raises(CorruptError):
        list(qlist_foreach(Object(t, head, 0x100), "link", limit=2))


def test_unmapped_link_raises_fault(t):
    node, head, _ = _node_type(t)
    _chain(t, [1, None])
    t.write_u64(BASE + 0x100 + 8, 0xbad000)  # node 1 links to unmapped memory
    t.map(0x100, struct.pack("<Q", BASE))
    seen = []
    with pytest.raises(FaultError) as e:
        for n in qlist_foreach(Object(t, head, 0x100), "link"):
            seen.append(n.value.value_())
    assert seen == [0, 1] and e.value.address == 0xbad000


def test_qslist_and_qsimpleq(t):
    node = mstruct("E", 16, [])
    p = pointer(node)
    node.members = [member("v", INT, 0),
                    member("sl", mstruct(None, 8, [member("sle_next", p, 0)]), 8)]
    sq = mstruct("E2", 16, [])
    p2 = pointer(sq)
    sq.members = [member("v", INT, 0),
                  member("q", mstruct(None, 8, [member("sqe_next", p2, 0)]), 8)]
    t.map(BASE, struct.pack("<i4xQ", 1, BASE + 16) + struct.pack("<i4xQ", 2, 0))
    t.map(0x100, struct.pack("<Q", BASE))
    slh = mstruct(None, 8, [member("slh_first", p, 0)])
    sqh = mstruct(None, 16, [member("sqh_first", p2, 0), member("sqh_last", UINT64, 8)])
    t.map(0x200, struct.pack("<QQ", BASE, 0))
    assert [e.v.value_() for e in qslist_foreach(Object(t, slh, 0x100), "sl")] == [1, 2]
    assert [e.v.value_() for e in qsimpleq_foreach(Object(t, sqh, 0x200), "q")] == [1, 2]
