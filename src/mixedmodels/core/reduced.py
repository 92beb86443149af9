"""The Λ-scaled random-effects system ``A = ΛᵀZᵀZΛ + I`` as operators, with no dense block.

The first (largest) term's diagonal block is block diagonal, so it is eliminated exactly; what
is left is the Schur complement ``S = A_RR − A_R0 A_00⁻¹ A_0R`` on the other terms, applied
as products with the crossproducts' sparse blocks (never formed). Λ scales vectors, not
matrices, so nothing of size nnz is rebuilt per θ. The preconditioner of ``S`` is its exact
within-level diagonal blocks (per term), which also give ``log det`` the deterministic part
``log det M``; :mod:`.krylov` estimates the rest.

Vectors over a set of terms are lists of ``(q_i × c)`` arrays (level-major rows).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from .crossproducts import BlockedCrossproducts

__all__ = ["ReducedSystem"]


#: sparse products above this many nonzeros are split by rows over threads (scipy's kernel
#: releases the GIL); MIXEDMODELS_THREADS sets the number of threads (default: the CPUs, ≤ 8)
_THREADED_NNZ = 500_000
_POOL: dict = {}
_POOL_LOCK = threading.Lock()


def _threads() -> int:
    try:
        return max(1, min(8, int(os.environ.get("MIXEDMODELS_THREADS", os.cpu_count() or 1))))
    except ValueError:
        return 1


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:  # one pool per process, shared by all models (not stored on them: pickling)
        if _POOL.get("workers") != workers:
            _POOL.update(workers=workers, pool=ThreadPoolExecutor(max_workers=workers))
        return _POOL["pool"]


class _RowSplit:
    """A CSR matrix in row chunks of about equal nonzeros, multiplied chunk by chunk in threads."""

    def __init__(self, m: sp.csr_matrix):
        self.shape, self.nnz = m.shape, m.nnz
        k = _threads() if m.nnz >= _THREADED_NNZ else 1
        cuts = np.searchsorted(m.indptr, np.linspace(0, m.nnz, k + 1)[1:-1])
        self.bounds = [0, *sorted(set(int(c) for c in cuts)), m.shape[0]]
        self.chunks = [m[a:b] for a, b in zip(self.bounds[:-1], self.bounds[1:])]

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        if len(self.chunks) == 1:
            return self.chunks[0] @ v
        out = np.empty((self.shape[0], *v.shape[1:]))

        def part(j: int) -> None:
            out[self.bounds[j]:self.bounds[j + 1]] = self.chunks[j] @ v

        list(_pool(len(self.chunks)).map(part, range(len(self.chunks))))
        return out


def _blocks_apply(blocks: np.ndarray, v: np.ndarray, transpose: bool = False) -> np.ndarray:
    """blockdiag(blocks) @ v (or its transpose) for (m, l, l) blocks and v (m·l × c)."""
    m, l, _ = blocks.shape
    if l == 1:
        return blocks[:, 0, 0][:, None] * v
    v3 = v.reshape(m, l, -1)
    sub = "mba,mbc->mac" if transpose else "mab,mbc->mac"
    return np.einsum(sub, blocks, v3).reshape(v.shape)


def _lam_apply(T: np.ndarray, v: np.ndarray, transpose: bool = False) -> np.ndarray:
    """(I ⊗ T) v or (I ⊗ T)ᵀ v for level-major v (m·l × c)."""
    l = T.shape[0]
    if l == 1:
        return T[0, 0] * v
    v3 = v.reshape(-1, l, v.shape[1])
    return np.einsum("ba,mbc->mac" if transpose else "ab,mbc->mac", T, v3).reshape(v.shape)


def _chol_blocks(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of SPD (m, l, l) blocks and their inverses."""
    if blocks.shape[1] == 1:
        L = np.sqrt(blocks)
        return L, 1.0 / L
    L = np.linalg.cholesky(blocks)
    return L, np.linalg.inv(L)


