"""Coroutine commands: coroutine, coroutine select, coroutines, bt."""

from dataclasses import dataclass

from ..walkers import census, coroutine as co
from ..commands import Arg, command
from ..render import coroutine as render
from ..result import Record
from ..target import NotFound, TargetError


def _selected_threads(target, all_threads):
    threads = target.threads()
    if not threads:
        raise TargetError("no threads: attach to a process or load a core")
    if all_threads:
        return threads
    return [target.selected_thread()]


@command("coroutine", "Show a coroutine's stack: qemu coroutine EXPR (a Coroutine *).",
         arguments=[Arg("expr", "a Coroutine * (expression or address)")],
         text=render.render_coroutine)
def coroutine(target, args):
    target.lookup_type("CoroutineUContext")  # MissingDebugInfo: no coroutines to read
    address = target.evaluate(args.expr)
    if not address:
        raise NotFound("NULL coroutine")
    reader = co.Coroutines(target)
    th = reader.running().get(address)
    if th is not None:
        rec = co.describe(target, address, reader.guard, th.registers, unwind=False)
        rec.state, rec.thread = "running", th.num
        rec.frames = target.unwind(th.registers)
        rec.waits.append(f"current on thread {th.num} (LWP {th.tid})")
        return rec
    rec = co.describe(target, address, reader.guard, target.selected_thread().registers)
    if rec.error:
        raise TargetError(f"coroutine {address:#x}: {rec.error}")
    return rec


@dataclass
class Selection(Record):
    """What `coroutine select` did: the coroutine now selected (None: the view is off)."""
    ERRORS = ()
    MISSING = ()
    address: int | None
    message: str


@command("coroutine select",
         "Show a coroutine's frames as gdb's own: qemu coroutine select EXPR | off. "
         "bt, frame N, up/down, info locals and p then work in the coroutine; the view "
         "goes off by itself before the program resumes.",
         arguments=[Arg("expr", "a Coroutine * (expression), or `off`")],
         gdb_only=True, text=render.render_select)
def coroutine_select(target, args):
    if args.expr == "off":
        was_on = target.deselect_coroutine()
        return Selection(None, "coroutine view off" if was_on else "")
    address = target.evaluate(args.expr)
    if not address:
        raise NotFound("NULL coroutine")
    thread = target.selected_thread()
    guard = co.pointer_guard(target)
    registers = co.saved_registers(target, address, guard, thread.registers)
    frame_text = target.select_coroutine(
        registers, f"[thread {thread.num} frames hidden: coroutine {address:#x}]")
    return Selection(address, frame_text)


@command("coroutines",
         "List every coroutine reachable from known roots (threads, jobs, tracked "
         "requests, throttle groups, AioContexts, pools), why it waits, where it is "
         "suspended.",
         arguments=[Arg("pooled", "list idle pool coroutines one by one",
                        flags=("--pooled",), is_flag=True)],
         text=render.render_coroutines)
def coroutines(target, args):
    return census.all_coroutines(target)


@command("bt",
         "Backtrace of the selected thread (all with -a), then of each coroutine in the "
         "co->caller chain of the coroutine running on it.",
         arguments=[Arg("all", "every thread", flags=("-a", "--all"), is_flag=True)],
         text=render.render_bt)
def bt(target, args):
    return co.backtraces(target, _selected_threads(target, args.all))
