"""Event loop commands: aio, bhs, handlers, timers (upstream's names kept)."""

from ..walkers import aio
from ..commands import Arg, command
from ..render import aio as render

CTX = Arg("ctx", "an AioContext: its address, `main`, `iohandler` or an IOThread id",
          nargs="?")


def _listing(walk, target, args):
    return walk(target, args.ctx)  # NotFound when CTX names no AioContext


@command("aio", "Every AioContext with the thread running it and its counters.",
         text=render.render_contexts_text)
def contexts(target, args):
    return aio.contexts(target)


@command("bhs", "Enqueued bottom halves (bh_list and bh_slice_list) of every or one "
         "AioContext: callback, opaque, flags.", arguments=[CTX],
         text=render.render_bhs_text)
def bhs(target, args):
    return _listing(aio.bhs, target, args)


@command("handlers", "fd handlers of every or one AioContext: fd, read/write/poll "
         "callbacks, opaque.", arguments=[CTX], text=render.render_handlers_text)
def handlers(target, args):
    return _listing(aio.handlers, target, args)


@command("timers", "Active timers of main_loop_tlg and every (or one) AioContext: clock, "
         "expiry, callback.", arguments=[CTX], text=render.render_timers_text)
def timers(target, args):
    return _listing(aio.timers, target, args)
