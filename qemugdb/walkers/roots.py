"""QEMU's global roots: the lists every walk of the block layer starts from.

Each is a variable of one QEMU source file, walked with the queue macro QEMU links it with;
the subsystems (block, job, aio, locks, ...) and the census of coroutines build on these.
"""

from .queue import qlist_foreach, qtailq_foreach
from ..target import TargetError


def all_bdrv_states(target):
    """Every BlockDriverState (block.c all_bdrv_states, link bs_list)."""
    return qtailq_foreach(target.variable("all_bdrv_states", file="block.c"), "bs_list")


def graph_bdrv_states(target):
    """The named BlockDriverStates (block.c graph_bdrv_states, link node_list)."""
    return qtailq_foreach(target.variable("graph_bdrv_states", file="block.c"), "node_list")


def block_backends(target):
    """Every BlockBackend (block-backend.c block_backends, link link)."""
    return qtailq_foreach(target.variable("block_backends", file="block-backend.c"), "link")


def all_jobs(target):
    """Every Job (job.c `jobs`, link job_list)."""
    return qlist_foreach(target.variable("jobs", file="job.c"), "job_list")


def throttle_groups(target):
    """Every ThrottleGroup (throttle-groups.c throttle_groups, link list)."""
    return qtailq_foreach(target.variable("throttle_groups", file="throttle-groups.c"), "list")


def throttle_group_members(group):
    """The ThrottleGroupMembers of a ThrottleGroup Object (head, link round_robin)."""
    return qlist_foreach(group.head, "round_robin")


def main_loop_context(target, name):
    """The AioContext * in util/main-loop.c's `name` (qemu_aio_context, iohandler_ctx),
    None when unreadable."""
    try:
        return target.variable(name, file="main-loop.c").value_()
    except TargetError:
        return None


def node_name(bs):
    """A BlockDriverState Object's node-name, its address when it has none or it is
    unreadable."""
    try:
        return bs.node_name.string_() or f"{bs.address_:#x}"
    except TargetError:
        return f"{bs.address_:#x}"


def backend_name(blk):
    """A BlockBackend Object's name, its address when it has none or it is unreadable."""
    try:
        name = blk.name.string_() if blk.name.value_() else ""
    except TargetError:
        name = ""
    return name or f"{blk.address_:#x}"
