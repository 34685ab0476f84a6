"""A name index over the top-level DIEs of every unit, built by a fast scanner.

The scanner reads the raw .debug_info bytes with each unit's abbreviations: it skips
attribute values by their precomputed sizes and jumps over children with DW_AT_sibling, so
it never decodes a DIE it does not index. The index is plain dicts of bytes and ints, which
marshal stores and loads quickly (the cache keyed by build-id).
"""

import struct

from .dwarf_format import (
    AT_abstract_origin, AT_declaration, AT_name, AT_specification, CHECK, FORM_ref4,
    FORM_strp, FORM_string, FORM_line_strp, FUNC_DEF, SKIP, TAG_DEF, TYPE_NAME, VAR_DEF,
    cstring, uleb)

_u32 = struct.Struct("<I").unpack_from

INDEX_VERSION = 1


class NameIndex:
    """Where each name is defined, as absolute .debug_info offsets of DIEs.

    types: typedef and base type names -> first DIE; tags: (tag, name) -> first struct,
    union or enum definition; variables / functions: name -> every defining DIE.
    """
    __slots__ = ("types", "tags", "variables", "functions")

    def __init__(self, types=None, tags=None, variables=None, functions=None):
        self.types = {} if types is None else types
        self.tags = {} if tags is None else tags
        self.variables = {} if variables is None else variables
        self.functions = {} if functions is None else functions

    def to_data(self):
        return (INDEX_VERSION, self.types, self.tags, self.variables, self.functions)

    @classmethod
    def from_data(cls, data):
        if not isinstance(data, tuple) or len(data) != 5 or data[0] != INDEX_VERSION:
            return None
        return cls(*data[1:])


def scan_unit(reader, unit, index):
    """Add the names defined by the top-level DIEs of unit to index."""
    reader.prepare(unit)
    info = reader.info
    strtab = reader.str
    abbrevs = unit.abbrevs
    base = unit.offset
    types = index.types
    tags = index.tags
    end = unit.end
    # Step over the root DIE to its first child.
    code, pos = uleb(info, unit.die_offset)
    root = abbrevs[code]
    if not root.children:
        return
    pos = root.end(info, pos)
    while pos < end:
        die = pos
        code = info[pos]
        if code < 0x80:
            pos += 1
        else:
            code, pos = uleb(info, pos)
        if code == 0:
            return  # end of the root's children
        ab = abbrevs[code]
        action = ab.action
        if action:
            if action == CHECK:
                action = _check(reader, unit, die)
            at = ab.name_at
            if at is not None and ab.name_form == FORM_strp:
                o = _u32(info, pos + at)[0]
                name = strtab[o:strtab.index(b"\0", o)]
            elif at is None and ab.origin_at is not None:
                # Named through its declaration or abstract instance, in this unit.
                target = base + _u32(info, pos + ab.origin_at)[0]
                code, p = uleb(info, target)
                tab = abbrevs[code]
                if tab.name_at is not None and tab.name_form == FORM_strp:
                    o = _u32(info, p + tab.name_at)[0]
                    name = strtab[o:strtab.index(b"\0", o)]
                else:
                    name = _name(reader, unit, target)
            else:
                name = _name(reader, unit, die)
            if name is None:
                pass
            elif action == TYPE_NAME:
                if name not in types:
                    types[name] = die
            elif action == TAG_DEF:
                key = (ab.tag, name)
                if key not in tags:
                    tags[key] = die
            elif action == VAR_DEF:
                index.variables.setdefault(name, []).append(die)
            elif action == FUNC_DEF:
                index.functions.setdefault(name, []).append(die)
        # Next sibling.
        if ab.children:
            at = ab.sib_at
            if at is not None:
                pos = base + _u32(info, pos + at)[0]
            else:
                sib = ab.attr_pos(info, pos, 0x01)
                if sib is not None and ab.attrs[_attr_index(ab, 0x01)][1] == FORM_ref4:
                    pos = base + _u32(info, sib)[0]
                else:
                    pos = _skip_subtree(info, abbrevs, ab.end(info, pos))
        else:
            f = ab.fixed
            pos = pos + f if f is not None else ab.end(info, pos)


def _attr_index(ab, wanted):
    for i, (at, _form, _implicit) in enumerate(ab.attrs):
        if at == wanted:
            return i
    return None


def _skip_subtree(info, abbrevs, pos):
    """Offset past the children that start at pos (and their null terminator)."""
    depth = 1
    while depth:
        code, pos = uleb(info, pos)
        if code == 0:
            depth -= 1
            continue
        ab = abbrevs[code]
        pos = ab.end(info, pos)
        if ab.children:
            depth += 1
    return pos


def _check(reader, unit, die):
    """The action of a DIE whose abbreviation carries DW_AT_declaration as DW_FORM_flag."""
    from .dwarf_format import (TAG_base_type, TAG_subprogram, TAG_typedef, TAG_variable,
                               AT_location, AT_low_pc, AT_ranges, _TAG_KINDS)
    tag, attrs, _children, _next = reader.read_die(unit, die, raw=True)
    if attrs.get(AT_declaration, (0, 0))[1]:
        return SKIP
    if AT_name not in attrs and tag not in (TAG_variable, TAG_subprogram):
        return SKIP
    if tag in (TAG_typedef, TAG_base_type):
        return TYPE_NAME
    if tag in _TAG_KINDS:
        return TAG_DEF
    if tag == TAG_variable and AT_location in attrs:
        return VAR_DEF
    if tag == TAG_subprogram and (AT_low_pc in attrs or AT_ranges in attrs):
        return FUNC_DEF
    return SKIP


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
        if type(target) is tuple:  # DW_FORM_ref_addr: may be in another unit
            target = target[1]
            unit = reader.unit_at(target)
        die = target
    return None
