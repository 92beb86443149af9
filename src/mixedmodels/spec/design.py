"""Data to the fixed-effects matrix X, the response and the random-effects terms, with input checks.

Every problem is reported with the column it concerns; rows dropped for missing values are
counted, reported once with a :class:`~mixedmodels.exceptions.MissingDataWarning`, and kept
on the design so the summary can say so.
"""

from __future__ import annotations

import difflib
import keyword
import re
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import pandas as pd

from ..core.lazy import lazy_import
from ..core.terms import ReTermMatrix
from ..exceptions import DataError, MissingDataWarning, RankDeficiencyWarning
from .covstruct import skips_size_check, structure_of
from .fastdesign import LazyModelSpec, fast_model_matrix
from .formula import FormulaError, ModelFormula, dot_position, expression_names, parse_formula, quote_names, unquote

formulaic = lazy_import("formulaic")   # imported at the first design, not at import

__all__ = ["ModelDesign", "DesignSubset", "ReTerm", "build_design", "check_data_frame", "double_bar_terms",
           "infinite_column", "nonfinite_detail", "r_column_name", "to_formulaic", "unique_names"]


@dataclass
class ReTerm:
    """A random-effects term after evaluation on the data.

    Attributes
    ----------
    name : str
        Display name (the grouping factor; made unique like R's ``make.unique``).
    group : str
        The grouping factor as written (``"student"``, ``"cask:batch"``).
    lhs : str
        The term's model formula.
    columns : list of str
        Names of the term's columns, R-style.
    levels : pandas.Index
        Level labels of the grouping factor (unused levels dropped).
    matrix : ReTermMatrix
        Codes and values used by the engine.
    model_spec : object
        formulaic's spec of the term's columns, to re-apply on new data.
    """

    name: str
    group: str
    lhs: str
    columns: list[str]
    levels: pd.Index
    matrix: ReTermMatrix
    model_spec: object = None

    @property
    def nlevels(self) -> int:
        return self.matrix.nlevels

    @property
    def ncols(self) -> int:
        return self.matrix.ncols


@dataclass
class ModelDesign:
    """Everything the fit needs from the data, and what prediction needs to repeat it."""

    formula: ModelFormula
    y: np.ndarray
    X: np.ndarray
    fixef_names: list[str]
    terms: list[ReTerm]
    frame: pd.DataFrame
    weights: np.ndarray | None = None
    offset: np.ndarray | None = None
    n_dropped: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    fixed_spec: object = None
    response_name: str = ""
    extra: dict = field(default_factory=dict)
    #: binomial trials per row (``cbind(successes, failures)``); None for other responses
    trials: np.ndarray | None = None

    @property
    def nobs(self) -> int:
        return len(self.y)

    # -- derived designs: the term-sort invariant (largest first) is kept here only -------------
    def with_response(self, y: np.ndarray, weights: np.ndarray | None = None) -> "ModelDesign":
        """The same design with a new response (and prior weights, if given)."""
        y = np.asarray(y, dtype=float)
        if len(y) != self.nobs:
            raise ValueError(f"the new response has {len(y)} values; the design has {self.nobs} rows")
        return replace(self, y=y, weights=self.weights if weights is None else np.asarray(weights, float))

    def subset(self, rows: np.ndarray) -> tuple["ModelDesign", "DesignSubset"]:
        """The design restricted to ``rows`` (indices): unused levels and aliased columns
        dropped, terms re-sorted by their number of levels.

        Returns
        -------
        (ModelDesign, DesignSubset)
            The design, and the map back to this one (kept columns, levels, term order).
        """
        rows = np.asarray(rows)
        X = self.X[rows]
        aliased = set(aliased_columns(X)) if X.shape[1] else set()
        keep_cols = np.array([j for j in range(X.shape[1]) if j not in aliased], dtype=np.int64)
        terms, used_levels = [], []
        for term in self.terms:
            mat = term.matrix
            used, new_codes = np.unique(mat.codes[rows], return_inverse=True)
            new = ReTermMatrix(new_codes.astype(np.int64), np.ascontiguousarray(mat.values[rows]),
                               len(used), correlated=mat.correlated, structure=mat.structure)
            terms.append(replace(term, levels=term.levels[used], matrix=new))
            used_levels.append(used)
        order = _sorted_term_order(terms)
        sub = replace(
            self, y=self.y[rows], X=np.ascontiguousarray(X[:, keep_cols]),
            fixef_names=[self.fixef_names[j] for j in keep_cols], terms=[terms[i] for i in order],
            frame=self.frame.iloc[rows],
            weights=None if self.weights is None else self.weights[rows],
            offset=None if self.offset is None else self.offset[rows],
            trials=None if self.trials is None else self.trials[rows], extra=dict(self.extra))
        return sub, DesignSubset(keep_cols, [used_levels[i] for i in order], order)

    def drop_re_columns(self, drop: list[list[int]]) -> "ModelDesign":
        """The design without some random-effects columns: ``drop[k]`` lists the columns of term
        k to remove; a term left with none is removed. Terms are re-sorted."""
        terms = []
        for term, zeros in zip(self.terms, drop):
            keep = [j for j in range(term.ncols) if j not in zeros]
            if not keep:
                continue
            if len(keep) < term.ncols:
                mat = term.matrix
                new = ReTermMatrix(mat.codes, np.ascontiguousarray(mat.values[:, keep]), mat.nlevels,
                                   correlated=mat.correlated)
                term = replace(term, columns=[term.columns[j] for j in keep], matrix=new)
            terms.append(term)
        return replace(self, terms=[terms[i] for i in _sorted_term_order(terms)])


