"""IOThreads, found in QOM: the children of type iothread of the /objects container
(-object iothread) and of the internal root (iothread_create(), e.g. mon_iothread).
"""

from dataclasses import dataclass, field

from ..obj import Object, read_fields
from .qom import children, qom_root, resolve, type_name
from ..result import Record
from ..target import Target, TargetError, Thread


@dataclass
class IOThreadRecord(Record):
    address: int
    id: str
    internal: bool = False            # made by QEMU itself (iothread_create), not by -object
    aio_context: int | None = None
    thread_id: int | None = None      # LWP
    thread: int | None = None         # the target's thread number
    pthread: int | None = None
    running: bool | None = None
    stopping: bool | None = None
    error: str | None = None
    absent: list = field(default_factory=list)   # fields this QEMU version does not have


def _internal_root(target):
    """object_get_internal_root(): the parent of mon_iothread, when there is one."""
    try:
        mon = target.variable("mon_iothread").value_()
        if mon:
            obj = Object(target, target.lookup_type("Object"), mon)
            parent = obj.parent.value_()
            return Object(target, obj.type_, parent) if parent else None
    except TargetError:
        pass
    return None


def iothread_objects(target: Target) -> list[tuple[str, Object, bool]]:
    """(id, IOThread Object, internal) for every IOThread under /objects (user-created)
    and under the internal root (iothread_create(), e.g. mon_iothread).

    :returns: (id, IOThread, internal) triples"""
    iothread = target.lookup_type("IOThread")
    out = []
    for container, internal in ((resolve(qom_root(target), "objects"), False),
                                (_internal_root(target), True)):
        if container is None:
            continue
        out += [(name, Object(target, iothread, child.address_), internal)
                for name, child in children(container) if type_name(child) == "iothread"]
    return out


def iothreads(target: Target, threads: list[Thread] | None = None) -> list[IOThreadRecord]:
    """IOThreadRecords, matched to the target's threads by LWP (IOThread.thread_id)."""
    by_tid = {th.tid: th.num for th in (threads if threads is not None else target.threads())}
    out = []
    for name, it, internal in iothread_objects(target):
        rec = IOThreadRecord(address=it.address_, id=name, internal=internal)
        read_fields(rec, it, aio_context="ctx", thread_id="thread_id",
                    thread=lambda: by_tid.get(it.thread_id.value_()), pthread="thread.thread",
                    running=lambda: bool(it.running.value_()),
                    stopping=lambda: bool(it.stopping.value_()))
        out.append(rec)
    return out
