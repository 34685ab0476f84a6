"""The text of every command on the QEMU-shaped C fixture (fixtures/corrupt/: QEMU's type,
member and variable names, with corrupted lists and wild pointers), pinned by golden files
in tests/golden/ that a person has read. Addresses and thread ids vary from run to run and
are normalised; everything else must stay as it is.

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
    return re.sub(r"build-id:\s+[0-9a-f]+", "build-id:     …", text)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c))
def test_text_output_matches_golden(command, corrupt):
    result = CliRunner().invoke(cli, [command[0], corrupt["kernel_core"], "-e", corrupt["exe"],
                                      *command[1:]], env={"NO_COLOR": "1"})
    assert result.exit_code in (0, 1), result.output
    text = normalise(result.stdout, corrupt)
    path = GOLDEN / f"{'-'.join(command)}.txt"
    if os.environ.get("QEMUGDB_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: QEMUGDB_UPDATE_GOLDEN=1 makes it"
    assert text == path.read_text()
