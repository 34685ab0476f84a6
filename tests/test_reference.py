"""docs/reference.md is what the registry says, and every registry command is bound both
in gdb (`help qemu`) and in the CLI."""

from pathlib import Path

from gdbrun import run_gdb
from qemu_coredump.main import main as cli
from qemu_coredump.reference import reference
from qemugdb.commands import REGISTRY

DOC = Path(__file__).resolve().parents[1] / "docs" / "reference.md"


def test_reference_matches_registry():
    assert DOC.read_text() == reference(), \
        "docs/reference.md is stale: python3 -m qemu_coredump.reference > docs/reference.md"


def test_every_command_bound_in_the_cli():
    want = {name for name, c in REGISTRY.items() if not c.gdb_only} | {"gdb", "signature"}
    assert set(cli.commands) == want


def test_every_command_bound_in_gdb():
    names = sorted(REGISTRY)
    texts, stderr = run_gdb([], [f"help qemu {name}" for name in names])
    for name, text in zip(names, texts):
        assert REGISTRY[name].help.split(":")[0].split(".")[0] in " ".join(text.split()), \
            (name, text, stderr)
