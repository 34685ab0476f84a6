"""Hang commands: locks, waits."""

from ..walkers import locks as walk_locks
from ..walkers import waits as walk_waits
from ..commands import Arg, command
from ..render import locks as render


@command("locks", "Every lock found, with its owner and waiters: the BQL and each thread's "
         "bql_locked/iothread_locked flag, job_mutex, the block graph lock, QemuMutexes, "
         "CoMutexes, CoRwlocks and CoQueues of AioContexts, nodes (and their driver's "
         "state), BlockBackends and throttle groups, and the pthread mutex, condition, "
         "event or futex each blocked thread waits for (from its system call and stack).",
         arguments=[Arg("all", "also list the locks that are free and have no waiters",
                        flags=("--all",), is_flag=True)],
         text=render.render_locks)
def locks(target, args):
    return walk_locks.all_locks(target)


@command("waits", "The wait-for graph over threads and coroutines: what each blocked thread "
         "or waiting coroutine waits for (a mutex, a drain and its nodes' in_flight, a "
         "CoMutex, a CoQueue, I/O completion, ...) and who could release it; deadlock "
         "cycles, and where each blocked thread's chain ends.",
         text=render.render_waits)
def waits(target, args):
    return walk_waits.wait_graph(target)
