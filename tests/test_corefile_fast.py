"""corefile on small C programs compiled here, dumped by the kernel and by gcore, and
compared with what gdb says about the same core files."""

import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import time

import pytest

import corefile

PROG = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

__thread long tls_counter = 0x1234;
long global_value = 0x1122334455667788;
const char *static_str = "hello corefile";
char big_buffer[3 * 4096 + 100] = "start of big buffer";
int fds[2];
jmp_buf saved_env;

/* A coroutine as QEMU's coroutine-ucontext makes them: a ucontext stack entered once
   through a trampoline, then switched with sigsetjmp/siglongjmp. */
typedef struct { sigjmp_buf env; } Co;
static Co main_co, co;
static sigjmp_buf creator_env;

__attribute__((noinline)) static void co_switch(Co *from, Co *to)
{
    if (!sigsetjmp(from->env, 0))
        siglongjmp(to->env, 1);
}

__attribute__((noinline)) static int co_level2(int x)
{
    co_switch(&co, &main_co);
    return x + 1;
}

__attribute__((noinline)) static int co_level1(int x)
{
    return co_level2(x * 2) + 3;
}

static void co_trampoline(void)
{
    if (!sigsetjmp(co.env, 0))
        siglongjmp(creator_env, 1);
    for (;;) {
        global_value += co_level1((int)global_value);
        co_switch(&co, &main_co);
    }
}

static void co_start(void)
{
    static ucontext_t old, uc;
    getcontext(&uc);
    uc.uc_stack.ss_sp = malloc(1 << 16);
    uc.uc_stack.ss_size = 1 << 16;
    makecontext(&uc, co_trampoline, 0);
    if (!sigsetjmp(creator_env, 0))
        swapcontext(&old, &uc);
    co_switch(&main_co, &co);      /* runs until co_level2 switches back */
}

__attribute__((noinline)) static int blocker(int depth)
{
    char buf[8];
    if (depth > 0)
        return blocker(depth - 1) + 1;
    return read(fds[0], buf, 1);
}

static void handler(int sig)
{
    (void)sig;
    blocker(2);
}

static void *worker(void *arg)
{
    tls_counter = (long)arg;
    blocker((int)(long)arg);
    return NULL;
}

static void *sig_worker(void *arg)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    return arg;
}

int main(int argc, char **argv)
{
    pthread_t t[3];
    (void)argv;
    if (pipe(fds))
        return 1;
    memset(big_buffer + 4096, 'x', 2 * 4096);
    co_start();
    if (setjmp(saved_env) == 0) {
        pthread_create(&t[0], NULL, worker, (void *)3);
        pthread_create(&t[1], NULL, worker, (void *)5);
        pthread_create(&t[2], NULL, sig_worker, NULL);
    }
    printf("%d %s %ld\n", getpid(), static_str, global_value);
    fflush(stdout);
    if (argc > 1)
        *(volatile int *)8 = 1;
    pthread_join(t[0], NULL);
    return 0;
}
"""

GDB_FRAMES = r"""
import gdb


def dump_frames():
    f = gdb.newest_frame()
    frames = []
    while f is not None:
        frames.append({"type": int(f.type()), "pc": f.pc(), "name": f.name(),
                       "sp": int(f.read_register("rsp")) & ((1 << 64) - 1),
                       "saved": {r: int(f.read_register(r)) & ((1 << 64) - 1)
                                 for r in ("rbx", "rbp", "r12", "r13", "r14", "r15")}})
        f = f.older()
    return frames
"""

# Live process: dump a core, then load the suspended coroutine's jmp_buf registers
# into thread 1 (demangled as glibc's PTR_DEMANGLE does) and let gdb unwind them.
GDB_COROUTINE = GDB_FRAMES + r"""
import json
gdb.execute("gcore " + CORE, to_string=True)


def u64(a):
    return int(gdb.parse_and_eval("*(unsigned long *)%d" % a)) & ((1 << 64) - 1)


