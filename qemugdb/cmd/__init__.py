"""Command declarations, one module per subsystem; load() fills qemugdb.commands.REGISTRY."""

import importlib
import pkgutil


def load():
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
