"""The line number program of one unit (.debug_line, DWARF 2-5): pc -> file, line."""

import bisect
import struct
from array import array

from . import dwarf_format as F
from .dwarf_format import DwarfError, cstring, sleb, uleb


class LineTable:
    """Decoded rows of one unit's line program, looked up the way gdb does."""

    def __init__(self, data, offset, reader, unit):
        self.dirs = []
        self.files = []
        self.unit_name = unit.name
        self.comp_dir = unit.comp_dir
        if data is not None:
            self._decode(data, offset, reader, unit)

    def to_data(self):
        """A marshal-able tuple of the decoded table (for the cache): the rows as bytes."""
        return (self.dirs, self.files, self.version,
                [(a, b, addrs.tobytes(), rows.tobytes()) for a, b, addrs, rows in self.seqs])

    @classmethod
    def from_data(cls, data, unit):
        dirs, files, version, seqs = data
        table = cls(None, None, None, unit)
        table.dirs, table.files, table.version = dirs, files, version
        table.seqs = []
        for a, b, addrs, rows in seqs:
            table.seqs.append((a, b, array("Q", addrs), array("Q", rows)))
        table._starts = [s[0] for s in seqs]
        return table

    def _decode(self, data, pos, reader, unit):
        length, = struct.unpack_from("<I", data, pos)
        pos += 4
        osz = 4
        if length == 0xFFFFFFFF:
            length, = struct.unpack_from("<Q", data, pos)
            pos += 8
            osz = 8
        end = pos + length
        version, = struct.unpack_from("<H", data, pos)
        pos += 2
        if version >= 5:
            pos += 2  # address_size, segment_selector_size
        header_length = int.from_bytes(data[pos:pos + osz], "little")
        pos += osz
        program = pos + header_length
        min_inst = data[pos]
        pos += 1
        if version >= 4:
            pos += 1  # maximum_operations_per_instruction (VLIW only)
        default_is_stmt = data[pos] != 0
        line_base = struct.unpack_from("<b", data, pos + 1)[0]
        line_range = data[pos + 2]
        opcode_base = data[pos + 3]
        lengths = data[pos + 4:pos + 3 + opcode_base]
        pos += 3 + opcode_base
        if version >= 5:
            self.dirs, pos = self._entries(data, pos, reader, unit, osz)
            self.dirs = [d[0] for d in self.dirs]
            files, pos = self._entries(data, pos, reader, unit, osz)
            self.files = [(name, d) for name, d in files]
        else:
            self.dirs = [None]
            while data[pos]:
                d = cstring(data, pos)
                pos += len(d) + 1
                self.dirs.append(d)
            pos += 1
            self.files = [(unit.name or b"", 0)]
            while data[pos]:
                name = cstring(data, pos)
                pos += len(name) + 1
                d, pos = uleb(data, pos)
                _mtime, pos = uleb(data, pos)
                _size, pos = uleb(data, pos)
                self.files.append((name, d))
        self.version = version
        self._run(data, program, end, min_inst, default_is_stmt, line_base, line_range,
                  opcode_base, lengths, unit.addr_size)

    @staticmethod
    def _entries(data, pos, reader, unit, osz):
        """DWARF 5 directory or file entries: [(name, directory index)]."""
        nformats = data[pos]
        pos += 1
        formats = []
        for _ in range(nformats):
            ctype, pos = uleb(data, pos)
            form, pos = uleb(data, pos)
            formats.append((ctype, form))
        count, pos = uleb(data, pos)
        if count > len(data) - pos:
            raise DwarfError(f"line table header at {pos:#x}: {count} entries cannot fit")
        out = []
        for _ in range(count):
            name = b""
            d = 0
            for ctype, form in formats:
                if form == F.FORM_line_strp:
                    v = cstring(reader.line_str, int.from_bytes(data[pos:pos + osz], "little"))
                    pos += osz
                elif form == F.FORM_strp:
                    v = cstring(reader.str, int.from_bytes(data[pos:pos + osz], "little"))
                    pos += osz
                elif form == F.FORM_string:
                    v = cstring(data, pos)
                    pos += len(v) + 1
                elif form == F.FORM_udata:
                    v, pos = uleb(data, pos)
                elif form == F.FORM_data1:
                    v = data[pos]
                    pos += 1
                elif form == F.FORM_data2:
                    v = data[pos] | data[pos + 1] << 8
                    pos += 2
                elif form == F.FORM_data4:
                    v = int.from_bytes(data[pos:pos + 4], "little")
                    pos += 4
                elif form == F.FORM_data8:
                    v = int.from_bytes(data[pos:pos + 8], "little")
                    pos += 8
                elif form == F.FORM_data16:
                    v = data[pos:pos + 16]
                    pos += 16
                elif form == F.FORM_block:
                    n, pos = uleb(data, pos)
                    v = data[pos:pos + n]
                    pos += n
                else:
                    raise DwarfError(f"unsupported form {form:#x} in a line table header")
                if ctype == 1:  # DW_LNCT_path
                    name = v
                elif ctype == 2:  # DW_LNCT_directory_index
                    d = v
            out.append((name, d))
        return out, pos

    def _run(self, data, pos, end, min_inst, default_is_stmt, line_base, line_range,
             opcode_base, lengths, addr_size):
        """Run the state machine: self.seqs = sorted [(start, end, addrs, rows)], addrs and
        rows arrays of u64, a row packed as file << 32 | line << 1 | is_stmt."""
        # Special opcodes advance address and line by fixed amounts: tabulate them.
        special_addr = [0] * 256
        special_line = [0] * 256
        for op in range(opcode_base, 256):
            special_addr[op] = ((op - opcode_base) // line_range) * min_inst
            special_line[op] = line_base + (op - opcode_base) % line_range
        const_add = special_addr[255]
        seqs = []
        addrs = []
        rows = []
        add_addr = addrs.append
        add_row = rows.append
        address = 0
        file = 1
        line = 1
        is_stmt = default_is_stmt
        while pos < end:
            op = data[pos]
            pos += 1
            if op >= opcode_base:
                address += special_addr[op]
                line += special_line[op]
                add_addr(address)
                add_row(file << 32 | (line & 0x7FFFFFFF) << 1 | is_stmt)
            elif op == 5:  # set_column (ignored)
                while data[pos] & 0x80:
                    pos += 1
                pos += 1
            elif op == 6:  # negate_stmt
                is_stmt = not is_stmt
            elif op == 2:  # advance_pc
                v, pos = uleb(data, pos)
                address += v * min_inst
            elif op == 8:  # const_add_pc
                address += const_add
            elif op == 3:  # advance_line
                v, pos = sleb(data, pos)
                line += v
            elif op == 1:  # copy
                add_addr(address)
                add_row(file << 32 | (line & 0x7FFFFFFF) << 1 | is_stmt)
            elif op == 4:  # set_file
                file, pos = uleb(data, pos)
                file &= 0xFFFFFFFF   # an absurd number names no file either way
            elif op == 0:  # extended
                n, pos = uleb(data, pos)
                sub = data[pos]
                if sub == 1:  # DW_LNE_end_sequence
                    if addrs:
                        seqs.append((addrs[0], address, _u64s(addrs), array("Q", rows)))
                    addrs = []
                    rows = []
                    add_addr = addrs.append
                    add_row = rows.append
                    address = 0
                    file = 1
                    line = 1
                    is_stmt = default_is_stmt
                elif sub == 2:  # DW_LNE_set_address
                    address = int.from_bytes(data[pos + 1:pos + 1 + addr_size], "little")
                pos += n
            elif op == 9:  # fixed_advance_pc
                address += data[pos] | data[pos + 1] << 8
                pos += 2
            elif op in (7, 10, 11):  # basic_block, prologue_end, epilogue_begin
                pass
            else:  # set_isa and unknown standard opcodes: skip their uleb operands
                for _ in range(lengths[op - 1]):
                    _v, pos = uleb(data, pos)
        seqs.sort(key=lambda s: s[0])
        self.seqs = seqs
        self._starts = [s[0] for s in seqs]

    def lookup(self, pc):
        """(file name, line) of pc like gdb's find_pc_line, or None."""
        i = bisect.bisect_right(self._starts, pc) - 1
        if i < 0 or pc >= self.seqs[i][1]:
            return None
        _start, _stop, addrs, rows = self.seqs[i]
        j = bisect.bisect_right(addrs, pc) - 1
        if j < 0:
            return None
        # gdb prefers an is_stmt row among those at the same address.
        k = j
        while not rows[k] & 1 and k > 0 and addrs[k - 1] == addrs[j]:
            k -= 1
        if rows[k] & 1:
            j = k
        row = rows[j]
        line = row >> 1 & 0x7FFFFFFF
        if line == 0:
            return None
        return self.file_name(row >> 32), line

    def file_name(self, index):
        """A file number named as gdb names its symtab (gdb's dwarf2_start_subfile and
        start_subfile): the entry's name joined to its directory (DWARF 5 directory 0 is
        the unit's directory; DWARF 4 directory 0 means none), except that a path equal
        to the unit's comp_dir + DW_AT_name is called by the unit's DW_AT_name."""
        if index is None or not 0 <= index < len(self.files):
            return None
        name, d = self.files[index]
        if not name.startswith(b"/") and 0 <= d < len(self.dirs) and self.dirs[d] is not None:
            name = self.dirs[d] + b"/" + name
        primary = self.unit_name
        if primary and name != primary and name.startswith(b"/") \
                and not primary.startswith(b"/") and self.comp_dir \
                and name == self.comp_dir + b"/" + primary:
            name = primary
        return name.decode("utf-8", "replace")


def _u64s(values):
    """An array of u64 (addresses past 2**64 in a malformed program wrap around)."""
    try:
        return array("Q", values)
    except OverflowError:
        return array("Q", (v & 0xFFFFFFFFFFFFFFFF for v in values))
