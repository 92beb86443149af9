"""Confidence intervals: profile likelihood (as lme4's ``confint(method = "profile")``),
Wald, and parametric bootstrap percentile intervals, with rows named as lme4's
``oldNames = FALSE``.

- :func:`confint`: the three methods behind one call (``m.confint()``).
- :func:`profile_ci`: the profile intervals. For an LMM the ML deviance is profiled (REML fits
  are refit by ML first, as lme4 does) on the sd/cor scale, from the linear model's blocked
  factor; for a GLMM without a scale (binomial, Poisson, negative binomial with its θ fixed)
  the Laplace or AGQ deviance over (sd/cor, β), through the GLMM contract
  (:meth:`smooth_objective`, :meth:`objective_and_gradient`, :meth:`restore_fit_state`).

Every inner minimization goes through :func:`mixedmodels.models.optim.minimize` (BOBYQA, and
L-BFGS-B with the exact gradient where the GLMM has one); the limits are roots of the signed
square-root profile, found by Brent's method (LMMs) or the Illinois method (GLMMs).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..core.lapack import tri_solve
from ..core.lazy import lazy_import
from ..core.threads import serial_blas
from ..exceptions import ConvergenceWarning
from ..models import optim
from ..models.base import implements
from .bootstrap import bootstrap
from .progress import Progress
from .ranef import variance_parameter_names

stats = lazy_import("scipy.stats")
sopt = lazy_import("scipy.optimize")

__all__ = ["confint", "profile_ci", "variance_zeta"]


def _kinds(param) -> list[str]:
    """The kind of the sd/cor parameter in each θ position: ``"sd"`` or ``"cor"`` (an ``ou``
    term's rate, positive like an sd, is profiled as one)."""
    return ["sd" if k == "rate" else k for k in param.param_kinds()]


def _bobyqa(fun, x0, lower, upper, step=None, ftol=1e-11, maxeval=4000) -> tuple[np.ndarray, float]:
    """Minimize ``fun`` over a box by BOBYQA (the optimizer registry's), with the profiles'
    tolerances: ``ftol`` on the deviance, a relative 1e-10 on x, at most ``maxeval`` evaluations.
    Returns the best point and its value (1e300 where the deviance could not be evaluated)."""
    x0 = np.asarray(x0, dtype=float)
    if len(x0) == 0:
        return x0, float(fun(x0))
    opt = optim.minimize(fun, x0, np.asarray(lower, dtype=float), upper=np.asarray(upper, dtype=float),
                         optimizer="bobyqa",
                         options={"ftol_abs": ftol, "xtol_rel": 1e-10, "xtol_abs": 0.0,
                                  "maxfun": int(maxeval), "initial_step": step})
    return opt.x, float(opt.fun)


class _Profiler:
    """The ML deviance profiled over all but one parameter, as lme4's ``profile``."""

    def __init__(self, model):
        self.model = model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.ml = model.refit_ml()
        ml = self.ml
        self.factor = ml.factor   # moved by the evaluations below; restore() puts it back
        self.param = ml.factor.parametrization
        self.n = ml.crossproducts.n
        self.p = ml.crossproducts.p
        w = ml.prior_weights
        self.logw = float(np.log(w[w > 0]).sum())
        self.base = ml.deviance
        self.theta_hat = ml.theta
        self.sv_hat = self.param.to_sdcor(ml.theta, ml.sigma)
        self.beta_hat = ml.fixef.to_numpy()
        self.se_hat = np.sqrt(np.diag(ml.vcov.to_numpy()))
        self.lower_theta = ml.factor.theta_lower_bounds()
        self.nvp = len(self.sv_hat)
        self.kinds = _kinds(self.param) + ["sigma"]
        self.nevals = 0

    # deviance in (θ, σ), σ not profiled (lme4's devfun2)
    def dev_sv(self, sv: np.ndarray) -> float:
        theta, sigma = self.param.from_sdcor(sv)
        if theta is None or not sigma > 0:
            return np.inf
        try:
            f = self.factor.update(theta)
        except np.linalg.LinAlgError:
            return np.inf
        self.nevals += 1
        s2 = sigma * sigma
        return f.logdet_z + f.pwrss / s2 + self.n * np.log(2 * np.pi * s2) - self.logw

    def dev_fixed(self, theta: np.ndarray, j: int, value: float) -> float:
        try:
            f = self.factor.update(theta)
        except np.linalg.LinAlgError:
            return np.inf
        self.nevals += 1
        p = self.p
        Rinv = tri_solve(np.ascontiguousarray(f.R_xy[:p, :p]), np.eye(p))
        beta = Rinv.T @ f.R_xy[p, :p]          # Rᵀβ = the [X y] row of the factor
        # U = (R Rᵀ)⁻¹ with R lower: U_jj = ‖R⁻¹ e_j‖²
        ujj = float(Rinv[:, j] @ Rinv[:, j])
        rss = f.pwrss + (value - beta[j]) ** 2 / ujj
        n = self.n
        return f.logdet_z + n * (1.0 + np.log(2 * np.pi * rss / n)) - self.logw

    def bounds_sv(self):
        lo = np.array([0.0 if k in ("sd", "sigma") else -1.0 for k in self.kinds])
        hi = np.array([np.inf if k in ("sd", "sigma") else 1.0 for k in self.kinds])
        lo[-1] = 1e-12 * max(self.sv_hat[-1], 1.0)
        return lo, hi

    def profile_var(self, w: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        lo, hi = self.bounds_sv()
        free = np.array([i for i in range(self.nvp) if i != w])

        def fun(x):
            sv = np.empty(self.nvp)
            sv[free] = x
            sv[w] = value
            return self.dev_sv(sv)

        step = np.where(np.array(self.kinds)[free] == "cor", 0.05,
                        0.05 * np.maximum(np.abs(start), 1e-3 * max(self.sv_hat[-1], 1e-8)))
        x, val = _bobyqa(fun, start, lo[free], hi[free], step)
        return val, x

    def profile_fixed(self, j: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        step = 0.05 * np.maximum(np.abs(start), 0.05)
        x, val = _bobyqa(lambda th: self.dev_fixed(th, j, value), start, self.lower_theta,
                         np.full(len(start), np.inf), step)
        return val, x


class _StartMemory:
    """Inner-optimum solutions by profiled value: each inner fit starts from the nearest one."""

    def __init__(self, u0: float, x0: np.ndarray):
        self.us = [u0]
        self.xs = [np.asarray(x0, float).copy()]

    def nearest(self, u: float) -> np.ndarray:
        d = [abs(u - v) if np.isfinite(v) else np.inf for v in self.us]
        return self.xs[int(np.argmin(d))].copy() if np.isfinite(min(d)) else self.xs[0].copy()

    def add(self, u: float, x: np.ndarray) -> None:
        self.us.append(u)
        self.xs.append(np.asarray(x, float).copy())


def _solve_endpoint(zeta: Callable[[float], float], u0: float, direction: int, target: float,
                    step: float, u_bound: float, ftol: float | None = None) -> float:
    """u with zeta(u) = direction·target, zeta increasing in u, starting at zeta(u0) = 0.

    Secant steps outward (between 0.2 and 4 times the last) until the root is bracketed,
    then Brent to machine precision (LMMs, whose profile is exact), or, with ``ftol``,
    Illinois stopping at |zeta − target| < ftol (GLMMs, whose profile carries PIRLS noise).
    Returns ``u_bound`` when the profile stays inside the interval up to the bound.
    """
    goal = direction * target
    cache: dict[float, float] = {u0: -goal}

    def g(u: float) -> float:
        if u not in cache:
            cache[u] = zeta(u) - goal
        return cache[u]

    u_prev, g_prev = u0, -goal
    u = u0 + direction * step
    for _ in range(60):
        if direction * (u - u_bound) >= 0:
            u = u_bound
        gu = g(u)
        if not np.isfinite(gu):
            raise RuntimeError("the deviance could not be evaluated along the profile")
        if ftol is not None and abs(gu) < ftol:
            return u
        if direction * gu >= 0:
            if ftol is not None:
                return _illinois(g, u_prev, g_prev, u, gu, xtol=1e-7 * step, ftol=ftol)
            lo, hi = sorted((u_prev, u))
            return sopt.brentq(g, lo, hi, xtol=1e-10 * max(1.0, abs(u)), rtol=1e-12, maxiter=100)
        if u == u_bound:
            return u_bound
        # g increases with u: a secant step towards its root, else expand
        last = u - u_prev
        slope = (gu - g_prev) / last
        nxt = abs(gu / slope) if slope > 0 else 4.0 * abs(last)
        nxt = direction * min(max(nxt, 0.2 * abs(last)), 4.0 * abs(last))
        u_prev, g_prev = u, gu
        u = u + nxt
    raise RuntimeError("the profile did not reach the confidence limit; the likelihood is flat")


def _check_level(level) -> float:
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, numbers.Real):
        raise TypeError(f"level must be a number between 0 and 1 (e.g. 0.95), got "
                        f"{type(level).__name__} {level!r}")
    level = float(level)
    if not 0 < level < 1:
        hint = f"; for {level:g}% write level={level / 100:g}" if 1 < level < 100 else ""
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level:g}{hint}")
    return level


def _check_which(model, which) -> list[str] | None:
    if which is None:
        return None
    if isinstance(which, str):
        which = [which]
    try:
        wanted = list(which)
    except TypeError:
        raise TypeError(f"which must be a parameter name or a list of them, got "
                        f"{type(which).__name__} {which!r}") from None
    rows = variance_parameter_names(model) + list(model.fixef.index)
    unknown = [w for w in wanted if w not in rows]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; choose from {rows}")
    return wanted


def profile_ci(model, level: float = 0.95, which: Sequence[str] | None = None,
               progress: bool | str = "auto") -> pd.DataFrame:
    """Profile-likelihood confidence intervals on lme4's scale (``confint(method="profile")``).

    The ML deviance is profiled (REML fits are refit by ML first, as lme4 does); the limits
    solve ``sign · sqrt(dev(x) − dev_min) = ±z`` exactly rather than through a spline.

    For a GLMM (Laplace or AGQ fit, a family without a scale: binomial, Poisson, negative
    binomial with its θ held fixed) the deviance is profiled over (sd/cor, β) as lme4 does:
    each parameter held fixed, all the others minimised, the sd of a scalar term being its θ.
    PIRLS is warm-started from one profile point to the next and converged tightly, so the
    deviance is smooth; lme4's own (PIRLS to a relative 1e-7 from a fixed start) differs from
    it by up to ~1e-3 away from the optimum, which moves the limits by ~1e-4 standard errors.
    The model's fitted state is restored afterwards. The number of deviance evaluations is in
    ``result.attrs["deviance_evaluations"]``.

    Parameters
    ----------
    model : LinearMixedModel or GeneralizedLinearMixedModel
    level : float
    which : list of str, optional
        Row names to compute (default all).
    progress : {"auto", True, False}, default "auto"
        A progress bar over the parameters when the output is interactive and the profiles
        will take more than about 2 s (:mod:`~mixedmodels.postestimation.progress`).

    Returns
    -------
    pandas.DataFrame
        Columns ``lower, upper``; rows ``sd_...|group``, ``cor_...|group``, ``sigma``, then the
        fixed effects.
    """
    # the profiles' many small evaluations on one BLAS thread, as the fit's (core/threads.py):
    # with the other core busy, sleepstudy's confint took 0.18-0.30 s with OpenBLAS's threads
    # spinning between tiny calls, 0.13 s on one (the same 0.135 s on an idle machine)
    with serial_blas(model._small()):
        return _profile_ci(model, level, which, progress)


def _profile_ci(model, level: float, which: Sequence[str] | None, progress: bool | str) -> pd.DataFrame:
    level = _check_level(level)
    which = _check_which(model, which)
    if not model.family.linear:
        return _glmm_profile_ci(model, level, which, progress)
    prof = _Profiler(model)
    target = float(stats.norm.ppf(0.5 + level / 2.0))
    vnames = variance_parameter_names(model)
    fnames = list(model.fixef.index)
    rows = vnames + fnames
    wanted = _check_which(model, which) or rows
    lower = np.full(len(rows), np.nan)
    upper = np.full(len(rows), np.nan)
    base = prof.base
    bar = Progress(len(wanted), "profile", progress)

    try:
        for w, name in enumerate(vnames):
            if name not in wanted:
                continue
            kind = prof.kinds[w]
            xhat = prof.sv_hat[w]
            free_hat = np.delete(prof.sv_hat, w)
            # u-scale where the profile is close to linear: log for SDs, atanh for correlations
            if kind == "cor":
                fwd, back = np.arctanh, np.tanh
            else:
                fwd, back = np.log, np.exp
            for direction in (-1, 1):
                memory = _StartMemory(fwd(xhat) if (xhat > 0 or kind == "cor") else -np.inf, free_hat)

                def zeta(u, memory=memory, w=w, xhat=xhat, back=back, kind=kind):
                    x = float(back(u)) if np.isfinite(u) else (0.0 if kind != "cor" else float(np.sign(u)))
                    val, xs = prof.profile_var(w, x, memory.nearest(u))
                    if np.isfinite(val):
                        memory.add(u, xs)
                    d = max(val - base, 0.0)
                    return np.sign(x - xhat) * np.sqrt(d)

                if xhat <= 0 and direction < 0 and kind != "cor":
                    lower[w] = 0.0
                    continue
                if kind == "cor" and abs(xhat) >= 1 - 1e-10 and np.sign(xhat) == direction:
                    (upper if direction > 0 else lower)[w] = np.sign(xhat)
                    continue
                u0 = float(fwd(xhat)) if xhat > 0 or kind == "cor" else np.log(1e-3 * prof.sv_hat[-1])
                # bounds on u: SDs down to 1e-8 of σ (then 0), correlations to ±(1 − 1e-10)
                if kind == "cor":
                    ub = float(np.arctanh(direction * (1 - 1e-10)))
                else:
                    ub = float(np.log(1e-8 * prof.sv_hat[-1])) if direction < 0 else u0 + 20.0
                u = _solve_endpoint(zeta, u0, direction, target, 0.1, ub)
                if u == ub and kind != "sigma" and direction < 0 and kind == "sd":
                    x = 0.0
                elif u == ub and kind == "cor":
                    x = float(direction)
                else:
                    x = float(back(u))
                (upper if direction > 0 else lower)[w] = x
            bar.update()
        for j, name in enumerate(fnames):
            if name not in wanted:
                continue
            r = len(vnames) + j
            bhat, se = prof.beta_hat[j], prof.se_hat[j]
            for direction in (-1, 1):
                memory = _StartMemory(bhat, prof.theta_hat)

                def zeta_fe(u, memory=memory, j=j, bhat=bhat):
                    val, th = prof.profile_fixed(j, u, memory.nearest(u))
                    if np.isfinite(val):
                        memory.add(u, th)
                    return np.sign(u - bhat) * np.sqrt(max(val - base, 0.0))

                u = _solve_endpoint(zeta_fe, bhat, direction, target, target * se,
                                    bhat + direction * 1e3 * se)
                (upper if direction > 0 else lower)[r] = u
            bar.update()
    finally:
        bar.close()
        prof.ml.set_theta(prof.ml.theta)   # the factor back at the fitted θ
    out = pd.DataFrame({"lower": lower, "upper": upper}, index=rows)
    return out.loc[[r for r in rows if r in wanted]]


def variance_zeta(model, name: str, values: Sequence[float]) -> np.ndarray:
    """ζ of one variance parameter of an LMM at the given values, as lme4's ``profile``.

    ``ζ(x) = sign(x − x̂) √(dev(x) − dev(x̂))`` on the ML deviance with the parameter ``name``
    (lme4's ``oldNames=FALSE`` name: ``sd_Days|Subject``, ``cor_Days.(Intercept)|Subject``,
    ``sigma``) held at ``x`` and every other sd/cor and σ re-estimated (β profiled out). REML
    fits are profiled through their ML refit, as lme4. Each inner fit starts from the solution
    at the nearest value already done, walking outwards from the estimate.

    Parameters
    ----------
    model : LinearMixedModel
    name : str
        One of the variance-parameter row names of ``confint``.
    values : sequence of float
        Where to evaluate ζ (sds and σ ≥ 0, correlations in [−1, 1]).

    Returns
    -------
    numpy.ndarray
        ζ at each value, in the order given.
    """
    if not model.family.linear:
        raise NotImplementedError("variance-parameter ζ profiles are implemented for LMMs; for a "
                                  "GLMM use confint(m, method='profile') for the limits")
    names = variance_parameter_names(model)
    if name not in names:
        raise ValueError(f"{name!r} is not a variance parameter of this model; they are {names}")
    prof = _Profiler(model)
    w = names.index(name)
    xhat = prof.sv_hat[w]
    values = np.asarray(values, dtype=float)
    out = np.full(len(values), np.nan)
    try:
        for side in (values < xhat, values >= xhat):  # outwards from the estimate on each side
            idx = np.flatnonzero(side)
            memory = _StartMemory(float(xhat), np.delete(prof.sv_hat, w))
            for i in idx[np.argsort(np.abs(values[idx] - xhat))]:
                val, xs = prof.profile_var(w, float(values[i]), memory.nearest(float(values[i])))
                if np.isfinite(val):
                    memory.add(float(values[i]), xs)
                out[i] = np.sign(values[i] - xhat) * np.sqrt(max(val - prof.base, 0.0))
    finally:
        prof.ml.set_theta(prof.ml.theta)
    return out


def _wald_ci(model, level: float) -> pd.DataFrame:
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    vnames = variance_parameter_names(model)
    est = model.fixef
    se = np.sqrt(np.diag(model.vcov.to_numpy()))
    lower = np.concatenate([np.full(len(vnames), np.nan), est.to_numpy() - z * se])
    upper = np.concatenate([np.full(len(vnames), np.nan), est.to_numpy() + z * se])
    return pd.DataFrame({"lower": lower, "upper": upper}, index=vnames + list(est.index))


@implements("confint")
def confint(model, method: str = "profile", level: float = 0.95, **kwargs) -> pd.DataFrame:
    """Confidence intervals for the variance parameters and fixed effects.

    Parameters
    ----------
    model : fitted mixed model
    method : {"profile", "wald", "boot"}
        ``"profile"``: profile likelihood (LMMs, and GLMMs without a scale parameter);
        ``"wald"``: estimate ± z·SE for the fixed
        effects (variance-parameter rows are NaN, as lme4); ``"boot"``: parametric-bootstrap
        percentile intervals (keywords ``n`` (default 500), ``seed``, ``parallel``,
        ``progress`` go to :func:`bootstrap`).
    level : float, default 0.95
        Strictly between 0 and 1 (``level=95`` raises, with the hint ``0.95``).
    **kwargs
        ``which=`` (str or list of str): the parameter rows to compute; an unknown name raises
        ``ValueError`` listing the known ones. The profile's and the bootstrap's settings.

    Returns
    -------
    pandas.DataFrame
        Columns ``lower, upper``; rows like lme4's ``oldNames=FALSE``: ``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sigma``, then the fixed effects.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be 'profile', 'wald' or 'boot', got "
                        f"{type(method).__name__} {method!r}")
    level = _check_level(level)
    key = method.lower()
    if key == "profile":
        return profile_ci(model, level=level, **kwargs)
    if key == "wald":
        which = _check_which(model, kwargs.pop("which", None))
        if kwargs:
            raise TypeError(f"confint(method='wald') got unexpected keyword argument(s) "
                            f"{sorted(kwargs)}; it takes level= and which=")
        out = _wald_ci(model, level)
        return out if which is None else out.loc[which]
    if key in ("boot", "bootstrap"):
        kwargs.setdefault("n", kwargs.pop("nsim", 500))
        which = _check_which(model, kwargs.pop("which", None))
        res = bootstrap(model, **kwargs)
        out = res.confint(level)
        return out if which is None else out.loc[[w for w in which if w in out.index]]
    raise ValueError(f"method must be 'profile', 'wald' or 'boot', got {method!r}")


# --------------------------------------------------------------------------------------------
# profile confidence intervals for GLMMs
# --------------------------------------------------------------------------------------------

class _TraceMemory:
    """Inner-optimum solutions by profiled value; each inner fit starts from the straight line
    through the two nearest (the profile traces are close to linear on the u scale)."""

    def __init__(self, u0: float, x0: np.ndarray):
        self.us = [u0] if np.isfinite(u0) else []
        self.xs = [np.asarray(x0, float).copy()] if np.isfinite(u0) else []
        self.x0 = np.asarray(x0, float).copy()

    def start(self, u: float) -> np.ndarray:
        if not self.us:
            return self.x0.copy()
        order = np.argsort([abs(u - v) for v in self.us])
        i = int(order[0])
        if len(order) < 2 or self.us[int(order[1])] == self.us[i]:
            return self.xs[i].copy()
        j = int(order[1])
        t = (u - self.us[i]) / (self.us[j] - self.us[i])
        t = min(max(t, -4.0), 5.0)
        return self.xs[i] + t * (self.xs[j] - self.xs[i])

    def add(self, u: float, x: np.ndarray) -> None:
        if np.isfinite(u):
            self.us.append(u)
            self.xs.append(np.asarray(x, float).copy())


class _GlmmProfiler:
    """lme4's GLMM profile: the Laplace (or AGQ) deviance over (sd/cor, β), one parameter fixed
    and all the others minimised, on the smooth deviance (PIRLS warm-started and converged
    tightly). σ is 1 (families without a scale): a scalar term's sd is its θ."""

    def __init__(self, model):
        if model.n_agq == 0:
            raise NotImplementedError(
                "profile intervals need the Laplace or AGQ deviance over (θ, β); this model was "
                "fit with n_agq=0 (β inside PIRLS). Refit with n_agq=1, or use method='wald' "
                "or method='boot'")
        if model.has_scale:
            raise NotImplementedError(
                f"profile intervals are not available for GLMMs with a scale parameter "
                f"({model.family.label} family), as in lme4; they are for LMMs and for GLMMs "
                "without a scale (binomial, Poisson, negative binomial); use method='wald' or "
                "method='boot'")
        self.model = model
        self.param = model.factor.parametrization
        self.nth = model.factor.n_theta
        self.beta_hat = model.beta
        self.p = len(self.beta_hat)
        self.sv_hat = self.param.to_sdcor(model.theta, 1.0)[:-1]
        self.nvp = len(self.sv_hat)
        self.kinds = kinds = _kinds(self.param)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            se = np.sqrt(np.diag(model.vcov.to_numpy()))
        if not np.all(np.isfinite(se)) or np.any(se <= 0):
            se = np.maximum(np.abs(self.beta_hat), 1.0)
        self.se_hat = se
        self.lo = np.concatenate([[0.0 if k == "sd" else -1.0 for k in kinds], np.full(self.p, -np.inf)])
        self.hi = np.concatenate([[np.inf if k == "sd" else 1.0 for k in kinds], np.full(self.p, np.inf)])
        # units of the inner optimisation: β in standard errors, sd/cor in quarters
        self.scale = np.concatenate([np.full(self.nvp, 0.25), se])
        # one scalar term, canonical link, Laplace: the exact gradient, so L-BFGS-B (on the same
        # Laplace deviance, with log det at the mode's weights: equal to ~1e-10)
        self.use_grad = bool(model.has_analytic_gradient)
        self.nevals = 0
        self.par_hat = np.concatenate([self.sv_hat, self.beta_hat])
        self.reset_warm_start()
        self.base = self.dev_fit = self.dev(self.par_hat)
        # the smooth deviance's own minimum (within PIRLS' tolerance of the fitted one)
        val, x = self.minimize(None, np.nan, self.par_hat)
        if val < self.base:
            self.base = val
            self.par_opt = x
        else:
            self.par_opt = self.par_hat.copy()

    def reset_warm_start(self) -> None:
        """PIRLS' warm start back at the fitted linear predictor (the model's fitted state)."""
        self.model.restore_fit_state()

    def theta_of(self, sv: np.ndarray) -> np.ndarray | None:
        theta, _ = self.param.from_sdcor(np.append(sv, 1.0))
        return theta

    def dev(self, par: np.ndarray) -> float:
        theta = self.theta_of(par[:self.nvp])
        if theta is None:
            return np.inf
        self.nevals += 1
        try:
            with np.errstate(all="ignore"):
                value = self.model.smooth_objective(theta, par[self.nvp:])
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            return np.inf
        return float(value) if np.isfinite(value) else np.inf

    def dev_grad(self, par: np.ndarray) -> tuple[float, np.ndarray]:
        """Deviance and gradient in (θ, β) = (sd, β) for one scalar term (no restarts of PIRLS)."""
        self.nevals += 1
        theta, beta = par[:1], par[1:]
        with np.errstate(all="ignore"):
            value, grad = self.model.objective_and_gradient(theta, beta)
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            raise FloatingPointError("non-finite deviance")
        return float(value), grad

    def minimize(self, w: int | None, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """Minimum of the deviance over all parameters but ``w`` (held at ``value``), started at
        ``start`` (the full parameter vector; its ``w`` entry is ignored)."""
        k = self.nvp + self.p
        free = np.arange(k) if w is None else np.delete(np.arange(k), w)
        x0full = np.asarray(start, float).copy()
        if w is not None:
            x0full[w] = value
        x0full = np.clip(x0full, self.lo, self.hi)
        s = self.scale[free]
        c = x0full[free]
        lo = (self.lo[free] - c) / s
        hi = (self.hi[free] - c) / s

        def full(x):
            par = x0full.copy()
            par[free] = c + s * x
            return par

        if self.use_grad:
            out = self._minimize_grad(full, free, s, lo, hi)
            if out is not None:
                return out
        x, val = _bobyqa(lambda x: self.dev(full(x)), np.zeros(len(free)), lo, hi,
                         step=np.full(len(free), 0.02), ftol=1e-9, maxeval=2000)
        return val, full(x)

    def _minimize_grad(self, full, free, s, lo, hi):
        """L-BFGS-B (the optimizer registry's) with the exact gradient, in the scaled units;
        None when PIRLS fails or the iterations run out (then BOBYQA takes over)."""
        def fg(x):
            val, g = self.dev_grad(full(x))
            return val, g[free] * s

        fun, grad = optim.value_and_gradient(fg)
        try:
            opt = optim.minimize(fun, np.zeros(len(free)), lo, upper=hi, grad=grad, optimizer="lbfgsb",
                                 options={"maxfun": 15000, "maxiter": 200, "ftol": 1e-15,
                                          "gtol": 1e-7, "maxcor": 20})
        except (FloatingPointError, np.linalg.LinAlgError, ValueError):
            self.reset_warm_start()
            return None
        if not opt.converged and opt.maxfun_reached:  # L-BFGS-B's iteration or evaluation limit
            return None
        return float(opt.fun), full(opt.x)


#: the GLMM profile's limits solve zeta = ±z to this (a 1e-6 SE shift of the limit)
_ZETA_TOL = 1e-6


def _illinois(g: Callable[[float], float], a: float, ga: float, b: float, gb: float,
              xtol: float, ftol: float, maxiter: int = 60) -> float:
    """Root of g in the bracket [a, b] (g(a), g(b) of opposite signs) by the Illinois variant of
    regula falsi: superlinear on the near-linear profiles, and it stops as soon as |g| < ftol."""
    if abs(ga) < ftol:
        return a
    if abs(gb) < ftol:
        return b
    c = b
    for _ in range(maxiter):
        c = b - gb * (b - a) / (gb - ga)
        gc = g(c)
        if abs(gc) < ftol:
            return c
        if np.sign(gc) == np.sign(gb):
            ga *= 0.5           # a kept again: halve its weight (Illinois)
        else:
            a, ga = b, gb
        b, gb = c, gc
        if abs(b - a) < xtol:
            break
    return c


def _glmm_profile_ci(model, level: float, which: Sequence[str] | None,
                     progress: bool | str = "auto") -> pd.DataFrame:
    """:func:`profile_ci` for a GLMM: every parameter (sd/cor, then β) profiled over all the
    others, as lme4; the model's fitted state is restored afterwards."""
    target = float(stats.norm.ppf(0.5 + level / 2.0))
    rows = variance_parameter_names(model) + list(model.fixef.index)
    wanted = _check_which(model, which) or rows
    lower = np.full(len(rows), np.nan)
    upper = np.full(len(rows), np.nan)
    nevals = 0
    bar = Progress(len(wanted), "profile", progress)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            prof = _GlmmProfiler(model)
            base, par_opt = prof.base, prof.par_opt
            lowest = [base]
            dev_fit = prof.dev_fit
            for w, name in enumerate(rows):
                if name not in wanted:
                    continue
                kind = prof.kinds[w] if w < prof.nvp else "beta"
                xhat = float(par_opt[w])
                # u: the scale on which the profile is close to linear
                back = {"sd": np.exp, "cor": np.tanh}.get(kind, float)
                for direction in (-1, 1):
                    if kind == "sd" and xhat <= 0 and direction < 0:
                        lower[w] = 0.0
                        continue
                    if kind == "cor" and abs(xhat) >= 1 - 1e-10 and np.sign(xhat) == direction:
                        (upper if direction > 0 else lower)[w] = np.sign(xhat)
                        continue
                    if kind == "sd":   # down to 1e-8 (then 0)
                        u0 = float(np.log(xhat)) if xhat > 0 else float(np.log(1e-3))
                        ub = float(np.log(1e-8)) if direction < 0 else u0 + 20.0
                        step = 0.1
                    elif kind == "cor":
                        u0 = float(np.arctanh(xhat))
                        ub = float(np.arctanh(direction * (1 - 1e-10)))
                        step = 0.1
                    else:
                        se = prof.se_hat[w - prof.nvp]
                        u0, ub, step = xhat, xhat + direction * 1e3 * se, target * se
                    memory = _TraceMemory(u0, par_opt)
                    prof.reset_warm_start()

                    def zeta(u, memory=memory, w=w, xhat=xhat, back=back):
                        x = float(back(u))
                        val, par = prof.minimize(w, x, memory.start(u))
                        if np.isfinite(val):
                            memory.add(u, par)
                            lowest[0] = min(lowest[0], val)
                        return np.sign(x - xhat) * np.sqrt(max(val - base, 0.0))

                    u = _solve_endpoint(zeta, u0, direction, target, step, ub, ftol=_ZETA_TOL)
                    if u == ub and kind == "sd" and direction < 0:
                        x = 0.0
                    elif u == ub and kind == "cor":
                        x = float(direction)
                    else:
                        x = float(back(u))
                    (upper if direction > 0 else lower)[w] = x
                bar.update()
            nevals = prof.nevals
    finally:
        bar.close()
        model.restore_fit_state()
    if lowest[0] < dev_fit - 1e-3:
        warnings.warn(
            f"profiling found a deviance {dev_fit - lowest[0]:.3g} below the fitted one: the fit is "
            "not at the optimum, so these intervals are unreliable (lme4 stops here with "
            "'profiling detected new, lower deviance'). Refit with another optimizer and compare.",
            ConvergenceWarning, stacklevel=4)
    out = pd.DataFrame({"lower": lower, "upper": upper}, index=rows)
    out = out.loc[[r for r in rows if r in wanted]]
    out.attrs["deviance_evaluations"] = nevals
    return out
