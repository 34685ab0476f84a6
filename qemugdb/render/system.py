"""Text for the system-emulator records: the memory tree as HMP `info mtree -D` prints it,
and the lock status table as upstream's tcg-lock-status did."""

from .table import Shown, absent_notes, error_text

INDENT = "  "


def _region_line(r):
    r = Shown(r)
    nv = "nv-" if r.nonvolatile else ""
    text = f"{INDENT * r.level}{r.start:016x}-{r.end:016x} (prio {r.priority}, {nv}{r.type}): "
    if r.alias is not None:
        text += f"alias {r.name} @{r.alias} {r.alias_start:016x}-{r.alias_end:016x}"
    else:
        text += str(r.name)
    if r.enabled is False:
        text += " [disabled]"
    if r.error:
        text += " " + error_text(r.error)
    return text


def render_mtree(tree, args=None):
    lines = []
    for headings, regions in tree.trees:
        lines += headings
        lines += [_region_line(r) for r in regions]
        lines.append("")
    lines += [error_text(e) for e in tree.errors]
    lines += absent_notes(("MemoryRegion", [r for _, regions in tree.trees for r in regions]))
    return "\n".join(lines).rstrip("\n")


def _flag(value):
    return "n/a" if value is None else str(value).lower()


def render_lock_status(status, args=None):
    owner = ("unknown" if status.owner_tid is None else
             f"LWP {status.owner_tid}" if status.owner_tid else "free")
    lines = [f"BQL ({status.mutex_name or 'mutex n/a'}): owner {owner}; "
             f"per-thread flag {status.flag_name}",
             f"Thread, BQL ({status.flag_name}), Replay, Blocked?"]
    for t in status.threads:
        blocked = t.blocked if t.error is None else error_text(t.error)
        lines.append(f"{t.num}/{t.tid}, {_flag(t.bql)}, {_flag(t.replay)}, {blocked}")
    return "\n".join(lines)
