"""Run gdb in batch mode with qemugdb loaded, as a user would (`gdb -batch -nx`)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOAD = ROOT / "qemugdb" / "gdb_load.py"
MARK = "@@qemugdb-test@@"


def run_gdb(target_args, commands, timeout=180, load=True):
    """Run `commands` (gdb command lines) in a fresh gdb on `target_args` (e.g. ["-p", PID]
    or [EXE, CORE]); returns the output of each command, split on markers."""
    argv = ["gdb", "-batch", "-nx", "-iex", "set style enabled off", "-iex", "set width 0",
            "-iex", "set height 0", "-iex", "set confirm off"]
    if load:
        argv += ["-ex", f"source {LOAD}"]
    for c in commands:
        argv += ["-ex", f"echo {MARK}\\n", "-ex", c]
    argv += ["-ex", f"echo {MARK}\\n"] + target_args
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    parts = proc.stdout.split(MARK + "\n")[1:-1]
    if len(parts) != len(commands):
        raise AssertionError(f"gdb output has {len(parts)} parts for {len(commands)} "
                             f"commands:\n{out}")
    return parts, proc.stderr


FRAME = re.compile(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\S+)(?: \(|\s|$)", re.M)


def frame_names(bt_text):
    """Function names of a `bt`-shaped text, in order ("??" for none: gdb prints a frame
    without a symbol as `?? ()`, or as ` ()` when it prints through a frame filter)."""
    return [m.group(2) for m in FRAME.finditer(bt_text.replace(" in  (", " in ?? ("))]