env = int(gdb.parse_and_eval("(unsigned long)&co.env"))
guard = u64(int(gdb.parse_and_eval("$fs_base")) + 0x30)
regs = {}
for name, slot in (("rbx", 0), ("rbp", 1), ("r12", 2), ("r13", 3), ("r14", 4),
                   ("r15", 5), ("rsp", 6), ("rip", 7)):
    v = u64(env + 8 * slot)
    if name in ("rbp", "rsp", "rip"):
        v = (((v >> 0x11) | (v << (64 - 0x11))) & ((1 << 64) - 1)) ^ guard
    regs[name] = v
    gdb.execute("set $%s = %d" % (name, v))
print("JSON:" + json.dumps({"regs": regs, "frames": dump_frames()}))
gdb.execute("kill")
"""

GDB_DUMP = GDB_FRAMES + r"""
import json
out = []
for th in sorted(gdb.selected_inferior().threads(), key=lambda t: t.num):
    th.switch()
    f = gdb.newest_frame()
    regs = {r: int(f.read_register(r)) & ((1 << 64) - 1) for r in
            ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
             "r11", "r12", "r13", "r14", "r15", "rip", "eflags", "fs_base", "gs_base",
             "cs", "ss")}
    out.append({"num": th.num, "tid": th.ptid[1], "regs": regs, "frames": dump_frames()})
print("JSON:" + json.dumps(out))
"""

NORMAL_FRAME, INLINE_FRAME, TAILCALL_FRAME, SIGTRAMP_FRAME = 0, 2, 3, 4


def gdb(exe, core, *commands, script=None):
    args = ["gdb", "-batch", "-nx", "-iex", "set debuginfod enabled off"]
    if script:
        args += ["-x", script]
    for c in commands:
        args += ["-ex", c]
    res = subprocess.run(args + [exe, core], capture_output=True, text=True, timeout=120)
    return res.stdout


def gdb_value(exe, core, expr):
    """The value gdb prints for `p/x expr` (as an int)."""
    out = gdb(exe, core, f"p/x {expr}")
    line = [l for l in out.splitlines() if l.startswith("$1 = ")]
    assert line, f"gdb could not evaluate {expr}: {out}"
    return int(line[0].split()[-1], 16)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    d = tmp_path_factory.mktemp("corefile")
    (d / "prog.c").write_text(PROG)
    for name, extra in (("prog", []), ("other", ["-O1"])):
        subprocess.run(["gcc", "-O2", "-g", "-pthread", *extra, "-o", str(d / name),
                        str(d / "prog.c")], check=True)
    return d


def _start(d, *args):
    def unlimited():
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)
    p = subprocess.Popen([str(d / "prog"), *args], cwd=d, stdout=subprocess.PIPE,
                         text=True, preexec_fn=unlimited)
    pid = int(p.stdout.readline().split()[0])
    time.sleep(0.5)          # let the threads reach read()
    return p, pid


def gcore_of(argv, d, settle=0.5, before_dump=None):
    """A gcore (in d) of the program argv started in d, once it has printed its pid and
    had `settle` seconds to reach its waiting point; the program is killed after."""
    p = subprocess.Popen([str(a) for a in argv], cwd=d, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(p.stdout.readline().split()[0])
        time.sleep(settle)
        if before_dump:
            before_dump()
        subprocess.run(["gcore", "-o", str(d / "gc"), str(pid)], check=True,
                       capture_output=True, timeout=120)
    finally:
        p.kill()
        p.wait()
    return str(d / f"gc.{pid}")


def gdb_dump(exe, core, d):
    """gdb's registers and frames of every thread of a core (GDB_DUMP's JSON)."""
    (d / "dump.py").write_text(GDB_DUMP)
    out = gdb(str(exe), core, script=str(d / "dump.py"))
    line = [l for l in out.splitlines() if l.startswith("JSON:")]
    assert line, f"gdb produced no frames for {core}:\n{out}"
    return json.loads(line[0][5:])


@pytest.fixture(scope="module")
def cores(build):
    """{'kernel': path, 'gcore': path, 'segv': path} of cores of the program."""
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    assert pattern == "core", f"kernel.core_pattern must be 'core' for these tests, is {pattern!r}"
    d = build
    out = {}
    p, pid = _start(d)
    subprocess.run(["gcore", "-o", str(d / "gc"), str(pid)], check=True,
                   capture_output=True, timeout=120)
    out["gcore"] = str(d / f"gc.{pid}")
    os.kill(pid, signal.SIGABRT)
    p.wait(timeout=60)
    os.rename(d / "core", d / "kernel.core")
    out["kernel"] = str(d / "kernel.core")
    p, pid = _start(d, "segv")
    p.wait(timeout=60)
    os.rename(d / "core", d / "segv.core")
    out["segv"] = str(d / "segv.core")
    return out


@pytest.fixture(scope="module")
def oracle(build, cores):
    """gdb's threads, registers and frames for each core."""
    res = {}
    for kind, core in cores.items():
        res[kind] = gdb_dump(build / "prog", core, build)
    return res


