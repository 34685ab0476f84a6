"""Walkers over QEMU's include/qemu/queue.h lists, named after its macros.

Each yields the elements (Objects of the element type) and is bounded: a cycle or more than
`limit` elements raises CorruptError, an unreadable link raises FaultError, after the good
elements have been yielded. Callers that must carry on catch TargetError and report it.

The doubly-linked ones (QLIST, QTAILQ) also check each element's back-link (le_prev,
tqe_circ.tql_prev) against the link that led to it, as Linux's list debugging does: a next
pointer into readable memory that holds no element of the list (a flipped bit, a stale
pointer, zeroed memory) raises CorruptError instead of yielding what is there. QEMU keeps
every listed element's back-link (QLIST_REMOVE and QTAILQ_REMOVE clear it), so a NULL one is
broken too; an unreadable one is not checked (the element's reader marks it).
"""

from collections.abc import Callable, Iterator

from ..errors import CorruptError, FaultError, MissingDebugInfo
from ..obj import Object, strip_typedefs

LIMIT = 1_000_000


def _elements(head_first, field, next_name, limit,
              back_link: Callable[[Object], Object] | None = None,
              link: Callable[[Object], int] | None = None):
    """The elements from head_first along elm->field.NEXT_NAME; with back_link (an
    element's back-link Object) and link (the address its successor's back-link must hold),
    each element's back-link is checked, the first against head_first's address."""
    elem_type = strip_typedefs(head_first.type_).target
    seen = set()
    address, expected = head_first.value_(), head_first.address_
    while address:
        if address in seen:
            raise CorruptError(f"list cycles back to {address:#x}", address)
        if len(seen) >= limit:
            raise CorruptError(f"list longer than {limit} elements", address)
        seen.add(address)
        elem = Object(head_first.target_, elem_type, address)
        if back_link is not None:
            _check_back_link(back_link, elem, expected)
            expected = link(elem)
        yield elem
        address = getattr(elem.member_(field), next_name).value_()


def _check_back_link(back_link, elem, expected):
    try:
        actual = back_link(elem).value_()
    except (FaultError, MissingDebugInfo):
        return
    if actual != expected:
        raise CorruptError(f"list broken at {elem.address_:#x}: its back-link is "
                           f"{actual:#x}, not {expected:#x}", elem.address_)


def qlist_foreach(head: Object, field: str, limit: int = LIMIT) -> Iterator[Object]:
    """QLIST_FOREACH: head.lh_first, elm->field.le_next.

    :param head: a QLIST_HEAD struct
    :returns: iterator of the element type (its struct, at each element's address)"""
    return _elements(head.lh_first, field, "le_next", limit,
                     back_link=lambda e: e.member_(field).le_prev,
                     link=lambda e: e.member_(field).le_next.address_)


def qlist_is_inserted(elm: Object, field: str) -> bool:
    """QLIST_IS_INSERTED: elm->field.le_prev is not NULL, checked: an inserted element's
    le_prev points at the link holding its address (CorruptError when it does not,
    FaultError when that cannot be read).

    :param elm: the element's struct"""
    prev = elm.member_(field).le_prev
    if not prev.value_():
        return False
    if prev.deref_().value_() != elm.address_:
        raise CorruptError(f"{field}.le_prev {prev.value_():#x} does not point back to "
                           f"{elm.address_:#x}", elm.address_)
    return True


def qslist_foreach(head: Object, field: str, limit: int = LIMIT) -> Iterator[Object]:
    """QSLIST_FOREACH: head.slh_first, elm->field.sle_next.

    :param head: a QSLIST_HEAD struct
    :returns: iterator of the element type"""
    return _elements(head.slh_first, field, "sle_next", limit)


def qsimpleq_foreach(head: Object, field: str, limit: int = LIMIT) -> Iterator[Object]:
    """QSIMPLEQ_FOREACH: head.sqh_first, elm->field.sqe_next.

    :param head: a QSIMPLEQ_HEAD struct
    :returns: iterator of the element type"""
    return _elements(head.sqh_first, field, "sqe_next", limit)


def qtailq_foreach(head: Object, field: str, limit: int = LIMIT) -> Iterator[Object]:
    """QTAILQ_FOREACH: head.tqh_first, elm->field.tqe_next.

    :param head: a QTAILQ_HEAD struct
    :returns: iterator of the element type"""
    return _elements(head.tqh_first, field, "tqe_next", limit,
                     back_link=lambda e: e.member_(field).tqe_circ.tql_prev,
                     link=lambda e: e.member_(field).address_)
