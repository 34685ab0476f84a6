"""Command declarations; importing this package fills qemugdb.commands.REGISTRY."""

import importlib

MODULES = []  # each helper module appends its name: "coroutine", "block", ...


def load():
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
