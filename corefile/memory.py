"""The address space of a core: bytes from the core's segments first, then bytes the
dumper left out read from the files named in NT_FILE."""

import bisect
import mmap
import os
import stat

from .errors import FaultError

DELETED = " (deleted)"


class _MappedFile:
    """A file named in NT_FILE, opened read-only and mmap'ed on first use."""

    def __init__(self, path: str):
        self.path = path
        self.data = None
        self.error = None

    def get(self):
        if self.data is None and self.error is None:
            try:
                # O_NONBLOCK: a core may name a FIFO or a device; only regular files.
                fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):
                        raise ValueError("not a regular file")
                    if st.st_size == 0:
                        self.data = b""
                    else:
                        self.data = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
                finally:
                    os.close(fd)
            except (OSError, ValueError) as e:
                self.error = getattr(e, "strerror", None) or str(e)
        return self.data


class AddressSpace:
    """read(addr, size) over core segments, falling back to mapped files."""

    def __init__(self, core, sysroot: str | None = None):
        self.core = core
        self.sysroot = sysroot
        self._segs = core.segments
        self._seg_starts = [s.vaddr for s in self._segs]
        self._maps = sorted(core.mappings, key=lambda m: m.start)
        self._map_starts = [m.start for m in self._maps]
        self._files = {}
        self.overrides = {}   # path in the core -> host path (e.g. the exe given)

    def host_path(self, path: str) -> str:
        """Where a path named in the core is on this machine (sysroot applied)."""
        if path in self.overrides:
            return self.overrides[path]
        host = path
        if self.sysroot and path.startswith("/"):
            host = os.path.join(self.sysroot, path.lstrip("/"))
        # A file replaced after the process mapped it: the kernel names it "PATH
        # (deleted)". Try PATH; a build-id check tells whether it is the same file.
        if host.endswith(DELETED) and not os.path.exists(host):
            host = host[:-len(DELETED)]
        return host

    def file(self, path: str) -> _MappedFile:
        f = self._files.get(path)
        if f is None:
            host = self.overrides.get(path) or self.host_path(path)
            f = self._files[path] = _MappedFile(host)
        return f

    def close(self):
        for f in self._files.values():
            if isinstance(f.data, mmap.mmap):
                f.data.close()
        self._files.clear()

    def _from_core(self, addr: int, size: int):
        """(bytes, covered) for the start of [addr, addr+size) from core segments:
        bytes is None when addr is not backed by core contents; covered is how many
        bytes the answer (or its absence) is good for."""
        i = bisect.bisect_right(self._seg_starts, addr) - 1
        if i >= 0:
            s = self._segs[i]
            rel = addr - s.vaddr
            if rel < s.filesz:
                n = min(size, s.filesz - rel)
                return self.core.data[s.offset + rel:s.offset + rel + n], n
            if rel < s.filesz + s.cut:   # dumped, then lost: the file's bytes are not these
                raise FaultError(addr, f"cannot read memory at 0x{addr:x} (the core file "
                                       f"is truncated there)")
            if rel < s.memsz:
                return None, min(size, s.memsz - rel)
        nxt = self._seg_starts[i + 1] if i + 1 < len(self._segs) else None
        return None, size if nxt is None else min(size, nxt - addr)

    def _from_file(self, addr: int, size: int):
        """(bytes, n) read from the NT_FILE mapping covering addr, or (None, 0)."""
        i = bisect.bisect_right(self._map_starts, addr) - 1
        if i < 0 or addr >= self._maps[i].end:
            return None, 0
        m = self._maps[i]
        data = self.file(m.path).get()
        if data is None:
            return None, 0
        pos = m.offset + addr - m.start
        n = min(size, m.end - addr, len(data) - pos)
        if n <= 0:
            return None, 0
        return data[pos:pos + n], n

    def read(self, addr: int, size: int, core_only: bool = False) -> bytes:
        """size bytes at addr; FaultError(first unreadable address) otherwise.
        core_only: do not fall back to the mapped files."""
        if size <= 0:
            return b""
        if addr < 0 or addr + size > 1 << 64:
            raise FaultError(addr if addr < 0 or addr >= 1 << 64 else 1 << 64)
        parts = []
        while size:
            data, n = self._from_core(addr, size)
            if data is None:
                if core_only:
                    raise FaultError(addr)
                data, got = self._from_file(addr, n)
                if data is None:
                    raise FaultError(addr)
                n = got
            parts.append(data)
            addr += n
            size -= n
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readable(self, addr: int, size: int = 1) -> bool:
        try:
            self.read(addr, size)
            return True
        except FaultError:
            return False
