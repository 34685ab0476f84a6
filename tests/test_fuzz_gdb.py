"""The gdb backend's fuzzer (tests/fuzz/fuzz_gdb.py): a CI-sized deterministic run on the
small seeds, and the inputs that once broke a `qemu` gdb command (tests/fuzz/corpus/gdb/,
recipes with the commands they broke) replayed through gdb. Recipes on the small seeds
(corrupt-*, synthetic-*) run in the fast tier; recipes on the fixture cores are `slow`."""

import json
from pathlib import Path

import pytest

from fuzz import fuzz_cli, fuzz_gdb
from oracle import fixture_core  # noqa: E402

CORPUS = sorted((Path(__file__).parent / "fuzz" / "corpus" / "gdb").glob("*.json"))
SMALL = ("corrupt-kernel", "corrupt-gcore", "synthetic-kernel")


def test_smoke(tmp_path):
    """12 inputs (ELF and QEMU-object mutations) x every command gdb lists: none fails,
    and every `qemu` command, the convenience functions and `select off` ran."""
    args = fuzz_gdb.parser().parse_args(["-n", "12", "--seed", "15", "--jobs", "1",
                                         "--control-every", "5", "--out",
                                         str(tmp_path / "out"), "--seeds", *SMALL])
    summary = fuzz_gdb.fuzz(args)
    assert summary["inputs"].get("run", 0) >= 10, summary["inputs"]
    failures = [p.read_text() for p in (tmp_path / "out" / "failures").glob("*.json")]
    assert not summary["failure_classes"], failures[:3]
    assert summary["inputs"].get("control", 0) >= 2 and summary["control_outcomes"]
    gdb = fuzz_gdb.Gdb()
    try:
        names = fuzz_gdb.command_names(gdb)
        functions = fuzz_gdb.functions(gdb)
    finally:
        gdb.kill()
    keys = summary["by_command"]
    assert len(names) >= 15 and functions
    for name in names:
        assert any(k == name or k.startswith(name + " ") for k in keys), name
    for f in functions:
        assert any(f"${f}(" in k for k in keys), f
    assert sum(sum(v.values()) for v in keys.values()) >= 12 * 40
    assert any(k.endswith(" select off") for k in keys)


def _params():
    for path in CORPUS:
        seed = json.loads(path.read_text())["seed"]
        marks = () if seed.startswith(("synthetic-", "corrupt-")) else (pytest.mark.slow,)
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", list(_params()))
def test_corpus_input(path, tmp_path):
    """The recipe's commands, on its core rebuilt from a fresh seed, end clean (output or
    one error line) with gdb's state restored."""
    recipe = json.loads(path.read_text())
    name = recipe["seed"]
    if not name.startswith(("synthetic-", "corrupt-")):
        fixture_core(name)   # a missing fixture core fails here, saying how to make it
    seed = fuzz_cli.seeds([name], tmp_path)[name]
    gdb = fuzz_gdb.Gdb()
    try:
        runs, objects, _ = fuzz_gdb.prepare({name: seed})
        results = fuzz_gdb.run_recipe(gdb, recipe, seed, objects[name], runs[name], tmp_path)
    finally:
        gdb.kill()
    ran = {r["key"] for r in results}
    assert set(recipe["commands"]) <= ran | {"core-file"}, ran
    failures = [r for r in results if r["outcome"] == "failure"]
    assert not failures, [(r["command"], r["why"]) for r in failures]
