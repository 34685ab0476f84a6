"""Text for the event loop: AioContexts, BHs, fd handlers, timers."""

from .table import Shown, absent_notes, error_text, errors_text, hexa, table


def _threads(threads):
    return ",".join(f"{t['num']} (LWP {t['tid']})" for t in threads) or "-"


def render_contexts_text(records, args=None):
    if not records:
        return "(no AioContexts found)"
    rows = []
    for r in map(Shown, records):
        rows.append([hexa(r.address), ", ".join(r.names) or "-", _threads(r.threads),
                     r.notify_me, r.notified, r.poll_disable_cnt, r.external_disable_cnt,
                     r.bhs, r.bhs_pending, r.handlers, r.timers, r.scheduled_coroutines,
                     error_text(r.error)])
    text = table(["AIOCONTEXT", "NAME", "THREAD", "NOTIFY_ME", "NOTIFIED", "POLL-OFF",
                  "EXT-OFF", "BHS", "PENDING", "HANDLERS", "TIMERS", "SCHEDULED", ""], rows,
                 right=("NOTIFY_ME", "POLL-OFF", "EXT-OFF", "BHS", "PENDING", "HANDLERS",
                        "TIMERS", "SCHEDULED"))
    return "\n".join([text] + absent_notes(("AioContext", records)))


def _tail(listing, text, what):
    parts = [text]
    if listing.errors:
        parts.append(errors_text(listing.errors))
    parts += absent_notes((what, listing.items))
    parts += [f"note: {n}" for n in listing.notes]
    return "\n".join(parts)


def render_bhs_text(listing, args=None):
    rows = [[hexa(b.ctx), "bh_list" if b.slice is None else f"slice {b.slice}",
             hexa(b.address), b.name, b.cb_symbol or hexa(b.cb), hexa(b.opaque),
             b.flag_names, error_text(b.error)]
            for b in map(Shown, listing.items)]
    text = table(["AIOCONTEXT", "LIST", "BH", "NAME", "CALLBACK", "OPAQUE", "FLAGS", ""],
                 rows) if rows else "(no enqueued BHs)"
    return _tail(listing, text, "QEMUBH")


def render_handlers_text(listing, args=None):
    rows = []
    for h in map(Shown, listing.items):
        rows.append([hexa(h.ctx), h.fd, h.callbacks.get("io_read"), h.callbacks.get("io_write"),
                     h.callbacks.get("io_poll"), hexa(h.opaque),
                     "deleted" if h.deleted else "", error_text(h.error)])
    text = table(["AIOCONTEXT", "FD", "IO_READ", "IO_WRITE", "IO_POLL", "OPAQUE", "", ""],
                 rows, right=("FD",)) if rows else "(no fd handlers)"
    return _tail(listing, text, "AioHandler")


def render_timers_text(listing, args=None):
    rows = [[t.group, t.clock, hexa(t.address), t.expire_time, t.scale,
             t.cb_symbol or hexa(t.cb), hexa(t.opaque), error_text(t.error)]
            for t in map(Shown, listing.items)]
    text = table(["GROUP", "CLOCK", "TIMER", "EXPIRE", "SCALE", "CALLBACK", "OPAQUE", ""],
                 rows, right=("EXPIRE", "SCALE")) if rows else "(no active timers)"
    return _tail(listing, text, "QEMUTimer")
