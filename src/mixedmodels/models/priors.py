"""Priors for penalized (maximum a posteriori) and Bayesian mixed models, with blme's semantics.

A prior is created without knowing the model (``wishart(df=4.5)``, ``normal(sd=[10, 2.5])``) and
*bound* to one when it is fit: :meth:`Prior.bind` resolves the defaults, which depend on where the
prior goes (a covariance term of dimension ``d``, the ``p`` fixed effects, the residual) and on
whether the model is an LMM or a GLMM, exactly as blme's do.

A bound prior contributes to the deviance (−2 log posterior) through four pieces, as in blme:

* ``polynomial(T)``: the part that is a power of the relative covariance factor ``T`` (θ);
* ``exponential(...) -> (power, value)``: a term multiplied by ``σ**power`` (``power`` is 0 when the
  prior is on the scale of the residual, blme's ``common.scale = TRUE``);
* ``df_adjustment``: a multiple of ``log σ²`` (from priors on σ-scaled quantities);
* ``constant``: the normalising constant (0 for improper priors).

Covariance priors (one per random-effects term, on ``Σ/σ² = T Tᵀ`` by default):
:func:`wishart` (the default: ``df = d + 2.5``, ``scale = inf``, so the penalty is
``−(df − d − 1) log|T Tᵀ|``), :func:`invwishart`, :func:`gamma` and :func:`invgamma` (scalar
terms only, on the relative SD or variance). Fixed-effect priors: :func:`normal` and :func:`t`.
Residual priors (LMMs): :func:`point`, :func:`gamma`, :func:`invgamma`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaln

from ..exceptions import MixedModelsWarning

__all__ = ["Prior", "wishart", "invwishart", "gamma", "invgamma", "normal", "t", "point", "flat",
           "get_prior", "BoundPrior", "PRIOR_NAMES"]

_LOG2PI = math.log(2.0 * math.pi)
COV_NAMES = ("wishart", "invwishart", "gamma", "invgamma")
FIXEF_NAMES = ("normal", "t")
RESID_NAMES = ("point", "gamma", "invgamma")
PRIOR_NAMES = ("wishart", "invwishart", "gamma", "invgamma", "normal", "t", "point", "flat")


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------

def _real(name: str, value, *, positive: bool = False, nonneg: bool = False, allow_inf: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"prior parameter {name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if np.isnan(v) or (np.isinf(v) and not allow_inf):
        raise ValueError(f"prior parameter {name} must be finite, got {v}")
    if positive and not v > 0:
        raise ValueError(f"prior parameter {name} must be positive, got {v:g}")
    if nonneg and v < 0:
        raise ValueError(f"prior parameter {name} must be non-negative, got {v:g}")
    return v


def _vector(name: str, value) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if np.any(np.isnan(arr)):
        raise ValueError(f"prior parameter {name} has missing (NaN) values")
    return arr


def _posterior_scale(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"posterior_scale must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _expand_first_rest(name: str, arr: np.ndarray, p: int) -> np.ndarray:
    """blme's vector convention: 1 value (all), 2 values (intercept, the rest) or p values."""
    if arr.size == 1:
        return np.repeat(arr, p)
    if arr.size == p:
        return arr.copy()
    if arr.size == 2:
        return np.concatenate([arr[:1], np.repeat(arr[1], p - 1)])[:p]
    raise ValueError(f"prior {name} has {arr.size} values for {p} fixed effects: give 1 value (all), "
                     f"2 (the intercept, then the rest) or {p}")


