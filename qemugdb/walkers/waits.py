"""The wait-for graph over threads and coroutines, and the one-sentence diagnosis.

Nodes are threads and coroutines; an edge says what a waiter waits for and who could
release it: a blocked thread waits for a mutex (its owner), a drain or AIO_WAIT_WHILE
(the coroutines of the requests still in flight on the quiesced nodes, else the thread
running their AioContext), a condition, an event or a futex (nobody known); a coroutine
waits for a CoMutex (its holder), a CoQueue (a serialising request, the throttle timer),
the end of the drained section that queued it on a BlockBackend (like a drain: the
requests in flight on the quiesced nodes under the backend), I/O completion (the thread
polling its AioContext) or runs on a thread. Cycles are deadlocks; every other chain ends
in a thread or coroutine that waits for nothing we can name: running, idle, sleeping, or
blocked in the kernel.
"""

from dataclasses import dataclass, field

from . import aio, coroutine, locks
from ..obj import Object
from .enums import enum_name
from .queue import qlist_foreach
from .roots import all_bdrv_states, backend_name, block_backends, node_name
from ..result import Record
from ..target import MissingDebugInfo, Target, TargetError

# Where a suspended coroutine waits for I/O: the submitting function names the engine.
IO_SUBMITS = {"thread_pool_submit_co": "thread pool", "laio_co_submit": "linux-aio",
              "luring_co_submit": "io_uring"}
SLEEPERS = ("qemu_co_sleep", "qemu_co_sleep_ns_wakeable", "qemu_co_sleep_ns", "job_sleep_ns")
PATH_LIMIT = 32
# Coroutine waits that make a chain of their own: a lock some coroutine holds, and the end
# of a drained section that queues a BlockBackend's requests.
LOCK_WAITS = ("comutex", "corwlock")
CHAIN_WAITS = (*LOCK_WAITS, "drained")


@dataclass
class Node(Record):
    ERRORS = ()
    MISSING = ()
    id: str                    # "thread N" or "coroutine 0x..."
    kind: str                  # thread | coroutine
    state: str                 # thread: blocked/idle/guest/sleeping/running/unknown;
                               # coroutine: running/suspended
    where: str | None = None   # the QEMU function it waits or runs in
    label: str | None = None   # thread role, or why the coroutine was found
    syscall: str | None = None


@dataclass
class Edge(Record):
    ERRORS = ()
    MISSING = ()
    waiter: str                # a Node id
    kind: str                  # mutex condvar event join futex drain aio-wait io syscall comutex
                               # corwlock coqueue drained graph-lock io-completion timer runs-on
    what: str                  # what it waits for, in words
    holder: str | None = None  # the Node id that could release it, None when unknown
    address: int | None = None


@dataclass
class Chain(Record):
    """A path from a blocked thread along the edges, to where it ends."""
    ERRORS = ()
    MISSING = ()
    path: list                 # Node ids
    edges: list                # Edge indices along it
    end: str                   # the end in words (a deadlock, running, sleeping, ...)


@dataclass
class WaitGraph(Record):
    ERRORS = ('errors',)
    MISSING = ('missing',)
    nodes: list
    edges: list
    cycles: list = field(default_factory=list)   # [[Edge index, ...]] each a deadlock
    chains: list = field(default_factory=list)   # Chain per blocked thread, then per
                                                 # coroutine waiting for a held CoMutex or
                                                 # queued by a drained section
    errors: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    diagnosis: str | None = None   # diagnosis() of the graph


