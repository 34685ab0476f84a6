"""docs/design.md's table of what differs between QEMU versions cannot drift from the builds
or the code.

Each version cell ends in its claims, an HTML comment (`<!-- claim; claim -->`), checked
against that version's real build (slow tier): its DWARF read by corefile, gdb's layout of
its types, its source tree. The cell's prose shows nothing the claims do not check (every
identifier in its code spans and every number of two digits or more, versions aside, is in
a claim), and every `module.name` the last column names is defined in qemugdb/walkers/
(fast tier).

Claims (PROGRAM: qemu-storage-daemon, or qemu-system-x86_64 after the word `system`):

    [system] var NAME[@FILE][ in FUNCTION][: TYPE]
                                       a variable (of the unit whose name ends with FILE;
                                       a static of FUNCTION there)
    [system] func NAME                 a function
    [system] type NAME                 a type ("enum ThrottleDirection" too)
    [system] enumerator NAME[ = N]     an enum constant (of value N)
    [system] T.M[: TYPE]               struct T has member M (of type TYPE)
    [system] length T.M = N            member M of T is an array of N
    [system] offset T.M = N            gdb: M is at byte N of T (as `ptype /o` shows)
    [system] sizeof T = N              gdb: sizeof(T) is N
    src FILE /REGEX/[ = N]             the build's source file matches REGEX (N times)
    [system] no CLAIM                  CLAIM (one without `= N` or `: TYPE`) does not hold

The paragraph after the table ends in `<!-- in every version: claims -->`, checked in every
version's build the same way.
"""

import ast
import re
from pathlib import Path

import pytest

from builds import VERSIONS, qemu_bin, qemu_dir
from gdbrun import run_gdb

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
WALKERS = ROOT / "qemugdb" / "walkers"
PROGRAMS = {None: "qemu-storage-daemon", "system": "qemu-system-x86_64"}
COMMENT = re.compile(r"<!--(.*?)-->", re.S)
# C words a cell's code spans may show without a claim naming them.
C_WORDS = {"static", "__thread", "struct", "enum", "int", "bool", "unsigned", "char", "void",
           "const", "define", "include", "block", "h", "c"}


def table():
    """(versions, rows) of design.md's version table: rows are (what, {version: cell}, how)."""
    lines = DESIGN.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| what | QEMU "))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    versions = [h.removeprefix("QEMU ") for h in header[1:-1]]
    assert header[-1] == "how the code handles it" and all(
        h.startswith("QEMU ") for h in header[1:-1]), header
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == len(header), f"design.md: a row with {len(cells)} cells: {line}"
        rows.append((cells[0], dict(zip(versions, cells[1:-1])), cells[-1]))
    return versions, rows


def every_version_claims():
    """The claims of the `<!-- in every version: ... -->` comment after the table."""
    found = re.findall(r"<!-- in every version:(.*?)-->", DESIGN.read_text(), re.S)
    assert len(found) == 1, "design.md: one `<!-- in every version: ... -->` comment expected"
    return split_claims(found[0])


def split_claims(text):
    return [c.strip() for c in text.split(";") if c.strip()]


def cell_claims(cell):
    return [c for comment in COMMENT.findall(cell) for c in split_claims(comment)]


VERSION_NAMES, ROWS = table()


# -- fast: the table's shape, its prose against its claims, the code it names ----------------

def test_every_cell_has_claims_that_parse():
    assert len(ROWS) >= 10, ROWS
    for what, cells, _how in ROWS:
        for version, cell in cells.items():
            claims = cell_claims(cell)
            assert claims, f"design.md, {what!r}, QEMU {version}: no <!-- claims -->"
            for claim in claims:
                parse(claim)
    for claim in every_version_claims():
        parse(claim)


def test_cell_prose_shows_only_what_its_claims_check():
    for what, cells, _how in ROWS:
        for version, cell in cells.items():
            claims = " ".join(cell_claims(cell))
            prose = COMMENT.sub("", cell)
            words = {w for span in re.findall(r"`([^`]+)`", prose)
                     for w in re.findall(r"[A-Za-z_]\w*", span)} - C_WORDS
            numbers = set(re.findall(r"(?<![\w.])(?:0x[0-9a-fA-F]+|\d\d+)(?![\w.])", prose))
            claimed = set(re.findall(r"\w+", claims))
            unchecked = sorted((words | numbers) - claimed)
            assert not unchecked, (f"design.md, {what!r}, QEMU {version}: the prose shows "
                                   f"{unchecked}, which no claim of the cell checks")


def walker_names():
    """{module: names defined at its top level} of qemugdb/walkers/*.py."""
    out = {}
    for path in WALKERS.glob("*.py"):
        names = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
        out[path.stem] = names
    return out


def test_code_column_names_exist_in_the_walkers():
    names = walker_names()
    named = [(what, module, name) for what, _cells, how in ROWS
             for module, name in re.findall(r"`(\w+)\.(\w+)`", how)]
    assert len(named) >= 10, named
    wrong = [f"{what!r}: `{module}.{name}`" for what, module, name in named
             if name not in names.get(module, ())]
    assert not wrong, "design.md names what qemugdb/walkers/ does not define:\n" + \
        "\n".join(wrong)


# -- slow: the claims against the builds --------------------------------------------------