# --------------------------------------------------------------------------------------------
# the user's prior objects (unbound)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prior:
    """A prior as the user gave it: a distribution name and its (possibly default) arguments.

    Use the constructors (:func:`wishart`, :func:`normal`, ...); bind to a model slot with
    :meth:`bind`.
    """

    name: str
    args: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.name}({inner})"

    def bind(self, slot: str, *, level_dim: int = 1, p: int = 0, glmm: bool = False,
             group: str | None = None) -> "BoundPrior | None":
        """Resolve the defaults for a slot: ``"cov"`` (a term of dimension ``level_dim``),
        ``"fixef"`` (``p`` fixed effects) or ``"resid"``; ``None`` for a flat prior (or, as blme, a
        gamma/inverse-gamma covariance prior on a vector-valued term, with a warning)."""
        allowed = {"cov": COV_NAMES, "fixef": FIXEF_NAMES, "resid": RESID_NAMES}[slot]
        if self.name == "flat":
            return None
        if self.name not in allowed:
            what = {"cov": "cov_prior", "fixef": "fixef_prior", "resid": "resid_prior"}[slot]
            raise ValueError(f"{self.name!r} is not a {what}; {what} accepts "
                             f"{', '.join(allowed)} (or None)")
        a = dict(self.args)
        if slot == "cov":
            return _bind_cov(self.name, a, level_dim, glmm, group)
        if slot == "fixef":
            return _bind_fixef(self.name, a, p, glmm)
        if glmm:
            raise ValueError("resid_prior applies to linear mixed models only (blme's bglmer has none)")
        return _bind_resid(self.name, a)


def wishart(df: float | None = None, scale=np.inf, common_scale: bool = True,
            posterior_scale: str = "cov") -> Prior:
    """Wishart prior on a term's covariance (blme's default): ``df`` defaults to the term's
    dimension + 2.5; ``scale`` (a number, a vector of variances or a matrix) defaults to ``inf``,
    which makes it improper: ``p(Σ) ∝ |Σ|^((df − d − 1)/2)``, a penalty that keeps the fit off the
    boundary. ``common_scale=True`` puts the prior on Σ/σ²."""
    return Prior("wishart", dict(df=df, scale=scale, common_scale=common_scale, posterior_scale=posterior_scale))


def invwishart(df: float | None = None, scale=None, common_scale: bool = True,
               posterior_scale: str = "cov") -> Prior:
    """Inverse-Wishart prior on a term's covariance. blme's defaults: LMM ``df = d − 0.998``,
    ``scale = (df + 0.1) I``; GLMM ``df = d − 0.5``, ``scale = 100/(df + d + 1) I``."""
    return Prior("invwishart", dict(df=df, scale=scale, common_scale=common_scale, posterior_scale=posterior_scale))


def gamma(shape: float | None = None, rate: float = 0.0, common_scale: bool = True,
          posterior_scale: str | None = None) -> Prior:
    """Gamma prior. As a covariance prior (scalar terms): on the relative SD θ, default
    ``shape = 2.5, rate = 0`` (improper, ``p ∝ θ^1.5``). As a residual prior: on σ², default
    ``shape = 0, rate = 0``."""
    return Prior("gamma", dict(shape=shape, rate=rate, common_scale=common_scale, posterior_scale=posterior_scale))


def invgamma(shape: float | None = None, scale: float | None = None, common_scale: bool = True,
             posterior_scale: str | None = None) -> Prior:
    """Inverse-gamma prior. Covariance (scalar terms): LMM default ``shape = 0.001,
    scale = shape + 0.05`` on the variance; GLMM ``shape = 0.5, scale = 100`` on the SD.
    Residual: on σ², default ``shape = 0, scale = 0``."""
    return Prior("invgamma", dict(shape=shape, scale=scale, common_scale=common_scale, posterior_scale=posterior_scale))


def normal(sd=(10.0, 2.5), cov=None, common_scale: bool | None = None) -> Prior:
    """Normal prior on the fixed effects, mean 0: ``sd`` (1 value, 2 values meaning intercept and
    the rest, or one per fixed effect) or a covariance matrix ``cov``. LMM default
    ``common_scale=True``: β ~ N(0, σ² diag(sd²)); GLMMs: β ~ N(0, diag(sd²))."""
    return Prior("normal", dict(sd=sd, cov=cov, common_scale=common_scale))


def t(df: float = 3.0, mean=0.0, scale=(10.0 ** 2, 2.5 ** 2), common_scale: bool | None = None) -> Prior:
    """Multivariate t prior on the fixed effects (``df`` degrees of freedom, location ``mean``,
    ``scale`` as variances: 1, 2 (intercept, rest) or p values, or a matrix). LMMs: maximum
    likelihood only (as blme)."""
    return Prior("t", dict(df=df, mean=mean, scale=scale, common_scale=common_scale))


