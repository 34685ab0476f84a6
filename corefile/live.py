"""A running process as a readable one, for corefile.Program: memory from /proc/PID/mem
(a page at a time, never a big region), mappings from /proc/PID/maps, auxv from
/proc/PID/auxv, threads from /proc/PID/task, registers with ptrace (PTRACE_SEIZE +
PTRACE_INTERRUPT, PTRACE_GETREGS, PTRACE_DETACH: nothing is ever written to the process).

One consistent moment without a long stop (LiveProcess.walk): the walk runs on pages
copied while every thread was stopped. The first stop copies registers only; the walk
that follows reads the running process and so learns which pages it needs; the next stop
copies exactly those, and the walk runs again on that copy. A walk that needs a page the
copy lacks (the program moved on between the two stops) takes one more round. The answer
is the walk of the last copy: what a walk with the whole process stopped would give, for
a pause of a few milliseconds."""

import ctypes
import errno
import gc
import os
import signal
import struct
import time
from dataclasses import dataclass, field

from . import arch as arches
from .core import Mapping, Psinfo, Thread
from .errors import CorefileError, FaultError
from .memory import AddressSpace

PTRACE_GETREGS = 12
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_EVENT_STOP = 128
WALL = 0x40000000                # __WALL: wait for threads too
PAGE = os.sysconf("SC_PAGE_SIZE")
OFFSET_LIMIT = 1 << 63           # /proc/PID/mem offsets are a signed off_t
STOP_TIMEOUT = 1.0               # seconds a thread may take to stop (one in D state never)
ROUNDS = 4                       # stops before the answer is given as possibly inconsistent
DEFERRED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_UNREAD = object()

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)


class NotPermittedError(CorefileError):
    """The process cannot be read: no such process, or ptrace is not permitted."""


def _ptrace(request: int, tid: int, data=None) -> int:
    """ptrace(request, tid, 0, data); 0, or the errno."""
    if _libc.ptrace(request, tid, None, data) == -1:
        return ctypes.get_errno()
    return 0


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def check_permitted(pid: int):
    """NotPermittedError saying what to do when this process may not ptrace pid."""
    try:
        status = _status(pid)
    except (FileNotFoundError, ProcessLookupError):
        raise NotPermittedError(f"no process {pid}") from None
    except OSError as e:
        raise NotPermittedError(f"cannot read /proc/{pid}/status: {e.strerror}") from None
    if pid == os.getpid():
        raise NotPermittedError("cannot read qemu-coredump's own process")
    if int(status.get("Tgid", pid)) != pid:
        raise NotPermittedError(f"{pid} is a thread of process {status['Tgid']}: give "
                                f"--pid {status['Tgid']}")
    if status.get("State", "").startswith(("Z", "X")):
        raise NotPermittedError(f"process {pid} has exited (a zombie): nothing to read")
    tracer = int(status.get("TracerPid", "0"))
    if tracer:
        raise NotPermittedError(
            f"process {pid} is already traced by {_comm(tracer)} (pid {tracer}): detach it "
            f"(quit gdb or strace) and run again")
    root = os.geteuid() == 0
    uid = int(status.get("Uid", "-1").split()[0])
    if not root and uid != os.geteuid():
        raise NotPermittedError(f"process {pid} belongs to uid {uid}: run as root (sudo) "
                                f"or as that user")
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = int(f.read())
    except (OSError, ValueError):
        scope = 0
    if scope >= 3:
        raise NotPermittedError("ptrace is disabled on this machine (kernel.yama."
                                "ptrace_scope = 3, until reboot): use gcore's core instead")
    if scope >= 1 and not root:
        raise NotPermittedError(
            f"kernel.yama.ptrace_scope = {scope} lets only "
            f"{'root' if scope == 2 else 'root or its parent'} ptrace process {pid}: run as "
            f"root (sudo)" + (", or sysctl kernel.yama.ptrace_scope=0" if scope == 1 else ""))


def _refused(pid: int, what: str, err: int) -> NotPermittedError:
    return NotPermittedError(f"{what} of process {pid} not permitted ({os.strerror(err)}): "
                             f"run as root with CAP_SYS_PTRACE, with no other tracer attached")