CLAIM = re.compile(r"""(?:(?P<program>system)\s+)?(?P<no>no\s+)?(?:
      src\s+(?P<file>\S+)\s+/(?P<regex>.+)/
    | (?P<kind>var|func|type|enumerator|length|offset|sizeof)\s+(?P<name>[^:=]+?)
    | (?P<struct>\w+)\.(?P<member>\w+)
    )(?:\s*:\s*(?P<type>[^=]+?))?(?:\s*=\s*(?P<value>\d+))?""", re.X)


def parse(claim):
    m = CLAIM.fullmatch(claim)
    assert m, f"design.md: cannot parse the claim {claim!r}"
    d = m.groupdict()
    kind = "src" if d["file"] else d["kind"] or "member"
    if kind in ("length", "offset", "sizeof"):
        assert d["value"], f"design.md: {claim!r}: {kind} needs `= N`"
    else:
        assert not d["value"] or kind in ("enumerator", "src"), \
            f"design.md: {claim!r}: `= N` goes with length, offset, sizeof, enumerator, src"
    assert not d["type"] or kind in ("var", "member"), \
        f"design.md: {claim!r}: `: TYPE` goes with var and members"
    assert not (d["no"] and (d["type"] or d["value"])), \
        f"design.md: {claim!r}: `no` goes with a claim of existence"
    assert not (kind == "src" and d["program"]), f"design.md: {claim!r}: src has no program"
    return kind, d


class Build:
    """One QEMU version's build: DWARF (corefile) and gdb per program, its source tree."""

    def __init__(self, version, cache_dir):
        self.version, self.cache_dir = version, cache_dir
        self.src = Path(qemu_dir(version)) / "src"
        self._dwarf, self._gdb = {}, {}

    def exe(self, program):
        name = PROGRAMS[program]
        return qemu_bin(self.version, name) / name

    def dwarf(self, program):
        from corefile.dwarf import DebugInfo
        from corefile.elf import ElfImage
        if program not in self._dwarf:
            exe = str(self.exe(program))
            self._dwarf[program] = DebugInfo(exe, ElfImage(exe).build_id,
                                             cache_dir=str(self.cache_dir))
        return self._dwarf[program]

    def gdb_values(self, program, expressions):
        """{expression: the integer gdb prints for it} on the program (one gdb run)."""
        want = [e for e in expressions if (program, e) not in self._gdb]
        if want:
            parts, stderr = run_gdb([str(self.exe(program))], [f"print/d {e}" for e in want],
                                    load=False)
            for e, out in zip(want, parts):
                m = re.fullmatch(r"\$\d+ = (-?\d+)\n", out)
                self._gdb[program, e] = int(m.group(1)) if m else f"gdb: {out or stderr}"
        return {e: self._gdb[program, e] for e in expressions}


def expression(kind, name):
    """The gdb expression an offset or sizeof claim is about."""
    if kind == "sizeof":
        return f"sizeof({name})"
    struct, member = name.split(".")
    return f"(long)&(({struct} *)0)->{member}"


def check(build, claim):
    """None when the claim holds in the build, else what the build says."""
    kind, d = parse(claim)
    program, no, value = d["program"], bool(d["no"]), d["value"]
    if kind == "src":
        path = build.src / d["file"]
        if not path.is_file():
            return f"no file {d['file']} in {build.src}"
        count = len(re.findall(d["regex"], path.read_text(errors="replace"), re.M))
        if value is not None:
            return None if count == int(value) else f"{count} matches"
        return None if (count > 0) != no else f"{count} matches"
    if kind in ("offset", "sizeof"):
        e = expression(kind, d["name"].strip())
        got = build.gdb_values(program, [e])[e]
        return None if got == int(value) else f"gdb says {got}"
    di = build.dwarf(program)
    name = d["name"].strip() if d["name"] else None
    if kind == "var":
        var, _, function = name.partition(" in ")
        var, _, file = var.partition("@")
        found = di.find_variable(var, file or None, function or None)
        got = None if found is None else str(found[1])
    elif kind == "func":
        got = di.find_function(name)
    elif kind == "type":
        got = di.find_type(name)
    elif kind == "enumerator":
        enum = di.find_enumerator(name)
        got = None if enum is None else enum.enumerator(name)
    else:
        struct, member = (d["struct"], d["member"]) if kind == "member" else name.split(".")
        t = di.find_type(struct)
        if t is None:
            return f"no type {struct}"
        m = t.member(member)
        got = None if m is None else str(m.type) if kind == "member" else m.type.length
    if no or got is None:
        return None if (got is None) == no else f"found: {got}"
    want = d["type"] if kind in ("var", "member") and d["type"] else value
    return None if want is None or str(got) == want.strip() else f"found: {got}"


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSION_NAMES)
def test_claims_hold_in_the_build(version, tmp_path_factory):
    assert version in VERSIONS, f"design.md's table has QEMU {version}; tests/builds.py has no build"
    build = Build(version, tmp_path_factory.mktemp("cache"))
    claims = [(what, c) for what, cells, _how in ROWS for c in cell_claims(cells[version])]
    claims += [("in every version", c) for c in every_version_claims()]
    # gdb once per program for all the layout claims
    for program in PROGRAMS:
        build.gdb_values(program, [expression(k, d["name"].strip()) for _what, c in claims
                                   for k, d in [parse(c)]
                                   if k in ("offset", "sizeof") and d["program"] == program])
    wrong = [f"{what!r}: {claim!r}: {said}" for what, claim in claims
             if (said := check(build, claim)) is not None]
    assert not wrong, f"design.md's claims that QEMU {version}'s build contradicts:\n" + \
        "\n".join(wrong)
