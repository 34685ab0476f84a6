"""Text for `qemu locks` and `qemu waits`."""

from .table import error_text, errors_text, hexa, section, table


def _owner(lock):
    if lock.owner_thread:
        return f"thread {lock.owner_thread} (LWP {lock.owner_tid})"
    if lock.owner_tid:
        return f"LWP {lock.owner_tid}"
    if lock.holder:
        return f"coroutine {lock.holder:#x}"
    return None


def _state(lock):
    if lock.error:
        return error_text(lock.error)
    if lock.kind == "CoQueue":
        return f"{len(lock.waiting_coroutines)} queued"
    if lock.kind == "graph-lock":
        readers = ", ".join(f"{r['count']} {r['context']}" for r in lock.readers)
        return ("writer" if lock.locked else "no writer") + \
            (f", readers: {readers}" if readers else ", no readers")
    if lock.kind == "CoRwlock" and lock.count:
        return "write-locked" if lock.count < 0 else f"{lock.count} readers"
    text = "locked" if lock.locked else "free"
    return text + (f" (count {lock.count})" if lock.count else "")


def _waiters(lock):
    out = [f"thread {n}" for n in lock.waiting_threads]
    out += [f"co {a:#x}" for a in lock.waiting_coroutines]
    return ", ".join(out) if out else "-"


def _wait_text(w):
    if w is None:
        return "-"
    what = w.name or (hexa(w.address) if w.address is not None else w.detail or "")
    owner = (f" (owner thread {w.owner_thread})" if w.owner_thread else
             f" (owner LWP {w.owner_tid})" if w.owner_tid else "")
    if w.kind == "join":
        return f"{w.name}{owner.replace('owner', 'that is')}"
    if w.kind in ("drain", "aio-wait", "io", "syscall"):
        return w.detail or w.kind
    return f"{w.kind} {what}{owner}"


def interesting(lock):
    """A lock worth a line: held, waited for, or unreadable."""
    return bool(lock.locked or lock.waiting_threads or lock.waiting_coroutines or
                lock.holder or lock.readers or lock.error or lock.count)


def render_locks(result, args=None):
    show_all = bool(getattr(args, "all", False))
    out = []
    rows = [[st.num, st.tid, st.role, st.state, st.syscall, _wait_text(st.waits_for),
             st.where or error_text(st.error) or None,
             *([st.bql] if result.bql_flag else [])]
            for st in result.threads]
    headers = ["NUM", "LWP", "ROLE", "STATE", "SYSCALL", "WAITS FOR", "IN"]
    if result.bql_flag:
        headers.append(result.bql_flag.upper())
    out.append(section("Threads", table(headers, rows, indent="  ", right=("NUM",))))
    shown = [lk for lk in result.locks if show_all or interesting(lk) or lk.kind ==
             "QemuMutex" and lk.name in ("bql", "qemu_global_mutex")]
    rows = [[lk.kind, lk.name, hexa(lk.address), _state(lk), _owner(lk), _waiters(lk)]
            for lk in shown]
    body = table(["KIND", "NAME", "ADDRESS", "STATE", "OWNER", "WAITERS"], rows,
                 indent="  ") if rows else ""
    hidden = len(result.locks) - len(shown)
    if hidden:
        body += f"\n  ({hidden} more, free and without waiters: --all lists them)"
    out.append(section("Locks", body))
    notes = [f"  not in this program: {m}" for m in result.missing]
    if result.errors:
        notes.append(errors_text(result.errors))
    return "\n\n".join(out) + ("\n" + "\n".join(notes) if notes else "")


def render_waits(graph, args=None):
    nodes = {n.id: n for n in graph.nodes}
    out = [f"Diagnosis: {graph.diagnosis}"]
    cyc = []
    for i, cycle in enumerate(graph.cycles, 1):
        cyc.append(f"  deadlock {i}:")
        cyc += [f"    {graph.edges[e].waiter} waits for {graph.edges[e].what} -> "
                f"{graph.edges[e].holder}" for e in cycle]
    out.append(section("Deadlocks", "\n".join(cyc)))
    chains = []
    for c in graph.chains:
        chains.append("  " + " -> ".join(c.path) + f": {c.end}")
    out.append(section("Wait chains", "\n".join(chains)))
    rows = [[e.waiter, _where(nodes.get(e.waiter)), e.what, e.holder or "-"]
            for e in graph.edges]
    out.append(section("Wait-for edges", table(["WAITER", "IN", "WAITS FOR", "RELEASED BY"],
                                               rows, indent="  ") if rows else ""))
    notes = [f"  not in this program: {m}" for m in graph.missing]
    if graph.errors:
        notes.append(errors_text(graph.errors))
    return "\n\n".join(out) + ("\n" + "\n".join(notes) if notes else "")


def _where(node):
    return node.where if node is not None and node.where else "-"
