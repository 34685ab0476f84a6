#!/usr/bin/env python3
"""Fuzz every `qemu-coredump` command with mutated cores, debug files and caches.

    nice -n 10 python3 tests/fuzz/fuzz_cli.py -n 10000 --seed 1 --jobs 2 --out /tmp/fuzz-cli/run

An input is a recipe (tests/fuzz/fuzz_core.py: a seed and structural mutations, see
fuzz_core.random_recipe for the families: ELF headers and notes, QEMU's objects, the
executable's DWARF, separate debug and dwz files, compressed cores, the cache) plus a
command variant: every command the CLI has at run time (click's group, `gdb` excepted), in
each of its formats (text, --json, and block-graph's dot and qmp-json), each boolean switch,
`report --html`, and `signature`. Variants are dealt round-robin (in shuffled rounds), so
every variant gets the same number of inputs.

Each input runs in a forked child (the CLI in-process through click's runner,
QEMUGDB_DEBUG=1, under a 10 s alarm and a memory limit). Outcome by exit status: 0 success,
1 partial, 2 error (the documented one-line bad-input exit); anything else, an exception,
JSON output that does not parse, a hang or a dead child is a failure.

Differential check: a --json input whose recipe only writes into QEMU objects is compared
with the unmutated seed's output of the same variant, record by record (records keyed by
their place in the JSON and their identity: address or id). Every record of another object
must be identical, or mention the mutated object (a backend naming its root node), or be
marked (error/partial/absent), or be missing from a listing marked broken; the mutated
object's record must be identical, marked, or missing from a marked listing. A change that
is not marked is "silent": expected in principle for plausible values (integers, char
arrays, NULL, a pointer to another object of the same kind: qemu_objects.PLAUSIBLE), a
mismatch for values a reader can tell are bad (unmapped, non-canonical, garbage pointers).
A --json input whose recipe damages the cache must give the unmutated output exactly.

Writes into --out: results.jsonl (one line per input), failures/*.json and
mismatches/*.json (replayable recipes), baselines/ and summary.json.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz import fuzz_core, qemu_objects  # noqa: E402
from fuzz.fuzz_core import ROOT, RecipeError, Seed  # noqa: E402

SKIP_COMMANDS = ("gdb",)               # starts gdb: the gdb backend's fuzzer covers gdb
SKIP_FORMATS = ("svg", "png")          # graphviz's rendering of the DOT we check
CORE_OPTIONS = ("core", "pid", "no_stop", "exe", "sysroot", "debug_dirs", "offline",
                "output", "fmt", "as_json", "html_path", "source_dir")
PLACEHOLDERS = {"node": ("BlockDriverState", "name"), "expr": ("Coroutine", "address"),
                "ctx": ("AioContext", "address")}
COLD_BUDGET = 30   # s of CPU time: a cold name index of QEMU takes ~5
ENV = {"QEMUGDB_DEBUG": "1", "NO_COLOR": "1", "DEBUGINFOD_URLS": ""}


# -- command variants -------------------------------------------------------------------

def variants() -> dict:
    """{name: argv after CORE} of every CLI command variant, read from the CLI itself.
    Placeholders {node}, {expr}, {ctx} are filled from the seed's objects."""
    from cli.main import main
    out = {}
    for name, cmd in sorted(main.commands.items()):
        if name in SKIP_COMMANDS:
            continue
        params = {p.name: p for p in cmd.params}
        positional = [f"{{{p.name}}}" for p in cmd.params
                      if p.param_type_name == "argument" and p.name not in ("core", "cores")
                      and p.required]
        optional = [p.name for p in cmd.params if p.param_type_name == "argument"
                    and p.name not in ("core", "cores") and not p.required]
        fmt = params.get("fmt")
        formats = [f for f in (fmt.type.choices if fmt else ()) if f not in SKIP_FORMATS]
        if not formats:   # a command of the CLI's own (signature): text and --json
            formats = ["text"] + (["json"] if "as_json" in params else [])
        for f in formats:
            tail = [] if f == "text" else ["--json"] if f == "json" else ["--format", f]
            out[" ".join([name, *positional, *tail])] = [*positional, *tail]
        flags = [p for p in cmd.params if getattr(p, "is_flag", False)
                 and p.name not in CORE_OPTIONS]
        for p in flags:
            for tail in ([], ["--json"]):
                out[" ".join([name, *positional, p.opts[-1], *tail])] = \
                    [*positional, p.opts[-1], *tail]
        for arg in optional:
            out[" ".join([name, f"{{{arg}}}", "--json"])] = [f"{{{arg}}}", "--json"]
        if "html_path" in params:
            out[f"{name} --html"] = ["--html", "{html}"]
    return out