KINDS = ("kernel", "gcore", "segv")


@pytest.mark.parametrize("kind", KINDS)
def test_threads_and_registers_match_gdb(build, cores, oracle, kind):
    with corefile.open(cores[kind]) as prog:
        assert prog.exe_path == str(build / "prog")
        assert [(t.num, t.tid) for t in prog.threads] == \
            [(t["num"], t["tid"]) for t in oracle[kind]]
        for mine, theirs in zip(prog.threads, oracle[kind]):
            for reg, value in theirs["regs"].items():
                assert mine.registers[reg] == value, (kind, mine.num, reg)


def test_crashed_thread_and_siginfo(cores):
    with corefile.open(cores["segv"]) as prog:
        t = prog.crashed_thread
        assert t is prog.threads[0] and t.cursig == signal.SIGSEGV
        assert prog.siginfo.signo == signal.SIGSEGV and prog.siginfo.addr == 8
        assert prog.psinfo.fname == "prog"
    with corefile.open(cores["kernel"]) as prog:
        assert prog.crashed_thread.cursig == signal.SIGABRT
        assert prog.siginfo.signo == signal.SIGABRT
    with corefile.open(cores["gcore"]) as prog:
        assert prog.crashed_thread is None and prog.siginfo is None


def _physical(frames):
    """gdb's frames that are real stack frames (no inline or tail-call frames). A
    thread caught inside clone3 before it has a frame makes gdb's prologue analyzer
    add a last "0x0000000000000000 in ?? ()": corefile stops before such junk."""
    out = [f for f in frames if f["type"] in (NORMAL_FRAME, SIGTRAMP_FRAME)]
    while out and out[-1]["pc"] == 0:
        out.pop()
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_frames_match_gdb(cores, oracle, kind):
    """Every thread: the same physical frames as gdb (pc and sp), signal frame included,
    down to the outermost frame gdb shows, no fallback frames."""
    with corefile.open(cores[kind]) as prog:
        for thread, theirs in zip(prog.threads, oracle[kind]):
            frames = [f for f in prog.unwind(thread.registers) if not f.tailcall]
            want = _physical(theirs["frames"])
            assert [(hex(f.pc), hex(f.sp), f.signal) for f in frames] == \
                [(hex(f["pc"]), hex(f["sp"]), f["type"] == SIGTRAMP_FRAME) for f in want], \
                (kind, thread.num)
            assert not any(f.fallback for f in frames)
            # Callee-saved registers restored from CFI, as gdb's `info registers` in
            # each frame shows them.
            for mine, gdbs in zip(frames, want):
                assert {r: mine.registers[r] for r in gdbs["saved"]} == gdbs["saved"], \
                    (kind, thread.num, mine.level)


KIND = {NORMAL_FRAME: "normal", INLINE_FRAME: "inline", TAILCALL_FRAME: "tailcall",
        SIGTRAMP_FRAME: "signal"}


@pytest.mark.parametrize("kind", KINDS)
def test_backtrace_matches_gdb(cores, oracle, kind):
    """gdb's numbering: inline frames from DWARF, tail-call frames from DWARF call
    sites, signal frames; same kinds, pcs and function names (glibc's by their
    linkage names, __GI_ aliases, as gdb prints them)."""
    with corefile.open(cores[kind]) as prog:
        for thread, theirs in zip(prog.threads, oracle[kind]):
            want = [(KIND[f["type"]], hex(f["pc"]), f["name"]) for f in theirs["frames"]
                    if f["pc"] != 0]
            got = [(e.kind, hex(e.pc), e.function) for e in prog.backtrace(thread.registers)]
            assert got == want, (kind, thread.num)


