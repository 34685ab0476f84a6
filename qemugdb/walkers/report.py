"""The one-page triage report: what the program was, how it died, what every thread was
doing, and (from the other walkers) the event loop, jobs and block graph."""

import os
import signal as signals
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..result import Record
from ..target import Frame, MissingDebugInfo, NoDebugInfo, Target, TargetError
from . import coroutine, signature
from .crash import SI_USER, abort_message, is_crash, signal_name
from .identity import qemu_version
from .threads import iothread_ids, thread_role
from .waits import wait_graph

SOURCE_CONTEXT = 3


@dataclass
class ThreadSummary(Record):
    MISSING = ()
    num: int
    tid: int
    role: str
    where: str | None          # the innermost frame outside libc/glib, as function file:line
    current_coroutine: int | None = None
    crashed: bool = False
    error: str | None = None


@dataclass
class SourceLines(Record):
    ERRORS = ()
    MISSING = ()
    file: str
    line: int
    lines: list                # [(number, text)]


@dataclass
class Report(Record):
    ERRORS = ('partial',)
    MISSING = ('not_applicable',)
    NOTES = ('source_note',)
    executable: str | None
    qemu_version: str | None
    build_id: str | None
    pid: int | None
    signal: str | None
    fault_address: int | None
    abort_message: str | None
    focus: object = None       # coroutine.ThreadBacktrace shown in full: the thread that took
                               # the signal, else (a hang) the main loop's
    focus_why: str | None = None
    source: list = field(default_factory=list)   # SourceLines around the crashing frames
    source_note: str | None = None  # why the focus's frames show no source (one line)
    threads: list = field(default_factory=list)  # ThreadSummary
    sections: dict = field(default_factory=dict)  # title -> records of other walkers
    partial: list = field(default_factory=list)  # what could not be read: the report is partial
    not_applicable: list = field(default_factory=list)  # sections the program does not have
    diagnosis: str | None = None  # what a process that did not crash is stuck on (waits.py)
    signature: object = None      # signature.Signature of a crash, to group cores of one bug
    live: object = None           # a running process: how it was stopped (Process.live)


def _where(frames, executable):
    """The innermost frame of QEMU's own code, as `function at file:line`: a pc in the
    executable's module (whatever path it was given by), outside the coroutine machinery
    and outside headers: a header's function is a helper compiled into QEMU's code, inline
    or as a local copy (glibc's fortify wrappers such as ppoll, QEMU's static inlines)."""
    for f in frames:
        if f.location.module != executable:
            continue
        for loc in f.locations():
            if loc.function in coroutine.MACHINERY or (loc.file or "").endswith(".h"):
                continue
            return f"{loc.function} at {loc.file}:{loc.line}" if loc.file else loc.function
    return None


def source_lines(frames: list[Frame], source_dir: str, limit: int = 3) -> list[SourceLines]:
    """A few lines of source around each of the first `limit` frames with a file."""
    out = []
    for f in frames:
        if len(out) >= limit:
            break
        for loc in f.locations():
            if not loc.file or not loc.line:
                continue
            path = _find_source(source_dir, loc.file)
            if path is None:
                continue
            with open(path, errors="replace") as src:
                text = src.read().splitlines()
            lo = max(1, loc.line - SOURCE_CONTEXT)
            hi = min(len(text), loc.line + SOURCE_CONTEXT)
            out.append(SourceLines(loc.file, loc.line, [(n, text[n - 1]) for n in range(lo, hi + 1)]))
            break
    return out


def _find_source(source_dir, file):
    """file as DWARF names it (often ../dir/x.c relative to the build dir) under source_dir."""
    parts = [p for p in file.split("/") if p not in ("", ".", "..")]
    for i in range(len(parts)):
        path = os.path.join(source_dir, *parts[i:])
        if os.path.isfile(path):
            return path
    return None


def report(target: Target, source_dir: str | None = None,
           sections: Iterable[tuple[str, Callable[[Target], object]]] = ()) -> Report:
    """A Report; `sections` is [(title, walk(target))] of other walkers to include."""
    p = target.process()
    rep = Report(executable=p.executable, qemu_version=qemu_version(p.executable),
                 build_id=p.build_id, pid=p.pid,
                 signal=signal_name(p.signal) if p.signal else None,
                 fault_address=p.fault_address,
                 abort_message=abort_message(target) if p.signal == signals.SIGABRT else None,
                 partial=list(p.partial), live=p.live)
    threads = target.threads()
    traces = coroutine.backtraces(target, threads)
    iothreads = iothread_ids(target)
    for th, bt in zip(threads, traces):
        # A thread inside a coroutine: its own stack continues in the co->caller chain.
        role = thread_role(bt.frames + [f for c in bt.callers for f in c.frames])
        if bt.kernel_worker:
            role = "kernel worker"
        elif role == "iothread" and th.tid in iothreads:
            role = f"iothread {iothreads[th.tid]}"
        crashed = th.num == p.crashed_thread
        rep.threads.append(ThreadSummary(th.num, th.tid, role, _where(bt.frames, p.executable),
                                         bt.current.address if bt.current else None,
                                         crashed, bt.error))
        if crashed:
            rep.focus, rep.focus_why = bt, "Crashing thread"
        elif rep.focus is None and role == "main loop" and p.crashed_thread is None:
            rep.focus, rep.focus_why = bt, "Main loop thread"
    if is_crash(p):
        rep.signature = signature.signature(rep.signal, rep.abort_message, rep.focus.frames,
                                            p.executable)
        rep.partial += [f"Signature: {why}" for why in rep.signature.partial]
    if rep.focus is not None:
        frames = list(rep.focus.frames)
        for c in rep.focus.callers:
            frames.extend(c.frames)
        rep.source = source_lines(frames, source_dir) if source_dir else []
        where = _where(frames, p.executable)
        if not rep.source and where and " at " in where:
            rep.source_note = (f"{where} and the frames below it: no --source-dir given"
                               if not source_dir else f"{where}: its file is not under "
                               f"{source_dir}")
    if p.signal is None or p.signal_code == SI_USER:   # alive, gcore'd, or killed to dump
        try:
            rep.diagnosis = wait_graph(target).diagnosis
        except TargetError as e:
            rep.partial.append(f"Diagnosis: {e}")
    for title, walk in sections:
        try:
            rep.sections[title] = walk(target)
        except NoDebugInfo as e:   # unknown, not absent: the debug info is missing
            rep.partial.append(f"{title}: {e}")
        except MissingDebugInfo as e:  # e.g. a program without QEMU's block layer
            rep.not_applicable.append(f"{title}: {e}")
        except TargetError as e:
            rep.partial.append(f"{title}: {e}")
    return rep
