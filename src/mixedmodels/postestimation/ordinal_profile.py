"""Profile-likelihood intervals for the thresholds and fixed effects of a cumulative-link mixed
model: each parameter is fixed, the others re-optimised (exact gradient), and the interval
ends are where the likelihood-ratio statistic reaches the χ²₁ quantile (as ordinal's
``confint(profile(fit))``, which does the same on a grid)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..models.base import implements
from ..models.optim import minimize, value_and_gradient

__all__ = ["profile_confint"]


def _profile_deviance(model, j: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
    """−2 log-likelihood maximised over every parameter but the j-th, fixed at ``value``."""
    free = np.array([i for i in range(len(start)) if i != j])

    def full(z):
        x = np.empty(len(start))
        x[free] = z
        x[j] = value
        return x

    def fg(z):
        f, g = model.objective_and_gradient(full(z))
        return f, g[free]

    fun, grad = value_and_gradient(fg)
    opt = minimize(fun, start[free], model.parameter_lower_bounds[free], model.control, grad=grad,
                   optimizer=model.optimizer)
    return opt.fun, full(opt.x)


@implements("ordinal_profile")
def profile_confint(model, level: float = 0.95, parm: list[str] | None = None) -> pd.DataFrame:
    """Likelihood-ratio (profile) confidence intervals of a clmm's parameters.

    Parameters
    ----------
    model : CumulativeLinkMixedModel
    level : float
    parm : list of str, optional
        Names from ``model.parameters``: thresholds, fixed effects and the random effects'
        ``ST1``, ... (the standard deviation of a scalar term; an interval reaching its bound
        of 0 ends there). Default: every threshold parameter and fixed effect.
    """
    from scipy import optimize, stats

    all_names = list(model.parameters.index)
    names = list(model.coef_table().index) if parm is None else list(parm)
    unknown = [p for p in names if p not in all_names]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; choose from {all_names}")
    V = model.vcov_full
    crit = stats.chi2.ppf(level, 1)
    x_hat = model.parameters.to_numpy()
    lower = model.parameter_lower_bounds
    d_hat = -2.0 * model.loglik
    rows = {}
    for name in names:
        j = all_names.index(name)
        est, se = x_hat[j], float(np.sqrt(max(V.loc[name, name], 0.0)))
        ends = []
        for sign in (-1.0, 1.0):
            def excess(v, j=j):
                return _profile_deviance(model, j, v, x_hat)[0] - d_hat - crit
            step = 2.0 * se if np.isfinite(se) and se > 0 else 1.0
            far = est + sign * step
            for _ in range(20):
                if sign < 0 and far <= lower[j]:
                    far = lower[j]
                    break
                if excess(far) > 0:
                    break
                step *= 2.0
                far = est + sign * step
            else:
                ends.append(sign * np.inf)
                continue
            if sign < 0 and far == lower[j] and excess(far) <= 0:
                ends.append(far)  # the likelihood ratio stays below the quantile to the bound
                continue
            ends.append(optimize.brentq(excess, est, far, xtol=1e-6) if sign > 0
                        else optimize.brentq(excess, far, est, xtol=1e-6))
        rows[name] = ends
    model.engine.loglik(x_hat)  # leave the warm start at the estimates
    lo, hi = f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"
    return pd.DataFrame.from_dict(rows, orient="index", columns=[lo, hi])
