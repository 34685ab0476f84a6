"""Aligned text tables and the small formatting helpers the text renderers share."""

import re

# Control characters but newline and tab, and the surrogates standing for bytes that were
# not UTF-8: what a core's strings must not send to a terminal.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def visible(text):
    """text with control characters and undecodable bytes shown as \\xNN."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()) & 0xff:02x}", text)


class NotApplicable:
    """What text shows for a field this QEMU version does not have: n/a, in any format
    (f"{NA:#x}" too); false, so it marks nothing."""

    def __str__(self):
        return "n/a"

    def __format__(self, spec):
        return "n/a"

    def __bool__(self):
        return False


NA = NotApplicable()


class Shown:
    """A record as text renderers read it: the fields in its `absent` list read as NA, the
    others as they are (walkers leave an absent field None, which JSON shows as null)."""

    __slots__ = ("_rec",)

    def __init__(self, rec):
        self._rec = rec

    def __getattr__(self, name):
        return NA if name in self._rec.absent else getattr(self._rec, name)


def blank(value, text="-"):
    """What text shows in place of a false value: n/a when it is absent (NA), else `text`;
    for `value or blank(value)`."""
    return NA if value is NA else text


def absent_notes(*groups):
    """The footnotes saying what n/a means, one per (QEMU type, records) group in which a
    record lacks a field: "n/a: this QEMU's QEMUBH has no name"."""
    notes = []
    for what, records in groups:
        names = sorted({name for r in records for name in r.absent})
        if names:
            notes.append(f"n/a: this QEMU's {what} has no {', '.join(names)}")
    return notes


def cell(value):
    """A value as table text: None -> "-", bool -> yes/no, list -> comma-joined."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) if value else "-"
    return str(value).replace("\n", "\\n")


def hexa(value):
    """An address as 0x..., None as "-"."""
    return "-" if value is None else f"{value:#x}"


def table(headers, rows, indent="", right=()):
    """Columns aligned to the widest cell; columns named in `right` are right-aligned; the
    last column is not padded."""
    rows = [[cell(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers)] + rows:
        parts = []
        for i, text in enumerate(row):
            last = i == len(row) - 1
            if headers[i] in right:
                parts.append(text.rjust(widths[i]))
            else:
                parts.append(text if last else text.ljust(widths[i]))
        lines.append((indent + "  ".join(parts)).rstrip())
    return "\n".join(lines)


def section(title, body, empty="(none)"):
    """A titled block: `title`, then the body indented, or `empty`."""
    return f"{title}\n{body if body else '  ' + empty}"


def error_text(message):
    """The one way an error is shown: `<error: message>` ("" for no error)."""
    return f"<error: {message}>" if message else ""


def errors_text(errors):
    """A result's errors (walks that broke part way), one line each."""
    return "\n".join(error_text(e) for e in errors)
