"""Pass 1 and what every chunk needs from it: the level sets, contrasts and column specs.

Pass 1 (:func:`scan`) runs on the engine through narwhals: the row count, the missing values
per column, the infinite values, and the distinct values of every factor (grouping factors,
their interactions' combinations, categorical predictors). :func:`build_template` then
evaluates the formula once on a small *skeleton* frame holding every level, with the in-memory
:func:`~mixedmodels.spec.design.build_design`, so the fixed-effects columns, contrasts and term
columns are exactly those of an in-memory fit; the level order of each grouping factor comes
from :func:`~mixedmodels.spec.design.factor_codes` on its distinct values, as in memory.

:class:`Template` turns a chunk of rows (a pandas frame) into a
:class:`~mixedmodels.core.backends.RowChunk` with these fixed levels, so every chunk agrees.
"""

from __future__ import annotations

import difflib
import math
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np
import pandas as pd

from ..core.backends import RowChunk
from ..core.crossproducts import BlockedCrossproducts, TermShape
from ..core.lazy import lazy_import
from ..core.terms import ReTermMatrix
from ..exceptions import DataError
from ..spec.covstruct import skips_size_check
from ..spec.design import (
    ReTerm,
    build_design,
    design_matrix,
    factor_codes,
    nonfinite_detail,
    r_column_name,
    split_top,
    to_formulaic,
    unique_names,
)
from ..spec.formula import ModelFormula, parse_formula, quote_names, unquote
from .partial import ColumnMoments, Partial, ValueMoments

formulaic = lazy_import("formulaic")  # imported at the first streamed fit, not at import

__all__ = ["Scan", "Template", "build_template", "scan"]

# transforms whose state (knots, bases) formulaic would take from one chunk, not all rows; scale()
# and center() get theirs from a pass over all the rows (Template.fix_stateful)
_STATEFUL = re.compile(r"(?<![\w.])(standardize|poly|bs|cr|cc|te)\s*\(")
_MOMENT_TRANSFORM = re.compile(r"^(scale|center)\((.*)\)$", re.S)


@dataclass
class Scan:
    """Pass 1's results.

    Attributes
    ----------
    n_total : int
        Rows in the source.
    n_missing : int
        Rows with a missing value (null or NaN) in a column the model uses.
    per_column : dict
        Missing values per column (only columns with some).
    distinct : dict
        Factor column (or tuple of an interaction's columns) → its distinct values over the
        complete rows, as a pandas frame.
    used : list of str
        The columns the model reads.
    """

    n_total: int
    n_missing: int
    per_column: dict[str, int]
    distinct: dict[tuple[str, ...], pd.DataFrame]
    used: list[str]


def _group_parts(group: str) -> tuple[str, ...]:
    return tuple(unquote(p.strip()) for p in split_top(group, ":"))


def _check_formula_columns(spec: ModelFormula, columns: list[str], where: str) -> list[str]:
    used = []
    for name in spec.variables:
        if name in columns:
            used.append(name)
        elif name not in ("pi", "e", "True", "False", "None", "np", "inf", "nan"):
            close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
                f"; the data has {', '.join(repr(c) for c in columns[:12])}" + (", ..." if len(columns) > 12 else "")
            raise DataError(f"column {name!r} in the formula is not in the data ({where}){hint}")
    return used


