"""The text of every command on the QEMU-shaped C fixture (fixtures/corrupt/: QEMU's type,
member and variable names, with corrupted lists and wild pointers), pinned by golden files
in tests/golden/ that a person has read. Addresses and thread ids vary from run to run and
are normalised, and so are the C library's frames (collapse_c_library): everything else
must stay as it is.

After a deliberate change of output: QEMUGDB_UPDATE_GOLDEN=1 python3 -m pytest
tests/test_golden.py, then read every changed file (git diff tests/golden) before committing.
"""

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from qemu_coredump.main import main as cli

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
COMMANDS = [["report"], ["bt", "--all"], ["coroutines"], ["aio"], ["bhs"], ["handlers"],
            ["timers"], ["block-graph"], ["bdrv", "top"], ["jobs"], ["mtree"]]
# (iothreads needs QOM's object tree, which the fixture does not build.)


def normalise(text, fixture):
    """Run-dependent values out: addresses, LWPs, pids, the fixture's and checkout's paths."""
    text = text.replace(str(Path(fixture["exe"]).parent), "<dir>").replace(str(ROOT), "<repo>")
    text = re.sub(r"0x[0-9a-f]{5,}", "0x…", text)
    # A thread id's digits vary in number: keep the column width, whatever they are.
    text = re.sub(r"(LWP )(\d+)( *)",
                  lambda m: m[1] + ("N".ljust(len(m[2]) + len(m[3])) if m[3] else "N"), text)
    text = re.sub(r"(pid:\s+)\d+", r"\g<1>N", text)
    text = re.sub(r"build-id:\s+[0-9a-f]+", "build-id:     …", text)
    return "\n".join(collapse_c_library(text.split("\n")))


# A frame line as frames_text prints it: level, address on a physical frame, then
# `func at file:line` or `func from module`.
FRAME = re.compile(r"^#(\d+)\s+((?:0x… in )?\S+(?: at (\S+):\d+| from (\S+))?)$")


def collapse_c_library(lines):
    """Each run of frames in a file or module not ours (the C library's: how many frames
    abort() takes, their names and source lines vary with the libc build) as one line
    `#N <C library>`, the frames after it renumbered; frames in the fixture's and the
    checkout's files, and frames with no file at all, stay as they are."""
    out, hidden = [], 0
    for line in lines:
        m = FRAME.match(line)
        if not m:
            out.append(line)
            continue
        level = int(m[1])
        hidden = 0 if level == 0 else hidden
        where = m[3] or m[4]
        if where and not where.startswith(("<repo>/", "<dir>/")):
            if out and out[-1].endswith(" <C library>"):
                hidden += 1
            else:
                out.append(f"#{level - hidden:<2} <C library>")
            continue
        out.append(f"#{level - hidden:<2} {m[2]}")
    return out


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c))
def test_text_output_matches_golden(command, corrupt):
    result = CliRunner().invoke(cli, [command[0], corrupt["kernel_core"], "-e", corrupt["exe"],
                                      *command[1:]], env={"NO_COLOR": "1"})
    assert result.exit_code == 1, result.output  # partial: each meets a corrupt list
    text = normalise(result.stdout, corrupt)
    path = GOLDEN / f"{'-'.join(command)}.txt"
    if os.environ.get("QEMUGDB_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: QEMUGDB_UPDATE_GOLDEN=1 makes it"
    assert text == path.read_text()


def test_another_libc_build_gives_the_same_text():
    """glibc 2.31's abort (two frames, other names and lines, or no debug info) and 2.36's
    (four frames) normalise alike; our frames and their file:line stay pinned."""
    ours = ["#{}  0x… in corrupt_stop at <repo>/fixtures/corrupt/main.c:5",
            "#{}  0x… in main at <repo>/fixtures/corrupt/main.c:15", "#0  0x… in ??"]
    glibc_2_36 = ["#0  0x… in __pthread_kill_implementation at ./nptl/pthread_kill.c:44",
                  "#1  __pthread_kill_internal at ./nptl/pthread_kill.c:78",
                  "#2  0x… in __GI_raise at ../sysdeps/posix/raise.c:26",
                  "#3  0x… in __GI_abort at ./stdlib/abort.c:79"]
    glibc_2_31 = ["#0  0x… in raise at ../sysdeps/unix/sysv/linux/raise.c:50",
                  "#1  0x… in abort at abort.c:79"]
    no_debug = ["#0  0x… in raise from /lib/x86_64-linux-gnu/libc.so.6",
                "#1  0x… in abort from /lib/x86_64-linux-gnu/libc.so.6"]
    want = ["#0  <C library>", ours[0].format(1), ours[1].format(2), ours[2]]
    for libc in (glibc_2_36, glibc_2_31, no_debug):
        n = len(libc)
        assert collapse_c_library(libc + [ours[0].format(n), ours[1].format(n + 1),
                                          ours[2]]) == want
    moved = ours[0].format(4).replace("main.c:5", "main.c:6")
    assert collapse_c_library(glibc_2_36 + [moved]) == ["#0  <C library>",
                                                        moved.replace("#4", "#1")]
