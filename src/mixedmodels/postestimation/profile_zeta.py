"""Likelihood profiles of the fixed effects as signed square roots (lme4's ζ).

For a fixed effect βⱼ held at a value v, the model is refit with ``v·xⱼ`` moved into the
offset and the column dropped (the other fixed effects and the covariance parameters
re-estimated), and ``ζ(v) = sign(v − β̂ⱼ) √(dev(v) − dev(β̂))`` on the maximum-likelihood
deviance (−2 log L; a REML fit is profiled through its ML refit, since the REML criterion of
a model with a column fewer is another criterion). ζ is a straight line when the
likelihood is quadratic, so that Wald intervals are right; where it bends, profile intervals
(``confint(method="profile")``) differ from Wald's. Works for LMMs and GLMMs (whose refits go
through PIRLS with the offset).

For LMMs the variance parameters (lme4's ``sd_...|g``, ``cor_...|g``, ``sigma``) are profiled
too (:func:`~mixedmodels.postestimation.profile.variance_zeta`), over a range set from the
profile's own curvature at the estimate on the log (sd) or atanh (correlation) scale.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd

from .profile import variance_zeta
from .ranef import variance_parameter_names

__all__ = ["profile_zeta"]


def profile_zeta(model, which: Sequence[str] | None = None, n_points: int = 11,
                 width: float = 3.0) -> pd.DataFrame:
    """ζ profiles of fixed effects over ``β̂ⱼ ± width·SEⱼ``.

    Parameters
    ----------
    model : fitted mixed model
    which : list of str, optional
        Parameters to profile: fixed effects and, for LMMs, variance parameters by their
        ``confint`` row names (default: all of them; GLMMs: the fixed effects).
    n_points : int
        Values per parameter (odd numbers include the estimate).
    width : float
        Half-width of the range in standard errors.

    Returns
    -------
    pandas.DataFrame
        ``parameter``, ``value``, ``zeta``, ``wald`` (``(v − β̂)/SE``, the straight line ζ would
        be for a quadratic likelihood; NaN for variance parameters, whose Wald line lme4 does
        not draw either).
    """
    names = list(model.fixef.index)
    vnames = variance_parameter_names(model) if model.family.linear else []
    which = vnames + names if which is None else list(which)
    unknown = [w for w in which if w not in names + vnames]
    if unknown:
        raise ValueError(f"which names {unknown}, which are not parameters of the model; they "
                         f"are {vnames + names}")
    if n_points < 3:
        raise ValueError(f"n_points must be at least 3, got {n_points}")
    rows = [row for name in which if name in vnames
            for row in _variance_rows(model, name, n_points, width)]
    which = [w for w in which if w in names]
    if not which:
        return pd.DataFrame(rows, columns=["parameter", "value", "zeta", "wald"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = model.refit_ml()
    design = base.design
    dev0 = -2.0 * float(base.loglik)
    beta = base.fixef.to_numpy()
    se = np.sqrt(np.diag(base.vcov.to_numpy()))
    offset = design.offset if design.offset is not None else np.zeros(design.nobs)
    for name in which:
        j = names.index(name)
        keep = [i for i in range(len(names)) if i != j]
        for v in beta[j] + se[j] * np.linspace(-width, width, n_points):
            d = replace(design, X=np.ascontiguousarray(design.X[:, keep]),
                        fixef_names=[names[i] for i in keep], offset=offset + v * design.X[:, j])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = base.with_design(d).fit()
            dev = -2.0 * float(fit.loglik)
            zeta = np.sign(v - beta[j]) * np.sqrt(max(dev - dev0, 0.0))
            rows.append({"parameter": name, "value": float(v), "zeta": float(zeta),
                         "wald": float((v - beta[j]) / se[j])})
    return pd.DataFrame(rows)


def _variance_rows(model, name: str, n_points: int, width: float) -> list[dict]:
    """ζ over x̂ ± width·se on the log (sd, σ) or atanh (cor) scale, with se from ζ at ±0.05."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = model.refit_ml()
    sv = dict(zip(variance_parameter_names(model), ml.factor.parametrization.to_sdcor(ml.theta, ml.sigma)))
    xhat = float(sv[name])
    cor = name.startswith("cor_")
    fwd, back = (np.arctanh, np.tanh) if cor else (np.log, np.exp)
    if (not cor and xhat <= 0) or (cor and abs(xhat) >= 1 - 1e-8):
        return []   # on the boundary: no interior ζ curve (confint gives the one-sided limit)
    u0, h = float(fwd(xhat)), 0.05
    z = variance_zeta(model, name, back(np.array([u0 - h, u0 + h])))
    slope = (z[1] - z[0]) / (2 * h)
    se_u = 1.0 / slope if np.isfinite(slope) and slope > 0 else 0.5
    grid = back(u0 + se_u * np.linspace(-width, width, n_points))
    if cor:
        grid = np.clip(grid, -1 + 1e-8, 1 - 1e-8)
    zeta = variance_zeta(model, name, grid)
    return [{"parameter": name, "value": float(v), "zeta": float(t), "wald": np.nan}
            for v, t in zip(grid, zeta)]
