"""locks.py and waits.py on a MockTarget: threads blocked in futex() on glibc mutexes
(owners from __owner, names from the symbol table), a lock-order cycle, a chain ending in a
running thread, an idle process; and the cycle search on hand-made graphs."""

import struct

from mock_target import (INT, UINT64, MockTarget, MockType, integer, member, struct as mstruct,
                         typedef)
from qemugdb.walkers import locks, waits
from qemugdb.target import Frame, Location, Process, Thread

EXE = "/usr/bin/prog"
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
FUTEX, PPOLL, NO_SYSCALL = 202, 271, (1 << 64) - 1


class HungTarget(MockTarget):
    """A MockTarget with threads (registers, stacks by function name) and data symbols."""

    def __init__(self):
        super().__init__()
        self._threads, self._stacks, self.symbols = [], {}, {}
        data = mstruct("__pthread_mutex_s", 40, [
            member("__lock", INT, 0), member("__count", integer("unsigned int", 4), 4),
            member("__owner", INT, 8)])
        union = mstruct(None, 40, [member("__data", data, 0), member("__size", UINT64, 0)],
                        kind="union")
        self.mutex_type = self.add_type(typedef("pthread_mutex_t", union))

    def mutex(self, name, address, owner):
        self.map(address, struct.pack("<iIi", 1 if owner else 0, 0, owner) + bytes(28))
        self.add_variable(name, address, self.mutex_type)
        self.symbols[address] = name

    def thread(self, num, tid, stack, syscall=NO_SYSCALL, rdi=0):
        """stack: [(function, module)] innermost first."""
        regs = {"orig_rax": syscall, "rdi": rdi, "rsi": 0, "rdx": 0, "rip": num << 12,
                "rsp": num << 20}
        self._threads.append(Thread(num, tid, None, regs))
        self._stacks[regs["rip"]] = [
            Frame(i, regs["rip"] + i, regs["rsp"], Location(regs["rip"] + i, function=f,
                                                            module=m))
            for i, (f, m) in enumerate(stack)]

    def threads(self):
        return list(self._threads)

    def unwind(self, registers):
        return self._stacks[registers["rip"]]

    def process(self):
        return Process(executable=EXE, build_id=None, pid=1)

    def data_symbol(self, address):
        return (self.symbols[address], 0) if address in self.symbols else None


def lock_wait(body):
    return [("__lll_lock_wait", LIBC), ("___pthread_mutex_lock", LIBC), (body, EXE),
            ("start_thread", LIBC)]


def test_lock_order_cycle_is_a_deadlock_with_both_edges():
    t = HungTarget()
    t.mutex("cache_lock", 0x1000, owner=101)
    t.mutex("journal_lock", 0x2000, owner=102)
    t.thread(1, 101, lock_wait("evict_thread"), FUTEX, 0x2000)
    t.thread(2, 102, lock_wait("flush_thread"), FUTEX, 0x1000)
    result = locks.all_locks(t)
    assert [(s.state, s.waits_for.kind, s.waits_for.name, s.waits_for.owner_thread)
            for s in result.threads] == [("blocked", "mutex", "journal_lock", 2),
                                         ("blocked", "mutex", "cache_lock", 1)]
    assert {(lk.name, lk.owner_thread, tuple(lk.waiting_threads)) for lk in result.locks} == {
        ("journal_lock", 2, (1,)), ("cache_lock", 1, (2,))}
    graph = waits.wait_graph(t)
    [cycle] = graph.cycles
    assert sorted((graph.edges[i].waiter, graph.edges[i].holder) for i in cycle) == [
        ("thread 1", "thread 2"), ("thread 2", "thread 1")]
    text = waits.diagnosis(graph)
    assert text.startswith("Deadlock:") and "journal_lock" in text and "cache_lock" in text


def test_chain_ends_in_the_owner_running_user_code():
    t = HungTarget()
    t.mutex("state_lock", 0x1000, owner=102)
    t.thread(1, 101, lock_wait("main"), FUTEX, 0x1000)
    t.thread(2, 102, [("compute", EXE), ("start_thread", LIBC)])
    graph = waits.wait_graph(t)
    assert graph.cycles == []
    [chain] = graph.chains
    assert chain.path == ["thread 1", "thread 2"]
    assert chain.end.startswith("thread 2 is running") and "compute" in chain.end
    assert "state_lock" in waits.diagnosis(graph)


