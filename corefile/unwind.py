"""DWARF CFI unwinding (.eh_frame, .debug_frame), parsed lazily one FDE at a time.

CFITable finds the FDE covering a pc (through .eh_frame_hdr's binary search table when
present, else through a sorted index of FDE headers built once) and computes the unwind
row at that pc. Unwinder walks frames from a register set as gdb does: CFI first, the
signal trampoline, then a frame-pointer fallback marked as such; it stops at the
outermost frame (undefined return address, zero pc, main / the entry function) and
whenever a step would go backwards, so it never reports junk frames.
"""

import bisect
import struct
from dataclasses import dataclass, field

from .dwarf_format import sleb, uleb
from .errors import CorefileError, FaultError

# Pointer encodings (DW_EH_PE_*).
PE_OMIT = 0xFF
PE_ABSPTR, PE_ULEB128, PE_UDATA2, PE_UDATA4, PE_UDATA8 = 0x00, 0x01, 0x02, 0x03, 0x04
PE_SLEB128, PE_SDATA2, PE_SDATA4, PE_SDATA8 = 0x09, 0x0A, 0x0B, 0x0C
PE_PCREL, PE_TEXTREL, PE_DATAREL, PE_FUNCREL, PE_ALIGNED = 0x10, 0x20, 0x30, 0x40, 0x50
PE_INDIRECT = 0x80

MASK64 = (1 << 64) - 1


class CFIError(CorefileError):
    """Malformed call frame information."""


_FIXED = {PE_UDATA2: "<H", PE_UDATA4: "<I", PE_UDATA8: "<Q",
          PE_SDATA2: "<h", PE_SDATA4: "<i", PE_SDATA8: "<q"}


def _read_encoded(buf, pos, enc, section_addr, datarel=0, ptr_size=8):
    """Decode a DW_EH_PE-encoded pointer at buf[pos]. Returns (value, new_pos);
    indirect pointers are returned as ('indirect', addr)."""
    fmt = enc & 0x0F
    if enc & 0x70 == PE_ALIGNED:
        pos = (pos + ptr_size - 1) // ptr_size * ptr_size
    if fmt == PE_ABSPTR:
        val, = struct.unpack_from("<Q" if ptr_size == 8 else "<I", buf, pos)
        new = pos + ptr_size
    elif fmt == PE_ULEB128:
        val, new = uleb(buf, pos)
    elif fmt == PE_SLEB128:
        val, new = sleb(buf, pos)
    elif fmt in _FIXED:
        val, = struct.unpack_from(_FIXED[fmt], buf, pos)
        new = pos + struct.calcsize(_FIXED[fmt])
    else:
        raise CFIError(f"unsupported pointer encoding 0x{enc:x}")
    app = enc & 0x70
    if app == PE_PCREL:
        val += section_addr + pos
    elif app == PE_DATAREL:
        val += datarel
    elif app not in (0, PE_FUNCREL, PE_TEXTREL, PE_ALIGNED):
        raise CFIError(f"unsupported pointer application 0x{enc:x}")
    return val & MASK64, new


@dataclass
class CIE:
    code_align: int
    data_align: int
    ra_column: int
    fde_encoding: int
    signal_frame: bool
    has_z: bool
    initial: bytes
    address_size: int = 8


@dataclass
class FDE:
    start: int        # unbiased
    end: int
    cie: CIE
    instructions: bytes


# Register rules.
UNDEF, SAME, OFFSET, VAL_OFFSET, REGISTER, EXPR, VAL_EXPR = range(7)


@dataclass
class Row:
    """The unwind row at a pc: the CFA rule and one rule per register column."""
    cfa_reg: int = -1
    cfa_offset: int = 0
    cfa_expr: bytes | None = None
    rules: dict = field(default_factory=dict)

    def copy(self):
        return Row(self.cfa_reg, self.cfa_offset, self.cfa_expr, dict(self.rules))