class _Builder:
    def __init__(self, target):
        self.target = target
        self.coroutines = coroutine.Coroutines(target)
        self.threads = self.coroutines.threads
        self.nodes = {}
        self.edges = []
        self.errors = []
        self.missing = []
        self.busy_workers = []     # Node ids of thread-pool workers that are not idle
        self.contexts = aio.known_contexts(target, self.threads)

    def node(self, id_, **kw):
        if id_ not in self.nodes:
            self.nodes[id_] = Node(id_, **kw)
        return self.nodes[id_]

    def edge(self, waiter, kind, what, holder=None, address=None):
        e = Edge(waiter, kind, what, holder, address)
        if e not in self.edges:
            self.edges.append(e)

    def context_thread(self, ctx):
        """The Node id of the thread running AioContext ctx, or None."""
        for address, _, runners in self.contexts:
            if address == ctx and runners:
                return f"thread {runners[0]['num']}"
        return None

    def context_name(self, ctx):
        return aio.context_label(self.contexts, ctx)

    def coroutine(self, address, label):
        """The coroutine's Node, with its own wait edge (found from its stack)."""
        id_ = f"coroutine {address:#x}"
        if id_ in self.nodes:
            return id_
        n = self.node(id_, kind="coroutine", state="suspended", label=label)
        running = self.coroutines.running()
        if address in running:
            n.state, num = "running", running[address].num
            self.edge(id_, "runs-on", f"runs on thread {num}", f"thread {num}")
            return id_
        try:
            rec = self.coroutines.describe(address)
        except TargetError as e:
            self.errors.append(f"{id_}: {e}")
            return id_
        if rec.suspended_in is not None:
            n.where = rec.suspended_in.function
        names = [loc.function for f in rec.frames for loc in f.locations()]
        ctx = None
        try:
            co = Object(self.target, self.target.lookup_type("Coroutine"), address)
            ctx = co.ctx.value_()
        except TargetError:
            pass
        engine = next((IO_SUBMITS[f] for f in names if f in IO_SUBMITS), None)
        if engine:
            what = f"I/O completion ({engine}) in AioContext {self.context_name(ctx)}"
            # A thread-pool request runs in a worker: the busy ones could complete it.
            holders = (self.busy_workers if engine == "thread pool" else []) or \
                [self.context_thread(ctx)]
            for holder in holders:
                self.edge(id_, "io-completion", what, holder)
        elif any(f in SLEEPERS for f in names):
            self.edge(id_, "timer", f"a timer in AioContext {self.context_name(ctx)}",
                      self.context_thread(ctx))
        return id_


def wait_graph(target: Target) -> WaitGraph:
    """The WaitGraph of the target's threads and the coroutines they wait for."""
    b = _Builder(target)
    lk = locks.all_locks(target, b.threads, b.contexts)
    b.errors += lk.errors
    b.missing += lk.missing
    for st in lk.threads:
        b.node(f"thread {st.num}", kind="thread", state=st.state, where=st.where,
               label=st.role, syscall=st.syscall)
    b.busy_workers = [f"thread {st.num}" for st in lk.threads
                      if st.role == "worker" and st.state not in ("idle", "unknown")]
    # Coroutine waits first: the coroutines they name get these edges before any edge
    # found from their stacks. A quiesced BlockBackend's queue is followed to the drained
    # section rather than left as a CoQueue nobody is known to release.
    drained = _drained_edges(b)
    for lock in lk.locks:
        if lock.address not in drained:
            _lock_edges(b, lock)
    for st in lk.threads:
        w = st.waits_for
        if st.state != "blocked" or w is None:
            continue
        me = f"thread {st.num}"
        if w.kind == "join":
            owner = f"thread {w.owner_thread}" if w.owner_thread else None
            b.edge(me, "join", w.name, owner, w.address)
        elif w.kind == "mutex":
            owner = f"thread {w.owner_thread}" if w.owner_thread else None
            held = (f"held by {owner}" if owner else
                    f"held by LWP {w.owner_tid}" if w.owner_tid else FREE)
            b.edge(me, "mutex", f"mutex {_named(w)} ({held})", owner, w.address)
        elif w.kind in ("drain", "aio-wait"):
            _drain_edges(b, me, w)
        elif w.kind in ("io", "syscall"):
            b.edge(me, w.kind, w.detail)
        else:
            b.edge(me, w.kind, f"{w.kind} {_named(w)}", None, w.address)
    # a list both locks and this walk read may break in both: said once
    graph = WaitGraph(list(b.nodes.values()), b.edges, errors=list(dict.fromkeys(b.errors)),
                      missing=list(dict.fromkeys(b.missing)))
    graph.cycles = cycles(graph)
    starts = [f"thread {st.num}" for st in lk.threads if st.state == "blocked"]
    starts += [e.waiter for e in b.edges if e.kind in CHAIN_WAITS and e.holder]
    graph.chains = chains(graph, list(dict.fromkeys(starts)))
    graph.diagnosis = diagnosis(graph)
    return graph