@dataclass
class DesignSubset:
    """How a :meth:`ModelDesign.subset` maps back: the kept fixed-effect columns, per (new)
    term the original level codes its levels stand for, and the original index of each term."""

    keep_cols: np.ndarray
    used_levels: list[np.ndarray]
    order: list[int]


def _sorted_term_order(terms: list) -> list[int]:
    """Terms largest first (stable), the order the blocked factor needs."""
    return sorted(range(len(terms)), key=lambda i: -terms[i].nlevels)


# --- names ---------------------------------------------------------------------------------

def split_top(text: str, sep: str) -> list[str]:
    out, depth, start = [], 0, 0
    for pos, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth == 0:
            out.append(text[start:pos])
            start = pos + 1
    out.append(text[start:])
    return out


def r_column_name(name: str) -> str:
    """formulaic's column name to R's ``model.matrix`` name.

    ``Intercept`` → ``(Intercept)``, ``sex[T.male]`` → ``sexmale``, ``I(x ** 2)`` → ``I(x^2)``.
    """
    if name == "Intercept":
        return "(Intercept)"
    parts = []
    for part in split_top(name, ":"):
        match = re.fullmatch(r"(.*)\[(?:T\.)?(.*)\]", part)
        if match:
            var, level = match.groups()
            poly = re.fullmatch(r"C\((\w+), *contr\.poly\)", var)
            if poly:
                var = poly.group(1)
                level = {".L": ".L", ".Q": ".Q", ".C": ".C"}.get(level, level)
            parts.append(var + level)
        else:
            parts.append(part.replace(" ** ", "^"))
    return ":".join(parts)


def to_formulaic(expr: str) -> str:
    """R spellings that formulaic does not know: ``x^2`` inside ``I()`` becomes ``x**2``, and
    ``factor(x)`` (categorical, as R) becomes ``C(x)``."""
    expr = re.sub(r"(?<![\w.`])factor\s*\(", "C(", expr)
    return re.sub(r"\^", "**", expr)


# --- checks ----------------------------------------------------------------------------------

_KNOWN_CONSTANTS = {"pi", "e", "True", "False", "None", "np", "inf", "nan"}


def _check_columns(spec: ModelFormula, data: pd.DataFrame) -> list[str]:
    used = []
    for name in spec.variables:
        if name in data.columns:
            used.append(name)
        elif name not in _KNOWN_CONSTANTS:
            columns = [str(c) for c in data.columns]
            close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
            if not close:
                close = [c for c in columns if c.lower() == name.lower()]
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
                f"; the data has {', '.join(repr(c) for c in columns[:12])}" + \
                (", ..." if len(columns) > 12 else "")
            raise DataError(f"column {name!r} in the formula is not in the data{hint}")
    return used


def check_data_frame(data, what: str = "data") -> None:
    """A TypeError unless ``data`` is a pandas DataFrame, naming what it is instead."""
    if isinstance(data, pd.DataFrame):
        return
    kind = f"{type(data).__module__}.{type(data).__qualname__}"
    hint = "; convert it with .to_pandas()" if hasattr(data, "to_pandas") else \
        "; build one with pd.DataFrame(...)" if isinstance(data, (dict, list, tuple, np.ndarray)) else ""
    raise TypeError(f"{what} must be a pandas DataFrame, got {kind}{hint} "
                    "(polars and pyarrow users: df.to_pandas())")


