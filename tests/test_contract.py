"""The one result contract (qemugdb/result.py): every record a command returns declares which
of its fields carry errors, what is missing and notes; the CLI's exit status follows the
declared errors, never the names of keys in the JSON."""

import dataclasses
import importlib
import pkgutil
import re
import types

import pytest
from click.testing import CliRunner

import corefile
import qemugdb
from qemu_coredump.main import main as cli
from qemugdb import cmd as declarations
from qemugdb.commands import REGISTRY
from qemugdb.core.target import CoreTarget
from qemugdb.result import Record, problems
from qemugdb.target import Frame, Location, MissingDebugInfo
from qemugdb.walkers.block import Node, NodeDetail

# What a field's name says it is; each such field must have that role declared.
ROLES = {"ERRORS": re.compile(r"(^|_)(error|errors|partial)$"),
         "MISSING": re.compile(r"^(absent|missing|not_applicable)$"),
         "NOTES": re.compile(r"(^|_)(note|notes)$")}
# Values of the Target protocol that records hold: plain data, nothing can go wrong in them.
PROTOCOL_VALUES = (Location, Frame)
# Arguments that make each command run on the corrupt fixture (top is a node of it).
ARGUMENTS = {"bdrv": ["top"]}


def qemugdb_modules():
    for info in pkgutil.walk_packages(qemugdb.__path__, "qemugdb."):
        if not info.name.startswith(("qemugdb.gdb", "qemugdb.autoload")):  # gdb's own
            yield importlib.import_module(info.name)


def record_classes():
    return {obj for m in qemugdb_modules() for obj in vars(m).values()
            if isinstance(obj, type) and issubclass(obj, Record) and obj is not Record}


def test_every_walker_dataclass_is_a_record():
    for m in qemugdb_modules():
        if not m.__name__.startswith(("qemugdb.walkers.", "qemugdb.cmd.")):
            continue
        for obj in vars(m).values():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and \
                    obj.__module__ == m.__name__:
                assert issubclass(obj, Record), f"{m.__name__}.{obj.__name__} is no Record"


@pytest.mark.parametrize("record", sorted(record_classes(), key=lambda c: c.__qualname__),
                         ids=lambda c: c.__qualname__)
def test_declared_roles_are_fields_and_every_error_field_is_declared(record):
    fields = {f.name for f in dataclasses.fields(record)}
    for role, pattern in ROLES.items():
        declared = set(getattr(record, role))
        assert declared <= fields, f"{record.__name__}.{role} names no field"
        named = {f for f in fields if pattern.search(f)}
        assert named <= declared, f"{record.__name__}: {named - declared} not in {role}"


def test_a_detail_with_only_a_request_error_is_partial():
    """The bug the contract fixed: `qemu bdrv` exited 0 while printing its error."""
    node = Node(address=1, node_name="n")
    detail = NodeDetail(node, None, None, [], [], request_error="cannot read memory at 0x8")
    assert problems(detail) == ["cannot read memory at 0x8"]
    assert problems(NodeDetail(node, None, None, [], [])) == []


def walk_values(value, seen):
    """Every dataclass instance in a result, and every value no record should hold."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        seen.append(value)
        for f in dataclasses.fields(value):
            walk_values(getattr(value, f.name), seen)
    elif isinstance(value, (list, tuple)):
        for v in value:
            walk_values(v, seen)
    elif isinstance(value, dict):
        for v in value.values():
            walk_values(v, seen)
    else:
        assert value is None or isinstance(value, (str, int, float, bool, bytes)), \
            f"a record holds {type(value).__name__}: {value!r}"


def commands():
    declarations.load()
    return [c for c in REGISTRY.values() if not c.gdb_only]


@pytest.mark.parametrize("command", commands(), ids=lambda c: c.name)
def test_every_command_result_keeps_the_contract(command, corrupt):
    """Each command on the corrupt fixture: every record it returns is a Record or a
    protocol value, and the CLI exits 1 exactly when the records declare errors."""
    target = CoreTarget(corefile.open(corrupt["kernel_core"], corrupt["exe"]))
    given = ARGUMENTS.get(command.name, [])
    if command.name == "coroutine":   # one the census finds
        given = [hex(REGISTRY["coroutines"].run(target, None).coroutines[0].address)]
    values = dict(zip([a.name for a in command.arguments], given))
    args = command.default_args(format="text", highlight=None, **values)
    argv = [command.name, corrupt["kernel_core"], "-e", corrupt["exe"], *given]
    try:
        records = command.run(target, args)
    except MissingDebugInfo:   # a program without what the command reads: bad input
        result = CliRunner().invoke(cli, argv, env={"NO_COLOR": "1"})
        assert result.exit_code == 2, result.output
        assert command.name in ("iothreads", "tcg-lock-status"), "the fixture has it"
        return
    seen = []
    walk_values(records, seen)
    assert seen, f"{command.name} returned no records"
    for value in seen:
        assert isinstance(value, (Record, *PROTOCOL_VALUES)), \
            f"{command.name}: {type(value).__name__} is no Record"
    result = CliRunner().invoke(cli, argv, env={"NO_COLOR": "1"})
    assert result.exit_code == (1 if problems(records) else 0), (command.name, result.output)


@pytest.mark.parametrize("argv", [["bhs", "nosuch"], ["coroutine", "0"]])
def test_an_argument_naming_nothing_is_bad_input(corrupt, argv):
    """NotFound: exit 2 and one line. (`bdrv nosuch` on this fixture meets a broken node
    list first, so it cannot tell: partial, exit 1.)"""
    result = CliRunner().invoke(cli, [argv[0], corrupt["kernel_core"], "-e", corrupt["exe"],
                                      *argv[1:]], env={"NO_COLOR": "1"})
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1
    assert "no AioContext 'nosuch'" in result.stderr or "NULL coroutine" in result.stderr


def test_problems_reads_declared_fields_only():
    """A field named like an error but not declared is not read (so the declaration, which
    the tests above tie to the field names, is what decides)."""

    @dataclasses.dataclass
    class Odd(Record):
        ERRORS = ("why",)
        MISSING = ()
        why: str | None = None
        error: str | None = None

    assert problems(Odd(why="broken", error="not declared")) == ["broken"]
    assert problems([types.SimpleNamespace(error="no record")]) == []
