"""The one contract of what walkers return: records that declare which of their fields say
what went wrong.

Every record and result a walker returns is a dataclass deriving from Record and names its
fields by role:
  ERRORS   what could not be read: an item's `error` (the rest of the item was read), a
           result's `errors` (walks that broke part way; what came before is kept). Any of
           them makes the result partial (exit 1, `<error: …>` in the text).
  MISSING  what this program does not have (a root, a member of this QEMU version): not an
           error, the output says why a part is absent.
  NOTES    information (why a coroutine is not unwound, ...).
The JSON keeps each record's own field names (docs/json.md); the roles are the contract.
A lookup that names nothing raises errors.NotFound (exit 2).
"""

import dataclasses


class Record:
    """Base of every walker record: the roles of its fields (see the module docstring)."""
    ERRORS = ("error",)
    MISSING = ("absent",)
    NOTES = ()


def problems(result):
    """Every error `result` declares, at any depth (records, lists, dicts of them), in the
    order met: [] when the result is complete."""
    out = []

    def visit(value):
        if isinstance(value, Record):
            for name in value.ERRORS:
                found = getattr(value, name)
                if isinstance(found, str) and found:
                    out.append(found)
                elif isinstance(found, (list, tuple)):
                    out.extend(str(f) for f in found)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                visit(getattr(value, f.name))
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)

    visit(result)
    return out
