"""The analytic gradient of the profiled (RE)ML deviance with respect to θ.

With ``C = [Z X y]ᵀ W [Z X y]``, ``Λ̃ = diag(Λ(θ), I)`` and ``S = Λ̃ᵀ C Λ̃ + diag(I_q, 0)``
(Cholesky ``L Lᵀ``), the profiled deviance is

- ML: ``log det S_ZZ + n (1 + log(2π pwrss / n))``,
- REML: ``log det S_(Z,X) + (n − p) (1 + log(2π pwrss / (n − p)))``,

with ``pwrss = L[-1, -1]²``. For one entry t of a term's factor T, with ``E = ∂Λ̃/∂t`` and
``G = Λ̃ᵀ C``:

- ``∂ log det S_AA = 2 tr(S_AA⁻¹ (G E)_AA)``: per term, the l × l sum over levels of the
  diagonal blocks of ``(S_AA⁻¹ G_A,Z)`` paired with ``∂T`` (the trace terms through the inverse);
- ``∂ pwrss = 2 (C Λ̃ z̃)ᵀ E z̃`` at the penalized least-squares solution ``z̃ = [u; β; −1]``
  (the envelope theorem: the solution's own derivative drops out).

The derivative with respect to θ goes through ``∂T/∂θ`` per term: a unit entry per θ for the
lme4 layout, or the Jacobian a structured parametrization provides (``jacobian(theta)``); a
term without one makes the gradient unavailable (derivative-free optimization then).

The inverse is dense: the gradient is offered for systems of up to :data:`GRADIENT_LIMIT`
columns, where it costs about two factorizations.
"""

from __future__ import annotations

import numpy as np

from .backends import DenseOps, get_dense

__all__ = ["ProfiledGradient", "GRADIENT_LIMIT", "theta_jacobians"]

#: largest q + p + 1 for which the dense inverse behind the gradient is formed
GRADIENT_LIMIT = 1_500


def theta_jacobians(parametrization, theta: np.ndarray) -> list[np.ndarray] | None:
    """Per term, ``∂T/∂θ`` as an ``(n_theta_term, l, l)`` array; None when a term has none.

    A parametrization with ``jacobian(theta)`` (structured, nonlinear θ → T maps) supplies its
    own; otherwise θ holds entries of T (lme4's layout) and each derivative is a unit entry.
    """
    custom = getattr(parametrization, "jacobian", None)
    if callable(custom):
        jac = custom(theta)
        if jac is None or any(j is None for j in jac):
            return None
        return [np.asarray(j, dtype=float) for j in jac]
    out = []
    for l, (rows, cols) in zip(parametrization.ncols, parametrization.layouts):
        j = np.zeros((len(rows), l, l))
        j[np.arange(len(rows)), rows, cols] = 1.0
        out.append(j)
    return out


class ProfiledGradient:
    """Value and gradient of the profiled deviance for fixed crossproducts.

    Parameters
    ----------
    factor : BlockedFactor
        Supplies the crossproducts (as one dense matrix), the term layout and θ → T.
    dense : str or DenseOps
        The dense backend for the factorization and the triangular solves.
    """

    def __init__(self, factor, dense: str | DenseOps = "lapack"):
        self.factor = factor
        self.dense = get_dense(dense)
        cp = factor.cp
        self.n, self.p = cp.n, cp.p
        self.offsets = factor.offsets
        self.q = factor.q
        self._full = factor._full if factor._full is not None else factor._assemble()

    @staticmethod
    def available(factor) -> bool:
        """Whether the gradient can be formed for this factor (size and values fixed)."""
        return (factor.cp.values_fixed and factor.q + factor.cp.p + 1 <= GRADIENT_LIMIT
                and theta_jacobians(factor.parametrization, factor.theta_start()) is not None)

    def _lam_apply(self, mat: np.ndarray, Ts: list[np.ndarray], left: bool) -> np.ndarray:
        out = mat.copy()
        o = self.offsets
        for i, T in enumerate(Ts):
            a, b, l = o[i], o[i + 1], T.shape[0]
            if left:
                blk = out[a:b]
                out[a:b] = (T.T @ blk.reshape(-1, l, blk.shape[1])).reshape(blk.shape)
            else:
                blk = out[:, a:b]
                out[:, a:b] = (blk.reshape(blk.shape[0], -1, l) @ T).reshape(blk.shape)
        return out

    def value_and_gradient(self, theta: np.ndarray, reml: bool) -> tuple[float, np.ndarray]:
        """The profiled deviance (without the prior-weights constant) and its gradient."""
        f = self.factor
        theta = np.asarray(theta, dtype=float)
        Ts = f.split_theta(theta)
        jac = theta_jacobians(f.parametrization, theta)
        if jac is None:
            raise ValueError("a random-effects term provides no Jacobian dT/dθ")
        C = self._full
        if C is f._full:  # penalized fits replace the [X y] block after construction
            C[self.q:, self.q:] = f.cp.xyxy
        q, p, n = self.q, self.p, self.n
        N = C.shape[0]
        G = self._lam_apply(C, Ts, left=True)       # Λ̃ᵀ C
        S = self._lam_apply(G, Ts, left=False)      # Λ̃ᵀ C Λ̃
        S.ravel()[:q * (N + 1):N + 1] += 1.0
        L = self.dense.cholesky_lower(S, clean=True)
        diag = np.diagonal(L)
        pwrss = float(L[-1, -1] ** 2)
        m = q + p if reml else q                    # the leading block A whose log det counts
        dof = n - p if reml else n
        value = 2.0 * float(np.log(diag[:m]).sum()) + dof * (1.0 + np.log(2.0 * np.pi * pwrss / dof))
        # z̃ = [u; β; -1]: L₁ᵀ [u; β] = L[-1, :q+p]
        w = self.dense.trsm(np.ascontiguousarray(L[:q + p, :q + p]), L[-1, :q + p], trans=True)
        lam_z = np.concatenate([w, [-1.0]])
        o = self.offsets
        for i, T in enumerate(Ts):                  # Λ̃ z̃: b_g = T u_g per level
            lam_z[o[i]:o[i + 1]] = (w[o[i]:o[i + 1]].reshape(-1, T.shape[0]) @ T.T).ravel()
        h = C @ lam_z                               # C Λ̃ z̃
        # S_AA⁻¹ from its Cholesky factor L_AA (a leading block of L)
        LA = np.ascontiguousarray(L[:m, :m])
        Linv = self.dense.trsm(LA, np.eye(m))
        Sinv_z = Linv[:, :q].T @ Linv              # rows Z of S_AA⁻¹ (q × m)
        GA = G[:m, :q]
        grad = np.empty(len(theta))
        pos = 0
        for i, T in enumerate(Ts):
            a, b, l = o[i], o[i + 1], T.shape[0]
            mi = (b - a) // l
            # Σ_g of the diagonal l × l blocks of (S_AA⁻¹ G_A,Zi)[Zi, :]
            rows = Sinv_z[a:b].reshape(mi, l, m)
            cols = GA[:, a:b].reshape(m, mi, l)
            B = np.einsum("gam,mgb->ab", rows, cols)
            U = w[a:b].reshape(mi, l)
            H = h[a:b].reshape(mi, l).T @ U          # Σ_g h_g u_gᵀ
            coef = dof / pwrss
            for j in range(jac[i].shape[0]):
                J = jac[i][j]
                grad[pos + j] = 2.0 * float(np.sum(B.T * J)) + coef * 2.0 * float(np.sum(H * J))
            pos += jac[i].shape[0]
        return value, grad
