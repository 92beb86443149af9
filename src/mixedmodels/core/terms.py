"""The model matrix of one random-effects term, in compact form (level codes and columns)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

__all__ = ["ReTermMatrix"]


@dataclass
class ReTermMatrix:
    """The model matrix of one random-effects term in compact form.

    Attributes
    ----------
    codes : ndarray of int, shape (n,)
        Level index of each row, 0..nlevels-1.
    values : ndarray, shape (n, l)
        The term's columns (``l`` = 1 for ``(1 | g)``).
    nlevels : int
    correlated : bool
        Full lower-triangular relative covariance factor, or diagonal.
    structure : CovStructure, optional
        A structured covariance (glmmTMB's ``cs``, ``ar1``, ``ou``; see
        :mod:`mixedmodels.core.structures`); None for lme4's (full or diagonal, by ``correlated``).
    """

    codes: np.ndarray
    values: np.ndarray
    nlevels: int
    correlated: bool = True
    structure: object = None

    @property
    def ncols(self) -> int:
        return self.values.shape[1]

    @property
    def q(self) -> int:
        return self.nlevels * self.ncols

    @cached_property
    def _indicator_columns(self) -> np.ndarray | None:
        """For a structured term whose rows each hold one nonzero (ar1/ou time indicators, cs
        over a factor's levels), that column per row; None otherwise."""
        if self.structure is None or getattr(self.structure, "linear", True) or self.ncols < 2:
            return None
        nonzero = self.values != 0
        if np.any(nonzero.sum(axis=1) > 1):
            return None
        return np.argmax(nonzero, axis=1)

    def diag_blocks(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Zᵢᵀ W Zᵢ as its (levels, l, l) stack of within-level blocks (one pass of bincounts)."""
        l = self.ncols
        cols = self._indicator_columns
        if cols is not None:  # diagonal blocks: one bincount instead of l(l+1)/2
            v = self.values[np.arange(len(cols)), cols]
            w = v * v if weights is None else weights * v * v
            diag = np.bincount(self.codes * l + cols, w, minlength=self.nlevels * l).reshape(self.nlevels, l)
            blocks = np.zeros((self.nlevels, l, l))
            blocks[:, np.arange(l), np.arange(l)] = diag
            return blocks
        weighted = self.values if weights is None else self.values * weights[:, None]
        blocks = np.empty((self.nlevels, l, l))
        for a in range(l):
            for b in range(a + 1):
                blocks[:, a, b] = np.bincount(self.codes, weighted[:, a] * self.values[:, b],
                                              minlength=self.nlevels)
                blocks[:, b, a] = blocks[:, a, b]
        return blocks

    def sparse(self, row_scale: np.ndarray | None = None) -> sp.csr_matrix:
        """Z_i as a CSR matrix (n × m·l), level-major columns."""
        n, l = self.values.shape
        data = self.values if row_scale is None else self.values * row_scale[:, None]
        indices = (self.codes[:, None] * l + np.arange(l)[None, :]).ravel()
        indptr = np.arange(n + 1) * l
        return sp.csr_matrix((data.ravel(), indices, indptr), shape=(n, self.q))
