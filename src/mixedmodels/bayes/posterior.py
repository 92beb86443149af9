"""The marginal posterior of an LMM's variance parameters, with β and b integrated out.

For fixed (θ, σ) the fixed effects (flat or normal prior) and the random effects are jointly
normal given y, so they integrate out in closed form through the same blocked Cholesky factor the
fit uses: with a N(μ, (s·A)⁻¹) prior on β entered as pseudo-data in the fixed-effects block
(s = σ² for an absolute prior, 1 for one relative to σ²),

    −2 log p(y | θ, σ) = log|L_Z|² + log|R_X|² − log|s·A| + pwrss/σ² + n log(2πσ²)

(for a flat prior: log|R_X|² + (n − p) log(2πσ²), the REML form). Only (θ, σ) is sampled, in
unconstrained coordinates; β and b are drawn afterwards from their conditional normals.

Coordinates per random-effects term: rstanarm's ``decov`` (log τ; for two columns also
log ζ₁, log ζ₂ and logit ρ, as rstanarm's Stan program), or, for blme's priors (and no prior),
θ itself with its diagonal on the log scale. Then log σ.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from ..models.lmm import LinearMixedModel
from ..models.penalized import PriorSet
from ..models.priors import GammaPrior, InvGammaPrior, InvWishartPrior, Prior, WishartPrior

__all__ = ["LMMPosterior", "FixefGaussian", "DecovTerm", "DecovCholTerm", "ThetaTerm", "covariance_terms",
           "split_terms"]

_LOG_2PI = math.log(2.0 * math.pi)


class FixefGaussian:
    """A normal prior on β as precision ``A``, mean ``mu``; ``relative``: the covariance is σ²A⁻¹."""

    def __init__(self, A: np.ndarray, mu: np.ndarray, relative: bool, label: str):
        self.A, self.mu, self.relative, self.label = A, mu, relative, label
        self.logdet_A = float(np.linalg.slogdet(A)[1])
        Amu = A @ mu
        self.block = np.zeros((len(mu) + 1, len(mu) + 1))
        self.block[:-1, :-1] = A
        self.block[:-1, -1] = self.block[-1, :-1] = Amu
        self.block[-1, -1] = float(mu @ Amu)


class DecovTerm:
    """rstanarm's decov for one or two columns (log τ; log ζ₁, log ζ₂, logit of (ρ + 1)/2)."""

    def __init__(self, d: int, prior: Prior):
        a = prior.args
        self.d = d
        self.eta, self.conc, self.shape, self.scale = (a["regularization"], a["concentration"], a["shape"],
                                                       a["scale"])
        self.k = 1 if d == 1 else 4

    def theta(self, x: np.ndarray) -> np.ndarray:
        tau = math.exp(x[0])
        if self.d == 1:
            return np.array([tau * self.scale])
        z1, z2 = math.exp(x[1]), math.exp(x[2])
        rho = 1.0 / (1.0 + math.exp(-x[3]))
        trace = 2.0 * (tau * self.scale) ** 2
        p1, p2 = z1 / (z1 + z2), z2 / (z1 + z2)
        r = 2.0 * rho - 1.0
        s1, s2 = math.sqrt(p1 * trace), math.sqrt(p2 * trace)
        return np.array([s1, s2 * r, s2 * math.sqrt(max(1.0 - r * r, 0.0))])

    def log_prior(self, x: np.ndarray) -> float:
        tau = math.exp(x[0])
        lp = (self.shape - 1.0) * x[0] - tau - gammaln(self.shape) + x[0]
        if self.d == 2:
            for j in (1, 2):
                lp += (self.conc - 1.0) * x[j] - math.exp(x[j]) - gammaln(self.conc) + x[j]
            # ρ ~ Beta(η, η) (the 2×2 onion / LKJ(η)), with the logit Jacobian
            log_r = -math.log1p(math.exp(-x[3])) if x[3] > -30 else x[3]
            log_1mr = -math.log1p(math.exp(x[3])) if x[3] < 30 else -x[3]
            lp += (self.eta - 1.0) * (log_r + log_1mr) - (2 * gammaln(self.eta) - gammaln(2 * self.eta))
            lp += log_r + log_1mr
        return lp

    def to_x(self, theta: np.ndarray) -> np.ndarray:
        if self.d == 1:
            return np.array([math.log(max(theta[0], 1e-8) / self.scale)])
        T = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
        S = T @ T.T
        tr = np.trace(S)
        tau = math.sqrt(tr / 2.0) / self.scale
        r = S[0, 1] / math.sqrt(S[0, 0] * S[1, 1])
        rho = min(max((r + 1) / 2, 1e-6), 1 - 1e-6)
        return np.array([math.log(tau), math.log(S[0, 0] / tr), math.log(S[1, 1] / tr),
                         math.log(rho / (1 - rho))])


