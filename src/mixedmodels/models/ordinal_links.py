"""Cumulative-link distributions and the per-observation derivatives of their log-likelihood.

An observation in category k (0-based, of K) has probability ``F(τ_k − η) − F(τ_{k−1} − η)``
with ``τ_{−1} = −∞`` and ``τ_{K−1} = +∞``, as ordinal's ``clm``/``clmm`` (so a larger η means
a higher category). :func:`observation_derivatives` gives ℓ = log P and its derivatives in the
two cut points ``a = τ_k − η``, ``c = τ_{k−1} − η`` and in η up to third order: what the Newton
steps on the random effects and the exact gradient of the Laplace likelihood need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

__all__ = ["CUMULATIVE_LINKS", "CumulativeLink", "ObsDerivatives", "cumulative_link",
           "observation_derivatives", "add_third_order", "category_probabilities"]

_TINY = 1e-300
_BIG = 700.0  # exp overflows beyond this


class CumulativeLink:
    """The latent distribution of a cumulative-link model: F, its survival S = 1 − F, and the
    density f with its first two derivatives (all zero at ±∞)."""

    name = "link"
    #: whether −log f is convex, so the log-likelihood is concave in η (Newton needs no guard)
    log_concave = True

    def cdf(self, x):
        raise NotImplementedError

    def sf(self, x):
        raise NotImplementedError

    def quantile(self, p):
        raise NotImplementedError

    def density(self, x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """f, f' and f'' at finite x."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"CumulativeLink({self.name!r})"


class _Logit(CumulativeLink):
    name = "logit"

    def cdf(self, x):
        return special.expit(x)

    def sf(self, x):
        return special.expit(-x)

    def quantile(self, p):
        return special.logit(p)

    def density(self, x):
        F = special.expit(x)
        f = F * (1.0 - F)
        s = 1.0 - 2.0 * F
        return f, f * s, f * s * s - 2.0 * f * f


class _Probit(CumulativeLink):
    name = "probit"

    def cdf(self, x):
        return special.ndtr(x)

    def sf(self, x):
        return special.ndtr(-x)

    def quantile(self, p):
        return special.ndtri(p)

    def density(self, x):
        f = np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)
        return f, -x * f, (x * x - 1.0) * f


class _Cloglog(CumulativeLink):
    """F(x) = 1 − exp(−eˣ) (ordinal's "cloglog": the Gumbel minimum)."""

    name = "cloglog"

    def cdf(self, x):
        return -np.expm1(-np.exp(np.minimum(x, _BIG)))

    def sf(self, x):
        return np.exp(-np.exp(np.minimum(x, _BIG)))

    def quantile(self, p):
        return np.log(-np.log1p(-p))

    def density(self, x):
        e = np.exp(np.minimum(x, _BIG))
        f = np.exp(np.minimum(x, _BIG) - e)
        s = 1.0 - e
        return f, f * s, f * (s * s - e)


class _Loglog(CumulativeLink):
    """F(x) = exp(−e⁻ˣ) (the Gumbel maximum)."""

    name = "loglog"

    def cdf(self, x):
        return np.exp(-np.exp(np.minimum(-x, _BIG)))

    def sf(self, x):
        return -np.expm1(-np.exp(np.minimum(-x, _BIG)))

    def quantile(self, p):
        return -np.log(-np.log(p))

    def density(self, x):
        e = np.exp(np.minimum(-x, _BIG))
        f = np.exp(np.minimum(-x, _BIG) - e)
        s = e - 1.0
        return f, f * s, f * (s * s - e)


class _Cauchit(CumulativeLink):
    name = "cauchit"
    log_concave = False

    def cdf(self, x):
        return 0.5 + np.arctan(x) / np.pi

    def sf(self, x):
        return 0.5 - np.arctan(x) / np.pi

    def quantile(self, p):
        return np.tan(np.pi * (p - 0.5))

    def density(self, x):
        d = 1.0 + x * x
        f = 1.0 / (np.pi * d)
        return f, -2.0 * x / (np.pi * d * d), (6.0 * x * x - 2.0) / (np.pi * d ** 3)


CUMULATIVE_LINKS: dict[str, CumulativeLink] = {
    c.name: c() for c in (_Logit, _Probit, _Cloglog, _Loglog, _Cauchit)}


def cumulative_link(name) -> CumulativeLink:
    """The link called ``name``; a ValueError listing the valid ones otherwise."""
    if isinstance(name, CumulativeLink):
        return name
    link = CUMULATIVE_LINKS.get(str(name).lower()) if isinstance(name, str) else None
    if link is None:
        raise ValueError(f"unknown link {name!r} for an ordinal model; choose one of "
                         f"{', '.join(repr(k) for k in CUMULATIVE_LINKS)}")
    return link


