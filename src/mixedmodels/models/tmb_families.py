"""glmmTMB's response families: NB1/NB2, zero-inflated and hurdle counts, beta, Tweedie, and
Gamma/Gaussian with a dispersion model.

Each family gives the log density of one observation and its first two derivatives in the
conditional linear predictor η (hand-derived), given the other per-observation predictors it
uses ("channels"): ``"disp"`` (log dispersion, glmmTMB's ``betad``), ``"zi"`` (logit of the
zero-inflation or hurdle probability) and ``"power"`` (Tweedie's, ``power = 1 + logistic``).
The Laplace engine (:mod:`mixedmodels.models.laplace`) needs nothing else. The
parametrizations are glmmTMB's (``?sigma.glmmTMB``, ``?family_glmmTMB``):

=================  =====================================  ================================
family             density                                dispersion φ = exp(disp)
=================  =====================================  ================================
poisson            Poisson(μ)                             none
nbinom2            NB, Var = μ(1 + μ/φ)                   φ the size (``sigma()``)
nbinom1            NB with size μ/φ, Var = μ(1 + φ)       φ
beta               Beta(μφ, (1-μ)φ)                       φ the precision
Gamma              shape φ, mean μ                        ``sigma() = 1/√φ``
gaussian           N(μ, φ)                                ``sigma() = √φ``
tweedie            Var = φ μ^p, 1 < p < 2                 φ
=================  =====================================  ================================

A new family is one class: ``loglik``, ``mean_link``-style attributes and ``simulate``.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import DataError
from .family import Family, make_link

__all__ = ["TMBFamily", "ZeroInflated", "Hurdle", "tmb_family", "TMB_FAMILIES", "is_tmb_family"]


_FD_STEP = 1e-4


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _link_derivs(link: str, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """μ, dμ/dη and d²μ/dη² for the links these families use."""
    if link == "log":
        mu = np.exp(eta)
        return mu, mu, mu
    if link == "logit":
        mu = _sigmoid(eta)
        d = mu * (1.0 - mu)
        return mu, d, d * (1.0 - 2.0 * mu)
    if link == "identity":
        return eta, np.ones_like(eta), np.zeros_like(eta)
    if link == "inverse":
        mu = 1.0 / eta
        return mu, -mu * mu, 2.0 * mu ** 3
    raise ValueError(f"link {link!r} is not available for glmmTMB's families here")


class TMBFamily(Family):
    """Base class: a response distribution in glmmTMB's parametrization.

    Attributes
    ----------
    channels : tuple of str
        The per-observation predictors besides η the density needs (``"disp"``, ``"power"``).
    is_count : bool
        Whether ``zi=`` (zero inflation) may be added.
    """

    channels: tuple[str, ...] = ()
    is_count = False
    truncated = False
    has_scale = False
    allowed_links: tuple[str, ...] = ("log",)
    default_link = "log"

    # the engine's contract -------------------------------------------------------------------
    def prepare(self, y: np.ndarray, aux: dict) -> dict:
        """What does not depend on η (computed once per outer evaluation: the inner Newton
        iterations only move η)."""
        return {}

    def loglik(self, y: np.ndarray, eta: np.ndarray, aux: dict, prep: dict | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per observation: log density, and its first and second derivatives in η
        (``prep`` from :meth:`prepare` for these y and aux, computed when not given)."""
        mu, d1, d2 = _link_derivs(self.link.name, eta)
        l, lm, lmm = self.loglik_mu(y, mu, aux)
        return l, lm * d1, lmm * d1 * d1 + lm * d2

    def gradient_terms(self, y: np.ndarray, eta: np.ndarray, aux: dict, prep: dict,
                       h: float = _FD_STEP) -> tuple[np.ndarray, dict]:
        """What the engine's gradient needs besides ``loglik``: ∂³ log f/∂η³ and, per channel c,
        (∂/∂c, ∂²/∂η∂c, ∂³/∂η²∂c) of log f. By default central differences of the
        hand-derived ``loglik`` (step h: relative error ~1e-9); families override with closed
        forms where they have them."""
        l3 = (self.loglik(y, eta + h, aux, prep)[2] - self.loglik(y, eta - h, aux, prep)[2]) / (2 * h)
        return l3, {c: self.channel_derivatives(y, eta, aux, c, h) for c in self.channels}

    def channel_derivatives(self, y, eta, aux, c, h=_FD_STEP):
        """(∂/∂c, ∂²/∂η∂c, ∂³/∂η²∂c) of log f by central differences in channel c."""
        up, dn = dict(aux), dict(aux)
        up[c], dn[c] = aux[c] + h, aux[c] - h
        p = self.loglik(y, eta, up, self.prepare(y, up))
        m = self.loglik(y, eta, dn, self.prepare(y, dn))
        return tuple((p[i] - m[i]) / (2.0 * h) for i in range(3))

    def loglik_mu(self, y, mu, aux):
        """The same in μ (families that give it in μ; the link's chain rule does the rest)."""
        raise NotImplementedError

    def cond_mean(self, eta: np.ndarray) -> np.ndarray:
        return self.link.inverse(eta)

    def response_mean(self, eta: np.ndarray, aux: dict) -> np.ndarray:
        """E(y): the conditional mean (zero inflation and truncation change it)."""
        return self.cond_mean(eta)

    def conditional_mean(self, eta: np.ndarray, aux: dict) -> np.ndarray:
        """glmmTMB's ``predict(type = "conditional")``: the mean of the count part (of the
        truncated distribution for hurdle models)."""
        return self.cond_mean(eta)

    def sigma(self, disp: np.ndarray) -> np.ndarray:
        """glmmTMB's ``sigma()`` from the dispersion predictor."""
        return np.exp(disp)

    def check_response(self, y: np.ndarray, name: str) -> None:
        if not np.all(np.isfinite(y)):
            raise DataError(f"response {name!r} has non-finite values")

    def start_aux(self, y: np.ndarray, mu: np.ndarray) -> dict:
        """Start values of the channels' intercepts."""
        return {c: 0.0 for c in self.channels}

    def simulate_from(self, mu: np.ndarray, aux: dict, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    @property
    def label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r})"


