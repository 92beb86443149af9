"""The crossproducts of ``[Z₁ … Z_k X y]`` in blocks: the only thing a fit needs from the rows.

Two ways to build them, one object:

- :meth:`BlockedCrossproducts.from_chunks` accumulates them over chunks of rows (one pass,
  whatever the row backend); the LMM's crossproducts are formed once this way.
- :meth:`BlockedCrossproducts.reweightable` keeps the in-memory rows and fixed sparsity
  patterns, and :meth:`~BlockedCrossproducts.reweight` recomputes the values for working
  weights and a working response (PIRLS). Its values change after construction, so
  :attr:`~BlockedCrossproducts.values_fixed` is False and the factor does not bake them into
  precomputed product maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from .backends import RowChunk
from .terms import ReTermMatrix

__all__ = ["BlockedCrossproducts", "TermShape"]


@dataclass(frozen=True)
class TermShape:
    """What the factor needs to know of a term: levels, columns, correlation, and its
    covariance structure (None: lme4's, by ``correlated``)."""

    nlevels: int
    ncols: int
    correlated: bool = True
    structure: object = None

    @property
    def q(self) -> int:
        return self.nlevels * self.ncols


def _shape(term) -> TermShape:
    return TermShape(int(term.nlevels), int(term.ncols), bool(getattr(term, "correlated", True)),
                     getattr(term, "structure", None))


def _term_sparse(codes: np.ndarray, values: np.ndarray, shape: TermShape,
                 row_scale: np.ndarray | None = None) -> sp.csr_matrix:
    return ReTermMatrix(codes, values, shape.nlevels, shape.correlated).sparse(row_scale)


def _diag_blocks(codes: np.ndarray, values: np.ndarray, shape: TermShape,
                 weights: np.ndarray | None) -> np.ndarray:
    return ReTermMatrix(codes, values, shape.nlevels, shape.correlated).diag_blocks(weights)


class BlockedCrossproducts:
    """The blocks of ``[Z X y]ᵀ W [Z X y]``, random-effects terms sorted largest first.

    Attributes
    ----------
    terms : list of TermShape
    n, p : int
        Rows and fixed-effect columns.
    xyxy : ndarray ((p+1) × (p+1))
    diag : list of ndarray (levels × l × l)
        Zᵢᵀ W Zᵢ per term, as within-level blocks.
    zxy : list of ndarray ((p+1) × qᵢ)
        [X y]ᵀ W Zᵢ.
    off : dict (r, i) -> csr_matrix (q_r × q_i), r > i
        Z_rᵀ W Z_i.
    """

    def __init__(self, terms: Sequence, X: np.ndarray, y: np.ndarray,
                 weights: np.ndarray | None = None):
        """The in-memory crossproducts of ``terms`` (:class:`ReTermMatrix`), X and y, with prior
        weights (rows scaled by their square roots): :meth:`from_chunks` on one chunk."""
        chunk = RowChunk(X, y, weights, [t.codes for t in terms], [t.values for t in terms])
        self._set(*self._accumulate([_shape(t) for t in terms], X.shape[1], [chunk]))
        self.values_fixed = True
        self._rows = None

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_chunks(cls, terms: Sequence, p: int, chunks: Iterable[RowChunk]) -> "BlockedCrossproducts":
        """Accumulate the crossproducts over chunks of rows (one pass).

        Parameters
        ----------
        terms : sequence
            Per term, an object with ``nlevels``, ``ncols`` and ``correlated`` (the levels are
            global: a chunk's codes index them).
        p : int
            Number of fixed-effect columns.
        chunks : iterable of RowChunk
        """
        obj = cls.__new__(cls)
        obj._set(*cls._accumulate([_shape(t) for t in terms], p, chunks))
        obj.values_fixed = True
        obj._rows = None
        return obj

    @classmethod
    def reweightable(cls, terms: Sequence[ReTermMatrix], X: np.ndarray) -> "BlockedCrossproducts":
        """Crossproducts of ``[Z X z]`` whose values :meth:`reweight` recomputes in place for
        working weights and response (PIRLS), with sparsity patterns fixed from the level codes."""
        obj = cls.__new__(cls)
        obj.terms = [_shape(t) for t in terms]
        obj.n, obj.p = X.shape
        obj.values_fixed = False
        xz = np.empty((obj.n, obj.p + 1))
        xz[:, :obj.p] = X
        xz[:, obj.p] = 0.0
        zt = [t.sparse().T.tocsr() for t in terms]
        obj.off = {}
        positions = {}
        for r in range(len(terms)):
            for i in range(r):
                tr, ti = terms[r], terms[i]
                lr, li = tr.ncols, ti.ncols
                rows = tr.codes[:, None, None] * lr + np.arange(lr)[None, :, None]
                cols = ti.codes[:, None, None] * li + np.arange(li)[None, None, :]
                keys = (rows * ti.q + cols).ravel()
                uniq, inverse = np.unique(keys, return_inverse=True)
                urow, ucol = uniq // ti.q, uniq % ti.q
                indptr = np.searchsorted(urow, np.arange(tr.q + 1))
                obj.off[(r, i)] = sp.csr_matrix((np.ones(len(uniq)), ucol.astype(np.int32), indptr),
                                                shape=(tr.q, ti.q))
                positions[(r, i)] = (inverse.ravel(), len(uniq))
        obj._rows = _ReweightRows(list(terms), xz, zt, positions)
        obj.reweight(np.ones(obj.n), np.zeros(obj.n))
        return obj

    def with_response(self, terms: Sequence[ReTermMatrix], X: np.ndarray, y: np.ndarray,
                      weights: np.ndarray | None = None) -> "BlockedCrossproducts":
        """The crossproducts with a new response (same rows, terms and prior weights): only
        the y row of ``[X y]ᵀ W [Z X y]`` is recomputed; ``ZᵀWZ`` and ``XᵀWZ`` are shared."""
        wy = y if weights is None else y * weights
        p = self.p
        obj = type(self).__new__(type(self))
        xyxy = self.xyxy.copy()
        xyxy[:p, p] = xyxy[p, :p] = X.T @ wy
        xyxy[p, p] = float(y @ wy)
        zxy = []
        for term, shape, block in zip(terms, self.terms, self.zxy):
            new = block.copy()
            sums = np.empty((shape.nlevels, shape.ncols))
            for j in range(shape.ncols):
                sums[:, j] = np.bincount(term.codes, term.values[:, j] * wy, minlength=shape.nlevels)
            new[p] = sums.ravel()
            zxy.append(new)
        obj._set(self.terms, self.n, p, xyxy, self.diag, zxy, self.off)
        obj.values_fixed = self.values_fixed
        obj._rows = None
        return obj

    def _set(self, terms, n, p, xyxy, diag, zxy, off) -> None:
        self.terms, self.n, self.p = terms, n, p
        self.xyxy, self.diag, self.zxy, self.off = xyxy, diag, zxy, off

    @staticmethod
    def _accumulate(shapes: list[TermShape], p: int, chunks: Iterable[RowChunk]):
        k = len(shapes)
        n = 0
        xyxy = np.zeros((p + 1, p + 1))
        diag = [np.zeros((s.nlevels, s.ncols, s.ncols)) for s in shapes]
        zxy = [np.zeros((p + 1, s.q)) for s in shapes]
        off: dict[tuple[int, int], sp.csr_matrix] = {}
        for chunk in chunks:
            n += len(chunk.y)
            root = None if chunk.weights is None else np.sqrt(chunk.weights)
            xy = np.column_stack([chunk.X, chunk.y])
            if root is not None:
                xy = xy * root[:, None]
            xyxy += xy.T @ xy
            zs = [_term_sparse(c, v, s, root) for c, v, s in zip(chunk.codes, chunk.values, shapes)]
            for i, (c, v, s, z) in enumerate(zip(chunk.codes, chunk.values, shapes, zs)):
                diag[i] += _diag_blocks(c, v, s, chunk.weights)
                zxy[i] += np.asarray((z.T @ xy).T)
            for r in range(k):
                for i in range(r):
                    prod = (zs[r].T @ zs[i]).tocsr()
                    off[(r, i)] = prod if (r, i) not in off else (off[(r, i)] + prod).tocsr()
        for prod in off.values():
            prod.sum_duplicates()
            prod.sort_indices()
        return shapes, n, p, xyxy, diag, zxy, off

    # -- PIRLS ---------------------------------------------------------------------------------
    def reweight(self, w: np.ndarray, z: np.ndarray) -> "BlockedCrossproducts":
        """Recompute the values for working weights ``w`` and working response ``z`` (patterns
        unchanged). Only for crossproducts made by :meth:`reweightable`."""
        rows = self._rows
        if rows is None:
            raise TypeError("these crossproducts were formed once from their rows; build them "
                            "with BlockedCrossproducts.reweightable to reweight them")
        xz = rows.xz
        xz[:, self.p] = z
        wxz = xz * w[:, None]
        if self.p < 8:  # numpy's loops: threaded BLAS on n-vectors is slow on shared cores
            k = self.p + 1
            self.xyxy = np.empty((k, k))
            cols = [np.ascontiguousarray(xz[:, j]) for j in range(k)]
            for j in range(k):
                wj = w * cols[j]
                for i in range(j + 1):
                    self.xyxy[i, j] = self.xyxy[j, i] = float(np.einsum("i,i->", wj, cols[i]))
        else:
            self.xyxy = xz.T @ wxz
        self.diag = [t.diag_blocks(w) for t in rows.terms]
        self.zxy = [np.asarray(zt @ wxz).T for zt in rows.zt]
        for (r, i), mat in self.off.items():
            pos, nnz = rows.positions[(r, i)]
            tr, ti = rows.terms[r], rows.terms[i]
            prod = (w[:, None, None] * tr.values[:, :, None] * ti.values[:, None, :]).ravel()
            mat.data = np.bincount(pos, prod, minlength=nnz)
        return self

    def term_transpose(self, i: int) -> sp.csr_matrix:
        """Z_iᵀ (q_i × n) of a reweightable object's in-memory rows."""
        return self._rows.zt[i]


@dataclass
class _ReweightRows:
    terms: list[ReTermMatrix]
    xz: np.ndarray
    zt: list[sp.csr_matrix]
    positions: dict[tuple[int, int], tuple[np.ndarray, int]]