def argv(variant: str, args: list, inputs, objects, workdir: Path) -> list:
    """The full argv of a variant on one input's files."""
    name = variant.split()[0]
    filled = []
    for a in args:
        if a == "{html}":
            filled.append(str(workdir / "report.html"))
        elif a.startswith("{") and a.strip("{}") in PLACEHOLDERS:
            kind, what = PLACEHOLDERS[a.strip("{}")]
            values = (objects.names if what == "name" else objects.addresses).get(kind, []) \
                if objects else []
            values = [v for v in values if v is not None]
            filled.append("nonexistent" if not values else
                          values[0] if what == "name" else f"{values[0]:#x}")
        else:
            filled.append(a)
    dirs = [x for d in inputs.debug_dirs for x in ("--debug-dir", d)]
    if name == "signature":
        return [name, inputs.core, "--offline", *dirs, *filled]
    return [name, inputs.core, "-e", inputs.exe, "--offline", *dirs, *filled]


# -- running one input ------------------------------------------------------------------

def run_cli(args: list, want_output: bool) -> dict:
    """The CLI in-process (click's runner): outcome by exit status; output kept if asked
    (and checked to parse when it is JSON)."""
    from click.testing import CliRunner
    from cli.main import main
    run = CliRunner().invoke(main, args, env=ENV)
    res = {"outcome": "success", "exit": run.exit_code, "steps": []}
    if run.exception is not None and not isinstance(run.exception, SystemExit):
        if isinstance(run.exception, fuzz_core.Hang):
            raise run.exception
        res.update(outcome="failure", steps=[fuzz_core._where(run.exception, run.exc_info)])
        return res
    res["outcome"] = {0: "success", 1: "partial", 2: "error"}.get(run.exit_code, "failure")
    if run.exit_code == 1 and not run.stdout and run.stderr.count("\n") == 1:
        res["outcome"] = "error"   # a walk that broke before any output (TargetError): one line
    if "Traceback" in run.stderr:
        res.update(outcome="failure", steps=[run.stderr[-400:]])
    elif res["outcome"] == "failure":
        res["steps"] = [f"exit {run.exit_code}: {run.stderr.strip()[-300:]}"]
    elif res["outcome"] == "error":
        res["steps"] = [run.stderr.strip()[:300]]
    if res["outcome"] in ("success", "partial") and ("--json" in args or "qmp-json" in args):
        try:
            parsed = json.loads(run.stdout)
        except ValueError as e:
            res.update(outcome="failure", steps=[f"--json output does not parse: {e}"])
        else:
            if want_output:   # the input's own path is not part of the answer
                res["json"] = json.loads(json.dumps(parsed).replace(
                    json.dumps(args[1])[1:-1], "CORE"))
    return res


