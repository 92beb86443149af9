"""The Laplace approximation of glmmTMB: random effects u integrated out, everything else outer.

For outer parameters φ = (θ, β, and the coefficients of each extra predictor: zero inflation,
dispersion, Tweedie power) the objective is

    F(φ) = −Σ wᵢ log f(yᵢ | ηᵢ, ζᵢ, ψᵢ) + ½‖u*‖² + ½ log det H,   H = ΛᵀZᵀ D Z Λ + I,

with η = Xβ + ZΛu + offset, u* the mode of the first two terms (the inner problem) and
D = −∂²(w log f)/∂η² at u*. F is −log L of glmmTMB (TMB's Laplace approximation, which
integrates b = Λu ~ N(0, ΛΛᵀ)).

Inner problem: Newton's method on u with the families' hand-derived first and second
η-derivatives, warm-started at the last mode, with step halving; it ends when no mode moves by
more than 1e-9, or after a full exact step below 1e-5 in the quadratic phase (the next would
be ~1e-10): F is then exact to ~1e-16 and the gradient to ~1e-10.

Gradient: implicit-function (adjoint) differentiation of F, as TMB's: one extra solve with H
per gradient. It needs, per observation, ∂³ log f/∂η³ and the cross derivatives with the other
predictors (``TMBFamily.gradient_terms``): closed forms for Poisson, NB2 and their zero-inflated
versions; for the other families central differences (step 1e-4) of the hand-derived first and
second derivatives, one observation at a time, so their relative error is ~1e-9 and the gradient
is exact to that. The Hessian (standard errors, one final Newton step) is the forward
difference of this gradient.

Two factorizations of H: one random-effects term gives a block-diagonal H (an l × l block per
level, inverted in one batched call; cost linear in n); several terms give a dense H of order q
(used up to ``DENSE_Q_MAX``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..core.parametrization import ThetaParametrization

__all__ = ["LaplaceEngine", "DENSE_Q_MAX"]

#: the largest number of random effects the dense factorization (several terms) takes
DENSE_Q_MAX = 6000
_FD_STEP = 1e-4
_NEWTON_MAXIT = 100
_NEWTON_STEP_TOL = 1e-9
_NEWTON_QUADRATIC = 1e-5


class _BlockSolver:
    """One random-effects term: H is block diagonal, one l × l block per level."""

    def __init__(self, term, parametrization: ThetaParametrization):
        mat = term.matrix
        self.codes, self.V, self.m, self.l = mat.codes, mat.values, mat.nlevels, mat.ncols
        self.mat = mat
        self.par = parametrization
        rows, cols = parametrization.layouts[0]
        self.pos = list(zip(rows, cols))

    def set_theta(self, theta):
        self.T = self.par.split(theta)[0]
        self.VT = self.V @ self.T          # rows of A = ZΛ

    def A(self, u):
        if self.l == 1:
            return self.VT[:, 0] * u[self.codes]
        return np.einsum("ia,ia->i", self.VT, u.reshape(self.m, self.l)[self.codes])

    def At(self, r):
        l = self.l
        if l == 1:
            return np.bincount(self.codes, self.VT[:, 0] * r, minlength=self.m)
        s = np.empty((self.m, l))
        for a in range(l):
            s[:, a] = np.bincount(self.codes, self.VT[:, a] * r, minlength=self.m)
        return s.ravel()

    def factor(self, D):
        if self.l == 1:   # scalar blocks: H_g = t² Σ D z² + 1
            S = np.bincount(self.codes, D * self.V[:, 0] ** 2, minlength=self.m)
            H = self.T[0, 0] ** 2 * S + 1.0
            if not np.all(H > 0):
                raise np.linalg.LinAlgError("H is not positive definite")
            self.S, self.Hinv = S[:, None, None], (1.0 / H)[:, None, None]
            self.hinv1 = 1.0 / H
            self.logdet = float(np.sum(np.log(H)))
            return self
        S = self.mat.diag_blocks(D)
        T = self.T
        H = np.einsum("ba,gbc,cd->gad", T, S, T) + np.eye(self.l)[None]
        L = np.linalg.cholesky(H)        # LinAlgError when H is not positive definite
        self.S, self.Hinv = S, np.linalg.inv(H)
        self.logdet = 2.0 * float(np.sum(np.log(np.einsum("gaa->ga", L))))
        return self

    def solve(self, v):
        if self.l == 1:
            return self.hinv1 * v
        return np.einsum("gab,gb->ga", self.Hinv, v.reshape(self.m, self.l)).ravel()

    def leverage(self):
        """diag(A H⁻¹ Aᵀ)."""
        if self.l == 1:
            return self.VT[:, 0] ** 2 * self.hinv1[self.codes]
        return np.einsum("ia,iab,ib->i", self.VT, self.Hinv[self.codes], self.VT)

    def theta_gradient(self, u, v, r, l1):
        if self.l == 1:
            z = self.V[:, 0]
            Bu, Bv = z * u[self.codes], z * v[self.codes]
            return np.array([r @ Bu + l1 @ Bv + float(np.sum(self.hinv1 * self.T[0, 0] * self.S[:, 0, 0]))])
        ug, vg = u.reshape(self.m, self.l), v.reshape(self.m, self.l)
        M = np.einsum("gab,cb,gcd->gad", self.Hinv, self.T, self.S)   # H⁻¹ Tᵀ S per level
        out = []
        for a, c in self.pos:   # ∂Λ/∂θ = I ⊗ E_ac
            Bu = self.V[:, a] * ug[self.codes, c]
            Bv = self.V[:, a] * vg[self.codes, c]
            out.append(r @ Bu + l1 @ Bv + float(np.sum(M[:, c, a])))
        return np.array(out)


class _DenseSolver:
    """Several random-effects terms: H dense of order q."""

    def __init__(self, terms, parametrization: ThetaParametrization):
        self.par = parametrization
        self.Z = sp.hstack([t.matrix.sparse() for t in terms], format="csr")
        self.q = self.Z.shape[1]
        if self.q > DENSE_Q_MAX:
            raise ValueError(f"this model has {self.q} random effects in several terms; the "
                             f"Laplace engine of glmmTMB's families factors them densely up to "
                             f"{DENSE_Q_MAX}. Use fewer levels or a single random-effects term")
        self.shapes = [(t.nlevels, t.ncols) for t in terms]
        starts = np.concatenate([[0], np.cumsum([m * l for m, l in self.shapes])])
        # ∂Λ/∂θ_j as q × q 0/1 matrices
        self.dLam = []
        for (m, l), (rows, cols), s in zip(self.shapes, parametrization.layouts, starts[:-1]):
            g = np.arange(m) * l + s
            for a, c in zip(rows, cols):
                self.dLam.append(sp.csr_matrix((np.ones(m), (g + a, g + c)), shape=(self.q, self.q)))

    def set_theta(self, theta):
        blocks = [sp.kron(sp.identity(m), T) for (m, _), T in zip(self.shapes, self.par.split(theta))]
        self.Lam = sp.block_diag(blocks, format="csr")
        self.Amat = (self.Z @ self.Lam).tocsr()

    def A(self, u):
        return self.Amat @ u

    def At(self, r):
        return self.Amat.T @ r

    def factor(self, D):
        from scipy.linalg import cho_factor, cho_solve

        H = (self.Amat.T @ self.Amat.multiply(D[:, None])).toarray() + np.eye(self.q)
        c, low = cho_factor(H, lower=True)   # LinAlgError when not positive definite
        self.Hinv = cho_solve((c, low), np.eye(self.q))
        self.logdet = 2.0 * float(np.sum(np.log(np.diag(c))))
        self.D = D
        return self

    def solve(self, v):
        return self.Hinv @ v

    def leverage(self):
        return np.asarray((self.Amat @ self.Hinv) * self.Amat.toarray()).sum(axis=1) \
            if self.q * self.Amat.shape[0] <= 50_000_000 else \
            np.asarray(self.Amat.multiply(self.Amat @ self.Hinv).sum(axis=1)).ravel()

    def theta_gradient(self, u, v, r, l1):
        S = (self.Z.T @ self.Z.multiply(self.D[:, None])).tocsr()
        M = self.Hinv @ (self.Lam.T @ S).toarray()
        out = []
        for P in self.dLam:
            Bu, Bv = self.Z @ (P @ u), self.Z @ (P @ v)
            coo = P.tocoo()
            out.append(r @ Bu + l1 @ Bv + float(np.sum(M[coo.col, coo.row])))
        return np.array(out)


class LaplaceEngine:
    """The Laplace objective and its gradient for a glmmTMB-family model.

    Parameters
    ----------
    family : TMBFamily
    y, X : ndarray
        Response and the conditional model's fixed-effects matrix.
    terms : list of ReTerm
        The random-effects terms of the conditional model (sorted as the design sorts them).
    offset, weights : ndarray or None
    channel_X : dict
        The model matrix of each extra predictor the family uses (``"zi"``, ``"disp"``,
        ``"power"``), by name.
    """

    def __init__(self, family, y, X, terms, offset, weights, channel_X: dict):
        self.family = family
        self.y = np.asarray(y, float)
        self.X = np.asarray(X, float)
        self.n, self.p = self.X.shape
        self.offset = np.zeros(self.n) if offset is None else np.asarray(offset, float)
        self.w = np.ones(self.n) if weights is None else np.asarray(weights, float)
        self.channels = list(family.channels)
        self.CX = {c: np.asarray(channel_X[c], float) for c in self.channels}
        self.par = ThetaParametrization(tuple(t.ncols for t in terms),
                                        tuple(bool(t.matrix.correlated) for t in terms))
        self.n_theta = self.par.n_theta
        self.solver = (_BlockSolver(terms[0], self.par) if len(terms) == 1
                       else _DenseSolver(terms, self.par))
        self.q = sum(t.nlevels * t.ncols for t in terms)
        sizes = [self.n_theta, self.p] + [self.CX[c].shape[1] for c in self.channels]
        self.slices = np.concatenate([[0], np.cumsum(sizes)])
        self.n_par = int(self.slices[-1])
        self.u = np.zeros(self.q)
        self.state: dict = {}

    # -- layout ----------------------------------------------------------------------------------
    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        s = self.slices
        coefs = {c: x[s[2 + k]:s[3 + k]] for k, c in enumerate(self.channels)}
        return x[:s[1]], x[s[1]:s[2]], coefs

    def lower_bounds(self) -> np.ndarray:
        return np.concatenate([self.par.lower_bounds(), np.full(self.n_par - self.n_theta, -np.inf)])

    def aux_eta(self, coefs: dict) -> dict:
        return {c: self.CX[c] @ coefs[c] for c in self.channels}

    # -- the inner problem -----------------------------------------------------------------------
    def _loglik(self, eta, aux, prep):
        l, l1, l2 = self.family.loglik(self.y, eta, aux, prep)
        return self.w * l, self.w * l1, self.w * l2

    def modes(self, x: np.ndarray, u0: np.ndarray | None = None) -> dict:
        """The inner Newton at x; the state at the mode (F is ``inf`` when it fails)."""
        theta, beta, coefs = self.split(np.asarray(x, float))
        sol = self.solver
        sol.set_theta(theta)
        aux = self.aux_eta(coefs)
        prep = self.family.prepare(self.y, aux)
        fixed = self.X @ beta + self.offset
        u = (self.u if u0 is None else u0).copy()

        def penalized(u):
            eta = fixed + sol.A(u)
            l, l1, l2 = self._loglik(eta, aux, prep)
            return -float(np.sum(l)) + 0.5 * float(u @ u), eta, l, l1, l2

        J, eta, l, l1, l2 = penalized(u)
        if not np.isfinite(J):
            u = np.zeros(self.q)
            J, eta, l, l1, l2 = penalized(u)
        converged = False
        last = np.inf
        for _ in range(_NEWTON_MAXIT):
            grad = u - sol.At(l1)
            D = -l2
            exact = True
            try:
                sol.factor(D)
            except np.linalg.LinAlgError:
                sol.factor(np.maximum(D, 0.0))   # away from the mode: a positive definite step
                exact = False
            step = -sol.solve(grad)
            t = 1.0
            for _ in range(40):
                Jn, etan, ln, l1n, l2n = penalized(u + t * step)
                if np.isfinite(Jn) and Jn <= J + 1e-12 * abs(J):
                    break
                t *= 0.5
            else:
                break
            u = u + t * step
            J, eta, l, l1, l2 = Jn, etan, ln, l1n, l2n
            size = np.max(np.abs(t * step), initial=0.0)
            # a full exact Newton step in the quadratic phase (the step shrank at least as its
            # square root would: |next| ~ |step|²) leaves the mode ~|step|² away: done
            if size < _NEWTON_STEP_TOL or (t == 1.0 and exact and size < _NEWTON_QUADRATIC
                                           and size < last ** 1.5):
                converged = True
                break
            last = size
        D = -l2
        try:
            sol.factor(D)
            value = J + 0.5 * sol.logdet
        except np.linalg.LinAlgError:
            value = np.inf
        if not np.isfinite(value):
            value = np.inf
        else:
            self.u = u.copy()
        return {"x": np.asarray(x, float).copy(), "u": u, "eta": eta, "aux": aux, "prep": prep, "l": l,
                "l1": l1, "D": D, "value": float(value), "converged": converged}

    def objective(self, x: np.ndarray) -> float:
        """F(x) = −log L (Laplace)."""
        return self.modes(x)["value"]

    def value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        st = self.modes(x)
        if not np.isfinite(st["value"]):
            raise FloatingPointError("the Laplace objective is not finite here")
        return st["value"], self.gradient(st)

    def gradient(self, st: dict) -> np.ndarray:
        sol = self.solver   # factored at this state's mode by modes()
        eta, aux, u, D, l1 = st["eta"], st["aux"], st["u"], st["D"], st["l1"]
        w = self.w
        l3, chan = self.family.gradient_terms(self.y, eta, aux, st["prep"], _FD_STEP)
        t = -w * l3                             # ∂D/∂η
        lev = sol.leverage()
        v = sol.solve(0.5 * sol.At(lev * t))
        Av = sol.A(v)
        r = -l1 + 0.5 * lev * t - D * Av
        parts = [sol.theta_gradient(u, v, r, l1), self.X.T @ r]
        for c in self.channels:
            la, lea, leea = (w * d for d in chan[c])
            parts.append(self.CX[c].T @ (-la - 0.5 * lev * leea + Av * lea))
        return np.concatenate(parts)

    def hessian(self, x: np.ndarray, rel_step: float = 1e-6) -> np.ndarray:
        """Forward differences of the gradient, symmetrized: the Hessian of F to ~1e-6 relative
        (for standard errors and one Newton step), at k + 1 gradients for k parameters."""
        k = len(x)
        H = np.empty((k, k))
        u0 = self.u.copy()
        g0 = self.value_and_gradient(x)[1]
        for j in range(k):
            hj = rel_step * max(1.0, abs(x[j]))
            e = np.zeros(k)
            e[j] = hj
            self.u = u0.copy()
            H[:, j] = (self.value_and_gradient(x + e)[1] - g0) / hj
        self.u = u0
        return 0.5 * (H + H.T)