def _no_random_terms(spec: ModelFormula) -> None:
    bare = re.search(r"\(\s*([A-Za-z_.][\w.]*(?:\s*[:/]\s*[A-Za-z_.][\w.]*)*)\s*\)", spec.fixed)
    hint = (f" The term '({bare.group(1)})' has no '|': a random intercept is written "
            f"(1 | {bare.group(1)}).") if bare else ""
    raise DataError(
        f"no random effects terms specified in the formula {spec.text!r}.{hint} A mixed model "
        "needs at least one term such as (1 | group); for a model without random effects use "
        "mm.fixed_effects (the within estimator) or statsmodels (OLS, GLM).")


def _check_column_types(spec: ModelFormula, data: pd.DataFrame, used: list[str],
                        extra: tuple = (), dtypes: dict | None = None) -> None:
    """Duplicated column names, and date/time columns used as numbers."""
    names = set(used) | {v for v in extra if isinstance(v, str)}
    dup = [] if data.columns.is_unique else \
        sorted({str(c) for c in data.columns[data.columns.duplicated()] if c in names})
    if dup:
        raise DataError(f"the data has more than one column named {', '.join(repr(c) for c in dup)}; "
                        "column names must be unique (rename or drop the duplicates)")
    group_only = set()
    for term in spec.random:
        group_only.update(expression_names(term.group))
    exprs = [spec.fixed, *spec.offsets, spec.response or ""] + [t.lhs for t in spec.random]
    numeric_use = {n for e in exprs for n in expression_names(e)}
    for name in used:
        if name in group_only and name not in numeric_use:
            continue  # a date as a grouping factor is fine: its values are labels
        dtype = data[name].dtype if dtypes is None else dtypes[name]
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype) \
                or isinstance(dtype, pd.PeriodDtype):
            raise DataError(
                f"column {name!r} is a date/time column ({dtype}); the model needs numbers. Convert "
                f"it, e.g. to days since the first date: (d - d.min()).dt.days, or to a duration in "
                "days: d.dt.days (timedelta), and use that column.")


def nonfinite_detail(arr: np.ndarray, *, count_nan: bool = True, noun: str = "non-finite value") -> str:
    """``2 non-finite values (1 Inf, 1 NaN; rows 0, 3)``: the count, the kinds and the first rows
    (NaN left out with ``count_nan=False``, where NaN means missing)."""
    bad = ~np.isfinite(arr) if count_nan else np.isinf(arr)
    kinds = [("Inf", np.isposinf(arr)), ("-Inf", np.isneginf(arr))] + ([("NaN", np.isnan(arr))] if count_nan else [])
    k = int(bad.sum())
    rows = ", ".join(map(str, np.flatnonzero(bad)[:5])) + (", ..." if k > 5 else "")
    shown = ", ".join(f"{int(mask.sum())} {label}" for label, mask in kinds if mask.any())
    return f"{k} {noun}{'s' if k != 1 else ''} ({shown}; rows {rows})"


def infinite_column(frame: pd.DataFrame, names: list[str]) -> tuple[str, np.ndarray] | None:
    """The first numeric column among ``names`` holding ±Inf, with its values; else None."""
    for name in names:
        col = frame[name]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        arr = col.to_numpy(dtype=float, na_value=np.nan)
        if np.isinf(arr).any():
            return name, arr
    return None


def _check_finite(values: np.ndarray, what: str) -> None:
    """Values computed from the data (a transformed response or predictor) must be finite."""
    values = np.asarray(values, dtype=float)
    if values.size and not np.isfinite(values).all():
        raise DataError(f"NA/NaN/Inf in {what}: {nonfinite_detail(values)} after evaluating the "
                        "formula (e.g. log(0) or a division by zero); change the transformation or "
                        "drop those rows.")