def second_writer(args: list, cache_home: str):
    """Another qemu-coredump process on the same command and cache (two writers)."""
    env = {**os.environ, **ENV, "XDG_CACHE_HOME": cache_home, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", "from cli.main import main; main()", *args], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def budget(recipe) -> int:
    """Seconds an input may take: fuzz_core.BUDGET, or COLD_BUDGET when its debug info is
    read without the warm cache (a mutated executable or debug file, a damaged or empty
    cache: QEMU's name index is built afresh)."""
    return COLD_BUDGET if family(recipe) in ("dwarf", "debug", "cache") else fuzz_core.BUDGET


def run_input(recipe: dict, seed: Seed, objects, workdir: Path, cache_home: str,
              child=True, want_output=False) -> dict:
    """Prepare the recipe's files in workdir and run its command on them."""
    inputs = fuzz_core.prepare(recipe, seed, workdir / "in", cache_home, objects)
    args = argv(recipe["command"], load_variants()[recipe["command"]], inputs, objects, workdir)
    other = second_writer(args, inputs.cache_home) if inputs.two_writers else None
    if child:
        res = fuzz_core.call_in_child(lambda: run_cli(args, want_output), inputs.cache_home,
                                      budget(recipe))
    else:
        saved = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = inputs.cache_home
        try:
            res = run_cli(args, want_output)
        finally:
            os.environ.pop("XDG_CACHE_HOME") if saved is None else \
                os.environ.__setitem__("XDG_CACHE_HOME", saved)
    if other is not None:
        try:
            _, err = other.communicate(timeout=fuzz_core.WALL_FACTOR * budget(recipe))
        except subprocess.TimeoutExpired:
            other.kill()
            other.communicate()
            res.update(outcome="failure", steps=res["steps"] + ["second writer: hang"])
        else:
            if other.returncode not in (0, 1, 2) or b"Traceback" in err:
                res.update(outcome="failure", steps=res["steps"] + [
                    f"second writer: exit {other.returncode}: {err.decode()[-300:]}"])
    return res


# -- the differential check -------------------------------------------------------------

def seed_reader(seed: Seed):
    """read(vaddr, size) of the unmutated seed core's bytes."""
    view = fuzz_core.core_view(seed.core)
    lay = fuzz_core.layout(view)

    def read(vaddr, size):
        off = lay.file_offset(vaddr, size)
        return bytes(view[off:off + size])
    return read


def identity(record: dict):
    """A record's identity: its address or id (hex), else its thread id; None if none."""
    for key in ("address", "id"):
        value = record.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value:
            return f"{value:#x}"
        if isinstance(value, str) and value:
            return value
    if isinstance(record.get("tid"), int):
        return f"tid {record['tid']}"
    return None


def records(tree) -> dict:
    """{(JSON path without list indices, identity): record} of every identified record."""
    out = {}

    def walk(x, path):
        if isinstance(x, dict):
            ident = identity(x)
            if ident is not None:
                out.setdefault((path, ident), x)
            for k, v in x.items():
                walk(v, f"{path}.{k}")
        elif isinstance(x, list):
            for v in x:
                walk(v, path)
    walk(tree, "")
    return out


MARKERS = ("error", "errors", "partial", "absent", "missing")


def markers(x) -> list:
    """The error, partial and absent markers anywhere in JSON, in order."""
    if isinstance(x, dict):
        return [(k, x[k]) for k in MARKERS if x.get(k)] + \
            [m for k, v in x.items() for m in markers(v)]
    if isinstance(x, list):
        return [m for v in x for m in markers(v)]
    return []


def mentions(record, addresses) -> bool:
    text = json.dumps(record)
    return any(f"{a:#x}" in text or str(a) in text for a in addresses)


def shows(m, b, values) -> bool:
    """Whether record m (not b) holds one of the values written (as a number or hex): one
    that can be a pointer or an integer member (the bytes of a char array are not)."""
    text, before = json.dumps(m), json.dumps(b)
    return any(t in text and t not in before
               for v in values if 0xffff < v < 1 << 64 for t in (str(v), f"{v:#x}"))


def fewer_reasons(m, b) -> bool:
    """Whether record m is b with some of its `waits` gone: a coroutine found through
    several roots (a job, a tracked request, a throttle queue), one of them broken."""
    return (m.keys() == b.keys() and all(m[k] == b[k] for k in b if k != "waits")
            and set(m.get("waits") or ()) < set(b.get("waits") or ()))


def mismatched(verdicts) -> bool:
    return any(v.startswith("mismatch") for v in verdicts)


def narrow(recipe, objects, verdicts):
    """A recipe mixing plausible values (NULL, another object, integers) with values a
    reader can tell are bad gives one verdict for both: when it mismatches, the recipe with
    only the bad values, to judge them alone; else None."""
    bad = [op for op in recipe["ops"] if qemu_objects.must_be_marked(op, objects)]
    if not mismatched(verdicts) or not bad or len(bad) == len(recipe["ops"]):
        return None
    return {**recipe, "ops": bad}


def differential(recipe: dict, objects, base, mut, read=None) -> Counter:
    """Compare a --json output of a core with QEMU-object mutations (mut) with the
    unmutated seed's (base): a Counter of verdicts per record (see the module's doc);
    "mismatch ..." verdicts are the ones to investigate. read(vaddr, size), the seed's
    bytes, lets a record that prints the value written count as showing it."""
    ops = recipe["ops"]
    mutated = defaultdict(list)   # address -> the operations on that object
    for op in ops:
        mutated[objects.addresses[op["kind"]][op["index"]]].append(op)
    must_mark = any(qemu_objects.must_be_marked(op, objects) for op in ops)
    written = [int.from_bytes(qemu_objects.resolve(op, objects, read)[1], "little")
               for op in ops if read is not None]
    base_recs, mut_recs = records(base), records(mut)
    tree_marked = markers(mut) != markers(base)
    verdicts = Counter()
    for key, b in base_recs.items():
        m = mut_recs.get(key)
        if m == b:
            verdicts["same"] += 1
            continue
        ident = key[1]
        own = next((o for a, o in mutated.items() if ident == f"{a:#x}"), None)
        is_mutated = own is not None
        if m is not None and markers(m) and markers(m) != markers(b):
            verdicts["marked" if is_mutated else "other marked"] += 1
        elif m is None and tree_marked:
            verdicts["dropped from a marked listing"] += 1
        elif m is not None and tree_marked and fewer_reasons(m, b):
            verdicts["lost a reason to a marked root"] += 1
        elif is_mutated and m is not None and shows(m, b, written):
            verdicts["shows the value written"] += 1   # a pointer printed, not followed
        elif is_mutated:
            verdicts["mismatch: mutated object changed unmarked"
                     if any(qemu_objects.must_be_marked(op, objects) for op in own)
                     else "silent: plausible value"] += 1
        elif mentions(b, mutated) or (m is not None and mentions(m, mutated)):
            verdicts["refers to the mutated object"] += 1
        elif not must_mark:   # e.g. a NULL `next` ends a list early
            verdicts["silent: plausible value"] += 1
        elif m is None:
            verdicts["mismatch: other object dropped unmarked"] += 1
        else:
            verdicts["mismatch: other object changed"] += 1
    return verdicts


# -- seeds ------------------------------------------------------------------------------

def baseline(seed: Seed, variant: str, objects, scratch: Path, cache_home: str,
             baselines: Path) -> dict:
    """The unmutated seed's run of a variant (outcome, and "json" for --json ones), kept
    in baselines/SEED-BUILD/ (a rebuilt seed gets new ones)."""
    size, mtime = _build_id(seed)
    path = baselines / f"{seed.name}-{size:x}-{mtime:x}" / \
        (variant.replace(" ", "_").replace("/", "") + ".json")
    if path.exists():
        return json.loads(path.read_text())
    res = run_input({"seed": seed.name, "ops": [], "command": variant}, seed, objects,
                    _slot(scratch, "base"), cache_home, want_output=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res))
    return res