class ProcessMemory(AddressSpace):
    """/proc/PID/mem read a page at a time into `pages` (page -> bytes, None: unreadable).
    copy() fills it while the process is stopped; a page read later is a miss (read from
    the running process, kept for the rest of the walk so each page has one value)."""

    def __init__(self, process):
        super().__init__(process)
        self.pid = process.pid
        try:
            self.fd = os.open(f"/proc/{self.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise _refused(self.pid, "reading the memory", e.errno) from None
        self.pages = {}
        self.misses = set()

    def host_path(self, path: str) -> str:
        """A file the process maps: /proc/PID/map_files/ of a deleted one (the kernel
        keeps it open), else its path."""
        if path not in self.overrides and path.endswith(" (deleted)"):
            m = next((m for m in self._maps if m.path == path), None)
            link = m and f"/proc/{self.pid}/map_files/{m.start:x}-{m.end:x}"
            if link and os.path.exists(link):
                return link
        return super().host_path(path)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        super().close()

    def _pread(self, addr: int, size: int) -> bytes | None:
        try:
            data = os.pread(self.fd, size, addr)
        except OSError:
            return None
        return data if len(data) == size else None

    def copy(self, pages):
        """Read these pages now (the process is stopped): runs of adjacent pages in one
        read each, page by page where a run is partly unmapped."""
        self.pages, self.misses = {}, set()
        pages = sorted(pages)
        i = 0
        while i < len(pages):
            j = i + 1
            while j < len(pages) and pages[j] == pages[j - 1] + PAGE:
                j += 1
            run = self._pread(pages[i], (j - i) * PAGE)
            for k in range(i, j):
                if run is not None:
                    off = (k - i) * PAGE
                    self.pages[pages[k]] = run[off:off + PAGE]
                else:
                    self.pages[pages[k]] = self._pread(pages[k], PAGE)
            i = j

    def read(self, addr: int, size: int, core_only: bool = False) -> bytes:
        """size bytes at addr (from `pages`, a miss read now); FaultError(first unreadable
        address) otherwise. core_only means nothing here: all is the process's memory."""
        if size <= 0:
            return b""
        if addr < 0 or addr + size > OFFSET_LIMIT:
            raise FaultError(max(addr, OFFSET_LIMIT) if addr >= 0 else addr)
        parts = []
        pages = self.pages
        while size:
            page = addr - addr % PAGE
            data = pages.get(page, _UNREAD)
            if data is _UNREAD:
                data = pages[page] = self._pread(page, PAGE)
                self.misses.add(page)
            if data is None:
                raise FaultError(addr)
            off = addr - page
            n = min(size, PAGE - off)
            parts.append(data[off:off + n] if n < PAGE else data)
            addr += n
            size -= n
        return parts[0] if len(parts) == 1 else b"".join(parts)


@dataclass
class Pause:
    """How the process was read: stopped (False with --no-stop), the stops, how long the
    stop the answer comes from lasted and the pages it copied, the time stopped in all;
    consistent: the answer is one moment of the process (known once the walk is over)."""
    stopped: bool = True
    stops: int = 0
    stopped_ms: float = 0.0
    pages: int = 0
    total_ms: float = 0.0
    consistent: bool = False

    def describe(self, pid: int) -> str:
        if not self.stopped:
            return (f"process {pid} read without stopping it (each thread interrupted "
                    f"alone for its registers): possibly inconsistent")
        return (f"process {pid} stopped {self.stopped_ms:.1f} ms for the answer ({self.pages} "
                f"pages copied), {self.total_ms:.1f} ms in {self.stops} stops in all"
                + ("" if self.consistent else ": possibly inconsistent"))


@dataclass
class LiveProcess:
    """What corefile.Program reads of a running process (what a Core gives of a core)."""
    pid: int
    arch: object = None
    threads: list = field(default_factory=list)
    psinfo: Psinfo | None = None
    auxv: dict = field(default_factory=dict)
    mappings: list = field(default_factory=list)
    segments: list = field(default_factory=list)   # a core's; a process has none
    partial_reasons: list = field(default_factory=list)
    pause: Pause = field(default_factory=Pause)
    memory: ProcessMemory | None = None
    _stuck: set = field(default_factory=set)        # tids seized that never stopped
    _notes: list = field(default_factory=list)      # the last stop's partial reasons

    def close(self):
        for tid in list(self._stuck):   # a thread that stopped at last can go on
            if self._wait(tid, block=False) not in (None, "gone"):
                _ptrace(PTRACE_DETACH, tid)

    # -- threads and registers -------------------------------------------------

    def tids(self) -> list:
        """The threads now: the main one first (gdb's thread 1), then by tid."""
        try:
            found = sorted(int(t) for t in os.listdir(f"/proc/{self.pid}/task"))
        except OSError:
            raise NotPermittedError(f"process {self.pid} has exited") from None
        return sorted(found, key=lambda t: t != self.pid)

    def _wait(self, tid: int, block: bool):
        """The waitpid status of tid stopping, 'gone' if it exited, None if not (yet)."""
        deadline = time.monotonic() + STOP_TIMEOUT
        delay = 1e-5
        while True:
            try:
                got, status = os.waitpid(tid, WALL | os.WNOHANG)
            except ChildProcessError:
                return "gone"
            if got:
                return status if os.WIFSTOPPED(status) else "gone"
            if not block or time.monotonic() > deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 2e-4)

    def _seize(self, tid: int) -> bool:
        """Seize and interrupt tid; False if it is gone (or exiting: EPERM then)."""
        err = _ptrace(PTRACE_SEIZE, tid)
        if err == errno.ESRCH or err == errno.EPERM and self._exiting(tid):
            return False
        if err:
            raise _refused(self.pid, "ptrace", err)
        _ptrace(PTRACE_INTERRUPT, tid)
        return True

    def _exiting(self, tid: int) -> bool:
        try:
            with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in "ZX"
        except (OSError, IndexError):
            return True

    def _registers(self, tid: int) -> dict | None:
        regs = (ctypes.c_ulong * len(self.arch.USER_REGS))()
        if _ptrace(PTRACE_GETREGS, tid, ctypes.addressof(regs)):
            return None
        return dict(zip(self.arch.USER_REGS, regs))

    def _stop(self, tids, held: dict, notes: list):
        """Seize and stop these threads: held[tid] = the signal to give back on detach
        (0, or the signal a signal-delivery stop caught)."""
        seized = []
        try:
            for tid in tids:
                if self._seize(tid):
                    seized.append(tid)
        finally:        # an error seizing one: still wait for the others, to detach them
            self._wait_stopped(seized, held, notes)

    def _wait_stopped(self, seized, held: dict, notes: list):
        """Wait for each seized thread to stop (see _stop)."""
        for tid in seized:
            status = self._wait(tid, block=True)
            if status is None:
                self._stuck.add(tid)
                notes.append(f"thread {tid} did not stop within {STOP_TIMEOUT:g} s "
                             f"(uninterruptible sleep?): no registers")
            elif status != "gone":
                # PTRACE_EVENT_STOP: our interrupt (or a group-stop); else a signal
                # arrived first (a signal-delivery stop): it is given back on detach.
                held[tid] = 0 if status >> 16 == PTRACE_EVENT_STOP else os.WSTOPSIG(status)

    def _stop_all(self, held: dict, notes: list):
        """Stop every thread, those created meanwhile too (task/ is scanned again until
        it shows no new one)."""
        seen = set(self._stuck)
        while new := [t for t in self.tids() if t not in seen]:
            seen.update(new)
            self._stop(new, held, notes)

    def _detach_all(self, held: dict):
        for tid, sig in held.items():
            _ptrace(PTRACE_DETACH, tid, sig)

    def stop(self, pages=()):
        """Stop every thread, read their registers and copy these pages, detach. Ctrl-C,
        SIGTERM, SIGHUP and SIGQUIT are held back until the process runs again."""
        deferred = []
        old = {}
        try:
            for sig in DEFERRED:
                old[sig] = signal.signal(sig, lambda s, _f: deferred.append(s))
        except ValueError:       # not the main thread: no handlers, try/finally only
            pass
        held, notes, threads = {}, [], []
        collecting = gc.isenabled()
        gc.disable()     # a collection of the debug info's objects would lengthen the stop
        try:
            t0 = time.monotonic()
            try:
                self._stop_all(held, notes)
                for tid in held:
                    regs = self._registers(tid)
                    if regs is not None:
                        threads.append((tid, regs))
                self.memory.copy(pages)
            finally:
                self._detach_all(held)
                pause = time.monotonic() - t0
        finally:
            if collecting:
                gc.enable()
            for sig, handler in old.items():
                signal.signal(sig, handler)
            for sig in deferred:
                signal.raise_signal(sig)
        self._set_threads(threads, notes)
        p = self.pause
        p.stops += 1
        p.stopped_ms, p.pages = round(pause * 1e3, 3), len(pages)
        p.total_ms = round(p.total_ms + p.stopped_ms, 3)

    def sample(self):
        """--no-stop: each thread interrupted alone for its registers (a few microseconds
        each), the process as a whole never stopped; memory is read as it runs."""
        threads, notes = [], []
        for tid in self.tids():
            held = {}
            try:
                self._stop([tid], held, notes)
                regs = self._registers(tid) if tid in held else None
            finally:
                self._detach_all(held)
            if regs is not None:
                threads.append((tid, regs))
        self.memory.pages, self.memory.misses = {}, set()
        self._set_threads(threads, notes)
        self.pause.stopped = False

    def _set_threads(self, found, notes):
        """Program.threads (the same list) to the threads found, gdb's order and numbers;
        the last stop's notes in partial_reasons instead of the previous stop's."""
        reasons = self.partial_reasons
        reasons[:] = [r for r in reasons if r not in self._notes] + notes
        self._notes = notes
        order = {t: i for i, t in enumerate(sorted((t for t, _ in found),
                                                   key=lambda t: (t != self.pid, t)))}
        found = sorted(found, key=lambda f: order[f[0]])
        self.threads[:] = [Thread(i + 1, tid, 0, regs) for i, (tid, regs) in enumerate(found)]

    def walk(self, fn, stop: bool = True):
        """fn() on one consistent moment of the process (see the module's docstring);
        with stop=False on the running process, registers from sample()."""
        if not stop:
            self.sample()
            return fn()
        pages = ()
        for n in range(1, ROUNDS + 1):
            self.stop(pages)
            try:
                result = fn()
            except Exception:   # torn data read from the running process: once more
                if not self.memory.misses or n == ROUNDS:
                    raise
            else:
                if not self.memory.misses:
                    self.pause.consistent = True
                    return result
            pages = set(self.memory.pages)
        self.partial_reasons.append(
            f"the walk still read {len(self.memory.misses)} pages of the running process after "
            f"{ROUNDS} stops: the answer may mix moments")
        return result


