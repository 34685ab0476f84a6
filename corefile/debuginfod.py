"""A debuginfod client: separate debug info and executables by build-id from the servers
of DEBUGINFOD_URLS, kept in elfutils' client cache so that gdb (libdebuginfod) and corefile
share one cache, with elfutils' environment: DEBUGINFOD_CACHE_PATH, DEBUGINFOD_TIMEOUT,
DEBUGINFOD_MAXSIZE, DEBUGINFOD_MAXTIME, DEBUGINFOD_RETRY_LIMIT, DEBUGINFOD_VERBOSE.

Unlike libdebuginfod, servers are asked in order rather than in parallel, a download is
kept only when it is a complete ELF file with the build-id asked for, and a server that
fails (unreachable, too slow, garbage) is reported once and not asked again."""

import os
import re
import struct
import sys
import tempfile
import time

from .elf import ElfImage, SHT_NOBITS
from .errors import CorefileError

DEFAULT_TIMEOUT = 90           # s: elfutils' default DEBUGINFOD_TIMEOUT
LOW_SPEED_LIMIT = 100 * 1024   # B/s a transfer must average over each DEBUGINFOD_TIMEOUT s
DEFAULT_RETRY_LIMIT = 2
# The cache's configuration files and elfutils' defaults for them (seconds).
CACHE_MISS = ("cache_miss_s", 600)                 # how long a negative entry holds
CLEAN_INTERVAL = ("cache_clean_interval_s", 86400)
MAX_UNUSED_AGE = ("max_unused_age_s", 604800)
CACHED_NAME = re.compile(r".*/[a-f0-9]+(/debuginfo|/executable|/source.*|)$")
CHUNK = 1 << 16


def cache_path(env=os.environ) -> str:
    """elfutils' cache directory: DEBUGINFOD_CACHE_PATH; else ~/.debuginfod_client_cache
    when it exists (older clients'); else $XDG_CACHE_HOME/debuginfod_client, else
    ~/.cache/debuginfod_client."""
    if env.get("DEBUGINFOD_CACHE_PATH"):
        return env["DEBUGINFOD_CACHE_PATH"]
    home = env.get("HOME") or "/"
    legacy = os.path.join(home, ".debuginfod_client_cache")
    if os.path.exists(legacy):
        return legacy
    return os.path.join(env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"),
                        "debuginfod_client")


