"""corefile.dwarf against gdb: types (ptype/o), variables, functions, lines, inline chains."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from corefile.dwarf import DebugInfo, DwarfError
from corefile.dwarf_format import ALT_BASE
from corefile.elf import ElfImage, find_alt_file

_OFF = re.compile(r"^/\*\s+(\d+)(?::\s*(\d+))?\s+\|\s+(\d+) \*/\s*(.*)$")
_SIZE_ONLY = re.compile(r"^/\*\s+(\d+) \*/\s*(.*)$")
_TOTAL = re.compile(r"/\* total size \(bytes\):\s+(\d+) \*/")
_CLOSE = re.compile(r"^\s*\}\s*(.*);$")
_NAME = re.compile(r"(?:\(\*+(\w+)\)\s*\(.*\)|(\w+)(?:\[\d*\])*(?: : \d+)?);$")


def before_dwz(binary, gdb=False):
    """The oracle's copy of binary: the program as linked, before dwz, for pyelftools
    (it does not follow dwz links) and, when dwz wrote DWARF 5's forms, for gdb too (gdb 13:
    "Cannot handle DW_FORM_strp_sup"). The code, and so every address, is the same."""
    binary = Path(binary)
    orig = binary.with_name(binary.name + ".before-dwz")
    if orig.exists() and (not gdb or ElfImage(str(binary)).section(".debug_sup")):
        return orig
    return binary


def gdb_batch(binary, commands, timeout=300, debug_dirs=None):
    """stdout of gdb -batch running commands on binary (stderr dropped); debug_dirs: gdb's
    debug-file-directory (a distribution-shaped binary's debug root)."""
    args = ["gdb", "-nx", "-batch", "-ex", "set width 0", "-ex", "set height 0"]
    if debug_dirs:
        args += ["-iex", f"set debug-file-directory {debug_dirs}"]
    for c in commands:
        args += ["-ex", c]
    args.append(str(before_dwz(binary, gdb=True)))
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          check=False).stdout


def ptype_o(binary, names, debug_dirs=None):
    """{type expression: (total size, [(offset, bit, size, name)])} from gdb's ptype/o.

    Each ptype output starts with "type = "; rows are members in print order, offset None
    for union members, name None for an expanded struct/union member (gdb prints its name
    on the closing line).
    """
    out = gdb_batch(binary, [f"ptype/o {n}" for n in names], debug_dirs=debug_dirs)
    blocks = re.split(r"^(?:/\* offset\s+\|\s+size \*/\s+)?type = .*$", out, flags=re.M)[1:]
    if len(blocks) != len(names):
        raise AssertionError(f"gdb printed {len(blocks)} types for {len(names)}:\n{out}")
    result = {}
    for name, block in zip(names, blocks):
        rows = []
        total = None
        opened = []  # row index of each expanded struct/union still open
        for line in block.splitlines():
            line = line.rstrip()
            m = _OFF.match(line)
            if m:
                off, bit, size, decl = m.groups()
                row = (int(off), None if bit is None else int(bit), int(size))
            else:
                m = _SIZE_ONLY.match(line)
                if m:
                    size, decl = m.groups()
                    row = (None, None, int(size))
            if m:
                rows.append(row + (_decl_name(decl),))
                if decl.endswith("{"):
                    opened.append(len(rows))
                continue
            m = _CLOSE.match(line)
            if m and opened:
                first = opened.pop()
                if m.group(1) != "" and not re.fullmatch(r"\w+", m.group(1)):
                    # The body of an anonymous type reached through an array or pointer:
                    # gdb prints member offsets from a stale base there, so drop them.
                    rows[first:] = [(None,) + r[1:] for r in rows[first:]]
                continue
            m = _TOTAL.search(line)
            if m:
                total = int(m.group(1))  # the last one is the outer type's
        result[name] = (total, rows)
    return result


def _decl_name(decl):
    if decl.endswith("{"):
        return None
    m = _NAME.search(decl)
    if not m:
        raise AssertionError(f"cannot parse gdb member line {decl!r}")
    return m.group(1) or m.group(2)