# --- counts ------------------------------------------------------------------------------------

class _Count(TMBFamily):
    is_count = True

    def check_response(self, y, name):
        super().check_response(y, name)
        bad = (y < 0) | (np.abs(y - np.rint(y)) > 1e-8)
        if np.any(bad):
            raise DataError(f"the {self.name} family needs non-negative integer counts; response "
                            f"{name!r} has {int(bad.sum())} other values (e.g. {y[bad][0]:g})")

    def loglik(self, y, eta, aux, prep=None):
        return self.loglik_eta(y, eta, aux, self.prepare(y, aux) if prep is None else prep)

    def loglik_eta(self, y, eta, aux, prep):  # counts use the log link, written directly in η
        raise NotImplementedError

    def log_zero(self, eta, aux):
        """log f(0 | η) and its first two η-derivatives (zero inflation, hurdles)."""
        z = np.zeros_like(eta)
        return self.loglik_eta(z, eta, aux, self.prepare(z, aux))


class TMBPoisson(_Count):
    """Poisson counts (log link), as glmmTMB's ``poisson``."""

    name = "poisson"

    def prepare(self, y, aux):
        from scipy.special import gammaln

        return {"c": -gammaln(y + 1.0)}

    def loglik_eta(self, y, eta, aux, prep):
        mu = np.exp(eta)
        return y * eta - mu + prep["c"], y - mu, -mu

    def log_zero(self, eta, aux):
        mu = -np.exp(eta)
        return mu, mu, mu

    def third(self, y, eta, aux):
        """∂³ log f(y)/∂η³ and ∂³ log f(0)/∂η³."""
        mu = -np.exp(eta)
        return mu, mu

    def simulate_from(self, mu, aux, rng):
        return rng.poisson(mu).astype(float)

    def variance_of(self, mu, aux):
        return mu


