"""A sparse Cholesky factor for a Schur block that stays sparse (partially crossed designs).

When some levels of the first term meet several levels of a later term, that term's diagonal
block fills in. In a fully crossed design it fills completely and a dense LAPACK Cholesky is
the right tool; in a partially crossed one (pupils who change school, patients seen at a few
clinics) it stays sparse, and a fill-reducing ordering and a sparse factor cost a fraction of
the dense q³/3. The choice is made once, from the pattern (:func:`analyse_pattern`), and the
ordering found then is reused at every evaluation.

SuperLU (scipy's ``splu``, a supernodal factorization) is used with symmetric mode and no
pivoting on the pre-ordered block: for a positive definite S it returns P S Pᵀ = L D Lᵀ with
L unit lower triangular, so F = Pᵀ L D^½ is a factor with F Fᵀ = S. It is not triangular in
the original order, which the blocked algorithm does not need: it only applies F⁻¹ and F⁻ᵀ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

__all__ = ["SparseSchurPlan", "SparseCholesky", "analyse_pattern", "sparse_may_pay", "plan_schur_block",
           "column_pairs", "FLOPS_DENSE", "SPARSE_BELOW_MAX_COLUMNS"]

# Blocks below this order are factored dense: LAPACK on a few hundred columns costs
# microseconds, less than SuperLU's set-up.
SPARSE_MIN_ORDER = 400
# A pattern denser than this fraction of q² is not worth an ordering (fully crossed designs).
SPARSE_MAX_DENSITY = 0.2
#: LAPACK's Cholesky and syrk on the 2-core development machine, flops per second (the cost
#: model's exact-path estimate uses the same rate)
FLOPS_DENSE = 2.5e10
# Seconds per unit of work of the sparse factor: SuperLU's flops (~2e9 per second, and it forms
# both triangles) and scipy's products and re-indexing per stored entry. Checked on
# bench/bench_partially_crossed.py's designs, one BLAS thread: the sparse factor took 14.9 ms
# against 15.0 estimated (40k x 8k) and 105 ms against 99 (300k x 30k); the dense 8,000 block's
# whole update took 4.0 s against 6.8 s estimated, so the choice leans, if anything, to dense.
_SPARSE_FLOP = 5e-10
_SPARSE_ENTRY = 6e-8
# Seconds per stored entry of L per column solved with it (scipy's triangular solve and its
# re-indexing): 44 ms per evaluation for 200 district columns below an 8,000-school block whose
# factor has 40,112 entries (bench_partially_crossed.py's pc3_40k_8k_200).
_SPARSE_SOLVE_ENTRY = 5e-9
# Past this many products the pattern itself (up to one entry per product) would not fit in
# memory: MovieLens-32M's movie block has ~1e10 of them (its product would need hundreds of GB).
_MAX_UPDATE_PRODUCTS = 100_000_000
# A middle term's block may be factored sparse only with at most this many random-effect columns
# below it: its blocks below, L_ri = M_ri F⁻ᵀ, fill in and are kept dense (q_r × q_i each).
SPARSE_BELOW_MAX_COLUMNS = 2048
# The sparse factor is chosen when its estimate is below this fraction of the dense one (the
# dense path's timings are the better known).
_SPARSE_ADVANTAGE = 0.5


@dataclass
class SparseSchurPlan:
    """The symbolic analysis of one Schur block: its fill-reducing order and the estimates."""

    order: np.ndarray        #: position k of the ordered block holds the block's row order[k]
    nnz_pattern: int         #: stored entries of the block
    nnz_factor: int          #: stored entries of L (the fill-in included)
    sparse_seconds: float    #: estimated per evaluation, the sparse factor
    dense_seconds: float     #: estimated per evaluation, the dense factor

    def describe(self) -> dict:
        return {"nnz_block": self.nnz_pattern, "nnz_factor": self.nnz_factor,
                "estimated_ms_sparse": round(1e3 * self.sparse_seconds, 3),
                "estimated_ms_dense": round(1e3 * self.dense_seconds, 3)}


def _dense_seconds(q: int, rhs_columns: int = 0) -> float:
    """The dense factor and its triangular solves: the [X y] rows (about two) and the
    ``rhs_columns`` of the terms below."""
    return (q ** 3 / 3.0 + q * q * (2.0 + rhs_columns)) / FLOPS_DENSE


def sparse_may_pay(q: int, update_products: int, rhs_columns: int = 0) -> bool:
    """Whether a sparse factor could beat the dense one at all, before the pattern is formed:
    the sparse update's products alone must cost less than the dense factor (a fully crossed
    design's pattern would take longer to form than to factor dense)."""
    return (q >= SPARSE_MIN_ORDER and update_products <= _MAX_UPDATE_PRODUCTS
            and _SPARSE_ENTRY * update_products < _SPARSE_ADVANTAGE * _dense_seconds(q, rhs_columns))


