"""Likelihood profiles of the fixed effects as signed square roots (lme4's ζ).

For a fixed effect βⱼ held at a value v, the model is refit with ``v·xⱼ`` moved into the
offset and the column dropped (the other fixed effects and the covariance parameters
re-estimated), and ``ζ(v) = sign(v − β̂ⱼ) √(dev(v) − dev(β̂))`` on the maximum-likelihood
deviance (−2 log L; a REML fit is profiled through its ML refit, since the REML criterion of
a model with a column fewer is another criterion). ζ is a straight line when the
likelihood is quadratic, so that Wald intervals are right; where it bends, profile intervals
(``confint(method="profile")``) differ from Wald's. Works for LMMs and GLMMs (whose refits go
through PIRLS with the offset).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["profile_zeta"]


def profile_zeta(model, which: Sequence[str] | None = None, n_points: int = 11,
                 width: float = 3.0) -> pd.DataFrame:
    """ζ profiles of fixed effects over ``β̂ⱼ ± width·SEⱼ``.

    Parameters
    ----------
    model : fitted mixed model
    which : list of str, optional
        Fixed effects to profile (default all).
    n_points : int
        Values per parameter (odd numbers include the estimate).
    width : float
        Half-width of the range in standard errors.

    Returns
    -------
    pandas.DataFrame
        ``parameter``, ``value``, ``zeta``, ``wald`` (``(v − β̂)/SE``, the straight line ζ would
        be for a quadratic likelihood).
    """
    names = list(model.fixef.index)
    which = names if which is None else list(which)
    unknown = [w for w in which if w not in names]
    if unknown:
        raise ValueError(f"which names {unknown}, which are not fixed effects; they are {names}")
    if n_points < 3:
        raise ValueError(f"n_points must be at least 3, got {n_points}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = model.refit_ml()
    design = base.design
    dev0 = -2.0 * float(base.loglik)
    beta = base.fixef.to_numpy()
    se = np.sqrt(np.diag(base.vcov.to_numpy()))
    offset = design.offset if design.offset is not None else np.zeros(design.nobs)
    rows = []
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
