"""A name index over the top-level DIEs of every unit, built by a fast scanner.

The scanner reads the raw .debug_info bytes with each unit's abbreviations: it skips
attribute values by their precomputed sizes and jumps over children with DW_AT_sibling, so
it never decodes a DIE it does not index. The index is plain dicts of bytes and ints, which
marshal stores and loads quickly (the cache keyed by build-id).
"""

import marshal
import os
import struct
import threading

from .dwarf_format import (
    ALT_BASE, AT_abstract_origin, AT_declaration, AT_name, AT_specification, CHECK, ENUMERATORS,
    FORM_GNU_strp_alt, FORM_ref4, FORM_string, FORM_strp, FORM_strp_sup, FUNC_DEF, TAG_DEF,
    TAG_enumeration_type, TAG_enumerator, TYPE_NAME, VAR_DEF, DwarfError, die_action,
    string_end, uleb)

_u32 = struct.Struct("<I").unpack_from

INDEX_VERSION = 7


class NameIndex:
    """Where each name is defined, as DIE offsets (see Reader: a dwz supplementary file's
    DIEs from ALT_BASE on).

    types: typedef and base type names -> first DIE; tags: (tag, name) -> first struct,
    union or enum definition; variables / functions: name -> every defining DIE (an int
    for one, a list for several: read them with dies()); enumerators: enumerator name ->
    the first top-level enum (named or anonymous) defining it; units: a unit's DW_AT_name
    (its source file, as the compiler was given it) -> its offset (read with dies()).
    """
    __slots__ = ("types", "tags", "variables", "functions", "enumerators", "units")

    def __init__(self, types=None, tags=None, variables=None, functions=None,
                 enumerators=None, units=None):
        self.types = {} if types is None else types
        self.tags = {} if tags is None else tags
        self.variables = {} if variables is None else variables
        self.functions = {} if functions is None else functions
        self.enumerators = {} if enumerators is None else enumerators
        self.units = {} if units is None else units

    def to_data(self, where=None):
        """A marshal-able tuple; where (the section's place in its file) guards against a
        cache file that belongs to another build or file."""
        return (INDEX_VERSION, where, self.types, self.tags, self.variables, self.functions,
                self.enumerators, self.units)

    @classmethod
    def from_data(cls, data, where=None):
        if not isinstance(data, tuple) or len(data) != 8 or data[0] != INDEX_VERSION \
                or data[1] != where:
            return None
        return cls(*data[2:])


PARALLEL_MIN_BYTES = 4 << 20


def build_index(reader):
    """The NameIndex of every unit of reader, then of its dwz supplementary file's.

    Large sections are split into contiguous runs of units scanned by forked children (one
    per idle CPU, up to 4) in parallel; a child that fails is redone here.
    """
    if any(u.unit_type in (4, 5) for u in reader.units):  # skeleton, split compile
        raise DwarfError("split DWARF (-gsplit-dwarf, .dwo files) is not supported")
    units = [u for u in reader.units if u.unit_type in (1, 2, 3)]  # compile, type, partial
    if reader.alt is not None:
        units += [u for u in reader.alt.units if u.unit_type in (1, 2, 3)]
    workers = 1
    if (sum(u.end - u.offset for u in units) >= PARALLEL_MIN_BYTES and hasattr(os, "fork")
            and threading.active_count() == 1):
        # Only CPUs that are idle help: on a busy machine the forks just compete.
        cpus = os.cpu_count() or 1
        workers = max(1, min(4, round(cpus - os.getloadavg()[0])))
    chunks = _split(units, workers)
    children = []
    for chunk in chunks[1:]:
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: scan, send the partial index, exit without cleanup
            status = 1
            try:
                os.close(rfd)
                with os.fdopen(wfd, "wb") as out:
                    out.write(marshal.dumps(_scan(reader, chunk).to_data()))
                status = 0
            finally:
                os._exit(status)
        os.close(wfd)
        children.append((pid, rfd, chunk))
    parts = []
    try:
        index = _scan(reader, chunks[0])
        for _pid, rfd, _chunk in children:
            with os.fdopen(rfd, "rb", closefd=False) as f:
                parts.append(f.read())
    finally:
        for pid, rfd, _chunk in children:
            os.close(rfd)
            parts.append(os.waitpid(pid, 0)[1])
    statuses = parts[len(children):]
    for (_pid, _rfd, chunk), data, status in zip(children, parts, statuses):
        part = NameIndex.from_data(marshal.loads(data)) if status == 0 and data else None
        _merge(index, part if part is not None else _scan(reader, chunk))
    return index


