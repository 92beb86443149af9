"""GLM families and links for generalized linear mixed models, with R's (and lme4's) numerics.

A family supplies what penalized IRLS and the Laplace deviance need: the variance function,
the deviance residuals, ``aic`` (−2 × the log-likelihood of the response, as R's
``family$aic``), start values for the mean, and the response check. Links supply the link,
its inverse and dμ/dη, bounded as lme4 bounds them so that μ stays inside the family's range.

>>> from mixedmodels.family import binomial, Gamma
>>> binomial("probit").link.name
'probit'
>>> Gamma("log").has_scale
True
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = [
    "Link", "LogitLink", "ProbitLink", "CloglogLink", "CauchitLink", "LogLink", "InverseLink",
    "IdentityLink", "SqrtLink", "InverseSquareLink", "make_link",
    "Family", "Binomial", "Poisson", "GammaFamily", "InverseGaussian", "NegativeBinomial",
    "binomial", "poisson", "Gamma", "inverse_gaussian", "negative_binomial", "get_family",
]

_EPS = np.finfo(float).eps
_LOG_2PI = np.log(2.0 * np.pi)


# --- links -------------------------------------------------------------------------------------

class Link:
    """A link function g with μ = g⁻¹(η).

    Subclasses implement :meth:`link`, :meth:`inverse` and :meth:`mu_eta` (dμ/dη).
    """

    name = "link"

    def link(self, mu: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inverse(self, eta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inverse_and_mu_eta(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """μ and dμ/dη together (one pass where the link allows)."""
        return self.inverse(eta), self.mu_eta(eta)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other) -> bool:
        return isinstance(other, Link) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class LogitLink(Link):
    """log(μ / (1 − μ)); μ kept in [ε, 1 − ε] as lme4 does."""

    name = "logit"

    def link(self, mu):
        return special.logit(mu)

    def inverse(self, eta):
        return np.clip(special.expit(eta), _EPS, 1.0 - _EPS)

    def mu_eta(self, eta):
        mu = special.expit(eta)
        return np.maximum(mu * (1.0 - mu), _EPS)

    def inverse_and_mu_eta(self, eta):
        mu = special.expit(eta)
        mu_eta = mu * (1.0 - mu)
        np.maximum(mu_eta, _EPS, out=mu_eta)
        np.clip(mu, _EPS, 1.0 - _EPS, out=mu)
        return mu, mu_eta


class ProbitLink(Link):
    """Φ⁻¹(μ); η clipped so that μ stays in (0, 1), as R's ``binomial("probit")``."""

    name = "probit"
    _THRESH = -stats.norm.ppf(_EPS)

    def link(self, mu):
        return special.ndtri(mu)

    def inverse(self, eta):
        return special.ndtr(np.clip(eta, -self._THRESH, self._THRESH))

    def mu_eta(self, eta):
        return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi), _EPS)


class CloglogLink(Link):
    """log(−log(1 − μ)); μ kept in [ε, 1 − ε] as lme4 does."""

    name = "cloglog"

    def link(self, mu):
        return np.log(-np.log1p(-mu))

    def inverse(self, eta):
        return np.clip(-np.expm1(-np.exp(eta)), _EPS, 1.0 - _EPS)

    def mu_eta(self, eta):
        eta = np.minimum(eta, 700.0)
        return np.maximum(np.exp(eta - np.exp(eta)), _EPS)


class CauchitLink(Link):
    """Cauchy quantile link."""

    name = "cauchit"

    def link(self, mu):
        return np.tan(np.pi * (mu - 0.5))

    def inverse(self, eta):
        return np.minimum(0.5 + np.arctan(eta) / np.pi, 1.0 - _EPS)

    def mu_eta(self, eta):
        return np.maximum(1.0 / (np.pi * (1.0 + eta * eta)), _EPS)


class LogLink(Link):
    """log(μ); μ bounded below by ε as lme4's ``boundexp``."""

    name = "log"

    def link(self, mu):
        return np.log(mu)

    def inverse(self, eta):
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)

    def mu_eta(self, eta):
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)


class InverseLink(Link):
    """1/μ."""

    name = "inverse"

    def link(self, mu):
        return 1.0 / mu

    def inverse(self, eta):
        return 1.0 / eta

    def mu_eta(self, eta):
        return -1.0 / (eta * eta)


class IdentityLink(Link):
    name = "identity"

    def link(self, mu):
        return np.asarray(mu, dtype=float)

    def inverse(self, eta):
        return np.asarray(eta, dtype=float)

    def mu_eta(self, eta):
        return np.ones_like(eta, dtype=float)


class SqrtLink(Link):
    name = "sqrt"

    def link(self, mu):
        return np.sqrt(mu)

    def inverse(self, eta):
        return eta * eta

    def mu_eta(self, eta):
        return 2.0 * eta