def scan(spec: ModelFormula, source, extra: Iterable[str] = ()) -> Scan:
    """Pass 1 over a :class:`~mixedmodels.sources.engines.Source` (one aggregation query and
    one ``DISTINCT`` per factor, run by the engine); ``extra`` names columns used besides the
    formula's (``weights=``, ``offset=``).

    Raises
    ------
    DataError
        A formula column the data lacks, or an infinite value in a numeric column.
    """
    import narwhals as nw

    lf = source.lazy()
    schema = dict(lf.collect_schema())
    columns = [str(c) for c in schema]
    used = _check_formula_columns(spec, columns, source.description)
    for name in extra:
        if name not in columns:
            raise DataError(f"column {name!r} (weights= or offset=) is not in the data ({source.description})")
        if name not in used:
            used.append(name)
    source.check_columns(used)
    floats = [c for c in used if schema[c].is_float()]
    numeric = {c for c in used if schema[c].is_numeric()}

    def missing(c: str):
        return (nw.col(c).is_null() | nw.col(c).is_nan()) if c in floats else nw.col(c).is_null()

    aggs = [nw.len().alias("n_total")]
    if used:
        any_missing = nw.any_horizontal(*[missing(c) for c in used], ignore_nulls=True)
        aggs.append(any_missing.cast(nw.Int64).sum().alias("n_missing"))
    aggs += [missing(c).cast(nw.Int64).sum().alias(f"na_{i}") for i, c in enumerate(used)]
    aggs += [(nw.col(c).abs() == math.inf).cast(nw.Int64).sum().alias(f"inf_{i}") for i, c in enumerate(floats)]
    counts = lf.select(*aggs).collect().to_pandas().iloc[0]
    for i, c in enumerate(floats):
        k = int(counts[f"inf_{i}"] or 0)
        if k:
            raise DataError(f"Inf in {c!r}: {k} infinite value{'s' if k != 1 else ''} in {source.description}; "
                            "NaN is treated as missing, but an infinite value cannot be fitted. Replace or "
                            "drop those rows.")
    per_column = {c: int(counts[f"na_{i}"] or 0) for i, c in enumerate(used) if counts[f"na_{i}"]}
    n_missing = int(counts["n_missing"] or 0) if used else 0

    factor_sets: list[tuple[str, ...]] = []
    for term in spec.random:
        parts = _group_parts(term.group)
        if parts not in factor_sets:
            factor_sets.append(parts)
    # numbers used as factors, C(x) or factor(x), need their distinct values too
    as_factor = {unquote(m) for m in re.findall(r"(?<![\w.])(?:C|factor)\(\s*(`[^`]*`|[\w.]+)", spec.text)}
    for c in used:
        if (c not in numeric or c in as_factor) and (c,) not in factor_sets:
            factor_sets.append((c,))
    complete = lf
    if n_missing:
        complete = lf.filter(~nw.any_horizontal(*[missing(c) for c in used], ignore_nulls=True))
    distinct = {}
    for parts in factor_sets:
        table = complete.select(*parts).unique().collect().to_pandas()
        for c in parts:
            if isinstance(table[c].dtype, pd.CategoricalDtype):
                table[c] = table[c].astype(object)
        distinct[parts] = table.reset_index(drop=True)
    return Scan(int(counts["n_total"]), n_missing, per_column, distinct, used)


def _skeleton(scan_: Scan, size_hint: int = 3) -> pd.DataFrame:
    """A small frame with every level of every factor (and uniform(1, 2) numbers elsewhere, valid
    inputs for log and sqrt): the formula evaluated on it has all the columns of the full data."""
    single = {parts[0]: table[parts[0]] for parts, table in scan_.distinct.items() if len(parts) == 1}
    for parts, table in scan_.distinct.items():
        for c in parts:
            if c not in single:
                single[c] = pd.Series(table[c].drop_duplicates().to_numpy())
    m = max([size_hint] + [len(v) for v in single.values()])
    rng = np.random.default_rng(20240601)
    cols = {}
    for c in scan_.used:
        if c in single:
            values = single[c].to_numpy()
            cols[c] = np.resize(values, m) if len(values) else values
        else:
            cols[c] = rng.uniform(1.0, 2.0, m)
    return pd.DataFrame(cols)


@dataclass
class _GroupMap:
    parts: tuple[str, ...]
    index: pd.Index
    codes: np.ndarray