def open_process(pid: int) -> LiveProcess:
    """A LiveProcess of pid (nothing stopped yet: LiveProcess.walk stops it).
    NotPermittedError (one line saying what to do) when it cannot be read."""
    check_permitted(pid)
    proc = LiveProcess(pid)
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/exe", "rb") as f:
            head = f.read(20)
        with open(f"{base}/auxv", "rb") as f:
            auxv = f.read()
        with open(f"{base}/maps") as f:
            maps = f.read().splitlines()
        with open(f"{base}/cmdline", "rb") as f:
            argv = f.read().rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
        uid = int(_status(pid)["Uid"].split()[0])
    except PermissionError as e:
        raise _refused(pid, f"reading {e.filename}", e.errno) from None
    except (FileNotFoundError, ProcessLookupError):
        raise NotPermittedError(f"process {pid} has exited") from None
    machine = struct.unpack_from("<H", head, 18)[0] if head[:4] == b"\x7fELF" else None
    proc.arch = arches.for_machine(machine)
    if proc.arch is None:
        raise NotPermittedError(f"process {pid}: unsupported architecture (e_machine {machine})")
    for i in range(0, len(auxv) - 15, 16):
        key, val = struct.unpack_from("<QQ", auxv, i)
        if key == 0:
            break
        proc.auxv[key] = val
    for line in maps:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and int(parts[4]) != 0:     # file-backed, as a core's NT_FILE
            start, end = (int(x, 16) for x in parts[0].split("-"))
            proc.mappings.append(Mapping(start, end, int(parts[2], 16), parts[5]))
    proc.psinfo = Psinfo(pid, uid, _comm(pid)[:15], argv[:80])
    proc.memory = ProcessMemory(proc)
    return proc