def column_pairs(incidence: sp.spmatrix) -> int:
    """Σ_g c_g², c_g the entries of column g: the scalar products of A diag(w) Aᵀ as a sparse
    product, for the pattern (or matrix) A."""
    a = sp.csr_matrix(incidence)
    counts = np.bincount(a.indices, minlength=a.shape[1]).astype(np.int64)
    return int((counts * counts).sum())


def plan_schur_block(incidences: list[sp.spmatrix], nlevels: int, ncols: int,
                     force: bool | None = None, rhs_columns: int = 0) -> SparseSchurPlan | None:
    """The plan for one term's Schur block from the patterns of the blocks to its left.

    Its pattern is the term's own within-level ``ncols × ncols`` blocks plus Σⱼ P_j P_jᵀ for the
    incidence patterns P_j (``nlevels·ncols`` rows each) of the earlier terms. The factor's
    symbolic pass and the cost model both plan through here. ``rhs_columns``: the random-effect
    columns of the terms below (a middle term's block), each a triangular solve per evaluation.

    Returns
    -------
    SparseSchurPlan or None
        None: factor the block dense (``force`` as in :func:`analyse_pattern`).
    """
    if force is False:
        return None
    q = nlevels * ncols
    products = sum(column_pairs(p) for p in incidences)
    if force is None and not sparse_may_pay(q, products, rhs_columns):
        return None
    block = sp.kron(sp.identity(nlevels, format="csr"), np.ones((ncols, ncols)), format="csr")
    for p in incidences:
        p = sp.csr_matrix(p, dtype=np.float64)
        block = block + p @ p.T
    return analyse_pattern(block, products, force, rhs_columns)


def analyse_pattern(pattern: sp.spmatrix, update_products: int, force: bool | None = None,
                    rhs_columns: int = 0) -> SparseSchurPlan | None:
    """Decide whether a Schur block of this (symmetric) pattern is factored sparse.

    Parameters
    ----------
    pattern
        The block's nonzero pattern (diagonal included), q × q.
    update_products
        Scalar products per evaluation of the sparse update that forms the block.
    force
        ``True``: always plan a sparse factor; ``False``: never; ``None``: from the estimates.
    rhs_columns
        Columns solved with the factor per evaluation besides the [X y] rows: those of the
        terms below a middle block.

    Returns
    -------
    SparseSchurPlan or None
        The plan when the sparse factor is chosen, else None (factor it dense).
    """
    q = pattern.shape[0]
    if force is False or q == 0:
        return None
    pattern = sp.csr_matrix(pattern, dtype=np.float64)
    pattern.sum_duplicates()
    nnz = pattern.nnz
    if force is None and (q < SPARSE_MIN_ORDER or nnz > SPARSE_MAX_DENSITY * q * q):
        return None
    # a diagonally dominant M-matrix of the pattern: positive definite, so SuperLU's symbolic
    # choices on it (ordering, fill) are the ones the real values will get
    off = pattern.copy()
    off.setdiag(0.0)
    off.eliminate_zeros()
    off.data[:] = -1.0
    degree = np.asarray(-off.sum(axis=1)).ravel()
    trial = (off + sp.diags(degree + 1.0)).tocsc()
    lu = sla.splu(trial, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                  options={"SymmetricMode": True})
    order = np.empty(q, dtype=np.int64)
    order[lu.perm_c] = np.arange(q)
    counts = np.diff(lu.L.tocsc().indptr).astype(np.float64)
    # LU forms both triangles: twice the Cholesky's Σ c_j² flops
    # each column below: one triangular solve, a pass over L
    sparse_s = (_SPARSE_FLOP * 2.0 * float(np.sum(counts * counts))
                + _SPARSE_ENTRY * (nnz + lu.L.nnz + update_products)
                + _SPARSE_SOLVE_ENTRY * lu.L.nnz * rhs_columns)
    dense_s = _dense_seconds(q, rhs_columns)
    plan = SparseSchurPlan(order, int(nnz), int(lu.L.nnz), sparse_s, dense_s)
    if force is None and sparse_s > _SPARSE_ADVANTAGE * dense_s:
        return None
    return plan


