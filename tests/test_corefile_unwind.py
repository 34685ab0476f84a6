"""corefile.unwind on its own: CFI programs and DWARF expressions built from bytes, the
.eh_frame_hdr search against a full scan of libc, and a program that has only
.debug_frame, unwound as gdb does."""

import struct
import subprocess

import pytest

import corefile
from corefile.arch import x86_64
from corefile.elf import ElfImage
from corefile.unwind import (CFIError, CIE, FDE, OFFSET, UNDEF, VAL_EXPR, CFITable,
                             eval_expr, execute)
from test_corefile_fast import KIND, PROG, gcore_of, gdb_dump

RSP, RIP, RBP, RBX = 7, 16, 6, 3


def regs_of(values):
    return lambda n: values[n]


def test_plt_cfa_expression():
    """The CFA expression of a PLT entry: rsp + 8, plus 8 once pc & 15 >= 11."""
    expr = bytes([0x77, 8, 0x80, 0, 0x3F, 0x1A, 0x3B, 0x2A, 0x33, 0x24, 0x22])
    for pc, cfa in ((0x1000, 0x2008), (0x100B, 0x2010), (0x100F, 0x2010)):
        assert eval_expr(expr, regs_of({RSP: 0x2000, RIP: pc}), None) == cfa


def test_expression_ops_and_limits():
    mem = {0x3000: 0x1234}
    read = mem.__getitem__
    # DW_OP_breg6 -8; DW_OP_deref; DW_OP_plus_uconst 4; DW_OP_const1s -1; DW_OP_mul
    expr = bytes([0x76, 0x78, 0x06, 0x23, 4, 0x09, 0xFF, 0x1E])
    assert eval_expr(expr, regs_of({RBP: 0x3008}), read) == (-(0x1234 + 4)) & ((1 << 64) - 1)
    # DW_OP_skip -3 forever
    with pytest.raises(CFIError):
        eval_expr(bytes([0x30, 0x2F, 0xFD, 0xFF]), regs_of({}), read)
    with pytest.raises(CFIError):
        eval_expr(bytes([0xE0]), regs_of({}), read)


def test_cfa_program():
    """CIE initial rules, then advance_loc / remember_state / restore_state /
    GNU_args_size / offset_extended_sf / val_expression / undefined, at several pcs."""
    cie = CIE(code_align=1, data_align=-8, ra_column=RIP, fde_encoding=0x1B,
              signal_frame=False, has_z=True,
              initial=bytes([0x0C, RSP, 8, 0x80 | RIP, 1]))   # def_cfa rsp+8; rip at cfa-8
    code = bytes([
        0x41,                    # advance_loc 1            -> 0x101
        0x0E, 16,                # def_cfa_offset 16
        0x80 | RBP, 2,           # rbp at cfa-16
        0x0A,                    # remember_state
        0x42,                    # advance_loc 2            -> 0x103
        0x0D, RBP,               # def_cfa_register rbp
        0x2E, 32,                # GNU_args_size 32 (no effect)
        0x11, RBX, 0x7D,         # offset_extended_sf rbx, -3 * -8 = cfa+24
        0x16, RBP, 2, 0x70 | RBP, 0,   # val_expression rbp: breg6 0
        0x44,                    # advance_loc 4            -> 0x107
        0x0B,                    # restore_state
        0x07, RIP,               # undefined rip
    ])
    fde = FDE(0x100, 0x200, cie, code)
    row = execute(fde, 0x100)
    assert (row.cfa_reg, row.cfa_offset, row.rules) == (RSP, 8, {RIP: (OFFSET, -8)})
    row = execute(fde, 0x102)
    assert (row.cfa_reg, row.cfa_offset) == (RSP, 16)
    assert row.rules == {RIP: (OFFSET, -8), RBP: (OFFSET, -16)}
    row = execute(fde, 0x106)
    assert (row.cfa_reg, row.cfa_offset) == (RBP, 16)
    assert row.rules[RBX] == (OFFSET, 24) and row.rules[RBP] == (VAL_EXPR, bytes([0x76, 0]))
    row = execute(fde, 0x150)
    assert (row.cfa_reg, row.cfa_offset) == (RSP, 16)
    assert row.rules == {RIP: (UNDEF, 0), RBP: (OFFSET, -16)}