def _sparse_blockdiag(blocks: np.ndarray) -> sp.csr_matrix:
    m, l, _ = blocks.shape
    base = np.arange(m)[:, None, None] * l
    rows = np.broadcast_to(base + np.arange(l)[None, :, None], blocks.shape).ravel()
    cols = np.broadcast_to(base + np.arange(l)[None, None, :], blocks.shape).ravel()
    return sp.csr_matrix((blocks.ravel(), (rows, cols)), shape=(m * l, m * l))


class ReducedSystem:
    """``A(θ) = ΛᵀGΛ + I`` (G = ZᵀWZ from the crossproducts) with its first term eliminated.

    Call :meth:`set_theta` with the per-term factors T, then use :meth:`apply_s` /
    :meth:`apply_minv` (on the stacked vector of terms 1..k-1), :meth:`solve_00`,
    :meth:`apply_g` (unscaled G on all terms) and :meth:`extend` (the term-0 part of
    ``A⁻¹ [0; x]`` given x).
    """

    def __init__(self, cp: BlockedCrossproducts):
        self.cp = cp
        self.k = len(cp.terms)
        self.q = [t.q for t in cp.terms]
        self.ncols = [t.ncols for t in cp.terms]
        self.rest_starts = np.concatenate([[0], np.cumsum(self.q[1:])]).astype(int)
        self.dim = int(self.rest_starts[-1])
        # transposes once (CSR products are far faster than CSC-transposed ones), both split by
        # rows for threads
        self.off = {key: _RowSplit(m) for key, m in cp.off.items()}
        self.off_t = {key: _RowSplit(m.T.tocsr()) for key, m in cp.off.items()}
        self._sq: dict[int, sp.csr_matrix] = {}
        for r in range(1, self.k):
            if self.ncols[r] == 1 and self.ncols[0] == 1:
                a = cp.off[(r, 0)]
                self._sq[r] = sp.csr_matrix((a.data ** 2, a.indices, a.indptr), shape=a.shape)
        self.T: list[np.ndarray] = []

    # -- pieces -------------------------------------------------------------------------------
    def g_block(self, r: int, i: int, v: np.ndarray) -> np.ndarray:
        """G_ri v (unscaled crossproducts)."""
        if r == i:
            return _blocks_apply(self.cp.diag[r], v)
        return self.off[(r, i)] @ v if r > i else self.off_t[(i, r)] @ v

    def apply_g(self, vs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """G v on all terms."""
        return [sum(self.g_block(r, i, vs[i]) for i in range(self.k)) for r in range(self.k)]

    def lam(self, i: int, v: np.ndarray, transpose: bool = False) -> np.ndarray:
        return _lam_apply(self.T[i], v, transpose)

    def split_rest(self, v: np.ndarray) -> list[np.ndarray]:
        s = self.rest_starts
        return [v[s[j]:s[j + 1]] for j in range(self.k - 1)]

    # -- θ ----------------------------------------------------------------------------------------
    def set_theta(self, Ts: Sequence[np.ndarray]) -> "ReducedSystem":
        """Scale by Λ(θ): factor A_00's blocks and the preconditioner's blocks."""
        self.T = [np.asarray(T, dtype=float) for T in Ts]
        (self.L00, self.c00_inv, self.logdet_00, self.LM, self.LM_inv,
         self.logdet_m) = self._factor_blocks(self.T)
        return self

    def logdet_preconditioner(self, Ts: Sequence[np.ndarray]) -> float:
        """log det M at other factors T (the state is unchanged): for its derivatives."""
        return self._factor_blocks([np.asarray(T, dtype=float) for T in Ts])[5]

    def _factor_blocks(self, Ts):
        cp = self.cp
        T0 = Ts[0]
        c0 = T0.T @ cp.diag[0] @ T0 + np.eye(self.ncols[0])[None]
        L00, L00_inv = _chol_blocks(c0)
        c00_inv = np.einsum("gba,gbc->gac", L00_inv, L00_inv)
        # K = Λ_0 A_00⁻¹ Λ_0ᵀ per level of term 0: what eliminating term 0 subtracts from G
        K = np.einsum("ab,gbc,dc->gad", T0, c00_inv, T0)
        logdet_00 = 2.0 * float(np.log(np.diagonal(L00, axis1=1, axis2=2)).sum())
        LM, LM_inv, logdet_m = [], [], 0.0
        for r in range(1, self.k):
            H = self._eliminated_blocks(r, K)
            Tr = Ts[r]
            blocks = Tr.T @ (cp.diag[r] - H) @ Tr + np.eye(self.ncols[r])[None]
            L, Linv = _chol_blocks(blocks)
            LM.append(L)
            LM_inv.append(Linv)
            logdet_m += 2.0 * float(np.log(np.diagonal(L, axis1=1, axis2=2)).sum())
        return L00, c00_inv, logdet_00, LM, LM_inv, logdet_m

    def _eliminated_blocks(self, r: int, K: np.ndarray) -> np.ndarray:
        """The within-level blocks of G_r0 K G_0r (term r's levels × l_r × l_r)."""
        m, l = self.cp.terms[r].nlevels, self.ncols[r]
        if r in self._sq:
            return (self._sq[r] @ K[:, 0, 0]).reshape(m, 1, 1)
        g = self.cp.off[(r, 0)]
        f = (g @ _sparse_blockdiag(K)).tocsr()
        out = np.empty((m, l, l))
        for a in range(l):
            for b in range(a + 1):
                vals = np.asarray(f[a::l].multiply(g[b::l]).sum(axis=1)).ravel()
                out[:, a, b] = out[:, b, a] = vals
        return out

    # -- operators ---------------------------------------------------------------------------
    def a_0r(self, vs: Sequence[np.ndarray]) -> np.ndarray:
        """A_0R v (v on terms 1..k-1)."""
        acc = sum(self.g_block(0, r, self.lam(r, vs[r - 1])) for r in range(1, self.k))
        return self.lam(0, acc, transpose=True)

    def a_r0(self, v0: np.ndarray) -> list[np.ndarray]:
        """A_R0 v0 per term 1..k-1."""
        w = self.lam(0, v0)
        return [self.lam(r, self.g_block(r, 0, w), transpose=True) for r in range(1, self.k)]

    def solve_00(self, v0: np.ndarray) -> np.ndarray:
        return _blocks_apply(self.c00_inv, v0)

    def apply_s(self, v: np.ndarray) -> np.ndarray:
        """S v on the stacked vector of terms 1..k-1."""
        vs = self.split_rest(v)
        scaled = [self.lam(r, vs[r - 1]) for r in range(1, self.k)]
        out = []
        for r in range(1, self.k):
            acc = sum(self.g_block(r, i, scaled[i - 1]) for i in range(1, self.k))
            out.append(self.lam(r, acc, transpose=True) + vs[r - 1])
        elim = self.a_r0(self.solve_00(self.a_0r(vs)))
        return np.concatenate([o - e for o, e in zip(out, elim)], axis=0)

    def apply_minv(self, v: np.ndarray) -> np.ndarray:
        vs = self.split_rest(v)
        return np.concatenate([_blocks_apply(Li, _blocks_apply(Li, x), transpose=True)
                               for Li, x in zip(self.LM_inv, vs)], axis=0)

    def m_half(self, w: np.ndarray, inverse_transpose: bool = False) -> np.ndarray:
        """L_M w, or L_M⁻ᵀ w (M = L_M L_Mᵀ the preconditioner)."""
        ws = self.split_rest(w)
        if inverse_transpose:
            parts = [_blocks_apply(Li, x, transpose=True) for Li, x in zip(self.LM_inv, ws)]
        else:
            parts = [_blocks_apply(L, x) for L, x in zip(self.LM, ws)]
        return np.concatenate(parts, axis=0) if parts else w

    def extend(self, x: np.ndarray) -> list[np.ndarray]:
        """The full vector ``[−A_00⁻¹ A_0R x; x]`` (= A⁻¹ [0; S x]) as a list per term."""
        xs = self.split_rest(x)
        return [-self.solve_00(self.a_0r(xs)), *xs]
