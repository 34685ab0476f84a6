"""Text of the triage report: one page to paste into a bug."""

from .coroutine import thread_body
from .table import error_text


def _field(name, value):
    return f"{name + ':':<14}{value}"


def render_report(rep, args=None, section_renderers=None):
    """The report; section_renderers maps each section title to its records' renderer."""
    highlight = getattr(args, "highlight", None)
    out = ["== Diagnosis", rep.diagnosis, ""] if rep.diagnosis else []
    out.append("== Process")
    out.append(_field("program", rep.executable or "?"))
    out.append(_field("QEMU", rep.qemu_version or "unknown"))
    out.append(_field("build-id", rep.build_id or "?"))
    out.append(_field("pid", rep.pid if rep.pid is not None else "?"))
    live = rep.live
    if live is not None and live.stopped:
        out.append(_field("stopped", f"{live.stopped_ms:.1f} ms for this report ({live.pages} "
                                     f"pages copied); {live.stops} stops, {live.total_ms:.1f} "
                                     f"ms in all"
                                     + ("" if live.consistent else ": possibly inconsistent")))
    elif live is not None:
        out.append(_field("stopped", "no (--no-stop): possibly inconsistent"))
    if rep.signal:
        fault = f" at {rep.fault_address:#x}" if rep.fault_address is not None else ""
        out.append(_field("signal", f"{rep.signal}{fault}"))
    else:
        out.append(_field("signal", "none (a running process)" if live is not None else
                          "none (a snapshot of a running process)"))
    if rep.abort_message:
        out.append(_field("abort", rep.abort_message))
    if rep.signature is not None:
        out.append(_field("signature", f"{rep.signature.hash}  {rep.signature.text}"))
    if rep.focus is not None:
        bt = rep.focus
        out += ["", f"== {rep.focus_why} {bt.num} (LWP {bt.tid})", *thread_body(bt)]
    for src in rep.source:
        out += ["", f"-- {src.file}:{src.line}"]
        code = "\n".join(text for _, text in src.lines)
        if highlight is not None:
            code = highlight(code, src.file)
        for (n, _), text in zip(src.lines, code.split("\n")):
            mark = ">" if n == src.line else " "
            out.append(f"{mark}{n:>6}  {text}")
    if rep.source_note:
        out += ["", f"-- source not shown: {rep.source_note}"]
    out += ["", "== Threads"]
    width = max((len(t.role) for t in rep.threads), default=0)
    for t in rep.threads:
        mark = "*" if t.crashed else " "
        co = f"  [coroutine {t.current_coroutine:#x}]" if t.current_coroutine else ""
        where = t.where or error_text(t.error)
        out.append(f"{mark}{t.num:>3}  LWP {t.tid:<8} {t.role:<{width}}  {where}{co}")
    for title, records in rep.sections.items():
        out += ["", f"== {title}", section_renderers[title](records, args)]
    if rep.not_applicable:
        out += ["", "== Not in this program"]
        out += [f"  {line}" for line in rep.not_applicable]
    if rep.partial:
        out += ["", "== Partial: some items could not be read"]
        out += [f"  {line}" for line in rep.partial]
    return "\n".join(out)
