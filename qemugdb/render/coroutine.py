"""Text for coroutine records: stacks as gdb's `bt` prints them, and coroutine lists."""

from .table import Shown, absent_notes, blank, error_text


def location_text(loc):
    """`func at file:line` (or `func from module`), as gdb's `bt` says it."""
    name = loc.function or "??"
    if loc.file:
        return f"{name} at {loc.file}:{loc.line}"
    if loc.module:
        return f"{name} from {loc.module}"
    return name


def frames_text(frames, first_level=0):
    """Frames as gdb's `bt` prints them: inline frames get their own level, and the address
    goes on the innermost line of each physical frame."""
    lines = []
    level = first_level
    for frame in frames:
        for i, loc in enumerate(frame.locations()):
            address = f"{frame.pc:#018x} in " if i == 0 else ""
            lines.append(f"#{level:<2} {address}{location_text(loc)}")
            level += 1
    return "\n".join(lines)


def _entry(rec):
    """The entry function's name: ? when unread, n/a when this QEMU's Coroutine has none."""
    rec = Shown(rec)
    return rec.entry or blank(rec.entry, "?")


def coroutine_header(rec):
    shown = Shown(rec)
    arg = "?" if shown.entry_arg is None else f"{shown.entry_arg:#x}"   # unread: an error
    entry = f"{rec.entry}({arg})" if rec.entry else _entry(rec)
    where = f", thread {rec.thread}" if rec.thread is not None else ""
    return f"Coroutine {rec.address:#x} {rec.state}{where}, entry {entry}"


def render_coroutine(rec, args=None):
    """`qemu coroutine EXPR`: the header, why it waits, its frames."""
    lines = [coroutine_header(rec)]
    lines += [f"  {why}" for why in rec.waits]
    if rec.error:
        lines.append("  " + error_text(rec.error))
    if rec.frames:
        lines.append(frames_text(rec.frames))
    elif rec.state == "running":
        lines.append("  (running: its frames are the thread's own, see `bt`)")
    return "\n".join(lines + absent_notes(("Coroutine", [rec])))


def render_coroutines(result, args=None):
    """`qemu coroutines`: one block per coroutine; idle pool entries counted unless
    --pooled."""
    show_pooled = bool(getattr(args, "pooled", False))
    lines = []
    pooled = 0
    for rec in result.coroutines:
        if rec.state == "pooled" and not show_pooled:
            pooled += 1
            continue
        line = f"{rec.address:#x}  {rec.state:<9}  {_entry(rec)}"
        if rec.suspended_in is not None:
            line += f"  in {location_text(rec.suspended_in)}"
        elif rec.state == "running":
            line += f"  on thread {rec.thread}"
        lines.append(line)
        lines += [f"    {why}" for why in rec.waits]
        if rec.error:
            lines.append("    " + error_text(rec.error))
    if pooled:
        lines.append(f"({pooled} idle coroutines in pools; --pooled lists them)")
    if not lines:
        lines.append("no coroutines found")
    lines += [error_text(e) for e in result.errors]
    lines += [f"n/a: {m}" for m in result.missing]
    return "\n".join(lines + absent_notes(("Coroutine", result.coroutines)))


def thread_body(t):
    """A ThreadBacktrace's stack, then each coroutine in its co->caller chain, as lines."""
    lines = [frames_text(t.frames)] if t.frames else []
    if t.current is not None:
        lines.append(f"(running coroutine {t.current.address:#x}, entry {_entry(t.current)})")
    for rec in t.callers:
        if rec.state == "leader":
            lines.append(f"Thread stack outside coroutines (leader {rec.address:#x}):")
        else:
            lines.append(f"Coroutine at {rec.address:#x} (caller, entry {_entry(rec)}):")
        if rec.error:
            lines.append("  " + error_text(rec.error))
        if rec.frames:
            lines.append(frames_text(rec.frames))
    if t.kernel_worker:
        lines.append("(a kernel worker thread: no user-level state)")
    if t.error:
        lines.append(error_text(t.error))
    return lines


def render_bt(threads, args=None):
    """`qemu bt`: each thread's stack, then each coroutine in its co->caller chain."""
    return "\n\n".join("\n".join([f"Thread {t.num} (LWP {t.tid}{', ' + t.name if t.name else ''}):",
                                   *thread_body(t)]) for t in threads)


def render_select(result, args=None):
    return result.message
