"""The blocked Cholesky factor behind the profiled deviance.

The crossproducts are formed once (the only pass over the rows). Each evaluation of the
objective scales them by Λ(θ) and factors them block by block, random-effects terms sorted
by their number of levels, largest first (Bates et al. 2015; MixedModels.jl). See
``shared/design/engine.md`` for the plan.

Block kinds held in the factor:
- the diagonal block of a term is *block-diagonal* (an ``(m, l, l)`` array) while nothing
  fills it in (the first term, nested terms), otherwise *dense*;
- off-diagonal blocks between terms are *sparse* (CSR) until a dense diagonal block makes
  them dense;
- the rows of ``[X y]`` are *dense*.
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

from .backends import DenseOps, get_dense
from .crossproducts import BlockedCrossproducts
from .parametrization import ThetaParametrization
from .sparse_schur import SPARSE_BELOW_MAX_COLUMNS, SparseCholesky, SparseSchurPlan, column_pairs, plan_schur_block

__all__ = ["BlockedFactor"]

# Pairs Σ_g c_g² above which the precomputed product map would take too much memory;
# past it the Schur update uses a dense syrk instead.
_PRODUCT_MAP_LIMIT = 12_000_000
# Up to this many q² entries the product map writes the dense block directly.
_DENSE_ROWS_LIMIT = 9_000_000
# Relative cost of one scalar product in scipy's sparse matmul (~10 ns) against one in a BLAS
# syrk (~0.05 ns): measured, 10,000 x 3,000 levels on 600k rows: sparse 1.8 s, syrk 5.5 s.
_SPARSE_PRODUCT_COST = 200
# Off-diagonal blocks of at most this many entries are held dense: per evaluation they are
# rescaled in preallocated arrays, with no scipy.sparse object built (small nested and crossed
# designs, where the per-object overhead of scipy.sparse was most of an evaluation).
_SMALL_OFF_LIMIT = 65_536
# Models whose whole system [Z X y] has at most this many columns are factored as one dense
# matrix: a handful of array operations per evaluation instead of a pass over the blocks.
_DENSE_ALL_LIMIT = 100


def _csr_scale_columns(m: sp.csr_matrix, scale: np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix((m.data * scale[m.indices], m.indices, m.indptr), shape=m.shape)


def _blockdiag_sparse(blocks: np.ndarray) -> sp.csr_matrix:
    m, l, _ = blocks.shape
    base = np.arange(m)[:, None, None] * l
    rows = np.broadcast_to(base + np.arange(l)[None, :, None], blocks.shape)
    cols = np.broadcast_to(base + np.arange(l)[None, None, :], blocks.shape)
    return sp.csr_matrix((blocks.ravel(), (rows.ravel(), cols.ravel())), shape=(m * l, m * l))


def _bd_chol(d: np.ndarray) -> np.ndarray:
    if d.shape[1] == 1:
        return np.sqrt(d)
    if d.shape[1] == 2:  # closed form: far cheaper than a batched LAPACK call
        out = np.zeros_like(d)
        l11 = np.sqrt(d[:, 0, 0])
        l21 = d[:, 1, 0] / l11
        out[:, 0, 0] = l11
        out[:, 1, 0] = l21
        out[:, 1, 1] = np.sqrt(d[:, 1, 1] - l21 * l21)
        return out
    return np.linalg.cholesky(d)


def _bd_inv_lower(lo: np.ndarray) -> np.ndarray:
    if lo.shape[1] == 1:
        return 1.0 / lo
    if lo.shape[1] == 2:
        out = np.zeros_like(lo)
        out[:, 0, 0] = 1.0 / lo[:, 0, 0]
        out[:, 1, 1] = 1.0 / lo[:, 1, 1]
        out[:, 1, 0] = -lo[:, 1, 0] * out[:, 0, 0] * out[:, 1, 1]
        return out
    return np.linalg.inv(lo)


def _dense_times_bd_inv_t(mat: np.ndarray, inv_blocks: np.ndarray) -> np.ndarray:
    """mat · blockdiag(L)⁻ᵀ for dense ``mat`` (r × m·l), given the blocks of L⁻¹."""
    m, l, _ = inv_blocks.shape
    if l == 1:
        return mat * inv_blocks[:, 0, 0][None, :]
    m3 = mat.reshape(mat.shape[0], m, l)
    if l > 4:
        return np.einsum("rga,gba->rgb", m3, inv_blocks).reshape(mat.shape)
    # l² vectorised products beat einsum's generic loop by ~4x for tiny blocks
    out = np.zeros_like(m3)
    for b in range(l):
        for a in range(b + 1):  # L⁻¹ is lower triangular: inv[g, b, a] = 0 for a > b
            out[..., b] += m3[..., a] * inv_blocks[:, b, a]
    return out.reshape(mat.shape)


def _apply_T_right(mat: np.ndarray, T: np.ndarray) -> np.ndarray:
    """mat · (I ⊗ T) for dense ``mat`` with level-major columns."""
    l = T.shape[0]
    if l == 1:
        return mat * T[0, 0]
    m3 = mat.reshape(mat.shape[0], -1, l)
    return (m3 @ T).reshape(mat.shape)


def _apply_T_left_t(mat: np.ndarray, T: np.ndarray) -> np.ndarray:
    """(I ⊗ T)ᵀ · mat for dense ``mat`` with level-major rows."""
    l = T.shape[0]
    if l == 1:
        return mat * T[0, 0]
    return (T.T @ mat.reshape(-1, l, mat.shape[1])).reshape(mat.shape)


def _apply_T_sym(sym: np.ndarray, T: np.ndarray) -> np.ndarray:
    """(I ⊗ T)ᵀ · S · (I ⊗ T) for a dense symmetric S."""
    l = T.shape[0]
    if l == 1:
        return sym * (T[0, 0] ** 2)
    q = sym.shape[0]
    left = (T.T @ sym.reshape(q // l, l, q)).reshape(q, q)
    return _apply_T_right(left, T)


class _ProductMap:
    """Lower triangle of A·diag(w)·Aᵀ as a sparse linear map of w, for a fixed sparse A.

    Built once; each evaluation is then one sparse mat-vec and a scatter into a dense
    array, instead of a sparse-sparse product whose structure is recomputed every time.
    """

    def __init__(self, a: sp.csr_matrix):
        csc = a.tocsc()
        csc.sort_indices()
        counts = np.diff(csc.indptr)
        q = a.shape[0]
        pair_cols, pair_r1, pair_r2, pair_val = [], [], [], []
        # group columns by count so the pair expansion is vectorised per group
        for c in np.unique(counts[counts > 0]):
            cols = np.flatnonzero(counts == c)
            starts = csc.indptr[cols]
            idx = starts[:, None] + np.arange(c)[None, :]
            rows = csc.indices[idx]
            vals = csc.data[idx]
            i1, i2 = np.tril_indices(c)
            r1 = rows[:, i1]
            r2 = rows[:, i2]
            # rows are sorted ascending within a column: i1 >= i2 gives r1 >= r2
            pair_cols.append(np.repeat(cols, len(i1)))
            pair_r1.append(r1.ravel())
            pair_r2.append(r2.ravel())
            pair_val.append((vals[:, i1] * vals[:, i2]).ravel())
        r1 = np.concatenate(pair_r1).astype(np.int64)
        r2 = np.concatenate(pair_r2).astype(np.int64)
        cols = np.concatenate(pair_cols)
        vals = np.concatenate(pair_val)
        self.q = q
        # Small blocks: one map row per dense position, so the mat-vec *is* the dense lower
        # triangle (no scatter, and building needs no sort). Large blocks: unique positions.
        self.dense_rows = q * q <= _DENSE_ROWS_LIMIT
        if self.dense_rows:
            self.positions = None
            # CSC: the mat-vec walks each level's column once, ~2.5x faster than CSR here
            self.map = sp.csc_matrix((vals, (r1 * q + r2, cols)), shape=(q * q, a.shape[1]))
        else:
            self.positions, inverse = np.unique(r1 * q + r2, return_inverse=True)
            self.map = sp.csc_matrix((vals, (inverse, cols)), shape=(len(self.positions), a.shape[1]))

    @staticmethod
    def size(a: sp.csr_matrix) -> int:
        counts = np.diff(a.tocsc().indptr).astype(np.int64)
        return int((counts * (counts + 1) // 2).sum())

    pairs = staticmethod(column_pairs)  # Σ_g c_g²: the products of A diag(w) Aᵀ, sparse

    def lower(self, w: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The lower triangle of A diag(w) Aᵀ (upper zero), in ``out`` or a new array."""
        if self.dense_rows:
            return (self.map @ w).reshape(self.q, self.q)
        out.fill(0.0)
        out.ravel()[self.positions] = self.map @ w
        return out


