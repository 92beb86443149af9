"""Modules imported on first use, so ``import mixedmodels`` does not pay for them (scipy.stats
alone took most of the import time): ``stats = lazy_import("scipy.stats")`` and then
``stats.norm.ppf(...)`` as usual."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["lazy_import"]


class _LazyModule(ModuleType):
    """A stand-in that imports the real module at the first attribute access."""

    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def _load(self) -> ModuleType:
        return importlib.import_module(self.__dict__["_lazy_target"])

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __dir__(self):
        return dir(self._load())


def lazy_import(name: str) -> ModuleType:
    """The module ``name``, imported when one of its attributes is first used."""
    return _LazyModule(name)