def point(value: float = 1.0, posterior_scale: str = "sd") -> Prior:
    """Residual prior that fixes σ at ``value`` (an SD, or a variance with ``posterior_scale="var"``)."""
    return Prior("point", dict(value=value, posterior_scale=posterior_scale))


def flat() -> Prior:
    """No prior (the same as ``None``)."""
    return Prior("flat", {})


_CONSTRUCTORS = {"wishart": wishart, "invwishart": invwishart, "gamma": gamma, "invgamma": invgamma,
                 "normal": normal, "t": t, "point": point, "flat": flat,
                 "inverse.wishart": invwishart, "inverse.gamma": invgamma}


def get_prior(value, slot: str) -> Prior | None:
    """A prior object from a name (blme's defaults), a :class:`Prior`, or None."""
    if value is None:
        return None
    if isinstance(value, Prior):
        return value
    if isinstance(value, str):
        key = value.strip()
        if key not in _CONSTRUCTORS:
            import difflib

            close = difflib.get_close_matches(key, list(_CONSTRUCTORS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown prior {value!r}{hint} (known: {', '.join(PRIOR_NAMES)})")
        return _CONSTRUCTORS[key]()
    raise TypeError(f"{slot}_prior must be a prior (e.g. mm.priors.wishart()), a name or None, "
                    f"got {type(value).__name__} {value!r}")


# --------------------------------------------------------------------------------------------
# bound priors: their pieces of the deviance
# --------------------------------------------------------------------------------------------

class BoundPrior:
    """A prior with its defaults resolved; see the module docstring for the four pieces."""

    name = "prior"
    common_scale = True
    constant = 0.0
    df_adjustment = 0.0

    def polynomial(self, T: np.ndarray) -> float:
        return 0.0

    def exponential(self, *args) -> tuple[int, float]:
        return 0, 0.0

    def sigma_power(self) -> int:
        return 0

    def describe(self, digits: int = 4) -> str:
        return self.name


def _lambda_diag(T: np.ndarray) -> np.ndarray:
    return np.diag(T)


class WishartPrior(BoundPrior):
    name = "wishart"

    def __init__(self, df: float, d: int, R_scale_inv: np.ndarray, log_det_scale: float,
                 common_scale: bool, posterior_scale: str):
        self.df, self.d = df, d
        self.R_scale_inv = R_scale_inv          # chol(scale)⁻¹ (upper), zeros for an infinite scale
        self.log_det_scale = log_det_scale
        self.common_scale, self.posterior_scale = common_scale, posterior_scale
        if np.isinf(log_det_scale):
            self.constant = 0.0
        else:
            self.constant = (df * (d * math.log(2.0) + log_det_scale) + 0.5 * d * (d - 1) * math.log(math.pi)
                             + 2.0 * sum(gammaln(0.5 * (df + 1 - i)) for i in range(1, d + 1)))
        self.df_adjustment = 0.0 if (common_scale or not np.isfinite(log_det_scale)) else -d * (df - d - 1)

    def polynomial(self, T):
        lam = _lambda_diag(T)
        if np.any(lam <= 0):
            return np.inf
        return -2.0 * (self.df - self.d - 1) * float(np.sum(np.log(lam)))

    def exponential(self, T):
        if np.isinf(self.log_det_scale):
            return 0, 0.0
        if self.posterior_scale == "cov":
            value, power = float(np.sum((T.T @ self.R_scale_inv) ** 2)), 2
        else:
            w, v = np.linalg.eigh(T @ T.T)
            root = (v * np.sqrt(np.maximum(w, 0.0))) @ v.T
            value, power = float(np.sum(root * (self.R_scale_inv @ self.R_scale_inv.T))), 1
        return (0, value) if self.common_scale else (power, value)

    def sigma_power(self):
        if self.common_scale:
            return 0
        return 1 if self.posterior_scale == "sqrt" else 2

    def describe(self, digits=4):
        if np.isinf(self.log_det_scale):
            scale = "Inf"
        else:
            S = np.linalg.inv(self.R_scale_inv @ self.R_scale_inv.T)
            scale = _fmt_matrix(S, digits)
        return (f"wishart(df = {self.df:.{digits}g}, scale = {scale}, posterior.scale = {self.posterior_scale}, "
                f"common.scale = {self.common_scale})")


class InvWishartPrior(BoundPrior):
    name = "invwishart"

    def __init__(self, df: float, d: int, R_scale: np.ndarray, log_det_scale: float,
                 common_scale: bool, posterior_scale: str):
        self.df, self.d = df, d
        self.R_scale = R_scale                  # chol(scale) (upper)
        self.log_det_scale = log_det_scale
        self.common_scale, self.posterior_scale = common_scale, posterior_scale
        if np.isinf(log_det_scale):
            self.constant = 0.0
        else:
            self.constant = (df * (d * math.log(2.0) - log_det_scale) + 0.5 * d * (d - 1) * math.log(math.pi)
                             + 2.0 * sum(gammaln(0.5 * (df + 1 - i)) for i in range(1, d + 1)))
        self.df_adjustment = 0.0 if (common_scale or not np.isfinite(log_det_scale)) else d * (df + d + 1)

    def polynomial(self, T):
        lam = _lambda_diag(T)
        if np.any(lam <= 0):
            return np.inf
        return 2.0 * (self.df + self.d + 1) * float(np.sum(np.log(lam)))

    def exponential(self, T):
        if np.isinf(self.log_det_scale):
            return 0, 0.0
        power = -2 if self.posterior_scale == "cov" else -1
        if np.any(np.diag(T) == 0):
            return (0, np.inf) if self.common_scale else (power, np.inf)
        if self.posterior_scale == "cov":
            value = float(np.sum((self.R_scale @ np.linalg.inv(T.T)) ** 2))
        else:
            w, v = np.linalg.eigh(T @ T.T)
            root_inv = (v / np.sqrt(w)) @ v.T
            value = float(np.sum(root_inv * (self.R_scale @ self.R_scale.T)))
        return (0, value) if self.common_scale else (power, value)

    def sigma_power(self):
        if self.common_scale:
            return 0
        return -1 if self.posterior_scale == "sqrt" else -2

    def describe(self, digits=4):
        scale = "0" if np.isinf(self.log_det_scale) else _fmt_matrix(self.R_scale.T @ self.R_scale, digits)
        return (f"invwishart(df = {self.df:.{digits}g}, scale = {scale}, posterior.scale = {self.posterior_scale}, "
                f"common.scale = {self.common_scale})")


class GammaPrior(BoundPrior):
    """Gamma prior on a scalar term's θ (or σθ), or on the residual σ/σ²."""

    name = "gamma"

    def __init__(self, shape: float, rate: float, common_scale: bool, posterior_scale: str, resid: bool = False):
        self.shape, self.rate = shape, rate
        self.common_scale, self.posterior_scale, self.resid = common_scale, posterior_scale, resid
        self.constant = 0.0 if (shape == 0 or rate == 0) else -2.0 * (shape * math.log(rate) - gammaln(shape))
        mult = 1.0 if posterior_scale == "sd" else 2.0
        if resid:
            self.df_adjustment = -(shape - 1.0) * mult
        else:
            self.df_adjustment = 0.0 if common_scale else -(shape - 1.0) * mult

    def polynomial(self, T):
        if self.resid:
            return 0.0
        lam = float(T[0, 0])
        with np.errstate(divide="ignore"):
            mult = 4.0 if self.posterior_scale == "var" else 2.0
            return -mult * (self.shape - 1.0) * math.log(lam) if lam > 0 else (
                np.inf if self.shape > 1 else (-np.inf if self.shape < 1 else 0.0))

    def exponential(self, T=None):
        if self.rate == 0:
            return 0, 0.0
        lam = 1.0 if T is None else float(T[0, 0])
        if self.posterior_scale == "var":
            value, power = 2.0 * lam ** 2 * self.rate, 2
        else:
            value, power = 2.0 * lam * self.rate, 1
        return (0, value) if self.common_scale else (power, value)

    def sigma_power(self):
        if self.common_scale or self.rate == 0:
            return 0
        return 1 if self.posterior_scale == "sd" else 2

    def describe(self, digits=4):
        tail = "" if self.resid else f", common.scale = {self.common_scale}"
        return (f"gamma(shape = {self.shape:.{digits}g}, rate = {self.rate:.{digits}g}, "
                f"posterior.scale = {self.posterior_scale}{tail})")


class InvGammaPrior(BoundPrior):
    name = "invgamma"

    def __init__(self, shape: float, scale: float, common_scale: bool, posterior_scale: str, resid: bool = False):
        self.shape, self.scale = shape, scale
        self.common_scale, self.posterior_scale, self.resid = common_scale, posterior_scale, resid
        self.constant = 0.0 if (shape == 0 or scale == 0) else -2.0 * (shape * math.log(scale) - gammaln(shape))
        mult = 1.0 if posterior_scale == "sd" else 2.0
        if resid:
            self.df_adjustment = (shape + 1.0) * mult
        else:
            self.df_adjustment = 0.0 if common_scale else (shape + 1.0) * mult

    def polynomial(self, T):
        if self.resid:
            return 0.0
        lam = float(T[0, 0])
        if lam <= 0:
            return -np.inf
        mult = 4.0 if self.posterior_scale == "var" else 2.0
        return mult * (self.shape + 1.0) * math.log(lam)

    def exponential(self, T=None):
        if self.scale == 0:
            return 0, 0.0
        lam = 1.0 if T is None else float(T[0, 0])
        if lam == 0:
            value = np.inf
            power = -2 if self.posterior_scale == "var" else -1
        elif self.posterior_scale == "var":
            value, power = 2.0 * self.scale / lam ** 2, -2
        else:
            value, power = 2.0 * self.scale / lam, -1
        return (0, value) if self.common_scale else (power, value)

    def sigma_power(self):
        if self.common_scale or self.scale == 0:
            return 0
        return -1 if self.posterior_scale == "sd" else -2

    def describe(self, digits=4):
        tail = "" if self.resid else f", common.scale = {self.common_scale}"
        return (f"invgamma(shape = {self.shape:.{digits}g}, scale = {self.scale:.{digits}g}, "
                f"posterior.scale = {self.posterior_scale}{tail})")


class NormalPrior(BoundPrior):
    """β ~ N(0, C) (σ² C with ``common_scale``). ``R_cov_inv = chol(C)⁻¹`` (upper), as blme: the
    precision added to the fixed-effects block is ``R_cov_invᵀ R_cov_inv`` and the quadratic form
    ``βᵀ R_cov_inv R_cov_invᵀ β`` (the same for the usual diagonal C)."""

    name = "normal"

    def __init__(self, R_cov_inv: np.ndarray, common_scale: bool):
        self.R_cov_inv = R_cov_inv
        self.common_scale = common_scale
        d = np.diag(R_cov_inv)
        nz = d != 0
        self.rank = int(nz.sum())
        self.constant = self.rank * _LOG2PI - 2.0 * float(np.sum(np.log(d[nz])))
        self.df_adjustment = float(self.rank) if common_scale else 0.0

    @property
    def precision(self) -> np.ndarray:
        return self.R_cov_inv.T @ self.R_cov_inv

    def exponential(self, beta):
        v = beta @ self.R_cov_inv
        value = float(v @ v)
        return (-2, value) if self.common_scale else (0, value)

    def sigma_power(self):
        return -2 if self.common_scale else 0

    def describe(self, digits=4):
        d = np.diag(self.R_cov_inv)
        if np.any(d == 0):
            sds = np.where(d == 0, np.inf, 1.0 / np.where(d == 0, 1.0, d))
        else:
            C = np.linalg.inv(self.R_cov_inv @ self.R_cov_inv.T)
            sds = np.sqrt(np.diag(C))
        shown = ", ".join(f"{s:.{digits}g}" for s in sds[:2]) + (", ..." if len(sds) > 2 else "")
        sd = f"c({shown})" if len(sds) > 1 else shown
        return f"normal(sd = {sd}, common.scale = {self.common_scale})"


class TPrior(BoundPrior):
    """Multivariate t on β: −2 log p = (df + d) log(1 + (β − μ)ᵀ S⁻¹ (β − μ)/df) + constant."""

    name = "t"

    def __init__(self, df: float, mean: np.ndarray, R_scale_inv: np.ndarray, d: int, common_scale: bool):
        self.df, self.mean, self.R_scale_inv, self.d = df, mean, R_scale_inv, d
        self.common_scale = common_scale
        diag = np.diag(R_scale_inv)
        ldet = float(np.sum(np.log(diag[diag > 0] if d != len(diag) else diag)))
        self.constant = (-2.0 * gammaln(0.5 * (df + d)) + 2.0 * gammaln(0.5 * df)
                         + d * (math.log(df) + math.log(math.pi)) - 2.0 * ldet)
        self.df_adjustment = float(d) if common_scale else 0.0

    def exponential(self, beta, sigma=None):
        v = (beta - self.mean) @ self.R_scale_inv
        dist = float(v @ v)
        if self.common_scale and sigma is not None:
            dist = dist / sigma ** 2
        if not np.isfinite(dist):
            return 0, np.inf
        return 0, (self.df + self.d) * math.log1p(dist / self.df)

    def describe(self, digits=4):
        m = self.mean
        mean = f"{m[0]:.{digits}g}" if np.all(m == m[0]) else "c(" + ", ".join(f"{x:.{digits}g}" for x in m[:4]) + ")"
        d = np.diag(self.R_scale_inv)
        sc = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0) ** 2, np.inf)
        scale = f"{sc[0]:.{digits}g}" if len(sc) == 1 else "c(" + ", ".join(f"{x:.{digits}g}" for x in sc[:4]) + ")"
        return f"t(df = {self.df:.{digits}g}, mean = {mean}, scale = {scale}, common.scale = {self.common_scale})"