class DecovCholTerm(DecovTerm):
    """rstanarm's decov for three or more columns: Σ = D Ω D (relative to σ²) with trace
    d (τ·scale)², τ ~ Gamma(shape, 1), the variance shares π = ζ/Σζ with ζ_j ~ Gamma(concentration, 1)
    (a Dirichlet), and the correlation matrix Ω ~ LKJ(regularization) (the density of rstanarm's
    onion construction). Coordinates: log τ, log ζ (d), and Ω's canonical partial correlations
    on the atanh scale (d(d − 1)/2, Stan's Cholesky-correlation transform).

    As rstanarm's Stan programs (``make_theta_L``) build the factor, row i ≥ 3 of T has its
    off-diagonal part scaled by the SD share of row i − 1 and its diagonal by its own, so for
    three or more columns Σ is not exactly D Ω D; we build T the same way, so that the prior (and
    the posterior) is rstanarm's."""

    def __init__(self, d: int, prior: Prior, rows: np.ndarray, cols: np.ndarray):
        super().__init__(d, prior)
        self.rows, self.cols = np.asarray(rows), np.asarray(cols)
        self.k = 1 + d + d * (d - 1) // 2
        self._tril = np.tril_indices(d, -1)

    def _chol_corr(self, y: np.ndarray) -> tuple[np.ndarray, float]:
        """L (lower, unit rows) from the unconstrained CPCs, and log|∂L/∂y|."""
        d = self.d
        z = np.tanh(y)
        L = np.zeros((d, d))
        L[0, 0] = 1.0
        log_jac = float(np.sum(np.log1p(-z * z)))
        pos = 0
        for i in range(1, d):
            ss = 0.0
            for j in range(i):
                if j:
                    log_jac += 0.5 * math.log1p(-ss)
                L[i, j] = z[pos] * math.sqrt(max(1.0 - ss, 0.0))
                ss += L[i, j] ** 2
                pos += 1
            L[i, i] = math.sqrt(max(1.0 - ss, 0.0))
        return L, log_jac

    def _pieces(self, x: np.ndarray):
        d = self.d
        tau = math.exp(x[0])
        zeta = np.exp(x[1:1 + d])
        L, log_jac = self._chol_corr(x[1 + d:])
        sd = np.sqrt(zeta / zeta.sum() * d) * tau * self.scale
        return tau, zeta, L, log_jac, sd

    def theta(self, x: np.ndarray) -> np.ndarray:
        _, _, L, _, sd = self._pieces(x)
        T = sd[:, None] * L
        for i in range(2, self.d):
            T[i, :i] = sd[i - 1] * L[i, :i]
        return T[self.rows, self.cols]

    def log_prior(self, x: np.ndarray) -> float:
        d = self.d
        tau, zeta, L, log_jac, _ = self._pieces(x)
        lp = self.shape * x[0] - tau                                    # Gamma(shape, 1), log scale
        lp += float(np.sum(self.conc * x[1:1 + d] - zeta))              # Gamma(concentration, 1) each
        diag = np.diag(L)[1:]
        # LKJ(η) on the Cholesky factor: Π_{i ≥ 2} L_ii^(d − i + 2η − 2) (1-based i)
        expo = d - np.arange(2, d + 1) + 2.0 * self.eta - 2.0
        return lp + float(np.sum(expo * np.log(diag))) + log_jac

    def to_x(self, theta: np.ndarray) -> np.ndarray:
        d = self.d
        T = np.zeros((d, d))
        T[self.rows, self.cols] = theta
        # invert the construction of :meth:`theta` (rows clipped to unit length for a start value)
        sd = np.empty(d)
        Lc = np.zeros((d, d))
        sd[0], Lc[0, 0] = max(T[0, 0], 1e-8), 1.0
        sd[1] = max(float(np.hypot(T[1, 0], T[1, 1])), 1e-8)
        Lc[1, :2] = T[1, :2] / sd[1]
        for i in range(2, d):
            off = T[i, :i] / sd[i - 1]
            nrm = float(np.sqrt(off @ off))
            if nrm > 0.99:
                off *= 0.99 / nrm
            Lc[i, :i] = off
            Lc[i, i] = math.sqrt(1.0 - float(off @ off))
            sd[i] = max(T[i, i] / Lc[i, i], 1e-8)
        tr = float(np.sum(sd ** 2))
        y = []
        for i in range(1, d):
            ss = 0.0
            for j in range(i):
                z = Lc[i, j] / math.sqrt(max(1.0 - ss, 1e-12))
                y.append(math.atanh(min(max(z, -1 + 1e-9), 1 - 1e-9)))
                ss += Lc[i, j] ** 2
        return np.concatenate([[math.log(math.sqrt(tr / d) / self.scale)], np.log(sd ** 2 / tr), y])


