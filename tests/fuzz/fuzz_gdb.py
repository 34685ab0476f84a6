#!/usr/bin/env python3
"""Fuzz the gdb backend: every `qemu` gdb command on mutated cores, in long-lived gdbs.

    python3 tests/fuzz/fuzz_gdb.py -n 300 --seed 1 --jobs 2 --out /tmp/fuzz-gdb/run1

Inputs are tests/fuzz/fuzz_core.py's recipes (a seed core and structural mutations, made,
resolved and applied by fuzz_core), on the QEMU fixture cores (qemu-storage-daemon and
qemu-system-x86_64, kernel cores and gcores), the distribution-shaped ones (stripped, their
debug info in a separate debug file found by build-id and a dwz file: fixtures/distro.py),
the corrupted-structures fixture (fixtures/corrupt: QEMU's names, built here) and the
synthetic fixture. --dwarf-share of the inputs mutate DWARF instead of the core: the
executable's sections on a small seed, the debug or dwz file's on a distribution-shaped one
(in a mirror of its debug directory: fuzz_core.mirror_debug_dir).

Each worker keeps one gdb running (`gdb -nx` reading commands from a pipe) with qemugdb
loaded once (`source qemugdb/gdb_load.py`) and switches inputs with `set
debug-file-directory` (the seed's debug directory, then the system's) and `file EXE` (when
either changes) and `core-file CORE`. The commands are listed from gdb at start
(`help qemu`, recursively; formats and switches from each command's usage; the convenience
functions from `show convenience`): every command in every format, each switch, the
optional AioContext argument, `bdrv` on node names and addresses, `coroutine` and
`coroutine select` + `bt` + `select off` on coroutine addresses, and `output $qemu_...(co)`.
Arguments come from the seed's unmutated core (its own JSON output). That `core-file`
really reads the new core is checked at start (check_switching: each seed's threads) and by
control inputs (the unmutated seed after every --control-every inputs: each command must
print what a gdb that opened only that core printed).

Per (input, command), outcome:
  success   output and no error
  partial   output with items marked broken (`<error: ...>`, a JSON "error")
  error     one error line from gdb (qemugdb's gdb.GdbError, gdb's own)
  failure   a Python traceback or "Python Exception <", qemugdb's "internal error" (an
            unexpected exception made one line), gdb's internal-error, gdb dying, a command
            over the budget (gdb killed and restarted), more than one error line, or gdb's
            state not restored (selected thread, frame and the newest frames' pcs,
            settings, frame filters, convenience variables, value history).
  gdb-dwarf on mutated DWARF only, gdb's own DWARF reader failing: a failure (no Python
            exception, no qemugdb internal error in it) whose text is a `Dwarf Error`, an
            internal-error in gdb's dwarf2/ sources or a fatal signal in its dwarf2 code,
            or extra `Dwarf Error` lines beside one error line, or the newest frames' pcs
            changed as gdb's own `thread apply all bt` changes them; counted, not a
            failure.
Before the commands a non-default thread and frame are selected (as a user might have).
The run writes results.jsonl (one line per input), failures/*.json (recipes with the failing
commands) and summary.json into --out; `fuzz_gdb.py --table OUT/summary.json` prints
docs/robustness.md's rows.
"""

import argparse
import difflib
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "fixtures", ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import corelist  # noqa: E402
from fuzz import fuzz_cli, fuzz_core, qemu_objects  # noqa: E402  (seeds and recipes)

LOAD = ROOT / "qemugdb" / "gdb_load.py"
BUDGET = 30            # seconds per command (gdb is killed and restarted past it)
CORE_BUDGET = 60       # seconds for `file` + `core-file`
QEMU_SEEDS = ("qsd-10.0-kernel", "qsd-10.0-gcore", "qsd-7.2-kernel", "qsd-7.2-gcore",
              "system-10.0-kernel", "system-10.0-gcore")
SMALL_SEEDS = ("corrupt-kernel", "corrupt-gcore", "synthetic-kernel", "synthetic-gcore")
DISTRO_SEEDS = tuple(corelist.DISTRO_NAMES)   # stripped, debug info by build-id, dwz'd
EXE_DWARF_MAX = 8 << 20   # gdb re-reads a mutated executable's DWARF: small ones only
SETTINGS = ("pagination", "height", "width", "confirm", "print pretty", "print elements",
            "backtrace past-main", "backtrace past-entry", "backtrace limit", "language",
            "print frame-arguments", "print address", "print object", "style enabled",
            "scheduler-locking", "qemu debug")
MARK = "@@fuzz-gdb"
MARKED = re.compile(r'<error: |"error": "')   # an item or listing marked broken
FAILURE_TEXT = (("Traceback (most recent call last)", "traceback"),
                ("Python Exception <", "python exception"),
                (": internal error: ", "qemugdb internal error"),
                ("internal-error", "gdb internal-error"),
                ("A problem internal to GDB", "gdb internal-error"))