class PointPrior(BoundPrior):
    name = "point"

    def __init__(self, value: float):
        self.value = value

    def describe(self, digits=4):
        return f"point(value = {self.value:.{digits}g})"


def _fmt_matrix(S: np.ndarray, digits: int) -> str:
    flat = S.ravel(order="F")
    if len(flat) == 1:
        return f"{flat[0]:.{digits}g}"
    shown = flat[:4] if S.shape[0] == 2 else flat[:3]
    return "c(" + ", ".join(f"{x:.{digits}g}" for x in shown) + (", ...)" if S.shape[0] > 2 else ")")


def _bind_cov(name: str, a: dict, d: int, glmm: bool, group: str | None) -> BoundPrior | None:
    common = bool(a.get("common_scale", True)) if not glmm else True
    where = f" for the term of {group!r}" if group else ""
    if name == "wishart":
        df = d + 2.5 if a.get("df") is None else _real("df", a["df"])
        if df <= d - 1:
            raise ValueError(f"wishart prior{where}: df must be greater than the term's dimension − 1 "
                             f"(= {d - 1}), got {df:g}: a Wishart with df ≤ d − 1 is singular")
        ps = _posterior_scale(a.get("posterior_scale") or "cov", ("cov", "sqrt"))
        scale = a.get("scale", np.inf)
        S = np.asarray(np.inf if scale is None else scale, dtype=float)
        if S.size == 1 and np.isinf(S.ravel()[0]):
            return WishartPrior(df, d, np.zeros((d, d)), np.inf, common, ps)
        S = _scale_matrix("wishart", S, d, where)
        R = np.linalg.cholesky(S).T
        Rinv = np.linalg.inv(R)
        return WishartPrior(df, d, Rinv, -2.0 * float(np.sum(np.log(np.diag(Rinv)))), common, ps)
    if name == "invwishart":
        if a.get("df") is None:
            df = d - 0.5 if glmm else d - 0.998
        else:
            df = _real("df", a["df"])
        if df <= d - 1:
            raise ValueError(f"invwishart prior{where}: df must be greater than the term's dimension − 1 "
                             f"(= {d - 1}), got {df:g}")
        ps = _posterior_scale(a.get("posterior_scale") or "cov", ("cov", "sqrt"))
        scale = a.get("scale")
        if scale is None:
            S = np.eye(d) * (100.0 / (df + d + 1) if glmm else df + 0.1)
        else:
            S = np.asarray(scale, dtype=float)
            if S.size == 1 and S.ravel()[0] == 0:
                return InvWishartPrior(df, d, np.zeros((d, d)), -np.inf, common, ps)
            S = _scale_matrix("invwishart", S, d, where)
        R = np.linalg.cholesky(S).T
        return InvWishartPrior(df, d, R, 2.0 * float(np.sum(np.log(np.diag(R)))), common, ps)
    # gamma / invgamma: scalar terms only
    if d > 1:
        warnings.warn(f"a {name} covariance prior applies to scalar terms only; it is ignored{where} "
                      f"(a {d}-dimensional term): use wishart or invwishart for it", MixedModelsWarning,
                      stacklevel=5)
        return None
    if name == "gamma":
        shape = 2.5 if a.get("shape") is None else _real("shape", a["shape"], nonneg=True)
        rate = _real("rate", a.get("rate", 0.0) or 0.0, nonneg=True)
        ps = _posterior_scale(a.get("posterior_scale") or "sd", ("sd", "var"))
        return GammaPrior(shape, rate, common, ps)
    shape_default, ps_default = (0.5, "sd") if glmm else (0.001, "var")
    shape = shape_default if a.get("shape") is None else _real("shape", a["shape"], nonneg=True)
    if a.get("scale") is None:
        scale = 100.0 if glmm else shape + 0.05
    else:
        scale = _real("scale", a["scale"], nonneg=True)
    ps = _posterior_scale(a.get("posterior_scale") or ps_default, ("sd", "var"))
    return InvGammaPrior(shape, scale, common, ps)