class NBinom2(_Count):
    """Negative binomial with Var = μ(1 + μ/φ) (glmmTMB's ``nbinom2``; φ the size)."""

    name = "nbinom2"
    channels = ("disp",)

    def prepare(self, y, aux):
        from scipy.special import gammaln

        psi = aux["disp"]
        k = np.exp(psi)
        return {"c": gammaln(y + k) - gammaln(k) - gammaln(y + 1.0) + k * psi, "k": k}

    def loglik_eta(self, y, eta, aux, prep):
        psi, k = aux["disp"], prep["k"]
        log_km = np.logaddexp(psi, eta)   # log(k + μ)
        p = np.exp(eta - log_km)          # μ / (k + μ)
        ky = k + y
        l = prep["c"] - ky * log_km + y * eta
        return l, y - ky * p, -ky * p * (1.0 - p)

    def log_zero(self, eta, aux):
        psi = aux["disp"]
        k = np.exp(psi)
        log_km = np.logaddexp(psi, eta)
        p = np.exp(eta - log_km)
        return k * (psi - log_km), -k * p, -k * p * (1.0 - p)

    def third(self, y, eta, aux):
        k = np.exp(aux["disp"])
        p = _sigmoid(eta - aux["disp"])
        t = p * (1.0 - p) * (1.0 - 2.0 * p)
        return -(k + y) * t, -k * t

    def disp_derivs(self, y, eta, aux):
        """∂/∂ψ of (log f, ∂ log f/∂η, ∂² log f/∂η²) at y, and the same of log f(0)."""
        from scipy.special import digamma

        psi = aux["disp"]
        k = np.exp(psi)
        log_km = np.logaddexp(psi, eta)
        p = np.exp(eta - log_km)
        ky = k + y
        q = p * (1.0 - p)
        base = psi + 1.0 - log_km
        f = (k * (digamma(y + k) - digamma(k) + base - ky / (k + np.exp(eta))),
             -k * p + ky * q, -k * q + ky * q * (1.0 - 2.0 * p))
        g = (k * (base - (1.0 - p)), -k * p * p, -2.0 * k * p * q)
        return f, g

    def gradient_terms(self, y, eta, aux, prep, h=_FD_STEP):
        return self.third(y, eta, aux)[0], {"disp": self.disp_derivs(y, eta, aux)[0]}

    def simulate_from(self, mu, aux, rng):
        k = np.exp(aux["disp"])
        return rng.poisson(rng.gamma(k, mu / k)).astype(float)

    def variance_of(self, mu, aux):
        return mu * (1.0 + mu / np.exp(aux["disp"]))


class NBinom1(_Count):
    """Negative binomial with Var = μ(1 + φ) (glmmTMB's ``nbinom1``: size μ/φ)."""

    name = "nbinom1"
    channels = ("disp",)

    def log_zero(self, eta, aux):
        g = -np.exp(eta - aux["disp"]) * np.logaddexp(0.0, aux["disp"])
        return g, g, g

    def loglik_eta(self, y, eta, aux, prep):
        from scipy.special import digamma, gammaln, polygamma

        phi_log = aux["disp"]
        k = np.exp(eta - phi_log)
        log1p_phi = np.logaddexp(0.0, phi_log)
        l = (gammaln(y + k) - gammaln(k) - gammaln(y + 1.0) - k * log1p_phi
             + y * (phi_log - log1p_phi))
        dg = np.where(y > 0, digamma(y + k) - digamma(k), 0.0)
        tg = np.where(y > 0, polygamma(1, y + k) - polygamma(1, k), 0.0)
        l1 = k * (dg - log1p_phi)
        return l, l1, l1 + k * k * tg

    def simulate_from(self, mu, aux, rng):
        k = mu / np.exp(aux["disp"])
        return rng.poisson(rng.gamma(k, mu / k)).astype(float)

    def variance_of(self, mu, aux):
        return mu * (1.0 + np.exp(aux["disp"]))


# --- zero inflation and hurdles --------------------------------------------------------------------

