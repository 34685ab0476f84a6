"""Replay the inputs that once broke corefile or `qemu-coredump report` (tests/fuzz/corpus/,
recipes of tests/fuzz/fuzz_core.py: a seed core and structural mutations). Each must end in
success, a partial result or a documented error, within the fuzzer's budget. Recipes on the
synthetic fixture run in the fast tier; recipes on the real fixture cores are `slow`."""

import json
import signal
from pathlib import Path

import pytest

from fuzz import fuzz_core
from oracle import fixture_core  # noqa: E402

CORPUS = sorted((Path(__file__).parent / "fuzz" / "corpus").glob("*.json"))


def _params():
    for path in CORPUS:
        seed = json.loads(path.read_text())["seed"]
        marks = () if seed.startswith("synthetic-") else (pytest.mark.slow,)
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.fixture
def seed_for(synthetic, request):
    def seed(name):
        if name.startswith("synthetic-"):
            core = synthetic["kernel_core" if name == "synthetic-kernel" else "gcore"]
            return fuzz_core.Seed(name, core, synthetic["exe"])
        meta = fixture_core(name)
        return fuzz_core.Seed(name, meta["core"], meta["exe"])
    return seed


@pytest.mark.parametrize("path", list(_params()))
def test_corpus_input(path, seed_for, tmp_path):
    recipe = json.loads(path.read_text())
    seed = seed_for(recipe["seed"])

    def hang(*_):
        raise fuzz_core.Hang(f"over {fuzz_core.BUDGET} s")
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(fuzz_core.BUDGET)
    try:
        res = fuzz_core.run_recipe(recipe, seed, tmp_path, str(tmp_path / "cache"),
                                   child=False)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert res["outcome"] in ("success", "partial", "error"), res["steps"]
