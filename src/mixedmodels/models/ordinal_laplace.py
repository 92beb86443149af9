"""The Laplace (and adaptive Gauss-Hermite) likelihood of a cumulative-link mixed model.

For parameters (α, β, θ) the random effects are b = Λ(θ) u with u ~ N(0, I), and
η = Xβ + offset + A u with A = ZΛ. Newton's method on
``ψ(u) = Σ ℓ_i(τ, η_i) − ½‖u‖²`` finds the conditional modes û (ψ is concave for the
log-concave links). The Laplace log-likelihood is ``ψ(û) − ½ log det H`` with
``H = AᵀWA + I`` and W = −d²ℓ/dη². Its gradient is exact: the envelope theorem for ψ, and
for the log determinant the per-observation third derivatives (through the weights, directly
and through dû/dφ = H⁻¹ ∂(Aᵀℓ')/∂φ), with the leverages ``h_i = a_iᵀH⁻¹a_i``.

A is held row-wise ("ELL"): each row has one slot per random-effects column of each term,
with its column index in u and its value. With one term H is block diagonal (one l × l block
per level, so a scalar term gives a diagonal H and the cost is O(n) per evaluation); with
several terms H is assembled and factored densely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.parametrization import ThetaParametrization
from .ordinal_agq import agq_loglik_and_gradient
from .ordinal_links import CumulativeLink, ObsDerivatives, add_third_order, observation_derivatives
from .ordinal_thresholds import Thresholds

__all__ = ["OrdinalEngine", "LaplaceState"]

_NEWTON_MAXIT = 50
_NEWTON_TOL = 1e-10
_NEWTON_QUAD = 1e-6
_DENSE_Q_MAX = 8_000


@dataclass
class LaplaceState:
    """The inner solution at one parameter vector."""

    u: np.ndarray
    eta: np.ndarray
    loglik: float          # the Laplace (or AGQ) log-likelihood
    d: ObsDerivatives
    converged: bool


class OrdinalEngine:
    """Laplace/AGQ likelihood and its gradient for one cumulative-link mixed model.

    Parameters
    ----------
    y : ndarray of int
        Category codes 0..K−1.
    X : ndarray (n, p)
        Fixed effects without an intercept (the thresholds take its place).
    offset : ndarray (n,)
    terms : list of ReTermMatrix-like
        ``codes``, ``values`` (n × l), ``nlevels``, ``correlated``.
    thresholds : Thresholds
    link : CumulativeLink
    weights : ndarray (n,), optional
        Case weights (each row counts that many times).
    """

    def __init__(self, y, X, offset, terms, thresholds: Thresholds, link: CumulativeLink,
                 weights=None):
        self.y = np.asarray(y, dtype=np.int64)
        self.X = np.asarray(X, dtype=float)
        self.n, self.p = self.X.shape
        self.offset = np.zeros(self.n) if offset is None else np.asarray(offset, float)
        self.wt = np.ones(self.n) if weights is None else np.asarray(weights, float)
        self.terms = terms
        self.thr = thresholds
        self.link = link
        self.K = thresholds.jacobian.shape[0] + 1
        self.has_upper = self.y < self.K - 1
        self.has_lower = self.y > 0
        self.up_idx = np.minimum(self.y, self.K - 2)
        self.lo_idx = np.maximum(self.y - 1, 0)
        # θ layout: per term the lower triangle of T (column-wise, as lme4), or its diagonal
        self.theta_slices, self.theta_index = [], []
        self.u_offsets, pos, tpos = [], 0, 0
        for t in terms:
            l = t.values.shape[1]
            idx = [(r, c) for c in range(l) for r in range(c, l)] if t.correlated and l > 1 \
                else [(c, c) for c in range(l)]
            self.theta_index.append(idx)
            self.theta_slices.append(slice(tpos, tpos + len(idx)))
            tpos += len(idx)
            self.u_offsets.append(pos)
            pos += t.nlevels * l
        self.n_theta = tpos
        # the same layout as the LMM/GLMM engines' (so varcorr, names and profiles read it)
        self.parametrization = ThetaParametrization(
            tuple(t.values.shape[1] for t in terms), tuple(bool(t.correlated) for t in terms))
        self.q = pos
        self.single = len(terms) == 1
        if not self.single and self.q > _DENSE_Q_MAX:
            raise ValueError(f"clmm with several random-effects terms factors H densely; this "
                             f"model has q = {self.q} random effects (the limit is {_DENSE_Q_MAX})")
        # the slot columns of A (fixed); the values depend on θ
        self.cols = np.concatenate(
            [off + t.codes[:, None] * t.values.shape[1] + np.arange(t.values.shape[1])[None, :]
             for t, off in zip(terms, self.u_offsets)], axis=1) if terms else np.zeros((self.n, 0), int)
        self._u = np.zeros(self.q)
        self.n_alpha = thresholds.n_alpha

    # -- parameters --------------------------------------------------------------------------
    @property
    def n_par(self) -> int:
        return self.n_alpha + self.p + self.n_theta

    def split(self, x: np.ndarray):
        x = np.asarray(x, float)
        na, p = self.n_alpha, self.p
        return x[:na], x[na:na + p], x[na + p:]

    def theta_lower(self) -> np.ndarray:
        lower = []
        for idx in self.theta_index:
            lower.extend(0.0 if r == c else -np.inf for r, c in idx)
        return np.array(lower)

    def theta_start(self) -> np.ndarray:
        return np.array([1.0 if r == c else 0.0 for idx in self.theta_index for r, c in idx])

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per term the lower-triangular T with b = T u within a level."""
        out = []
        for t, sl, idx in zip(self.terms, self.theta_slices, self.theta_index):
            l = t.values.shape[1]
            T = np.zeros((l, l))
            for v, (r, c) in zip(theta[sl], idx):
                T[r, c] = v
            out.append(T)
        return out

    #: MixedModel's name for it (the blocked factor's)
    split_theta = lambdas

    def slot_values(self, Ts: list[np.ndarray]) -> np.ndarray:
        """A's values per row and slot: z_iᵀ T for each term."""
        if not self.terms:
            return np.zeros((self.n, 0))
        return np.concatenate([t.values @ T for t, T in zip(self.terms, Ts)], axis=1)

    # -- the linear predictor and the derivatives ------------------------------------------------
    def derivatives(self, tau: np.ndarray, eta: np.ndarray, third: bool = False) -> ObsDerivatives:
        return observation_derivatives(self.link, tau[self.up_idx], tau[self.lo_idx],
                                       self.has_upper, self.has_lower, eta, third)

    def _Au(self, vals: np.ndarray, u: np.ndarray) -> np.ndarray:
        return np.einsum("is,is->i", vals, u[self.cols]) if self.q else np.zeros(self.n)

    def _At(self, vals: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Aᵀ r."""
        return np.bincount(self.cols.ravel(), weights=(vals * r[:, None]).ravel(), minlength=self.q)

    def _hessian(self, vals: np.ndarray, w: np.ndarray):
        """H = AᵀWA + I: (levels, l, l) blocks with one term, else dense q × q."""
        ww = w * self.wt
        if self.single:
            t = self.terms[0]
            l = t.values.shape[1]
            m = t.nlevels
            prod = (vals[:, :, None] * vals[:, None, :] * ww[:, None, None]).reshape(self.n, l * l)
            H = np.stack([np.bincount(t.codes, weights=prod[:, k], minlength=m)
                          for k in range(l * l)], axis=1).reshape(m, l, l)
            H += np.eye(l)[None]
            return H
        S = vals.shape[1]
        H = np.zeros((self.q, self.q))
        rows = np.repeat(self.cols[:, :, None], S, axis=2).ravel()
        cols = np.repeat(self.cols[:, None, :], S, axis=1).ravel()
        vv = (vals[:, :, None] * vals[:, None, :] * ww[:, None, None]).ravel()
        np.add.at(H, (rows, cols), vv)
        H[np.diag_indices(self.q)] += 1.0
        return H

    def _ascent_hessian(self, vals: np.ndarray, w: np.ndarray):
        """H for the Newton step: the exact one where it is positive definite (always, for the
        log-concave links), else with the weights clipped at 0, which keeps the step uphill."""
        H = self._hessian(vals, w)
        if self.link.log_concave or np.all(w >= 0):
            return H
        if self.single:
            bad = np.linalg.eigvalsh(H)[:, 0] <= 0
            if bad.any():
                H[bad] = self._hessian(vals, np.maximum(w, 0.0))[bad]
            return H
        try:
            np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            H = self._hessian(vals, np.maximum(w, 0.0))
        return H

    def _solve(self, H, g: np.ndarray) -> np.ndarray:
        if self.single:
            m, l, _ = H.shape
            if l == 1:
                return g / H[:, 0, 0]
            return np.linalg.solve(H, g.reshape(m, l)[..., None])[..., 0].ravel()
        return np.linalg.solve(H, g)

    def _logdet(self, H) -> float:
        sign, ld = np.linalg.slogdet(H)
        if np.any(sign <= 0):
            return np.inf
        return float(np.sum(ld))

    def _inverse(self, H):
        return np.linalg.inv(H)

    def _gather_inverse(self, Hinv) -> np.ndarray:
        """H⁻¹ at each row's slots: (n, S, S)."""
        if self.single:
            return Hinv[self.terms[0].codes]
        return Hinv[self.cols[:, :, None], self.cols[:, None, :]]

    # -- the inner Newton -----------------------------------------------------------------------
    def modes(self, alpha, beta, theta, u0: np.ndarray | None = None):
        """Conditional modes û at (α, β, θ): returns (u, η, derivatives, A's values, H, ok)."""
        tau = self.thr.tau(alpha)
        fixed = self.X @ beta + self.offset
        vals = self.slot_values(self.lambdas(theta))
        u = (self._u if u0 is None else u0).copy()
        eta = fixed + self._Au(vals, u)
        d = self.derivatives(tau, eta)
        obj = float(self.wt @ d.loglik - 0.5 * u @ u)
        ok = False
        for _ in range(_NEWTON_MAXIT):
            g = self._At(vals, self.wt * d.l_eta) - u
            step = self._solve(self._ascent_hessian(vals, d.w), g)
            t = 1.0
            for _half in range(30):
                un = u + t * step
                etan = fixed + self._Au(vals, un)
                dn = self.derivatives(tau, etan)
                objn = float(self.wt @ dn.loglik - 0.5 * un @ un)
                if objn >= obj - 1e-12 * abs(obj):
                    break
                t *= 0.5
            u, eta, d, obj = un, etan, dn, objn
            size = np.max(np.abs(t * step), initial=0.0)
            # a full Newton step of size s leaves an error of order s² (quadratic convergence;
            # the exact Hessian is used for the log-concave links)
            if size < _NEWTON_TOL or (t == 1.0 and self.link.log_concave and size < _NEWTON_QUAD):
                ok = True
                break
        H = self._hessian(vals, d.w)
        return u, eta, d, vals, H, ok, tau

    # -- the likelihood ---------------------------------------------------------------------------
    def loglik(self, x: np.ndarray, agq: tuple[np.ndarray, np.ndarray] | None = None,
               keep: bool = True) -> LaplaceState:
        """The Laplace log-likelihood at x = (α, β, θ), or, with ``agq = (nodes, weights)`` of a
        Gauss-Hermite rule and one scalar term, the adaptive-quadrature one."""
        alpha, beta, theta = self.split(x)
        if not self.q:
            tau = self.thr.tau(alpha)
            eta = self.X @ beta + self.offset
            d = self.derivatives(tau, eta)
            return LaplaceState(np.zeros(0), eta, float(self.wt @ d.loglik), d, True)
        u, eta, d, vals, H, ok, tau = self.modes(alpha, beta, theta)
        if keep and ok:
            self._u = u
        if agq is None:
            ll = float(self.wt @ d.loglik - 0.5 * u @ u) - 0.5 * self._logdet(H)
        else:
            ll = agq_loglik_and_gradient(self, x, *agq, state=(u, vals, H, tau), gradient=False)[0]
        return LaplaceState(u, eta, ll, d, ok)

    def loglik_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The Laplace log-likelihood and its exact gradient in (α, β, θ)."""
        alpha, beta, theta = self.split(x)
        tau = self.thr.tau(alpha)
        wt = self.wt
        if not self.q:
            eta = self.X @ beta + self.offset
            d = self.derivatives(tau, eta, third=True)
            g_tau = self._tau_gradient(wt * d.l_a, wt * d.l_c)
            return float(wt @ d.loglik), np.concatenate([self.thr.jacobian.T @ g_tau,
                                                         self.X.T @ (wt * d.l_eta)])
        u, eta, d, vals, H, ok, _ = self.modes(alpha, beta, theta)
        if ok:
            self._u = u
        add_third_order(d)
        ld = self._logdet(H)
        ll = float(wt @ d.loglik - 0.5 * u @ u) - 0.5 * ld
        if not np.isfinite(ld):
            return -np.inf, np.zeros(self.n_par)
        Hinv = self._inverse(H)
        G = self._gather_inverse(Hinv)                        # (n, S, S)
        Ha = np.einsum("ist,it->is", G, vals)                 # H⁻¹a_i at the row's slots
        h = np.einsum("is,is->i", vals, Ha)                   # leverages a_iᵀH⁻¹a_i
        v = self._At(vals, h * d.w_eta * wt)
        zeta = self._solve(H, v)
        Az = self._Au(vals, zeta)
        r = wt * (d.l_eta - 0.5 * (h * d.w_eta - d.w * Az))
        g_beta = self.X.T @ r
        ga = wt * (d.l_a - 0.5 * (h * d.w_a + Az * d.l_eta_a))
        gc = wt * (d.l_c - 0.5 * (h * d.w_c + Az * d.l_eta_c))
        g_alpha = self.thr.jacobian.T @ self._tau_gradient(ga, gc)
        g_theta = np.zeros(self.n_theta)
        pos = 0
        for t, sl, idx in zip(self.terms, self.theta_slices, self.theta_index):
            l = t.values.shape[1]
            sl_slots = slice(pos, pos + l)
            cols = self.cols[:, sl_slots]
            V = (r[:, None] * u[cols] - (wt * d.w)[:, None] * Ha[:, sl_slots]
                 - 0.5 * (wt * d.l_eta)[:, None] * zeta[cols])
            M = t.values.T @ V
            g_theta[sl] = [M[rr, cc] for rr, cc in idx]
            pos += l
        return ll, np.concatenate([g_alpha, g_beta, g_theta])

    def _tau_gradient(self, ga: np.ndarray, gc: np.ndarray) -> np.ndarray:
        nt = self.K - 1
        return (np.bincount(self.up_idx[self.has_upper], weights=ga[self.has_upper], minlength=nt)
                + np.bincount(self.lo_idx[self.has_lower], weights=gc[self.has_lower], minlength=nt))

    def conditional_covariance(self, x: np.ndarray):
        """H⁻¹ at the modes (blocks with one term, else dense) and the term factors T."""
        alpha, beta, theta = self.split(x)
        u, eta, d, vals, H, ok, tau = self.modes(alpha, beta, theta)
        return self._inverse(H), self.lambdas(theta), u
