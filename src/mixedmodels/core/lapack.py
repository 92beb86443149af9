"""The CPU dense backend: LAPACK and BLAS through SciPy, called directly.

scipy's ``solve_triangular`` and ``cholesky`` add milliseconds of overhead per call on small
systems under load, so the hot paths call LAPACK's ``potrf``/``trtrs`` and BLAS's ``syrk``
themselves. C-ordered arrays are passed as their Fortran-ordered transposes, so nothing is
copied.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas, lapack

from .backends import register_dense

__all__ = ["LapackOps"]


@register_dense("lapack")
class LapackOps:
    """:class:`~mixedmodels.core.backends.DenseOps` on the CPU (LAPACK/BLAS)."""

    name = "lapack"

    def cholesky_lower(self, a: np.ndarray, clean: bool = False) -> np.ndarray:
        if a.flags.c_contiguous and not clean:
            # a.T is Fortran-ordered and its upper triangle is a's lower one: factor in place
            upper, info = lapack.dpotrf(a.T, lower=0, overwrite_a=1, clean=0)
            if info != 0:
                raise np.linalg.LinAlgError(f"matrix is not positive definite (info={info})")
            return upper.T  # lower triangle valid; the strict upper holds scratch
        lower, info = lapack.dpotrf(a, lower=1, clean=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"matrix is not positive definite (info={info})")
        return lower

    def syrk_lower(self, a: np.ndarray) -> np.ndarray:
        if a.shape[1] <= 64:
            return a @ a.T
        if not a.flags.c_contiguous:
            a = np.ascontiguousarray(a)
        # aᵀ is Fortran-ordered: syrk with trans=1 reads it in place (2-3x faster than trans=0)
        return blas.dsyrk(1.0, a.T, lower=1, trans=1)

    def trsm(self, lower: np.ndarray, rhs: np.ndarray, trans: bool = False) -> np.ndarray:
        return tri_solve(lower, rhs, trans)

    def logdet_chol(self, lower: np.ndarray) -> float:
        return 2.0 * float(np.log(np.diagonal(lower)).sum())


def tri_solve(lower_factor: np.ndarray, rhs: np.ndarray, trans: bool = False) -> np.ndarray:
    """Solve L x = rhs (or Lᵀ x = rhs) for lower-triangular L with LAPACK's trtrs."""
    b = np.asarray(rhs, dtype=float)
    vector = b.ndim == 1
    b2 = b.reshape(-1, 1) if vector else b
    if lower_factor.shape[0] == 0 or b2.size == 0:  # a model without fixed effects (y ~ 0 + (1|g))
        return np.zeros(b.shape)
    if lower_factor.flags.c_contiguous and not lower_factor.flags.f_contiguous:
        x, info = lapack.dtrtrs(lower_factor.T, b2, lower=0, trans=0 if trans else 1)
    else:
        x, info = lapack.dtrtrs(lower_factor, b2, lower=1, trans=1 if trans else 0)
    if info != 0:
        raise np.linalg.LinAlgError(f"singular triangular factor (info={info})")
    return x.ravel() if vector else x
