"""The cost model that picks the exact or the iterative path for a linear mixed model.

The exact path (:class:`~mixedmodels.core.factor.BlockedFactor`) factors, per evaluation, a
dense block for every term after the first that is crossed with an earlier one: 8·q² bytes
and about q³/3 flops each (plus the Schur update into it, ~2·Σ c_g² flops from the first
term). The iterative path (:mod:`mixedmodels.models.iterative`) keeps only the sparse
crossproducts (~12 bytes per nonzero cell, twice) and per CG iteration does two sparse
products with the probes and the [X y] columns.

``method="auto"`` picks the exact path unless its estimated time exceeds
``EXACT_SECONDS_LIMIT`` with the iterative path estimated at least twice as fast, or its memory
exceeds what is available while the iterative path fits;
the estimates are recorded in ``optinfo.path``. A model that fits on neither is refused
(:class:`~mixedmodels.exceptions.ModelSizeError`) before any work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..core.sparse_schur import FLOPS_DENSE, SPARSE_BELOW_MAX_COLUMNS, plan_schur_block
from ..exceptions import ModelSizeError

__all__ = ["PathCost", "exact_cost", "dense_block_flops", "factor_evaluation_flops", "iterative_cost",
           "available_memory", "choose_path", "check_exact_fits",
           "EXACT_SECONDS_LIMIT", "FLOPS_DENSE", "FLOPS_SPARSE"]

#: measured on the 2-core development machine: scipy CSR × dense (FLOPS_DENSE, LAPACK's, is
#: the sparse Schur planner's, imported)
FLOPS_SPARSE = 1e9
#: the exact path is kept while one fit is estimated below this many seconds (or when the
#: iterative path is not estimated at least twice as fast)
EXACT_SECONDS_LIMIT = 60.0
#: evaluations assumed per fit: BOBYQA on the exact path, L-BFGS-B on the iterative one; CG
#: iterations per evaluation (6-8 measured on uniform and power-law crossed designs), plus
#: the gradient's products
EXACT_EVALS, ITERATIVE_EVALS, CG_ITERATIONS = 60, 15, 15
#: the exact logLik at the iterative optimum is computed when one evaluation is this cheap
EXACT_ONCE_SECONDS = 30.0


@dataclass
class PathCost:
    """Estimated memory (bytes) and time (seconds) of one fit on a path."""

    memory: float
    seconds: float
    seconds_per_evaluation: float
    details: dict = field(default_factory=dict)

    @property
    def affordable_once(self) -> bool:
        return (self.seconds_per_evaluation <= EXACT_ONCE_SECONDS
                and self.memory <= 0.5 * available_memory())


def available_memory() -> float:
    """Bytes of memory available now (MemAvailable on Linux; 8 GB where unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8e9


def _nested_in_first(codes_first: np.ndarray, codes_other: np.ndarray) -> bool:
    """Whether every level of the first term sits in one level of the other (no fill)."""
    # one pass, no sort: the level of `other` last seen with each level of `first`, then whether
    # every row agrees with it (np.unique on a million rows took about a second)
    seen = np.empty(int(codes_first.max()) + 1, dtype=np.int64)
    seen[codes_first] = codes_other
    return bool(np.array_equal(seen[codes_first], codes_other))


def _shapes(terms) -> list[tuple[int, int]]:
    return [(int(t.nlevels), int(t.ncols)) for t in terms]


def dense_block_flops(shapes: list[tuple[int, int]], crossed: list[bool]) -> float:
    """Flops of one exact evaluation's dense Schur blocks (the crossed terms'): each block's
    Cholesky (q³/3) and its update from the first term (q² q₀)."""
    q0 = shapes[0][0] * shapes[0][1] if shapes else 0
    dense_q = [m * l for (m, l), c in zip(shapes, crossed) if c]
    return float(sum(q ** 3 / 3.0 + q * q * q0 for q in dense_q))


def factor_evaluation_flops(factor) -> float:
    """:func:`dense_block_flops` of a built :class:`~mixedmodels.core.factor.BlockedFactor`:
    its dense (not block-diagonal, not sparse) Schur blocks; 0 for a system factored as one
    small dense matrix."""
    if factor.mode != "blocked":
        return 0.0
    # a sparse Schur block costs far less than its dense count
    return dense_block_flops([(t.nlevels, t.ncols) for t in factor.cp.terms],
                             [not bd and i not in factor.sparse_plans
                              for i, bd in enumerate(factor.diag_is_bd)])


def exact_cost(cp=None, *, terms=None, crossed=None, n: int | None = None) -> PathCost:
    """The exact path's cost, from crossproducts or from term shapes and crossing flags."""
    if cp is not None:
        shapes = _shapes(cp.terms)
        crossed = [False] + [_crossed_cp(cp, i) for i in range(1, len(shapes))]
        n = cp.n
    else:
        shapes = _shapes(terms)
    dense_q = [m * l for (m, l), c in zip(shapes, crossed) if c]
    q0 = shapes[0][0] * shapes[0][1] if shapes else 0
    # per dense block: the block and its factor and work copies, the dense update from the
    # first term (q × q0: its copy and a syrk of q² q0 flops) and the dense blocks between terms
    mem = 8.0 * (3 * sum(q * q for q in dense_q) + sum(q * q0 for q in dense_q)
                 + sum(a * b for i, a in enumerate(dense_q) for b in dense_q[i + 1:]))
    flops = dense_block_flops(shapes, crossed)
    per_eval = flops / FLOPS_DENSE + 1e-7 * sum(m * l * l for m, l in shapes)
    return PathCost(mem, EXACT_EVALS * per_eval, per_eval, {"dense_blocks": dense_q, "n": n})


def _crossed_cp(cp, i: int) -> bool:
    """Whether some level of the first term meets two levels of term i (its block fills in)."""
    a = cp.off[(i, 0)].tocsc()
    blocks = a.indices // cp.terms[i].ncols
    starts = a.indptr[:-1][np.diff(a.indptr) > 0]
    if not len(starts):
        return False
    return bool(np.any(np.minimum.reduceat(blocks, starts) != np.maximum.reduceat(blocks, starts)))


def _sparse_schur_cost(shapes, codes, n: int) -> PathCost | None:
    """The exact path's cost when the second term's Schur block stays sparse enough for the
    factor to take a sparse ordering (partially crossed designs), else None: the same symbolic
    analysis :class:`~mixedmodels.core.factor.BlockedFactor` makes, on the level pattern. Terms
    after the second (at most ``SPARSE_BELOW_MAX_COLUMNS`` columns, as the factor allows) are
    dense blocks, and their rows below the sparse block dense too."""
    (m0, l0), (m1, l1) = shapes[:2]
    below = [m * l for m, l in shapes[2:]]
    if sum(below) > SPARSE_BELOW_MAX_COLUMNS:
        return None
    meets = sp.csr_matrix((np.ones(len(codes[0])), (codes[1], codes[0])), shape=(m1, m0))
    meets.data[:] = 1.0  # duplicates summed: one entry per pair of levels that meet
    # the factor's incidence pattern: every column of a level meets every column of the other
    incidence = meets if l0 == l1 == 1 else sp.kron(meets, np.ones((l1, l0)), format="csr")
    plan = plan_schur_block([incidence], m1, l1, rhs_columns=sum(below))
    if plan is None:
        return None
    q0, q1 = m0 * l0, m1 * l1
    # the block, its ordered copy and the factor, as CSR (12 bytes per entry), twice over; each
    # block below: dense, with its work copies and its dense rows beside the first two terms
    mem = (2 * 12.0 * (2 * plan.nnz_pattern + plan.nnz_factor) + 8.0 * q1 * 8
           + 8.0 * sum(3 * q * q + q * (q0 + q1) for q in below))
    dense_below = sum(q ** 3 / 3.0 + q * q * (q0 + q1) for q in below) / FLOPS_DENSE
    per_eval = plan.sparse_seconds + dense_below + 1e-7 * sum(m * l * l for m, l in shapes)
    return PathCost(mem, EXACT_EVALS * per_eval, per_eval,
                    {"dense_blocks": below, "sparse_blocks": [q1], "n": n, **plan.describe()})


def iterative_cost(shapes, nnz: int, p: int, probes: int = 40) -> PathCost:
    """The iterative path's cost from the term shapes, the nonzero cells between terms and p."""
    q = sum(m * l for m, l in shapes)
    cols = probes + p + 1
    mem = 2 * 12.0 * nnz + 8.0 * q * (4 * cols + 4)
    per_iter = 2 * 2.0 * nnz * cols / FLOPS_SPARSE
    per_eval = (CG_ITERATIONS + 4) * per_iter
    return PathCost(mem, ITERATIVE_EVALS * per_eval, per_eval, {"nnz": nnz, "columns": cols})


def choose_path(design, method: str = "auto", probes: int = 40, schur: str = "auto") -> dict:
    """Pick ``"exact"`` or ``"iterative"`` for a design, with the reason and both estimates.

    When the second term's Schur block stays sparse (partially crossed factors; not with
    ``schur="dense"``), the exact estimate is the sparse factor's, with any later (small) terms
    as dense blocks.

    Raises
    ------
    ModelSizeError
        When neither path fits in the available memory (before any work).
    """
    terms = design.terms
    shapes = _shapes(terms)
    n, p = int(design.nobs), int(design.X.shape[1])
    # a streamed design has no codes in memory: its crossing is unknown, assumed crossed
    codes = [getattr(t.matrix, "codes", None) for t in terms]
    codes = [c if c is not None and len(c) == n and n > 0 else None for c in codes]
    crossed = [False]
    for i in range(1, len(terms)):
        crossed.append(True if codes[0] is None or codes[i] is None
                       else not _nested_in_first(codes[0], codes[i]))
    exact = exact_cost(terms=terms, crossed=crossed, n=n)
    if (schur != "dense" and len(terms) >= 2 and crossed[1]
            and codes[0] is not None and codes[1] is not None):
        exact = _sparse_schur_cost(shapes, codes, n) or exact
    nnz = n * max(len(terms) - 1, 0) * max((l for _, l in shapes), default=1) ** 2
    iterative = iterative_cost(shapes, nnz, p, probes)
    mem = available_memory()
    record = {"exact_estimate": {"seconds": exact.seconds, "memory_gb": exact.memory / 1e9},
              "iterative_estimate": {"seconds": iterative.seconds,
                                     "memory_gb": iterative.memory / 1e9},
              "available_memory_gb": mem / 1e9}
    exact_fits, iter_fits = exact.memory <= 0.8 * mem, iterative.memory <= 0.8 * mem
    if method == "exact":
        return {"method": "exact", "reason": "Control(method='exact')", **record}
    if method == "iterative":
        return {"method": "iterative", "reason": "Control(method='iterative')", **record}
    if not exact_fits and not iter_fits:
        raise ModelSizeError(
            f"this model fits in neither path's memory: the exact factor needs about "
            f"{exact.memory / 1e9:.1f} GB (dense blocks of order {exact.details['dense_blocks']}), "
            f"the iterative path about {iterative.memory / 1e9:.1f} GB, and "
            f"{mem / 1e9:.1f} GB are available. Use fewer levels (e.g. drop rare ones), fewer "
            "rows, or a machine with more memory.")
    if not exact_fits:
        return {"method": "iterative", "reason": (
            f"auto: the exact factor needs ~{exact.memory / 1e9:.1f} GB, "
            f"{mem / 1e9:.1f} GB available"), **record}
    if exact.seconds > EXACT_SECONDS_LIMIT and 2.0 * iterative.seconds < exact.seconds:
        return {"method": "iterative", "reason": (
            f"auto: exact ~{exact.seconds:.0f} s, iterative ~{iterative.seconds:.0f} s"), **record}
    return {"method": "exact", "reason": (
        f"auto: exact ~{exact.seconds:.1f} s fits in {exact.memory / 1e9:.2f} GB"), **record}


def check_exact_fits(design, what: str = "a GLMM") -> None:
    """Refuse, before any work, a model whose exact factor cannot fit in memory, for fits that
    have only the exact path (GLMMs).

    Raises
    ------
    ModelSizeError
    """
    choice = choose_path(design, "exact")
    need, mem = choice["exact_estimate"]["memory_gb"], choice["available_memory_gb"]
    if need > 0.8 * mem:
        raise ModelSizeError(
            f"{what} is fit on the exact path only, whose factor needs about {need:.1f} GB here "
            f"(dense blocks for the crossed grouping factors); {mem:.1f} GB are available. Use "
            "fewer levels (pool rare ones), a linear mixed model (mm.lmer has an iterative path), "
            "or a machine with more memory.")