# gdb's own DWARF reader on garbage DWARF: its "Dwarf Error: ..." messages and its dwarf2/
# sources in an internal-error (gdb_dwarf()).
GDB_DWARF = re.compile(r"Dwarf Error: |gdb/dwarf2/[\w.]+:\d+: internal-error")
OURS = ("traceback", "python exception", "qemugdb internal error")

# gdb's state, as one JSON line: defined in gdb as the command `fuzz-state`.
PROBE = r'''
import gdb, json, re
class _FuzzState(gdb.Command):
    def __init__(self):
        super().__init__("fuzz-state", gdb.COMMAND_MAINTENANCE)
    def invoke(self, arg, from_tty):
        s = {"settings": {}, "filters": {}, "threads": [], "thread": None, "frame": None,
             "pcs": []}
        for name in SETTINGS:
            try:
                s["settings"][name] = str(gdb.parameter(name))
            except Exception as e:
                s["settings"][name] = "<%s>" % type(e).__name__
        s["filters"] = {k: bool(f.enabled) for k, f in gdb.frame_filters.items()}
        s["unwinders"] = [(u.name, bool(u.enabled)) for u in gdb.frame_unwinders]
        inf = gdb.selected_inferior()
        s["threads"] = sorted([t.num, t.ptid[1]] for t in inf.threads())
        th = gdb.selected_thread()
        s["thread"] = th.num if th is not None else None
        try:
            s["frame"] = gdb.selected_frame().level()
            f = gdb.newest_frame()
            while f is not None and len(s["pcs"]) < 4:
                s["pcs"].append(hex(f.pc()))
                f = f.older()
        except gdb.error:
            pass
        conv = gdb.execute("show convenience", to_string=True)
        s["convenience"] = sorted(set(re.findall(r"^\$(\w+) = ", conv, re.M)))
        values = gdb.execute("show values", to_string=True)
        s["history"] = max([int(n) for n in re.findall(r"^\$(\d+) = ", values, re.M)] + [0])
        gdb.write("@@state " + json.dumps(s) + "\n")
_FuzzState()
'''


class GdbDied(Exception):
    pass


class GdbHang(Exception):
    pass