def _scale_matrix(name: str, S: np.ndarray, d: int, where: str) -> np.ndarray:
    if S.size == 1:
        S = np.eye(d) * float(S.ravel()[0])
    elif S.ndim == 1 and S.size == d:
        S = np.diag(S)
    elif S.size == d * d:
        S = S.reshape(d, d)
        if not np.allclose(S, S.T):
            raise ValueError(f"{name} prior{where}: the scale matrix is not symmetric")
    else:
        raise ValueError(f"{name} prior{where}: scale has {S.size} values; give 1, {d} (a diagonal) or "
                         f"a {d}×{d} matrix")
    if not np.all(np.isfinite(S)):
        raise ValueError(f"{name} prior{where}: scale must be finite (or the single value inf)")
    try:
        np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} prior{where}: the scale matrix is not positive definite") from None
    return S


def _bind_fixef(name: str, a: dict, p: int, glmm: bool) -> BoundPrior | None:
    if p == 0:
        return None
    common = a.get("common_scale")
    common = (not glmm) if common is None else bool(common)
    if glmm:
        common = False
    if name == "normal":
        if a.get("cov") is not None:
            C = np.asarray(a["cov"], dtype=float)
            if C.size == p:
                C = np.diag(C.ravel())
            elif C.size != p * p:
                raise ValueError(f"normal prior: cov has {C.size} values; give {p} variances or a {p}×{p} matrix")
            C = C.reshape(p, p)
            if not np.allclose(C, C.T):
                raise ValueError("normal prior: cov is not symmetric")
            try:
                R = np.linalg.cholesky(C).T
            except np.linalg.LinAlgError:
                raise ValueError("normal prior: cov is not positive definite") from None
            return NormalPrior(np.linalg.inv(R), common)
        sd = _vector("sd", a.get("sd", (10.0, 2.5)))
        if np.any(sd <= 0):
            raise ValueError(f"normal prior: sd must be positive, got {sd.tolist()}")
        if sd.size == 2 and p == 1:
            sd = sd[:1]
        sd = _expand_first_rest("sd", sd, p)
        R_inv = np.diag(np.where(np.isinf(sd), 0.0, 1.0 / sd))
        return NormalPrior(R_inv, common)
    # t
    df = _real("df", a.get("df", 3.0), positive=True)
    mean = _vector("mean", a.get("mean", 0.0))
    if mean.size == 2 and p == 1:
        mean = mean[:1]
    mean = _expand_first_rest("mean", mean, p)
    scale = np.asarray(a.get("scale", (100.0, 6.25)), dtype=float)
    if scale.ndim == 2 and scale.size == p * p and p > 1:
        S = scale
        if not np.allclose(S, S.T):
            raise ValueError("t prior: scale is not symmetric")
        try:
            R = np.linalg.cholesky(S).T
        except np.linalg.LinAlgError:
            raise ValueError("t prior: scale is not positive definite") from None
        return TPrior(df, mean, np.linalg.inv(R), p, common)
    s = np.atleast_1d(scale).ravel()
    if s.size == 2 and p == 1:
        s = s[:1]
    s = _expand_first_rest("scale", s, p)
    if np.any(s <= 0):
        raise ValueError(f"t prior: scale (variances) must be positive, got {s.tolist()}")
    finite = np.isfinite(s)
    R_inv = np.diag(np.where(finite, 1.0 / np.sqrt(np.where(finite, s, 1.0)), 0.0))
    return TPrior(df, mean, R_inv, int(finite.sum()), common)