def wants_baseline(variant: str) -> bool:
    """Whether the differential check compares this variant's output (--json)."""
    return "--json" in load_variants()[variant]


def seed_info(seed: Seed, scratch: Path, cache_home: str, baselines: Path,
              wanted=()) -> tuple:
    """(fuzz_core.SeedInfo, {json variant: unmutated output}, {variant: outcome}) of a
    seed: runs the listings (and the variants in `wanted`) on the unmutated seed, locates
    its QEMU objects, lists the cache entries the runs wrote."""
    import corefile
    listing = [v for v, a in load_variants().items()
               if v.split()[0] in qemu_objects.LISTINGS and a == ["--json"]]
    outputs, outcomes = {}, {}
    head = fuzz_core.core_view(seed.core)

    def run(v, objects):
        res = baseline(seed, v, objects, scratch, cache_home, baselines)
        outcomes[v] = res["outcome"]
        if "json" in res:
            outputs[v] = res["json"]
    for v in listing:
        run(v, None)
    objects = None
    try:
        prog = corefile.open(seed.core, seed.exe,
                             debug_dirs=[seed.debug_dir] if seed.debug_dir else ())
        try:
            objects = qemu_objects.locate({v.split()[0]: outputs.get(v) for v in listing}, prog)
        finally:
            prog.close()
    except corefile.CorefileError:
        objects = None
    if objects is not None:   # objects the core holds (not the corrupt fixture's wild ones)
        lay = fuzz_core.layout(head)
        objects.keep(lambda addr: _in_file(lay, addr))
    for v in wanted:
        if v not in listing:
            run(v, objects)
    layouts = fuzz_core.section_layouts({"exe": seed.exe, **fuzz_core.debug_files(seed)})
    exe_layout = layouts.pop("exe")
    patterns = sorted({fuzz_core._entry_pattern(e) for e in fuzz_core.cache_entries(
        Path(cache_home) / "qemugdb", fuzz_core.seed_build_ids(seed))})
    info = fuzz_core.SeedInfo(seed, head, exe_layout, objects, layouts, patterns)
    return info, outputs, outcomes