def our_rows(t):
    """The rows gdb's ptype/o prints for t, computed from our Type (same shape as ptype_o)."""
    rows = []
    _rows(t.strip_typedefs(), 0, rows)
    return t.size, rows


def _rows(t, base, rows, stale=False):
    for m in t.members:
        mt = m.type
        # Inside a body printed only because its type is anonymous (behind an array or
        # pointer), gdb expands anonymous member types only.
        expand = mt is not None and mt.kind in ("struct", "union") and \
            (not stale or mt.name is None)
        off = base + m.offset
        bit = None if m.bit_offset is None else m.bit_offset % 8
        size = mt.size if mt is not None and mt.size is not None else 0
        rows.append((None if t.kind == "union" or stale else off, bit, size,
                     None if expand else m.name))
        if expand:
            _rows(mt, off, rows, stale)
            continue
        # gdb prints the body of an anonymous struct/union behind arrays and pointers.
        inner = mt
        while inner is not None and inner.kind in ("array", "pointer"):
            inner = inner.target
        if inner is not None and inner is not mt and inner.kind in ("struct", "union") \
                and inner.name is None:
            rows[-1] = rows[-1][:3] + (None,)
            _rows(inner, 0, rows, True)


# ---------------------------------------------------------------------------------------
# Fast tier: a small C program compiled here, gdb on the same binary as the oracle.

MAIN_C = r"""
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

typedef struct Node Node;
typedef Node NodeAlias;
typedef NodeAlias *NodePtr;
typedef const volatile NodePtr CVNodePtr;

enum Color { RED, GREEN = 5, BLUE = -3 };
typedef enum { ANON_X = 1, ANON_Y } AnonEnum;
enum Wide { WIDE_TOP = 0xffffffffu };

struct Bits {
    unsigned a : 3;
    unsigned b : 5;
    int c : 7;
    _Bool flag : 1;
    unsigned long long wide : 40;
    char tail;
    uint16_t after : 9;
    const int cbits : 4;
};

union Value { int64_t i; double f; void *p; char bytes[12]; };

struct Node {
    int id;
    const char *name;
    volatile uint32_t counter;
    const struct Node *next;
    union {
        struct { int x, y; };
        struct { uint64_t lo; } split;
        double d;
    };
    struct {
        int inner_a;
        union { char c; short s; };
        struct Bits nested_bits;
    } named_inner;
    struct Bits bits;
    enum Color color;
    AnonEnum anon;
    const union Value value;
    Node *children[3][2];
    void (*callback)(Node *, int);
    CVNodePtr cv;
    long double ld;
    _Bool ok;
    char flex[];
};

typedef struct {
    NodePtr head;
    size_t count;
    union Value last;
} List;

struct WithFlex { size_t n; long data[]; };
struct ZeroLen { int n; int z[0]; };
typedef struct { char tag; } Local;   /* other.c has another Local */
Local main_local;

List global_list;
static Node static_node = { .id = 7 };
__thread int tls_counter = 3;
static __thread Node *tls_current;
const int const_global = 42;
int counter = 1;
extern struct WithFlex *flex_ptr;
struct WithFlex *flex_ptr;
struct ZeroLen zero_len;
enum Wide wide_value = WIDE_TOP;

static inline __attribute__((always_inline)) int inner(int v)
{
    global_list.count += v;
    return (int)global_list.count * 7 + tls_counter;
}

static inline __attribute__((always_inline)) int middle(int v)
{
    int r = inner(v + 1);
    static_node.id += r;
    return r * 3 + static_node.id;
}

__attribute__((noinline)) int outer(int v)
{
    int r = middle(v);
    tls_current = &static_node;
    return r + middle(r) + 1;
}

int other_file(int v);

int main(int argc, char **argv)
{
    Node *n = calloc(1, sizeof(Node) + 8);
    n->callback = 0;
    global_list.head = n;
    zero_len.n = argc;
    if (tls_current)
        n->id = 1;
    return outer(argc) + other_file(argc) + const_global + counter + (flex_ptr != 0)
           + (int)wide_value;
}
"""