class ZeroInflated(TMBFamily):
    """A count family mixed with structural zeros: P(0) = π + (1-π) f(0), π = logistic(zi)."""

    is_count = True

    def __init__(self, base: _Count):
        self.base = base
        self.link = base.link
        self.name = base.name
        self.channels = ("zi",) + base.channels

    def check_response(self, y, name):
        self.base.check_response(y, name)

    def prepare(self, y, aux):
        zi = aux["zi"]
        return {"base": self.base.prepare(y, aux), "log_pi": _log_sigmoid(zi),
                "log_1mpi": _log_sigmoid(-zi), "zero": y == 0}

    def loglik(self, y, eta, aux, prep=None):
        prep = self.prepare(y, aux) if prep is None else prep
        f, f1, f2 = self.base.loglik(y, eta, aux, prep["base"])
        g, g1, g2 = self.base.log_zero(eta, aux)
        log_pi, log_1mpi, zero = prep["log_pi"], prep["log_1mpi"], prep["zero"]
        l0 = np.logaddexp(log_pi, log_1mpi + g)
        w = np.exp(log_1mpi + g - l0)     # P(count part | y = 0)
        l = np.where(zero, l0, log_1mpi + f)
        l1 = np.where(zero, w * g1, f1)
        l2 = np.where(zero, w * g2 + w * (1.0 - w) * g1 * g1, f2)
        return l, l1, l2

    def gradient_terms(self, y, eta, aux, prep, h=_FD_STEP):
        """Closed forms for the zero-inflation channel (and ∂³/∂η³ when the count family has
        them); the count family's own channels by differences."""
        if not hasattr(self.base, "third"):
            return super().gradient_terms(y, eta, aux, prep, h)
        g, g1, g2 = self.base.log_zero(eta, aux)
        f3, g3 = self.base.third(y, eta, aux)
        log_pi, log_1mpi, zero = prep["log_pi"], prep["log_1mpi"], prep["zero"]
        w = np.exp(log_1mpi + g - np.logaddexp(log_pi, log_1mpi + g))
        ww = w * (1.0 - w)
        l3 = np.where(zero, w * g3 + 3.0 * ww * g1 * g2 + ww * (1.0 - 2.0 * w) * g1 ** 3, f3)
        pi = np.exp(log_pi)
        out = {"zi": (np.where(zero, 1.0 - w - pi, -pi), np.where(zero, -ww * g1, 0.0),
                      np.where(zero, -ww * g2 - ww * (1.0 - 2.0 * w) * g1 * g1, 0.0))}
        for c in self.base.channels:
            if c == "disp" and hasattr(self.base, "disp_derivs"):
                (f_, f1_, f2_), (gp, g1p, g2p) = self.base.disp_derivs(y, eta, aux)
                dw = ww * gp   # ∂w/∂ψ
                out[c] = (np.where(zero, w * gp, f_),
                          np.where(zero, w * g1p + g1 * dw, f1_),
                          np.where(zero, w * g2p + g2 * dw + (1.0 - 2.0 * w) * dw * g1 * g1
                                   + 2.0 * ww * g1 * g1p, f2_))
            else:
                out[c] = self.channel_derivatives(y, eta, aux, c, h)
        return l3, out

    def response_mean(self, eta, aux):
        return (1.0 - _sigmoid(aux["zi"])) * self.cond_mean(eta)

    def start_aux(self, y, mu):
        return {"zi": 0.0, **self.base.start_aux(y, mu)}

    def sigma(self, disp):
        return self.base.sigma(disp)

    def simulate_from(self, mu, aux, rng):
        y = self.base.simulate_from(mu, aux, rng)
        y[rng.uniform(size=y.shape) < _sigmoid(aux["zi"])] = 0.0
        return y

    def variance_of(self, mu, aux):
        pi = _sigmoid(aux["zi"])
        return (1.0 - pi) * (self.base.variance_of(mu, aux) + pi * mu * mu)

    @property
    def label(self) -> str:
        return f"{self.base.name}, zero-inflated"


