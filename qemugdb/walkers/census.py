"""The census of coroutines: every coroutine reachable from each subsystem's roots, with
why it waits (`qemu coroutines`).

Roots: the threads' current coroutines and their co->caller chains, jobs, tracked requests
and their waiters (and reqs_lock while it was a CoMutex), BlockBackends' queued_requests,
throttle groups' queues, AioContexts' scheduled coroutines and the coroutine pools. A root
this program lacks is listed as missing, one that breaks as an error; the others go on.
"""

from dataclasses import dataclass, field

from ..obj import Object, co_tls, first_variable, strip_typedefs
from ..result import Record
from ..target import MissingDebugInfo, Target, TargetError
from .aio import known_contexts
from .coroutine import (CoroutineRecord, Coroutines, callers, comutex_waiters, coqueue_waiters,
                        current_coroutine, leader)
from .enums import enumerators
from .queue import qlist_foreach, qslist_foreach
from .roots import (all_bdrv_states, all_jobs, backend_name, block_backends, node_name,
                    throttle_group_members, throttle_groups)


# Roots: each yields (Coroutine address, why it waits, state).

def _thread_roots(target, threads):
    for th in threads:
        try:
            current = current_coroutine(target, th)
        except TargetError:
            continue
        if current is None:
            continue
        yield current, f"current on thread {th.num} (LWP {th.tid})", "running", th
        below, thread_leader = current, leader(target, th)
        for caller in callers(target, current):
            if caller == thread_leader:
                break
            yield caller, f"caller of {below:#x} (thread {th.num})", "suspended", th
            below = caller


def _request_roots(target, errors):
    """Each node's reqs_lock and tracked requests; a node whose list breaks is one line in
    errors, and the other nodes are still walked."""
    for bs in all_bdrv_states(target):
        name = node_name(bs)
        try:
            yield from _node_request_roots(bs, name)
        except MissingDebugInfo:
            raise
        except TargetError as e:
            errors.append(f"tracked requests of node {name}: {e}")


def _node_request_roots(bs, name):
    """:param bs: BlockDriverState"""
    if strip_typedefs(bs.reqs_lock.type_).name == "CoMutex":  # QEMU < 8.0
        holder = bs.reqs_lock.holder.value_()
        if holder:
            yield holder, f"holds reqs_lock of node {name}", "suspended"
        for co in comutex_waiters(bs.reqs_lock):
            yield co, f"waits for reqs_lock of node {name}", "suspended"
    for req in qlist_foreach(bs.tracked_requests, "list"):
        what = (f"{req.type.enum_name_() or req.type.value_()} offset {req.offset.value_()}"
                f" bytes {req.bytes.value_()}")
        if req.co.value_():
            yield req.co.value_(), f"tracked request on node {name}: {what}", "suspended"
        for co in coqueue_waiters(req.wait_queue):
            yield co.address_, (f"waits for serialising request on node {name}: "
                                f"{what}"), "suspended"


def _backend_roots(target):
    for blk in block_backends(target):
        name = backend_name(blk)
        for co in coqueue_waiters(blk.queued_requests):
            yield co.address_, f"queued on BlockBackend {name} while it is quiesced", \
                "suspended"


def _throttle_roots(target):
    # ThrottleDirection (QEMU >= 8.1) is a typedef of an anonymous enum
    directions = [n.removeprefix("THROTTLE_").lower()
                  for n, _ in enumerators(target, "ThrottleDirection") if n != "THROTTLE_MAX"] \
        or ["read", "write"]  # QEMU < 8.1: indexed by is_write
    for tg in throttle_groups(target):
        gname = tg.name.string_()
        for member in throttle_group_members(tg):
            reqs = member.throttled_reqs
            for i in range(strip_typedefs(reqs.type_).length or 0):
                d = directions[i] if i < len(directions) else str(i)
                for co in coqueue_waiters(reqs[i]):
                    yield co.address_, f"throttled {d} in throttle group {gname}", "suspended"


