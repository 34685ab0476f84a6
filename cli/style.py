"""Terminal text: control characters from the core made visible, colour on a terminal only."""

import os
import re
import sys

# Control characters but newline and tab, and the surrogates Python decodes bytes that are
# not UTF-8 to (file names from the core): both shown as \xNN.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
SURROGATE = re.compile(r"[\ud800-\udfff]")
RULES = [  # (pattern, SGR) applied line by line, first match per span wins
    (re.compile(r"^(==|--) .*$"), "1"),                       # section headers
    (re.compile(r"^Thread \d+ .*$"), "1;36"),                 # thread headers
    (re.compile(r"<error: .*?>(?=\s|$)"), "31"),             # bad items (render.table.error_text)
    (re.compile(r"\b0x[0-9a-f]+\b"), "34"),                   # addresses
    (re.compile(r"(?<= in )[A-Za-z_][\w.]*"), "33"),          # function names
]


def visible(text):
    """Control characters (but newline and tab) and undecodable bytes as \\xNN: a core
    must not drive the terminal."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()) & 0xff:02x}", text)


def encodable(text):
    """Text for files and pipes (DOT, JSON): bytes that were not UTF-8 as U+FFFD."""
    return SURROGATE.sub("\ufffd", text)


def use_colour(stream=sys.stdout):
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def colour(text):
    out = []
    for line in text.split("\n"):
        spans = []
        for pattern, sgr in RULES:
            for m in pattern.finditer(line):
                if m.end() > m.start() and all(m.end() <= a or m.start() >= b for a, b, _ in spans):
                    spans.append((m.start(), m.end(), sgr))
        for a, b, sgr in sorted(spans, reverse=True):
            line = f"{line[:a]}\x1b[{sgr}m{line[a:b]}\x1b[0m{line[b:]}"
        out.append(line)
    return "\n".join(out)