def _split(units, n):
    """n contiguous runs of units of about equal byte size (fewer when units are few)."""
    total = sum(u.end - u.offset for u in units)
    chunks = [[]]
    done = 0
    for u in units:
        if done >= total * len(chunks) / n and len(chunks) < n:
            chunks.append([])
        chunks[-1].append(u)
        done += u.end - u.offset
    return [c for c in chunks if c] or [[]]


def _scan(reader, units):
    index = NameIndex()
    seen = set()
    for unit in units:
        scan_unit(reader.alt if unit.offset >= ALT_BASE else reader, unit, index, seen)
    return index


def _merge(index, part):
    """Append part (the index of later units) to index, keeping first definitions first."""
    for name, off in part.types.items():
        index.types.setdefault(name, off)
    for key, off in part.tags.items():
        index.tags.setdefault(key, off)
    for name, off in part.enumerators.items():
        index.enumerators.setdefault(name, off)
    for table, more in ((index.variables, part.variables), (index.functions, part.functions),
                        (index.units, part.units)):
        for name, offs in more.items():
            for off in dies(more, name):
                _add(table, name, off)


def _add(table, name, die):
    """Record die under name: a lone offset stays an int (the index loads faster)."""
    have = table.get(name)
    if have is None:
        table[name] = die
    elif type(have) is int:
        table[name] = [have, die]
    else:
        have.append(die)


def dies(table, name):
    """The DIE offsets recorded under name in variables, functions or units."""
    have = table.get(name, ())
    return (have,) if type(have) is int else have


def scan_unit(reader, unit, index, seen):
    """Add the names defined by the top-level DIEs of unit (one of reader's own) to index.

    seen is a set shared by the scans of one index: string offset << 16 | tag of the type
    names already indexed (a supplementary file's strings from ALT_BASE on).
    """
    reader.prepare(unit)
    if unit.name is not None:
        _add(index.units, unit.name, unit.offset)
    info = reader.info
    strtab = reader.str
    # Positions below are in info; shift makes them DIE offsets (see Reader).
    shift = reader.shift
    alt_str = reader.alt.str if reader.alt is not None else None
    abbrevs = unit.abbrevs
    base = unit.offset - shift
    types = index.types
    tags = index.tags
    end = unit.end - shift
    # Step over the root DIE to its first child.
    code, pos = uleb(info, unit.die_offset - shift)
    root = abbrevs[code]
    if not root.children:
        return
    pos = root.end(info, pos)
    skips = unit.skips
    while pos < end:
        die = pos
        code = info[pos]
        if code < 0x80:
            pos += 1
            step = skips[code]
            if step >= 0:
                pos += step
                continue
            if step < -1:
                pos = base + _u32(info, pos - step - 2)[0]
                if pos <= die:
                    raise DwarfError(f"DIE at {die:#x}: DW_AT_sibling points backwards")
                continue
        else:
            code, pos = uleb(info, pos)
        if code == 0:
            return  # end of the root's children
        ab = abbrevs[code]
        action = ab.action
        if action:
            if action == CHECK:
                action = _check(reader, unit, die + shift)
            at = ab.name_at
            form = ab.name_form
            if action == ENUMERATORS:
                name = None
                if ab.children:
                    _scan_enumerators(reader, unit, die, ab.end(info, pos), index, seen)
            elif at is not None and (form == FORM_strp or (
                    alt_str is not None and (form == FORM_GNU_strp_alt or form == FORM_strp_sup))):
                o = _u32(info, pos + at)[0]
                table = strtab
                key = o + shift
                if form != FORM_strp:
                    table = alt_str
                    key = o + ALT_BASE
                if action == TYPE_NAME or action == TAG_DEF:
                    # Most units repeat the same typedefs: only the first one counts.
                    key = key << 16 | ab.tag
                    if key in seen:
                        name = None
                    else:
                        seen.add(key)
                        name = table[o:table.index(b"\0", o)]
                else:
                    name = table[o:table.index(b"\0", o)]
            elif at is not None and ab.name_form == FORM_string:
                p = pos + at
                name = info[p:string_end(info, p)]
            elif at is None and ab.origin_at is not None:
                # Named through its declaration or abstract instance, in this unit.
                target = base + _u32(info, pos + ab.origin_at)[0]
                code, p = uleb(info, target)
                tab = abbrevs[code]
                if tab.name_at is not None and tab.name_form == FORM_strp:
                    o = _u32(info, p + tab.name_at)[0]
                    name = strtab[o:strtab.index(b"\0", o)]
                else:
                    name = _name(reader, unit, target + shift)
            else:
                name = _name(reader, unit, die + shift)
            if name is None:
                pass
            elif action == TYPE_NAME:
                if name not in types:
                    types[name] = die + shift
            elif action == TAG_DEF:
                key = (ab.tag, name)
                if key not in tags:
                    tags[key] = die + shift
                    if ab.tag == TAG_enumeration_type and ab.children:
                        _scan_enumerators(reader, unit, die, ab.end(info, pos), index, seen)
            elif action == VAR_DEF:
                _add(index.variables, name, die + shift)
            elif action == FUNC_DEF:
                _add(index.functions, name, die + shift)
        # Next sibling.
        if ab.children:
            at = ab.sib_at
            if at is not None:
                pos = base + _u32(info, pos + at)[0]
                if pos <= die:
                    raise DwarfError(f"DIE at {die:#x}: DW_AT_sibling points backwards")
            else:
                if ab.sib_form == FORM_ref4:
                    pos = base + _u32(info, ab.attr_pos(info, pos, 0x01))[0]
                    if pos <= die:
                        raise DwarfError(f"DIE at {die:#x}: DW_AT_sibling points backwards")
                else:
                    pos = _skip_subtree(info, abbrevs, ab.end(info, pos), base)
        else:
            f = ab.fixed
            pos = pos + f if f is not None else ab.end(info, pos)