class InverseSquareLink(Link):
    """1/μ², the canonical link of the inverse Gaussian."""

    name = "1/mu^2"

    def link(self, mu):
        return 1.0 / (mu * mu)

    def inverse(self, eta):
        return 1.0 / np.sqrt(eta)

    def mu_eta(self, eta):
        return -1.0 / (2.0 * eta ** 1.5)


_LINKS = {cls.name: cls for cls in (LogitLink, ProbitLink, CloglogLink, CauchitLink, LogLink,
                                    InverseLink, IdentityLink, SqrtLink, InverseSquareLink)}
_LINKS["inverse_squared"] = InverseSquareLink


def make_link(link: str | Link) -> Link:
    """A link object from its R name (``"logit"``, ``"probit"``, ``"log"``, ``"1/mu^2"``...)."""
    if isinstance(link, Link):
        return link
    if not isinstance(link, str) or link not in _LINKS:
        raise ValueError(f"unknown link {link!r}; choose one of {', '.join(sorted(_LINKS))}")
    return _LINKS[link]()


# --- families ----------------------------------------------------------------------------------

def _ylogy(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """y·log(y/μ), zero where y is zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return special.xlogy(y, y) - special.xlogy(y, mu)


class Family:
    """Base class of the GLM families.

    Attributes
    ----------
    name : str
        R's family name (``"binomial"``, ``"poisson"``, ``"Gamma"``...).
    link : Link
    has_scale : bool
        True when the family has a dispersion parameter that is estimated.
    """

    name = "family"
    has_scale = False
    allowed_links: tuple[str, ...] = ()
    default_link = "identity"

    def __init__(self, link: str | Link | None = None):
        link = make_link(link if link is not None else self.default_link)
        if self.allowed_links and link.name not in self.allowed_links:
            raise ValueError(f"link {link.name!r} is not available for the {self.name} family; "
                             f"choose one of {', '.join(self.allowed_links)}")
        self.link = link

    def variance(self, mu: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def dev_resid(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Squared deviance residuals (R's ``dev.resids``)."""
        raise NotImplementedError

    def aic(self, y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float) -> float:
        """−2 × log-likelihood of the response given μ (R's ``family$aic``, which lme4 uses)."""
        raise NotImplementedError

    def mustart(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Start values for μ (R's ``initialize`` expression)."""
        return np.asarray(y, dtype=float).copy()

    def check_response(self, y: np.ndarray, name: str) -> None:
        """Raise :class:`~mixedmodels.exceptions.DataError` naming ``name`` for invalid values."""

    def deviance_function(self, y: np.ndarray, wt: np.ndarray):
        """``mu -> dev_resid(y, mu, wt)`` with the parts that depend only on y precomputed."""
        return lambda mu: self.dev_resid(y, mu, wt)

    def aic_minus_deviance(self, y: np.ndarray, n: np.ndarray, wt: np.ndarray) -> float | None:
        """C with ``aic(μ) = Σ dev_resid(μ) + C`` for every μ, where such a constant exists
        (binomial with whole numbers of successes, Poisson, negative binomial); else None."""
        return None

    @property
    def label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r})"


def _data_error(message: str):
    from ..exceptions import DataError

    return DataError(message)


def _first_bad(mask: np.ndarray, values: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(f"{values[i]:g}" for i in idx[:3])
    return f"{len(idx)} value(s), e.g. {shown}"


class Binomial(Family):
    """Binomial: 0/1 or two-level factor responses, ``cbind(successes, failures)``, or
    proportions with ``weights`` giving the number of trials."""

    name = "binomial"
    allowed_links = ("logit", "probit", "cloglog", "cauchit", "log")
    default_link = "logit"

    def variance(self, mu):
        return mu * (1.0 - mu)

    def dev_resid(self, y, mu, wt):
        return 2.0 * wt * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))

    def aic(self, y, n, mu, wt, dev):
        m = n if np.any(n > 1) else wt
        k = np.rint(m * y)
        m = np.rint(m)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
            logp = (special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
                    + special.xlogy(k, mu) + special.xlog1py(m - k, -mu))
        return float(-2.0 * np.sum(np.where(scale > 0, scale * logp, 0.0)))

    def mustart(self, y, wt):
        return (wt * y + 0.5) / (wt + 1.0)

    def deviance_function(self, y, wt):
        const = 2.0 * wt * (special.xlogy(y, y) + special.xlogy(1.0 - y, 1.0 - y))
        if np.all((y == 0) | (y == 1)):
            success = y == 1
            w2 = 2.0 * wt

            def dev(mu):  # one log per row for 0/1 data
                return -w2 * np.log(np.where(success, mu, 1.0 - mu))
            return dev
        a, b = 2.0 * wt * y, 2.0 * wt * (1.0 - y)
        return lambda mu: const - a * np.log(mu) - b * np.log1p(-mu)

    def aic_minus_deviance(self, y, n, wt):
        m = n if np.any(n > 1) else wt
        k = np.rint(m * y)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
        # aic and the deviance share their μ-terms when the successes are whole numbers
        if not (np.allclose(scale * k, wt * y, rtol=1e-12, atol=1e-12)
                and np.allclose(scale * (np.rint(m) - k), wt * (1.0 - y), rtol=1e-12, atol=1e-12)):
            return None
        sat = np.clip(y, _EPS, 1.0 - _EPS)
        return self.aic(y, n, sat, wt, 0.0) - float(np.sum(self.dev_resid(y, sat, wt)))

    def check_response(self, y, name):
        bad = (y < 0) | (y > 1) | ~np.isfinite(y)
        if bad.any():
            raise _data_error(
                f"binomial response {name!r} must lie in [0, 1] ({_first_bad(bad, y)} are outside). "
                "Give 0/1 outcomes, a two-level factor, cbind(successes, failures), or "
                "proportions with weights= the number of trials.")