def test_elf_symbols_match_gdb_minimal_symbols(build, cores, oracle):
    """ELF symbolization (no DWARF) gives gdb's `info symbol` answer for every frame."""
    exe = str(build / "prog")
    with corefile.open(cores["kernel"]) as prog:
        pcs = []
        for thread in prog.threads:
            frames = [f for f in prog.unwind(thread.registers) if not f.tailcall]
            for i, f in enumerate(frames):
                caller = i > 0 and not f.signal and not frames[i - 1].signal
                pcs.append(f.pc - 1 if caller else f.pc)
        out = gdb(exe, cores["kernel"], *[f"info symbol 0x{pc:x}" for pc in pcs])
        answers = [l for l in out.splitlines() if " in section " in l]
        assert len(answers) == len(pcs)
        for pc, line in zip(pcs, answers):
            name, offset, _ = prog.elf_symbol(pc)
            gdb_name = line.split(" in section ")[0]
            expect = name if offset == 0 else f"{name} + {offset}"
            # gdb drops a trailing ".N" clone number (blocker.isra.0 -> blocker.isra).
            assert gdb_name == expect or gdb_name == expect.replace(".0", "", 1), hex(pc)


@pytest.mark.parametrize("kind", ("kernel", "gcore"))
def test_memory_matches_gdb(build, cores, kind):
    exe = str(build / "prog")
    core = cores[kind]
    with corefile.open(core) as prog:
        addr = prog.symbol_address("global_value")
        assert addr == gdb_value(exe, core, "&global_value")
        assert prog.read_u64(addr) == 0x1122334455667788
        s = prog.read_pointer(prog.symbol_address("static_str"))
        assert prog.read(s, 15) == b"hello corefile\0"
        # Text the kernel left out of the core comes from the executable.
        pc = prog.symbol_address("main")
        out = gdb(exe, core, f"x/16xb 0x{pc:x}")
        gdb_bytes = bytes(int(w, 16) for l in out.splitlines() if l.startswith("0x")
                          for w in l.split(":", 1)[1].split())
        assert prog.read(pc, 16) == gdb_bytes
        # A read across page (and segment) boundaries.
        big = prog.symbol_address("big_buffer")
        data = prog.read(big, 3 * 4096 + 100)
        assert data.startswith(b"start of big buffer")
        assert data[4096:3 * 4096] == b"x" * (2 * 4096)
        with pytest.raises(corefile.FaultError) as e:
            prog.read(0x10, 8)
        assert e.value.address == 0x10
        # A read that starts mapped and runs off the end faults at the first hole.
        last = max(s.vaddr + s.memsz for s in prog.core.segments)
        with pytest.raises(corefile.FaultError) as e:
            prog.read(last - 8, 16)
        assert e.value.address == last


def test_tls_matches_gdb(build, cores):
    exe = str(build / "prog")
    core = cores["kernel"]
    with corefile.open(core) as prog:
        offset = prog.exe.symtab.tls_by_name["tls_counter"].address
        out = gdb(exe, core, *[c for t in prog.threads
                               for c in (f"thread {t.num}", "p/x &tls_counter")])
        addrs = [int(l.split()[-1], 16) for l in out.splitlines() if l.startswith("$")]
        assert addrs == [prog.tls_address(prog.exe, offset, t) for t in prog.threads]
        values = {prog.read_u64(a) for a in addrs}
        assert values == {0x1234, 3, 5}