def _in_file(lay, addr):
    try:
        lay.file_offset(addr)
        return True
    except RecipeError:
        return False


def _slot(scratch, k):
    d = Path(scratch) / f"slot-{k}"
    d.mkdir(parents=True, exist_ok=True)
    return d


VARIANTS = {}


def load_variants() -> dict:
    """VARIANTS, read from the CLI on first use."""
    if not VARIANTS:
        VARIANTS.update(variants())
    return VARIANTS


# -- the run ----------------------------------------------------------------------------

class Planner:
    """Recipes with their command variant: variants round-robin in shuffled rounds (every
    variant the same number of inputs), seeds by group weight (GROUPS, shared evenly in a
    group), families by fuzz_core.FAMILIES."""

    def __init__(self, rng, weights):
        self.rng, self.weights, self.deck = rng, weights, []

    def seed_weight(self, name, names):
        group = next(g for g, match in GROUPS if match(name))
        peers = [n for n in names if next(g for g, m in GROUPS if m(n)) == group]
        return self.weights.get(name, dict(GROUP_WEIGHTS)[group] / len(peers))

    def batch(self, first, n, infos) -> list:
        names = sorted(infos)
        weights = [self.seed_weight(s, names) for s in names]
        out = []
        for i in range(first, first + n):
            if not self.deck:
                self.deck = sorted(load_variants())
                self.rng.shuffle(self.deck)
            for _ in range(8):   # a seed may lack what a drawn family needs
                seed = self.rng.choices(names, weights)[0]
                try:
                    recipe = fuzz_core.random_recipe(self.rng, infos[seed])
                    break
                except (RecipeError, ValueError, IndexError):
                    continue
            recipe["command"] = self.deck.pop()
            out.append((i, recipe))
        return out


# Seed groups and their share of the inputs: the QEMU fixture cores, the corrupt fixture
# (QEMU-shaped C, fast), the synthetic and crash fixtures (not QEMU: mostly exit 2).
GROUPS = [("qemu", lambda n: not n.startswith(("corrupt-", "synthetic-", "crash-"))),
          ("corrupt", lambda n: n.startswith("corrupt-")),
          ("other", lambda n: True)]
