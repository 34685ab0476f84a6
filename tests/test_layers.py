"""The import graph of qemugdb and the CLI, read from the source (AST): no cycles, and no
import upwards through the layers docs/design.md draws."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"qemugdb": ROOT / "qemugdb", "cli": ROOT / "cli"}

# The walkers' own layers, bottom first: a walker imports only from lower ones.
WALKER_LAYERS = [
    ("queue", "glib", "enums", "identity"),      # list macros, GLib, enums, program identity
    ("roots", "qom"),                            # QEMU's global roots; the QOM tree
    ("coroutine", "iothread"),                   # coroutine basics; IOThread objects
    ("aio", "job", "crash", "threads"),          # subsystems, thread roles, how it died
    ("block", "system"),                         # the block graph; memory tree and BQL
    ("census", "locks"),                         # every coroutine; every lock
    ("waits", "signature"),                      # the wait-for graph; a crash's signature
    ("report",),                                 # the one-page report
]
WALKER_RANK = {name: rank for rank, names in enumerate(WALKER_LAYERS) for name in names}
# Layers outside the walkers: what each may import of qemugdb (besides itself).
BELOW_WALKERS = ("qemugdb.errors", "qemugdb.obj", "qemugdb.result", "qemugdb.target")


def module_files():
    for package, path in PACKAGES.items():
        for file in sorted(path.rglob("*.py")):
            if file.name == "autoload-gdb.py":   # a script gdb runs, not a module
                continue
            parts = file.relative_to(path).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package, *parts)), file


def imports(name, file):
    """Every module `name` imports, at any depth of its code (function-local too)."""
    is_package = file.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import module`
    return out


MODULES = dict(module_files())
GRAPH = {name: {i for i in imports(name, file) if i in MODULES and i != name}
         for name, file in MODULES.items()}
RAW = {name: imports(name, file) for name, file in MODULES.items()}


def test_the_graph_is_read():
    """The reader sees the edges it must (so the tests below can fail)."""
    assert "qemugdb.walkers.roots" in GRAPH["qemugdb.walkers.block"]
    assert "qemugdb.target" in GRAPH["qemugdb.walkers.aio"]
    assert "gdb" in RAW["qemugdb.gdb.target"]
    assert "corefile" in RAW["qemugdb.core.target"]


def test_no_import_cycles():
    """Tarjan's strongly connected components: every one must be a single module."""
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == []


PACKAGE_NAMES = {n for n, f in MODULES.items() if f.name == "__init__.py"}


def _qemugdb_imports(name):
    """The qemugdb modules `name` imports (a package only for what `from PKG import m`
    takes from it: m, listed on its own)."""
    return {i for i in GRAPH[name] if i.startswith("qemugdb.") and i not in PACKAGE_NAMES}


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("qemugdb.walkers.")])
def test_walkers_import_only_lower_layers(name):
    short = name.rsplit(".", 1)[1]
    assert short in WALKER_RANK, f"{name}: place it in a layer of WALKER_LAYERS"
    for i in _qemugdb_imports(name):
        if i.startswith("qemugdb.walkers."):
            other = i.rsplit(".", 1)[1]
            assert WALKER_RANK[other] < WALKER_RANK[short], f"{name} imports {i} (upwards)"
        else:
            assert i in BELOW_WALKERS, f"{name} imports {i}: walkers see only the Target"
    raw = {i.split(".")[0] for i in RAW[name]}
    assert not raw & {"gdb", "corefile", "click", "cli"}, f"{name} imports {raw}"


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("qemugdb.render.")])
def test_renderers_see_records_only(name):
    for i in _qemugdb_imports(name):
        assert i.startswith("qemugdb.render."), f"{name} imports {i}"
    assert not {i.split(".")[0] for i in RAW[name]} & {"gdb", "corefile", "click"}


@pytest.mark.parametrize("name", BELOW_WALKERS)
def test_the_target_layer_knows_no_qemu(name):
    for i in _qemugdb_imports(name):
        assert i in BELOW_WALKERS, f"{name} imports {i}"
    assert "gdb" not in {i.split(".")[0] for i in RAW[name]}


@pytest.mark.parametrize("name", [n for n in MODULES
                                  if n.startswith(("qemugdb.cmd", "qemugdb.commands"))])
def test_declarations_bind_nothing(name):
    """Commands are declared once for both bindings: no gdb, no CLI, no backend."""
    for i in _qemugdb_imports(name):
        assert not i.startswith(("qemugdb.gdb", "qemugdb.core")), f"{name} imports {i}"
    assert not {i.split(".")[0] for i in RAW[name]} & {"gdb", "corefile", "click", "cli"}


def test_backends_and_bindings_stay_apart():
    for name in MODULES:
        qemugdb = _qemugdb_imports(name)
        if name.startswith("qemugdb.gdb."):
            assert not [i for i in qemugdb if i.startswith("qemugdb.core")], name
        if name.startswith("qemugdb.core."):
            assert not [i for i in qemugdb if i.startswith("qemugdb.gdb")], name
        if name.startswith("cli."):
            assert not [i for i in qemugdb if i.startswith("qemugdb.gdb")], name
            assert "gdb" not in {i.split(".")[0] for i in RAW[name]}, name
