"""Walk every list of the synthetic fixture (fixtures/synthetic/expected.json) with
qemugdb's queue walkers on any Target; importable inside gdb (standard library only)."""

from qemugdb.walkers import queue
from qemugdb.target import CorruptError, FaultError

WALKERS = {"QLIST": queue.qlist_foreach, "QSLIST": queue.qslist_foreach,
           "QTAILQ": queue.qtailq_foreach, "QSIMPLEQ": queue.qsimpleq_foreach}


def walk_all(target, lists):
    """{head: {"values", "addresses", "end": null|cycle|unmapped|broken, "at": address}}
    (broken: a back-link that does not point back)."""
    out = {}
    for head, spec in lists.items():
        rec = out[head] = {"values": [], "addresses": [], "end": "null", "at": None}
        try:
            for elem in WALKERS[spec["kind"]](target.variable(head), spec["field"]):
                rec["addresses"].append(elem.address_)
                rec["values"].append(elem.value.value_())
        except CorruptError as e:
            rec["end"] = "broken" if "back-link" in str(e) else "cycle"
            rec["at"] = e.address
        except FaultError as e:
            rec["end"], rec["at"] = "unmapped", e.address
            rec["addresses"].pop()   # the element at the bad address yielded no value
    return out