class SparseCholesky:
    """F with F Fᵀ = S for a sparse positive definite S, in a plan's fill-reducing order.

    Raises :class:`numpy.linalg.LinAlgError` when S is not positive definite.
    """

    def __init__(self, s: sp.spmatrix, plan: SparseSchurPlan):
        order = plan.order
        ordered = sp.csr_matrix(s)[order][:, order].tocsc()
        try:
            lu = sla.splu(ordered, permc_spec="NATURAL", diag_pivot_thresh=0.0,
                          options={"SymmetricMode": True})
        except RuntimeError as exc:  # "Factor is exactly singular"
            raise np.linalg.LinAlgError(f"the sparse Schur block is singular ({exc})") from None
        d = lu.U.diagonal()
        q = len(order)
        # a row swap or a non-positive pivot: S is not positive definite
        if not np.array_equal(lu.perm_r, np.arange(q)) or not np.array_equal(lu.perm_c, np.arange(q)) \
                or not np.all(d > 0.0):
            raise np.linalg.LinAlgError("the sparse Schur block is not positive definite")
        self.order = order
        self.sqrt_d = np.sqrt(d)
        # unit lower triangular (diagonal stored), in the ordered positions; kept in SuperLU's
        # CSC, which the triangular solves read natively (Lᵀ is then a free CSR view)
        self.lower = lu.L
        self.shape = (q, q)

    @property
    def logdet(self) -> float:
        """log det S."""
        return 2.0 * float(np.log(self.sqrt_d).sum())

    def _rows(self, ndim: int) -> np.ndarray:
        """√d shaped to divide the rows of a vector (ndim 1) or a matrix (ndim 2)."""
        return self.sqrt_d if ndim == 1 else self.sqrt_d[:, None]

    def solve_half(self, rhs: np.ndarray) -> np.ndarray:
        """F⁻¹ rhs (a vector or a matrix with q rows)."""
        b = np.asarray(rhs, dtype=float)
        if b.size == 0:
            return np.zeros(b.shape)
        # overwrite_A: the solve only rewrites the stored unit diagonal, so no copy of L is needed;
        # overwrite_b: the right-hand side is this call's own reordered copy
        x = sla.spsolve_triangular(self.lower, b[self.order], lower=True, unit_diagonal=True,
                                   overwrite_A=True, overwrite_b=True)
        x /= self._rows(x.ndim)
        return x

    def solve_half_t(self, rhs: np.ndarray) -> np.ndarray:
        """F⁻ᵀ rhs (a vector or a matrix with q rows)."""
        b = np.asarray(rhs, dtype=float)
        if b.size == 0:
            return np.zeros(b.shape)
        x = sla.spsolve_triangular(self.lower.T, b / self._rows(b.ndim), lower=False,
                                   unit_diagonal=True, overwrite_A=True, overwrite_b=True)
        out = np.empty_like(x)
        out[self.order] = x
        return out

    def to_dense(self) -> np.ndarray:
        """F as a dense q × q array (not triangular: its rows are in the block's own order)."""
        out = np.empty(self.shape)
        out[self.order] = (self.lower @ sp.diags(self.sqrt_d)).toarray()
        return out
