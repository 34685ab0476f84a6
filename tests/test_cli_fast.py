"""The CLI's own pieces that need no core: progress on stderr, terminal safety, colour."""

import sys
import time

from qemu_coredump.session import progress
from qemu_coredump.style import colour, visible


def test_progress_only_when_slow_on_a_terminal(capsys, monkeypatch):
    with progress("reading slowly, not to a terminal", after=0.1):
        time.sleep(0.3)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress("reading slowly", after=0.1):
        time.sleep(0.3)
    with progress("reading quickly", after=0.5):
        pass
    time.sleep(0.6)
    err = capsys.readouterr().err
    assert err == "qemu-coredump: reading slowly\n"


def test_control_characters_from_the_core_are_made_visible():
    assert visible("node\x1b[31m\x07\x9b\r\ttab\nline") == "node\\x1b[31m\\x07\\x9b\\x0d\ttab\nline"


def test_colour_marks_headers_addresses_and_errors():
    text = colour("== Threads\n#0  0x00007f in __ppoll at x.c:4 <error: bad>")
    assert text.startswith("\x1b[1m== Threads\x1b[0m")
    assert "\x1b[34m0x00007f\x1b[0m" in text and "\x1b[33m__ppoll\x1b[0m" in text
    assert "\x1b[31m<error: bad>\x1b[0m" in text
