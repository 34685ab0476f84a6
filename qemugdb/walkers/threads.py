"""What each thread of QEMU is: its role from the functions on its stack (main loop,
iothread, vCPU, worker, ...) and the IOThread objects' thread ids."""

import re

from ..target import Frame, Target, TargetError
from .iothread import iothreads

# QEMU's thread bodies: the outermost of these on a thread's stack tells its role.
ROLES = {
    "main": "main loop", "qemu_main": "main loop", "qemu_default_main": "main loop",
    "iothread_run": "iothread", "worker_thread": "worker", "call_rcu_thread": "rcu",
    "migration_thread": "migration", "sigwait_compat": "signal",
    "coroutine_trampoline": "coroutine",  # a stack that is a coroutine's (bt stops there)
}
VCPU = re.compile(r"cpu_thread_fn$")  # kvm_vcpu_thread_fn, mttcg_cpu_thread_fn, rr_..., hvf_...


def _functions(frames):
    for f in frames:
        for loc in f.location.inlined:
            yield loc.function
        yield f.location.function


def thread_role(frames: list[Frame]) -> str:
    """main loop, iothread, worker, rcu, vCPU, ... from the functions on a thread's stack."""
    for name in reversed([n for n in _functions(frames) if n]):
        if VCPU.search(name):
            return "vCPU"
        if name in ROLES:
            return ROLES[name]
    return "other"


def iothread_ids(target: Target) -> dict[int, str]:
    """{tid: IOThread id} from the IOThread objects (thread_id), where readable."""
    try:
        return {t.thread_id: t.id for t in iothreads(target) if t.thread_id}
    except TargetError:
        return {}