class Hurdle(TMBFamily):
    """A zero-truncated count family with a zero part: P(0) = π, P(y) = (1-π) f(y)/(1-f(0))
    (glmmTMB's ``truncated_*`` families with ``zi=``; without it π is 0)."""

    is_count = True
    truncated = True

    def __init__(self, base: _Count, with_zero_part: bool = True):
        self.base = base
        self.link = base.link
        self.name = "truncated_" + base.name
        self.with_zero_part = with_zero_part
        self.channels = (("zi",) if with_zero_part else ()) + base.channels

    def check_response(self, y, name):
        self.base.check_response(y, name)
        if not self.with_zero_part and np.any(y == 0):
            raise DataError(f"the {self.name} family without zi= is zero-truncated, but response "
                            f"{name!r} has {int(np.sum(y == 0))} zeros; give zi= for a hurdle model")

    def _log_pos(self, y, eta, aux, prep):
        """log f(y) - log(1 - f(0)) and its η-derivatives."""
        f, f1, f2 = self.base.loglik(y, eta, aux, prep)
        g, g1, g2 = self.base.log_zero(eta, aux)
        s = 1.0 / np.expm1(-g)            # f(0) / (1 - f(0))
        h = -np.log(-np.expm1(g))
        return f + h, f1 + s * g1, f2 + s * g2 + s * (1.0 + s) * g1 * g1

    def prepare(self, y, aux):
        return self.base.prepare(np.maximum(y, 1.0), aux)

    def loglik(self, y, eta, aux, prep=None):
        prep = self.prepare(y, aux) if prep is None else prep
        l, l1, l2 = self._log_pos(np.maximum(y, 1.0), eta, aux, prep)
        if not self.with_zero_part:
            return l, l1, l2
        zi = aux["zi"]
        zero = y == 0
        l = np.where(zero, _log_sigmoid(zi), _log_sigmoid(-zi) + l)
        return l, np.where(zero, 0.0, l1), np.where(zero, 0.0, l2)

    def _p_pos_count(self, eta, aux):
        return -np.expm1(self.base.log_zero(eta, aux)[0])

    def cond_mean(self, eta):
        return self.link.inverse(eta)

    def conditional_mean(self, eta, aux):
        return self.cond_mean(eta) / self._p_pos_count(eta, aux)

    def response_mean(self, eta, aux):
        pi = _sigmoid(aux["zi"]) if self.with_zero_part else 0.0
        return (1.0 - pi) * self.cond_mean(eta) / self._p_pos_count(eta, aux)

    def start_aux(self, y, mu):
        return {**({"zi": 0.0} if self.with_zero_part else {}), **self.base.start_aux(y, mu)}

    def sigma(self, disp):
        return self.base.sigma(disp)

    def simulate_from(self, mu, aux, rng):
        y = np.zeros(mu.shape)
        todo = np.ones(mu.shape, bool)
        for _ in range(1000):   # rejection: redraw the zeros of the count part
            if not todo.any():
                break
            draw = self.base.simulate_from(mu, aux, rng)
            hit = todo & (draw > 0)
            y[hit] = draw[hit]
            todo &= ~hit
        if self.with_zero_part:
            y[rng.uniform(size=y.shape) < _sigmoid(aux["zi"])] = 0.0
        return y

    def variance_of(self, mu, aux):
        p0 = 1.0 - self._p_pos_count(np.log(mu), aux)
        pi = _sigmoid(aux["zi"]) if self.with_zero_part else 0.0
        m1 = mu / (1.0 - p0)
        ey2 = (self.base.variance_of(mu, aux) + mu * mu) / (1.0 - p0)
        return (1.0 - pi) * ey2 - ((1.0 - pi) * m1) ** 2

    @property
    def label(self) -> str:
        return self.name + (", hurdle" if self.with_zero_part else "")


# --- continuous ------------------------------------------------------------------------------------

class TMBBeta(TMBFamily):
    """Beta(μφ, (1-μ)φ), glmmTMB's ``beta_family`` (Ferrari & Cribari-Neto's precision φ)."""

    name = "beta"
    channels = ("disp",)
    allowed_links = ("logit",)
    default_link = "logit"

    def check_response(self, y, name):
        super().check_response(y, name)
        bad = (y <= 0) | (y >= 1)
        if np.any(bad):
            n0, n1 = int(np.sum(y <= 0)), int(np.sum(y >= 1))
            raise DataError(
                f"the beta family needs a response strictly between 0 and 1; {name!r} has "
                f"{n0} value(s) <= 0 and {n1} value(s) >= 1 (of {len(y)}). Transform it, e.g. "
                f"(y * (n - 1) + 0.5) / n with n = {len(y)} (Smithson & Verkuilen), or use an "
                "ordered-beta model (glmmTMB's ordbeta) for data with exact 0s and 1s")

    def loglik_mu(self, y, mu, aux):
        from scipy.special import digamma, gammaln, polygamma

        phi = np.exp(aux["disp"])
        a, b = mu * phi, (1.0 - mu) * phi
        ly, l1y = np.log(y), np.log1p(-y)
        l = gammaln(phi) - gammaln(a) - gammaln(b) + (a - 1.0) * ly + (b - 1.0) * l1y
        lm = phi * (digamma(b) - digamma(a) + ly - l1y)
        lmm = -phi * phi * (polygamma(1, a) + polygamma(1, b))
        return l, lm, lmm

    def start_aux(self, y, mu):
        v = np.var(y)
        m = np.mean(y)
        return {"disp": float(np.log(max(m * (1 - m) / max(v, 1e-12) - 1.0, 0.1)))}

    def simulate_from(self, mu, aux, rng):
        phi = np.exp(aux["disp"])
        return rng.beta(mu * phi, (1.0 - mu) * phi)

    def variance_of(self, mu, aux):
        return mu * (1.0 - mu) / (1.0 + np.exp(aux["disp"]))