class Poisson(Family):
    """Poisson counts."""

    name = "poisson"
    allowed_links = ("log", "identity", "sqrt")
    default_link = "log"

    def variance(self, mu):
        return mu

    def dev_resid(self, y, mu, wt):
        return 2.0 * wt * (_ylogy(y, mu) - (y - mu))

    def aic(self, y, n, mu, wt, dev):
        logp = special.xlogy(y, mu) - mu - special.gammaln(y + 1.0)
        return float(-2.0 * np.sum(logp * wt))

    def mustart(self, y, wt):
        return y + 0.1

    def deviance_function(self, y, wt):
        const = 2.0 * wt * (special.xlogy(y, y) - y)
        a, w2 = 2.0 * wt * y, 2.0 * wt
        return lambda mu: const - a * np.log(mu) + w2 * mu

    def aic_minus_deviance(self, y, n, wt):
        return float(-2.0 * np.sum(wt * (special.xlogy(y, y) - y - special.gammaln(y + 1.0))))

    def check_response(self, y, name):
        _check_counts(y, name, self.name)


def _check_counts(y: np.ndarray, name: str, family: str) -> None:
    bad = ~np.isfinite(y) | (y < 0)
    if bad.any():
        raise _data_error(f"{family} response {name!r} has negative values ({_first_bad(bad, y)}); "
                          "a count response must be a non-negative integer.")
    frac = np.abs(y - np.rint(y)) > 1e-8
    if frac.any():
        raise _data_error(f"{family} response {name!r} has non-integer values "
                          f"({_first_bad(frac, y)}); a count response must be a non-negative "
                          "integer. For rates, model the count with offset(log(exposure)).")