def test_coroutine_unwind_matches_live_gdb(build, tmp_path):
    """A suspended coroutine: registers from its jmp_buf (arch facts: slots, pointer
    mangling, guard at fs_base+0x30) unwound by corefile from a core equal gdb's own
    unwinding of the same registers set in the live process."""
    p, pid = _start(build)
    try:
        core = tmp_path / "co.core"
        script = tmp_path / "co.py"
        script.write_text(f"CORE = {str(core)!r}\n" + GDB_COROUTINE)
        res = subprocess.run(["gdb", "-batch", "-nx", "-iex", "set debuginfod enabled off",
                              "-p", str(pid), "-x", str(script)],
                             capture_output=True, text=True, timeout=120)
        line = [l for l in res.stdout.splitlines() if l.startswith("JSON:")]
        assert line, res.stdout + res.stderr
        theirs = json.loads(line[0][5:])
    finally:
        p.kill()
        p.wait()
    with corefile.open(str(core)) as prog:
        arch = prog.arch
        main = prog.threads[0].registers
        guard = prog.read_u64(main["fs_base"] + arch.POINTER_GUARD_OFFSET)
        env = prog.symbol_address("co")
        regs = dict(main)
        for reg, slot in arch.JMPBUF_SLOTS.items():
            value = prog.read_u64(env + 8 * slot)
            regs[reg] = arch.demangle(value, guard) if reg in arch.JMPBUF_MANGLED else value
        assert {r: regs[r] for r in theirs["regs"]} == theirs["regs"]
        got = [(e.kind, hex(e.pc), e.function) for e in prog.backtrace(regs)]
    # Below the trampoline gdb's prologue analyzer adds a "0x0 in ?? ()": not us.
    want = [(KIND[f["type"]], hex(f["pc"]), f["name"]) for f in theirs["frames"]
            if f["pc"] != 0]
    assert [g[:2] for g in got] == [w[:2] for w in want]
    assert [g[2] for g in got] == [w[2] for w in want]
    assert "co_level2" in [w[2] for w in want]


LIB_TLS = r"""
__thread long lib_tls = 0x77;
static __thread long lib_tls_static = 5;
long lib_touch(long v) { lib_tls_static += v; lib_tls = v * 3; return lib_tls + lib_tls_static; }
"""

LIB_TLS_MAIN = r"""
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
long lib_touch(long v);
static void *worker(void *arg) { lib_touch((long)arg); pause(); return NULL; }
int main(void)
{
    pthread_t t;
    lib_touch(1);
    pthread_create(&t, NULL, worker, (void *)7);
    sleep(1);
    printf("%d\n", getpid());
    fflush(stdout);
    pause();
}
"""


def test_library_tls_matches_gdb(tmp_path):
    """__thread variables of a shared library, through the DTV and the dynamic
    linker's link_map (layout from ld.so's DWARF), equal gdb's `p &var` per thread."""
    (tmp_path / "lib.c").write_text(LIB_TLS)
    (tmp_path / "main.c").write_text(LIB_TLS_MAIN)
    subprocess.run(["gcc", "-O2", "-g", "-shared", "-fPIC", "-o", "libtlsx.so", "lib.c"],
                   cwd=tmp_path, check=True)
    subprocess.run(["gcc", "-O2", "-g", "-pthread", "-o", "main", "main.c", "-L.",
                    "-ltlsx", f"-Wl,-rpath,{tmp_path}"], cwd=tmp_path, check=True)
    core = gcore_of([tmp_path / "main"], tmp_path, settle=0)
    out = gdb(str(tmp_path / "main"), core,
              *[c for n in (1, 2) for c in (f"thread {n}", "p/x &lib_tls",
                                            "p/x &'lib.c'::lib_tls_static")])
    want = [int(l.split()[-1], 16) for l in out.splitlines() if l.startswith("$")]
    with corefile.open(core, cache_dir=str(tmp_path / "cache")) as prog:
        got = []
        for t in prog.threads:
            got += [prog.variable("lib_tls", thread=t)[0],
                    prog.variable("lib_tls_static", file="lib.c", thread=t)[0]]
        assert got == want
        assert [prog.read_u64(a) for a in got] == [3, 6, 21, 12]


VDSO_PROG = r"""
#include <stdio.h>
#include <time.h>
#include <unistd.h>
__attribute__((noinline)) static long spin(void)
{
    struct timespec ts;
    long sum = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        sum += ts.tv_nsec;
    }
    return sum;
}
int main(void)
{
    printf("%d\n", getpid());
    fflush(stdout);
    return (int)spin();
}
"""