def _atol(text: str) -> int:
    """C's atol, as elfutils reads its numeric variables: the leading integer, else 0."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else 0


class _Miss(Exception):
    """The server answered that it does not have the file (an HTTP error status)."""


class _Failure(Exception):
    """The server could not be used: unreachable, too slow or sending garbage
    (server_fault: not asked again; retry: worth another attempt), or the file exceeds
    DEBUGINFOD_MAXSIZE."""

    def __init__(self, reason, retry=True, server_fault=True):
        super().__init__(reason)
        self.retry = retry
        self.server_fault = server_fault


class Client:
    """Files by build-id from the servers of DEBUGINFOD_URLS (see from_environment()).
    problems: one line per server that failed (and per file that could not be had for
    another reason than its absence). Downloads are shown on stream (default stderr)."""

    def __init__(self, urls: str, env=os.environ, stream=None):
        self.servers = []
        for url in urls.split():   # elfutils: URL/buildid, duplicates dropped
            server = url + ("buildid" if len(url) > 1 and url.endswith("/") else "/buildid")
            if server not in self.servers:
                self.servers.append(server)
        self.cache = cache_path(env)
        self.timeout = _atol(env["DEBUGINFOD_TIMEOUT"]) if "DEBUGINFOD_TIMEOUT" in env \
            else DEFAULT_TIMEOUT
        self.maxsize = _atol(env.get("DEBUGINFOD_MAXSIZE", ""))
        self.maxtime = _atol(env.get("DEBUGINFOD_MAXTIME", ""))
        self.retries = _atol(env["DEBUGINFOD_RETRY_LIMIT"]) \
            if "DEBUGINFOD_RETRY_LIMIT" in env else DEFAULT_RETRY_LIMIT
        self.verbose = "DEBUGINFOD_VERBOSE" in env
        self.stream = stream or sys.stderr
        self.problems = []
        self._failed = set()   # servers not asked again
        self._headers = {"User-Agent": "corefile (debuginfod client)"}
        if self.maxsize > 0:
            self._headers["X-DEBUGINFOD-MAXSIZE"] = str(self.maxsize)

    @classmethod
    def from_environment(cls, env=os.environ, stream=None) -> "Client | None":
        """A client for DEBUGINFOD_URLS, or None when it names no server."""
        urls = env.get("DEBUGINFOD_URLS", "")
        return cls(urls, env, stream) if urls.split() else None

    def find_debuginfo(self, build_id: bytes, name: str | None = None) -> str | None:
        """Path in the cache of the debug file with build_id (also the dwz alt file of that
        build-id), fetched if needed; None when no server has it. name: for messages."""
        return self._find(build_id, "debuginfo", name)

    def find_executable(self, build_id: bytes, name: str | None = None) -> str | None:
        """Path in the cache of the executable or library with build_id."""
        return self._find(build_id, "executable", name)

    # -- the cache -----------------------------------------------------------------

    def _find(self, build_id, kind, name):
        if not build_id or len(build_id) >= 64:
            return None
        hexid = build_id.hex()
        self._verbose(f"debuginfod_find_{kind} {hexid}" + (f" {name}" if name else ""))
        target = os.path.join(self.cache, hexid, kind)
        try:
            os.makedirs(self.cache, exist_ok=True)
            self._clean()
            cached = self._cached(target)
            if cached is None:
                cached = self._fetch(build_id, kind, name, target)
        except OSError as e:
            self._report(f"debuginfod cache {self.cache}: {e.strerror or e}")
            return None
        self._verbose(f"found {target}" if cached else "not found")
        return cached or None

    def _cached(self, target):
        """target when in the cache, "" for a fresh negative entry (an empty file younger
        than cache_miss_s; elfutils' older 000-permission ones are removed), else None."""
        try:
            fd = os.open(target, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except PermissionError:
            os.unlink(target)
            return None
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if st.st_size > 0:
            return target
        if time.time() - st.st_mtime <= self._config(*CACHE_MISS):
            self._verbose(f"negative cache entry {target}")
            return ""
        os.unlink(target)
        return None

    def _config(self, filename, default):
        """A number of the cache's configuration file, written with default if empty."""
        path = os.path.join(self.cache, filename)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            text = os.read(fd, 64)
            if not text:
                os.write(fd, str(default).encode())
                return default
        finally:
            os.close(fd)
        m = re.match(rb"\s*([+-]?\d+)", text)
        return int(m.group(1)) if m else default

    def _clean(self):
        """Every cache_clean_interval_s, remove cached files unused (atime) for
        max_unused_age_s and old empty directories, as elfutils does."""
        interval = self._config(*CLEAN_INTERVAL)
        stamp = os.path.join(self.cache, CLEAN_INTERVAL[0])
        if time.time() - os.stat(stamp).st_mtime < interval:
            return
        os.utime(stamp)
        max_age = self._config(*MAX_UNUSED_AGE)
        now = time.time()
        for top, dirs, files in os.walk(self.cache, topdown=False):
            # a file by when it was last read, a directory by when it last changed
            for names, used, remove in ((files, "st_atime", os.unlink),
                                        (dirs, "st_mtime", os.rmdir)):
                for name in names:
                    path = os.path.join(top, name)
                    try:
                        if CACHED_NAME.match(path) and \
                                now - getattr(os.stat(path), used) >= max_age:
                            remove(path)
                    except OSError:
                        pass

    # -- the servers ---------------------------------------------------------------

    def _fetch(self, build_id, kind, name, target):
        """Ask each usable server in turn. When every one answered that it has no such file,
        leave a negative entry (an empty file), as elfutils does."""
        directory = os.path.dirname(target)
        os.makedirs(directory, 0o700, exist_ok=True)
        servers = [s for s in self.servers if s not in self._failed]
        misses = 0
        for server in servers:
            try:
                if self._ask(f"{server}/{build_id.hex()}/{kind}", build_id, kind, name, target):
                    return target
                misses += 1
            except _Failure as e:
                where = server.removesuffix("/buildid")
                if e.server_fault:
                    self._failed.add(server)
                    self._report(f"debuginfod server {where}: {e}; not asked again")
                else:
                    self._report(f"debuginfod server {where}: {kind} of "
                                 f"{name or build_id.hex()}: {e}")
        if servers and misses == len(servers):
            try:
                os.close(os.open(target, os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                pass
        else:
            try:
                os.rmdir(directory)   # only when empty
            except OSError:
                pass
        return None

    def _ask(self, url, build_id, kind, name, target):
        """True when fetched, False when the server has no such file; _Failure once the
        retries (DEBUGINFOD_RETRY_LIMIT) are used up."""
        for retries_left in range(max(self.retries, 0), -1, -1):
            try:
                self._download(url, build_id, kind, name, target)
                return True
            except _Miss as e:
                self._verbose(f"server response {e}")
                return False
            except _Failure as e:
                self._verbose(f"server response {e}")
                if not e.retry or not retries_left:
                    raise
                self._verbose(f"Retry failed query, {retries_left} attempt(s) remaining")
        return False

    def _download(self, url, build_id, kind, name, target):
        """Fetch url into a temporary file beside target, check it, rename it over target
        (read-only, with the server's modification time)."""
        import http.client       # imported when first needed: ~20 ms
        import urllib.request
        self._verbose(f"url {url}")
        start = time.monotonic()
        request = urllib.request.Request(url, headers=self._headers)
        timeout = self.timeout if self.timeout > 0 else None
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.request.HTTPError as e:
            e.close()
            if e.code == 406:
                raise _TooLarge(self.maxsize) from None
            raise _Miss(f"HTTP {e.code} {e.reason}") from None
        except urllib.request.URLError as e:
            if isinstance(e.reason, FileNotFoundError):   # a file:// server
                raise _Miss("no such file") from None
            raise _network_failure(e) from None
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise _network_failure(e) from None
        fd, tmp = tempfile.mkstemp(prefix=kind + ".", dir=os.path.dirname(target))
        try:
            with response, os.fdopen(fd, "wb") as out:
                self._copy(response, out, url, kind, name, start)
            try:
                _check(tmp, build_id)
            except _Garbage as e:
                raise _Failure(f"sent {e} for build-id {build_id.hex()}", retry=False) from None
            modified = response.headers.get("Last-Modified")
            mtime = _http_time(modified) if modified else None
            if mtime is not None:
                os.utime(tmp, (mtime, mtime))
            os.chmod(tmp, 0o400)
            os.rename(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _copy(self, response, out, url, kind, name, start):
        """Copy the body, failing when slower than LOW_SPEED_LIMIT over a DEBUGINFOD_TIMEOUT
        window (curl's low-speed limit, as elfutils sets it), longer than
        DEBUGINFOD_MAXTIME or larger than DEBUGINFOD_MAXSIZE."""
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if self.maxsize > 0 and total is not None and total > self.maxsize:
            raise _TooLarge(self.maxsize)
        from http.client import HTTPException
        progress = _Progress(self.stream, kind, name, url, total)
        done = window_bytes = 0
        window_start = time.monotonic()
        try:
            while True:
                try:
                    chunk = response.read1(CHUNK)
                except (OSError, HTTPException) as e:
                    raise _network_failure(e) from None
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                progress.update(done)
                now = time.monotonic()
                if self.maxtime > 0 and now - start > self.maxtime:
                    raise _Failure(f"took more than DEBUGINFOD_MAXTIME={self.maxtime} s",
                                   retry=False, server_fault=False)
                if self.maxsize > 0 and done > self.maxsize:
                    raise _TooLarge(self.maxsize)
                if self.timeout > 0 and now - window_start >= self.timeout:
                    if done - window_bytes < LOW_SPEED_LIMIT * (now - window_start):
                        raise _Failure(f"slower than {LOW_SPEED_LIMIT // 1024} KiB/s for "
                                       f"DEBUGINFOD_TIMEOUT={self.timeout} s", retry=False)
                    window_start, window_bytes = now, done
        finally:
            progress.end()
        if total is not None and done != total:
            raise _Failure(f"sent {done} of {total} bytes")

    def _report(self, message):
        if message not in self.problems:
            self.problems.append(message)

    def _verbose(self, message):
        if self.verbose:
            print(message, file=self.stream)


class _TooLarge(_Failure):
    def __init__(self, maxsize):
        super().__init__(f"larger than DEBUGINFOD_MAXSIZE={maxsize}", False, False)


class _Garbage(Exception):
    """A downloaded file is not the one asked for."""


def _check(path, build_id):
    """Raise _Garbage unless path is a whole ELF file with build_id."""
    try:
        img = ElfImage(path)
    except CorefileError as e:
        raise _Garbage(str(e).removeprefix(f"{path}: ")) from None
    try:
        size = len(img.data)
        shoff, = struct.unpack_from("<Q", img.data, 40)
        shentsize, shnum = struct.unpack_from("<HH", img.data, 58)
        if shoff + shentsize * shnum > size \
                or any(s.type != SHT_NOBITS and s.offset + s.size > size
                       for s in img.sections.values()) \
                or any(offset + filesz > size for _, _, offset, filesz in img.loads):
            raise _Garbage("a truncated ELF file")
        if img.build_id != build_id:
            found = img.build_id.hex() if img.build_id else "none"
            raise _Garbage(f"an ELF file with build-id {found}")
    finally:
        img.close()


def _network_failure(e) -> _Failure:
    """The _Failure of a network error, in one line. Waiting out a timeout again would
    double the time lost: only quick failures (refused, reset) are retried."""
    if isinstance(getattr(e, "reason", None), OSError):   # a URLError
        e = e.reason
    if isinstance(e, TimeoutError):
        return _Failure("no answer (timed out)", retry=False)
    if isinstance(e, OSError) and e.strerror:
        return _Failure(e.strerror[:1].lower() + e.strerror[1:])
    import http.client
    if isinstance(e, http.client.HTTPException) and not isinstance(e, OSError):
        return _Failure(f"no valid HTTP answer ({type(e).__name__})")
    return _Failure(str(e) or type(e).__name__)


def _http_time(value: str) -> float | None:
    import email.utils
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


class _Progress:
    """'Downloading ...' on stream: one line, redrawn with the byte count on a terminal."""

    def __init__(self, stream, kind, name, url, total):
        self.stream = stream
        self.tty = stream.isatty()
        self.total = total
        what = {"debuginfo": "debug info", "executable": "executable"}[kind]
        host = url.split("/buildid/", 1)[0]
        self.text = f"Downloading {what}{' for ' + name if name else ''} from {host}"
        self.shown = 0.0
        self.done = 0
        self.stream.write(self.text + (f" ({_size(total)})" if total else "")
                          + ("" if self.tty else "\n"))
        self.stream.flush()

    def update(self, done):
        self.done = done
        now = time.monotonic()
        if self.tty and now - self.shown > 0.1:
            self.shown = now
            self._draw()

    def end(self):
        if self.tty:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self):
        of = f"/{_size(self.total)}" if self.total else ""
        self.stream.write(f"\r{self.text} {_size(self.done)}{of}\x1b[K")
        self.stream.flush()


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"
