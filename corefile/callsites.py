"""Tail-call frames from DWARF call-site information, as gdb synthesizes them.

When f calls g and g tail-calls (jumps to) h, the stack holds no frame for g; gdb
rebuilds it from DW_TAG_call_site entries: the call site at f's return address names g,
g's tail-call sites name h. This module reads those entries (for
DebugInfo.call_sites, which caches them) and finds the chain between a caller's return
address and a callee's entry.
All addresses here are unbiased (one module); cross-module targets resolve by name.
"""

from . import dwarf_format as F

TAG_CALL_SITES = (F.TAG_call_site, F.TAG_GNU_call_site)
AT_call_return_pc = 0x7D
AT_call_origin = 0x7F
AT_call_tail_call = 0x82
AT_call_target = 0x83
AT_GNU_tail_call = 0x2115
AT_GNU_call_site_target = 0x2113
AT_linkage_name = 0x6E
AT_MIPS_linkage_name = 0x2007
DW_OP_addr = 0x03
_SCOPES = (F.TAG_lexical_block, F.TAG_inlined_subroutine)


def read_call_sites(di, unit, off):
    """[(return_pc, is_tail, target)] of the function DIE at off in unit (its nested
    scopes included), read through di (a corefile.dwarf.DebugInfo); target is
    ('addr', unbiased address), ('name', function name) or None."""
    out = []
    _collect(di, unit, off, out)
    return out


def _collect(di, unit, off, out):
    for child, tag, attrs in di.children(unit, off):
        if tag in TAG_CALL_SITES:
            ret = attrs.get(AT_call_return_pc, attrs.get(F.AT_low_pc))
            if isinstance(ret, int):
                tail = bool(attrs.get(AT_call_tail_call) or attrs.get(AT_GNU_tail_call))
                out.append((ret, tail, _target(di.reader, unit, attrs)))
        elif tag in _SCOPES:
            _collect(di, unit, child, out)


def _target(reader, unit, attrs):
    origin = attrs.get(AT_call_origin, attrs.get(F.AT_abstract_origin))
    if origin is not None:
        off = reader.ref(unit, origin)
        ounit = reader.unit_at(off)
        oattrs = reader.read_die(ounit, off)[1]
        for _ in range(4):      # follow abstract_origin / specification to a name
            ranges = reader.die_ranges(ounit, oattrs)
            if ranges:
                return ("addr", ranges[0][0])
            # A declaration's symbol is its linkage name (glibc's __REDIRECT
            # aliases: __ppoll_alias -> ppoll), else its name.
            name = oattrs.get(AT_linkage_name, oattrs.get(AT_MIPS_linkage_name,
                                                         oattrs.get(F.AT_name)))
            if name is not None:
                return ("name", name.decode("utf-8", "replace"))
            nxt = oattrs.get(F.AT_abstract_origin, oattrs.get(F.AT_specification))
            if nxt is None:
                return None
            off = reader.ref(ounit, nxt)
            ounit = reader.unit_at(off)
            oattrs = reader.read_die(ounit, off)[1]
        return None
    expr = attrs.get(AT_call_target, attrs.get(AT_GNU_call_site_target))
    if isinstance(expr, (bytes, bytearray)) and len(expr) == 9 and expr[0] == DW_OP_addr:
        return ("addr", int.from_bytes(expr[1:9], "little"))
    return None


def find_chain(caller_ret, callee_entry, sites_at, limit=64):
    """The tail calls between a caller frame (its return address, absolute) and the
    callee's entry (absolute), innermost first, as [return_pc of each tail-call site].

    sites_at(pc) -> [(return_pc, is_tail, target)] of the function holding absolute
    pc, target() giving the absolute address called (or None when unknown).
    Follows gdb: the call site at caller_ret names the first function; its tail-call
    sites are followed depth-first to callee_entry; when several chains exist only their
    common callers-side prefix and callees-side suffix are kept.
    """
    site = next((s for s in sites_at(caller_ret - 1) if s[0] == caller_ret), None)
    first = site[2]() if site is not None else None
    if first is None or first == callee_entry:
        return []
    chains = []
    seen = set()

    def walk(func_addr, path):
        if len(chains) > 8 or len(path) > limit or func_addr in seen:
            return
        seen.add(func_addr)
        for ret, tail, target in sites_at(func_addr):
            if not tail:
                continue
            target = target()
            if target is None:
                continue
            if target == callee_entry:
                chains.append(path + [ret])
            else:
                walk(target, path + [ret])
        seen.discard(func_addr)

    walk(first, [])
    if not chains:
        return []
    first = chains[0]
    if all(c == first for c in chains):
        chain = first
    else:
        prefix = _common_prefix(chains)
        suffix = _common_prefix([c[::-1] for c in chains])[::-1]
        chain = prefix + suffix[max(0, len(prefix) + len(suffix) - min(map(len, chains))):]
    return chain[::-1]


def _common_prefix(chains):
    out = []
    for items in zip(*chains):
        if any(i != items[0] for i in items):
            break
        out.append(items[0])
    return out
