#!/usr/bin/env python3
"""Benchmark: `qemu-coredump report` on a QEMU core, against gdb and drgn doing that walk.

- corefile: the `qemu-coredump report CORE` command, cold (an empty cache directory each
  run) and warm (a cache primed by one earlier run).
- gdb: `gdb -batch` with qemugdb loaded running `qemu report`: the same walkers through
  gdb's Python API (qemugdb/gdb/target.py), gdb's own DWARF reader and unwinder.
- drgn 0.3: the script DRGN below, written for this comparison: every thread unwound with
  each frame's function and source line; the block graph (all_bdrv_states with children
  and parents edges, block_backends with their root and permissions); the jobs (with their
  BlockJob and the suspended coroutine's pc demangled from its jmp_buf and symbolized);
  the AioContexts (main loop, iohandler, the IOThreads found in QOM as the report does, and
  those nodes and jobs point to) with their BH lists, handlers, timers and scheduled
  coroutines. drgn cannot unwind a register set that is not a thread's in a user-space
  core nor read __thread variables there, so it symbolizes each coroutine's pc where the
  report unwinds whole coroutine stacks and reads each thread's current coroutine: drgn
  does somewhat less work.

Each run is a fresh process; wall time is the median of --runs, peak RSS the largest maxrss
(os.wait4). Prints a Markdown table for docs/performance.md.

    python3 tests/benchmarks/bench_report.py [--runs 5] [CORE-NAME ...]
"""

from bench_core import DRGN_WALK, bench_command, print_tables

DRGN = DRGN_WALK + r"""
def text(p):
    return p.string_().decode(errors="replace") if p.value_() else None


work = 0
# Threads: unwind, function and source of every frame.
guard = None
for th in prog.threads():
    trace = th.stack_trace()
    if guard is None and trace[0].registers().get("fs.base"):
        guard = prog.read_u64(trace[0].registers()["fs.base"] + 0x30)
    for frame in trace:
        try:
            frame.source()
        except LookupError:
            pass
        work += frame.name is not None


def co_pc(co):
    ctx = Object(prog, "CoroutineUContext *", co.value_())
    raw = ctx.env[0].__jmpbuf[7].value_() & (1 << 64) - 1
    rot = (raw >> 0x11 | raw << (64 - 0x11)) & (1 << 64) - 1
    return symbol(rot ^ guard)


# Block graph.
contexts = {{}}
for bs in chain(prog["all_bdrv_states"].tqh_first, "bs_list", "tqe_next"):
    record = [text(bs.node_name), bs.drv.format_name.value_(), bs.open_flags.value_(),
              bs.refcnt.value_()]
    contexts.setdefault(bs.aio_context.value_(), None)
    for c in chain(bs.children.lh_first, "next", "le_next"):
        record.append((text(c.name), text(c.bs.node_name), c.role.value_(), c.perm.value_(),
                       c.shared_perm.value_()))
    for c in chain(bs.parents.lh_first, "next_parent", "le_next"):
        record.append((text(c.name), c.klass.value_(), c.opaque.value_()))
    work += len(record)
for blk in chain(prog.object("block_backends").tqh_first, "link", "tqe_next"):
    root = blk.root
    work += len((text(blk.name), text(root.bs.node_name) if root.value_() else None,
                 blk.perm.value_(), blk.shared_perm.value_()))
# Jobs.
for job in chain(prog.object("jobs").lh_first, "job_list", "le_next"):
    bjob = Object(prog, "BlockJob *", job.value_())
    contexts.setdefault(job.aio_context.value_(), None)
    work += len((text(job.id), job.driver.job_type.value_(), job.status.value_(),
                 job.progress.current.value_(), job.progress.total.value_(),
                 bjob.speed.value_(), job.busy.value_(), job.paused.value_(),
                 co_pc(job.co) if job.co.value_() else None))


# AioContexts: the main loop's, iohandler, IOThreads from QOM (/objects), mon_iothread.
def ghash_values(table):
    size = prog.read_u64(table)
    flags = prog.read_u32(table + 24)
    keys, hashes, values = (prog.read_u64(table + o) for o in (32, 40, 48))
    width = 8 if flags & 2 else 4
    for i in range(size):
        if prog.read_u32(hashes + 4 * i) >= 2:
            yield int.from_bytes(prog.read(values + width * i, width), "little")


def qom_children(obj):
    for value in ghash_values(obj.properties.value_()):
        prop = Object(prog, "ObjectProperty *", value)
        if text(prop.type).startswith("child<"):
            yield text(prop.name), Object(prog, "Object *", prop.opaque.value_())


def type_name(obj):
    return text(obj.member_("class").type.name)


for name in ("qemu_aio_context", "iohandler_ctx"):
    contexts[prog.object(name, filename="main-loop.c").value_()] = name
anchor = Object(prog, "Object *", prog["mon_list"].tqh_first.chr.chr.value_())
while anchor.parent.value_():
    anchor = anchor.parent
objects = dict(qom_children(anchor))["objects"]
for name, child in qom_children(objects):
    if type_name(child) == "iothread":
        it = Object(prog, "IOThread *", child.value_())
        contexts[it.ctx.value_()] = name
        work += it.thread_id.value_() > 0
mon = prog["mon_iothread"]
if mon.value_():
    contexts[mon.ctx.value_()] = "mon_iothread"
for address in contexts:
    ctx = Object(prog, "AioContext *", address)
    work += ctx.notify_me.value_() + ctx.notified.value_() + ctx.poll_disable_cnt.value_()
    bhs = list(chain(ctx.bh_list.slh_first, "next", "sle_next"))
    for s in chain(ctx.bh_slice_list.sqh_first, "next", "sqe_next"):
        bhs += chain(s.bh_list.slh_first, "next", "sle_next")
    for bh in bhs:
        work += len((text(bh.name), symbol(bh.cb.value_()), bh.opaque.value_(),
                     bh.flags.value_()))
    for h in chain(ctx.aio_handlers.lh_first, "node", "le_next"):
        work += len((h.pfd.fd.value_(), symbol(h.io_read.value_()),
                     symbol(h.io_write.value_()), symbol(h.io_poll.value_())))
    for tl in ctx.tlg.tl:
        for t in chain(tl.active_timers, "next"):
            work += len((t.expire_time.value_(), symbol(t.cb.value_())))
    work += len(list(chain(ctx.scheduled_coroutines.slh_first, "co_scheduled_next",
                           "sle_next")))
print(len(contexts), work)
"""


def bench(meta, runs):
    return bench_command(meta, runs, "report", DRGN)


def main():
    print_tables(bench, "", "output", "drgn 0.3 script", "gdb -batch qemu report")


if __name__ == "__main__":
    main()