class _Section:
    """A CFI section's bytes and where it lives in the module's (unbiased) space."""

    def __init__(self, data: bytes, addr: int, is_eh: bool):
        self.data = data
        self.addr = addr
        self.is_eh = is_eh
        self.cies = {}
        self.index = None   # sorted [(start, end, fde_offset)] when scanned

    def entry(self, off):
        """(length_end, id_pos, cie_id, is64) of the entry at off, or None at a
        terminator."""
        length, = struct.unpack_from("<I", self.data, off)
        if length == 0:
            return None
        pos = off + 4
        is64 = length == 0xFFFFFFFF
        if is64:
            length, = struct.unpack_from("<Q", self.data, pos)
            pos += 8
        end = pos + length
        if end > len(self.data):
            raise CFIError(f"CFI entry at 0x{off:x} runs past its section")
        cie_id, = struct.unpack_from("<Q" if is64 else "<I", self.data, pos)
        return end, pos, cie_id, is64

    def is_cie(self, cie_id, is64):
        if self.is_eh:
            return cie_id == 0
        return cie_id == (0xFFFFFFFFFFFFFFFF if is64 else 0xFFFFFFFF)

    def cie(self, off) -> CIE:
        c = self.cies.get(off)
        if c is None:
            c = self.cies[off] = self._parse_cie(off)
        return c

    def _parse_cie(self, off) -> CIE:
        ent = self.entry(off)
        if ent is None:
            raise CFIError(f"no CIE at 0x{off:x}")
        end, pos, cie_id, is64 = ent
        if not self.is_cie(cie_id, is64):
            raise CFIError(f"entry at 0x{off:x} is not a CIE")
        buf = self.data
        pos += 8 if is64 else 4
        version = buf[pos]
        pos += 1
        aug_end = buf.index(b"\0", pos)
        aug = buf[pos:aug_end].decode("ascii", "replace")
        pos = aug_end + 1
        address_size = 8
        if "eh" in aug:
            pos += 8
        if not self.is_eh and version >= 4:
            address_size = buf[pos]
            pos += 2  # address_size, segment_selector_size
        code_align, pos = uleb(buf, pos)
        data_align, pos = sleb(buf, pos)
        if version == 1:
            ra = buf[pos]
            pos += 1
        else:
            ra, pos = uleb(buf, pos)
        fde_enc = PE_ABSPTR
        signal = False
        has_z = aug.startswith("z")
        if has_z:
            aug_len, pos = uleb(buf, pos)
            apos = pos
            pos += aug_len
            for ch in aug[1:]:
                if ch == "R":
                    fde_enc = buf[apos]
                    apos += 1
                elif ch == "L":
                    apos += 1
                elif ch == "P":
                    penc = buf[apos]
                    _, apos = _read_encoded(buf, apos + 1, penc & 0x7F, self.addr)
                elif ch == "S":
                    signal = True
                elif ch == "B":
                    pass
                else:
                    break
        elif aug not in ("", "eh"):
            raise CFIError(f"unknown CIE augmentation {aug!r}")
        return CIE(code_align, data_align, ra, fde_enc, signal, has_z,
                   bytes(buf[pos:end]), address_size)

    def fde(self, off) -> FDE | None:
        ent = self.entry(off)
        if ent is None:
            return None
        end, pos, cie_id, is64 = ent
        if self.is_cie(cie_id, is64):
            return None
        cie_off = (pos - cie_id) if self.is_eh else cie_id
        cie = self.cie(cie_off)
        pos += 8 if is64 else 4
        buf = self.data
        if self.is_eh:
            start, pos = _read_encoded(buf, pos, cie.fde_encoding, self.addr)
            length, pos = _read_encoded(buf, pos, cie.fde_encoding & 0x0F, self.addr)
        else:
            fmt = "<Q" if cie.address_size == 8 else "<I"
            start, = struct.unpack_from(fmt, buf, pos)
            length, = struct.unpack_from(fmt, buf, pos + cie.address_size)
            pos += 2 * cie.address_size
        if cie.has_z:
            aug_len, pos = uleb(buf, pos)
            pos += aug_len
        return FDE(start, start + length, cie, bytes(buf[pos:end]))

    def scan(self):
        """Index all FDEs by address (headers only)."""
        if self.index is None:
            idx = []
            off = 0
            n = len(self.data)
            while off + 4 <= n:
                ent = self.entry(off)
                if ent is None:
                    if self.is_eh:
                        break
                    off += 4
                    continue
                end, _, cie_id, is64 = ent
                if not self.is_cie(cie_id, is64):
                    f = self.fde(off)
                    if f is not None and f.end > f.start:
                        idx.append((f.start, f.end, off))
                off = end
            idx.sort()
            self.index = idx
        return self.index

    def find_scanned(self, pc) -> FDE | None:
        idx = self.scan()
        i = bisect.bisect_right(idx, (pc, MASK64, MASK64)) - 1
        while i >= 0:
            start, end, off = idx[i]
            if start <= pc < end:
                return self.fde(off)
            if end <= pc and i > 0 and idx[i - 1][1] > pc:
                i -= 1
                continue
            return None
        return None