def _interval_probability(link: CumulativeLink, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """F(a) − F(c), from the survival function in the upper tail (no cancellation there)."""
    upper = c > 0
    p = np.where(upper, link.sf(c) - link.sf(a), link.cdf(a) - link.cdf(c))
    return np.maximum(p, _TINY)


def category_probabilities(link: CumulativeLink, tau: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """P(Y = k | η) for every row and category: an (n, K) array."""
    cuts = np.concatenate([[-np.inf], np.asarray(tau, float), [np.inf]])
    eta = np.asarray(eta, float)[:, None]
    upper = cuts[None, :] - eta
    cdf = link.cdf(upper)
    sf = link.sf(upper)
    lo, hi = slice(None, -1), slice(1, None)
    use_sf = upper[:, lo] > 0
    return np.where(use_sf, sf[:, lo] - sf[:, hi], cdf[:, hi] - cdf[:, lo])


@dataclass
class ObsDerivatives:
    """ℓ = log P and its derivatives per observation (see the module docstring).

    ``l_a``, ``l_c``: dℓ/da, dℓ/dc. ``l_eta``: dℓ/dη. ``w = −d²ℓ/dη²``. ``l_eta_a``,
    ``l_eta_c``: d²ℓ/dη da, d²ℓ/dη dc. ``w_a``, ``w_c``, ``w_eta``: the derivatives of w.
    The third-order fields are None unless asked for.
    """

    loglik: np.ndarray
    l_eta: np.ndarray
    w: np.ndarray
    l_a: np.ndarray | None = None
    l_c: np.ndarray | None = None
    l_eta_a: np.ndarray | None = None
    l_eta_c: np.ndarray | None = None
    w_a: np.ndarray | None = None
    w_c: np.ndarray | None = None
    w_eta: np.ndarray | None = None
    _parts: tuple = field(default=(), repr=False)


def _density_at(link: CumulativeLink, x: np.ndarray, finite: np.ndarray):
    xs = np.where(finite, x, 0.0)
    f0, f1, f2 = link.density(xs)
    return np.where(finite, f0, 0.0), np.where(finite, f1, 0.0), np.where(finite, f2, 0.0)


def observation_derivatives(link: CumulativeLink, upper: np.ndarray, lower: np.ndarray,
                            has_upper: np.ndarray, has_lower: np.ndarray, eta: np.ndarray,
                            third: bool = False) -> ObsDerivatives:
    """Derivatives of ℓ = log(F(upper − η) − F(lower − η)) per observation.

    Parameters
    ----------
    link : CumulativeLink
    upper, lower : ndarray
        τ_k and τ_{k−1} of each row's category (any value where ``has_upper``/``has_lower``
        is False: the cut point is then +∞ / −∞).
    has_upper, has_lower : ndarray of bool
    eta : ndarray
    third : bool
        Also the third-order derivatives (for the gradient of the Laplace likelihood).
    """
    a = np.where(has_upper, upper - eta, np.inf)
    c = np.where(has_lower, lower - eta, -np.inf)
    P = _interval_probability(link, a, c)
    fa, fa1, fa2 = _density_at(link, a, has_upper)
    fc, fc1, fc2 = _density_at(link, c, has_lower)
    pa, pc = fa / P, fc / P
    A1, C1 = fa1 / P, fc1 / P
    l_aa = A1 - pa * pa
    l_cc = -C1 - pc * pc
    l_ac = pa * pc
    w = -(l_aa + 2.0 * l_ac + l_cc)
    out = ObsDerivatives(np.log(P), pc - pa, w, l_a=pa, l_c=-pc)
    # what the third-order derivatives need: arithmetic only, done by add_third_order
    out._parts = (pa, pc, A1, C1, fa2 / P, fc2 / P, l_aa, l_cc, l_ac)
    if third:
        add_third_order(out)
    return out


def add_third_order(d: ObsDerivatives) -> ObsDerivatives:
    """Fill in the third-order fields of ``d`` (from what :func:`observation_derivatives`
    kept: no new evaluations of the distribution)."""
    if d.w_eta is not None:
        return d
    pa, pc, A1, C1, A2, C2, l_aa, l_cc, l_ac = d._parts
    l_aaa = A2 - 3.0 * A1 * pa + 2.0 * pa ** 3
    l_aac = A1 * pc - 2.0 * pa * pa * pc
    l_acc = pa * C1 + 2.0 * pa * pc * pc
    l_ccc = -C2 - 3.0 * C1 * pc - 2.0 * pc ** 3
    d.l_eta_a = -(l_aa + l_ac)
    d.l_eta_c = -(l_ac + l_cc)
    d.w_a = -(l_aaa + 2.0 * l_aac + l_acc)
    d.w_c = -(l_aac + 2.0 * l_acc + l_ccc)
    d.w_eta = -(d.w_a + d.w_c)
    return d