class Gdb:
    """One gdb with qemugdb loaded, fed commands through a pipe; each command's stdout and
    stderr come back separately, within a time budget."""

    def __init__(self, budget=BUDGET):
        self.budget = budget
        self.exe = None
        self.proc = None
        self.n = 0
        self.start()

    def start(self):
        # In a directory of its own: a gdb that aborts dumps its core there, not here.
        self.cwd = tempfile.mkdtemp(prefix="fuzz-gdb-")
        self.proc = subprocess.Popen(
            ["gdb", "-nx", "-q", "-iex", "set style enabled off", "-iex", "set width 0",
             "-iex", "set height 0", "-iex", "maint set internal-error corefile no"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, cwd=self.cwd, env={**os.environ, "NO_COLOR": "1"})
        for fd in (self.proc.stdout.fileno(), self.proc.stderr.fileno()):
            os.set_blocking(fd, False)
        self.exe = self.debug_dirs = None
        self.run("set prompt")
        out, err = self.run(f"source {LOAD}")
        if out.strip() or err.strip():
            raise RuntimeError(f"loading qemugdb said: {out}{err}")
        code = PROBE.replace("SETTINGS", repr(SETTINGS))
        self.run(f"python exec({code!r})")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
            shutil.rmtree(self.cwd, ignore_errors=True)
        self.proc = None

    def restart(self):
        self.kill()
        self.start()

    def run(self, command, budget=None):
        """(stdout, stderr) of one gdb command line; GdbHang past the budget, GdbDied if gdb
        ended."""
        self.n += 1
        mark = f"{MARK} {self.n}@@\n"
        try:
            self.proc.stdin.write(f"{command}\necho \\n{mark[:-1]}\\n\n".encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise GdbDied(self._status()) from None
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + (budget or self.budget)
        fds = {self.proc.stdout.fileno(): out, self.proc.stderr.fileno(): err}
        while not out.endswith(mark.encode()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise GdbHang(f"over {budget or self.budget} s")
            ready, _, _ = select.select(list(fds), [], [], left)
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise GdbDied(self._status(out + err))
                fds[fd] += chunk
        while True:   # what gdb wrote to stderr before the marker is in the pipe by now
            try:
                chunk = os.read(self.proc.stderr.fileno(), 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            err += chunk
        text = out[:-len(mark)].decode("utf-8", "backslashreplace")
        return text.removesuffix("\n"), err.decode("utf-8", "backslashreplace")

    def _status(self, output=b""):
        """How gdb ended: its exit status, what it said of an internal-error or a fatal
        signal (and the backtrace's dwarf2 frames), and the last of its output."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        try:
            output += self.proc.stderr.read() or b""
        except (OSError, ValueError):
            pass
        text = output.decode("utf-8", "backslashreplace")
        said = [ln for ln in text.splitlines()
                if "internal-error" in ln or ln.startswith("Fatal signal")][:2]
        said += [ln.strip() for ln in text.splitlines() if "dwarf2" in ln][:3]
        return f"gdb exited with {code}: {' | '.join(said + [text[-300:]])}"

    def state(self):
        out, err = self.run("fuzz-state")
        line = next((ln for ln in out.splitlines() if ln.startswith("@@state ")), None)
        if line is None:
            raise RuntimeError(f"fuzz-state said: {out}{err}")
        return json.loads(line[len("@@state "):])

    def load(self, exe, core, debug_dir=None):
        """`set debug-file-directory` (debug_dir, a distribution-shaped core's separate
        debug info, then the system's: as the tests run gdb) and `file EXE` if either
        changed, then `core-file CORE`: (stdout, stderr)."""
        dirs = corelist.gdb_debug_dirs(debug_dir) or corelist.SYSTEM_DEBUG_DIR
        texts = []
        if (exe, dirs) != (self.exe, self.debug_dirs):
            texts.append(self.run(f"set debug-file-directory {dirs}"))
            texts.append(self.run(f"file {exe}", CORE_BUDGET))
            self.exe, self.debug_dirs = exe, dirs
        texts.append(self.run(f"core-file {core}", CORE_BUDGET))
        return "".join(t[0] for t in texts), "".join(t[1] for t in texts)


# -- the commands, from gdb's own help ------------------------------------------------

def command_names(gdb, prefix="qemu"):
    """Every `qemu ...` command gdb knows, prefixes first (from `help`, recursively)."""
    out, _ = gdb.run(f"help {prefix}")
    names = []
    for name in re.findall(rf"^{re.escape(prefix)} (\S+) -- ", out, re.M):
        full = f"{prefix} {name}"
        names.append(full)
        sub, _ = gdb.run(f"help {full}")
        if f"List of {full} subcommands" in sub:
            names += command_names(gdb, full)
    return names


def usage(gdb, name):
    """(formats, switches, positionals) from the command's argparse usage: positionals as
    (name, optional)."""
    out, _ = gdb.run(f"help {name}")
    m = re.search(rf"^usage: {re.escape(name)} (.*?)(?:\n\s*\n|\Z)", out, re.M | re.S)
    if not m:
        return ("text",), [], []
    words = " ".join(m.group(1).split())
    formats = re.search(r"\[--format \{([^}]*)\}\]", words)
    formats = tuple(formats.group(1).split(",")) if formats else ("text",)
    words = re.sub(r"\[--format \{[^}]*\}\]", "", words)
    switches = [s for s in re.findall(r"\[(-[-\w]+)\]", words) if s != "-h"]
    positionals = [(n, opt == "[") for opt, n in
                   re.findall(r"(?:^|\s)(\[?)([a-z_]+)\]?(?=\s|$)", words)]
    return formats, switches, positionals


def functions(gdb):
    """The convenience functions qemugdb adds ($qemu_...)."""
    out, _ = gdb.run("show convenience")
    return re.findall(r"^\$(qemu_\w+) = <internal function", out, re.M)


def _objects(data, keys):
    """Every dict in parsed JSON holding all of keys, depth first."""
    if isinstance(data, dict):
        if all(k in data for k in keys):
            yield data
        for v in data.values():
            yield from _objects(v, keys)
    elif isinstance(data, list):
        for v in data:
            yield from _objects(v, keys)


def _json(gdb, command):
    out, err = gdb.run(command)
    try:
        return json.loads(out)
    except ValueError:
        return None


def seed_facts(gdb, seed):
    """(argument values, qemu_objects.SeedObjects or None) of the loaded unmutated seed
    core, from its listings in gdb (qemu_objects.LISTINGS, --format json) and its DWARF
    (corefile): node (a block driver node's name and another's address), ctx (`main`,
    `iohandler`, an AioContext's address), expr (the first and last coroutines listed)."""
    import corefile
    listings = {c: _json(gdb, f"qemu {c} --format json") for c in qemu_objects.LISTINGS}
    try:
        prog = corefile.open(seed.core, seed.exe,
                             debug_dirs=[seed.debug_dir] if seed.debug_dir else ())
    except corefile.CorefileError:
        return {}, None
    try:
        objects = qemu_objects.locate(listings, prog)
    finally:
        prog.close()
    drivers = [n for n in _objects(listings.get("block-graph"), ("id", "name", "type"))
               if n["type"] == "block-driver"]
    ctxs = [c["address"] for c in _objects(listings.get("aio"), ("address", "names"))]
    cos = [c["address"] for c in _objects(listings.get("coroutines"), ("address", "state"))]
    values = {"ctx": ["main", "iohandler"] + [hex(a) for a in ctxs[-1:]]}
    if drivers:
        values["node"] = [drivers[0]["name"], drivers[-1]["id"]]
    if cos:
        values["expr"] = sorted({hex(cos[0]), hex(cos[-1])})
    return values, objects


def command_list(gdb, values):
    """The command lines to run on every input, as lists run in order (one list is
    `coroutine select ADDR`, `bt`, `select off`) of (key, command line) pairs: the key is
    the line with `<node>`, `<ctx>`, `<expr>` for the argument values."""
    runs = []

    def line(*words, fmt=None, formats=("text",)):
        words = [w for w in words if w] + (["--format", fmt] if fmt and fmt != formats[0]
                                           else [])
        return " ".join(words)

    for name in command_names(gdb):
        formats, switches, positionals = usage(gdb, name)
        required = [n for n, opt in positionals if not opt]
        optional = [n for n, opt in positionals if opt]
        arg = required[0] if required else None
        argvalues = (values.get(arg) or ["0x10"]) if arg else [None]
        if name.endswith(" select"):
            for v in argvalues:
                runs.append([(f"{name} <{arg}>", f"{name} {v}"), ("bt", "bt"),
                             (f"{name} off", f"{name} off")])
            continue
        key = f"<{arg}>" if arg else None
        for v in argvalues:
            for fmt in formats:
                runs.append([(line(name, key, fmt=fmt, formats=formats),
                              line(name, v, fmt=fmt, formats=formats))])
        for s in switches:
            for fmt in formats[:2]:
                runs.append([(line(name, key, s, fmt=fmt, formats=formats),
                              line(name, argvalues[0], s, fmt=fmt, formats=formats))])
        for n in optional:
            for v in values.get(n, []):
                runs.append([(f"{name} <{n}>", f"{name} {v}")])
    for f in functions(gdb):
        for v in values.get("expr") or ["0x10"]:
            runs.append([(f"output ${f}(<expr>)", f"output ${f}({v})")])
    return runs


# -- one input ------------------------------------------------------------------------

def gdb_dwarf(why):
    """Whether a failure is gdb's own DWARF reader failing on garbage DWARF: a `Dwarf
    Error`, an internal-error in gdb's dwarf2/ sources, or a fatal signal whose backtrace is
    in its dwarf2 code; never a Python exception or qemugdb's internal error."""
    if why.startswith(OURS):
        return False
    return bool(GDB_DWARF.search(why)) or ("Fatal signal" in why and "dwarf2" in why)


def classify(out, err, dwarf=False):
    """(outcome, why) of one command's output: "success", "partial" (output with items
    marked `<error: ...>` or a JSON "error"), "error" (one error line) or "failure". With
    dwarf (the input's DWARF is mutated), a failure gdb_dwarf() blames on gdb's DWARF
    reader is "gdb-dwarf", and gdb's `Dwarf Error` lines beside a command's own line
    (gdb's reader printing them as it goes) make it "gdb-dwarf", not "more than one"."""
    for text, why in FAILURE_TEXT:
        if text in out or text in err:
            line = next(ln for ln in (out + "\n" + err).splitlines() if text in ln)
            why = f"{why}: {line.strip()[:300]}"
            return ("gdb-dwarf" if dwarf and gdb_dwarf(why) else "failure"), why
    errors = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    reader = [ln for ln in errors if dwarf and GDB_DWARF.search(ln)]
    if len(errors) > 1 and len(errors) - len(reader) <= 1:
        return "gdb-dwarf", f"{len(reader)} gdb DWARF reader lines: {' | '.join(errors)[:300]}"
    if len(errors) > 1:
        return "failure", f"{len(errors)} error lines: {' | '.join(errors)[:300]}"
    if errors:
        return "error", errors[0][:300]
    return ("partial" if MARKED.search(out) else "success"), None


def state_change(before, after):
    """What differs between two fuzz-state dicts, in a line ("" if nothing)."""
    said = []
    for k in sorted(before):
        a, b = before[k], after.get(k)
        if a == b:
            continue
        if isinstance(a, dict):
            said.append(f"{k}: " + ", ".join(f"{n} {a.get(n)} -> {b.get(n)}"
                                             for n in sorted(set(a) | set(b))
                                             if a.get(n) != b.get(n)))
        elif k == "convenience":
            said.append(f"{k}: +{sorted(set(b) - set(a))} -{sorted(set(a) - set(b))}")
        else:
            said.append(f"{k}: {a} -> {b}")
    return "; ".join(said)[:600]


def select_user_frame(gdb):
    """Select the last thread and its frame 1, as a user might have before the commands."""
    s = gdb.state()
    if len(s["threads"]) > 1:
        gdb.run(f"thread {s['threads'][-1][0]}")
    gdb.run("frame 1")


def gdb_unwinds_differently(gdb, changed):
    """Whether a state change of only the newest frames' pcs is gdb's own: on garbage DWARF
    gdb's frame chain can depend on what its frame cache went through (docs/robustness.md,
    run 3: 3 frames from a fresh cache, 2 after unwinding every thread), so its own `thread
    apply all bt`, from a fresh frame cache, changes them too."""
    if not changed.startswith("pcs: ") or "; " in changed:
        return False
    gdb.run("qemu coroutine select off")   # a fresh frame cache, as before the commands
    select_user_frame(gdb)
    before = gdb.state()["pcs"]
    gdb.run("thread apply all bt")
    return gdb.state()["pcs"] != before


def normalized(out, err, core):
    """A command's output as compared between gdbs: the core's path and gdb's warnings
    aside (gdb warns about a core's sections when it first reads a thread: which command
    that is depends on what gdb had read before)."""
    err = "\n".join(ln for ln in err.splitlines() if not ln.startswith("warning:"))
    return (out + "\n" + err).replace(core, "CORE")


def died(e, dwarf):
    """(outcome, why) of gdb dying or hanging: "gdb-dwarf" when it died in its DWARF
    reader on mutated DWARF (gdb_dwarf()), else "failure"."""
    why = f"{type(e).__name__}: {e}"
    return ("gdb-dwarf" if dwarf and isinstance(e, GdbDied) and gdb_dwarf(why)
            else "failure"), why


def run_input(gdb, exe, core, runs, debug_dir=None, dwarf=False):
    """Load CORE (EXE, DEBUG_DIR: Gdb.load()) and run every command list on it; a result
    dict per command. dwarf: the input's DWARF is mutated (classify())."""
    results = []
    try:
        out, err = gdb.load(exe, core, debug_dir)
    except (GdbHang, GdbDied) as e:
        gdb.restart()
        outcome, why = died(e, dwarf)
        return [{"key": "core-file", "command": f"core-file {core}", "outcome": outcome,
                 "why": why, "seconds": 0}]
    outcome, why = classify(out, "\n".join(ln for ln in err.splitlines()
                                           if "Python" in ln or "internal" in ln), dwarf)
    if outcome in ("failure", "gdb-dwarf"):
        results.append({"key": "core-file", "command": f"core-file {core}",
                        "outcome": outcome, "why": why, "seconds": 0})
    select_user_frame(gdb)
    base = gdb.state()
    threads = len(base["threads"])
    for j, commands in enumerate(runs):
        for i, (key, command) in enumerate(commands):
            t0 = time.monotonic()
            try:
                out, err = gdb.run(command)
                seconds = time.monotonic() - t0
                outcome, why = classify(out, err, dwarf)
                if outcome == "failure" and "internal error" in why:
                    _, tb = gdb.run(f"set qemu debug on\n{command}\nset qemu debug off")
                    why += " | " + " / ".join(tb.strip().splitlines()[-6:])[:600]
                in_view = len(commands) > 1 and i + 1 < len(commands) and \
                    outcome in ("success", "partial")
                if not in_view:
                    changed = state_change(base, gdb.state())
                    if changed and outcome != "failure":
                        outcome, why = "failure", f"state changed: {changed}"
                        if dwarf and gdb_unwinds_differently(gdb, changed):
                            outcome = "gdb-dwarf"
                            why += " (gdb's own `thread apply all bt` changes them too)"
                    if changed:
                        gdb.run("qemu coroutine select off")
                        select_user_frame(gdb)
                        base = gdb.state()
            except (GdbHang, GdbDied) as e:
                seconds = time.monotonic() - t0
                outcome, why = died(e, dwarf)
                gdb.restart()
                gdb.load(exe, core, debug_dir)
                select_user_frame(gdb)
                base = gdb.state()
            results.append({"key": key, "command": command, "at": [j, i], "outcome": outcome,
                            "why": why, "seconds": round(seconds, 3), "threads": threads,
                            "text": normalized(out, err, core)})
            if outcome not in ("success", "partial") and i == 0 and len(commands) > 1:
                break   # `select` failed: no view to look at or turn off
    return results


# -- seeds and the run ----------------------------------------------------------------

def prepare(seeds: dict, budget=BUDGET):
    """Per seed name: its command lists, its objects (seed_facts() of its core) and its
    baseline ({(command list, position): its output} in a gdb that opened only this
    core: `bt` runs once per coroutine selected)."""
    runs, objects, baselines = {}, {}, {}
    for name, s in seeds.items():
        gdb = Gdb(budget)
        try:
            gdb.load(s.exe, s.core, s.debug_dir)
            values, objects[name] = seed_facts(gdb, s)
            runs[name] = command_list(gdb, values)
            baselines[name] = {tuple(r["at"]): r["text"] for r in
                               run_input(gdb, s.exe, s.core, runs[name], s.debug_dir)}
        finally:
            gdb.kill()
    return runs, objects, baselines


def compare(results, baseline):
    """Control inputs (the unmutated seed, in a gdb that read other cores before): each
    command's output must equal the baseline's, else the result is a failure."""
    for r in results:
        alone = baseline.get(tuple(r.get("at", ())))
        if alone is not None and r.get("text") != alone:
            diff = difflib.unified_diff(alone.splitlines(),
                                        r["text"].splitlines(), "alone", "here", n=0,
                                        lineterm="")
            r["outcome"] = "failure"
            r["why"] = ("stale: output differs from a gdb that opened only this core: " +
                        " / ".join(list(diff)[2:8]))[:600]
    return results


def check_switching(gdb, seeds: dict):
    """`core-file` really reads the new core: after switching through every seed, each
    seed's threads (gdb number, LWP) equal those of a gdb that opened only that core."""
    order = sorted(seeds, key=lambda n: (seeds[n].exe, seeds[n].debug_dir or ""))
    for name in order + order[:1]:
        s = seeds[name]
        gdb.load(s.exe, s.core, s.debug_dir)
        switched = gdb.state()["threads"]
        fresh = Gdb()
        try:
            fresh.load(s.exe, s.core, s.debug_dir)
            alone = fresh.state()["threads"]
        finally:
            fresh.kill()
        if switched != alone or not alone:
            raise RuntimeError(f"core-file {s.core}: threads {switched}, alone {alone}")


DWARF_TARGETS = {"exe", "debug", "dwz"}


def run_recipe(gdb, recipe, seed, objects, runs, workdir: Path):
    """Materialize the recipe's files in workdir and run_input() them; the results, or
    RecipeError. The core, and the mutated executable (exe operations) or a mirror of the
    seed's debug directory with its debug or dwz file mutated (fuzz_core.mirror_debug_dir)
    in a directory of their own (gdb shares an open file by name, size and mtime: a new
    name is read afresh). A recipe's "commands" (keys), when given, select the command
    lists run."""
    targets = {op.get("target", "core") for op in recipe["ops"]}
    if targets - {"core"} - DWARF_TARGETS or \
            any(op["op"] in ("compress", "cache") for op in recipe["ops"]):
        raise fuzz_core.RecipeError("neither a core nor a DWARF mutation (gdb opens no "
                                    "compressed core and has no cache of ours)")
    fuzz_core.materialize(recipe, "core", seed.core, workdir / "core", objects)
    exe, debug_dir = seed.exe, seed.debug_dir
    if targets & DWARF_TARGETS:
        old = sorted(workdir.glob("dwarf-*"), key=lambda p: p.stat().st_mtime_ns)
        for d in old[:-1]:   # the last input's files stay until gdb has let them go
            shutil.rmtree(d, ignore_errors=True)
        files = Path(tempfile.mkdtemp(prefix="dwarf-", dir=workdir))
        if "exe" in targets:
            exe = str(files / os.path.basename(seed.exe))
            fuzz_core.materialize(recipe, "exe", seed.exe, Path(exe))
        if targets & {"debug", "dwz"}:
            debug_dir = str(fuzz_core.mirror_debug_dir(recipe, seed, files / "debug"))
    keys = recipe.get("commands")
    if keys:
        runs = [r for r in runs if any(key in keys for key, _ in r)]
    return run_input(gdb, exe, str(workdir / "core"), runs, debug_dir,
                     dwarf=bool(targets & DWARF_TARGETS))


def stamp(seed):
    """The seed's files' sizes and mtimes (a fixture remade during a run changes them)."""
    return [(os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in
            (seed.core, seed.exe, *fuzz_core.debug_files(seed).values())]


def worker(k, queue, seeds, facts, scratch, budget, control_every, done, deadline=None):
    """Take inputs from queue (sorted by executable) until None or the deadline
    (time.monotonic()); report each to done(). Every control_every inputs, a control
    input: the unmutated seed, compare()d."""
    runs, objects, baselines, stamps = facts
    slot = scratch / f"slot{k}"
    slot.mkdir(exist_ok=True)
    gdb = Gdb(budget)
    try:
        while True:
            item = queue.get()
            if item is None or deadline is not None and time.monotonic() > deadline:
                return
            i, recipe = item
            name = recipe["seed"]
            if stamp(seeds[name]) != stamps[name]:
                done(i, recipe, [], "skipped: the seed's files changed during the run", 0)
                continue
            for r in [recipe] + ([{"seed": name, "ops": [], "control": True}]
                                 if control_every and i % control_every == 0 else []):
                t0 = time.monotonic()
                try:
                    results = run_recipe(gdb, r, seeds[name], objects[name], runs[name], slot)
                except fuzz_core.RecipeError as e:
                    done(i, r, [], f"skipped: {e}", 0)
                    continue
                if r.get("control"):
                    results = compare(results, baselines[name])
                done(i, r, results, None, time.monotonic() - t0)
    finally:
        gdb.kill()


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--inputs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1, help="random seed")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--object-share", type=float, default=0.5,
                    help="fraction of the core inputs mutating QEMU's objects")
    ap.add_argument("--dwarf-share", type=float, default=0.1,
                    help="fraction of inputs mutating DWARF (the executable of a small "
                    "seed, the debug or dwz file of a distribution-shaped one)")
    ap.add_argument("--control-every", type=int, default=10,
                    help="an unmutated control input after every N inputs (0: none)")
    ap.add_argument("--budget", type=float, default=BUDGET, help="seconds per command")
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="take no new input after this many seconds from the start (0: "
                    "no limit)")
    ap.add_argument("--out", default="/tmp/fuzz-gdb/run")
    ap.add_argument("--seeds", nargs="*", default=default_seeds(),
                    help="default: the QEMU cores, the distribution-shaped ones made, the "
                    "small ones")
    ap.add_argument("--replay", metavar="DIR",
                    help="run the recipes DIR/*.json (e.g. an earlier run's failures/)")
    return ap


def default_seeds():
    """QEMU_SEEDS, the DISTRO_SEEDS whose cores have been made, SMALL_SEEDS."""
    made = {m["name"] for m in corelist.cores()}
    return list(QEMU_SEEDS) + [n for n in DISTRO_SEEDS if n in made] + list(SMALL_SEEDS)


def main():
    summary = fuzz(parser().parse_args())
    print(json.dumps(summary, indent=1))
    return 1 if summary["failure_classes"] else 0


def fuzz(args) -> dict:
    """The run main() describes; its summary (also written to OUT/summary.json)."""
    replay = [json.loads(p.read_text()) for p in sorted(Path(args.replay).glob("*.json"))] \
        if args.replay else None
    if replay is not None:
        args.seeds = sorted({r["seed"] for r in replay})
    out = Path(args.out)
    (out / "failures").mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="qemugdb-fuzz-gdb-",
                                    dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    started = time.monotonic()
    try:
        seeds = fuzz_cli.seeds(args.seeds, scratch)
        first = Gdb(args.budget)
        try:
            check_switching(first, seeds)
        finally:
            first.kill()
        stamps = {name: stamp(s) for name, s in seeds.items()}
        runs, objects, baselines = prepare(seeds, args.budget)
        if replay is None:
            replay = recipes(args, seeds, objects)
        pending = sorted(enumerate(replay), key=lambda item: (seeds[item[1]["seed"]].exe,
                                                              item[0]))
        report = Report(out, " ".join(["python3", *sys.argv]), started)
        queue = Queue()
        for item in pending:
            queue.put(item)
        for _ in range(args.jobs):
            queue.put(None)
        facts = (runs, objects, baselines, stamps)
        deadline = started + args.max_seconds if args.max_seconds else None
        threads = [threading.Thread(target=worker, args=(k, queue, seeds, facts, scratch,
                                                         args.budget, args.control_every,
                                                         report.done, deadline))
                   for k in range(args.jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report.summary()


def recipes(args, seeds, objects):
    """args.inputs recipes over the seeds: args.dwarf_share of them mutate DWARF
    (fuzz_core.mutate_sections on dwarf_files()), of the others args.object_share are
    inside QEMU's objects (fuzz_core.random_recipe's family "object"), the rest ELF
    structure ("elf")."""
    rng = random.Random(args.seed)
    infos = {name: fuzz_core.SeedInfo(s, fuzz_core.core_view(s.core), objects=objects[name])
             for name, s in seeds.items()}
    files = {name: dwarf_files(s) for name, s in seeds.items()}
    dwarf = sorted(name for name in seeds if files[name])
    try:
        names = sorted(seeds)
        out = []
        for _ in range(args.inputs):
            if dwarf and rng.random() < args.dwarf_share:
                name = rng.choice(dwarf)
                role = rng.choice(sorted(files[name]))
                out.append(fuzz_core.mutate_sections(rng, name, role, *files[name][role]))
            else:
                out.append(fuzz_core.random_recipe(
                    rng, infos[rng.choice(names)],
                    "object" if rng.random() < args.object_share else "elf"))
        return out
    finally:
        for info in infos.values():
            info.head.close()


def dwarf_files(seed) -> dict:
    """{target: (fuzz_core.Layout, size)} of the seed's files whose DWARF the fuzzer
    mutates: the separate debug and dwz files of a distribution-shaped seed, the executable
    of a seed without them under EXE_DWARF_MAX (gdb reads a QEMU executable's 100 MB of
    DWARF afresh for each one: seconds)."""
    paths = fuzz_core.debug_files(seed)
    if not paths and os.path.getsize(seed.exe) < EXE_DWARF_MAX:
        paths = {"exe": seed.exe}
    return fuzz_core.section_layouts(paths)


class Report:
    """Tallies per command key and seed; results.jsonl and failures/ as inputs finish."""

    def __init__(self, out: Path, command="", started=None):
        self.out = out
        self.command = command
        self.started = started or time.monotonic()
        self.lock = threading.Lock()
        self.log = open(out / "results.jsonl", "w")
        self.inputs = Counter()
        self.families = Counter()   # mutated inputs by what they mutate
        self.gdb_dwarf = []         # [input, command, why] of gdb's DWARF reader failing
        self.outcomes = Counter()
        self.controls = Counter()   # outcomes of the control inputs' commands
        self.by_key = defaultdict(Counter)
        self.by_seed = defaultdict(Counter)
        self.classes = defaultdict(list)
        self.slowest = []
        self.n = 0

    def done(self, i, recipe, results, skipped, seconds):
        with self.lock:
            control = recipe.get("control", False)
            self.n += 1
            self.inputs["skipped" if skipped else "control" if control else "run"] += 1
            failures = [r for r in results if r["outcome"] == "failure"]
            for r in results if control else ():
                self.controls[r["outcome"]] += 1
            if not control and not skipped:
                targets = {op.get("target", "core") for op in recipe["ops"]}
                self.families["dwarf: " + "+".join(sorted(targets & DWARF_TARGETS))
                              if targets & DWARF_TARGETS else "core"] += 1
            for r in results:
                if r["outcome"] == "gdb-dwarf":
                    self.gdb_dwarf.append([i, r["command"], r["why"]])
            for r in () if control else results:
                self.outcomes[r["outcome"]] += 1
                self.by_key[r["key"]][r["outcome"]] += 1
                self.by_seed[recipe["seed"]][r["outcome"]] += 1
                self.slowest.append((r["seconds"], i, recipe["seed"], r["command"]))
            self.slowest = sorted(self.slowest, reverse=True)[:5]
            for r in failures:
                self.classes[failure_class(r["why"])].append(i)
            if failures:
                name = f"{i:06d}{'-control' if control else ''}.json"
                (self.out / "failures" / name).write_text(json.dumps(
                    {**recipe, "commands": sorted({r["key"] for r in failures}),
                     "lines": [r["command"] for r in failures],
                     "why": [r["why"] for r in failures]}, indent=1))
            logged = [{k: v for k, v in r.items() if k != "text"} for r in results]
            self.log.write(json.dumps({"i": i, "recipe": recipe, "skipped": skipped,
                                       "seconds": round(seconds, 2), "results": logged})
                           + "\n")
            self.log.flush()
            if self.n % 20 == 0:   # figures so far, should the run be stopped
                print(f"{self.n} inputs, {sum(self.outcomes.values())} commands: "
                      f"{dict(self.outcomes)}", flush=True)
                self.write_summary()

    def summary(self):
        self.log.close()
        return self.write_summary()

    def write_summary(self):
        summary = {"command": self.command,
                   "seconds": round(time.monotonic() - self.started, 1),
                   "inputs": dict(self.inputs), "families": dict(self.families),
                   "outcomes": dict(self.outcomes),
                   "control_outcomes": dict(self.controls),
                   "by_command": {k: dict(v) for k, v in sorted(self.by_key.items())},
                   "by_seed": {k: dict(v) for k, v in sorted(self.by_seed.items())},
                   "failure_classes": {k: len(v) for k, v in self.classes.items()},
                   "failure_examples": {k: v[:3] for k, v in self.classes.items()},
                   "gdb_dwarf": len(self.gdb_dwarf), "gdb_dwarf_examples": self.gdb_dwarf[:10],
                   "slowest": self.slowest}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
        return summary


def failure_class(why: str) -> str:
    """A failure's class: its kind and, for an exception, its type and innermost place."""
    places = re.findall(r'File "[^"]*?/((?:qemugdb|corefile)/[^"]+)", line \d+, in (\w+)', why)
    kind = why.split(":", 1)[0]
    if kind == "state changed":
        kind += " (" + ", ".join(re.findall(r"(?:^|; )(\w+):", why.split(": ", 1)[1])) + ")"
    exc = re.findall(r"internal error: (\w+):|Python Exception <class '([\w.]+)'>", why)
    name = next((g for g in exc[-1] if g), "") if exc else ""
    return " ".join(x for x in (kind, name, "at " + ":".join(places[-1]) if places else "")
                    if x)


def table(summary: dict) -> str:
    """docs/robustness.md's rows of a summary: runs and outcomes per command (the inputs'
    runs; each input runs every command, some twice with other arguments)."""
    rows = []
    for key, c in sorted(summary["by_command"].items()):
        rows.append(f"| `{key}` | gdb | {sum(c.values())} | " + " | ".join(
            str(c.get(o, 0)) for o in ("success", "partial", "error", "failure")) + " | — |")
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--table"]:
        print(table(json.loads(Path(sys.argv[2]).read_text())))
    else:
        sys.exit(main())