class CFITable:
    """The CFI of one module: .eh_frame (+ .eh_frame_hdr) and .debug_frame."""

    def __init__(self, eh_frame=None, eh_frame_hdr=None, debug_frame=None):
        """eh_frame, eh_frame_hdr: (bytes, unbiased section address) or None;
        debug_frame: a callable giving that, called the first time .eh_frame has no
        FDE for a pc."""
        # A section whose bytes could not be had (e.g. compressed by an unknown method)
        # comes as (None, addr): no such section.
        self.eh = _Section(eh_frame[0], eh_frame[1], True) if eh_frame and eh_frame[0] else None
        self.hdr = eh_frame_hdr if eh_frame_hdr and eh_frame_hdr[0] else None
        self._debug_frame = debug_frame
        self._debug = None
        self._table = None
        self._rows = {}

    def _hdr_table(self):
        """(table offset, count, entry size) of .eh_frame_hdr's sorted table, or None."""
        if self._table is None:
            self._table = ()
            if self.hdr and self.eh:
                data, addr = self.hdr
                if len(data) >= 4 and data[0] == 1 and data[3] == (PE_DATAREL | PE_SDATA4):
                    eh_ptr, pos = _read_encoded(data, 4, data[1], addr, addr)
                    if data[2] != PE_OMIT:
                        count, pos = _read_encoded(data, pos, data[2], addr, addr)
                        if eh_ptr == self.eh.addr and pos + count * 8 <= len(data):
                            self._table = (pos, count)
        return self._table or None

    def _find_eh(self, pc) -> FDE | None:
        table = self._hdr_table()
        if table is None:
            return self.eh.find_scanned(pc)
        data, addr = self.hdr
        pos, count = table
        lo, hi = 0, count
        while lo < hi:     # last entry with initial location <= pc
            mid = (lo + hi) // 2
            loc, = struct.unpack_from("<i", data, pos + mid * 8)
            if loc + addr <= pc:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            return None
        _, fde_rel = struct.unpack_from("<ii", data, pos + (lo - 1) * 8)
        fde = self.eh.fde(fde_rel + addr - self.eh.addr)
        return fde if fde is not None and fde.start <= pc < fde.end else None

    @property
    def debug(self):
        if self._debug_frame is not None:
            found = self._debug_frame()
            self._debug_frame = None
            if found:
                self._debug = _Section(found[0], found[1], False)
        return self._debug

    def find(self, pc) -> FDE | None:
        """The FDE covering unbiased pc, from .eh_frame first then .debug_frame."""
        try:
            fde = self._find_eh(pc) if self.eh else None
            if fde is None and self.debug:
                fde = self.debug.find_scanned(pc)
        except (struct.error, IndexError, ValueError) as e:
            raise CFIError(f"malformed CFI near pc 0x{pc:x}: {e}") from None
        return fde

    def row(self, pc) -> tuple[Row, FDE] | None:
        """The unwind row at unbiased pc, or None when no FDE covers it."""
        hit = self._rows.get(pc)
        if hit is None:
            fde = self.find(pc)
            if fde is None:
                return None
            try:
                hit = (execute(fde, pc), fde)
            except (struct.error, IndexError, ValueError) as e:
                raise CFIError(f"malformed CFI instructions for pc 0x{pc:x}: {e}") from None
            self._rows[pc] = hit
        return hit