def test_vdso_frames_match_gdb(tmp_path):
    """A thread inside the vDSO (clock_gettime): its CFI comes from the vDSO image in
    the core's memory; frames equal gdb's."""
    (tmp_path / "v.c").write_text(VDSO_PROG)
    subprocess.run(["gcc", "-O2", "-g", "-o", "v", "v.c"], cwd=tmp_path, check=True)
    p = subprocess.Popen([str(tmp_path / "v")], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(p.stdout.readline())
        core = str(tmp_path / f"gc.{pid}")
        for _ in range(10):     # until the dump catches the thread inside the vDSO
            subprocess.run(["gcore", "-o", str(tmp_path / "gc"), str(pid)], check=True,
                           capture_output=True, timeout=120)
            with corefile.open(core, cache_dir=str(tmp_path / "cache")) as prog:
                pc = prog.threads[0].registers["rip"]
                if prog.module_for(pc).name == "[vdso]":
                    break
    finally:
        p.kill()
        p.wait()
    (tmp_path / "dump.py").write_text(GDB_DUMP)
    out = gdb(str(tmp_path / "v"), core, script=str(tmp_path / "dump.py"))
    theirs = json.loads([l for l in out.splitlines() if l.startswith("JSON:")][0][5:])
    with corefile.open(core, cache_dir=str(tmp_path / "cache")) as prog:
        assert prog.module_for(prog.threads[0].registers["rip"]).name == "[vdso]"
        got = [(e.kind, hex(e.pc), e.function) for e in prog.backtrace(prog.threads[0].registers)]
    want = [(KIND[f["type"]], hex(f["pc"]), f["name"]) for f in theirs[0]["frames"]]
    assert got == want
    assert "spin" in [w[2] for w in want]


def test_jmp_buf_demangling(cores):
    """main's setjmp(saved_env): the demangled pc lies in main, sp on main's stack."""
    with corefile.open(cores["kernel"]) as prog:
        arch = prog.arch
        env = prog.symbol_address("saved_env")
        main = prog.threads[0].registers
        guard = prog.read_u64(main["fs_base"] + arch.POINTER_GUARD_OFFSET)
        slots = {r: prog.read_u64(env + 8 * i) for r, i in arch.JMPBUF_SLOTS.items()}
        regs = {r: arch.demangle(v, guard) if r in arch.JMPBUF_MANGLED else v
                for r, v in slots.items()}
        assert prog.symbolize(regs["rip"]).function == "main"
        assert main["rsp"] < regs["rsp"] < main["rsp"] + 0x10000


def test_bad_input(build, cores, tmp_path):
    core = cores["kernel"]
    with pytest.raises(corefile.BadCoreError):
        corefile.open(str(build / "prog"))
    short = tmp_path / "short.core"
    short.write_bytes(open(core, "rb").read(100))
    with pytest.raises(corefile.BadCoreError):
        corefile.open(str(short))
    with pytest.raises(corefile.BadCoreError):
        corefile.open(str(tmp_path / "missing.core"))
    packed = tmp_path / "core.zst"
    subprocess.run(["zstd", "-q", "-o", str(packed), str(short)], check=True)
    with pytest.raises(corefile.BadCoreError, match=f"^{packed}: truncated core"):
        corefile.open(str(packed))  # decompressed, then named by the user's file
    with pytest.raises(corefile.MismatchError):
        corefile.open(core, exe=str(build / "other"))
    # A core cut in the middle of its memory: opens, says it is partial, and the
    # bytes that are gone fault.
    size = os.path.getsize(core)
    half = tmp_path / "half.core"
    with open(core, "rb") as src, open(half, "wb") as dst:
        dst.write(src.read(size // 2))
    with corefile.open(str(half)) as prog:
        assert any("truncated" in r for r in prog.partial_reasons)
        lost = next(s for s in prog.core.segments if s.filesz == 0 and s.memsz and
                    not any(m.start <= s.vaddr < m.end for m in prog.mappings))
        with pytest.raises(corefile.FaultError):
            prog.read(lost.vaddr, 8)
        for t in prog.threads:
            prog.unwind(t.registers)     # no exception, however short


def test_executable_without_debug_info(build, tmp_path):
    """A stripped executable: ELF symbols and CFI still unwind every thread as gdb
    does; asking for types or variables says the debug info is missing."""
    exe = tmp_path / "stripped"
    subprocess.run(["gcc", "-O2", "-pthread", "-s", "-o", str(exe), str(build / "prog.c")],
                   check=True, capture_output=True)
    core = gcore_of([exe], tmp_path)
    theirs = gdb_dump(exe, core, tmp_path)
    with corefile.open(core) as prog:
        with pytest.raises(corefile.MissingDebugInfoError):
            prog.type("int")
        with pytest.raises(corefile.MissingDebugInfoError):
            prog.variable("global_value")
        for thread, t in zip(prog.threads, theirs):
            got = [(e.kind, hex(e.pc)) for e in prog.backtrace(thread.registers)]
            want = [(KIND[f["type"]], hex(f["pc"])) for f in t["frames"] if f["pc"] != 0]
            assert got == want, thread.num


def test_replaced_executable(build, tmp_path):
    """The binary was replaced after the process started (NT_FILE says "PATH
    (deleted)"): the file now at PATH is used when its build-id matches, and a
    different one is refused."""
    exe = tmp_path / "victim"
    shutil.copy(build / "prog", exe)

    def replace():
        shutil.copy(build / "prog", tmp_path / "same")
        os.replace(tmp_path / "same", exe)
    core = gcore_of([exe], tmp_path, settle=0, before_dump=replace)
    with corefile.open(core) as prog:
        assert any(m.path == f"{exe} (deleted)" for m in prog.mappings)
        assert prog.exe_path == str(exe)
        assert prog.symbolize(prog.symbol_address("main")).function == "main"
    shutil.copy(build / "other", tmp_path / "new")
    os.replace(tmp_path / "new", exe)
    with pytest.raises(corefile.MismatchError):
        corefile.open(core)


def test_unwinding_garbage_registers(cores):
    """Wild registers give a short, clean answer: no exception, no junk frames."""
    with corefile.open(cores["kernel"]) as prog:
        regs = prog.threads[1].registers
        for bad in ({"rsp": 0x10}, {"rip": 0xdeadbeef}, {"rip": 0, "rsp": 0},
                    {"rsp": regs["rsp"] + 3}, {"rbp": 0x10, "rip": prog.symbol_address("main")}):
            frames = prog.unwind({**regs, **bad})
            assert 1 <= len(frames) <= 8
            assert all(f.location.module or f.level == 0 for f in frames)
        with pytest.raises(corefile.CorefileError):
            prog.unwind({"rax": 1})


def test_corrupted_notes_never_traceback(cores, tmp_path):
    """Random damage to a core's headers and notes: a CorefileError or a (partial)
    result, never another exception."""
    import random
    src = cores["kernel"]
    core = tmp_path / "damaged.core"
    shutil.copy(src, core)
    with open(src, "rb") as f:
        head = f.read(64)
        phoff, = struct.unpack_from("<Q", head, 32)
        phnum, = struct.unpack_from("<H", head, 56)
        f.seek(phoff)
        notes = [struct.unpack_from("<IIQQQQQQ", f.read(56)) for _ in range(phnum)]
    note_off, note_size = next((n[2], n[5]) for n in notes if n[0] == 4)
    original = open(src, "rb").read(note_off + note_size)
    rng = random.Random(1234)
    outcomes = set()
    for _ in range(60):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(0, phoff + 56 * phnum) if rng.random() < 0.3 else \
                rng.randrange(note_off, len(data))
            data[pos] = rng.randrange(256)
        with open(core, "r+b") as f:
            f.write(data)
        try:
            with corefile.open(str(core), cache_dir=str(tmp_path / "cache")) as prog:
                for t in prog.threads:
                    prog.backtrace(t.registers)
                outcomes.add("opened")
        except corefile.CorefileError:
            outcomes.add("refused")
    assert outcomes == {"opened", "refused"}


def test_sysroot(build, cores, tmp_path):
    """A core from "another machine": its files found under a sysroot."""
    root = tmp_path / "root"
    exe = str(build / "prog")
    dest = root / exe.lstrip("/")
    dest.parent.mkdir(parents=True)
    shutil.copy(exe, dest)
    with corefile.open(cores["kernel"], sysroot=str(root)) as prog:
        assert prog.exe_path == str(dest)
        assert prog.read(prog.symbol_address("main"), 4)
        assert any("libc.so.6" in r for r in prog.partial_reasons)
