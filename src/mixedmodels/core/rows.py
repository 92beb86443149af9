"""The in-memory row backend: the rows as NumPy arrays, in chunks of ``chunk_rows``."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from .backends import RowChunk, register_rows
from .crossproducts import BlockedCrossproducts
from .terms import ReTermMatrix

__all__ = ["InMemoryRows"]


@register_rows("memory")
class InMemoryRows:
    """:class:`~mixedmodels.core.backends.RowOps` over arrays held in memory.

    Parameters
    ----------
    terms : sequence of ReTermMatrix
        The random-effects terms, sorted largest first.
    X : ndarray (n, p)
    y : ndarray (n,)
    weights : ndarray (n,), optional
        Prior weights.
    chunk_rows : int, optional
        Rows per chunk; default all rows in one chunk (the fastest in memory).
    """

    name = "memory"

    def __init__(self, terms: Sequence[ReTermMatrix], X: np.ndarray, y: np.ndarray,
                 weights: np.ndarray | None = None, chunk_rows: int | None = None):
        self.terms = list(terms)
        self.X = np.asarray(X, dtype=float)
        self.y = np.asarray(y, dtype=float)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        self.n, self.p = self.X.shape
        if chunk_rows is not None and int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows must be a positive number of rows, got {chunk_rows}")
        self.chunk_rows = self.n if chunk_rows is None else int(chunk_rows)

    def chunks(self) -> Iterator[RowChunk]:
        step = max(self.chunk_rows, 1)
        for start in range(0, max(self.n, 1), step):
            rows = slice(start, min(start + step, self.n))
            w = None if self.weights is None else self.weights[rows]
            yield RowChunk(self.X[rows], self.y[rows], w, [t.codes[rows] for t in self.terms],
                           [t.values[rows] for t in self.terms])

    def crossproducts(self) -> BlockedCrossproducts:
        if self.chunk_rows >= self.n:  # one chunk: no accumulation copies
            return BlockedCrossproducts(self.terms, self.X, self.y, self.weights)
        return BlockedCrossproducts.from_chunks(self.terms, self.p, self.chunks())

    def linear_predictor(self, beta: np.ndarray, b: list[np.ndarray],
                         offset: np.ndarray | None = None) -> np.ndarray:
        eta = self.X @ beta
        for term, bk in zip(self.terms, b):
            eta = eta + np.einsum("ij,ij->i", term.values, bk[term.codes])
        if offset is not None:
            eta = eta + offset
        return eta

    def weighted_sum(self, values: np.ndarray, weights: np.ndarray | None = None) -> float:
        values = np.asarray(values, dtype=float)
        return float(values.sum() if weights is None else np.dot(weights, values))