def execute(fde: FDE, pc: int) -> Row:
    """Run the CIE's initial instructions then the FDE's up to pc."""
    cie = fde.cie
    row = Row()
    _run(cie.initial, cie, row, None, 0, MASK64)   # (a CIE has no location: 0)
    initial = dict(row.rules)
    _run(fde.instructions, cie, row, initial, fde.start, pc)
    return row


def _run(code: bytes, cie: CIE, row: Row, initial, loc, pc):
    pos = 0
    n = len(code)
    stack = []
    caf, daf = cie.code_align, cie.data_align
    while pos < n:
        op = code[pos]
        pos += 1
        hi, lo = op & 0xC0, op & 0x3F
        if hi == 0x40:                       # advance_loc
            loc += lo * caf
            if loc > pc:
                return
            continue
        if hi == 0x80:                       # offset
            off, pos = uleb(code, pos)
            row.rules[lo] = (OFFSET, off * daf)
            continue
        if hi == 0xC0:                       # restore
            _restore(row, initial, lo)
            continue
        if op == 0x00:
            continue
        if op in (0x02, 0x03, 0x04):         # advance_loc1/2/4
            size = {0x02: 1, 0x03: 2, 0x04: 4}[op]
            delta = int.from_bytes(code[pos:pos + size], "little")
            pos += size
            loc += delta * caf
            if loc > pc:
                return
        elif op == 0x01:                     # set_loc
            new, = struct.unpack_from("<Q", code, pos)
            pos += 8
            if new > pc:
                return
            loc = new
        elif op in (0x05, 0x11, 0x14, 0x15, 0x2F):
            reg, pos = uleb(code, pos)
            if op in (0x11, 0x15):
                off, pos = sleb(code, pos)
            else:
                off, pos = uleb(code, pos)
            if op == 0x2F:
                off = -off
            kind = VAL_OFFSET if op in (0x14, 0x15) else OFFSET
            row.rules[reg] = (kind, off * daf)
        elif op == 0x06:                     # restore_extended
            reg, pos = uleb(code, pos)
            _restore(row, initial, reg)
        elif op == 0x07:
            reg, pos = uleb(code, pos)
            row.rules[reg] = (UNDEF, 0)
        elif op == 0x08:
            reg, pos = uleb(code, pos)
            row.rules[reg] = (SAME, 0)
        elif op == 0x09:
            reg, pos = uleb(code, pos)
            reg2, pos = uleb(code, pos)
            row.rules[reg] = (REGISTER, reg2)
        elif op == 0x0A:
            stack.append(row.copy())
        elif op == 0x0B:
            if stack:
                saved = stack.pop()
                row.cfa_reg, row.cfa_offset, row.cfa_expr = (
                    saved.cfa_reg, saved.cfa_offset, saved.cfa_expr)
                row.rules = saved.rules
        elif op in (0x0C, 0x12):             # def_cfa, def_cfa_sf
            row.cfa_reg, pos = uleb(code, pos)
            if op == 0x0C:
                row.cfa_offset, pos = uleb(code, pos)
            else:
                off, pos = sleb(code, pos)
                row.cfa_offset = off * daf
            row.cfa_expr = None
        elif op == 0x0D:
            row.cfa_reg, pos = uleb(code, pos)
            row.cfa_expr = None
        elif op in (0x0E, 0x13):
            if op == 0x0E:
                row.cfa_offset, pos = uleb(code, pos)
            else:
                off, pos = sleb(code, pos)
                row.cfa_offset = off * daf
        elif op == 0x0F:                     # def_cfa_expression
            size, pos = uleb(code, pos)
            row.cfa_expr = bytes(code[pos:pos + size])
            pos += size
        elif op in (0x10, 0x16):             # expression, val_expression
            reg, pos = uleb(code, pos)
            size, pos = uleb(code, pos)
            row.rules[reg] = (EXPR if op == 0x10 else VAL_EXPR, bytes(code[pos:pos + size]))
            pos += size
        elif op == 0x2E:                     # GNU_args_size: no effect on unwinding
            _, pos = uleb(code, pos)
        else:
            raise CFIError(f"unknown CFA instruction 0x{op:02x}")