def _bind_resid(name: str, a: dict) -> BoundPrior:
    if name == "point":
        ps = _posterior_scale(a.get("posterior_scale") or "sd", ("sd", "var"))
        value = _real("value", a.get("value", 1.0), positive=True)
        return PointPrior(math.sqrt(value) if ps == "var" else value)
    ps = _posterior_scale(a.get("posterior_scale") or "var", ("sd", "var"))
    shape = 0.0 if a.get("shape") is None else _real("shape", a["shape"], nonneg=True)
    if name == "gamma":
        rate = _real("rate", a.get("rate", 0.0) or 0.0, nonneg=True)
        return GammaPrior(shape, rate, False, ps, resid=True)
    scale = 0.0 if a.get("scale") is None else _real("scale", a["scale"], nonneg=True)
    return InvGammaPrior(shape, scale, False, ps, resid=True)


# --------------------------------------------------------------------------------------------
# priors for the Bayesian fits only (mm.bayes_fit): rstanarm's decov and an exponential on σ
# --------------------------------------------------------------------------------------------

def decov(regularization: float = 1.0, concentration: float = 1.0, shape: float = 1.0,
          scale: float = 1.0) -> Prior:
    """rstanarm's ``decov`` prior on a term's covariance relative to σ² (for :func:`mixedmodels.bayes`):
    trace(Σ/σ²) = d·(scale·τ)², τ ~ Gamma(shape, 1); the variance proportions ~ Dirichlet
    (concentration); the correlations ~ LKJ(regularization). For a scalar term: σ_b/σ ~
    Gamma(shape, rate = 1/scale). Terms of dimension ≤ 2."""
    for name, v in (("regularization", regularization), ("concentration", concentration), ("shape", shape),
                    ("scale", scale)):
        _real(name, v, positive=True)
    return Prior("decov", dict(regularization=float(regularization), concentration=float(concentration),
                               shape=float(shape), scale=float(scale)))


def exponential(rate: float | None = None) -> Prior:
    """Exponential prior on σ (for :func:`mixedmodels.bayes`); the default rate is 1/sd(y), rstanarm's
    autoscaled default."""
    if rate is not None:
        _real("rate", rate, positive=True)
    return Prior("exponential", dict(rate=rate))


_CONSTRUCTORS.update({"decov": decov, "exponential": exponential})
PRIOR_NAMES = PRIOR_NAMES + ("decov", "exponential")
__all__ += ["decov", "exponential"]