class _CrossProductMap:
    """A·diag(w)·Bᵀ (dense, row-major) as a sparse linear map of w, for fixed sparse A and B
    with the same columns: the update between two later blocks from the first scalar term."""

    def __init__(self, a: sp.csr_matrix, b: sp.csr_matrix):
        ac, bc = a.tocsc(), b.tocsc()
        na, nb = np.diff(ac.indptr), np.diff(bc.indptr)
        npairs = na * nb
        total = int(npairs.sum())
        cols = np.repeat(np.arange(a.shape[1]), npairs)
        k = np.arange(total) - np.repeat(np.cumsum(npairs) - npairs, npairs)
        width = np.repeat(nb, npairs)
        ia = ac.indptr[cols] + k // np.maximum(width, 1)
        ib = bc.indptr[cols] + k % np.maximum(width, 1)
        rows = ac.indices[ia].astype(np.int64) * b.shape[0] + bc.indices[ib]
        self.shape = (a.shape[0], b.shape[0])
        self.map = sp.csc_matrix((ac.data[ia] * bc.data[ib], (rows, cols)),
                                 shape=(a.shape[0] * b.shape[0], a.shape[1]))

    @staticmethod
    def size(a: sp.csr_matrix, b: sp.csr_matrix) -> int:
        na = np.diff(a.tocsc().indptr).astype(np.int64)
        nb = np.diff(b.tocsc().indptr).astype(np.int64)
        return int((na * nb).sum())

    def dense(self, w: np.ndarray) -> np.ndarray:
        return (self.map @ w).reshape(self.shape)


