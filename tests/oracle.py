"""Readers of the oracle files captured beside each fixture core (never our own output)."""

import json
import re
from pathlib import Path

_THREAD = re.compile(r"^Thread (\d+) ")
# gdb prints "in  () at LIB" (an empty name) for some pcs without a symbol in gcore cores.
_FRAME = re.compile(r"^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(<signal handler called>|\S*)")


def parse_gdb_bt(text):
    """{thread number: [(function, pc or None)]} from `thread apply all bt` output;
    function is None for "??" (or no name), "<signal>" for the signal trampoline."""
    threads = {}
    frames = None
    for line in text.splitlines():
        m = _THREAD.match(line)
        if m:
            frames = threads[int(m.group(1))] = []
            continue
        m = _FRAME.match(line)
        if m and frames is not None and int(m.group(1)) == len(frames):
            name = m.group(3)
            name = {"??": None, "": None, "<signal handler called>": "<signal>"}.get(name, name)
            frames.append((name, int(m.group(2), 16) if m.group(2) else None))
    return threads


def gdb_bt(meta):
    """parse_gdb_bt of the core's oracle/gdb-bt.txt."""
    return parse_gdb_bt((Path(meta["oracle"]) / "gdb-bt.txt").read_text())


def qmp(meta, name):
    """The QMP answer captured before the dump, e.g. qmp(meta, "query-jobs")."""
    return json.loads((Path(meta["oracle"]) / f"{name}.json").read_text())


def named_block_graph(graph):
    """An x-debug-query-block-graph answer with nodes by (type, name) instead of ids (which
    differ between processes): (nodes, edges), sorted, to compare two answers."""
    names = {n["id"]: (n["type"], n["name"]) for n in graph["nodes"]}
    return sorted(names.values()), sorted(
        (names[e["parent"]], names[e["child"]], e["name"], tuple(sorted(e["perm"])),
         tuple(sorted(e["shared-perm"]))) for e in graph["edges"])
