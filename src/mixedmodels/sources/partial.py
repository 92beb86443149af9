"""What one chunk, partition or file contributes to pass 2, and the sum of two of them.

The sum is exact arithmetic on the blocks of ``[Z X y]ᵀ[Z X y]`` (plus row counts and column
moments), so chunks can be reduced in any tree (Dask) or order (Spark).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..core.crossproducts import BlockedCrossproducts

__all__ = ["ColumnMoments", "Partial", "ValueMoments", "add_any", "add_crossproducts", "add_partials"]


@dataclass
class ColumnMoments:
    """Sums, sums of squares and 0/1-ness of columns (the scaling check's inputs)."""

    n: int
    sums: np.ndarray
    sumsq: np.ndarray
    indicator: np.ndarray  # bool: every value is 0 or 1

    @classmethod
    def of(cls, values: np.ndarray) -> "ColumnMoments":
        values = np.asarray(values, dtype=float)
        return cls(len(values), values.sum(axis=0), (values ** 2).sum(axis=0),
                   np.all((values == 0) | (values == 1), axis=0))

    @classmethod
    def empty(cls, k: int) -> "ColumnMoments":
        return cls(0, np.zeros(k), np.zeros(k), np.ones(k, dtype=bool))

    def __add__(self, other: "ColumnMoments") -> "ColumnMoments":
        return ColumnMoments(self.n + other.n, self.sums + other.sums, self.sumsq + other.sumsq,
                             self.indicator & other.indicator)

    def take(self, keep: list[int]) -> "ColumnMoments":
        """The moments of the columns ``keep``."""
        return ColumnMoments(self.n, self.sums[keep], self.sumsq[keep], self.indicator[keep])

    def mean_sd(self) -> tuple[np.ndarray, np.ndarray]:
        n = max(self.n, 1)
        mean = self.sums / n
        return mean, np.sqrt(np.maximum(self.sumsq / n - mean ** 2, 0.0))


@dataclass
class Partial:
    """Pass 2's result over some rows.

    Attributes
    ----------
    crossproducts : BlockedCrossproducts
        Over the rows kept (no missing value).
    rows_seen, rows_dropped : int
        Rows read, and rows dropped for missing values (checked against pass 1).
    x_moments : ColumnMoments
        Of the fixed-effects columns.
    term_moments : list of ColumnMoments
        Of each random-effects term's columns.
    log_weights : float
        Σ log wᵢ of the positive prior weights (the LMM's likelihood needs it).
    """

    crossproducts: BlockedCrossproducts
    rows_seen: int
    rows_dropped: int
    x_moments: ColumnMoments
    term_moments: list[ColumnMoments]
    log_weights: float = 0.0


def add_crossproducts(a: BlockedCrossproducts, b: BlockedCrossproducts) -> BlockedCrossproducts:
    """The crossproducts of the rows of ``a`` and ``b`` together (same terms and columns)."""
    if a.n == 0:
        return b
    if b.n == 0:
        return a
    out = copy.copy(a)
    out.n = a.n + b.n
    out.xyxy = a.xyxy + b.xyxy
    out.diag = [x + y for x, y in zip(a.diag, b.diag)]
    out.zxy = [x + y for x, y in zip(a.zxy, b.zxy)]
    off = {}
    for key in set(a.off) | set(b.off):
        if key not in a.off or key not in b.off:
            off[key] = (a.off.get(key) if key in a.off else b.off[key]).copy()
            continue
        prod = (a.off[key] + b.off[key]).tocsr()
        prod.sum_duplicates()
        prod.sort_indices()
        off[key] = prod
    out.off = off
    return out


def add_partials(a: Partial, b: Partial) -> Partial:
    """The :class:`Partial` of the rows of both."""
    return Partial(add_crossproducts(a.crossproducts, b.crossproducts), a.rows_seen + b.rows_seen,
                   a.rows_dropped + b.rows_dropped, a.x_moments + b.x_moments,
                   [x + y for x, y in zip(a.term_moments, b.term_moments)], a.log_weights + b.log_weights)


Partial.__add__ = add_partials


def add_any(a, b):
    """``a + b`` for the per-chunk results of any pass (a picklable function for Dask's tree)."""
    return a + b


@dataclass
class ValueMoments:
    """Count, mean and sum of squared deviations of values, merged exactly over chunks (Chan et
    al.'s pairwise update: no cancellation when the mean is large against the spread)."""

    n: int
    mean: float
    m2: float

    @classmethod
    def of(cls, values: np.ndarray) -> "ValueMoments":
        values = np.asarray(values, dtype=float)
        if len(values) == 0:
            return cls(0, 0.0, 0.0)
        mean = float(values.mean())
        return cls(len(values), mean, float(((values - mean) ** 2).sum()))

    def __add__(self, other: "ValueMoments") -> "ValueMoments":
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        return ValueMoments(n, self.mean + delta * other.n / n, self.m2 + other.m2 + delta ** 2 * self.n * other.n / n)

    def sd(self, ddof: float = 1.0) -> float:
        return float(np.sqrt(self.m2 / (self.n - ddof)))
