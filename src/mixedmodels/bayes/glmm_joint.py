"""The exact joint posterior of a GLMM, p(θ, β, u[, size] | y), for NUTS.

Non-centred, as rstanarm's Stan programs: the spherical random effects u ~ N(0, I) are sampled and
b = Λ(θ) u, so η = offset + Xβ + Σ_t Z_t (T_t u_t). The covariance coordinates per term are those
of :mod:`mixedmodels.bayes.posterior` (rstanarm's decov, or θ under a blme prior); for the
negative binomial the size k (variance μ + μ²/k) is sampled as log k with rstanarm's default
prior k ~ exponential(1).

The gradient is analytic in η (the score of the family) and chained through b = Λu; the small
maps from a term's coordinates to θ and its log prior are differenced centrally (they touch no
data, and an inexact force field keeps the leapfrog reversible and volume-preserving, so the chain
still targets the exact density).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, psi

from ..models.family import Binomial, LogitLink, LogLink, NegativeBinomial, Poisson
from .posterior import DecovTerm, FixefGaussian, covariance_terms, split_terms

__all__ = ["GLMMJointPosterior"]

_FD = 1e-6


class GLMMJointPosterior:
    """log p(x | y) and its gradient, x = (covariance coordinates, β, u[, log size])."""

    has_sigma = False

    def __init__(self, model, cov: list, fixef: FixefGaussian | None, nb_rate: float | None = None):
        self.model = model
        self.family = model.family
        self.factor = model.factor
        d = model.design
        self.X = np.asarray(d.X, dtype=float)
        self.p = self.X.shape[1]
        self.y = model.response
        self.wt = model.prior_weights
        self.offset = np.zeros(len(self.y)) if d.offset is None else np.asarray(d.offset, dtype=float)
        self.fixef = fixef
        self.terms = covariance_terms(model, cov)
        self.nt = sum(t.k for t in self.terms)
        self.re = [(np.asarray(t.matrix.codes), np.asarray(t.matrix.values, dtype=float), t.nlevels, t.ncols)
                   for t in d.terms]
        self.layouts = [(np.asarray(r), np.asarray(c)) for r, c in model.factor.parametrization.layouts]
        self.q = sum(m * l for _, _, m, l in self.re)
        fam, link = self.family, self.family.link
        self.nb = isinstance(fam, NegativeBinomial)
        self.nb_rate = 1.0 if nb_rate is None else float(nb_rate)
        self.k = self.nt + self.p + self.q + (1 if self.nb else 0)
        # closed forms for the canonical links (stable in η); any other link through the family
        if isinstance(fam, Binomial) and isinstance(link, LogitLink):
            self.kind = "logit"
        elif isinstance(fam, Poisson) and isinstance(link, LogLink):
            self.kind = "log"
        elif self.nb and isinstance(link, LogLink):
            self.kind = "nb_log"
        else:
            self.kind = "general"
        if self.nb:
            self._lg_y1 = gammaln(self.y + 1.0)

    # -- coordinates -----------------------------------------------------------------------------
    def parts(self, x: np.ndarray):
        pos = self.nt
        beta = x[pos:pos + self.p]
        u = x[pos + self.p:pos + self.p + self.q]
        size = math.exp(x[-1]) if self.nb else None
        return beta, u, size

    def theta_of(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([term.theta(xi) for term, xi in split_terms(self.terms, x[:self.nt])])

    def theta_sigma(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        return self.theta_of(x), 1.0

    def to_x(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray, size: float | None = None) -> np.ndarray:
        parts, pos = [], 0
        for term, s in zip(self.terms, self.factor.theta_sizes):
            parts.append(term.to_x(theta[pos:pos + s]))
            pos += s
        parts += [beta, u]
        if self.nb:
            parts.append([math.log(size)])
        return np.concatenate(parts)

    def conditional_draw(self, x: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        beta, u, _ = self.parts(x)
        return beta.copy(), u.copy()

    def _term_values(self, term, xi: np.ndarray):
        """θ block and log prior of one term at its coordinates ``xi``."""
        th = term.theta(xi)
        if isinstance(term, DecovTerm):
            return th, term.log_prior(xi)
        T = np.zeros((term.d, term.d))
        T[term.rows, term.cols] = th
        return th, term.log_prior(xi, T)

    def _term_jacobian(self, term, xi):
        th0, lp0 = self._term_values(term, xi)
        J = np.empty((len(th0), len(xi)))
        dlp = np.empty(len(xi))
        for j in range(len(xi)):
            e = np.zeros(len(xi))
            e[j] = _FD * max(1.0, abs(xi[j]))
            tp, lpp = self._term_values(term, xi + e)
            tm, lpm = self._term_values(term, xi - e)
            J[:, j] = (tp - tm) / (2 * e[j])
            dlp[j] = (lpp - lpm) / (2 * e[j])
        return th0, lp0, J, dlp

    # -- the likelihood ----------------------------------------------------------------------------
    def _loglik(self, eta: np.ndarray, size: float | None):
        """(log-likelihood, d/dη, d/d log size)."""
        y, wt = self.y, self.wt
        if self.kind == "logit":
            ll = float(wt @ (y * eta - np.logaddexp(0.0, eta)))
            return ll, wt * (y - 1.0 / (1.0 + np.exp(-eta))), 0.0
        if self.kind == "log":
            mu = np.exp(eta)
            return float(wt @ (y * eta - mu)), wt * (y - mu), 0.0
        if self.kind == "nb_log":
            k = size
            mu = np.exp(eta)
            lkm = np.log(k + mu)
            ll = float(wt @ (gammaln(y + k) - gammaln(k) - self._lg_y1 + k * math.log(k) + y * eta
                             - (y + k) * lkm))
            d_eta = wt * (y - mu) * k / (k + mu)
            d_k = float(wt @ (psi(y + k) - psi(k) + math.log(k) + 1.0 - lkm - (y + k) / (k + mu)))
            return ll, d_eta, d_k * k
        fam = self.family
        if self.nb:
            fam.theta = size
        mu, dmu = fam.link.inverse_and_mu_eta(eta)
        ll = -0.5 * float(np.sum(fam.dev_resid(y, mu, wt)))
        return ll, wt * (y - mu) / fam.variance(mu) * dmu, None

    def log_density_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        x = np.asarray(x, dtype=float)
        if not np.all(np.isfinite(x)) or (self.nb and abs(x[-1]) > 30) or np.any(np.abs(x[:self.nt]) > 50):
            return -np.inf, np.zeros(self.k)
        try:
            return self._evaluate(x)
        except (OverflowError, FloatingPointError, ValueError, np.linalg.LinAlgError):
            return -np.inf, np.zeros(self.k)

    def _evaluate(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        grad = np.zeros(self.k)
        beta, u, size = self.parts(x)
        lp = 0.0
        blocks, pos = [], 0
        for term, xi in split_terms(self.terms, x[:self.nt]):
            th, lpt, J, dlp = self._term_jacobian(term, xi)
            lp += lpt
            grad[pos:pos + term.k] += dlp
            blocks.append((th, J, pos))
            pos += term.k
        eta = self.offset + self.X @ beta
        Us, upos = [], 0
        for (codes, values, m, l), (rows, cols), (th, _, _) in zip(self.re, self.layouts, blocks):
            T = np.zeros((l, l))
            T[rows, cols] = th
            U = u[upos:upos + m * l].reshape(m, l)
            B = U @ T.T
            eta = eta + np.einsum("ij,ij->i", values, B[codes]) if l > 1 else eta + values[:, 0] * B[codes, 0]
            Us.append((U, T, upos))
            upos += m * l
        with np.errstate(all="ignore"):
            ll, r, d_logk = self._loglik(eta, size)
        if not np.isfinite(ll) or not np.all(np.isfinite(r)):
            return -np.inf, grad
        lp += ll - 0.5 * float(u @ u)
        fx = self.fixef
        if fx is not None:
            dev = beta - fx.mu
            lp += -0.5 * float(dev @ fx.A @ dev)
            grad[self.nt:self.nt + self.p] -= fx.A @ dev
        grad[self.nt:self.nt + self.p] += self.X.T @ r
        ustart = self.nt + self.p
        for (codes, values, m, l), (rows, cols), (U, T, upos), (_, J, tpos), term in zip(
                self.re, self.layouts, Us, blocks, self.terms):
            R = np.zeros((m, l))
            for j in range(l):
                R[:, j] = np.bincount(codes, weights=r * values[:, j], minlength=m)
            grad[ustart + upos:ustart + upos + m * l] += (R @ T).ravel()
            dT = R.T @ U
            grad[tpos:tpos + term.k] += J.T @ dT[rows, cols]
        grad[ustart:ustart + self.q] -= u
        if self.nb:
            # size ~ exponential(rate), sampled as log size (Jacobian: + log size)
            lp += math.log(self.nb_rate) - self.nb_rate * size + x[-1]
            grad[-1] += (d_logk if d_logk is not None else self._nb_fd(eta, x[-1])) - self.nb_rate * size + 1.0
        return (float(lp), grad) if np.isfinite(lp) else (-np.inf, grad)

    def _nb_fd(self, eta, log_k) -> float:
        h = 1e-6
        a = self._loglik(eta, math.exp(log_k + h))[0]
        b = self._loglik(eta, math.exp(log_k - h))[0]
        return (a - b) / (2 * h)

    def log_density(self, x: np.ndarray) -> float:
        return self.log_density_and_gradient(x)[0]