class Template:
    """The formula fixed by pass 1: turns chunks of rows into crossproducts that agree.

    Attributes
    ----------
    design : ModelDesign
        The design built on the skeleton (its fixed-effects spec and term specs are used).
    terms : list of ReTerm
        The random-effects terms with the levels of all the rows, largest first.
    fixef_names : list of str
        All fixed-effects columns (before dropping aliased ones).
    """

    def __init__(self, spec: ModelFormula, scan_: Scan, design, terms: list[ReTerm], maps: list[_GroupMap],
                 chunk_rows: int):
        self.spec, self.used, self.design, self.terms, self.maps = spec, scan_.used, design, terms, maps
        self.chunk_rows = chunk_rows
        self.weights_column: str | None = None  # set by the streamed designs
        self.offset_column: str | None = None
        self.progress = None  # progress(total, desc) -> bar: the passes' bars on this machine
        self.reporter = None  # the bar of the pass running here
        self.fixed_spec = design.fixed_spec
        skel = design.frame
        self.fixef_names = [r_column_name(c) for c in self.fixed_spec.get_model_matrix(skel.iloc[:2]).columns]
        self.p = len(self.fixef_names)
        self.shapes = [TermShape(t.nlevels, len(t.columns), t.matrix.correlated, t.matrix.structure)
                       for t in terms]
        resp = spec.response.strip()
        self.response_column = unquote(resp) if re.fullmatch(r"`[^`]*`", resp) or resp in self.used else None

    # -- one chunk -----------------------------------------------------------------------------
    def _response(self, frame: pd.DataFrame) -> np.ndarray:
        if self.response_column is not None:
            return frame[self.response_column].to_numpy(dtype=float)
        lhs = formulaic.model_matrix(f"{to_formulaic(self.spec.response)} ~ 1", frame, na_action="ignore").lhs
        return np.asarray(lhs, dtype=float).ravel()

    def complete_rows(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """The rows of ``frame`` without a missing value in a used column (engines' string and
        dictionary dtypes as object columns, which formulaic knows), and how many were dropped."""
        for c in self.used:
            dtype = frame[c].dtype
            types = pd.api.types
            plain = dtype == np.dtype(object) or types.is_numeric_dtype(dtype) or types.is_bool_dtype(dtype)
            if not plain:
                frame = frame.assign(**{c: frame[c].astype(object)})
        na = frame[self.used].isna().any(axis=1).to_numpy() if self.used else np.zeros(len(frame), bool)
        dropped = int(na.sum())
        return (frame.loc[~na] if dropped else frame), dropped

    def design_rows(self, frame: pd.DataFrame, first_row: int = 0) -> tuple[np.ndarray, list, list]:
        """X, and per term its level codes and values, of complete rows (levels of pass 1)."""
        X = np.asarray(self.fixed_spec.get_model_matrix(frame), dtype=float)
        for j, name in enumerate(self.fixef_names):
            _check_finite(X[:, j], f"the fixed-effects column {name!r}", first_row)
        codes, values = [], []
        for term, gmap in zip(self.terms, self.maps):
            vals = np.ascontiguousarray(np.asarray(term.model_spec.get_model_matrix(frame), dtype=float))
            for j, col in enumerate(term.columns):
                _check_finite(vals[:, j], f"column {col!r} of the random-effects term ({term.lhs} | {term.group})",
                              first_row)
            if len(gmap.parts) == 1:
                pos = gmap.index.get_indexer(frame[gmap.parts[0]])
            else:
                pos = gmap.index.get_indexer(pd.MultiIndex.from_frame(frame[list(gmap.parts)]))
            if (pos < 0).any():  # cannot happen when pass 1 saw these rows
                raise DataError(f"a level of {term.group!r} in the rows of pass 2 was not seen in pass 1; the "
                                "source changed between the passes")
            codes.append(gmap.codes[pos])
            values.append(vals)
        return X, codes, values

    def row_chunk(self, frame: pd.DataFrame, first_row: int = 0) -> tuple[RowChunk | None, int]:
        """The RowChunk of the complete rows of ``frame`` and the number of rows dropped."""
        frame, dropped = self.complete_rows(frame)
        if len(frame) == 0:
            return None, dropped
        y = self._response(frame)
        _check_finite(y, f"the response {self.spec.response!r}", first_row)
        off = self.offset_values(frame, first_row)
        if off is not None:  # an LMM with an offset fits y − offset
            y = y - off
        X, codes, values = self.design_rows(frame, first_row)
        return RowChunk(X, y, self.weight_values(frame, first_row), codes, values), dropped

    def weight_values(self, frame: pd.DataFrame, first_row: int = 0) -> np.ndarray | None:
        """The prior weights of complete rows (``weights=`` column), checked as in memory."""
        if self.weights_column is None:
            return None
        w = frame[self.weights_column].to_numpy(dtype=float)
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            raise DataError(f"weights column {self.weights_column!r} has {int(bad.sum())} negative or infinite "
                            f"values (of the chunk starting at row {first_row}); weights must be >= 0")
        return w

    def offset_values(self, frame: pd.DataFrame, first_row: int = 0) -> np.ndarray | None:
        """The formula's ``offset()`` terms plus the ``offset=`` column, or None without either."""
        if not self.spec.offsets and self.offset_column is None:
            return None
        total = np.zeros(len(frame))
        for expr in self.spec.offsets:
            total += np.asarray(design_matrix(f"0 + {expr}", frame, "offset"), dtype=float).ravel()
        if self.offset_column is not None:
            total += frame[self.offset_column].to_numpy(dtype=float)
        _check_finite(total, "the offset", first_row)
        return total

    def pieces(self, frames: Iterable[pd.DataFrame]) -> Iterable[tuple[pd.DataFrame, int]]:
        """The frames cut into chunks of at most ``chunk_rows`` rows, with their first row."""
        first = 0
        for frame in frames:
            for start in range(0, len(frame), self.chunk_rows):
                piece = frame.iloc[start:start + self.chunk_rows]
                yield piece, first
                first += len(piece)
                if self.reporter is not None:
                    self.reporter.update(len(piece))

    @contextmanager
    def reporting(self, source, rows: int, desc: str):
        """A progress bar over one pass, labelled ``desc`` and its unit: the rows, updated here
        as the chunks are read, for sources read on this machine; the partitions (Dask) or the
        tasks (Spark) done, counted on the client by the source (the template travels to the
        workers without a bar)."""
        unit = source.unit
        bar = self.progress(source.steps(rows), f"{desc} ({unit})") if self.progress is not None else None
        here = unit == "rows"
        self.reporter = bar if here else None
        if not here:  # a bar that cannot show ("auto" without a terminal) needs no tracking on the client
            source.reporter = bar if getattr(bar, "enabled", True) else None
        try:
            yield
        finally:
            if bar is not None:
                bar.close()
            self.reporter = None
            if not here:
                source.reporter = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["progress"] = state["reporter"] = None  # bars stay with the process that shows them
        return state

    def partial(self, frames: Iterable[pd.DataFrame]) -> Partial:
        """Pass 2 over some frames (a partition, a stream of record batches)."""
        seen = [0, 0]
        logw = [0.0]
        xm = [ColumnMoments.empty(self.p)]
        tm = [ColumnMoments.empty(len(t.columns)) for t in self.terms]

        def chunks():
            for piece, first in self.pieces(frames):
                chunk, dropped = self.row_chunk(piece, first)
                seen[0] += len(piece)
                seen[1] += dropped
                if chunk is None:
                    continue
                if chunk.weights is not None:
                    logw[0] += float(np.log(chunk.weights[chunk.weights > 0]).sum())
                xm[0] = xm[0] + ColumnMoments.of(chunk.X)
                for k, vals in enumerate(chunk.values):
                    tm[k] = tm[k] + ColumnMoments.of(vals)
                yield chunk

        cp = BlockedCrossproducts.from_chunks(self.shapes, self.p, chunks())
        return Partial(cp, seen[0], seen[1], xm[0], tm, logw[0])

    def __call__(self, frames: Iterable[pd.DataFrame]) -> Partial:
        return self.partial(frames)

    # -- stateful transforms -------------------------------------------------------------------
    def stateful(self) -> list[tuple[dict, str, str]]:
        """``(state, kind, argument)`` of every scale()/center() in the fixed and random parts:
        formulaic's state dicts, learnt on the skeleton until :meth:`fix_stateful` sets them."""
        found = []
        for spec in [self.fixed_spec] + [t.model_spec for t in self.terms]:
            for key, state in (getattr(spec, "transform_state", None) or {}).items():
                match = _MOMENT_TRANSFORM.match(key.replace(" ", ""))
                if match and isinstance(state, dict):
                    args = split_top(match.group(2), ",")
                    if len(args) != 1:
                        raise DataError(f"{key} on a streamed source: only the one-argument scale(x) and "
                                        "center(x) are supported out of core")
                    found.append((state, match.group(1), args[0].strip()))
        return found

    def fix_stateful(self, source) -> bool:
        """Set scale()/center() to the mean and standard deviation of all complete rows (one
        pass), as in memory; False when the formula has none."""
        found = self.stateful()
        if not found:
            return False
        exprs = sorted({arg for _, _, arg in found})
        total = source.partial(self.used, _TransformMoments(self, exprs), self.chunk_rows)
        moments = dict(zip(exprs, total.moments))
        for state, kind, arg in found:
            m = moments[arg]
            state["center"] = np.float64(m.mean)
            state["scale"] = np.float64(m.sd(state.get("ddof", 1))) if kind == "scale" else None
        return True


class _MomentSet:
    def __init__(self, moments: list[ValueMoments], rows: int = 0):
        self.moments, self.rows = moments, rows

    def __add__(self, other: "_MomentSet") -> "_MomentSet":
        return _MomentSet([a + b for a, b in zip(self.moments, other.moments)], self.rows + other.rows)


class _TransformMoments:
    """A pass's chunk function: the moments of scale()/center() arguments over complete rows."""

    def __init__(self, template: Template, exprs: list[str]):
        self.template, self.exprs = template, exprs

    def __call__(self, frames: Iterable[pd.DataFrame]) -> _MomentSet:
        total = _MomentSet([ValueMoments(0, 0.0, 0.0) for _ in self.exprs])
        for piece, _ in self.template.pieces(frames):
            frame, _ = self.template.complete_rows(piece)
            if len(frame) == 0:
                continue
            values = []
            for expr in self.exprs:
                name = unquote(expr)
                col = frame[name] if name in frame.columns else design_matrix(f"0 + {expr}", frame, "transform")
                values.append(ValueMoments.of(np.asarray(col, dtype=float).ravel()))
            total = total + _MomentSet(values, len(piece))
        return total


def _check_finite(values: np.ndarray, what: str, first_row: int) -> None:
    if values.size and not np.isfinite(values).all():
        detail = nonfinite_detail(values)
        raise DataError(f"NA/NaN/Inf in {what}: {detail} (of the chunk starting at row {first_row}) after "
                        "evaluating the formula (e.g. log(0) or a division by zero); change the "
                        "transformation or drop those rows.")


def parse(formula: str, columns: list[str]) -> ModelFormula:
    """The formula parsed as in memory (dotted names quoted); stateful transforms refused."""
    stateful = _STATEFUL.search(formula)
    if stateful:
        raise DataError(f"{stateful.group(1)}() in {formula!r} is a stateful transform (its knots or basis come "
                        "from the data): out of core only scale() and center() are supported. Compute the "
                        "columns first (in SQL, or on a sample) and use them.")
    quoted = quote_names(formula, columns)
    spec = parse_formula(quoted)
    return replace(spec, text=formula) if quoted != formula else spec


def _stand_in_response(expr: str, frame: pd.DataFrame) -> np.ndarray:
    return np.zeros(len(frame))


def build_template(spec: ModelFormula, scan_: Scan, *, check_levels: bool = True,
                   expand_doublebar: str = "lme4", chunk_rows: int = 1 << 17) -> Template:
    """The :class:`Template` of a formula on pass 1's results."""
    n = scan_.n_total - scan_.n_missing
    if n == 0:
        raise DataError("no rows left after dropping rows with missing values" if scan_.n_missing
                        else "the data has no rows")
    skel = _skeleton(scan_)
    with warnings.catch_warnings():  # the skeleton's rank and sizes say nothing of the data's
        warnings.simplefilter("ignore")
        # the response is evaluated per chunk (a GLMM's cbind() too): the skeleton's is a stand-in
        design = build_design(spec, skel, check_levels=False, expand_doublebar=expand_doublebar,
                              response=_stand_in_response)
    terms, maps = [], []
    for term in design.terms:
        parts = _group_parts(term.group)
        table = scan_.distinct[parts]
        codes, levels = factor_codes(table, term.group)
        nlev = len(levels)
        shown = f"({term.lhs} | {term.group})"
        l = len(term.columns)
        kind = getattr(term.matrix.structure, "kind", "us")
        if kind == "ou":  # the skeleton holds made-up numbers: the times are not known here
            raise DataError(f"ou({term.lhs} | {term.group}) reads its time points from the data, which "
                            "the streamed fit does not hold; load the data as a pandas DataFrame, or "
                            "use ar1() on a factor of equally spaced times.")
        if check_levels and nlev >= n:
            raise DataError(
                f"grouping factor {term.group!r} has {nlev} levels for {n} observations: each group has one "
                "observation, so its random effect is confounded with the residual. Drop the term.")
        if check_levels and nlev * l >= n and not skips_size_check(kind):
            raise DataError(f"term {shown} has {nlev * l} random effects for {n} observations; the "
                            "random-effects parameters and the residual variance are unidentifiable. "
                            "Simplify the term.")
        index = pd.Index(table[parts[0]]) if len(parts) == 1 else pd.MultiIndex.from_frame(table[list(parts)])
        maps.append(_GroupMap(parts, index, np.asarray(codes, dtype=np.int64)))
        empty = ReTermMatrix(np.zeros(0, dtype=np.int64), np.zeros((0, l)), nlev, term.matrix.correlated,
                             term.matrix.structure)
        terms.append(replace(term, levels=levels, matrix=empty))
    # the skeleton's level counts may differ for interactions: sort (stably) by the data's
    order = sorted(range(len(terms)), key=lambda i: -len(terms[i].levels))
    terms, maps = [terms[i] for i in order], [maps[i] for i in order]
    for term, name in zip(terms, unique_names([t.group for t in terms])):
        term.name = name
    return Template(spec, scan_, design, terms, maps, chunk_rows)
