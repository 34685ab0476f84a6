"""x86-64 facts as data: register numbering, core note layouts, jmp_buf, TLS."""

NAME = "x86_64"
E_MACHINE = 62  # EM_X86_64
POINTER_SIZE = 8

# NT_PRSTATUS pr_reg: struct user_regs_struct, in order, 8 bytes each.
USER_REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
             "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
             "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")
# struct elf_prstatus: offsets of the fields we use, and its size.
PRSTATUS_CURSIG = 12      # short pr_cursig
PRSTATUS_PID = 32         # pid_t pr_pid (the thread id)
PRSTATUS_REG = 112        # elf_gregset_t pr_reg
PRSTATUS_SIZE = 336
# struct elf_prpsinfo
PRPSINFO_PID = 24
PRPSINFO_UID = 16
PRPSINFO_FNAME = (40, 16)
PRPSINFO_PSARGS = (56, 80)

# DWARF register numbers (System V x86-64 psABI, figure 3.36).
DWARF_REGS = ("rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
              "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip")
DWARF_REGNO = {name: i for i, name in enumerate(DWARF_REGS)}
DWARF_REGNO.update({"eflags": 49, "es": 50, "cs": 51, "ss": 52, "ds": 53, "fs": 54,
                    "gs": 55, "fs_base": 58, "gs_base": 59})
DWARF_NAME = {n: name for name, n in DWARF_REGNO.items()}
PC = "rip"
SP = "rsp"
FP = "rbp"
# The registers a thread reports (a core may lack some: fs_base on old cores).
THREAD_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9",
                    "r10", "r11", "r12", "r13", "r14", "r15", "rip", "eflags",
                    "fs_base", "gs_base", "orig_rax")
RA_COLUMN = 16  # the return address column CIEs use
# Registers a call preserves (unwinding keeps them unless CFI says otherwise).
CALLEE_SAVED = ("rbx", "rbp", "r12", "r13", "r14", "r15", "fs_base", "gs_base")

# Signal frames: glibc's __restore_rt is `mov $15, %rax; syscall` (rt_sigreturn).
SIGRETURN_CODE = bytes.fromhex("48c7c00f0000000f05")
# struct rt_sigframe as __restore_rt sees it at rsp: pretcode popped, so the
# ucontext starts at rsp; uc_mcontext (struct sigcontext) at offset 40.
SIGCONTEXT_OFFSET = 40
SIGCONTEXT_REGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi",
                   "rbp", "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags")

# glibc's jmp_buf (__jmp_buf of 8 longs): register slots, and which are mangled.
JMPBUF_SLOTS = {"rbx": 0, "rbp": 1, "r12": 2, "r13": 3, "r14": 4, "r15": 5,
                "rsp": 6, "rip": 7}
JMPBUF_MANGLED = ("rbp", "rsp", "rip")
POINTER_GUARD_OFFSET = 0x30  # tcbhead_t.pointer_guard, read at fs_base + this
DTV_OFFSET = 8               # tcbhead_t.dtv, read at fs_base + this
DTV_ENTRY_SIZE = 16          # glibc's dtv_t: {void *val; void *to_free}; dtv[modid]
MANGLE_ROTATE = 0x11


def demangle(value: int, guard: int) -> int:
    """Undo glibc's PTR_MANGLE: stored = rol64(value ^ guard, 0x11)."""
    value &= (1 << 64) - 1
    ror = ((value >> MANGLE_ROTATE) | (value << (64 - MANGLE_ROTATE))) & ((1 << 64) - 1)
    return ror ^ guard


# The registers that locate a thread's TLS (the thread pointer first): a suspended
# coroutine's register set borrows them from the thread it is read for.
TLS_REGISTERS = ("fs_base", "gs_base")


def thread_pointer(registers: dict) -> int:
    """TLS variant II: the thread pointer is fs_base."""
    return registers[TLS_REGISTERS[0]]


def static_tls_address(tp: int, tls_vaddr: int, tls_memsz: int, tls_align: int,
                       offset: int) -> int:
    """Address of a variable at `offset` in the executable's PT_TLS block. Variant II:
    the block ends just below the thread pointer, laid out as glibc's
    _dl_determine_tlsoffset does for the first module."""
    align = max(tls_align, 1)
    firstbyte = -(tls_vaddr & (align - 1)) & (align - 1)
    block = (tls_memsz - firstbyte + align - 1) // align * align + firstbyte
    return tp - block + offset

# Linux x86-64 system calls a blocked thread sits in (orig_rax in NT_PRSTATUS; -1 outside
# one), and where their arguments are (rdi is preserved by `syscall`).
SYSCALL_NR = "orig_rax"
SYSCALL_ARGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
SYSCALLS = {0: "read", 1: "write", 7: "poll", 16: "ioctl", 17: "pread64", 18: "pwrite64",
            19: "readv", 20: "writev", 23: "select", 34: "pause", 35: "nanosleep",
            43: "accept", 45: "recvfrom", 47: "recvmsg", 61: "wait4", 74: "fsync",
            75: "fdatasync", 202: "futex", 208: "io_getevents", 230: "clock_nanosleep",
            232: "epoll_wait", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait",
            219: "restart_syscall", 285: "fallocate", 295: "preadv", 296: "pwritev", 327: "preadv2",
            328: "pwritev2", 426: "io_uring_enter", 441: "epoll_pwait2"}
KVM_RUN = 0xAE80  # ioctl(vcpu_fd, KVM_RUN): the thread runs guest code