class TMBGamma(TMBFamily):
    """Gamma with shape φ and mean μ (glmmTMB's ``Gamma``; ``sigma() = 1/√φ``)."""

    name = "Gamma"
    channels = ("disp",)
    allowed_links = ("log", "inverse", "identity")
    default_link = "log"

    def check_response(self, y, name):
        super().check_response(y, name)
        if np.any(y <= 0):
            raise DataError(f"the Gamma family needs a positive response; {name!r} has "
                            f"{int(np.sum(y <= 0))} values <= 0")

    def loglik_mu(self, y, mu, aux):
        from scipy.special import gammaln

        a = np.exp(aux["disp"])
        l = -gammaln(a) + a * (aux["disp"] - np.log(mu)) + (a - 1.0) * np.log(y) - a * y / mu
        return l, a * (y - mu) / mu ** 2, a * (mu - 2.0 * y) / mu ** 3

    def sigma(self, disp):
        return np.exp(-0.5 * disp)

    def start_aux(self, y, mu):
        cv2 = np.var(y) / np.mean(y) ** 2
        return {"disp": float(-np.log(max(cv2, 1e-6)))}

    def simulate_from(self, mu, aux, rng):
        a = np.exp(aux["disp"])
        return rng.gamma(a, mu / a)

    def variance_of(self, mu, aux):
        return mu * mu / np.exp(aux["disp"])


class TMBGaussian(TMBFamily):
    """Normal with variance φ (glmmTMB's ``gaussian`` with a dispersion model; ``sigma() = √φ``)."""

    name = "gaussian"
    channels = ("disp",)
    allowed_links = ("identity", "log", "inverse")
    default_link = "identity"

    def loglik_mu(self, y, mu, aux):
        v = np.exp(aux["disp"])
        r = y - mu
        return -0.5 * (np.log(2.0 * np.pi) + aux["disp"]) - 0.5 * r * r / v, r / v, -1.0 / v

    def sigma(self, disp):
        return np.exp(0.5 * disp)

    def start_aux(self, y, mu):
        return {"disp": float(np.log(max(np.var(y - mu), 1e-8)))}

    def simulate_from(self, mu, aux, rng):
        return mu + np.exp(0.5 * aux["disp"]) * rng.standard_normal(mu.shape)

    def variance_of(self, mu, aux):
        return np.exp(aux["disp"]) * np.ones_like(mu)


class TMBTweedie(TMBFamily):
    """Tweedie with Var = φ μ^p, 1 < p < 2 (glmmTMB's ``tweedie``; p = 1 + logistic(power)).

    The density's normalising series is Dunn & Smyth's (2005), summed around its largest term.
    """

    name = "tweedie"
    channels = ("disp", "power")

    def check_response(self, y, name):
        super().check_response(y, name)
        if np.any(y < 0):
            raise DataError(f"the tweedie family needs a non-negative response; {name!r} has "
                            f"{int(np.sum(y < 0))} negative values")

    @staticmethod
    def log_series(y: np.ndarray, phi: np.ndarray, p: np.ndarray) -> np.ndarray:
        """log a(y, φ, p) of the density's normalising factor (0 where y = 0)."""
        from scipy.special import gammaln, logsumexp

        y, phi, p = np.broadcast_arrays(np.asarray(y, float), np.asarray(phi, float),
                                        np.asarray(p, float))
        out = np.zeros(y.shape)
        pos = y > 0
        if not pos.any():
            return out
        yy, ph, pp = y[pos], phi[pos], p[pos]
        alpha = (2.0 - pp) / (1.0 - pp)   # negative
        logz = (-alpha * np.log(yy) + alpha * np.log(pp - 1.0) - (1.0 - alpha) * np.log(ph)
                - np.log(2.0 - pp))
        jmax = np.maximum(yy ** (2.0 - pp) / (ph * (2.0 - pp)), 1.0)
        width = int(np.ceil(np.max(10.0 * np.sqrt(jmax) + 30.0)))
        lo = np.maximum(np.floor(jmax) - width, 1.0)
        j = lo[:, None] + np.arange(2 * width + 1)[None, :]
        logw = j * logz[:, None] - gammaln(j + 1.0) - gammaln(-alpha[:, None] * j)
        out[pos] = logsumexp(logw, axis=1) - np.log(yy)
        return out

    def prepare(self, y, aux):
        phi = np.exp(aux["disp"])
        p = 1.0 + _sigmoid(aux["power"])
        return {"c": self.log_series(y, phi, p)}

    def loglik(self, y, eta, aux, prep=None):
        prep = self.prepare(y, aux) if prep is None else prep
        phi = np.exp(aux["disp"])
        p = 1.0 + _sigmoid(aux["power"])
        e1, e2 = np.exp((1.0 - p) * eta), np.exp((2.0 - p) * eta)
        l = (y * e1 / (1.0 - p) - e2 / (2.0 - p)) / phi + prep["c"]
        return l, (y * e1 - e2) / phi, ((1.0 - p) * y * e1 - (2.0 - p) * e2) / phi

    def power(self, aux_power: float) -> float:
        return float(1.0 + _sigmoid(aux_power))

    def simulate_from(self, mu, aux, rng):
        phi = np.exp(aux["disp"]) * np.ones_like(mu)
        p = 1.0 + _sigmoid(aux["power"]) * np.ones_like(mu)
        lam = mu ** (2.0 - p) / (phi * (2.0 - p))
        shape = (2.0 - p) / (p - 1.0)
        scale = phi * (p - 1.0) * mu ** (p - 1.0)
        n = rng.poisson(lam)
        return np.where(n > 0, rng.gamma(np.maximum(n * shape, 1e-300), scale), 0.0)

    def variance_of(self, mu, aux):
        return np.exp(aux["disp"]) * mu ** (1.0 + _sigmoid(aux["power"]))