class ThetaTerm:
    """θ coordinates (log diagonal) under a blme prior (common scale) or none."""

    def __init__(self, d: int, rows: np.ndarray, cols: np.ndarray, prior):
        self.d = d
        self.k = d * (d + 1) // 2
        self.diag = rows == cols
        self.rows, self.cols = rows, cols
        self.prior = prior
        if prior is not None and not prior.common_scale:
            raise NotImplementedError("mm.bayes_fit supports covariance priors relative to σ² (common_scale=True)")
        if isinstance(prior, (WishartPrior, InvWishartPrior)) and prior.posterior_scale != "cov":
            raise NotImplementedError("mm.bayes_fit supports Wishart priors with posterior_scale='cov'")

    def theta(self, x):
        th = np.array(x, dtype=float)
        th[self.diag] = np.exp(x[self.diag])
        return th

    def log_prior(self, x, T):
        lp = float(np.sum(x[self.diag]))          # the log-diagonal coordinates' Jacobian
        pr = self.prior
        if pr is None:
            return lp
        k, v = pr.exponential(T)
        lp += -0.5 * (pr.polynomial(T) + v + pr.constant)
        diagT = np.diag(T)
        if isinstance(pr, (WishartPrior, InvWishartPrior)):
            # density in Σ = T Tᵀ: |∂Σ/∂T| = 2^d Π T_ii^(d − i + 1)
            lp += self.d * math.log(2.0) + float(np.sum((self.d - np.arange(self.d)) * np.log(diagT)))
        elif isinstance(pr, (GammaPrior, InvGammaPrior)) and pr.posterior_scale == "var":
            lp += math.log(2.0) + math.log(diagT[0])
        return lp

    def to_x(self, theta):
        x = np.array(theta, dtype=float)
        x[self.diag] = np.log(np.maximum(theta[self.diag], 1e-8))
        return x


def covariance_terms(model, cov: list) -> list:
    """One sampled term per random-effects term: decov's (rstanarm's) or θ's own, with its prior."""
    if not model.factor.parametrization.is_linear:
        raise NotImplementedError("the samplers draw lme4's θ (T's entries); cs, ar1 and ou terms "
                                  "are not available in Bayesian fits. Fit the model with lmer/glmer.")
    terms = []
    for pr, (rows, cols), t in zip(cov, model.factor.parametrization.layouts, model.design.terms):
        if isinstance(pr, Prior) and pr.name == "decov":
            terms.append(DecovTerm(t.ncols, pr) if t.ncols <= 2 else DecovCholTerm(t.ncols, pr, rows, cols))
        else:
            terms.append(ThetaTerm(t.ncols, np.asarray(rows), np.asarray(cols), pr))
    return terms


def split_terms(terms: list, x: np.ndarray):
    """Each term with its slice of the unconstrained vector ``x``."""
    pos = 0
    for term in terms:
        yield term, x[pos:pos + term.k]
        pos += term.k


