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

The inverse is dense: :class:`ProfiledGradient` forms it for systems of up to
:data:`GRADIENT_LIMIT` columns, where it costs about two factorizations. Larger systems of
scalar terms (crossed factors with many levels) use :class:`BlockedGradient`, which reads the
blocked factor of the evaluation itself: for a scalar term ``∂S/∂θᵢ = (Eᵢ(S − D) + (S − D)Eᵢ)/θᵢ``,
so ``∂ log det S_AA/∂θᵢ = 2 (qᵢ − tr[S_AA⁻¹]ᵢᵢ)/θᵢ``, and ``∂ pwrss/∂θᵢ = −2‖uᵢ‖²/θᵢ`` (the
normal equations give ``Zᵢᵀr = uᵢ/θᵢ``). The traces come from a selected inverse
(Takahashi): with the first term block-diagonal (``L₀₀ = diag(l_g)``) and the other terms one
dense tail ``L_tt``, ``[S⁻¹]_tt = (L_tt L_ttᵀ)⁻¹`` (LAPACK ``potri``, about two factorizations
of the tail), ``tr[S⁻¹]₀₀ = Σ_g l_g⁻² + ⟨[S⁻¹]_tt, L_t0 diag(l⁻²) L_t0ᵀ⟩`` (one sparse
product) and, for REML, ``[S_AA⁻¹]_ZZ = S_ZZ⁻¹ + V Vᵀ`` with ``V = L_ZZ⁻ᵀ L_XZᵀ R_X⁻ᵀ``
(p back-substitutions).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from .backends import DenseOps, get_dense

__all__ = ["ProfiledGradient", "BlockedGradient", "GRADIENT_LIMIT", "BLOCKED_TAIL_LIMIT",
           "theta_jacobians"]

#: largest q + p + 1 for which the dense inverse behind the gradient is formed
GRADIENT_LIMIT = 1_500
#: largest dense tail (levels of the terms after the first) whose inverse the blocked
#: gradient forms (three q_t × q_t arrays: 8 GB at 18,000)
BLOCKED_TAIL_LIMIT = 18_000


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
        #: large systems of scalar terms: the blocked gradient, no dense system assembled
        self.blocked = (BlockedGradient(factor)
                        if factor.q + cp.p + 1 > GRADIENT_LIMIT and BlockedGradient.available(factor)
                        else None)
        if self.blocked is None:
            self._full = factor._full if factor._full is not None else factor._assemble()

    @staticmethod
    def available(factor) -> bool:
        """Whether the gradient can be formed for this factor (values fixed; the dense inverse
        for small systems, the blocked one for scalar terms)."""
        if not factor.cp.values_fixed:
            return False
        if factor.q + factor.cp.p + 1 > GRADIENT_LIMIT:
            return BlockedGradient.available(factor)
        return theta_jacobians(factor.parametrization, factor.theta_start()) is not None

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
        if self.blocked is not None:
            return self.blocked.value_and_gradient(theta, reml)
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


def _unit_jacobians(factor) -> bool:
    """Whether θ holds the terms' scalar factors themselves (dT/dθ = 1), at two points."""
    start = factor.theta_start()
    for theta in (start, 2.0 * start + 0.3):
        jac = theta_jacobians(factor.parametrization, theta)
        if jac is None or any(j.shape != (1, 1, 1) or j[0, 0, 0] != 1.0 for j in jac):
            return False
    return True