def _job_roots(target):
    for job in all_jobs(target):
        co = job.co.value_()
        if co:
            status = job.status.enum_name_() or job.status.value_()
            yield co, f"job {job.id.string_()} ({status})", "suspended"


def _scheduled_roots(target, threads):
    ctx_type = target.lookup_type("AioContext")
    for address, names, _ in known_contexts(target, threads):
        ctx = Object(target, ctx_type, address)
        label = f"AioContext {address:#x}" + (f" ({', '.join(names)})" if names else "")
        for co in qslist_foreach(ctx.scheduled_coroutines, "co_scheduled_next"):
            yield co.address_, f"scheduled on {label}", "suspended"


def _pools(target, threads, shared, per_thread):
    """[(label, pool list head)]: the shared pool variable, then each thread's TLS one."""
    pools = [(shared.replace("_", " "), target.variable(shared, file="qemu-coroutine.c"))]
    try:
        name, file = first_variable(target, co_tls(per_thread), ("qemu-coroutine.c",))
    except MissingDebugInfo:
        return pools
    for th in threads:
        try:
            pools.append((f"thread {th.num} {per_thread.replace('_', ' ')}",
                          target.variable(name, file=file, thread=th)))
        except TargetError:
            continue
    return pools


def _pool_roots(target, threads):
    if target.has_type("CoroutinePoolBatch"):  # QEMU >= 7.2.50: batches of coroutines
        for where, pool in _pools(target, threads, "global_pool", "local_pool"):
            for batch in qslist_foreach(pool, "next"):
                for co in qslist_foreach(batch.list, "pool_next"):
                    yield co.address_, f"idle in {where}", "pooled"
        return
    for where, pool in _pools(target, threads, "release_pool", "alloc_pool"):
        for co in qslist_foreach(pool, "pool_next"):
            yield co.address_, f"idle in {where}", "pooled"


@dataclass
class CoroutineList(Record):
    ERRORS = ('errors',)
    MISSING = ('missing',)
    coroutines: list
    errors: list   # roots that could not be walked (one line each)
    missing: list = field(default_factory=list)  # roots this program lacks, with the reason


def all_coroutines(target: Target, unwind: bool = True, pooled: bool = True) -> CoroutineList:
    """Every coroutine reachable from the known roots, merged by address: threads' current
    coroutines and callers, jobs, tracked requests and their waiters, BlockBackends'
    queued_requests, throttle group queues, AioContext scheduled lists and (with pooled)
    the coroutine pools."""
    target.lookup_type("CoroutineUContext")  # MissingDebugInfo: not QEMU (ucontext backend)
    reader = Coroutines(target)
    reader.guard  # noqa: B018 -- no pointer guard, no coroutine can be described
    threads = reader.threads
    found = {}
    errors = []

    def add(address, why, state, thread=None):
        rec = found.get(address)
        if rec is None:
            found[address] = rec = CoroutineRecord(address=address, state=state)
        if state == "running" or rec.state == "pooled":
            rec.state = state
        if thread is not None and state == "running":
            rec.thread = thread.num
        if why not in rec.waits:
            rec.waits.append(why)

    roots = [("threads", lambda: _thread_roots(target, threads)),
             ("jobs", lambda: _job_roots(target)),
             ("tracked requests", lambda: _request_roots(target, errors)),
             ("BlockBackend queues", lambda: _backend_roots(target)),
             ("throttle groups", lambda: _throttle_roots(target)),
             ("AioContexts", lambda: _scheduled_roots(target, threads))]
    if pooled:
        roots.append(("coroutine pools", lambda: _pool_roots(target, threads)))
    missing = []
    for what, walk in roots:
        try:
            for item in walk():
                add(*item)
        except MissingDebugInfo as e:
            missing.append(f"{what}: {e}")
        except TargetError as e:
            errors.append(f"{what}: {e}")
    out = []
    for address, rec in found.items():
        full = reader.describe(address, unwind=unwind and rec.state == "suspended")
        full.state, full.waits, full.thread = rec.state, rec.waits, rec.thread
        out.append(full)
    return CoroutineList(out, errors, missing)