class BlockedFactor:
    """The blocked Cholesky factor of Λᵀ-scaled crossproducts, updated in place per θ.

    After :meth:`update`, ``logdet_z``, ``logdet_x`` and ``pwrss`` give the pieces of the
    profiled deviance, and :meth:`solve` the fixed effects and spherical random effects.
    """

    def __init__(self, cp: BlockedCrossproducts, dense: str | DenseOps = "lapack",
                 schur: str = "auto"):
        """``dense`` names the :class:`~mixedmodels.core.backends.DenseOps` backend. When the
        crossproducts' values change after construction (``cp.values_fixed`` False: PIRLS
        reweights them), the precomputed product maps and dense copies, which bake in the
        values, are not built and the generic sparse/dense updates are used.

        ``schur`` (``Control.schur``) chooses how a term's Schur block is factored when it
        fills in but its pattern stays sparse (the last term's, or a middle one's with at most
        ``SPARSE_BELOW_MAX_COLUMNS`` random-effect columns below it): ``"auto"`` decides from the pattern's
        estimated cost (:mod:`~mixedmodels.core.sparse_schur`), ``"sparse"`` factors it sparse
        whenever the structure allows, ``"dense"`` always dense."""
        self.cp = cp
        self.dense = get_dense(dense)
        fixed_values = cp.values_fixed
        k = len(cp.terms)
        # Terms of three or more columns keep the blocked path: on ridge optima (Machines'
        # (0 + Machine | Worker)) BOBYQA's stopping point depends on the last bits of the
        # objective, and the lme4 agreement of those fits was established with the blocked one.
        small = (sum(t.q for t in cp.terms) + cp.p + 1 <= _DENSE_ALL_LIMIT
                 and all(t.ncols <= 2 for t in cp.terms))
        # the blocked path's precomputed maps are not needed when the system is one dense matrix
        maps = fixed_values and not small
        self.k = k
        self.parametrization = ThetaParametrization.of(cp.terms)
        self.layouts = self.parametrization.layouts
        self.theta_sizes = self.parametrization.sizes
        # Symbolic pass: which diagonal blocks stay block-diagonal, which off-diagonals stay sparse.
        self.diag_is_bd = [True] * k
        pattern: dict[tuple[int, int], sp.csr_matrix | None] = {}
        for r in range(k):
            for i in range(r):
                # a small system's patterns as dense arrays: scipy.sparse's per-call overhead
                # was most of a small fit's set-up (the same operations below work on both)
                off = cp.off[(r, i)].toarray() if small else cp.off[(r, i)]
                pattern[(r, i)] = (off != 0).astype(np.int8)
        for i in range(k):
            if i > 0:
                for j in range(i):
                    pij = pattern[(i, j)]
                    if pij is None:
                        self.diag_is_bd[i] = False
                        break
                    prod_rows, prod_cols = (pij.astype(np.int64) @ pij.T.astype(np.int64)).nonzero()
                    l = cp.terms[i].ncols
                    if np.any(prod_rows // l != prod_cols // l):
                        self.diag_is_bd[i] = False
                        break
            for r in range(i + 1, k):
                if not self.diag_is_bd[i]:
                    pattern[(r, i)] = None  # dense
                    continue
                pat = pattern[(r, i)]
                for j in range(i):
                    prj, pij = pattern[(r, j)], pattern[(i, j)]
                    if prj is None or pij is None:
                        pat = None
                        break
                    pat = ((pat + (prj.astype(np.int64) @ pij.T.astype(np.int64))) != 0).astype(np.int8)
                pattern[(r, i)] = pat
        self.off_is_sparse = {key: val is not None for key, val in pattern.items()}
        # Small off-diagonal blocks: dense, filled from the CSR values through a fixed index map
        # (the pattern never changes; PIRLS changes the values only).
        self._small_off: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for (r, i) in pattern:
            a = cp.off[(r, i)]
            if not small and a.shape[0] * a.shape[1] <= _SMALL_OFF_LIMIT:
                a = a.tocsr()
                rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
                self._small_off[(r, i)] = (rows * a.shape[1] + a.indices, np.zeros(a.shape))
                self.off_is_sparse[(r, i)] = False
        #: terms whose Schur block is factored sparse, with their symbolic plan
        self.sparse_plans: dict[int, SparseSchurPlan] = {}
        for i in range(1, k):
            # a block that fills in from sparse blocks to its left; the blocks below it are then
            # dense (L_ri = M_ri F⁻ᵀ), so only few columns may sit below (pupils, schools and a
            # few dozen districts; the terms are sorted by their numbers of levels)
            below = sum(cp.terms[r].q for r in range(i + 1, k))
            if (small or self.diag_is_bd[i] or below > SPARSE_BELOW_MAX_COLUMNS
                    or not all(pattern[(i, j)] is not None and self.off_is_sparse[(i, j)]
                               for j in range(i))):
                continue
            term = cp.terms[i]
            plan = plan_schur_block([pattern[(i, j)] for j in range(i)], term.nlevels, term.ncols,
                                    {"auto": None, "sparse": True, "dense": False}[schur],
                                    rhs_columns=below)
            if plan is not None:
                self.sparse_plans[i] = plan
        # Fast Schur update from the first term (block-diagonal, scalar) into a dense block.
        self.product_maps: dict[int, _ProductMap | None] = {}
        for i in range(1, k):
            use_map = (maps and not self.diag_is_bd[i] and i not in self.sparse_plans
                       and cp.terms[0].ncols == 1
                       and _ProductMap.size(cp.off[(i, 0)]) <= _PRODUCT_MAP_LIMIT)
            self.product_maps[i] = _ProductMap(cp.off[(i, 0)]) if use_map else None
        # Same for the dense off-diagonal blocks between two later scalar terms
        self.cross_maps: dict[tuple[int, int], _CrossProductMap] = {}
        for r in range(2, k):
            for i in range(1, r):
                if (maps and not self.off_is_sparse[(r, i)] and cp.terms[0].ncols == 1
                        and cp.terms[r].ncols == 1 and cp.terms[i].ncols == 1
                        and cp.terms[r].q * cp.terms[i].q <= _DENSE_ROWS_LIMIT
                        and _CrossProductMap.size(cp.off[(r, 0)], cp.off[(i, 0)]) <= _PRODUCT_MAP_LIMIT):
                    self.cross_maps[(r, i)] = _CrossProductMap(cp.off[(r, 0)], cp.off[(i, 0)])
        # Without a product map, the update from the first (scalar) term into a scalar dense
        # block is a dense syrk; keep A_i0 dense once so each evaluation only rescales it.
        # When A_i0 is sparse enough, a sparse product A_i0 W A_0i (Σ_g c_g² products, c_g the
        # entries of A_i0's column g) beats the dense syrk (q_i² q_0): decided from the pattern.
        self._dense_first: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._sparse_first: dict[int, sp.csr_matrix] = {}
        #: per term, how its diagonal block is formed and factored (recorded in the fit's optinfo)
        self.schur: dict[int, str] = {}
        for i in range(k):
            if self.diag_is_bd[i]:
                self.schur[i] = "block-diagonal"
                continue
            if i in self.sparse_plans:
                self.schur[i] = "sparse, supernodal (SuperLU, minimum-degree order)"
                continue
            a = cp.off.get((i, 0)) if i > 0 else None
            first = (i > 0 and self.product_maps.get(i) is None and cp.terms[0].ncols == 1
                     and cp.terms[i].ncols == 1 and a is not None)
            if i > 0 and self.product_maps.get(i) is not None:
                self.schur[i] = "dense, product map"
            elif first and maps and _SPARSE_PRODUCT_COST * _ProductMap.pairs(a) < a.shape[0] ** 2 * a.shape[1]:
                self._sparse_first[i] = a.T.tocsr()
                self.schur[i] = "dense, sparse product"
            elif first and maps and a.shape[0] * a.shape[1] <= 60_000_000:
                dense = np.ascontiguousarray(a.toarray())
                self._dense_first[i] = (dense, np.empty_like(dense))
                self.schur[i] = "dense, syrk"
            else:
                self.schur[i] = "dense"
        self._dense_work = {i: np.empty((cp.terms[i].q, cp.terms[i].q))
                            for i in range(k) if not self.diag_is_bd[i] and not small
                            and i not in self.sparse_plans}
        # (row, column) of each entry of a term's within-level blocks in its dense block
        self._bd_index: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i in self._dense_work:
            q, l = cp.terms[i].q, cp.terms[i].ncols
            idx = np.arange(q)
            self._bd_index[i] = (idx[:, None], (idx // l)[:, None] * l + np.arange(l)[None, :])
        self._views_pending = False
        self._L_diag: list[np.ndarray] = [None] * k  # type: ignore[list-item]
        self._L_inv_bd: list[np.ndarray | None] = [None] * k
        self._L_off: dict[tuple[int, int], sp.csr_matrix | np.ndarray] = {}
        self._L_xy: list[np.ndarray] = [None] * k  # type: ignore[list-item]
        self._R_xy: np.ndarray | None = None
        self.T = []
        self._dense_map: tuple | None = None
        self._quad_map: tuple | None = None
        qs = [t.q for t in cp.terms]
        self.offsets = np.concatenate([[0], np.cumsum(qs)]).astype(int)
        self.q = int(self.offsets[-1])
        #: "dense": the whole system is one dense matrix; "blocked": the block algorithm
        self.mode = "dense" if small else "blocked"
        self._full: np.ndarray | None = None
        self._lam = np.ones(self.q + cp.p + 1)
        if self.mode == "dense":
            self.off_is_sparse = {key: False for key in self.off_is_sparse}
            if fixed_values:
                self._full = self._assemble()

    def describe(self, names: list[str]) -> dict:
        """The factor's choices for ``optinfo.factor``: one dense system or blocks, per term
        (named by ``names``) how its diagonal block is formed and factored, and for a sparse
        Schur block its fill and the estimates that chose it."""
        record = {"mode": self.mode,
                  "blocks": {name: self.schur[i] if self.mode == "blocked" else "one dense matrix"
                             for i, name in enumerate(names)}}
        if self.sparse_plans:
            record["sparse"] = {names[i]: plan.describe() for i, plan in self.sparse_plans.items()}
        return record

    def with_crossproducts(self, cp: BlockedCrossproducts) -> "BlockedFactor":
        """A factor of crossproducts with the same ``ZᵀWZ`` (a new response: refit), sharing
        this one's symbolic analysis, product maps and index maps; its work arrays are its own."""
        new = copy.copy(self)
        new.cp = cp
        k = self.k
        new.T = []
        new._views_pending = False
        new._L_diag, new._L_inv_bd, new._L_xy = [None] * k, [None] * k, [None] * k
        new._L_off, new._R_xy = {}, None
        new._dense_work = {i: np.empty_like(a) for i, a in self._dense_work.items()}
        new._dense_first = {i: (a, np.empty_like(w)) for i, (a, w) in self._dense_first.items()}
        new._small_off = {key: (flat, np.zeros_like(buf)) for key, (flat, buf) in self._small_off.items()}
        new._quad_map = None  # it bakes in the y row
        if self._full is not None:
            # ZᵀWZ, XᵀWZ and XᵀWX are shared: only the y row and column change
            new._full = self._full.copy()
            q, p = self.q, cp.p
            for i in range(k):
                a, b = self.offsets[i], self.offsets[i + 1]
                new._full[q + p, a:b] = new._full[a:b, q + p] = cp.zxy[i][p]
            new._full[q:, q + p] = new._full[q + p, q:] = cp.xyxy[:, p]
        return new

    # -- the whole system as one dense matrix (small models) -----------------------------------
    def _assemble(self) -> np.ndarray:
        """[Z X y]ᵀ W [Z X y] as one dense symmetric matrix, from the blocks."""
        cp, o, q = self.cp, self.offsets, self.q
        full = np.zeros((q + cp.p + 1, q + cp.p + 1))
        for i, term in enumerate(cp.terms):
            a, l = o[i], term.ncols
            idx = a + np.arange(term.q).reshape(term.nlevels, l)
            full[idx[:, :, None], idx[:, None, :]] = cp.diag[i]
            full[q:, a:o[i + 1]] = cp.zxy[i]
            full[a:o[i + 1], q:] = cp.zxy[i].T
            for r in range(i + 1, self.k):
                block = cp.off[(r, i)].toarray()
                full[o[r]:o[r + 1], a:o[i + 1]] = block
                full[a:o[i + 1], o[r]:o[r + 1]] = block.T
        full[q:, q:] = cp.xyxy
        return full

    # T, per term, from θ; in the dense mode made only when something reads it
    @property
    def T(self) -> list[np.ndarray]:
        if self._T is None:
            self._T = self.split_theta(self._theta_now)
        return self._T

    @T.setter
    def T(self, value: list[np.ndarray]) -> None:
        self._T = value

    def _dense_theta_map(self) -> tuple:
        """For lme4's (linear) structures: which entries of the Λ-scaling vector each scalar
        term's θ fills, and per vector term its slice of θ and T's layout (made once)."""
        if self._dense_map is None:
            o, pos = self.offsets, 0
            cols, idx, vector = [], [], []
            for i, (l, (rows, tcols), size) in enumerate(zip(self.parametrization.ncols, self.layouts,
                                                              self.theta_sizes)):
                if l == 1:
                    cols.append(np.arange(o[i], o[i + 1]))
                    idx.append(np.full(o[i + 1] - o[i], pos))
                else:
                    vector.append((i, l, rows, tcols, pos, pos + size))
                pos += size
            self._dense_map = (np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64),
                               np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64), vector)
        return self._dense_map

    def _quadratic_map(self) -> tuple | None:
        """ΛᵀAΛ outside the [X y] block as a quadratic form in θ̃ = (1, θ): per pair k ≤ l of
        θ̃'s entries the matrix M_kl = E_kᵀAE_l (+ E_lᵀAE_k), Λ = Σ θ̃_k E_k, stacked as the rows
        of one (pairs, n²) array, so that each evaluation is one matrix-vector product instead
        of a pass of small products per vector term. Made once per system, for lme4's
        structures with a vector term and fixed values (None otherwise, or when too large)."""
        if self._quad_map is None:
            full, o, q = self._full, self.offsets, self.q
            n = full.shape[0]
            k = self.n_theta
            npairs = k * (k + 1) // 2 + k  # pairs among θ, and θ with the constant 1
            if npairs * n * n > 1_000_000:
                self._quad_map = (None,)
                return None
            # Λ's entries as (source row, θ̃ index, destination column); θ̃_0 = 1 on [X y]
            src, which, dst = [np.arange(q, n)], [np.zeros(n - q, dtype=np.int64)], [np.arange(q, n)]
            pos = 1
            for i, (l, (rows, tcols), size) in enumerate(zip(self.parametrization.ncols, self.layouts,
                                                              self.theta_sizes)):
                base = o[i] + l * np.arange((o[i + 1] - o[i]) // l)
                for j in range(size):
                    src.append(base + rows[j])
                    dst.append(base + tcols[j])
                    which.append(np.full(len(base), pos + j))
                pos += size
            src, which, dst = np.concatenate(src), np.concatenate(which), np.concatenate(dst)
            # M_ab[dst_u, dst_v] += A[src_u, src_v] for every ordered pair of entries (u, v) of
            # θ̃_a and θ̃_b: all at once. At most two entries meet in one place (u, v and v, u
            # of one pair), and their sum does not depend on the order.
            pair = np.full((k + 1, k + 1), -1)
            left, right = np.triu_indices(k + 1)
            left, right = left[1:], right[1:]  # (0, 0), the [X y] block: A's own, set each evaluation
            pair[left, right] = pair[right, left] = np.arange(len(left))
            index = pair[which[:, None], which[None, :]]
            used = index >= 0
            where = index * (n * n) + dst[:, None] * n + dst[None, :]
            values = full[src[:, None], src[None, :]]
            stack = np.bincount(where[used], values[used],
                                minlength=len(left) * n * n).reshape(len(left), n * n)
            # the Cholesky reads the lower triangle only: keep its entries that some M_ab fills
            lower = np.tril(np.ones((n, n), dtype=bool)).ravel()
            keep = np.flatnonzero(lower & (stack != 0).any(axis=0))
            ext = np.ones(k + 1)
            self._quad_map = (np.array(left), np.array(right), keep, np.ascontiguousarray(stack[:, keep]),
                              ext)
        return None if self._quad_map[0] is None else self._quad_map

    def _update_dense(self, theta: np.ndarray | None = None) -> None:
        full = self._full if self._full is not None else self._assemble()
        o, q, n = self.offsets, self.q, full.shape[0]
        if self._full is not None:  # penalized fits and posteriors replace the [X y] block
            full[q:, q:] = self.cp.xyxy
        lam = self._lam
        quad = None
        if theta is not None and self._full is not None and self._dense_theta_map()[2]:
            quad = self._quadratic_map()
        if quad is not None:
            left, right, keep, stack, ext = quad
            ext[1:] = theta  # θ̃ = (1, θ), in the map's own buffer
            s = np.zeros((n, n))  # its strict upper triangle is never read
            s.ravel()[keep] = (ext.take(left) * ext.take(right)) @ stack
            s[q:, q:] = full[q:, q:]
            self._cholesky_dense(s, q, n)
            return
        if theta is not None:  # lme4's structures: Λ's entries straight from θ
            cols, idx, vector = self._dense_theta_map()
            lam[cols] = theta[idx]
            Ts = []
            for i, l, rows, tcols, start, stop in vector:
                T = np.zeros((l, l))
                T[rows, tcols] = theta[start:stop]
                Ts.append((i, T))
        else:
            Ts = []
            for i, T in enumerate(self.T):
                if T.shape[0] == 1:
                    lam[o[i]:o[i + 1]] = T[0, 0]
                else:
                    Ts.append((i, T))
        s = full * np.multiply.outer(lam, lam)
        for i, T in Ts:
            a, b = o[i], o[i + 1]
            # Tᵀ(A T) and (TᵀA)T round differently: the blocked path's order, (TᵀA)T
            s[a:b, :] = _apply_T_left_t(s[a:b, :], T)
            s[:, a:b] = _apply_T_right(s[:, a:b], T)
        self._cholesky_dense(s, q, n)

    def _cholesky_dense(self, s: np.ndarray, q: int, n: int) -> None:
        """Add I to the Z block of ΛᵀAΛ and factor it (in place)."""
        s.ravel()[:q * (n + 1):n + 1] += 1.0
        try:  # in place: s is this evaluation's own array; the views clean the upper triangle
            L = self.dense.cholesky_lower(s)
        except np.linalg.LinAlgError:
            raise np.linalg.LinAlgError("the system is not positive definite") from None
        self._full_factor = L
        self._log_diag = np.log(L.ravel()[::n + 1])
        self._views_pending = True

    def _views(self) -> None:
        """The blocked views (of the dense factor) the rest of the package reads."""
        self._views_pending = False
        L, o, q = self._full_factor, self.offsets, self.q
        for i, term in enumerate(self.cp.terms):
            a, b = o[i], o[i + 1]
            if self.diag_is_bd[i]:
                m, l = term.nlevels, term.ncols
                blocks = L[a:b, a:b].reshape(m, l, m, l)[np.arange(m), :, np.arange(m), :]
                if l == 2:  # the factor's strict upper triangle holds scratch
                    blocks[:, 0, 1] = 0.0
                self._L_diag[i] = blocks
                self._L_inv_bd[i] = _bd_inv_lower(blocks)
            else:
                self._L_diag[i] = np.tril(L[a:b, a:b])
                self._L_inv_bd[i] = None
            for r in range(i + 1, self.k):
                self._L_off[(r, i)] = L[o[r]:o[r + 1], a:b]
            self._L_xy[i] = L[q:, a:b]
        self._R_xy = np.tril(L[q:, q:])

    # the factor's blocks; in the dense mode, views of the dense factor made on first use
    @property
    def L_diag(self) -> list[np.ndarray]:
        if self._views_pending:
            self._views()
        return self._L_diag

    @property
    def L_inv_bd(self) -> list[np.ndarray | None]:
        if self._views_pending:
            self._views()
        return self._L_inv_bd

    @property
    def L_off(self) -> dict:
        if self._views_pending:
            self._views()
        return self._L_off

    @property
    def L_xy(self) -> list[np.ndarray]:
        if self._views_pending:
            self._views()
        return self._L_xy

    @property
    def R_xy(self) -> np.ndarray | None:
        if self._views_pending:
            self._views()
        return self._R_xy

    @R_xy.setter
    def R_xy(self, value: np.ndarray | None) -> None:
        self._R_xy = value

    # -- θ ↔ T ---------------------------------------------------------------------------
    @property
    def n_theta(self) -> int:
        return self.parametrization.n_theta

    def theta_lower_bounds(self) -> np.ndarray:
        # made once: the structures rebuild their layouts per call, and a small fit asks ~5 times
        lower = self.__dict__.get("_lower_bounds")
        if lower is None:
            lower = self._lower_bounds = self.parametrization.lower_bounds()
        return lower.copy()

    def theta_start(self) -> np.ndarray:
        return self.parametrization.start()

    def split_theta(self, theta: np.ndarray) -> list[np.ndarray]:
        return self.parametrization.split(theta)

    # -- the factorisation ---------------------------------------------------------------
    def _scaled_off(self, r: int, i: int) -> sp.csr_matrix | np.ndarray:
        a = self.cp.off[(r, i)]
        Tr, Ti = self.T[r], self.T[i]
        small = self._small_off.get((r, i))
        if small is not None:
            flat, dense = small
            dense.ravel()[flat] = a.data
            if Tr.shape[0] == 1 and Ti.shape[0] == 1:
                return dense * (Tr[0, 0] * Ti[0, 0])
            return _apply_T_right(_apply_T_left_t(dense, Tr), Ti)
        if Tr.shape[0] == 1 and Ti.shape[0] == 1:
            return a * (Tr[0, 0] * Ti[0, 0])
        lam_r = _blockdiag_sparse(np.broadcast_to(Tr, (self.cp.terms[r].nlevels, *Tr.shape)))
        lam_i = _blockdiag_sparse(np.broadcast_to(Ti, (self.cp.terms[i].nlevels, *Ti.shape)))
        return (lam_r.T @ a @ lam_i).tocsr()

    def _times_inv_t(self, mat, i: int):
        """mat · L_iiᵀ⁻¹ for a sparse or dense ``mat``."""
        if self.diag_is_bd[i]:
            inv = self.L_inv_bd[i]
            if sp.issparse(mat):
                if inv.shape[1] == 1:
                    return _csr_scale_columns(mat.tocsr(), inv[:, 0, 0])
                return (mat @ _blockdiag_sparse(inv.transpose(0, 2, 1))).tocsr()
            return _dense_times_bd_inv_t(mat, inv)
        dense = mat.toarray() if sp.issparse(mat) else mat
        if i in self.sparse_plans:
            return self.L_diag[i].solve_half(np.asarray(dense).T).T
        # X L⁻ᵀ = (L⁻¹ Xᵀ)ᵀ
        return self.dense.trsm(self.L_diag[i], dense.T).T

    def updates_by_syrk(self, i: int) -> bool:
        """Whether term i's dense block is updated from the first term by one dense syrk (the
        "dense, syrk" mode, whose buffer :meth:`first_term_dense` hands to the gradient)."""
        return i in self._dense_first

    def first_term_dense(self, i: int) -> np.ndarray | None:
        """``L_i0`` as a dense array when the last update formed it so (the "dense, syrk" Schur
        update keeps ``Tᵢ A_i0 √W₀`` in a work buffer, which equals ``L_i0``); else None."""
        entry = self._dense_first.get(i)
        return None if entry is None else entry[1]

    def _first_term_weights(self) -> np.ndarray | None:
        """W = Λ₀ (Λ₀ᵀ A₀₀ Λ₀ + I)⁻¹ Λ₀ᵀ per level for a scalar first term: with it
        L_i0 L_j0ᵀ = Tᵢ Tⱼ A_i0 W A_j0ᵀ, which the product maps and the dense path use."""
        if self.cp.terms[0].ncols != 1:
            return None
        t0 = self.T[0][0, 0]
        return (t0 * t0) / (t0 * t0 * self.cp.diag[0][:, 0, 0] + 1.0)

    def update(self, theta: np.ndarray) -> "BlockedFactor":
        """Factor the crossproducts scaled by Λ(θ)."""
        cp = self.cp
        if self.mode == "dense" and self.parametrization.is_linear:
            # a copy: T is made from it later, if asked for, and the caller may reuse its array
            self._theta_now = np.array(theta, dtype=float)
            self._T = None
            self._update_dense(self._theta_now)
            return self
        self.T = self.split_theta(np.asarray(theta, dtype=float))
        if self.mode == "dense":
            self._update_dense()
            return self
        k = self.k
        w0 = self._first_term_weights() if k > 1 else None
        for i in range(k):
            term = cp.terms[i]
            Ti = self.T[i]
            l = term.ncols
            # --- diagonal block
            if l == 1:
                scaled = cp.diag[i] * (Ti[0, 0] ** 2)
            else:
                scaled = Ti.T @ cp.diag[i] @ Ti
            scaled = scaled + np.eye(l)[None, :, :]
            if i in self.sparse_plans:
                s = _blockdiag_sparse(scaled)
                for j in range(i):
                    lij = self.L_off[(i, j)]
                    s = s - lij @ lij.T
                self.L_diag[i] = SparseCholesky(s, self.sparse_plans[i])
                self.L_inv_bd[i] = None
            elif self.diag_is_bd[i]:
                d = scaled
                for j in range(i):
                    lij = self.L_off[(i, j)]
                    if sp.issparse(lij):
                        d = d - _extract_blocks((lij @ lij.T).tocsr(), term.nlevels, l)
                    else:  # only the within-level blocks of L_ij L_ijᵀ
                        l3 = lij.reshape(term.nlevels, l, lij.shape[1])
                        d = d - l3 @ l3.transpose(0, 2, 1)
                self.L_diag[i] = _bd_chol(d)
                self.L_inv_bd[i] = _bd_inv_lower(self.L_diag[i])
            else:
                d = self._dense_work[i]
                pmap = self.product_maps.get(i)
                if pmap is not None:
                    # lower triangle of Λᵢᵀ A_i0 W A_i0ᵀ Λᵢ
                    if l == 1:  # fold the sign and Tᵢ² into W: no passes over the dense block
                        d = pmap.lower(w0 * -(Ti[0, 0] ** 2), d)
                    else:
                        d = -_apply_T_sym(_symmetrize_lower(pmap.lower(w0, d)), Ti)
                    start = 1
                else:
                    d.fill(0.0)
                    start = 0
                for j in range(start, i):
                    if j == 0 and i in self._sparse_first:
                        a = cp.off[(i, 0)]
                        prod = _csr_scale_columns(a, w0 * (Ti[0, 0] ** 2)) @ self._sparse_first[i]
                        d -= prod.toarray()
                        continue
                    if j == 0 and i in self._dense_first:
                        dense, work = self._dense_first[i]
                        lij = np.multiply(dense, (Ti[0, 0] * np.sqrt(w0))[None, :], out=work)
                    else:
                        lij = self.L_off[(i, j)]
                        lij = lij.toarray() if sp.issparse(lij) else lij
                    d -= self.dense.syrk_lower(lij)
                rows, cols = self._bd_index[i]
                d[rows, cols] += scaled.reshape(term.q, l)
                try:
                    self.L_diag[i] = self.dense.cholesky_lower(d)
                except np.linalg.LinAlgError:
                    raise np.linalg.LinAlgError(f"block {i} is not positive definite") from None
                self.L_inv_bd[i] = None
            # --- off-diagonal blocks below it
            for r in range(i + 1, k):
                m = self._scaled_off(r, i)
                cross = self.cross_maps.get((r, i))
                if cross is not None:
                    m = cross.dense(w0 * -(self.T[r][0, 0] * Ti[0, 0])) + m
                for j in range(1 if cross is not None else 0, i):
                    prod = self.L_off[(r, j)] @ self.L_off[(i, j)].T
                    m = m - prod
                if not self.off_is_sparse[(r, i)] and sp.issparse(m):
                    m = m.toarray()
                elif sp.issparse(m):
                    m = m.tocsr()
                else:
                    m = np.asarray(m)
                self.L_off[(r, i)] = self._times_inv_t(m, i)
            # --- the [X y] rows
            m = _apply_T_right(cp.zxy[i], Ti)
            for j in range(i):
                lij = self.L_off[(i, j)]
                if sp.issparse(lij):
                    m = m - np.asarray((lij @ self.L_xy[j].T).T)
                else:
                    m = m - self.L_xy[j] @ lij.T
            self.L_xy[i] = self._times_inv_t(m, i)
        d = cp.xyxy.copy()
        for j in range(k):
            d -= self.L_xy[j] @ self.L_xy[j].T
        try:
            chol = self.dense.cholesky_lower(d, clean=True)
        except np.linalg.LinAlgError:
            # a rank-deficient X shows up here; the design step removes aliased columns
            raise np.linalg.LinAlgError("the fixed-effects block is not positive definite") from None
        self.R_xy = chol
        return self

    # -- pieces of the objective -----------------------------------------------------------
    @property
    def logdet_z(self) -> float:
        if self.mode == "dense":
            return 2.0 * float(np.add.reduce(self._log_diag[:self.q]))  # .sum(), minus a wrapper
        total = 0.0
        for i in range(self.k):
            L = self.L_diag[i]
            if self.diag_is_bd[i]:
                total += 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum()
            elif i in self.sparse_plans:
                total += L.logdet
            else:
                total += self.dense.logdet_chol(L)
        return total

    @property
    def logdet_x(self) -> float:
        p = self.cp.p
        if self.mode == "dense":
            return 2.0 * float(np.add.reduce(self._log_diag[self.q:self.q + p]))
        return 2.0 * np.log(np.diagonal(self.R_xy)[:p]).sum()

    @property
    def pwrss(self) -> float:
        if self.mode == "dense":
            return float(self._full_factor[-1, -1] ** 2)
        return float(self.R_xy[-1, -1] ** 2)

    def solve(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """β̂ and the spherical random effects u (one vector per term) at the current θ."""
        p = self.cp.p
        R = self.R_xy
        beta = self.dense.trsm(np.ascontiguousarray(R[:p, :p]), R[p, :p], trans=True) if p else np.zeros(0)
        u: list[np.ndarray] = [None] * self.k  # type: ignore[list-item]
        for i in reversed(range(self.k)):
            c = self.L_xy[i][p] - self.L_xy[i][:p].T @ beta
            for r in range(i + 1, self.k):
                lri = self.L_off[(r, i)]
                c = c - np.asarray(lri.T @ u[r]).ravel()
            u[i] = self.solve_diag_t(i, c)
        return beta, u

    def solve_diag_t(self, i: int, rhs: np.ndarray) -> np.ndarray:
        """L_iiᵀ⁻¹ rhs (rhs a vector or a matrix with q_i rows)."""
        if self.diag_is_bd[i]:
            inv = self.L_inv_bd[i]
            m, l, _ = inv.shape
            shaped = rhs.reshape(m, l, -1)
            return np.einsum("gba,gbc->gac", inv, shaped).reshape(rhs.shape)
        if i in self.sparse_plans:
            return self.L_diag[i].solve_half_t(rhs)
        return self.dense.trsm(self.L_diag[i], rhs, trans=True)


def _symmetrize_lower(lower: np.ndarray) -> np.ndarray:
    return lower + np.tril(lower, -1).T


def _extract_blocks(prod, nlevels: int, l: int) -> np.ndarray:
    """The within-level l × l blocks of a (block-diagonal pattern) q × q matrix."""
    if l == 1:
        diag = prod.diagonal() if sp.issparse(prod) else np.diagonal(prod)
        return np.asarray(diag).reshape(nlevels, 1, 1)
    base = np.arange(nlevels)[:, None, None] * l
    rows = np.broadcast_to(base + np.arange(l)[None, :, None], (nlevels, l, l))
    cols = np.broadcast_to(base + np.arange(l)[None, None, :], (nlevels, l, l))
    if sp.issparse(prod):
        vals = np.asarray(prod.tocsr()[rows.ravel(), cols.ravel()]).ravel()
    else:
        vals = prod[rows.ravel(), cols.ravel()]
    return vals.reshape(nlevels, l, l)