def _named(w):
    return w.name or (f"at {w.address:#x}" if w.address is not None else "")


def _lock_edges(b, lock):
    """Edges from the coroutines waiting for a CoMutex, CoRwlock, CoQueue or the graph
    lock to who could release them."""
    if not lock.waiting_coroutines:
        return
    if lock.kind in ("CoMutex", "CoRwlock"):
        holder = b.coroutine(lock.holder, f"holds {lock.name}") if lock.holder else None
        what = f"{lock.kind} {lock.name}" + (f" held by coroutine {lock.holder:#x}"
                                             if lock.holder else "")
        kind = lock.kind.lower()
    elif lock.kind == "graph-lock":
        holder, what, kind = None, "the block graph lock (a writer)", "graph-lock"
    else:
        holder, what, kind = None, f"CoQueue {lock.name}", "coqueue"
    for co in lock.waiting_coroutines:
        b.edge(b.coroutine(co, f"waits in {lock.name}"), kind, what, holder, lock.address)


def _busy_nodes(b, nodes, quiesced):
    """The nodes among `nodes` with requests in flight (with quiesced, only the quiesced
    ones), as "NAME (in_flight N, quiesce_counter M)", and who could finish those requests:
    the coroutines of their tracked requests, else the threads running their AioContexts.
    A node that cannot be read is an error (or missing), the others go on."""
    busy, holders = [], []
    try:
        for bs in nodes:
            in_flight, quiesce = bs.in_flight.value_(), bs.quiesce_counter.value_()
            if not in_flight or quiesced and not quiesce:
                continue
            name = node_name(bs)
            busy.append(f"{name} (in_flight {in_flight}, quiesce_counter {quiesce})")
            found = []
            for req in qlist_foreach(bs.tracked_requests, "list"):
                if req.co.value_():
                    kind = enum_name(req.type).removeprefix("BDRV_TRACKED_").lower()
                    found.append(b.coroutine(req.co.value_(),
                                             f"tracked request {kind} on node {name}"))
                    _serialising_edges(b, req, name)
            holders += found or [b.context_thread(bs.aio_context.value_())]
    except MissingDebugInfo as e:
        b.missing.append(f"block nodes: {e}")
    except TargetError as e:
        b.errors.append(f"block nodes: {e}")
    return busy, list(dict.fromkeys(holders))


def _drain_edges(b, me, w):
    """A thread in AIO_WAIT_WHILE waits for the nodes with requests in flight (in a
    drain, the quiesced ones)."""
    drain = w.kind == "drain"
    busy, holders = _busy_nodes(b, all_bdrv_states(b.target), drain)
    what = (f"{'a drain' if drain else 'AIO_WAIT_WHILE'} in {b.nodes[me].where}: "
            + (f"node{'s' if len(busy) > 1 else ''} {', '.join(busy)}" if busy else
               "no node has requests in flight"))
    for h in holders or [None]:
        b.edge(me, w.kind, what, h if h != me else None)


def _subtree(blk):
    """The BlockDriverStates under a BlockBackend: its root node and that node's children,
    recursively, each once."""
    todo = [blk.root.deref_().bs] if blk.root.value_() else []
    seen = set()
    while todo:
        bs = todo.pop(0).deref_()
        if bs.address_ and bs.address_ not in seen:
            seen.add(bs.address_)
            yield bs
            todo += [child.bs for child in qlist_foreach(bs.children, "next")]