TMB_FAMILIES = {"poisson": TMBPoisson, "nbinom1": NBinom1, "nbinom2": NBinom2, "beta": TMBBeta,
                "beta_family": TMBBeta, "tweedie": TMBTweedie, "gamma": TMBGamma,
                "gaussian": TMBGaussian, "truncated_poisson": TMBPoisson,
                "truncated_nbinom1": NBinom1, "truncated_nbinom2": NBinom2}
#: families only glmmTMB's engine fits (the others go to glmer's unless zi=/disp= is given)
TMB_ONLY = ("nbinom1", "nbinom2", "beta", "beta_family", "tweedie", "truncated_poisson",
            "truncated_nbinom1", "truncated_nbinom2")


def is_tmb_family(family) -> bool:
    """Whether ``family`` (a name or object) is one only glmmTMB's engine fits."""
    if isinstance(family, TMBFamily):
        return True
    return isinstance(family, str) and family.strip().lower() in TMB_ONLY


def tmb_family(family: str | Family, link: str | None = None, *, zi: bool = False) -> TMBFamily:
    """The family object for a glmmTMB family name (or a base family object: poisson, Gamma,
    gaussian), zero-inflated (or, for ``truncated_*``, a hurdle) when ``zi``."""
    from .family import GammaFamily, Gaussian, Poisson

    truncated = False
    if isinstance(family, Hurdle):
        fam, truncated = family.base, True
    elif isinstance(family, ZeroInflated):
        fam = family.base
    elif isinstance(family, TMBFamily):
        fam = family
    else:
        if isinstance(family, Family):   # glmer's family objects with a glmmTMB counterpart
            key = next((k for cls, k in ((Poisson, "poisson"), (GammaFamily, "gamma"),
                                         (Gaussian, "gaussian")) if isinstance(family, cls)), repr(family))
            link = link or family.link.name
        else:
            key = str(family).strip().lower()
        if key not in TMB_FAMILIES and zi:
            raise ValueError(f"zi= (zero inflation) needs a count family (poisson, nbinom1, "
                             f"nbinom2, or truncated_poisson/truncated_nbinom1/truncated_nbinom2 "
                             f"for hurdle models); the {key} family is not one")
        if key not in TMB_FAMILIES:
            valid = sorted(set(TMB_FAMILIES) - {"beta_family"})
            raise ValueError(f"unknown family {family!r} for zi=/disp= models; choose one of "
                             f"{', '.join(valid)}")
        cls = TMB_FAMILIES[key]
        fam = cls.__new__(cls)
        TMBFamily.__init__(fam, make_link(link) if link else None)
        truncated = key.startswith("truncated_")
    if zi and not fam.is_count:
        raise ValueError(f"zi= (zero inflation) needs a count family (poisson, nbinom1, nbinom2, "
                         f"or truncated_poisson/truncated_nbinom1/truncated_nbinom2 for hurdle "
                         f"models); the {fam.name} family is not one")
    if truncated:
        return Hurdle(fam, with_zero_part=zi)
    return ZeroInflated(fam) if zi else fam
