"""A program and its library shipped as a distribution ships them: dwz multifile across
both (the common file at /usr/lib/debug/.dwz/..., found by its path only, as Debian gives
it no .build-id link), debug files split off and compressed at .build-id/xx/rest.debug
under a debug root, binaries stripped with a .gnu_debuglink. corefile reads a real kernel
core of it as gdb reads it with the same debug-file-directory."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import corefile
from corefile.elf import ElfImage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from make_cores import kernel_core_path  # noqa: E402

SHAPE_H = r"""
struct Shape { const char *name; int sides; unsigned flags : 3; struct Shape *next; };
static inline int perimeter(const struct Shape *s, int side) { return s->sides * side; }
"""

LIB_C = r"""
#include "shape.h"
int lib_counter = 3;
__attribute__((noinline)) int lib_measure(struct Shape *s, int side)
{
    lib_counter += perimeter(s, side);
    return s->next->sides + lib_counter;          /* s->next is NULL: SIGSEGV */
}
"""

MAIN_C = r"""
#include "shape.h"
int lib_measure(struct Shape *s, int side);
struct Shape square = { "square", 4, 5, 0 };
int main(int argc, char **argv)
{
    (void)argv;
    return lib_measure(&square, argc + perimeter(&square, 2)) * 2;   /* no tail call */
}
"""

ALT = "/usr/lib/debug/.dwz/x86_64-linux-gnu/libshape.debug"


def _run(argv, cwd):
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, f"{argv}: {r.stderr}"
    return r.stdout


def _package(d, name, root):
    """Debian's dh_strip: debug file by build-id (compressed), strip, debuglink."""
    bid = ElfImage(str(d / name)).build_id.hex()
    debug = root / "usr/lib/debug/.build-id" / bid[:2] / f"{bid[2:]}.debug"
    debug.parent.mkdir(parents=True, exist_ok=True)
    _run(["objcopy", "--only-keep-debug", "--compress-debug-sections", name, str(debug)], d)
    _run(["strip", "--remove-section=.comment", "--remove-section=.note", "--strip-unneeded",
          name], d)
    _run(["objcopy", f"--add-gnu-debuglink={debug}", name], d)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    d = tmp_path_factory.mktemp("dwzcore")
    root = d / "root"
    (d / "shape.h").write_text(SHAPE_H)
    (d / "lib.c").write_text(LIB_C)
    (d / "main.c").write_text(MAIN_C)
    _run(["gcc", "-O2", "-g", "-fPIC", "-shared", "-o", "libshape.so", "lib.c"], d)
    _run(["gcc", "-O2", "-g", "-o", "prog", "main.c", "-L.", "-lshape",
          "-Wl,-rpath,$ORIGIN"], d)
    _run(["dwz", "-m", "common.debug", "-M", ALT, "prog", "libshape.so"], d)
    alt = root / ALT.lstrip("/")
    alt.parent.mkdir(parents=True)
    _run(["objcopy", "--compress-debug-sections", "common.debug", str(alt)], d)
    for name in ("prog", "libshape.so"):
        _package(d, name, root)
    assert ElfImage(str(d / "prog")).section(".debug_info") is None
    assert ElfImage(str(d / "libshape.so")).debugaltlink()[0] == ALT

    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)
    proc = subprocess.Popen([str(d / "prog")], cwd=d, preexec_fn=limit)
    proc.wait(timeout=60)
    core = kernel_core_path(d, proc.pid)
    assert core.exists(), f"prog exited {proc.returncode} without a core"
    return {"dir": d, "exe": d / "prog", "core": core, "debug": root / "usr/lib/debug"}


def gdb(shipped, *commands, debug=None):
    args = ["gdb", "-nx", "-batch", "-iex", f"set debug-file-directory {debug or shipped['debug']}",
            "-ex", "set width 0"]
    for c in commands:
        args += ["-ex", c]
    return subprocess.run(args + [str(shipped["exe"]), str(shipped["core"])],
                          capture_output=True, text=True, timeout=120).stdout


def test_backtrace_equals_gdb(shipped, tmp_path):
    """Frames of both files, inlined perimeter() in the library included, with file:line
    from the dwz-split line tables and names from the supplementary file."""
    out = gdb(shipped, "echo @@\\n", "bt").split("@@\n", 1)[1]
    expected = re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\w+) \(.*\) at (\S+):(\d+)$", out, re.M)
    assert [f[0] for f in expected][:2] == ["lib_measure", "main"], out
    with corefile.open(str(shipped["core"]), debug_dirs=[str(shipped["debug"])],
                       cache_dir=str(tmp_path)) as prog:
        assert not prog.partial_reasons, prog.partial_reasons
        frames = prog.backtrace(prog.crashed_thread.registers)
        ours = [(f.function, f.file, f.line) for f in frames if f.line]
    assert ours[:len(expected)] == [(f, file, int(line)) for f, file, line in expected]


def test_types_and_variables_equal_gdb(shipped, tmp_path):
    out = gdb(shipped, "p sizeof(struct Shape)", "p &square", "p square.flags")
    size, addr, flags = re.findall(r"^\$\d+ = (?:\(struct Shape \*\) )?(\S+)", out, re.M)
    with corefile.open(str(shipped["core"]), debug_dirs=[str(shipped["debug"])],
                       cache_dir=str(tmp_path)) as prog:
        shape = prog.type("struct Shape")
        address, t = prog.variable("square")
        member = shape.member("flags")
        raw = int.from_bytes(prog.read(address + member.offset, 8), "little")
        value = raw >> (member.bit_offset - member.offset * 8) & ((1 << member.bit_size) - 1)
    assert (shape.size, address, value) == (int(size), int(addr, 16), int(flags))
    assert t.strip_typedefs() is shape.strip_typedefs()


def test_missing_supplementary_file_is_named(shipped, tmp_path):
    """Without the dwz file: one message naming the file and build-id it wants, and the
    stack still has function names (from the symbol tables)."""
    partial = tmp_path / "debug"
    shutil.copytree(shipped["debug"], partial)
    shutil.rmtree(partial / ".dwz")
    bid = ElfImage(str(shipped["exe"])).debugaltlink()[1].hex()
    with corefile.open(str(shipped["core"]), debug_dirs=[str(partial)],
                       cache_dir=str(tmp_path / "cache")) as prog:
        with pytest.raises(corefile.CorefileError, match=re.escape(f"{ALT} (build-id {bid})")):
            prog.type("struct Shape")
        frames = prog.backtrace(prog.crashed_thread.registers)
        assert [f.function for f in frames][:2] == ["lib_measure", "main"]
        assert any(ALT in r for r in prog.partial_reasons)
    r = subprocess.run(["qemu-coredump", "bt", str(shipped["core"]), "--debug-dir", str(partial)],
                       capture_output=True, text=True, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert "Traceback" not in r.stderr and f"{ALT} (build-id {bid})" in r.stdout + r.stderr
