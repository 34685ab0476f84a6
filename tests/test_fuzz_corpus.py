"""Replay the inputs that once broke corefile or `qemu-coredump` (tests/fuzz/corpus/,
recipes of tests/fuzz/fuzz_core.py: a seed core and structural mutations). Each must end in
success, a partial result or a documented error, within the fuzzer's budget. A recipe with a
"command" (tests/fuzz/fuzz_cli.py) runs that CLI command variant, and one with
"differential" must also pass the differential check against the unmutated seed's output;
the others run fuzz_core's exercise (corefile and `report`). Recipes on the synthetic and
corrupt fixtures run in the fast tier; recipes on the real fixture cores are `slow`."""

import json
import signal
from pathlib import Path

import pytest

from fuzz import fuzz_cli, fuzz_core
from oracle import fixture_core  # noqa: E402

CORPUS = sorted((Path(__file__).parent / "fuzz" / "corpus").glob("*.json"))
BUILT = ("synthetic-", "corrupt-")


def _params():
    for path in CORPUS:
        seed = json.loads(path.read_text())["seed"]
        marks = () if seed.startswith(BUILT) else (pytest.mark.slow,)
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.fixture
def seed_for(synthetic, corrupt, request):
    built = {"synthetic": synthetic, "corrupt": corrupt}

    def seed(name):
        if name.startswith(BUILT):
            fixture, kind = name.split("-", 1)
            b = built[fixture]
            return fuzz_core.Seed(name, b["kernel_core" if kind == "kernel" else "gcore"],
                                  b["exe"])
        meta = fixture_core(name)
        return fuzz_core.Seed(name, meta["core"], meta["exe"], meta.get("debug_dir"))
    return seed


def _within_budget(fn):
    """fn() within the fuzzer's budget: BUDGET s of CPU time (a loop), WALL_FACTOR times
    that of wall time (a wait; the machine may be loaded)."""
    def hang(*_):
        raise fuzz_core.Hang(f"over the budget ({fuzz_core.BUDGET} s of CPU time)")
    old = {s: signal.signal(s, hang) for s in (signal.SIGPROF, signal.SIGALRM)}
    signal.setitimer(signal.ITIMER_PROF, fuzz_core.BUDGET)
    signal.alarm(fuzz_core.WALL_FACTOR * fuzz_core.BUDGET)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.alarm(0)
        for s, handler in old.items():
            signal.signal(s, handler)


@pytest.mark.parametrize("path", list(_params()))
def test_corpus_input(path, seed_for, tmp_path):
    recipe = json.loads(path.read_text())
    seed = seed_for(recipe["seed"])
    cache = str(tmp_path / "cache")
    if "command" not in recipe:
        res = _within_budget(lambda: fuzz_core.run_recipe(recipe, seed, tmp_path, cache,
                                                          child=False))
        assert res["outcome"] in ("success", "partial", "error"), res["steps"]
        return
    # The unmutated seed's listings (where its objects are), and its run of the command
    # (the warm cache the fuzzer had, and the baseline of the differential check).
    info, bases, outcomes = fuzz_cli.seed_info(seed, tmp_path / "scratch", cache,
                                               tmp_path / "baselines", [recipe["command"]])
    damaged_cache = fuzz_cli.family(recipe) == "cache"
    compare = bool(recipe.get("differential")) or damaged_cache
    res = _within_budget(lambda: fuzz_cli.run_input(
        recipe, seed, info.objects, tmp_path / "work", cache, child=False,
        want_output=compare))
    assert res["outcome"] in ("success", "partial", "error"), res["steps"]
    if damaged_cache and "json" in res:   # the cache may cost time, never change a result
        assert res["json"] == bases[recipe["command"]]
    elif compare:
        verdicts = fuzz_cli.differential(recipe, info.objects, bases[recipe["command"]],
                                         res["json"], fuzz_cli.seed_reader(seed))
        assert not [v for v in verdicts if v.startswith("mismatch")], verdicts
