#!/usr/bin/env python3
"""Benchmark: `qemu-coredump waits` (the wait-for graph, the Diagnosis's work) on a QEMU
core, against gdb and drgn doing that walk.

- corefile: `qemu-coredump waits CORE`, cold (an empty cache directory each run) and warm
  (a cache primed by one earlier run).
- gdb: `gdb -batch` with qemugdb loaded running `qemu waits`.
- drgn 0.3: the script DRGN below, written for this comparison: every thread unwound with
  its frames' names and, for a futex wait (drgn 0.3 has no orig_rax: told by the stack),
  the mutex at rdi (owner from glibc's __owner, name from the symbol table); the BQL and job_mutex
  owners; every node's in_flight, quiesce_counter, tracked requests (each coroutine's pc
  demangled from its jmp_buf and symbolized), its qcow2 state's CoMutex (holder, waiters);
  BlockBackends' queued_requests; throttle groups' queues; the graph lock's readers. drgn
  cannot unwind a coroutine's registers nor read __thread variables in a user-space core,
  so it does somewhat less work than `qemu waits` (which unwinds each waiting coroutine
  and reads each thread's current coroutine and BQL flag).

    python3 tests/benchmarks/bench_waits.py [--runs 5] [CORE-NAME ...]
"""

from bench_core import DRGN_WALK, bench_command, print_tables

DRGN = DRGN_WALK + r"""
work = 0
guard = None
for th in prog.threads():
    trace = th.stack_trace()
    regs = trace[0].registers()
    if guard is None and regs.get("fs.base"):
        guard = prog.read_u64(regs["fs.base"] + 0x30)
    names = [frame.name or "" for frame in trace]
    rdi = regs["rdi"]   # drgn 0.3 has no orig_rax: the futex wait is told by the stack
    if "__lll_lock_wait" in names:
        mutex = Object(prog, "pthread_mutex_t", address=rdi)
        work += len((symbol(rdi), mutex.__data.__owner.value_()))
    elif any("futex" in n for n in names[:4]):
        work += symbol(rdi) is not None
    work += len(names)


def co_pc(co):
    ctx = Object(prog, "CoroutineUContext *", co)
    raw = ctx.env[0].__jmpbuf[7].value_() & (1 << 64) - 1
    rot = (raw >> 0x11 | raw << (64 - 0x11)) & (1 << 64) - 1
    return symbol(rot ^ guard)


def comutex(m):
    global work
    work += m.locked.value_() + bool(m.holder.value_() and co_pc(m.holder.value_()))
    for head in (m.from_push, m.to_pop):
        for w in chain(head.slh_first, "next", "sle_next"):
            work += co_pc(w.co.value_()) is not None


def coqueue(q):
    global work
    for co in chain(q.entries.sqh_first, "co_queue_next", "sqe_next"):
        work += co_pc(co.value_()) is not None


for name in ("bql", "qemu_global_mutex", "job_mutex"):
    try:
        work += prog[name].lock.__data.__owner.value_() >= 0
    except KeyError:
        pass
qcow2 = prog.object("bdrv_qcow2").address_
for bs in chain(prog["all_bdrv_states"].tqh_first, "bs_list", "tqe_next"):
    work += bs.in_flight.value_() + bs.quiesce_counter.value_()
    for req in chain(bs.tracked_requests.lh_first, "list", "le_next"):
        work += co_pc(req.co.value_()) is not None
        coqueue(req.wait_queue)
    if bs.drv.value_() == qcow2:   # not format_name: drgn cannot read .rodata of a gcore
        comutex(Object(prog, "BDRVQcow2State *", bs.opaque.value_()).lock)
for blk in chain(prog.object("block_backends").tqh_first, "link", "tqe_next"):
    coqueue(blk.queued_requests)
for tg in chain(prog.object("throttle_groups").tqh_first, "list", "tqe_next"):
    for tgm in chain(tg.head.lh_first, "round_robin", "le_next"):
        for q in tgm.throttled_reqs:
            coqueue(q)
try:
    for lock in chain(prog.object("aio_context_list").tqh_first, "next_aio", "tqe_next"):
        work += lock.reader_count.value_()
    work += prog.object("has_writer").value_()
except KeyError:
    pass
print(len(list(prog.threads())), work)
"""


def bench(meta, runs):
    return bench_command(meta, runs, "waits", DRGN)


def main():
    print_tables(bench, "", "output", "drgn 0.3 script", "gdb -batch qemu waits")


if __name__ == "__main__":
    main()
