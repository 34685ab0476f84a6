"""Walkers over QEMU's include/qemu/queue.h lists, named after its macros.

Each yields the elements (Objects of the element type) and is bounded: a cycle or more than
`limit` elements raises CorruptError, an unreadable link raises FaultError, after the good
elements have been yielded. Callers that must carry on catch TargetError and report it.
"""

from collections.abc import Iterator

from ..obj import Object, strip_typedefs
from ..target import CorruptError

LIMIT = 1_000_000


def _elements(head_first, field, next_name, limit):
    elem_type = strip_typedefs(head_first.type_).target
    seen = set()
    address = head_first.value_()
    while address:
        if address in seen:
            raise CorruptError(f"list cycles back to {address:#x}", address)
        if len(seen) >= limit:
            raise CorruptError(f"list longer than {limit} elements", address)
        seen.add(address)
        elem = Object(head_first.target_, elem_type, address)
        yield elem
        address = getattr(elem.member_(field), next_name).value_()


def qlist_foreach(head: Object, field: str, limit: int = LIMIT) -> Iterator[Object]:
    """QLIST_FOREACH: head.lh_first, elm->field.le_next.

    :param head: a QLIST_HEAD struct
    :returns: iterator of the element type (its struct, at each element's address)"""
    return _elements(head.lh_first, field, "le_next", limit)


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
    return _elements(head.tqh_first, field, "tqe_next", limit)
