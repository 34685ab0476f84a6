"""The triage report and `info`: the process at a glance."""

from ..commands import Arg, command
from ..render.report import render_report
from ..report import report as build_report

# Other walkers' views included in the report: (title, walk(target), render(records, args)).
SECTIONS = []


def _text(rep, args):
    return render_report(rep, args, {title: render for title, _, render in SECTIONS})


@command("report", "One page to paste into a bug: program, version, signal and assertion, "
         "the crashing thread with its coroutine chain, every thread by role, AioContexts, "
         "jobs and the block graph.",
         arguments=[Arg("source_dir", "QEMU source tree, to show source lines",
                        flags=("--source-dir",))],
         text=_text)
def report(target, args):
    return build_report(target, getattr(args, "source_dir", None),
                        [(title, walk) for title, walk, _ in SECTIONS])