def _scan_enumerators(reader, unit, enum, pos, index, seen):
    """Index the enumerators of the enum at position enum of reader.info, whose children
    start at pos. An anonymous enum whose first enumerator was indexed already (the same
    header in another unit) is not read again."""
    info = reader.info
    strtab = reader.str
    shift = reader.shift
    abbrevs = unit.abbrevs
    table = index.enumerators
    first = True
    while True:
        die = pos
        code, pos = uleb(info, pos)
        if code == 0:
            return
        ab = abbrevs[code]
        if ab.tag == TAG_enumerator:
            if ab.name_at is not None and ab.name_form == FORM_strp:
                o = _u32(info, pos + ab.name_at)[0]
                if first:
                    key = (o + shift) << 16 | TAG_enumerator
                    if key in seen:
                        return
                    seen.add(key)
                name = strtab[o:strtab.index(b"\0", o)]
            else:
                name = _name(reader, unit, die + shift)
            first = False
            if name is not None and name not in table:
                table[name] = enum + shift
        pos = ab.end(info, pos)
        if ab.children:
            pos = _skip_subtree(info, abbrevs, pos, unit.offset - shift)


def _skip_subtree(info, abbrevs, pos, base):
    """Offset past the children that start at pos (and their null terminator); base is
    the unit's start in info (DW_AT_sibling is relative to it). dwz's output has no
    siblings at the top level, so this loop is hot there."""
    depth = 1
    while depth:
        code = info[pos]
        if code < 0x80:
            pos += 1
        else:
            code, pos = uleb(info, pos)
        if code == 0:
            depth -= 1
            continue
        ab = abbrevs[code]
        if ab.children:
            if ab.sib_at is not None:   # the whole subtree in one step
                pos = base + _u32(info, pos + ab.sib_at)[0]
                continue
            depth += 1
        f = ab.fixed
        pos = pos + f if f is not None else ab.end(info, pos)
    return pos


def _check(reader, unit, die):
    """The action of a DIE whose abbreviation carries DW_AT_declaration as DW_FORM_flag."""
    tag, attrs, _children, _next = reader.read_die(unit, die, raw=True)
    return die_action(tag, attrs, bool(attrs[AT_declaration][1]))


def _name(reader, unit, die):
    """DW_AT_name of a DIE, following DW_AT_specification / DW_AT_abstract_origin."""
    for _ in range(8):
        _tag, attrs, _children, _next = reader.read_die(unit, die)
        name = attrs.get(AT_name)
        if name is not None:
            return name
        target = attrs.get(AT_specification, attrs.get(AT_abstract_origin))
        if target is None:
            return None
        if type(target) is tuple:  # DW_FORM_ref_addr or ref_alt: may be in another unit
            target = target[1]
            unit = reader.unit_at(target)
        die = target
    return None