def _drained_edges(b):
    """A coroutine in a quiesced BlockBackend's queued_requests (blk_wait_while_drained)
    waits for the end of the drained section: for the requests in flight on the quiesced
    nodes under the backend, as a drain does. Returns the addresses of those CoQueues."""
    queues = set()
    try:
        for blk in block_backends(b.target):
            quiesce = blk.quiesce_counter.value_()
            if not quiesce:
                continue
            waiters = [co.address_ for co in coroutine.coqueue_waiters(blk.queued_requests)]
            if not waiters:
                continue
            name = backend_name(blk)
            queues.add(blk.queued_requests.address_)
            _, holders = _busy_nodes(b, _subtree(blk), True)
            what = (f"the end of the drained section on BlockBackend {name} (quiesce_counter "
                    f"{quiesce})")
            for co in waiters:
                me = b.coroutine(co, f"queued on BlockBackend {name} while it is quiesced")
                for h in holders or [None]:
                    b.edge(me, "drained", what, h if h != me else None, blk.address_)
    except MissingDebugInfo as e:
        b.missing.append(f"BlockBackends: {e}")
    except TargetError as e:
        b.errors.append(f"BlockBackends: {e}")
    return queues


def _serialising_edges(b, req, name):
    holder = f"coroutine {req.co.value_():#x}"
    for co in coroutine.coqueue_waiters(req.wait_queue):
        b.edge(b.coroutine(co.address_, f"waits for a serialising request on node {name}"),
               "coqueue", f"serialising request {req.address_:#x} on node {name}", holder,
               req.address_)


def _out_edges(graph):
    out = {}
    for i, e in enumerate(graph.edges):
        out.setdefault(e.waiter, []).append(i)
    return out


def cycles(graph: WaitGraph) -> list[list[int]]:
    """Every elementary cycle of holder edges, once each, as lists of Edge indices."""
    out_edges = _out_edges(graph)
    found, seen = [], set()

    def walk(start, node, path, on_path):
        for i in out_edges.get(node, ()):
            holder = graph.edges[i].holder
            if holder is None:
                continue
            if holder == start:
                key = frozenset(path + [i])
                if key not in seen:
                    seen.add(key)
                    found.append(path + [i])
            elif holder not in on_path and holder > start and len(path) < PATH_LIMIT:
                walk(start, holder, path + [i], on_path | {holder})

    for n in sorted({e.waiter for e in graph.edges}):
        walk(n, n, [], {n})
    return found


def chains(graph: WaitGraph, starts: list[str]) -> list[Chain]:
    """For each node id in `starts`, the first path along holder edges to its end."""
    out_edges = _out_edges(graph)
    nodes = {n.id: n for n in graph.nodes}
    out = []
    for start in starts:
        path, taken = [start], []
        end = None
        while True:
            edges = out_edges.get(path[-1], [])
            nxt = next((i for i in edges if graph.edges[i].holder), None)
            if nxt is None:
                end = describe_end(nodes.get(path[-1]), graph, edges)
                break
            taken.append(nxt)
            holder = graph.edges[nxt].holder
            if holder in path:
                end = f"deadlock: {holder} is already on this chain"
                path.append(holder)
                break
            path.append(holder)
            if len(path) > PATH_LIMIT:
                end = "chain too long"
                break
        out.append(Chain(path, taken, end))
    return out


STATES = {"running": "is running (not in a system call: executing, or stopped by a "
                     "debugger)", "idle": "is idle (waits for work)",
          "guest": "runs guest code (KVM_RUN)", "sleeping": "is sleeping",
          "unknown": "is in an unknown state"}


