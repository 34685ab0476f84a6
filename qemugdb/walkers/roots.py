"""QEMU's global roots: the lists every walk of the block layer starts from.

Each is a variable of one QEMU source file, walked with the queue macro QEMU links it with;
the subsystems (block, job, aio, locks, ...) and the census of coroutines build on these.
"""

from collections.abc import Iterator

from ..obj import Object
from .queue import qlist_foreach, qtailq_foreach
from ..target import Target, TargetError


def all_bdrv_states(target: Target) -> Iterator[Object]:
    """Every BlockDriverState (block.c all_bdrv_states, link bs_list).

    :returns: iterator of BlockDriverState"""
    return qtailq_foreach(target.variable("all_bdrv_states", file="block.c"), "bs_list")


def graph_bdrv_states(target: Target) -> Iterator[Object]:
    """The named BlockDriverStates (block.c graph_bdrv_states, link node_list).

    :returns: iterator of BlockDriverState"""
    return qtailq_foreach(target.variable("graph_bdrv_states", file="block.c"), "node_list")


def block_backends(target: Target) -> Iterator[Object]:
    """Every BlockBackend (block-backend.c block_backends, link link).

    :returns: iterator of BlockBackend"""
    return qtailq_foreach(target.variable("block_backends", file="block-backend.c"), "link")


def all_jobs(target: Target) -> Iterator[Object]:
    """Every Job (job.c `jobs`, link job_list).

    :returns: iterator of Job"""
    return qlist_foreach(target.variable("jobs", file="job.c"), "job_list")


def throttle_groups(target: Target) -> Iterator[Object]:
    """Every ThrottleGroup (throttle-groups.c throttle_groups, link list).

    :returns: iterator of ThrottleGroup"""
    return qtailq_foreach(target.variable("throttle_groups", file="throttle-groups.c"), "list")


def throttle_group_members(group: Object) -> Iterator[Object]:
    """The ThrottleGroupMembers of a ThrottleGroup Object (head, link round_robin).

    :param group: ThrottleGroup
    :returns: iterator of ThrottleGroupMember"""
    return qlist_foreach(group.head, "round_robin")


def main_loop_context(target: Target, name: str) -> int | None:
    """The AioContext * in util/main-loop.c's `name` (qemu_aio_context, iohandler_ctx),
    None when unreadable."""
    try:
        return target.variable(name, file="main-loop.c").value_()
    except TargetError:
        return None


def node_name(bs: Object) -> str:
    """A BlockDriverState Object's node-name, its address when it has none or it is
    unreadable.

    :param bs: BlockDriverState"""
    try:
        return bs.node_name.string_() or f"{bs.address_:#x}"
    except TargetError:
        return f"{bs.address_:#x}"


def backend_name(blk: Object) -> str:
    """A BlockBackend Object's name, its address when it has none or it is unreadable.

    :param blk: BlockBackend"""
    try:
        name = blk.name.string_() if blk.name.value_() else ""
    except TargetError:
        name = ""
    return name or f"{blk.address_:#x}"