def _restore(row, initial, reg):
    if initial is not None and reg in initial:
        row.rules[reg] = initial[reg]
    else:
        row.rules.pop(reg, None)


def eval_expr(expr: bytes, regs, read_u64, push_first=None) -> int:
    """Evaluate a DWARF expression (the subset CFI uses) to a value.
    regs(regno) -> int; read_u64(addr) -> int."""
    stack = [] if push_first is None else [push_first]
    pos = 0
    n = len(expr)
    steps = 0
    while pos < n:
        steps += 1
        if steps > 10000:
            raise CFIError("DWARF expression does not terminate")
        op = expr[pos]
        pos += 1
        if 0x30 <= op <= 0x4F:
            stack.append(op - 0x30)
        elif 0x70 <= op <= 0x8F:
            off, pos = sleb(expr, pos)
            stack.append((regs(op - 0x70) + off) & MASK64)
        elif 0x50 <= op <= 0x6F:
            stack.append(regs(op - 0x50))
        elif op == 0x03:
            stack.append(struct.unpack_from("<Q", expr, pos)[0])
            pos += 8
        elif op == 0x06:
            stack.append(read_u64(stack.pop()))
        elif op == 0x94:
            size = expr[pos]
            pos += 1
            stack.append(read_u64(stack.pop()) & ((1 << (8 * size)) - 1))
        elif 0x08 <= op <= 0x0F:
            size = 1 << ((op - 0x08) >> 1)
            signed = (op - 0x08) & 1
            stack.append(int.from_bytes(expr[pos:pos + size], "little", signed=bool(signed)))
            pos += size
        elif op == 0x10:
            v, pos = uleb(expr, pos)
            stack.append(v)
        elif op == 0x11:
            v, pos = sleb(expr, pos)
            stack.append(v)
        elif op == 0x12:
            stack.append(stack[-1])
        elif op == 0x13:
            stack.pop()
        elif op == 0x14:
            stack.append(stack[-2])
        elif op == 0x15:
            stack.append(stack[-1 - expr[pos]])
            pos += 1
        elif op == 0x16:
            stack[-1], stack[-2] = stack[-2], stack[-1]
        elif op == 0x17:
            stack[-1], stack[-2], stack[-3] = stack[-2], stack[-3], stack[-1]
        elif op == 0x23:
            v, pos = uleb(expr, pos)
            stack.append(stack.pop() + v)
        elif op == 0x90:
            r, pos = uleb(expr, pos)
            stack.append(regs(r))
        elif op == 0x92:
            r, pos = uleb(expr, pos)
            off, pos = sleb(expr, pos)
            stack.append(regs(r) + off)
        elif op == 0x28:                      # bra
            off, = struct.unpack_from("<h", expr, pos)
            pos += 2
            if stack.pop() & MASK64:
                pos += off
        elif op == 0x2F:                      # skip
            off, = struct.unpack_from("<h", expr, pos)
            pos += 2 + off
        elif op == 0x96:
            pass
        elif op in _UNARY:
            stack.append(_UNARY[op](_signed(stack.pop())))
        elif op in _BINARY:
            b = stack.pop()
            a = stack.pop()
            stack.append(_BINARY[op](a & MASK64, b & MASK64))
        else:
            raise CFIError(f"unsupported DWARF expression op 0x{op:02x}")
        if stack:
            stack[-1] &= MASK64
    if not stack:
        raise CFIError("empty DWARF expression")
    return stack[-1] & MASK64


