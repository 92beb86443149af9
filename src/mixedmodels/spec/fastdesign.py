"""A direct NumPy model matrix for the common formula vocabulary, formulaic's result without
formulaic's cost.

Small fits are repeated thousands of times (bootstrap, ``all_fit``, profiles, simulation
studies), and formulaic's parse and materialization were about half of each one (issue 13).
:func:`fast_model_matrix` builds the same matrix, with the same column names, for formulas made
of

- ``1``, ``0`` (intercept or none),
- numeric (not boolean) columns ``x``,
- powers ``I(x**k)`` of a numeric column (R's ``I(x^k)``, after :func:`to_formulaic`),
- products ``x:z`` of numeric columns,
- factors ``f`` (pandas categoricals, unordered, or columns of strings) with an intercept
  (treatment contrasts, the first level the reference: formulaic's and R's default), used as
  main effects only,

and returns None for anything else, where the caller uses formulaic. Columns are in
formulaic's order (intercept, then the terms by degree, each degree in the order written).
formulaic's :class:`ModelSpec`, which prediction and the other layers replay on new data, is
made only when one of them asks for it (:class:`LazyModelSpec`).
"""

from __future__ import annotations

import keyword
import re

import numpy as np
import pandas as pd

from ..core.lazy import lazy_import

formulaic = lazy_import("formulaic")

__all__ = ["LazyModelSpec", "fast_model_matrix"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_POWER = re.compile(r"I\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\*\*\s*([0-9])\s*\)")


def _restore(spec):
    return spec


class LazyModelSpec:
    """formulaic's ``ModelSpec`` of ``expr`` on ``frame``, made at the first attribute access.

    Behaves as the spec it stands for (attributes are delegated); pickles and copies as the
    real spec.
    """

    __slots__ = ("_expr", "_frame", "_spec")

    def __init__(self, expr: str, frame: pd.DataFrame):
        self._expr = expr
        self._frame = frame
        self._spec = None

    def resolve(self):
        """The real formulaic ``ModelSpec``."""
        if self._spec is None:
            mat = formulaic.model_matrix(self._expr, self._frame, na_action="ignore")
            self._spec = mat.model_spec
        return self._spec

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __reduce__(self):
        return _restore, (self.resolve(),)

    def __repr__(self) -> str:
        return repr(self.resolve())


def _split_plus(expr: str) -> list[str] | None:
    """Top-level ``+`` terms, or None where the formula has other operators there."""
    out, depth, start = [], 0, 0
    for pos, ch in enumerate(expr):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch in "-*/%|^~`[]":
            return None
        elif depth == 0 and ch == "+":
            out.append(expr[start:pos].strip())
            start = pos + 1
    out.append(expr[start:].strip())
    return out


def _numeric(col: pd.Series) -> np.ndarray | None:
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
        return col.to_numpy(dtype=float)
    return None


def _is_text(dtype) -> bool:
    return (isinstance(dtype, np.dtype) and dtype.kind == "O") or isinstance(dtype, pd.StringDtype)


def _levels(col: pd.Series) -> tuple[np.ndarray, list[str]] | None:
    """(codes, levels) of a factor as formulaic encodes it; None when unsure."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if dtype.ordered or not _is_text(dtype.categories.dtype):
            return None
        cats = list(dtype.categories)
        if not all(isinstance(c, str) for c in cats):
            return None
        return np.asarray(col.array.codes), cats
    if _is_text(dtype):
        values = col.to_numpy()
        if pd.api.types.infer_dtype(values, skipna=False) != "string":
            return None
        levels, codes = np.unique(values.astype(str), return_inverse=True)
        return codes, [str(v) for v in levels]
    return None


def fast_model_matrix(expr: str, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]] | None:
    """The model matrix of ``expr`` (formulaic's syntax) on ``frame`` and formulaic's column
    names, or None when ``expr`` is outside the vocabulary of this module (use formulaic).

    ``frame`` holds no missing values in the columns ``expr`` uses (the design drops them first).
    """
    parts = _split_plus(expr)
    if parts is None or any(not p for p in parts):
        return None
    intercept = True
    seen: set[str] = set()
    first: list[tuple[str, object]] = []   # degree-1 terms, in the order written
    second: list[tuple[str, object]] = []  # x:z products
    columns = frame.columns
    for part in parts:
        if part in ("0", "1"):
            intercept = part == "1"
            continue
        if part in seen:
            return None  # formulaic merges repeated terms; leave that to it
        seen.add(part)
        power = _POWER.fullmatch(part)
        if power:
            name, k = power.group(1), int(power.group(2))
            if name not in columns:
                return None
            values = _numeric(frame[name])
            if values is None:
                return None
            first.append((f"I({name} ** {k})", values ** k))
            continue
        factors = [f.strip() for f in part.split(":")]
        if not all(_NAME.fullmatch(f) and not keyword.iskeyword(f) and f in columns for f in factors):
            return None
        if len(factors) > 2 or len(set(factors)) != len(factors):
            return None
        if len(factors) == 2:
            a, b = _numeric(frame[factors[0]]), _numeric(frame[factors[1]])
            if a is None or b is None:
                return None
            second.append((f"{factors[0]}:{factors[1]}", a * b))
            continue
        name = factors[0]
        values = _numeric(frame[name])
        if values is not None:
            first.append((name, values))
            continue
        coded = _levels(frame[name])
        if coded is None:
            return None
        first.append((name, coded))
    if any(isinstance(v, tuple) for _, v in first) and not intercept:
        return None  # a factor without an intercept is coded in full: leave it to formulaic
    n = len(frame)
    names: list[str] = ["Intercept"] if intercept else []
    blocks: list[np.ndarray] = [np.ones((n, 1))] if intercept else []
    for name, values in first + second:
        if isinstance(values, tuple):
            codes, levels = values
            if len(levels) < 2:
                return None
            block = np.zeros((n, len(levels) - 1))
            rows = np.flatnonzero(codes > 0)
            block[rows, codes[rows] - 1] = 1.0
            blocks.append(block)
            names.extend(f"{name}[T.{lev}]" for lev in levels[1:])
        else:
            blocks.append(values[:, None])
            names.append(name)
    X = np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0))
    return X, names
