"""The design of a GLMM whose rows stay in their source: pass 1, then one building pass that
evaluates every chunk once into a :class:`~mixedmodels.sources.rowcache.RowCache` kept where the
data lives (PIRLS then runs its weighted passes over it).

The family is duck-typed (this layer sits below the models): its ``accepts_trials``,
``check_response``, ``aic_minus_deviance`` and ``name`` are used, as by the in-memory design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..spec.response import Response, response_parser
from .design import (
    RowsElsewhere,
    StreamedDesign,
    check_rows,
    column_name,
    kept_columns,
    prepare_stream,
    streamed_terms,
    weights_summary,
)
from .partial import ColumnMoments
from .rowcache import GlmChunk, build_cache
from .template import Template

__all__ = ["GlmSummary", "stream_glm_design"]


@dataclass
class GlmSummary:
    """What the building pass learns of all the rows (added over chunks)."""

    x: ColumnMoments
    terms: list[ColumnMoments]
    aic_const: float | None
    y_min: float
    y_max: float
    proportions: bool      # some y strictly between 0 and 1 without trials or weights
    trials: bool           # a cbind() response
    log_weights: float
    xtx: np.ndarray        # XᵀX (unweighted): the aliased columns

    def __add__(self, other: "GlmSummary") -> "GlmSummary":
        const = None if self.aic_const is None or other.aic_const is None else self.aic_const + other.aic_const
        return GlmSummary(self.x + other.x, [a + b for a, b in zip(self.terms, other.terms)], const,
                          min(self.y_min, other.y_min), max(self.y_max, other.y_max),
                          self.proportions or other.proportions, self.trials or other.trials,
                          self.log_weights + other.log_weights, self.xtx + other.xtx)


class GlmBuilder:
    """Chunks of rows → :class:`GlmChunk` (a picklable callable, run where the rows are)."""

    def __init__(self, template: Template, family: Any):
        self.template, self.family = template, family

    def chunk(self, frame: pd.DataFrame, first_row: int) -> tuple[GlmChunk | None, int, int, GlmSummary | None]:
        t, fam = self.template, self.family
        rows = len(frame)
        frame, dropped = t.complete_rows(frame)
        if len(frame) == 0:
            return None, rows, dropped, None
        store = Response()
        y = np.asarray(response_parser(fam, store)(t.spec.response, frame), dtype=float)
        prior = t.weight_values(frame, first_row)
        n = len(y)
        nsize = np.ones(n) if store.trials is None else np.asarray(store.trials, dtype=float)
        wt = (np.ones(n) if prior is None else prior) * nsize
        off = t.offset_values(frame, first_row)
        X, codes, values = t.design_rows(frame, first_row)
        chunk = GlmChunk(X, y, wt, nsize, np.zeros(n) if off is None else off, codes, values)
        logw = 0.0 if prior is None else float(np.log(prior[prior > 0]).sum())
        summary = GlmSummary(ColumnMoments.of(X), [ColumnMoments.of(v) for v in values],
                             fam.aic_minus_deviance(y, nsize, wt), float(y.min()), float(y.max()),
                             bool(prior is None and store.trials is None and np.any((y > 0) & (y < 1))),
                             store.trials is not None, logw, X.T @ X)
        return chunk, rows, dropped, summary

    def __call__(self, frames: Iterable[pd.DataFrame]) -> list:
        return [self.chunk(piece, first) for piece, first in self.template.pieces(frames)]


def stream_glm_design(formula: str, data: Any, family: Any, *, weights=None, offset=None,
                      na_action: str = "drop", expand_doublebar: str = "lme4",
                      chunk_rows: int | None = None, memory_budget: int | None = None,
                      progress=None) -> StreamedDesign:
    """Pass 1 and the building pass of a GLMM on a source; the design, with its row cache.

    Parameters
    ----------
    formula : str
    data : path, glob, DuckDB relation, pyarrow Dataset, polars LazyFrame, Dask or Spark DataFrame
    family : Family
    weights, offset : str, optional
        Columns of the source.
    na_action, expand_doublebar, chunk_rows, memory_budget, progress
        As :func:`~mixedmodels.sources.design.stream_design`.

    Returns
    -------
    StreamedDesign
        With ``cache`` (the evaluated rows, where they live) and ``glm_summary``.
    """
    weights, offset = column_name(weights, "weights"), column_name(offset, "offset")
    source, passes, template = prepare_stream(formula, data, na_action=na_action, extra=(weights, offset),
                                              expand_doublebar=expand_doublebar, chunk_rows=chunk_rows,
                                              memory_budget=memory_budget, check_levels=False, stacklevel=5,
                                              progress=progress)
    template.weights_column, template.offset_column = weights, offset
    with template.reporting(source, passes.n_total, "building pass"):
        cache = build_cache(source, passes.used, GlmBuilder(template, family), template.chunk_rows,
                            len(template.terms))
    check_rows(source, passes, cache.rows_seen, cache.rows_dropped)
    summary: GlmSummary = cache.summary
    where = source.description
    spec = template.spec
    n = passes.n_total - passes.n_missing
    names = list(template.fixef_names)
    keep, aliased = kept_columns(summary.xtx, names, stacklevel=5)
    design = StreamedDesign(
        formula=spec, y=np.zeros(0), X=RowsElsewhere(len(keep), where, summary.x.take(keep)),
        fixef_names=[names[j] for j in keep], terms=streamed_terms(template, summary.terms, where),
        frame=template.design.frame, weights=weights_summary(summary.log_weights) if weights else None,
        offset=None, n_dropped=passes.n_missing, dropped_columns=[names[j] for j in aliased],
        fixed_spec=template.design.fixed_spec,
        response_name=spec.response, n_rows=n, source=where, passes=2 + template.extra_passes, origin=source,
        template=template,
        per_column=dict(passes.per_column), keep=keep, cache=cache)
    design.glm_summary = summary
    return design
