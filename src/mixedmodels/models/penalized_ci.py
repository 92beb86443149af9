"""Intervals at the posterior mode of penalized (blme) fits: Wald and profile, on the penalized
criterion.

Both work on the *explicit* criterion D(w) with w = (sd/cor of each term, σ, β) for LMMs (nothing
profiled out analytically: σ and β are coordinates, so the criterion is −2 log posterior up to a
constant) and w = (sd/cor, β) for GLMMs (σ = 1). REML fits are refit by (penalized) maximum
likelihood first, as lme4's profile does.

* ``"wald"``: the curvature of D at the mode, on log-SD, atanh-correlation and raw β scales:
  ``est ± z·se`` there, mapped back (so SD intervals are positive).
* ``"profile"``: ``sign(v − ŵ)·√(min D(w | w_i = v) − D(ŵ)) = ±z`` solved for v.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..core.lazy import lazy_import
from .checks import finite_difference_derivatives
from .optim import Control, minimize

stats = lazy_import("scipy.stats")  # on first use: import mixedmodels stays fast
optimize = lazy_import("scipy.optimize")

__all__ = ["penalized_ci", "ExplicitCriterion"]


class ExplicitCriterion:
    """The penalized criterion of a fitted penalized model over w = (sd/cor, [σ], β)."""

    def __init__(self, model):
        self.model = model
        self.glmm = not model.family.linear
        # REML: β is integrated out, so it is no coordinate (its rows are Wald, from vcov)
        self.with_beta = self.glmm or not model.reml
        self.param = model.factor.parametrization
        self.nt = model.factor.n_theta
        self.p = len(model.beta)
        terms = model.design.terms
        self.var_names = self.param.sdcor_names([t.group for t in terms], [t.columns for t in terms])
        sigma = 1.0 if self.glmm else model.sigma
        sv = self.param.to_sdcor(model.theta, sigma)
        self.kinds = ["cor" if n.startswith("cor_") else "sd" for n in self.var_names]
        if self.glmm:
            sv = sv[:-1]
            self.names = self.var_names + list(model.design.fixef_names)
        else:
            self.kinds = self.kinds + ["sigma"]
            self.names = self.var_names + ["sigma"] + list(model.design.fixef_names)
        if not self.with_beta:
            self.names = self.names[:len(self.names) - self.p]
        self.kinds = self.kinds + ["beta"] * (self.p if self.with_beta else 0)
        self._not_cor = np.array([k != "cor" for k in self.kinds[:len(sv)]], dtype=bool)
        self.w_hat = np.concatenate([sv, model.beta]) if self.with_beta else np.asarray(sv, dtype=float)
        self.nv = len(sv)
        self.f_hat = self(self.w_hat)

    def __call__(self, w: np.ndarray) -> float:
        w = np.asarray(w, dtype=float)
        m = self.model
        sv, beta = w[:self.nv], w[self.nv:]
        if np.any(sv[self._not_cor] < 0):
            return np.inf
        full = sv if not self.glmm else np.concatenate([sv, [1.0]])
        theta, sigma = self.param.from_sdcor(full)
        if theta is None:
            return np.inf
        try:
            with np.errstate(all="ignore"):
                if self.glmm:
                    value = m.smooth_objective(theta, beta)
                else:
                    par = theta
                    if m.fixef_numeric:
                        par = np.concatenate([theta, beta])
                    if m.sigma_type == "numeric":
                        par = np.concatenate([par, [sigma]])
                    value = m.evaluate(par, sigma=sigma, beta=beta if self.with_beta else None)["value"]
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            return np.inf
        return float(value) if np.isfinite(value) else np.inf

    def transform(self, w: np.ndarray) -> np.ndarray:
        """To the scales where the criterion is close to quadratic: log SD, atanh cor, β."""
        out = np.array(w, dtype=float)
        for i, k in enumerate(self.kinds):
            if k in ("sd", "sigma"):
                out[i] = np.log(w[i]) if w[i] > 0 else -np.inf
            elif k == "cor":
                out[i] = np.arctanh(np.clip(w[i], -1 + 1e-12, 1 - 1e-12))
        return out

    def back(self, z: np.ndarray) -> np.ndarray:
        out = np.array(z, dtype=float)
        for i, k in enumerate(self.kinds):
            if k in ("sd", "sigma"):
                out[i] = np.exp(z[i])
            elif k == "cor":
                out[i] = np.tanh(z[i])
        return out

    def restore(self) -> None:
        m = self.model
        if self.glmm:
            m.restore_fit_state()
        else:
            m.set_theta(m.warm_start())


def _ml_model(model):
    if getattr(model, "reml", False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.refit_ml()
    return model


def penalized_ci(model, method: str = "wald", level: float = 0.95, which=None) -> pd.DataFrame:
    """Wald or profile intervals for a penalized fit (see the module docstring).

    Parameters
    ----------
    model : PenalizedLinearMixedModel or PenalizedGeneralizedLinearMixedModel
    method : {"wald", "profile"}
    level : float
    which : list of str, optional
        Row names (``sd_(Intercept)|g``, ``cor_...``, ``sigma``, fixed effects).

    Returns
    -------
    pandas.DataFrame
        ``estimate, lower, upper`` per parameter.
    """
    if method not in ("wald", "profile"):
        raise ValueError(f"method must be 'wald' or 'profile' for a penalized fit, got {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")
    ml = model if (method == "wald" and model.family.linear) else _ml_model(model)
    crit = ExplicitCriterion(ml)
    names = crit.names + ([] if crit.with_beta else list(model.fixef.index))
    if which is not None:
        which = [which] if isinstance(which, str) else list(which)
        unknown = [w for w in which if w not in names]
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; known: {names}")
    wanted = names if which is None else which
    z = float(stats.norm.ppf(0.5 + level / 2))
    zhat = crit.transform(crit.w_hat)
    # SDs at 0 cannot occur with the default priors; with none the Wald row is (0, 0)
    ok = np.isfinite(zhat)

    def fz(zz):
        full = zhat.copy()
        full[ok] = zz
        return crit(crit.back(full))

    try:
        H = finite_difference_derivatives(fz, zhat[ok], rel_step=1e-4)[1]
        cov = 2.0 * np.linalg.inv(H)
        se_z = np.full(len(zhat), np.nan)
        se_z[ok] = np.sqrt(np.maximum(np.diag(cov), 0.0))
    except np.linalg.LinAlgError:
        se_z = np.full(len(zhat), np.nan)
    lower = np.full(len(crit.names), np.nan)
    upper = np.full(len(crit.names), np.nan)
    names = crit.names
    if method == "wald":
        lo = crit.back(np.where(ok, zhat - z * se_z, zhat))
        hi = crit.back(np.where(ok, zhat + z * se_z, zhat))
        lower, upper = lo, hi
    else:
        for i, name in enumerate(names):
            if name not in wanted or not ok[i]:
                continue
            for direction in (-1, 1):
                val = _profile_limit(crit, fz, zhat[ok], int(np.flatnonzero(ok).tolist().index(i)),
                                     direction, z, se_z[i])
                full = zhat.copy()
                full[i] = val
                (upper if direction > 0 else lower)[i] = crit.back(full)[i]
    crit.restore()
    out = pd.DataFrame({"estimate": crit.w_hat, "lower": lower, "upper": upper}, index=names)
    if not crit.with_beta:  # a REML Wald interval: the fixed effects from their covariance
        est = model.fixef.to_numpy()
        se = np.sqrt(np.diag(model.vcov.to_numpy()))
        fe = pd.DataFrame({"estimate": est, "lower": est - z * se, "upper": est + z * se},
                          index=list(model.fixef.index))
        out = pd.concat([out, fe])
        names = list(out.index)
        if which is None:
            wanted = names
    out.attrs["method"] = method
    return out.loc[wanted]


def _profile_limit(crit, fz, zhat: np.ndarray, i: int, direction: int, z: float, se: float) -> float:
    """The point on the transformed scale where the signed root deviance reaches ``direction·z``."""
    k = len(zhat)
    free = np.array([j for j in range(k) if j != i])
    base = fz(zhat)
    memory = {0.0: zhat[free].copy()}
    ctrl = Control(ftol_abs=1e-10, xtol_abs=1e-8, xtol_rel=1e-8, maxfun=5000)

    def zeta(v):
        near = min(memory, key=lambda a: abs(a - v))
        x0 = memory[near]

        def fun(x):
            full = np.empty(k)
            full[free] = x
            full[i] = v
            return fz(full)

        if len(free):
            opt = minimize(fun, x0, np.full(len(free), -np.inf), ctrl)
            val = opt.fun
            memory[v] = opt.x
        else:
            val = fun(np.zeros(0))
        return np.sign(v - zhat[i]) * np.sqrt(max(val - base, 0.0))

    step = se if np.isfinite(se) and se > 0 else 0.1 * max(abs(zhat[i]), 1.0)
    a = zhat[i]
    b = a + direction * z * step
    for _ in range(30):
        if direction * zeta(b) >= z:
            break
        a, b = b, b + direction * z * step
    else:
        return np.inf * direction
    return optimize.brentq(lambda v: zeta(v) - direction * z, a, b, xtol=1e-6 * max(step, 1e-8))