OTHER_C = r"""
struct Node;                       /* only declared in this unit */
struct Node *opaque_node;
static int counter = 5;            /* same name as main.c's global */
static __thread long other_tls = 9;
typedef struct { long a, b, c; } Local;
Local other_local;

__attribute__((noinline)) int other_file(int v)
{
    counter += v;
    other_tls += counter;
    return counter + (int)other_tls + (opaque_node != 0);
}
"""

TYPES = ["struct Node", "struct Bits", "union Value", "List", "struct WithFlex",
         "struct ZeroLen", "Node", "NodeAlias"]


# "+dwz": processed as distributions do, a dwz multifile shared with a second program
# (GNU's .gnu_debugaltlink and DW_FORM_GNU_*_alt; "+dwz5": DWARF 5's .debug_sup and
# DW_FORM_*_sup), so that types and abstract functions live in partial units of both files.
DWZ = {"+dwz": [], "+dwz5": ["--dwarf-5"]}


@pytest.fixture(scope="module",
                params=["-gdwarf-5", "-gdwarf-4", "-gdwarf-5 -fdebug-types-section",
                        "-gdwarf-5 +dwz", "-gdwarf-4 +dwz", "-gdwarf-5 +dwz5"])
def program(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("dwarf")
    (d / "main.c").write_text(MAIN_C)
    (d / "other.c").write_text(OTHER_C)
    exe = d / "prog"
    flags = [f for f in request.param.split() if f not in DWZ]
    subprocess.run(["gcc", "-O2", "-g", *flags, "-no-pie", "-o", str(exe),
                    "main.c", "other.c"], cwd=d, check=True)
    dwz = [DWZ[f] for f in request.param.split() if f in DWZ]
    if dwz:
        subprocess.run(["gcc", "-O1", "-g", *flags, "-no-pie", "-o", "prog2",
                        "other.c", "main.c"], cwd=d, check=True)
        shutil.copy(exe, d / "prog.before-dwz")
        subprocess.run(["dwz", *dwz[0], "-m", "prog.dwz", "-M", "prog.dwz", "prog", "prog2"],
                       cwd=d, check=True)
        assert ElfImage(str(exe)).debugaltlink()[0] == "prog.dwz"
    return exe


def alt_file(program):
    """The dwz supplementary file of program, found as Module.dwarf finds it."""
    link = ElfImage(str(program)).debugaltlink()
    return link and find_alt_file(*link, str(program))


@pytest.fixture(scope="module")
def di(program, tmp_path_factory):
    return DebugInfo(str(program), None, cache_dir=str(tmp_path_factory.mktemp("cache")),
                     alt_path=alt_file(program))


def test_layouts_equal_gdb_ptype_o(program, di):
    expected = ptype_o(program, TYPES)
    for name in TYPES:
        t = di.find_type(name)
        assert t is not None, name
        assert our_rows(t) == expected[name], name


def test_sizes_enums_and_typedef_chains(program, di):
    names = ["int", "long double", "_Bool", "uint16_t", "NodePtr", "CVNodePtr", "AnonEnum",
             "enum Color", "enum Wide"]
    out = gdb_batch(program, [f"p sizeof({n})" for n in names])
    sizes = [int(v) for v in re.findall(r"^\$\d+ = (\d+)$", out, re.M)]
    assert sizes == [di.find_type(n).size for n in names]
    assert di.find_type("NodePtr").strip_typedefs().kind == "pointer"
    assert di.find_type("NodePtr").strip_typedefs().target.name == "NodeAlias"
    assert di.find_type("CVNodePtr").strip_typedefs().target.strip_typedefs().name == "Node"
    assert di.find_type("int").signed and not di.find_type("unsigned int").signed
    assert di.find_type("_Bool").kind == "bool" and di.find_type("double").kind == "float"
    out = gdb_batch(program, ["ptype enum Color", "ptype AnonEnum", "p/u WIDE_TOP"])
    assert "{RED, GREEN = 5, BLUE = -3}" in out and "{ANON_X = 1, ANON_Y}" in out
    assert di.find_type("enum Color").enumerators == [("RED", 0), ("GREEN", 5), ("BLUE", -3)]
    assert di.find_type("AnonEnum").strip_typedefs().enumerators == [("ANON_X", 1), ("ANON_Y", 2)]
    wide = int(re.search(r"= (\d+)", out.splitlines()[-1]).group(1))
    assert di.find_type("enum Wide").enumerator("WIDE_TOP") == wide
    assert di.find_type("struct Nope") is None and di.find_type("Nope") is None


def test_members_lookup_and_laziness(di):
    node = di.find_type("Node")
    assert node.member("x").offset == node.member("split").offset
    assert node.member("y").offset == node.member("x").offset + 4
    inner = node.member("named_inner")
    s = node.member("named_inner").type.member("s")
    assert s.offset == 4 and inner.type.member("inner_a").offset == 0
    assert node.member("nope") is None
    flex = node.member("flex")
    assert flex.type.kind == "array" and flex.type.length is None and flex.type.size == 0
    kids = node.member("children").type
    assert (kids.length, kids.target.length, kids.target.target.kind) == (3, 2, "pointer")
    # recursive through a pointer: the very same object
    assert kids.target.target.target.strip_typedefs() is node.strip_typedefs()
    assert str(kids) == "Node *[3][2]"
    assert node.member("value").type.kind == "union"  # const stripped
    bits = di.find_type("struct Bits")
    c = bits.member("c")
    assert (c.bit_size, c.bit_offset, c.offset) == (7, 8, 1)
    assert di.find_type("struct ZeroLen").member("z").type.length == 0


def test_declaration_resolves_to_definition_in_another_unit(di):
    addr, t = di.find_variable("opaque_node")
    assert t.kind == "pointer" and t.target.size == di.find_type("struct Node").size
    assert t.target.member("bits") is not None


def _info_address(program, names):
    out = gdb_batch(program, [f"info address {n}" for n in names])
    return out.splitlines()


def test_variables_equal_gdb(program, di):
    lines = _info_address(program, ["global_list", "static_node", "flex_ptr", "const_global",
                                    "tls_counter", "tls_current", "main", "outer"])
    got = {}
    for line in lines:
        m = re.match(r'Symbol "(\w+)" is static storage at address (0x[0-9a-f]+)', line)
        if m:
            got[m.group(1)] = int(m.group(2), 16)
        m = re.match(r'Symbol "(\w+)" is a thread-local variable at offset (0x[0-9a-f]+)', line)
        if m:
            got[m.group(1)] = ("tls", int(m.group(2), 16))
        m = re.match(r'Symbol "(\w+)" is a function at address (0x[0-9a-f]+)', line)
        if m:
            got[m.group(1)] = int(m.group(2), 16)
    assert len(got) == 8, lines
    for name in ("global_list", "static_node", "flex_ptr", "const_global", "tls_counter",
                 "tls_current"):
        addr, _t = di.find_variable(name)
        assert addr == got[name], name
    assert di.find_function("main") == got["main"]
    assert di.find_function("outer") == got["outer"]
    assert di.find_function("inner") is None  # only ever inlined
    assert di.find_variable("global_list")[1].name == "List"
    assert di.find_variable("tls_current")[1].target.name == "Node"


def test_file_static_variables(program, di):
    """main.c's global counter and other.c's static one. The oracle is the ELF symbol
    table: with -fdebug-types-section gdb 13 answers main.c's for 'other.c'::counter."""
    symbols = subprocess.run(["readelf", "-sW", str(program)], capture_output=True,
                             text=True).stdout
    counters = {m.group(2): int(m.group(1), 16) for m in re.finditer(
        r"^\s*\d+: ([0-9a-f]+)\s+4 OBJECT\s+(LOCAL|GLOBAL)\s+\S+\s+\S+ counter$",
        symbols, re.M)}
    main_addr, other_addr = counters["GLOBAL"], counters["LOCAL"]
    out = gdb_batch(program, ["info address other_tls"])
    assert di.find_variable("counter", file="main.c")[0] == main_addr
    assert di.find_variable("counter", file="other.c")[0] == other_addr
    assert di.find_variable("counter")[0] == main_addr  # the external one wins
    tls = int(re.search(r"thread-local variable at offset (0x[0-9a-f]+)", out).group(1), 16)
    assert di.find_variable("other_tls", file="other.c")[0] == ("tls", tls)
    assert di.find_variable("counter", file="nope.c") is None
    assert di.find_variable("no_such_variable") is None


def _text_pcs(di, name):
    """Every line-table address inside function name."""
    start = di.find_function(name)
    unit = di._unit_for_pc(start)
    table = di._line_table(unit)
    func = di._function_at(unit, start)
    _tag, attrs, _c, _n = di.reader.read_die(unit, func)
    (lo, hi), = di.reader.die_ranges(unit, attrs)
    return sorted({a for _s, _e, addrs, _r in table.seqs for a in addrs if lo <= a < hi})


def test_lines_equal_gdb_info_line(program, di):
    pcs = []
    for f in ("main", "outer", "other_file"):
        pcs += _text_pcs(di, f)
    pcs += [p + 1 for p in pcs]  # inside instructions too
    assert_lines_equal_gdb(program, di, pcs)


def assert_lines_equal_gdb(binary, di, pcs, debug_dirs=None):
    """locate(pc)'s file and line equal gdb's `info line *pc` for every pc."""
    out = gdb_batch(binary, [f"info line *{pc:#x}" for pc in pcs], debug_dirs=debug_dirs)
    lines = [ln for ln in out.splitlines() if ln.startswith(("Line ", "No line"))]
    assert len(lines) == len(pcs)
    for pc, line in zip(pcs, lines):
        m = re.match(r'Line (\d+) of "([^"]+)"', line)
        loc = di.locate(pc)
        if m is None:
            assert loc is None or loc.line is None, (hex(pc), line)
        else:
            assert loc is not None and (loc.file, loc.line) == (m.group(2), int(m.group(1))), \
                (hex(pc), line, loc)


def _inline_starts(di, unit, off):
    """Start addresses of every inlined call (at any depth) under the DIE at off."""
    starts = set()
    for child, tag, attrs in di.children(unit, off):
        if tag == 0x1D:  # DW_TAG_inlined_subroutine
            starts.update(a for a, _b in di.reader.die_ranges(unit, attrs))
        if tag in (0x1D, 0x0B):  # and lexical blocks
            starts |= _inline_starts(di, unit, child)
    return starts


def test_inline_chains_equal_gdb_bt(program, di):
    """Stop the program at pcs inside inlined code (not where an inlined call starts: gdb
    hides those frames at a breakpoint) and compare gdb's bt with locate()."""
    outer = di.find_function("outer")
    unit = di._unit_for_pc(outer)
    starts = _inline_starts(di, unit, di._function_at(unit, outer))
    pcs = [pc for pc in _text_pcs(di, "outer") if pc not in starts]
    chains = {pc: [tuple(f) for f in di.locate(pc).inlined_chain] for pc in pcs}
    assert any(len(c) == 3 for c in chains.values())  # inner <- middle <- outer somewhere
    out = gdb_batch(program, [f"break *{pc:#x}" for pc in pcs] + ["run"]
                    + ["bt", "continue"] * len(pcs))
    stops = {}
    pc = None
    for line in out.splitlines():
        m = re.match(r"^Breakpoint (\d+), ", line)
        if m:
            pc = pcs[int(m.group(1)) - 1]
            stops[pc] = []
            continue
        m = re.match(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\w+) \(.*\) at (\S+):(\d+)$", line)
        if m and pc is not None:
            stops[pc].append((m.group(1), m.group(2), int(m.group(3))))
    assert set(stops) == set(pcs), out
    for pc, chain in chains.items():
        assert stops[pc][:len(chain)] == chain, (hex(pc), stops[pc])
        assert stops[pc][len(chain)][0] == "main"


def test_cache_round_trip(program, tmp_path):
    before = sorted(p.name for p in program.parent.iterdir())
    alt = alt_file(program)
    cold = DebugInfo(str(program), "00ff", cache_dir=str(tmp_path), alt_path=alt)
    t = cold.find_type("struct Node")
    cached = list((tmp_path / "dwarf").iterdir())
    assert [p.name for p in cached] == ["00ff.index"]
    warm = DebugInfo(str(program), "00ff", cache_dir=str(tmp_path), alt_path=alt)
    assert warm.index.types == cold.index.types and warm.index.tags == cold.index.tags
    assert warm.find_type("struct Node").size == t.size
    assert sorted(p.name for p in program.parent.iterdir()) == before, \
        "nothing written next to the input"


def dwz_made(program):
    """dwz wrote the program's supplementary file (the +dwz variants), seen by the file
    system, not by our reader."""
    return (program.parent / "prog.dwz").is_file()


def test_dwz_supplementary_file_missing(program, tmp_path):
    """Without its dwz file: one DwarfError naming the file and build-id it wants."""
    link = ElfImage(str(program)).debugaltlink()
    if not dwz_made(program):
        assert link is None and alt_file(program) is None
        return
    with pytest.raises(DwarfError, match=f"prog.dwz \\(build-id {link[1].hex()}\\)"):
        DebugInfo(str(program), None, cache_dir=str(tmp_path)).find_type("Node")


def test_dwz_units_are_shared(program, di):
    """The dwz variants really moved definitions into the supplementary file (else they
    would test nothing new): struct Node is defined there, and main.c's unit imports it."""
    if not dwz_made(program):   # every definition is the executable's own
        assert alt_file(program) is None and di.index.tags[(0x13, b"Node")] < ALT_BASE
        return
    assert alt_file(program) == str(program.parent / "prog.dwz")
    assert di.index.tags[(0x13, b"Node")] >= ALT_BASE
    assert di.find_type("Local", file="other.c").size == 24  # other.c's, by its imports
    assert di.find_type("Local", file="main.c").size == 1


def test_not_debug_info(tmp_path):
    (tmp_path / "junk").write_bytes(b"not an elf")
    with pytest.raises(DwarfError):
        DebugInfo(str(tmp_path / "junk"), None).find_type("int")
    for path in (tmp_path / "missing", tmp_path):
        with pytest.raises(DwarfError, match="cannot read"):
            DebugInfo(str(path), None).index
    subprocess.run(["gcc", "-O2", "-o", str(tmp_path / "nodebug"), "-x", "c", "-"],
                   input="int main(void){return 0;}", text=True, check=True)
    with pytest.raises(DwarfError):
        DebugInfo(str(tmp_path / "nodebug"), None).find_type("int")


def _section(path, name):
    """(file offset, size) of an ELF section, from readelf."""
    out = subprocess.run(["readelf", "-SW", str(path)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.replace("[ ", "[").split()
        if name in parts:
            i = parts.index(name)
            return int(parts[i + 3], 16), int(parts[i + 4], 16)
    raise AssertionError(f"no {name} in {path}")


def _exercise(path):
    di = DebugInfo(str(path), None)
    for name in ("struct Node", "List", "struct Bits", "enum Color"):
        t = di.find_type(name)
        if t is not None:
            for m in t.strip_typedefs().members:
                m.type.size if m.type is not None else None
    for name in ("global_list", "tls_counter", "counter"):
        di.find_variable(name)
    main = di.find_function("main") or 0x401000
    for pc in range(main, main + 64, 3):
        di.locate(pc)


@pytest.mark.parametrize("section", [".debug_info", ".debug_abbrev", ".debug_line",
                                     ".debug_str", ".debug_aranges"])
def test_corrupt_debug_info_gives_dwarf_error(program, tmp_path, section):
    """Damaged sections: every lookup answers or raises DwarfError; no other exception,
    no hang (each run is bounded by an alarm)."""
    import random
    import signal
    try:
        start, size = _section(program, section)
    except AssertionError:
        pytest.fail(f"fixture lacks {section}")
    original = program.read_bytes()
    rng = random.Random(section)

    def timeout(_sig, _frame):
        raise TimeoutError("lookup hung on corrupt input")

    signal.signal(signal.SIGALRM, timeout)
    for i in range(12):
        data = bytearray(original)
        if i % 3 == 0:  # a run of zeros
            at = start + rng.randrange(size)
            data[at:at + 64] = bytes(len(data[at:at + 64]))
        elif i % 3 == 1:  # scattered random bytes
            for _ in range(20):
                data[start + rng.randrange(size)] = rng.randrange(256)
        else:  # cut the file inside the section
            data = data[:start + rng.randrange(size)]
        bad = tmp_path / f"bad{i}"
        bad.write_bytes(bytes(data))
        signal.alarm(20)
        try:
            _exercise(bad)
        except DwarfError:
            pass
        finally:
            signal.alarm(0)
    assert program.read_bytes() == original


def test_parallel_index_equals_serial(program, monkeypatch):
    """The index built by forked scanners is the one a single scan builds."""
    from corefile import dwarf_index
    alt = alt_file(program)
    serial = DebugInfo(str(program), None, alt_path=alt).index
    monkeypatch.setattr(dwarf_index, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(dwarf_index.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(dwarf_index.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    forks = []
    real_fork = dwarf_index.os.fork
    monkeypatch.setattr(dwarf_index.os, "fork", lambda: forks.append(1) or real_fork())
    parallel = DebugInfo(str(program), None, alt_path=alt).index
    assert forks and parallel.to_data() == serial.to_data()


def test_c_spellings_of_types(program, di):
    """find_type takes what gdb's ptype takes for base types, qualifiers and pointers."""
    names = ["unsigned long", "unsigned", "long long", "unsigned short", "short", "signed",
             "long double", "const char *", "void *", "struct Node *", "Node **", "_Bool",
             "unsigned long long int", "volatile int"]
    out = gdb_batch(program, [f"p sizeof({n})" for n in names])
    sizes = [int(v) for v in re.findall(r"^\$\d+ = (\d+)$", out, re.M)]
    assert sizes == [di.find_type(n).size for n in names]
    assert di.find_type("unsigned long").name == "long unsigned int"
    assert not di.find_type("unsigned").signed and di.find_type("signed").signed
    assert di.find_type("void").kind == "void" and di.find_type("void *").target is None
    assert str(di.find_type("Node **")) == "Node **"
    assert di.find_type("Node **").target.target.strip_typedefs().name == "Node"
    assert di.find_type("nope *") is None and di.find_type("int * int") is None


def test_compressed_sections(program, tmp_path):
    """SHF_COMPRESSED debug sections (objcopy --compress-debug-sections, as Debian ships
    libc6-dbg and its dwz files) read the same, and their inflated bytes are cached by
    build-id (a dwz file's by its own)."""
    packed = tmp_path / "packed"
    subprocess.run(["objcopy", "--compress-debug-sections=zlib", str(program), str(packed)],
                   check=True)
    assert packed.stat().st_size < program.stat().st_size
    alt = alt_file(program)
    packed_alt = None
    if alt:
        packed_alt = tmp_path / "packed.dwz"
        subprocess.run(["objcopy", "--compress-debug-sections=zlib", alt, str(packed_alt)],
                       check=True)
    cache = tmp_path / "cache"
    plain = DebugInfo(str(program), None, alt_path=alt)
    for _run in range(2):  # inflating, then from the cache
        di = DebugInfo(str(packed), "abcd", cache_dir=str(cache), alt_path=packed_alt)
        assert our_rows(di.find_type("struct Node")) == our_rows(plain.find_type("struct Node"))
        pc = di.find_function("outer")
        assert di.locate(pc + 4) == plain.locate(pc + 4)
    # the inflated bytes, then their CRC-32 (corefile/cache.py)
    assert (cache / "dwarf" / "abcd.debug_info").stat().st_size == \
        plain.reader.info_end - plain.reader.info_start + 4
    if alt:
        alt_reader = plain.reader.alt
        assert (cache / "dwarf" / f"{di.alt_id}.debug_info").stat().st_size == \
            alt_reader.info_end - alt_reader.info_start + 4


def test_hand_made_types_and_failing_loader():
    """Types built by hand (synthetic targets) and a loader that fails keeps failing."""
    from corefile.types import Member, Type
    u32 = Type("int", "unsigned int", 4)
    node = Type("struct", "Node", 16)
    ptr = Type("pointer", None, 8, target=node)
    node.set_lazy(members=[Member("id", u32, 0), Member(None, Type(
        "union", None, 8, members=[Member("next", ptr, 0),
                                   Member("flags", u32, 0, 3, 2)]), 8)])
    assert node.member("next").offset == 8 and node.member("next").type.target is node
    flags = node.member("flags")
    assert (flags.offset, flags.bit_offset, flags.bit_size) == (8, 66, 3)
    assert str(Type("array", None, target=ptr, length=4)) == "struct Node *[4]"
    calls = []

    def broken(t):
        calls.append(t)
        raise DwarfError("bad")
    t = Type("struct", "Broken", 4, loader=broken)
    for _ in range(2):
        with pytest.raises(DwarfError):
            t.members
    assert len(calls) == 2


def test_type_of_a_file(program, di):
    """Two files may define different types under one name: file= picks that file's."""
    out = gdb_batch(program, ["p sizeof(other_local)", "p sizeof(main_local)"])
    sizes = [int(v) for v in re.findall(r"^\$\d+ = (\d+)$", out, re.M)]
    assert sizes == [di.find_type("Local", file="other.c").size,
                     di.find_type("Local", file="main.c").size]
    assert sizes[0] != sizes[1]
    assert di.find_type("Local", file="nope.c") is None


def _pyelftools_records(path):
    """{("struct"|"union", name): (size, [(member, byte offset, bit offset or None)])} and
    {global name: address} read with pyelftools, an independent DWARF reader."""
    from elftools.elf.elffile import ELFFile
    kinds = {"DW_TAG_structure_type": "struct", "DW_TAG_union_type": "union"}
    types, variables = {}, {}
    with open(path, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        for cu in dwarf.iter_CUs():
            for die in cu.iter_DIEs():
                name = die.attributes.get("DW_AT_name")
                if die.tag in kinds and name and "DW_AT_byte_size" in die.attributes:
                    members = []
                    for m in die.iter_children():
                        if m.tag != "DW_TAG_member" or "DW_AT_name" not in m.attributes:
                            continue
                        a = m.attributes
                        offset = a["DW_AT_data_member_location"].value \
                            if "DW_AT_data_member_location" in a else 0
                        bit = a["DW_AT_data_bit_offset"].value if "DW_AT_data_bit_offset" in a else None
                        if "DW_AT_bit_offset" in a:  # DWARF 2-4 bitfield, counted from the MSB
                            storage = a["DW_AT_byte_size"].value * 8
                            bit = offset * 8 + storage - a["DW_AT_bit_offset"].value - a["DW_AT_bit_size"].value
                        members.append((a["DW_AT_name"].value.decode(),
                                        bit // 8 if bit is not None else offset, bit))
                    types[(kinds[die.tag], name.value.decode())] = \
                        (die.attributes["DW_AT_byte_size"].value, members)
                elif die.tag == "DW_TAG_variable" and name and "DW_AT_external" in die.attributes:
                    loc = die.attributes.get("DW_AT_location")
                    if loc and loc.form == "DW_FORM_exprloc" and loc.value[0] == 0x03:  # DW_OP_addr
                        variables[name.value.decode()] = int.from_bytes(bytes(loc.value[1:9]), "little")
    return types, variables


def test_every_struct_and_global_equals_pyelftools(program, di):
    """Every named struct/union (size, each named member's offset and bit offset) and every
    global with a static address, as pyelftools reads them."""
    types, variables = _pyelftools_records(before_dwz(program))
    assert types and variables
    for (kind, name), (size, members) in types.items():
        t = di.find_type(f"{kind} {name}")
        assert t.size == size, name
        ours = [(m.name, m.offset, m.bit_offset) for m in t.members if m.name is not None]
        assert ours == members, name
    for name, address in variables.items():
        assert di.find_variable(name)[0] == address, name