def _check_finite_inputs(data: pd.DataFrame, used: list[str], extra: dict[str, np.ndarray]) -> None:
    """±Inf in a column the model uses, and invalid weights: errors (NaN means missing)."""
    found = infinite_column(data, used)
    if found is not None:
        name, arr = found
        raise DataError(f"Inf in {name!r}: {nonfinite_detail(arr, count_nan=False)}; NaN is treated "
                        "as missing, but an infinite value cannot be fitted. Replace or drop those rows.")
    for label, arr in extra.items():
        if np.isinf(arr).any():
            raise DataError(f"Inf in the {label}: {nonfinite_detail(arr, count_nan=False)}; "
                            f"the {label} must be finite.")
    w = extra.get("weights")
    if w is not None and (w < 0).any():
        neg = np.flatnonzero(w < 0)
        raise DataError(f"weights must be non-negative: {len(neg)} negative value"
                        f"{'s' if len(neg) != 1 else ''} (rows {', '.join(map(str, neg[:5]))}"
                        f"{', ...' if len(neg) > 5 else ''}, e.g. {w[neg[0]]:g})")


def _numeric_response(expr: str, frame: pd.DataFrame) -> np.ndarray:
    if re.fullmatch(r"`[^`]*`", expr.strip()):
        expr = unquote(expr.strip())
    if expr in frame.columns:
        col = frame[expr]
        if isinstance(col.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
        ):
            kind = "categorical" if isinstance(col.dtype, pd.CategoricalDtype) else str(col.dtype)
            raise DataError(
                f"response {expr!r} is not numeric (it is {kind}); a linear mixed model needs a "
                "numeric response. For a binary or count response use mm.glmer with a family."
            )
        return col.to_numpy(dtype=float)
    if re.match(r"cbind\s*\(", expr):
        raise DataError(f"response {expr!r}: cbind(successes, failures) is a binomial response; fit it "
                        "with mm.glmer(..., family='binomial')")
    try:
        mats = formulaic.model_matrix(f"{to_formulaic(expr)} ~ 1", frame, na_action="ignore")
    except FormulaError:
        raise
    except Exception as err:  # formulaic's own errors (an unknown function or name): say where
        raise DataError(f"cannot evaluate the response {expr!r}: {err}") from err
    lhs = mats.lhs
    if lhs.shape[1] != 1:
        raise DataError(f"response {expr!r} gives {lhs.shape[1]} columns; it must give one numeric column")
    return np.asarray(lhs, dtype=float).ravel()


def _missing_values(col: pd.Series) -> np.ndarray | None:
    """Which values of a column are missing, or None when none is (NumPy on the common dtypes:
    pandas' isna costs more than the rest of a small design)."""
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return None
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        na = np.isnan(col.to_numpy())
    elif isinstance(dtype, pd.CategoricalDtype):
        na = np.asarray(col.array.codes) < 0
    else:
        na = np.asarray(col.isna().to_numpy(), dtype=bool)
    return na if na.any() else None


