"""glmmTMB's covariance-structure terms on the data: the checks and the structure of each term.

``us(x | g)`` is ``(x | g)``; ``diag(x | g)`` is one term with independent columns (glmmTMB's,
unlike lme4's ``||``, which splits the term); ``cs(x | g)`` gives the columns a variance each
and one common correlation; ``ar1(f + 0 | g)`` needs a factor ``f`` of equally spaced times
(its levels in order); ``ou(t + 0 | g)`` takes the times from a *numeric* column ``t`` (glmmTMB
spells this ``ou(numFactor(t) + 0 | g)``): each distinct value is a column, sorted, and the
correlation between two is ``exp(−rate·|tᵢ − tⱼ|)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.structures import AR1, OU, CompoundSymmetry, CovStructure, Diagonal
from ..exceptions import DataError
from .formula import FormulaError, split_top

__all__ = ["structure_of", "TimeIndicators", "skips_size_check"]

_NEEDS_NO_INTERCEPT = ("ar1", "ou")


def _without_intercept(lhs: str) -> tuple[str, bool]:
    """The lhs without its ``0`` / ``-1`` pieces, and whether it had one."""
    kept, removed = [], False
    for sign, piece, _ in split_top(lhs, "+-"):
        text = piece.strip()
        if (sign == "+" and text == "0") or (sign == "-" and text == "1"):
            removed = True
        elif text:
            kept.append(text if sign == "+" else f"- {text}")
    return " + ".join(kept), removed


def skips_size_check(kind: str) -> bool:
    """A structured term has few parameters however many random effects it has (one per
    subject and time point for a residual AR(1)): the ``levels × columns < n`` check is lme4's
    for unstructured terms only."""
    return kind in ("cs", "ar1", "ou")


def structure_of(kind: str, shown: str, lhs: str, values: np.ndarray, columns: list[str],
                 model_spec, formula: str | None = None) -> tuple[np.ndarray, list[str], CovStructure | None, object]:
    """The columns, structure and column-maker of a term written ``kind(lhs | g)``.

    Parameters
    ----------
    kind : {"us", "diag", "cs", "ar1", "ou"}
    shown : str
        The term as written, for messages.
    lhs : str
    values, columns :
        The term's model-matrix columns and their names, evaluated from ``lhs``.
    model_spec :
        formulaic's spec of those columns (replayed on new data).
    formula : str, optional
        The whole model formula, for messages.

    Returns
    -------
    (values, columns, structure, model_spec)
        For ``ou`` the numeric times become indicator columns, one per distinct time, sorted,
        and the spec a :class:`TimeIndicators`; ``structure`` is None for ``us``.

    Raises
    ------
    FormulaError
        ``ar1``/``ou`` with an intercept.
    DataError
        ``ar1`` on a non-factor, ``ou`` on non-numeric times, fewer than 2 time points.
    """
    if kind == "us":
        return values, columns, None, model_spec
    if kind == "diag":
        return values, columns, Diagonal(values.shape[1]), model_spec
    expr, no_intercept = _without_intercept(lhs)
    if kind in _NEEDS_NO_INTERCEPT and (not no_intercept or "(Intercept)" in columns):
        raise FormulaError(f"{shown} has an intercept, which an {kind.upper()} structure over time "
                           f"points cannot have: write {kind}({expr or lhs} + 0 | ...)", formula or shown)
    if kind == "ar1":
        indicator = bool(np.all((values == 0) | (values == 1)) and np.all(values.sum(axis=1) == 1))
        if not indicator:
            raise DataError(f"{shown}: ar1 needs '{expr}' to be a factor of equally spaced time "
                            "points (one column per level, in time order), but it is numeric. "
                            "Convert it (df[col].astype('category'), levels in time order), or use "
                            f"ou({expr} + 0 | ...) for numeric, possibly unequally spaced, times.")
        _need_two(shown, expr, values.shape[1], "level")
        return values, columns, AR1(values.shape[1]), model_spec
    if kind == "ou":
        if values.shape[1] != 1:
            raise DataError(f"{shown}: ou needs '{expr}' to be one numeric column of times (each "
                            f"distinct value a time point), but it gives columns {columns}. "
                            f"Pass the times as numbers (pd.to_numeric), or use ar1({expr} + 0 | ...) "
                            "for a factor of equally spaced times.")
        times = np.unique(values[:, 0])
        _need_two(shown, expr, len(times), "distinct time")
        spec = TimeIndicators(model_spec, expr, tuple(float(t) for t in times))
        return spec.indicators(values[:, 0]), spec.columns, OU(len(times), spec.times), spec
    if kind == "cs":
        if values.shape[1] < 2:
            raise DataError(f"{shown} has {values.shape[1]} column; compound symmetry is a common "
                            "correlation between 2 or more columns (e.g. the levels of a factor, "
                            "cs(0 + f | g)). For one column write (lhs | group).")
        return values, columns, CompoundSymmetry(values.shape[1]), model_spec
    raise ValueError(f"unknown covariance structure {kind!r}")


def _need_two(shown: str, expr: str, found: int, what: str) -> None:
    if found < 2:
        raise DataError(f"{shown}: found {found} {what}{'s' if found != 1 else ''} of '{expr}' in the "
                        "data; a correlation over time needs at least 2 time points. Use a scalar "
                        "term such as (1 | group) instead, or check which rows were dropped for "
                        "missing values.")


class TimeIndicators:
    """The columns of an ``ou`` term: one indicator per fitted time, from the numeric times.

    Replays like formulaic's spec (``get_model_matrix``) so prediction on new data builds the
    same columns; a time the fit did not see gets no random effect (a row of zeros).
    """

    def __init__(self, spec, expr: str, times: tuple[float, ...]):
        self.spec = spec
        self.expr = expr
        self.times = times
        name = expr.strip()
        self.columns = [f"{name}({t:.15g})" for t in times]

    @property
    def required_variables(self):
        return getattr(self.spec, "required_variables", set())

    def indicators(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        grid = np.asarray(self.times)
        pos = np.clip(np.searchsorted(grid, t), 0, len(grid) - 1)
        hit = grid[pos] == t
        out = np.zeros((len(t), len(grid)))
        out[np.flatnonzero(hit), pos[hit]] = 1.0
        out[np.isnan(t)] = np.nan
        return out

    def get_model_matrix(self, frame: pd.DataFrame, **kwargs) -> pd.DataFrame:
        raw = np.asarray(self.spec.get_model_matrix(frame, **kwargs), dtype=float)
        return pd.DataFrame(self.indicators(raw[:, 0]), columns=self.columns, index=frame.index)
