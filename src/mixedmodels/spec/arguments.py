"""Checks of public arguments' types and ranges, shared by every layer above: one wording for each
kind of mistake, with the Python spelling where an R habit is the likely cause."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_bool", "check_count", "check_models"]


def check_bool(name: str, value) -> bool:
    """``value`` as a bool; a TypeError for anything else (R's ``"TRUE"`` strings get a hint)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    hint = ""
    if isinstance(value, str) and value.strip().upper() in ("TRUE", "FALSE", "T", "F"):
        hint = f"; write {name}={value.strip().upper().startswith('T')} (Python's bool), not a string"
    raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__}){hint}")


def check_count(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum`` (a whole float such as 500.0 is accepted)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")
    if not float(value).is_integer():
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {int(value)}")
    return int(value)


def check_models(func: str, models, kind: type) -> None:
    """Each of ``models`` is a fitted model (an instance of ``kind``); a TypeError naming the first
    that is not, and its position."""
    for i, m in enumerate(models):
        if not isinstance(m, kind):
            raise TypeError(f"{func}() compares fitted models (from mm.lmer or mm.glmer); argument "
                            f"{i + 1} is {type(m).__name__} {m!r:.60}")