GROUP_WEIGHTS = [("qemu", 0.6), ("corrupt", 0.3), ("other", 0.1)]


def family(recipe) -> str:
    ops = recipe["ops"]
    kinds = {op["op"] for op in ops}
    targets = {op.get("target", "core") for op in ops}
    if "cache" in kinds:
        return "cache"
    if "compress" in kinds:
        return "compress"
    if targets & {"debug", "dwz"}:
        return "debug"
    if "exe" in targets:
        return "dwarf"
    if kinds == {"object"}:
        return "object"
    return "elf"


COMPARED = ("object", "cache")   # families whose --json output is compared with the seed's


def work(item, cache_home, slot):
    """Run one planned input (i, recipe, seed, objects, unmutated output or None); its
    result line."""
    i, recipe, seed, objects, base = item
    diff = family(recipe) in COMPARED and base is not None
    t0 = time.monotonic()
    try:
        res = run_input(recipe, seed, objects, slot, cache_home, want_output=diff)
    except RecipeError as e:
        res = {"outcome": "skipped", "steps": [str(e)]}
    except Exception as e:   # a bug of the harness: say so, keep going
        res = {"outcome": "skipped", "steps": [f"harness: {fuzz_core._where(e)}"]}
    res["seconds"] = round(time.monotonic() - t0, 3)
    out = res.pop("json", None)
    if diff and out is not None and family(recipe) == "object":
        res["differential"] = dict(differential(recipe, objects, base, out,
                                                seed_reader(seed)))
        narrowed = narrow(recipe, objects, res["differential"])
        if narrowed is not None:   # which operation made the mismatch?
            again = run_input(narrowed, seed, objects, slot, cache_home, want_output=True)
            if "json" in again:
                res["narrowed"] = dict(differential(narrowed, objects, base, again["json"],
                                                    seed_reader(seed)))
                if not mismatched(res["narrowed"]):   # a plausible value's doing
                    res["differential"] = {"silent: plausible value (narrowed)": 1,
                                           **res["narrowed"]}
    elif diff and out is not None:   # a damaged cache may cost time, never change a result
        res["differential"] = {"same output" if out == base else
                               "mismatch: the cache changed the output": 1}
    return {"i": i, "seed": recipe["seed"], "command": recipe["command"],
            "family": family(recipe), "recipe": recipe, **res}


