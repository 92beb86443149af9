"""Krylov kernels: block preconditioned conjugate gradients and stochastic Lanczos quadrature.

One block PCG solves ``S X = B`` for many right-hand sides at once (one sparse product per
iteration for all of them) and keeps, per column, the CG coefficients. Those coefficients
*are* the Lanczos tridiagonal of the preconditioned matrix started from that column, so the
same iterations that solve the systems give stochastic Lanczos quadrature (SLQ) estimates of
``log det`` (Ubaru, Chen & Saad 2017; used for mixed models by Sigrist 2022 and Kündig &
Sigrist 2024 in GPBoost). Nothing here knows about mixed models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["BlockCGResult", "block_pcg", "rademacher", "slq_quadratic_log"]

MatOp = Callable[[np.ndarray], np.ndarray]


@dataclass
class BlockCGResult:
    """Solutions and the record of a block PCG run.

    Attributes
    ----------
    x : ndarray (dim × k)
        The solutions.
    iterations : int
        Iterations run (the slowest column's).
    converged : ndarray of bool (k,)
        Whether each column reached the tolerance.
    residual_norms : ndarray (k,)
        Final ‖b − S x‖ / ‖b‖ per column (from the recurrence).
    alphas, betas : list of ndarray
        Per column, the CG step lengths and the ratios of successive residual products.
    """

    x: np.ndarray
    iterations: int
    converged: np.ndarray
    residual_norms: np.ndarray
    alphas: list[np.ndarray] = field(default_factory=list, repr=False)
    betas: list[np.ndarray] = field(default_factory=list, repr=False)


def rademacher(dim: int, k: int, seed: int) -> np.ndarray:
    """``dim × k`` random signs (±1), seeded: the probes of a stochastic trace estimate."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(dim, k)).astype(float) * 2.0 - 1.0


def block_pcg(apply_s: MatOp, b: np.ndarray, apply_minv: MatOp, tol: float = 1e-8,
              maxiter: int = 1000, x0: np.ndarray | None = None) -> BlockCGResult:
    """Solve ``S X = B`` (S symmetric positive definite) column by column, all columns per
    iteration, with preconditioner ``M`` given as ``apply_minv(R) = M⁻¹ R``.

    A column stops when ``‖r‖ ≤ tol ‖b‖``; converged columns leave the products, so a slow
    column costs only its own work. With ``x0`` None the per-column coefficients (``alphas``,
    ``betas``) define the Lanczos tridiagonal of ``M^{-1/2} S M^{-1/2}`` started from
    ``M^{-1/2} b`` (see :func:`slq_quadratic_log`).
    """
    b = np.asarray(b, dtype=float)
    dim, k = b.shape
    x = np.zeros((dim, k)) if x0 is None else np.array(x0, dtype=float)
    r = b - apply_s(x) if x0 is not None else b.copy()
    bnorm = np.linalg.norm(b, axis=0)
    bnorm[bnorm == 0] = 1.0
    z = apply_minv(r)
    p = z.copy()
    rz = np.einsum("ij,ij->j", r, z)
    alphas: list[list[float]] = [[] for _ in range(k)]
    betas: list[list[float]] = [[] for _ in range(k)]
    res = np.linalg.norm(r, axis=0) / bnorm
    active = np.flatnonzero(res > tol)
    it = 0
    while active.size and it < maxiter:
        it += 1
        pa = p[:, active]
        sp_ = apply_s(pa)
        denom = np.einsum("ij,ij->j", pa, sp_)
        alpha = rz[active] / denom
        x[:, active] += pa * alpha
        ra = r[:, active] - sp_ * alpha
        r[:, active] = ra
        za = apply_minv(ra)
        rz_new = np.einsum("ij,ij->j", ra, za)
        beta = rz_new / rz[active]
        p[:, active] = za + pa * beta
        rz[active] = rz_new
        res[active] = np.linalg.norm(ra, axis=0) / bnorm[active]
        for c, a_, b_ in zip(active, alpha, beta):
            alphas[c].append(a_)
            betas[c].append(b_)
        active = active[res[active] > tol]
    return BlockCGResult(x, it, res <= tol, res, [np.array(a) for a in alphas],
                         [np.array(bt) for bt in betas])


def lanczos_tridiagonal(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Lanczos tridiagonal (diagonal, off-diagonal) equivalent to a CG run's coefficients."""
    m = len(alphas)
    diag = 1.0 / alphas
    diag[1:] += betas[:m - 1] / alphas[:m - 1]
    off = np.sqrt(np.maximum(betas[:m - 1], 0.0)) / alphas[:m - 1]
    return diag, off


def slq_quadratic_log(alphas: np.ndarray, betas: np.ndarray, norm2: float) -> float:
    """``v' log(M^{-1/2} S M^{-1/2}) v`` by Gauss quadrature on one CG run's Lanczos
    tridiagonal, for a start vector v with ``‖v‖² = norm2``."""
    if len(alphas) == 0:
        return 0.0
    from scipy.linalg import eigh_tridiagonal

    diag, off = lanczos_tridiagonal(np.asarray(alphas), np.asarray(betas))
    if len(diag) == 1:
        return float(norm2 * np.log(diag[0]))
    vals, vecs = eigh_tridiagonal(diag, off)
    vals = np.maximum(vals, np.finfo(float).tiny)
    return float(norm2 * np.sum(vecs[0] ** 2 * np.log(vals)))