def _compact(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber codes 0..k-1 over the values that occur, in their order; returns (codes, used)."""
    if size <= 50_000_000:  # counting beats sorting for a bounded code range
        present = np.bincount(codes, minlength=size) > 0
        used = np.flatnonzero(present)
        remap = np.cumsum(present) - 1
        return remap[codes], used
    used, inverse = np.unique(codes, return_inverse=True)
    return inverse.astype(np.int64), used


def factor_codes(frame: pd.DataFrame, group: str) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and level labels of a grouping factor (``a`` or an interaction ``a:b``).

    Unused levels are dropped, as lme4 does; an interaction's levels are ordered with the
    first factor slowest, as R's ``a:b``.
    """
    parts = [unquote(p.strip()) for p in split_top(group, ":")]
    codes = None
    labels: list[np.ndarray] = []
    for part in parts:
        col = frame[part]
        if isinstance(col.dtype, pd.CategoricalDtype):
            c = np.asarray(col.array.codes).astype(np.int64)
            cats = col.array.categories
            if len(parts) == 1 and cats.dtype == "str":
                # string levels: the categories themselves when all are used (no new Index)
                compact, used = _compact(c, len(cats))
                return compact, (cats if len(used) == len(cats) else cats[used])
            lev = np.asarray(cats.astype(str), dtype=object)
        else:
            values = col.to_numpy()
            if pd.api.types.is_numeric_dtype(col):
                lev_values, c = np.unique(values, return_inverse=True)
                lev = np.array([fmt_level(v) for v in lev_values], dtype=object)
            else:
                lev, c = np.unique(values.astype(str), return_inverse=True)
                lev = lev.astype(object)
                if len(lev) > 1 and all(str(v).lstrip("-").isdigit() for v in lev):
                    # integer-like labels in numeric order (1, 2, ..., 10), as R's factor of integers
                    order = np.argsort([int(v) for v in lev], kind="stable")
                    rank = np.empty_like(order)
                    rank[order] = np.arange(len(order))
                    lev, c = lev[order], rank[c]
            c = c.astype(np.int64)
        if codes is None:
            codes, labels = c, [lev]
        else:
            codes = codes * len(lev) + c
            labels.append(lev)
    sizes = [len(lev) for lev in labels]
    compact, used = _compact(codes, int(np.prod(sizes, dtype=np.int64)))
    if len(parts) == 1:
        return compact, pd.Index(labels[0][used].astype(str))
    # decode the combined codes back into their parts
    pieces = []
    rest = used.copy()
    for lev, size in zip(reversed(labels), reversed(sizes)):
        pieces.append(lev[rest % size].astype(str))
        rest //= size
    names = pieces[-1]
    for piece in reversed(pieces[:-1]):
        names = np.char.add(np.char.add(names.astype(str), ":"), piece.astype(str))
    return compact, pd.Index(names.astype(str))


def fmt_level(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def aliased_columns(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Columns that are (numerically) linear combinations of earlier ones, as R's lm pivoting finds."""
    kept: list[np.ndarray] = []
    aliased = []
    columns = np.asfortranarray(X, dtype=float)  # contiguous columns: strided ones are ~10x slower
    for j in range(columns.shape[1]):
        v = columns[:, j].copy()
        norm = np.linalg.norm(v)
        if norm == 0.0:
            aliased.append(j)
            continue
        for _ in range(2):  # Gram-Schmidt twice: stable enough for a rank decision
            for q in kept:
                v = v - (q @ v) * q
        rest = np.linalg.norm(v)
        if rest < tol * norm:
            aliased.append(j)
        else:
            kept.append(v / rest)
    return aliased


def unique_names(names: list[str]) -> list[str]:
    """Repeated names made unique as R's ``make.unique``: ``g``, ``g.1``, ``g.2``."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out


# formulaic's spec of an intercept-only part holds no data (no variables, no encoder state):
# made once and reused, it saves formulaic's parse and materialization on every fit (small fits
# repeated thousands of times: bootstrap, simulation)
_INTERCEPT_SPEC: list = []


def design_matrix(expr: str, frame: pd.DataFrame, what: str):
    if expr.strip() == "1" and _INTERCEPT_SPEC:
        return formulaic.ModelMatrix(pd.DataFrame({"Intercept": np.ones(len(frame))}, index=frame.index),
                                     spec=_INTERCEPT_SPEC[0])
    try:
        mat = formulaic.model_matrix(to_formulaic(expr), frame, na_action="ignore")
        if expr.strip() == "1" and not mat.model_spec.required_variables:
            _INTERCEPT_SPEC.append(mat.model_spec)
        return mat
    except FormulaError:
        raise
    except Exception as err:  # formulaic's own errors: say which part of the model failed
        raise DataError(f"cannot build the {what} '{expr}': {err}") from err


def model_columns(expr: str, frame: pd.DataFrame, what: str) -> tuple[np.ndarray, list[str], object]:
    """``(values, formulaic's column names, spec)`` of ``expr`` on ``frame``: from
    :func:`~mixedmodels.spec.fastdesign.fast_model_matrix` where the formula is in its
    vocabulary (the spec then made on first use), else from formulaic (:func:`design_matrix`)."""
    fast = fast_model_matrix(to_formulaic(expr), frame)
    if fast is not None:
        return fast[0], fast[1], LazyModelSpec(to_formulaic(expr), frame)
    mat = design_matrix(expr, frame, what)
    return np.asarray(mat, dtype=float), list(mat.columns), mat.model_spec


def _ordered_to_poly(expr: str, frame: pd.DataFrame, dtypes: dict | None = None) -> str:
    """Ordered categoricals get polynomial contrasts, as R's default ``contr.poly``."""
    for col, dtype in (frame.dtypes.items() if dtypes is None else dtypes.items()):
        if isinstance(dtype, pd.CategoricalDtype) and dtype.ordered:
            # a bare use of the column, not one already inside C(...)
            expr = re.sub(rf"(?<![\w.(]){re.escape(col)}(?![\w.(])", f"C({col}, contr.poly)", expr)
    return expr


# --- the design ------------------------------------------------------------------------------

def build_design(
    formula: str | ModelFormula,
    data: pd.DataFrame,
    *,
    weights: np.ndarray | str | None = None,
    offset: np.ndarray | str | None = None,
    na_action: str = "drop",
    response: Callable[[str, pd.DataFrame], np.ndarray] | None = None,
    check_levels: bool = True,
    require_random: bool = True,
    expand_doublebar: str = "lme4",
) -> ModelDesign:
    """Evaluate a parsed formula on data.

    Parameters
    ----------
    formula : str or ModelFormula
    data : pandas.DataFrame
    weights : array-like or column name, optional
        Prior weights, one per row of ``data``.
    offset : array-like or column name, optional
        Added to the offsets written in the formula.
    na_action : {"drop", "raise"}
        Drop rows with a missing value in any variable the model uses (counted and warned),
        or raise.
    response : callable, optional
        ``response(expr, frame) -> array``; the default requires a numeric response.
    check_levels : bool
        lme4's identifiability checks on the random-effects terms (LMMs).
    require_random : bool
        Raise a :class:`~mixedmodels.exceptions.DataError` when the formula has no
        random-effects term, as lme4 does.
    expand_doublebar : {"lme4", "afex"}
        What ``(lhs || g)`` means. ``"lme4"`` (the default, lme4's model): ``(1 | g)`` when
        ``lhs`` has an intercept, plus one ordinary term ``(0 + t | g)`` per term ``t`` of
        ``lhs``, so a factor keeps a full covariance over its indicator columns. ``"afex"``
        (afex's ``expand_re = TRUE``): one uncorrelated scalar term per column of ``lhs``'s
        model matrix, factor contrasts included. The two agree when every term is numeric.

    Returns
    -------
    ModelDesign
    """
    if isinstance(formula, str):
        dot = dot_position(formula)
        if dot is not None and isinstance(data, pd.DataFrame):
            cols = ", ".join(str(c) for c in list(data.columns)[:12])
            raise FormulaError("'.' (all other columns) is not supported; list the columns "
                               f"explicitly (the data has {cols})", formula, dot)
    if isinstance(formula, str):
        quoted = quote_names(formula, data.columns) if isinstance(data, pd.DataFrame) else formula
        spec = replace(parse_formula(quoted), text=formula) if quoted != formula else parse_formula(formula)
    else:
        spec = formula
    check_data_frame(data)
    if na_action not in ("drop", "raise"):
        raise ValueError(f"na_action must be 'drop' or 'raise', got {na_action!r}")
    if expand_doublebar not in ("lme4", "afex"):
        raise ValueError(f"expand_doublebar must be 'lme4' or 'afex', got {expand_doublebar!r}")
    if spec.response is None:
        raise FormulaError("the formula needs a response on the left of '~'", spec.text, 0)
    if require_random and not spec.random:
        _no_random_terms(spec)
    used = _check_columns(spec, data)
    # each used column looked up once (a pandas lookup is tens of µs: most of a small design);
    # with duplicated names, the checks below raise on the data itself
    cols = {c: data[c] for c in used} if data.columns.is_unique else None
    dtypes = None if cols is None else {c: v.dtype for c, v in cols.items()}
    _check_column_types(spec, data, used, (weights, offset), dtypes)
    cols = data if cols is None else cols

    extra_cols: dict[str, np.ndarray] = {}
    for label, value in (("weights", weights), ("offset", offset)):
        if value is None:
            continue
        if isinstance(value, str):
            if value not in data.columns:
                raise DataError(f"{label} column {value!r} is not in the data")
            if not pd.api.types.is_numeric_dtype(data[value]):
                raise DataError(f"{label} column {value!r} must be numeric (it is {data[value].dtype})")
            arr = data[value].to_numpy(dtype=float)
        else:
            arr = np.asarray(value, dtype=float).ravel()
            if len(arr) != len(data):
                raise DataError(f"{label} has {len(arr)} values but the data has {len(data)} rows")
        extra_cols[label] = arr
    _check_finite_inputs(cols, used, extra_cols)  # type: ignore[arg-type]

    missing = np.zeros(len(data), dtype=bool)
    per_col = {}
    for c in used:
        na = _missing_values(cols[c])
        if na is not None:
            missing |= na
            per_col[c] = int(na.sum())
    for label, arr in extra_cols.items():
        missing |= np.isnan(arr)
        if np.isnan(arr).any():
            per_col[label] = int(np.isnan(arr).sum())
    n_dropped = int(missing.sum())
    if n_dropped:
        detail = ", ".join(f"{c}: {k}" for c, k in per_col.items())
        if na_action == "raise":
            raise DataError(f"{n_dropped} rows have missing values in the model's variables ({detail}); "
                            "na_action='raise' stops here. Use na_action='drop' to drop them.")
        warnings.warn(
            f"{n_dropped} of {len(data)} rows dropped for missing values ({detail}). "
            "The fit stays unbiased if a missing response depends only on observed data (MAR); "
            "rows dropped for missing predictors need them missing completely at random, "
            "otherwise impute them. na_action='raise' makes this an error.",
            MissingDataWarning, stacklevel=3)
    n_zero = 0
    if "weights" in extra_cols:
        zero = (extra_cols["weights"] == 0) & ~missing
        n_zero = int(zero.sum())
        if n_zero:  # lm/lmer: a zero prior weight removes the row from the fit
            warnings.warn(
                f"{n_zero} of {len(data)} rows have prior weight 0; they are dropped from the fit "
                "(as absent rows: not counted in the observations or the residual df).",
                MissingDataWarning, stacklevel=3)
            missing = missing | zero
            n_dropped += n_zero
    if n_dropped:
        frame = data.loc[~missing, used]
    elif list(data.columns) == used:
        frame = data.copy(deep=False)  # copy-on-write: later changes to data do not reach it
    else:
        frame = data.take([data.columns.get_loc(c) for c in used], axis=1)
    if len(frame) == 0:
        raise DataError("no rows left after dropping rows with missing values or zero weights"
                        if n_dropped else "the data has no rows")
    for label in extra_cols:
        extra_cols[label] = extra_cols[label][~missing]

    y = (response or _numeric_response)(spec.response, frame)
    _check_finite(y, f"the response {spec.response!r}")

    X, names, fixed_spec = model_columns(_ordered_to_poly(spec.fixed, frame, dtypes), frame,
                                         "fixed-effects design")
    names = [r_column_name(c) for c in names]
    for j, name in enumerate(names):
        _check_finite(X[:, j], f"the fixed-effects column {name!r}")
    dropped: list[str] = []
    if X.shape[1]:
        aliased = aliased_columns(X)
        if aliased:
            dropped = [names[j] for j in aliased]
            keep = [j for j in range(X.shape[1]) if j not in aliased]
            X = X[:, keep]
            names = [names[j] for j in keep]
            warnings.warn(
                f"fixed-effect model matrix is rank deficient: dropping {len(dropped)} column(s) "
                f"({', '.join(dropped)}), a linear combination of the others. Check for duplicated "
                "or collinear predictors, or empty cells in an interaction.",
                RankDeficiencyWarning, stacklevel=3)

    offset_total = None
    if spec.offsets or "offset" in extra_cols:
        offset_total = np.zeros(len(frame))
        for expr in spec.offsets:
            offset_total += model_columns(f"0 + {expr}", frame, "offset")[0].ravel()
        if "offset" in extra_cols:
            offset_total += extra_cols["offset"]
        _check_finite(offset_total, "the offset")

    w = extra_cols.get("weights")
    terms = _random_terms(spec, frame, len(y), check_levels, expand_doublebar)
    extra = {"zero_weight_rows": n_zero} if n_zero else {}
    if expand_doublebar != "lme4" and any(not t.correlated for t in spec.random):
        extra["expand_doublebar"] = expand_doublebar  # for designs rebuilt from the formula
    return ModelDesign(spec, y, X, names, terms, frame, w, offset_total, n_dropped, dropped,
                       fixed_spec, spec.response, extra)


def double_bar_terms(lhs: str) -> list[str]:
    """The terms lme4 writes ``(lhs || g)`` as (its ``expandDoubleVerts``): ``"1"`` when ``lhs``
    has an intercept, then ``"0 + t"`` for each of its term labels ``t``, each its own correlated
    term. A numeric ``x`` is one column, so ``(x || g)`` is ``(1 | g) + (0 + x | g)``; a factor
    ``f`` keeps a full covariance over all its indicator columns: ``(1 | g) + (0 + f | g)``."""
    try:
        parsed = formulaic.Formula(to_formulaic(lhs))
    except Exception as err:
        raise DataError(f"cannot read the random-effects formula '{lhs}': {err}") from err
    intercept, labels = False, []
    for term in parsed:
        if str(term) == "1":
            intercept = True
            continue
        labels.append(":".join(_factor_text(f) for f in term.factors).replace(" ** ", "^"))
    return (["1"] if intercept else []) + [f"0 + {label}" for label in labels]


def _factor_text(factor) -> str:
    """A formulaic factor written back as formula text (names that need it in backticks)."""
    text = str(factor.expr)
    if factor.eval_method.value == "lookup" and not (text.isidentifier() and not keyword.iskeyword(text)):
        return f"`{text}`"
    return text


def _random_terms(spec: ModelFormula, frame: pd.DataFrame, n: int, check_levels: bool,
                  expand_doublebar: str = "lme4") -> list[ReTerm]:
    raw: list[ReTerm] = []
    for term in spec.random:
        if term.correlated or expand_doublebar == "afex":
            subterms = [(term.lhs, term.correlated)]
        else:  # lme4: (1 | g) + (0 + t | g) per term label t, each an ordinary term
            subterms = [(lhs, True) for lhs in double_bar_terms(term.lhs)]
            if not subterms:
                raise FormulaError(f"random-effects term ({term.lhs} || {term.group}) has no columns",
                                   spec.text)
        for lhs, correlated in subterms:
            raw.extend(_evaluate_term(spec, term, lhs, correlated, frame, n, check_levels))
    # lme4 orders terms by number of levels, largest first (stable), then names them uniquely
    order = _sorted_term_order(raw)
    terms = [raw[i] for i in order]
    for term, name in zip(terms, unique_names([unquote(t.group) for t in terms])):
        term.name = name
    return terms


def _evaluate_term(spec: ModelFormula, term, lhs: str, correlated: bool, frame: pd.DataFrame, n: int,
                   check_levels: bool) -> list[ReTerm]:
    """The design terms of ``(lhs | term.group)``; an uncorrelated one (afex's expansion of
    ``||``) is split into one scalar term per column."""
    shown = f"({lhs} | {term.group})" if lhs != term.lhs else str(term)
    kind = getattr(term, "structure", "us")
    if kind == "us":
        values, columns, model_spec = model_columns(lhs, frame, f"random-effects term {shown}")
    else:  # the structures read formulaic's spec
        mat = design_matrix(lhs, frame, f"random-effects term {shown}")
        values, columns, model_spec = np.asarray(mat, dtype=float), list(mat.columns), mat.model_spec
    columns = [r_column_name(c) for c in columns]
    for j, col in enumerate(columns):
        _check_finite(values[:, j], f"column {col!r} of the random-effects term {shown}")
    if values.shape[1] == 0:
        raise FormulaError(f"random-effects term {shown} has no columns", spec.text)
    if kind != "us":
        values, columns, structure, model_spec = structure_of(kind, str(term), lhs, values, columns,
                                                              model_spec, spec.text)
    else:
        structure = None
    codes, levels = factor_codes(frame, term.group)
    nlev = len(levels)
    if nlev < 2:
        raise DataError(
            f"grouping factor {term.group!r} has only {nlev} level; a random effect needs at "
            "least 2 (in practice 5 or more) groups. Drop the term or use a fixed effect.")
    if check_levels and nlev >= n:
        raise DataError(
            f"grouping factor {term.group!r} has {nlev} levels for {n} observations: each "
            "group has one observation, so its random effect is confounded with the residual. "
            "Drop the term.")
    if check_levels and nlev * values.shape[1] >= n and not skips_size_check(kind):
        raise DataError(
            f"term {shown} has {nlev * values.shape[1]} random effects for {n} observations; "
            "the random-effects parameters and the residual variance are unidentifiable. "
            "Simplify the term.")
    if correlated or values.shape[1] == 1 or structure is not None:
        pieces = [(values, columns)]
    else:  # afex's (a + b || g): one scalar term per column
        pieces = [(values[:, [j]], [columns[j]]) for j in range(values.shape[1])]
    correlated = correlated and kind != "diag"
    group = unquote(term.group)
    return [ReTerm(group, group, lhs, cols, levels,
                   ReTermMatrix(codes, np.ascontiguousarray(vals), nlev, correlated=correlated,
                                structure=structure),
                   model_spec)
            for vals, cols in pieces]