class Pool:
    """`jobs` forked worker processes running work() on the items put in."""

    def __init__(self, jobs, scratch, cache_home):
        import multiprocessing as mp
        ctx = mp.get_context("fork")
        self.q_in, self.q_out = ctx.Queue(), ctx.Queue()
        self.procs = [ctx.Process(target=self._worker, args=(k, scratch, cache_home))
                      for k in range(jobs)]
        for p in self.procs:
            p.start()

    def _worker(self, k, scratch, cache_home):
        slot = _slot(scratch, k)
        while (item := self.q_in.get()) is not None:
            self.q_out.put(work(item, cache_home, slot))

    def run(self, items, on_result):
        for item in items:
            self.q_in.put(item)
        for _ in items:
            on_result(self.q_out.get())

    def close(self):
        for _ in self.procs:
            self.q_in.put(None)
        for p in self.procs:
            p.join()


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--inputs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1, help="random seed")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="/tmp/fuzz-cli/run")
    ap.add_argument("--seeds", nargs="*", default=["synthetic-kernel", "corrupt-kernel"],
                    help="seed names: fixture cores (corelist), synthetic-kernel/-gcore, "
                         "corrupt-kernel/-gcore (fixtures/corrupt)")
    ap.add_argument("--later-seeds", nargs="*", default=[],
                    help="fixture cores not made yet: each joins the run between batches "
                         "once its meta.json is there (the run is then not reproducible "
                         "from --seed alone; every input stays replayable by its recipe)")
    ap.add_argument("--weight", action="append", default=[], metavar="SEED=W",
                    help="weight of a seed (default: its group's share, GROUP_WEIGHTS)")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--replay", metavar="DIR", help="run the recipes DIR/*.json instead")
    return ap


def fuzz(args) -> dict:
    """The run args (parser()) ask for; its summary (also written to OUT/summary.json)."""
    load_variants()
    out = Path(args.out)
    for d in ("failures", "mismatches", "baselines"):
        (out / d).mkdir(parents=True, exist_ok=True)
    replay = [json.loads(p.read_text()) for p in sorted(Path(args.replay).glob("*.json"))] \
        if args.replay else None
    if replay:
        args.seeds, args.later_seeds = sorted({r["seed"] for r in replay}), []
    scratch = Path(tempfile.mkdtemp(prefix="qemugdb-fuzz-cli-",
                                    dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    cache_home = str(out / "cache")   # warm, shared, never damaged (prepare() copies it)
    weights = {k: float(v) for k, v in (w.split("=") for w in args.weight)}
    infos, bases, builds = {}, {}, {}

    def add_seeds(names):
        for name, s in seeds(names, scratch).items():
            t0 = time.monotonic()
            builds[name] = _build_id(s)
            infos[name], bases[name], outcomes = seed_info(s, scratch, cache_home,
                                                           out / "baselines")
            objs = infos[name].objects
            summary.baseline_failures += [[name, v, []] for v, o in outcomes.items()
                                          if o == "failure"]
            print(f"seed {name}: {round(time.monotonic() - t0, 1)} s, baselines "
                  f"{dict(Counter(outcomes.values()))}, objects "
                  f"{ {k: len(v) for k, v in objs.addresses.items()} if objs else None}, "
                  f"debug files {sorted(infos[name].debug_layouts)}, "
                  f"cache entries {len(infos[name].cache_patterns)}", flush=True)

    def item(i, recipe):
        info, variant = infos[recipe["seed"]], recipe["command"]
        outputs = bases[recipe["seed"]]
        if family(recipe) in COMPARED and wants_baseline(variant) and variant not in outputs:
            res = baseline(info.seed, variant, info.objects, scratch, cache_home,
                           out / "baselines")
            if res["outcome"] == "failure":   # the unmutated seed fails: a finding too
                summary.baseline_failures.append([recipe["seed"], variant, res["steps"]])
            outputs[variant] = res.get("json")
        return (i, recipe, info.seed, info.objects, outputs.get(variant))
    try:
        total = len(replay) if replay else args.inputs
        summary = Summary(out, " ".join(["python3", *sys.argv]) if __name__ == "__main__"
                          else None, total)
        add_seeds(args.seeds)
        later = list(args.later_seeds)
        planner = Planner(random.Random(args.seed), weights)
        pool = Pool(args.jobs, scratch, cache_home)
        with open(out / "results.jsonl", "w") as log:
            def on_result(line):
                log.write(json.dumps(line) + "\n")
                log.flush()
                summary.add(line)
            for first in range(0, total, args.batch):
                # A fixture core remade meanwhile (make_cores.py run again) is a new seed:
                # its objects are located and its baselines made again.
                remade = [n for n, i in infos.items() if _build_id(i.seed) != builds[n]]
                ready = remade + [n for n in later if _made(n)]
                if ready:
                    later = [n for n in later if n not in ready]
                    add_seeds(ready)
                batch = list(enumerate(replay))[first:first + args.batch] if replay else \
                    planner.batch(first, min(args.batch, total - first), infos)
                # One seed's inputs together: a worker's files stay warm.
                batch.sort(key=lambda x: x[1]["seed"])
                pool.run([item(i, r) for i, r in batch], on_result)
        pool.close()
        result = summary.write()
        print(json.dumps(result["outcomes"]), flush=True)
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _build_id(seed):
    """(size, mtime) of the seed's core: which make of the fixture it is."""
    st = os.stat(seed.core)
    return st.st_size, st.st_mtime_ns


def _made(name):
    import corelist
    try:
        corelist.core(name)
        return True
    except corelist.CoreMissing:
        return False


def seeds(names, scratch: Path) -> dict:
    """fuzz_core.seeds(), plus corrupt-kernel/-gcore (fixtures/corrupt, built here)."""
    out = {}
    corrupt = [n for n in names if n.startswith("corrupt-")]
    if corrupt:
        built = _build("corrupt", scratch / "corrupt")
        for n in corrupt:
            out[n] = Seed(n, built["kernel_core" if n.endswith("kernel") else "gcore"],
                          built["exe"])
    out.update(fuzz_core.seeds([n for n in names if n not in out], scratch))
    return out


def _build(name, outdir):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"{name}_build",
                                                  ROOT / "fixtures" / name / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build(outdir)


class Summary:
    """Counts per command variant, seed and family; failures, mismatches, the slowest."""

    def __init__(self, out, command, total):
        self.out, self.command, self.total = out, command, total
        self.by_variant = defaultdict(Counter)
        self.by_seed = defaultdict(Counter)
        self.by_family = defaultdict(Counter)
        self.verdicts = Counter()
        self.failures = defaultdict(list)
        self.mismatches = []
        self.baseline_failures = []   # [seed, variant, why]: the unmutated seed failing
        self.slowest = []
        self.started = time.monotonic()
        self.n = 0

    def add(self, line):
        o = line["outcome"]
        self.by_variant[line["command"]][o] += 1
        self.by_seed[line["seed"]][o] += 1
        self.by_family[line["family"]][o] += 1
        self.slowest = sorted(self.slowest + [(line["seconds"], line["i"], line["seed"],
                                               line["command"])], reverse=True)[:5]
        recipe = {**line["recipe"], "why": line["steps"]}
        if o == "failure":
            self.failures[fuzz_core.failure_class(line)].append(line["i"])
            (self.out / "failures" / f"{line['i']:06d}.json").write_text(json.dumps(recipe, indent=1))
        diff = line.get("differential") or {}
        self.verdicts.update(diff)
        if mismatched(diff):
            self.mismatches.append(line["i"])
            (self.out / "mismatches" / f"{line['i']:06d}.json").write_text(
                json.dumps({**recipe, "differential": diff}, indent=1))
        self.n += 1
        if self.n % 250 == 0:
            print(f"{self.n}/{self.total} inputs, {round(time.monotonic() - self.started)} s: "
                  f"{dict(sum(self.by_seed.values(), Counter()))}, "
                  f"{len(self.mismatches)} mismatches", flush=True)
            self.write()

    def write(self):
        total = sum(self.by_seed.values(), Counter())
        summary = {"command": self.command, "inputs": self.n, "planned": self.total,
                   "seconds": round(time.monotonic() - self.started, 1),
                   "outcomes": dict(total),
                   "by_variant": {k: dict(v) for k, v in sorted(self.by_variant.items())},
                   "by_seed": {k: dict(v) for k, v in sorted(self.by_seed.items())},
                   "by_family": {k: dict(v) for k, v in sorted(self.by_family.items())},
                   "differential": dict(self.verdicts), "mismatch_inputs": self.mismatches,
                   "failure_classes": {k: v[:5] for k, v in self.failures.items()},
                   "baseline_failures": self.baseline_failures,
                   "slowest": self.slowest}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
        return summary


def table(results: Path) -> str:
    """docs/robustness.md's rows of a run (its results.jsonl, read as far as it got):
    inputs and outcomes per command variant."""
    by_variant = defaultdict(Counter)
    for line in results.read_text().splitlines():
        r = json.loads(line)
        by_variant[r["command"]][r["outcome"]] += 1
    return "\n".join(
        f"| `{variant}` | CLI | {sum(c.values())} | " + " | ".join(
            str(c.get(o, 0)) for o in ("success", "partial", "error", "failure", "skipped"))
        + " |" for variant, c in sorted(by_variant.items()))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--table"]:   # --table OUT
        print(table(Path(sys.argv[2]) / "results.jsonl"))
    else:
        fuzz(parser().parse_args())