def describe_end(node: Node | None, graph: WaitGraph, edges: list[int]) -> str:
    """Where a chain ends, in words."""
    if node is None:
        return "unknown"
    where = f" in {node.where}" if node.where else ""
    if node.kind == "coroutine":
        waits = [graph.edges[i].what for i in edges]
        return (f"{node.id} suspended{where}" + (f", waiting for {waits[0]}" if waits
                                                  else ""))
    call = f" ({node.syscall})" if node.syscall and node.state != "idle" else ""
    if node.state == "blocked":
        waits = [graph.edges[i].what for i in edges]
        return f"{_who(node)} is blocked{call}{where}" + (f" on {waits[0]}" if waits else "")
    return f"{_who(node)} {STATES.get(node.state, node.state)}{call}{where}"


FREE = "free"   # a mutex without owner, as a mutex edge says it: "mutex NAME (free)"


def _hand_over(graph, chain):
    """The chain is one thread waiting for a mutex nobody holds: a hand-over caught at the
    instant of the dump (the owner unlocked it and the waiter was not yet woken)."""
    edges = _out_edges(graph).get(chain.path[0], [])
    if len(chain.path) != 1 or len(edges) != 1:
        return False
    edge = graph.edges[edges[0]]
    return edge.kind == "mutex" and edge.what.endswith(f"({FREE})")


def diagnosis(graph: WaitGraph) -> str:
    """One or two sentences: what the process is stuck on, or that nothing is blocked."""
    nodes = {n.id: n for n in graph.nodes}
    if graph.cycles:
        cycle = graph.cycles[0]
        steps = "; ".join(_step(graph, nodes, i) for i in cycle)
        return f"Deadlock: {steps}."
    if not graph.chains:
        return ("Nothing is blocked: every thread is idle in its event loop or waiting "
                "for work, running, or running guest code.")
    threads = [c for c in graph.chains if nodes[c.path[0]].kind == "thread"]
    chain = min(threads or graph.chains,
                key=lambda c: (nodes[c.path[0]].label != "main loop", c.path[0]))
    steps = [_step(graph, nodes, i, label=k > 0) for k, i in enumerate(chain.edges)]
    if not threads:   # coroutines queued on a lock: say how many, then follow one
        what = graph.edges[chain.edges[0]].what
        same = [c for c in graph.chains if graph.edges[c.edges[0]].what == what]
        if len(same) > 1:
            steps[0] = f"{len(same)} coroutines wait for {what}"
    others = len(threads) - 1
    tail = f" ({others} more blocked thread{'s' if others > 1 else ''})" if others > 0 else ""
    if len(chain.path) == 1:   # nobody to follow: where it ends says what it waits for
        if _hand_over(graph, chain) and not others:
            return (f"Nothing is stuck: {chain.end}, which nobody holds (the lock was being "
                    f"handed over when the process was dumped).")
        return f"{chain.end}{tail}."
    return f"{'; '.join(steps)}; {chain.end}{tail}."


def _who(node, label=True):
    """A node in words: a thread with its role; with label, a coroutine with why it was
    found (a chain's start says that itself: it waits for what it was found waiting in)."""
    if node.kind == "thread" and node.label and node.label != "other":
        return f"{node.label} {node.id}"
    if node.kind == "coroutine" and node.label and label:
        return f"{node.id} ({node.label})"
    return node.id


def _step(graph, nodes, index, label=True):
    """`WAITER waits for WHAT, released by HOLDER (and N more)` for edge `index`."""
    edge = graph.edges[index]
    who = _who(nodes[edge.waiter], label)
    if edge.kind == "runs-on":
        return f"{who} {edge.what}"
    text = f"{who} waits for {edge.what}"
    if not edge.holder or edge.kind in ("mutex", "join", *LOCK_WAITS):
        return text
    others = sum(1 for e in graph.edges if e.waiter == edge.waiter and e.what == edge.what
                 and e.holder and e.holder != edge.holder)
    more = f" (or {others} more {edge.holder.split()[0]}s)" if others else ""
    return f"{text}, released by {edge.holder}{more}"