def _signed(v):
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


_UNARY = {0x19: abs, 0x1F: lambda a: -a, 0x20: lambda a: ~a}
_BINARY = {
    0x1A: lambda a, b: a & b,
    0x1B: lambda a, b: int(_signed(a) / _signed(b)) if b else 0,
    0x1C: lambda a, b: a - b,
    0x1D: lambda a, b: a % b if b else 0,
    0x1E: lambda a, b: a * b,
    0x21: lambda a, b: a | b,
    0x22: lambda a, b: a + b,
    0x24: lambda a, b: a << b if b < 64 else 0,
    0x25: lambda a, b: a >> b,
    0x26: lambda a, b: _signed(a) >> b,
    0x27: lambda a, b: a ^ b,
    0x29: lambda a, b: int(_signed(a) == _signed(b)),
    0x2A: lambda a, b: int(_signed(a) >= _signed(b)),
    0x2B: lambda a, b: int(_signed(a) > _signed(b)),
    0x2C: lambda a, b: int(_signed(a) <= _signed(b)),
    0x2D: lambda a, b: int(_signed(a) < _signed(b)),
    0x2E: lambda a, b: int(_signed(a) != _signed(b)),
}


@dataclass
class Step:
    """One unwound frame, before symbolization."""
    pc: int
    sp: int
    cfa: int | None
    registers: dict
    fallback: bool = False
    signal: bool = False       # a signal trampoline frame ("<signal handler called>")


