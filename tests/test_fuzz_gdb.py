"""The gdb backend's fuzzer (tests/fuzz/fuzz_gdb.py): a CI-sized deterministic run on the
small seeds, and the inputs that once broke a `qemu` gdb command (tests/fuzz/corpus/gdb/,
recipes with the commands they broke) replayed through gdb. Recipes on the small seeds
(corrupt-*, synthetic-*) run in the fast tier; recipes on the fixture cores are `slow`."""

import json
from pathlib import Path

import pytest

from fuzz import fuzz_cli, fuzz_gdb
from oracle import fixture_core, qmp  # noqa: E402

CORPUS = sorted((Path(__file__).parent / "fuzz" / "corpus" / "gdb").glob("*.json"))
SMALL = ("corrupt-kernel", "corrupt-gcore", "synthetic-kernel")


def test_smoke(tmp_path):
    """12 inputs (ELF, QEMU-object and executable-DWARF mutations) x every command gdb
    lists: none fails, and every `qemu` command, the convenience functions and `select
    off` ran."""
    args = fuzz_gdb.parser().parse_args(["-n", "12", "--seed", "15", "--jobs", "1",
                                         "--dwarf-share", "0.25",
                                         "--control-every", "5", "--out",
                                         str(tmp_path / "out"), "--seeds", *SMALL])
    summary = fuzz_gdb.fuzz(args)
    assert summary["inputs"].get("run", 0) >= 10, summary["inputs"]
    assert summary["families"].get("dwarf: exe", 0) >= 2, summary["families"]
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


def _driver_names(gdb):
    out, err = gdb.run("qemu block-graph --format json")
    try:
        graph = json.loads(out)
    except ValueError:
        return err.strip() or out   # what gdb said instead
    return sorted(str(n["name"]) for n in fuzz_gdb._objects(graph, ("id", "name", "type"))
                  if n["type"] == "block-driver")


def _dwarf_switch(seed, role, tmp_path):
    """(driver names: the seed, the seed with ROLE's .debug_info cut to 1 byte (run_recipe),
    the seed again) in one gdb, and the results of the mutated input."""
    recipe = {"seed": seed.name, "ops": [{"op": "shdr", "target": role, "name": ".debug_info",
                                          "field": "sh_size", "value": 1}],
              "commands": ["qemu aio"]}
    tmp_path.mkdir()
    gdb = fuzz_gdb.Gdb()
    try:
        gdb.load(seed.exe, seed.core, seed.debug_dir)
        before = _driver_names(gdb)
        runs = [[("qemu aio", "qemu aio")]]
        results = fuzz_gdb.run_recipe(gdb, recipe, seed, None, runs, tmp_path)
        mutated = _driver_names(gdb)
        fuzz_gdb.run_input(gdb, seed.exe, seed.core, runs, seed.debug_dir)
        after = _driver_names(gdb)
    finally:
        gdb.kill()
    return before, mutated, after, results


def test_mutated_exe_dwarf_and_back(tmp_path):
    """An exe-DWARF recipe on the corrupt fixture: gdb reads the mutated executable (its
    .debug_info cut: no block graph), then the seed's own again (the graph of a fresh gdb)."""
    seed = fuzz_cli.seeds(["corrupt-kernel"], tmp_path)["corrupt-kernel"]
    fresh = fuzz_gdb.Gdb()
    try:
        fresh.load(seed.exe, seed.core)
        alone = _driver_names(fresh)
    finally:
        fresh.kill()
    before, mutated, after, results = _dwarf_switch(seed, "exe", tmp_path / "in")
    assert isinstance(alone, list) and len(alone) >= 3, alone
    assert before == after == alone
    assert not isinstance(mutated, list), mutated
    assert [r["outcome"] for r in results] in (["error"], ["gdb-dwarf"]), results


@pytest.mark.slow
def test_distro_seed_debug_dir_and_mutated_debug(tmp_path):
    """A distribution-shaped seed (stripped, separate debug info by build-id, dwz'd): gdb
    finds its debug info in the seed's debug directory (the driver nodes are QMP's named
    nodes; without it, no block graph), reads a mirror with the debug file mutated, then
    the seed's directory again."""
    name = "qsd-10.0-fedora-kernel"
    meta = fixture_core(name)
    seed = fuzz_cli.seeds([name], tmp_path)[name]
    named = sorted(n["node-name"] for n in qmp(meta, "query-named-block-nodes"))
    before, mutated, after, results = _dwarf_switch(seed, "debug", tmp_path / "in")
    assert before == after == named
    assert not isinstance(mutated, list), mutated
    assert [r["outcome"] for r in results] in (["error"], ["gdb-dwarf"]), results
    bare = fuzz_gdb.Gdb()
    try:
        bare.load(seed.exe, seed.core)
        assert not isinstance(_driver_names(bare), list)
    finally:
        bare.kill()


@pytest.mark.parametrize("out, err, dwarf, outcome", [
    ("", "Dwarf Error: bad offset (0x10) in compilation unit header [in module m]\n"
         "Dwarf Error: bad offset (0x10) in compilation unit header [in module m]\n"
         "qemu bt: no type 'Coroutine' in the debug info", True, "gdb-dwarf"),
    ("", "Dwarf Error: bad offset (0x10) in compilation unit header [in module m]\n"
         "qemu bt: no type 'Coroutine' in the debug info", False, "failure"),
    ("", "Dwarf Error: x [in module m]\nqemu bt: one\nqemu bt: two", True, "failure"),
    ("", "../../gdb/dwarf2/read.c:6390: internal-error: x: Assertion `y' failed.", True,
     "gdb-dwarf"),
    ("", "../../gdb/frame.c:1234: internal-error: x: Assertion `y' failed.", True, "failure"),
    ("", "Python Exception <class 'gdb.error'>: Dwarf Error: x [in module m]", True,
     "failure"),
    ("", "qemu bt: internal error: gdb.error: Dwarf Error: x", True, "failure"),
    ("", "Dwarf Error: x [in module m]", True, "error"),
])
def test_classify_gdb_dwarf(out, err, dwarf, outcome):
    """gdb's own DWARF reader's failures are "gdb-dwarf" only on mutated DWARF and only
    when nothing of ours (a Python exception, qemugdb's internal error) is in them."""
    assert fuzz_gdb.classify(out, err, dwarf)[0] == outcome


@pytest.mark.slow
def test_gdb_unwinding_on_unreadable_dwz_is_gdbs(tmp_path):
    """Run 3's input 15: the debug file's .gnu_debugaltlink cut so gdb cannot read the dwz
    file. The selected thread's chain is 3 frames from a fresh frame cache and 2 after any
    command that unwinds every thread, gdb's own `thread apply all bt` as much as
    `qemu iothreads`: gdb-dwarf, not a state gdb failed to get back from us."""
    name = "qsd-10.0-debian-gcore"
    fixture_core(name)
    seed = fuzz_cli.seeds([name], tmp_path)[name]
    recipe = {"seed": name, "ops": [{"op": "shdr", "target": "debug",
                                     "name": ".gnu_debugaltlink", "field": "sh_size",
                                     "value": 2147483647}], "commands": ["qemu iothreads"]}
    gdb = fuzz_gdb.Gdb()
    try:
        results = fuzz_gdb.run_recipe(gdb, recipe, seed, None,
                                      [[("qemu iothreads", "qemu iothreads")]], tmp_path)
    finally:
        gdb.kill()
    assert [(r["outcome"], r["why"].split(":")[0]) for r in results] == \
        [("gdb-dwarf", "state changed")], results
