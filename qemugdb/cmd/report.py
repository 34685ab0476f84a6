"""The triage report: the process at a glance, with other commands' views as sections."""

from ..commands import REGISTRY, Arg, command
from ..render.report import render_report
from ..walkers.report import report as build_report

# Commands whose text output the report includes, under these titles.
SECTIONS = (("AioContexts", "aio"), ("Pending bottom halves", "bhs"), ("Jobs", "jobs"),
            ("Block graph", "block-graph"))


def _sections():
    return [(title, REGISTRY[name]) for title, name in SECTIONS if name in REGISTRY]


def _text(rep, args):
    renderers = {title: (lambda records, a, c=c: c.render(records, "text", c.default_args()))
                 for title, c in _sections()}
    return render_report(rep, args, renderers)


@command("report", "One page to paste into a bug: program, version, signal and assertion, "
         "the crash signature (to group cores of one bug), "
         "the crashing thread with its coroutine chain, every thread by role, AioContexts, "
         "pending bottom halves, jobs and the block graph.",
         arguments=[Arg("source_dir", "QEMU source tree, to show source lines",
                        flags=("--source-dir",))],
         text=_text)
def report(target, args):
    walks = [(title, lambda t, c=c: c.run(t, c.default_args())) for title, c in _sections()]
    return build_report(target, getattr(args, "source_dir", None), walks)
