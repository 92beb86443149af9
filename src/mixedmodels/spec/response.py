"""GLMM responses: ``cbind(successes, failures)``, two-level factors, 0/1 and counts.

The parser is handed to :func:`~mixedmodels.spec.design.build_design`; it returns the
response on the fit's scale (proportions for binomial trials) and records the trials and
factor levels on a :class:`Response`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.lazy import lazy_import
from ..exceptions import DataError
from .design import split_top, to_formulaic
from .formula import unquote

formulaic = lazy_import("formulaic")   # imported at the first design, not at import

__all__ = ["Response", "response_parser", "eval_numeric"]


# ``a - b`` (``cbind(s, n - s)``) and the other binary operations of two numeric columns, in
# NumPy: formulaic's evaluation of that one expression was a seventh of a small GLMM's fit
_BINARY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*([-+*/])\s*([A-Za-z_][A-Za-z0-9_]*)")
_OPS = {"-": np.subtract, "+": np.add, "*": np.multiply, "/": np.true_divide}


def _numeric_column(name: str, frame: pd.DataFrame, what: str) -> np.ndarray:
    col = frame[name]
    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)) or \
            isinstance(col.dtype, pd.CategoricalDtype):
        raise DataError(f"{what} {name!r} must be numeric (it is {col.dtype})")
    return col.to_numpy(dtype=float)


def eval_numeric(expr: str, frame: pd.DataFrame, what: str) -> np.ndarray:
    expr = expr.strip()
    if re.fullmatch(r"`[^`]*`", expr):
        expr = unquote(expr)
    if expr in frame.columns:
        return _numeric_column(expr, frame, what)
    binary = _BINARY.fullmatch(expr)
    if binary and binary.group(1) in frame.columns and binary.group(3) in frame.columns:
        a, op, b = binary.groups()
        dtypes = (frame[a].dtype, frame[b].dtype)
        if all(isinstance(d, np.dtype) and d.kind in "iuf" for d in dtypes):
            with np.errstate(divide="ignore", invalid="ignore"):
                return _OPS[op](_numeric_column(a, frame, what), _numeric_column(b, frame, what))
    try:
        mats = formulaic.model_matrix(f"I({to_formulaic(expr)}) ~ 1", frame, na_action="ignore")
    except Exception as err:
        raise DataError(f"cannot evaluate the {what} {expr!r}: {err}") from err
    return np.asarray(mats.lhs, dtype=float).ravel()


@dataclass
class Response:
    """What parsing a GLMM response found: its text, binomial trials (``cbind``) and the two
    levels of a factor response (the first is failure, as R)."""

    name: str = ""
    trials: np.ndarray | None = None
    levels: list | None = None


def response_parser(family, store: Response):
    """``response=`` callable for :func:`~mixedmodels.spec.design.build_design`: cbind(),
    two-level factors, 0/1, counts. ``family`` is the model's family (its ``accepts_trials``,
    ``check_response`` and ``name``); what is found is recorded on ``store``."""

    def parse(expr: str, frame: pd.DataFrame) -> np.ndarray:
        expr = expr.strip()
        match = re.fullmatch(r"cbind\s*\((.*)\)", expr, flags=re.S)
        if match:
            if not family.accepts_trials:
                raise DataError(f"response {expr!r}: cbind(successes, failures) is a binomial "
                                f"response, not one for the {family.name} family")
            parts = [p.strip() for p in split_top(match.group(1), ",")]
            if len(parts) != 2:
                raise DataError(f"response {expr!r}: cbind() needs exactly two columns, "
                                "successes and failures")
            counts = []
            for part in parts:
                v = eval_numeric(part, frame, "cbind() column")
                bad = ~np.isfinite(v) | (v < 0)
                if bad.any():
                    raise DataError(f"cbind() column {part!r} has negative counts "
                                    f"({int(bad.sum())} rows, e.g. {v[bad][0]:g}); successes "
                                    "and failures must be non-negative")
                counts.append(v)
            s, f = counts
            trials = s + f
            with np.errstate(invalid="ignore", divide="ignore"):
                y = np.where(trials > 0, s / np.where(trials > 0, trials, 1.0), 0.0)
            store.trials = trials
            store.name = expr
            return y
        store.name = expr
        if expr in frame.columns:
            col = frame[expr]
            if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col) or \
                    not pd.api.types.is_numeric_dtype(col):
                if not family.accepts_trials:
                    raise DataError(f"response {expr!r} is not numeric (it is {col.dtype}); the "
                                    f"{family.name} family needs a numeric response")
                if pd.api.types.is_bool_dtype(col):
                    return col.to_numpy(dtype=float)
                if isinstance(col.dtype, pd.CategoricalDtype):
                    levels = list(col.cat.remove_unused_categories().cat.categories)
                    values = col.astype(object).to_numpy()
                else:
                    values = col.astype(str).to_numpy()
                    levels = sorted(set(values))
                if len(levels) > 2:
                    raise DataError(
                        f"binomial response {expr!r} is a factor with {len(levels)} levels "
                        f"({', '.join(map(str, levels[:5]))}{', ...' if len(levels) > 5 else ''}); "
                        "it needs two. Recode it to two levels (or 0/1).")
                store.levels = levels
                # R: the first level is failure, the other success
                return (values != levels[0]).astype(float)
        y = eval_numeric(expr, frame, "response")
        family.check_response(y, expr)
        return y

    return parse
