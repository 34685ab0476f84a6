"""`--json` output keeps the schema docs/json.md documents: on every QEMU fixture core, each
command's JSON has only documented key paths, and every documented top-level key."""

import json
import subprocess

import pytest

import corelist
from json_paths import documented, output_paths
from qemugdb import cmd
from qemugdb.commands import REGISTRY
from oracle import fixture_core  # noqa: E402

pytestmark = pytest.mark.slow

SYSTEM_ONLY = {"mtree", "tcg-lock-status"}  # qemu-storage-daemon: exit 2, tested elsewhere


def run(*args):
    proc = subprocess.run(["qemu-coredump", *map(str, args), "--json"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr   # complete on every fixture QEMU core
    return proc.stdout


def arguments(command, core):
    """The arguments a command needs on this core, taken from QMP's answers beside it."""
    if command == "bdrv":
        return [json.loads(open(f"{core['oracle']}/query-named-block-nodes.json").read())[0]["node-name"]]
    if command == "coroutine":
        jobs = json.loads(run("jobs", core["core"]))["jobs"]
        return [hex(jobs[0]["co"])]
    return {"bt": ["--all"], "coroutines": ["--pooled"], "jobs": ["--stack"]}.get(command, [])


cmd.load()
COMMANDS = sorted(name for name, c in REGISTRY.items() if not c.gdb_only)
CASES = [(command, name) for command in COMMANDS for name in corelist.QEMU_NAMES
         if command not in SYSTEM_ONLY or name.startswith("system")]


@pytest.mark.parametrize("command,name", CASES)
def test_json_paths_are_documented(command, name):
    core = fixture_core(name)
    doc = documented().get(command)
    assert doc, f"docs/json.md does not document `{command}`"
    got = output_paths(run(command, core["core"], *arguments(command, core)))
    assert got <= doc, f"undocumented in docs/json.md: {sorted(got - doc)}"
    assert {p for p in doc if "." not in p and "[]" not in p} <= got