class GammaFamily(Family):
    """Gamma (positive continuous) with an estimated dispersion."""

    name = "Gamma"
    has_scale = True
    allowed_links = ("inverse", "log", "identity")
    default_link = "inverse"

    def variance(self, mu):
        return mu * mu

    def dev_resid(self, y, mu, wt):
        with np.errstate(divide="ignore"):
            ratio = np.where(y > 0, np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
        return -2.0 * wt * (ratio - (y - mu) / mu)

    def aic(self, y, n, mu, wt, dev):
        nn = np.sum(wt)
        disp = dev / nn
        shape = 1.0 / disp
        logp = stats.gamma.logpdf(y, shape, scale=mu * disp)
        return float(-2.0 * np.sum(wt * logp) + 2.0)

    def check_response(self, y, name):
        bad = ~np.isfinite(y) | (y <= 0)
        if bad.any():
            raise _data_error(f"Gamma response {name!r} must be positive ({_first_bad(bad, y)} "
                              "are not).")


class InverseGaussian(Family):
    """Inverse Gaussian (positive continuous) with an estimated dispersion."""

    name = "inverse.gaussian"
    has_scale = True
    allowed_links = ("1/mu^2", "inverse", "log", "identity")
    default_link = "1/mu^2"

    def variance(self, mu):
        return mu ** 3

    def dev_resid(self, y, mu, wt):
        return wt * (y - mu) ** 2 / (y * mu * mu)

    def aic(self, y, n, mu, wt, dev):
        wtsum = np.sum(wt)
        return float(wtsum * (np.log(dev / wtsum * 2.0 * np.pi) + 1.0)
                     + 3.0 * np.sum(np.log(y) * wt) + 2.0)

    def check_response(self, y, name):
        bad = ~np.isfinite(y) | (y <= 0)
        if bad.any():
            raise _data_error(f"inverse Gaussian response {name!r} must be positive "
                              f"({_first_bad(bad, y)} are not).")


class NegativeBinomial(Family):
    """Negative binomial counts with variance μ + μ²/θ (MASS's ``negative.binomial(theta)``).

    With ``theta=None``, :func:`~mixedmodels.glmm.glmer` estimates θ as lme4's ``glmer.nb``.
    """

    name = "negative_binomial"
    allowed_links = ("log", "identity", "sqrt")
    default_link = "log"

    def __init__(self, theta: float | None = None, link: str | Link | None = None):
        super().__init__(link)
        if theta is not None and not (np.isfinite(theta) and theta > 0):
            raise ValueError(f"negative binomial theta must be positive, got {theta!r}")
        self.theta = None if theta is None else float(theta)

    @property
    def label(self) -> str:
        return f"Negative Binomial({self.theta:.4g})" if self.theta is not None else self.name

    def _theta(self) -> float:
        if self.theta is None:
            raise ValueError("negative binomial theta is not set")
        return self.theta

    def variance(self, mu):
        return mu + mu * mu / self._theta()

    def dev_resid(self, y, mu, wt):
        th = self._theta()
        return 2.0 * wt * (_ylogy(y, mu) - (y + th) * np.log((y + th) / (mu + th)))

    def aic(self, y, n, mu, wt, dev):
        th = self._theta()
        term = ((y + th) * np.log(mu + th) - special.xlogy(y, mu) + special.gammaln(y + 1.0)
                - th * np.log(th) + special.gammaln(th) - special.gammaln(th + y))
        return float(2.0 * np.sum(term * wt))

    def mustart(self, y, wt):
        return y + (y == 0) / 6.0

    def aic_minus_deviance(self, y, n, wt):
        th = self._theta()
        term = (-special.xlogy(y, y) + (y + th) * np.log(y + th) + special.gammaln(y + 1.0)
                - th * np.log(th) + special.gammaln(th) - special.gammaln(th + y))
        return float(2.0 * np.sum(wt * term))

    def check_response(self, y, name):
        _check_counts(y, name, "negative binomial")

    def __repr__(self) -> str:
        return f"NegativeBinomial(theta={self.theta!r}, link={self.link.name!r})"


# --- constructors with R's names -----------------------------------------------------------------

def binomial(link: str | Link = "logit") -> Binomial:
    """The binomial family (links: logit, probit, cloglog, cauchit, log)."""
    return Binomial(link)


def poisson(link: str | Link = "log") -> Poisson:
    """The Poisson family (links: log, identity, sqrt)."""
    return Poisson(link)


def Gamma(link: str | Link = "inverse") -> GammaFamily:  # noqa: N802 (R's name)
    """The Gamma family (links: inverse, log, identity)."""
    return GammaFamily(link)


def inverse_gaussian(link: str | Link = "1/mu^2") -> InverseGaussian:
    """The inverse Gaussian family (links: 1/mu^2, inverse, log, identity)."""
    return InverseGaussian(link)


def negative_binomial(theta: float | None = None, link: str | Link = "log") -> NegativeBinomial:
    """The negative binomial family; ``theta=None`` means estimate it (lme4's ``glmer.nb``)."""
    return NegativeBinomial(theta, link)


_BY_NAME = {
    "binomial": binomial, "poisson": poisson, "gamma": Gamma,
    "inverse_gaussian": inverse_gaussian, "inverse.gaussian": inverse_gaussian,
    "inversegaussian": inverse_gaussian, "negative_binomial": negative_binomial,
    "negative.binomial": negative_binomial, "negbin": negative_binomial, "nb": negative_binomial,
}


def get_family(family: str | Family, link: str | Link | None = None) -> Family:
    """A family object from a name (``"binomial"``, ``"poisson"``, ``"Gamma"``, ...) or a family.

    Parameters
    ----------
    family : str or Family
    link : str or Link, optional
        Overrides the family's default link when ``family`` is a name.
    """
    if isinstance(family, Family):
        if link is not None and make_link(link).name != family.link.name:
            raise ValueError("give the link inside the family object, e.g. binomial('probit'), "
                             "not both")
        return family
    if isinstance(family, type) and issubclass(family, Family):
        return family(link) if link is not None else family()
    if not isinstance(family, str):
        raise TypeError(f"family must be a name or a Family object, got {type(family).__name__}")
    key = family.strip().lower()
    if key == "gaussian":
        raise ValueError("family 'gaussian' with the identity link is a linear mixed model: "
                         "use mm.lmer")
    if key not in _BY_NAME:
        raise ValueError(f"unknown family {family!r}; choose one of binomial, poisson, "
                         "negative_binomial, Gamma, inverse_gaussian, or pass a family object")
    maker = _BY_NAME[key]
    return maker(link=link) if link is not None else maker()