class LMMPosterior:
    """log p(θ, σ | y) + const in unconstrained coordinates, and the conditional draws of β and b.

    Parameters
    ----------
    model : LinearMixedModel
        Supplies the crossproducts and the blocked factor (its fit is not used).
    cov : list
        Per term: a ``decov`` :class:`~mixedmodels.models.priors.Prior`, a bound blme prior, or None.
    fixef : FixefGaussian or None
        None: flat.
    resid : ("exponential", rate), a bound blme resid prior, or None (flat on σ).
    """

    def __init__(self, model: LinearMixedModel, cov: list, fixef: FixefGaussian | None, resid):
        self.model = model
        self.factor = model.factor
        self.cp = model.crossproducts
        self.n, self.p = self.cp.n, self.cp.p
        self.fixef, self.resid = fixef, resid
        self.xyxy_base = self.cp.xyxy.copy()
        self.terms = covariance_terms(model, cov)
        self.k = sum(term.k for term in self.terms) + 1
        self.log_weights = model._log_weights if hasattr(model, "_log_weights") else 0.0
        if fixef is not None and not fixef.relative:
            self.cp.xyxy = self.xyxy_base.copy()
        # one block-diagonal term (the common small-sample model): batched 2-D linear algebra
        self.single = len(self.terms) == 1 and self.factor.diag_is_bd[0]
        if self.single:
            t = model.design.terms[0]
            self._m, self._l = t.nlevels, t.ncols
            self._D = np.asarray(self.cp.diag[0], dtype=float)
            self._Zxy = np.asarray(self.cp.zxy[0], dtype=float).reshape(self.p + 1, self._m, self._l)

    @property
    def names(self) -> list[str]:
        out = []
        for i, term in enumerate(self.terms):
            out += [f"x{i}_{j}" for j in range(term.k)]
        return out + ["log_sigma"]

    def split(self, x: np.ndarray):
        return split_terms(self.terms, x)

    def theta_sigma(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        theta = np.concatenate([term.theta(xi) for term, xi in self.split(x)])
        return theta, math.exp(x[-1])

    def to_x(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        parts, pos = [], 0
        for term, size in zip(self.terms, self.factor.theta_sizes):
            parts.append(term.to_x(theta[pos:pos + size]))
            pos += size
        return np.concatenate(parts + [[math.log(sigma)]])

    def _xyxy(self, sigma: float) -> np.ndarray:
        fx = self.fixef
        if fx is None:
            return self.xyxy_base
        s = 1.0 if fx.relative else sigma * sigma
        return self.xyxy_base + s * fx.block

    def _update(self, theta: np.ndarray, sigma: float):
        self.cp.xyxy = self._xyxy(sigma)
        return self.factor.update(theta)

    def pieces(self, theta: np.ndarray, sigma: float):
        """(log|L_Z|², log|R_X|², pwrss, extra) at (θ, σ); ``extra`` is what the draws need."""
        if not self.single:
            f = self._update(theta, sigma)
            return f.logdet_z, f.logdet_x, f.pwrss, f
        T = self.factor.split_theta(theta)[0]
        p = self.p
        if self._l == 1:  # closed forms for 1×1 and 2×2 blocks: no batched LAPACK calls
            t = T[0, 0]
            L = np.sqrt(t * t * self._D[:, 0, 0] + 1.0)
            W = (self._Zxy[:, :, 0] * t / L).T[:, None, :]            # (m, 1, p + 1)
            ldz = 2.0 * float(np.log(L).sum())
            L = L[:, None, None]
        elif self._l == 2:
            S = np.swapaxes(T, 0, 1)[None] @ self._D @ T[None]
            l00 = np.sqrt(S[:, 0, 0] + 1.0)
            l10 = S[:, 1, 0] / l00
            l11 = np.sqrt(S[:, 1, 1] + 1.0 - l10 * l10)
            M = (self._Zxy @ T).transpose(1, 2, 0)
            w0 = M[:, 0, :] / l00[:, None]
            w1 = (M[:, 1, :] - l10[:, None] * w0) / l11[:, None]
            W = np.stack([w0, w1], axis=1)
            ldz = 2.0 * float(np.log(l00).sum() + np.log(l11).sum())
            L = np.zeros((self._m, 2, 2))
            L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = l00, l10, l11
        else:
            S = np.swapaxes(T, 0, 1)[None] @ self._D @ T[None] + np.eye(self._l)[None]
            L = np.linalg.cholesky(S)
            ldz = 2.0 * float(np.log(np.diagonal(L, axis1=1, axis2=2)).sum())
            W = np.linalg.solve(L, (self._Zxy @ T).transpose(1, 2, 0))   # L_g⁻¹ Tᵀ Z_gᵀ[X y]
        Wf = W.reshape(-1, p + 1)
        R = np.linalg.cholesky(self._xyxy(sigma) - Wf.T @ Wf)
        ldx = 2.0 * float(np.log(np.diag(R)[:p]).sum())
        return ldz, ldx, float(R[p, p] ** 2), (L, W, R)

    def log_density(self, x: np.ndarray) -> float:
        x = np.asarray(x, dtype=float)
        if not np.all(np.isfinite(x)) or abs(x[-1]) > 50:
            return -np.inf
        try:
            theta, sigma = self.theta_sigma(x)
            lp = 0.0
            Ts = self.factor.split_theta(theta)
            for (term, xi), T in zip(self.split(x), Ts):
                lp += term.log_prior(xi) if isinstance(term, DecovTerm) else term.log_prior(xi, T)
            lp += self._log_prior_sigma(sigma, x[-1])
            ldz, ldx, pwrss, _ = self.pieces(theta, sigma)
            s2 = sigma * sigma
            fx = self.fixef
            if fx is None:
                dev = ldz + ldx + pwrss / s2 + (self.n - self.p) * (_LOG_2PI + math.log(s2))
            else:
                ldA = fx.logdet_A + (0.0 if fx.relative else self.p * math.log(s2))
                dev = ldz + ldx - ldA + pwrss / s2 + self.n * (_LOG_2PI + math.log(s2))
            value = lp - 0.5 * (dev - self.log_weights)
        except (np.linalg.LinAlgError, FloatingPointError, ValueError, OverflowError):
            return -np.inf
        return float(value) if np.isfinite(value) else -np.inf

    def _log_prior_sigma(self, sigma: float, log_sigma: float) -> float:
        r = self.resid
        if r is None:
            return log_sigma
        if isinstance(r, tuple):
            rate = r[1]
            return math.log(rate) - rate * sigma + log_sigma
        exps = r.exponential()
        dev = r.df_adjustment * 2 * log_sigma + exps[1] * sigma ** exps[0] + r.constant
        jac = (math.log(2.0) + 2 * log_sigma) if r.posterior_scale == "var" else log_sigma
        return -0.5 * dev + jac

    def conditional_draw(self, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """β and the spherical u from their normal distribution given (θ, σ, y)."""
        theta, sigma = self.theta_sigma(x)
        p = self.p
        if self.single:
            _, _, _, (L, W, R) = self.pieces(theta, sigma)
            Rx = R[:p, :p]
            beta_hat = np.linalg.solve(Rx.T, R[p, :p]) if p else np.zeros(0)
            beta = beta_hat + sigma * np.linalg.solve(Rx.T, rng.standard_normal(p)) if p else beta_hat
            c = W[:, :, p] - W[:, :, :p] @ beta + sigma * rng.standard_normal((self._m, self._l))
            if self._l == 1:
                u = c / L[:, :, 0]
            elif self._l == 2:
                u1 = c[:, 1] / L[:, 1, 1]
                u = np.stack([(c[:, 0] - L[:, 1, 0] * u1) / L[:, 0, 0], u1], axis=1)
            else:
                u = np.linalg.solve(np.swapaxes(L, 1, 2), c[:, :, None])[:, :, 0]
            return beta, u.reshape(-1)
        f = self._update(theta, sigma)
        beta_hat, _ = f.solve()
        R = np.ascontiguousarray(f.R_xy[:p, :p])
        beta = beta_hat + sigma * np.linalg.solve(R.T, rng.standard_normal(p)) if p else beta_hat
        u: list = [None] * f.k
        for i in reversed(range(f.k)):
            c = f.L_xy[i][p] - f.L_xy[i][:p].T @ beta
            for r in range(i + 1, f.k):
                c = c - np.asarray(f.L_off[(r, i)].T @ u[r]).ravel()
            u[i] = f.solve_diag_t(i, c + sigma * rng.standard_normal(len(c)))
        return beta, np.concatenate(u) if u else np.zeros(0)


def prior_set_cov(priors: PriorSet) -> list:
    return list(priors.cov)
