"""A model's design whose rows stay in their source: pass 1, pass 2, and the checks between.

:func:`stream_design` returns a :class:`StreamedDesign`: a
:class:`~mixedmodels.spec.design.ModelDesign` with the real names, levels, row count and
dropped-row count, whose ``X`` is a :class:`RowsElsewhere` placeholder carrying the
crossproducts of all the rows. A model built on it with the ``"streamed"`` row backend
(:class:`StreamedRows`, registered here) fits from those crossproducts alone; per-row results
are passes over the source again (:mod:`mixedmodels.postestimation.streamed`), and what needs
the rows in memory as arrays raises a clear error instead of working on nothing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import numpy as np

from ..core.backends import RowChunk, register_rows
from ..core.crossproducts import BlockedCrossproducts
from ..core.rows import InMemoryRows
from ..core.terms import ReTermMatrix
from ..exceptions import DataError, MissingDataWarning, RankDeficiencyWarning
from ..spec.design import ModelDesign
from .engines import Source, open_source
from .partial import ColumnMoments
from .template import Scan, Template, build_template, parse, scan

__all__ = ["RowsElsewhere", "StreamedDesign", "StreamedRows", "estimate_bytes", "stream_design"]

DEFAULT_CHUNK_ROWS = 1 << 17


def _elsewhere_message(where: str) -> str:
    return (f"the rows of this model live in {where}: this needs them in memory as arrays (bootstrap, "
            "refits to new responses, Kenward-Roger, the linear predictor as a vector), which streamed fits "
            "do not hold. Per-row results are passes over the source: m.fitted(), m.residuals(), "
            "m.predict(source, out='pred.parquet'). What works from the crossproducts: fixef, vcov, "
            "coef_table, varcorr, ranef, loglik, AIC/BIC, anova, summary.")


class RowsElsewhere(np.ndarray):
    """A 0-row stand-in for the rows of ``X`` (or a term's values) that live in a source.

    Column access ``a[:, j]`` returns two values with the column's mean and standard deviation
    (its 0/1-ness kept), which is all the post-fit scaling check reads; every other use raises
    ``NotImplementedError`` naming the source.
    """

    def __new__(cls, ncols: int, where: str, moments: ColumnMoments | None = None,
                crossproducts: BlockedCrossproducts | None = None):
        obj = np.zeros((0, ncols)).view(cls)
        obj.where, obj.moments, obj.crossproducts = where, moments, crossproducts
        return obj

    def __array_finalize__(self, obj) -> None:
        self.where = getattr(obj, "where", "a data source")
        self.moments = getattr(obj, "moments", None)
        self.crossproducts = getattr(obj, "crossproducts", None)

    def __getitem__(self, key):
        if (self.moments is not None and isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)
                and isinstance(key[1], (int, np.integer))):
            j = int(key[1])
            if self.moments.indicator[j]:
                return np.array([0.0, 1.0])
            mean, sd = self.moments.mean_sd()
            return np.array([mean[j] - sd[j], mean[j] + sd[j]])
        raise NotImplementedError(_elsewhere_message(self.where))

    def std(self, axis=None, **kwargs):
        """Per-column standard deviations (``axis=0``) from the moments of all the rows."""
        if axis != 0 or self.moments is None:
            raise NotImplementedError(_elsewhere_message(self.where))
        return self.moments.mean_sd()[1].copy()

    def __matmul__(self, other):
        raise NotImplementedError(_elsewhere_message(self.where))

    __rmatmul__ = __matmul__

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        raise NotImplementedError(_elsewhere_message(self.where))

    def __array_function__(self, func, types, args, kwargs):
        raise NotImplementedError(_elsewhere_message(self.where))

    def __reduce__(self):
        return (RowsElsewhere, (self.shape[1], self.where, self.moments, self.crossproducts))

    def __repr__(self) -> str:
        return f"<rows of {self.shape[1]} columns in {self.where}>"


@dataclass
class StreamedDesign(ModelDesign):
    """A :class:`~mixedmodels.spec.design.ModelDesign` whose rows stay in their source.

    Attributes
    ----------
    n_rows : int
        Observations used (rows without missing values).
    source : str
        What the rows are.
    passes : int
        Passes over the rows (pass 1: counts and levels; pass 2: crossproducts).
    origin : Source
        Where the rows are (for per-row results: fitted values, residuals); not pickled.
    template : Template
        Pass 1's levels and contrasts: how a chunk of rows becomes its design.
    per_column : dict
        Rows dropped for missing values, per column.
    keep : list of int
        The fixed-effects columns kept (aliased ones dropped).
    cache : RowCache, optional
        A GLMM's evaluated rows, cached where they live for PIRLS' passes.
    """

    def __getstate__(self):
        state = dict(self.__dict__)
        state["origin"] = state["cache"] = None  # the rows stay where they are
        return state

    n_rows: int = 0
    source: str = ""
    passes: int = 2
    origin: Any = None
    template: Any = None
    per_column: dict = field(default_factory=dict)
    keep: list = field(default_factory=list)
    cache: Any = None

    @property
    def nobs(self) -> int:
        return self.n_rows


@register_rows("streamed")
class StreamedRows(InMemoryRows):
    """:class:`~mixedmodels.core.backends.RowOps` of a :class:`StreamedDesign`: the
    crossproducts formed by pass 2 where the rows live (``X`` is its :class:`RowsElsewhere`).
    Given rows in memory instead, it is the in-memory backend (the RowOps contract)."""

    name = "streamed"

    def __init__(self, terms, X, y, weights=None, chunk_rows=None):
        cp = getattr(X, "crossproducts", None)
        self._cp = cp
        if cp is None:
            super().__init__(terms, X, y, weights, chunk_rows)
            return
        self.where = X.where
        self.n, self.p = cp.n, cp.p

    def chunks(self) -> Iterator[RowChunk]:
        if self._cp is None:
            return super().chunks()
        raise NotImplementedError(_elsewhere_message(self.where))

    def crossproducts(self) -> BlockedCrossproducts:
        return super().crossproducts() if self._cp is None else self._cp

    def linear_predictor(self, beta, b, offset=None):
        if self._cp is None:
            return super().linear_predictor(beta, b, offset)
        raise NotImplementedError(_elsewhere_message(self.where))

    def weighted_sum(self, values, weights=None):
        if self._cp is None:
            return super().weighted_sum(values, weights)
        raise NotImplementedError(_elsewhere_message(self.where))


def estimate_bytes(template: Template, n: int) -> int:
    """An upper estimate of the memory the crossproducts and the blocked factor need."""
    p1 = template.p + 1
    qs = [s.q for s in template.shapes]
    total = p1 * p1 + sum(s.nlevels * s.ncols ** 2 for s in template.shapes) + p1 * sum(qs)
    for r in range(len(qs)):
        for i in range(r):
            sr, si = template.shapes[r], template.shapes[i]
            total += 2 * min(qs[r] * qs[i], n * sr.ncols * si.ncols)  # values and indices
    # the factor's blocks below the first term may fill in: dense lower triangles
    total += sum(qs[r] * qs[i] for r in range(1, len(qs)) for i in range(1, r + 1))
    return 8 * int(total)


def _aliased(xtx: np.ndarray, tol: float = 1e-7) -> list[int]:
    """The columns that the in-memory Gram-Schmidt check calls aliased, from XᵀX: the residual
    sum of squares of each column on the earlier kept ones, relative to its own."""
    kept: list[int] = []
    aliased = []
    for j in range(xtx.shape[0]):
        norm2 = xtx[j, j]
        if norm2 <= 0:
            aliased.append(j)
            continue
        rest2 = norm2
        if kept:
            sub = xtx[np.ix_(kept, kept)]
            v = xtx[kept, j]
            rest2 = norm2 - v @ np.linalg.solve(sub, v)
        if rest2 < (tol ** 2) * norm2:
            aliased.append(j)
        else:
            kept.append(j)
    return aliased


def kept_columns(xtx: np.ndarray, names: list[str], stacklevel: int = 4) -> tuple[list[int], list[int]]:
    """The fixed-effects columns kept and those aliased (from XᵀX, as the in-memory check), with
    the in-memory RankDeficiencyWarning naming the dropped ones."""
    aliased = _aliased(xtx) if len(xtx) else []
    keep = [j for j in range(len(xtx)) if j not in aliased]
    if aliased:
        dropped = [names[j] for j in aliased]
        warnings.warn(
            f"fixed-effect model matrix is rank deficient: dropping {len(dropped)} column(s) "
            f"({', '.join(dropped)}), a linear combination of the others. Check for duplicated "
            "or collinear predictors, or empty cells in an interaction.", RankDeficiencyWarning,
            stacklevel=stacklevel)
    return keep, aliased


def _drop_columns(cp: BlockedCrossproducts, keep: list[int]) -> BlockedCrossproducts:
    rows = keep + [cp.p]
    cp.xyxy = cp.xyxy[np.ix_(rows, rows)].copy()
    cp.zxy = [z[rows].copy() for z in cp.zxy]
    cp.p = len(keep)
    return cp


def column_name(value, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise NotImplementedError(f"{what}= on a streamed source must name a column of the source (an array of "
                              "values per row cannot be lined up with rows that stay where they are)")


def prepare_stream(formula: str, data: Any, *, na_action: str = "drop", extra: tuple[str, ...] = (),
                   expand_doublebar: str = "lme4", chunk_rows: int | None = None,
                   memory_budget: int | None = None, check_levels: bool = True,
                   stacklevel: int = 4, progress=None) -> tuple[Source, Scan, Template]:
    """Pass 1 (counts, missing values per column, levels) and the template of the chunks, with
    the missing-rows warning and the memory estimate checked before any further pass."""
    source: Source = data if isinstance(data, Source) else open_source(data)
    columns = [str(c) for c in source.lazy().collect_schema()]
    spec = parse(formula, columns)
    passes = scan(spec, source, [c for c in extra if c])
    if passes.n_missing:
        detail = ", ".join(f"{c}: {k}" for c, k in passes.per_column.items())
        if na_action == "raise":
            raise DataError(f"{passes.n_missing} rows have missing values in the model's variables ({detail}); "
                            "na_action='raise' stops here. Use na_action='drop' to drop them.")
        warnings.warn(
            f"{passes.n_missing} of {passes.n_total} rows dropped for missing values ({detail}). "
            "The fit stays unbiased if a missing response depends only on observed data (MAR); "
            "rows dropped for missing predictors need them missing completely at random, "
            "otherwise impute them. na_action='raise' makes this an error.",
            MissingDataWarning, stacklevel=stacklevel)
    template = build_template(spec, passes, check_levels=check_levels, expand_doublebar=expand_doublebar,
                              chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS)
    template.progress = progress
    template.extra_passes = 0
    if template.stateful():  # scale()/center(): a pass for all rows' moments (and its bar) only then
        with template.reporting(source, passes.n_total, "moments pass"):
            template.extra_passes = int(template.fix_stateful(source))
    n = passes.n_total - passes.n_missing
    need = estimate_bytes(template, n)
    budget = memory_budget if memory_budget is not None else _available_memory()
    if budget is not None and need > budget:
        raise DataError(f"the crossproducts of this model need about {need / 2 ** 30:.1f} GiB (levels: "
                        f"{', '.join(f'{t.group} {t.nlevels}' for t in template.terms)}), more than the "
                        f"{budget / 2 ** 30:.1f} GiB available; fewer or smaller crossed terms fit, or an "
                        "iterative (matrix-free) solver, which is not part of this package yet")
    return source, passes, template


def check_rows(source: Source, passes: Scan, seen: int, dropped: int) -> None:
    """Integrity: the rows a later pass read are pass 1's, or the fit is refused."""
    if seen != passes.n_total or dropped != passes.n_missing:
        raise DataError(f"pass 2 read {seen} rows ({dropped} with missing values) but "
                        f"pass 1 counted {passes.n_total} ({passes.n_missing}) in {source.description}: "
                        "the data changed between the passes or a partition was lost; the fit is refused "
                        "rather than made from part of the rows")


def streamed_terms(template: Template, moments: list[ColumnMoments], where: str) -> list:
    """The design's terms with their real levels and :class:`RowsElsewhere` values."""
    terms = []
    for term, mom in zip(template.terms, moments):
        values = RowsElsewhere(len(term.columns), where, mom)
        terms.append(replace(term, matrix=ReTermMatrix(np.zeros(0, dtype=np.int64), values, term.nlevels,
                                                       term.matrix.correlated, term.matrix.structure)))
    return terms


def stream_design(formula: str, data: Any, *, na_action: str = "drop", weights=None, offset=None,
                  expand_doublebar: str = "lme4", chunk_rows: int | None = None,
                  memory_budget: int | None = None, check_levels: bool = True, progress=None) -> StreamedDesign:
    """Pass 1 and pass 2 over data that stays where it is; the design of a streamed fit.

    Parameters
    ----------
    formula : str
    data : path, glob, DuckDB relation, pyarrow Dataset, polars LazyFrame, Dask or Spark DataFrame
    na_action : {"drop", "raise"}
    weights, offset : str, optional
        Columns of the source: prior weights, and an offset added to the formula's ``offset()``.
    chunk_rows : int, optional
        Rows per chunk of pass 2 (default 131072): the memory of a pass is of the order of one
        chunk's design matrices plus the crossproducts.
    memory_budget : int, optional
        Bytes the crossproducts and factor may take (default: the available memory); a model
        estimated larger raises before pass 2.
    progress : callable, optional
        ``progress(total, description)`` returning a bar with ``update(k)`` and ``close()``
        (and ``add_total(k)`` for Spark), one per pass: over the rows for a source on this
        machine, over the partitions done (Dask) or the tasks done (Spark), counted on the client.

    Returns
    -------
    StreamedDesign
    """
    weights, offset = column_name(weights, "weights"), column_name(offset, "offset")
    source, passes, template = prepare_stream(formula, data, na_action=na_action, extra=(weights, offset),
                                              expand_doublebar=expand_doublebar, chunk_rows=chunk_rows,
                                              memory_budget=memory_budget, check_levels=check_levels,
                                              progress=progress)
    template.weights_column, template.offset_column = weights, offset
    spec = template.spec
    with template.reporting(source, passes.n_total, "pass 2"):
        part = source.partial(passes.used, template, template.chunk_rows)
    check_rows(source, passes, part.rows_seen, part.rows_dropped)
    n = passes.n_total - passes.n_missing
    cp = part.crossproducts
    names = list(template.fixef_names)
    keep, aliased = kept_columns(cp.xyxy[:cp.p, :cp.p], names, stacklevel=4)
    x_moments = part.x_moments
    if aliased:
        cp = _drop_columns(cp, keep)
        x_moments = x_moments.take(keep)
    where = source.description
    terms = streamed_terms(template, part.term_moments, where)
    cp.terms = list(template.shapes)
    base = template.design
    X = RowsElsewhere(len(keep), where, x_moments, cp)
    return StreamedDesign(formula=spec, y=np.zeros(0), X=X, fixef_names=[names[j] for j in keep], terms=terms,
                          frame=base.frame, weights=weights_summary(part.log_weights) if weights else None,
                          offset=np.zeros(0) if (offset or spec.offsets) else None, n_dropped=passes.n_missing,
                          dropped_columns=[names[j] for j in aliased], fixed_spec=base.fixed_spec,
                          response_name=spec.response, n_rows=n, source=where,
                          passes=2 + template.extra_passes, origin=source, template=template,
                          per_column=dict(passes.per_column), keep=keep)


def weights_summary(log_weights: float) -> np.ndarray:
    """Positive numbers whose logs add up to ``log_weights``, Σ log wᵢ of the rows' prior weights:
    all that the LMM's likelihood reads of the weights (the rows' own stay in the source)."""
    m = max(1, int(np.ceil(abs(log_weights) / 500.0)))
    return np.exp(np.full(m, log_weights / m))


def _available_memory() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available * 0.8)