def test_a_free_mutex_waited_for_has_no_holder():
    t = HungTarget()
    t.mutex("lost_wakeup", 0x1000, owner=0)
    t.thread(1, 101, lock_wait("main"), FUTEX, 0x1000)
    graph = waits.wait_graph(t)
    [edge] = graph.edges
    assert edge.holder is None and "free" in edge.what
    assert graph.chains[0].end.startswith("main loop thread 1 is blocked")
    assert waits.diagnosis(graph) == (
        "Nothing is stuck: main loop thread 1 is blocked (futex) in main on mutex "
        "lost_wakeup (free), which nobody holds (the lock was being handed over when the "
        "process was dumped).")


def test_idle_event_loops_are_not_blocked():
    t = HungTarget()
    loop = [("__ppoll", LIBC), ("qemu_poll_ns", EXE), ("aio_poll", EXE),
            ("iothread_run", EXE), ("qemu_thread_start", EXE), ("start_thread", LIBC)]
    t.thread(1, 101, loop, PPOLL)
    nested = [("__ppoll", LIBC), ("qemu_poll_ns", EXE), ("aio_poll", EXE),
              ("bdrv_do_drained_begin", EXE), ("qmp_x_drain", EXE), ("main", EXE)]
    [state] = locks.all_locks(t).threads
    assert (state.state, state.where) == ("idle", "iothread_run")
    assert waits.diagnosis(waits.wait_graph(t)).startswith("Nothing is blocked")
    t.thread(2, 102, nested, PPOLL)
    state = locks.all_locks(t).threads[1]
    assert (state.state, state.waits_for.kind, state.where) == (
        "blocked", "drain", "bdrv_do_drained_begin")


def _graph(pairs):
    nodes = sorted({n for p in pairs for n in p if n})
    return waits.WaitGraph([waits.Node(n, "thread", "blocked") for n in nodes],
                           [waits.Edge(a, "mutex", f"{a}->{b}", b) for a, b in pairs])


def test_cycles_found_once_each_and_tails_left_out():
    g = _graph([("a", "b"), ("b", "c"), ("c", "a"), ("d", "a"), ("c", "e"), ("e", "c")])
    found = sorted(sorted((g.edges[i].waiter, g.edges[i].holder) for i in c)
                   for c in waits.cycles(g))
    assert found == [[("a", "b"), ("b", "c"), ("c", "a")], [("c", "e"), ("e", "c")]]
    assert waits.cycles(_graph([("a", "b"), ("b", None)])) == []


def test_coroutines_queued_on_a_comutex_are_counted_and_followed():
    nodes = [waits.Node("coroutine 0x1", "coroutine", "suspended"),
             waits.Node("coroutine 0x2", "coroutine", "suspended"),
             waits.Node("coroutine 0x9", "coroutine", "suspended", where="thread_pool_submit_co"),
             waits.Node("thread 5", "thread", "sleeping", where="handle_aiocb_rw_linear",
                        label="worker", syscall="pause")]
    lock = "CoMutex node qcow0 BDRVQcow2State.lock held by coroutine 0x9"
    edges = [waits.Edge("coroutine 0x1", "comutex", lock, "coroutine 0x9"),
             waits.Edge("coroutine 0x2", "comutex", lock, "coroutine 0x9"),
             waits.Edge("coroutine 0x9", "io-completion", "I/O completion (thread pool)",
                        "thread 5")]
    g = waits.WaitGraph(nodes, edges)
    g.chains = waits.chains(g, ["coroutine 0x1", "coroutine 0x2"])
    assert [c.path for c in g.chains] == [["coroutine 0x1", "coroutine 0x9", "thread 5"],
                                          ["coroutine 0x2", "coroutine 0x9", "thread 5"]]
    assert waits.diagnosis(g) == (
        f"2 coroutines wait for {lock}; coroutine 0x9 waits for I/O completion (thread "
        "pool), released by thread 5; worker thread 5 is sleeping (pause) in "
        "handle_aiocb_rw_linear.")



def test_lock_layout_cache_keeps_the_types_it_saw():
    """_lock_layout's per-walk cache: a type made afresh and dropped after use (as gdb's
    wrapper of an anonymous struct is) cannot lend its layout to a later type given its id
    (found by fuzz_gdb: `qemu locks` lost a driver state's lock after other cores)."""
    mutex = typedef("QemuMutex", mstruct("QemuMutex", 40, []))
    cache = {}
    for _ in range(50):
        plain, locked = [member("n", INT, 0)], [member("lock", mutex, 0)]
        assert locks._lock_layout(None, MockType("struct", "Plain", 40, plain), cache) == []
        assert locks._lock_layout(None, MockType("struct", "Locked", 40, locked), cache) \
            == [("lock", 0, "QemuMutex", None)]