class BlockedGradient:
    """Value and gradient of the profiled deviance from the blocked factor, for scalar terms
    (see the module docstring): the first term block-diagonal, the others one dense tail.

    Parameters
    ----------
    factor : BlockedFactor
        In blocked mode, with fixed crossproducts.
    """

    def __init__(self, factor):
        self.factor = factor

    @staticmethod
    def available(factor) -> bool:
        """Whether the factor has the blocked gradient's structure: scalar terms, the first
        block-diagonal, the later ones with dense diagonal blocks (a tail of at most
        :data:`BLOCKED_TAIL_LIMIT` levels), the lme4 layout of θ."""
        terms = factor.cp.terms
        return (factor.mode == "blocked" and factor.cp.values_fixed
                and all(t.ncols == 1 for t in terms) and factor.diag_is_bd[0]
                and not any(factor.diag_is_bd[1:]) and not factor.sparse_plans
                and sum(t.q for t in terms[1:]) <= BLOCKED_TAIL_LIMIT
                and _unit_jacobians(factor))

    def _tail_inverse(self) -> np.ndarray | None:
        """``[S⁻¹]_tt`` for the terms after the first (lower triangle valid, upper zero)."""
        f = self.factor
        if f.k == 1:
            return None
        o = f.offsets
        if f.k == 2:
            lower = f.L_diag[1]
        else:  # the tail's blocks as one lower-triangular matrix
            lower = np.zeros((f.q - o[1], f.q - o[1]))
            for i in range(1, f.k):
                a, b = o[i] - o[1], o[i + 1] - o[1]
                lower[a:b, a:b] = np.tril(f.L_diag[i])
                for r in range(i + 1, f.k):
                    block = f.L_off[(r, i)]
                    lower[o[r] - o[1]:o[r + 1] - o[1], a:b] = (
                        block.toarray() if sp.issparse(block) else block)
        # C-ordered lower = Fortran-ordered upper of its transpose
        inv, info = lapack.dpotri(lower.T, lower=0, overwrite_c=0)
        if info != 0:
            raise np.linalg.LinAlgError(f"singular tail factor (info={info})")
        return np.tril(inv.T)

    def value_and_gradient(self, theta: np.ndarray, reml: bool) -> tuple[float, np.ndarray]:
        """The profiled deviance (without the prior-weights constant) and its gradient."""
        f = self.factor
        theta = np.asarray(theta, dtype=float)
        f.update(theta)
        cp, k, o = f.cp, f.k, f.offsets
        n, p = cp.n, cp.p
        dof = n - p if reml else n
        pwrss = f.pwrss
        value = f.logdet_z + (f.logdet_x if reml else 0.0) + dof * (1.0 + np.log(2.0 * np.pi * pwrss / dof))
        beta, u = f.solve()
        l0 = f.L_diag[0][:, 0, 0]
        traces = np.empty(k)
        traces[0] = float(np.sum(1.0 / (l0 * l0)))
        z_tail = self._tail_inverse()
        if z_tail is not None:
            tail_diag = np.diagonal(z_tail)
            for i in range(1, k):
                traces[i] = float(tail_diag[o[i] - o[1]:o[i + 1] - o[1]].sum())
            dense_t0 = [f.first_term_dense(r) for r in range(1, k)]
            if all(d is not None for d in dense_t0):  # one BLAS syrk instead of a sparse product
                m = f.dense.syrk_lower(np.vstack(dense_t0) / l0[None, :])
            else:
                l_t0 = sp.vstack([sp.csr_matrix(f.L_off[(r, 0)]) for r in range(1, k)]).tocsr()
                m = (l_t0 @ sp.diags(1.0 / (l0 * l0)) @ l_t0.T).toarray()
            # ⟨Z, M⟩ for symmetric Z, M from Z's lower triangle
            traces[0] += 2.0 * float(np.vdot(z_tail, m)) - float(np.dot(tail_diag, np.diagonal(m)))
        if reml and p:
            # V = L_ZZ⁻ᵀ L_XZᵀ R_X⁻ᵀ, by blocks from the last term (as the solve for u)
            R = np.ascontiguousarray(f.R_xy[:p, :p])
            v: list[np.ndarray] = [None] * k  # type: ignore[list-item]
            for i in reversed(range(k)):
                c = f.dense.trsm(R, f.L_xy[i][:p]).T           # (R_X⁻¹ L_X,i)ᵀ
                for r in range(i + 1, k):
                    c = c - np.asarray(f.L_off[(r, i)].T @ v[r])
                v[i] = f.solve_diag_t(i, c)
                traces[i] += float(np.sum(v[i] * v[i]))
        grad = np.zeros(k)
        for i, t in enumerate(theta):
            if t > 0:  # the deviance is even in θᵢ: its derivative at 0 is 0
                logdet = 2.0 * (cp.terms[i].q - traces[i]) / t
                grad[i] = logdet - dof / pwrss * 2.0 * float(u[i] @ u[i]) / t
        return float(value), grad
