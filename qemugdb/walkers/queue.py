"""Walkers over QEMU's include/qemu/queue.h lists, named after its macros.

Each yields the elements (Objects of the element type) and is bounded: a cycle or more than
`limit` elements raises CorruptError, an unreadable link raises FaultError, after the good
elements have been yielded. Callers that must carry on catch TargetError and report it.
"""

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


def qlist_foreach(head, field, limit=LIMIT):
    """QLIST_FOREACH: head.lh_first, elm->field.le_next."""
    return _elements(head.lh_first, field, "le_next", limit)


def qslist_foreach(head, field, limit=LIMIT):
    """QSLIST_FOREACH: head.slh_first, elm->field.sle_next."""
    return _elements(head.slh_first, field, "sle_next", limit)


def qsimpleq_foreach(head, field, limit=LIMIT):
    """QSIMPLEQ_FOREACH: head.sqh_first, elm->field.sqe_next."""
    return _elements(head.sqh_first, field, "sqe_next", limit)


def qtailq_foreach(head, field, limit=LIMIT):
    """QTAILQ_FOREACH: head.tqh_first, elm->field.tqe_next."""
    return _elements(head.tqh_first, field, "tqe_next", limit)
