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


# glibc's functions that wait: for a mutex, for a condition variable.
MUTEX_WAITS = ("__lll_lock_wait", "__lll_lock_wait_private", "__pthread_mutex_lock_full",
               "___pthread_mutex_lock", "__pthread_mutex_lock")
COND_WAITS = ("__pthread_cond_wait_common", "___pthread_cond_wait",
              "___pthread_cond_timedwait64", "__pthread_cond_timedwait")
# QEMU's wrappers around a wait: the function that waits is the first frame outside them.
WAIT_WRAPPERS = frozenset({
    "qemu_mutex_lock_impl", "qemu_rec_mutex_lock_impl", "qemu_cond_wait_impl",
    "qemu_cond_timedwait_impl", "qemu_cond_timedwait_ts", "qemu_futex_wait",
    "qemu_event_wait", "qemu_sem_wait", "qemu_sem_timedwait", "qemu_poll_ns",
    "fdmon_poll_wait", "fdmon_epoll_wait", "fdmon_io_uring_wait", "aio_poll",
    "qemu_thread_start"})


def _functions(frames):
    return (loc.function for f in frames for loc in f.locations())


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