class Unwinder:
    """Walks frames. Callbacks: read(addr, n) -> bytes (FaultError when unmapped);
    cfi_for(pc) -> (CFITable, bias) or None; is_code(pc) -> bool (pc lies in a mapped
    module); is_outermost(lookup_pc) -> bool (main or the entry function: gdb stops
    there)."""

    MAX_FRAMES = 4096

    def __init__(self, arch, read, cfi_for, is_code, is_outermost):
        self.arch = arch
        self.read = read
        self.cfi_for = cfi_for
        self.is_code = is_code
        self.is_outermost = is_outermost
        self.regno = arch.DWARF_REGNO
        self.regname = arch.DWARF_NAME

    def read_u64(self, addr):
        return int.from_bytes(self.read(addr, 8), "little")

    def frames(self, registers: dict, past_main: bool = False):
        """Yield Step per frame from registers (a dict name -> int) outwards."""
        arch = self.arch
        cur = Step(registers[arch.PC], registers[arch.SP], None, dict(registers))
        prev = None
        for _ in range(self.MAX_FRAMES):
            # Below a call the pc is a return address: look up the call instruction.
            caller_frame = prev is not None and not prev.signal
            lookup = cur.pc - 1 if caller_frame else cur.pc
            found = self._cfi_step(cur.registers, lookup)
            if found is not None:
                cur.cfa, cur.signal, nxt = found
            elif self._at_sigreturn(cur.pc):
                cur.signal = True
                nxt = self._sigcontext_step(cur)
            else:
                nxt = self._fallback_step(cur, prev is None)
            if prev is not None and not prev.signal and not cur.signal \
                    and cur.cfa is not None and prev.cfa is not None:
                if cur.cfa < prev.cfa:
                    return    # gdb: "previous frame inner to this frame (corrupt stack?)"
                if cur.cfa == prev.cfa and cur.pc == prev.pc:
                    return    # gdb: "previous frame identical to this frame"
            yield cur
            if nxt is None:
                return
            if not cur.signal and not past_main and self.is_outermost(lookup):
                return
            new = Step(nxt[arch.PC], nxt[arch.SP], None, nxt,
                       fallback=found is None and not cur.signal)
            if new.pc == 0 or not self.is_code(new.pc):
                return
            prev, cur = cur, new

    def _reg(self, regs, num):
        name = self.regname.get(num)
        if name is None or name not in regs:
            raise CFIError(f"CFI uses register {num} which is not available")
        return regs[name]

    def _cfi_step(self, regs, lookup):
        """(cfa, is_signal_frame, caller registers or None at the outermost frame), or
        None when no CFI covers the pc."""
        hit = self.cfi_for(lookup)
        if hit is None:
            return None
        table, bias = hit
        found = table.row(lookup - bias)
        if found is None:
            return None
        row, fde = found

        def getreg(num):
            return self._reg(regs, num)

        try:
            if row.cfa_expr is not None:
                cfa = eval_expr(row.cfa_expr, getreg, self.read_u64)
            else:
                cfa = (getreg(row.cfa_reg) + row.cfa_offset) & MASK64
        except FaultError:
            return None, fde.cie.signal_frame, None
        try:
            ra_col = fde.cie.ra_column
            rule = row.rules.get(ra_col)
            if rule is None and ra_col not in self.regname:
                return cfa, fde.cie.signal_frame, None
            if rule is not None and rule[0] == UNDEF:
                return cfa, fde.cie.signal_frame, None
            caller = {}
            for name, value in regs.items():
                num = self.regno.get(name)
                rule = row.rules.get(num) if num is not None else None
                if rule is None:
                    caller[name] = value
                    continue
                kind, arg = rule
                if kind == UNDEF:
                    continue
                if kind == SAME:
                    caller[name] = value
                elif kind == OFFSET:
                    caller[name] = self.read_u64((cfa + arg) & MASK64)
                elif kind == VAL_OFFSET:
                    caller[name] = (cfa + arg) & MASK64
                elif kind == REGISTER:
                    caller[name] = getreg(arg)
                elif kind == EXPR:
                    caller[name] = self.read_u64(eval_expr(arg, getreg, self.read_u64, cfa))
                elif kind == VAL_EXPR:
                    caller[name] = eval_expr(arg, getreg, self.read_u64, cfa)
            ra_name = self.regname[ra_col]
            if ra_name != self.arch.PC:
                caller[self.arch.PC] = caller.get(ra_name, 0)
            if row.rules.get(self.regno[self.arch.SP]) is None:
                caller[self.arch.SP] = cfa
            return cfa, fde.cie.signal_frame, caller
        except FaultError:
            return cfa, fde.cie.signal_frame, None

    def _at_sigreturn(self, pc):
        code = self.arch.SIGRETURN_CODE
        try:
            return self.read(pc, len(code)) == code
        except FaultError:
            return False

    def _sigcontext_step(self, cur: Step):
        """The interrupted frame's registers from the ucontext on a signal frame's
        stack (used when the trampoline has no CFI)."""
        regs = cur.registers
        cur.cfa = regs[self.arch.SP]
        base = regs[self.arch.SP] + self.arch.SIGCONTEXT_OFFSET
        try:
            raw = self.read(base, 8 * len(self.arch.SIGCONTEXT_REGS))
        except FaultError:
            return None
        caller = dict(regs)
        caller.update(zip(self.arch.SIGCONTEXT_REGS, struct.unpack(
            f"<{len(self.arch.SIGCONTEXT_REGS)}Q", raw)))
        return caller

    def _fallback_step(self, cur: Step, innermost: bool):
        """No CFI covers pc: the frame-pointer chain (caller pc at [fp+8], fp at [fp]),
        or at frame 0 a pc still at a function's first instruction (ra at [sp])."""
        arch = self.arch
        regs = cur.registers
        sp, fp = regs[arch.SP], regs.get(arch.FP, 0)
        caller = dict(regs)
        try:
            if fp > sp and fp - sp < 1 << 24:
                caller[arch.FP] = self.read_u64(fp)
                caller[arch.PC] = self.read_u64(fp + 8)
                caller[arch.SP] = fp + 16
                cur.cfa = fp + 16
            elif innermost:
                caller[arch.PC] = self.read_u64(sp)
                caller[arch.SP] = sp + 8
                cur.cfa = sp + 8
            else:
                return None
        except FaultError:
            return None
        return caller