def test_eh_frame_hdr_search_equals_full_scan():
    """The FDE found by .eh_frame_hdr's binary search is the one a scan of every FDE
    finds, for pcs all over libc (function starts, middles, gaps)."""
    img = ElfImage("/lib/x86_64-linux-gnu/libc.so.6")
    eh, hdr = img.section(".eh_frame"), img.section(".eh_frame_hdr")
    fast = CFITable((img.section_data(".eh_frame"), eh.addr),
                    (img.section_data(".eh_frame_hdr"), hdr.addr))
    slow = CFITable((img.section_data(".eh_frame"), eh.addr))
    index = slow.eh.scan()
    assert len(index) > 1000
    pcs = [pc for start, end, _ in index[::37] for pc in (start, (start + end) // 2, end)]
    for pc in pcs:
        a, b = fast.find(pc), slow.find(pc)
        assert (a and (a.start, a.end)) == (b and (b.start, b.end)), hex(pc)


def test_debug_frame_only_program(tmp_path):
    """Built without .eh_frame (-fno-asynchronous-unwind-tables): corefile unwinds
    with .debug_frame, every frame as gdb."""
    (tmp_path / "prog.c").write_text(PROG)
    exe = tmp_path / "prog"
    subprocess.run(["gcc", "-O2", "-g", "-pthread", "-fno-asynchronous-unwind-tables",
                    "-fno-unwind-tables", "-o", str(exe), str(tmp_path / "prog.c")],
                   check=True, capture_output=True)
    img = ElfImage(str(exe))
    assert img.section(".debug_frame") is not None
    core = gcore_of([exe], tmp_path)
    theirs = gdb_dump(exe, core, tmp_path)
    with corefile.open(core, cache_dir=str(tmp_path / "cache")) as prog:
        main = prog.symbol_address("main") - prog.exe.bias
        cfi = prog.exe.cfi
        assert (cfi.eh is None or cfi._find_eh(main) is None) and cfi.find(main)
        for thread, t in zip(prog.threads, theirs):
            got = [(e.kind, hex(e.pc), e.function) for e in prog.backtrace(thread.registers)]
            want = [(KIND[f["type"]], hex(f["pc"]), f["name"]) for f in t["frames"]
                    if f["pc"] != 0]
            assert got == want, thread.num
            assert not any(f.fallback for f in prog.unwind(thread.registers))


def test_signal_frame_without_cfi():
    """__restore_rt recognised by its code when no CFI covers it: the interrupted
    registers come from the ucontext on the stack (arch.SIGCONTEXT_*)."""
    sp = 0x7000
    ctx = {"rip": 0x4444, "rsp": 0x9000, "rbp": 0x9100, "rbx": 0x55}
    mem = bytearray(0x1000)
    base = x86_64.SIGCONTEXT_OFFSET
    for i, name in enumerate(x86_64.SIGCONTEXT_REGS):
        struct.pack_into("<Q", mem, base + 8 * i, ctx.get(name, 0))
    code = x86_64.SIGRETURN_CODE

    def read(addr, n):
        if 0x5000 <= addr and addr + n <= 0x5000 + len(code):
            return code[addr - 0x5000:addr - 0x5000 + n]
        if sp <= addr and addr + n <= sp + len(mem):
            return bytes(mem[addr - sp:addr - sp + n])
        raise corefile.FaultError(addr)

    from corefile.unwind import Unwinder
    unwinder = Unwinder(x86_64, read, lambda pc: None, lambda pc: pc in (0x5000, 0x4444),
                        lambda pc: False)
    steps = list(unwinder.frames({"rip": 0x5000, "rsp": sp, "rbp": 0, "rbx": 0}))
    assert steps[0].signal and not steps[0].fallback
    assert (steps[1].pc, steps[1].sp, steps[1].registers["rbx"]) == (0x4444, 0x9000, 0x55)
