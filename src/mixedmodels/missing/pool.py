"""Rubin's rules: pooled estimates, their total variance and Barnard–Rubin degrees of freedom.

The formulas are mitml's ``testEstimates`` (Rubin 1987; Barnard & Rubin 1999 for ``df_com``):
with m estimates Q̂ᵢ and their variances Ûᵢ,

- Q̄ = mean Q̂ᵢ, Ū = mean Ûᵢ, B = var(Q̂ᵢ) (m − 1 denominator), T = Ū + (1 + 1/m) B;
- RIV r = (1 + 1/m) B / Ū, the relative increase in variance;
- ν_m = (m − 1)(1 + 1/r)²; with the complete-data df ν_com, ν = (1/ν_m + 1/ν_obs)⁻¹ with
  ν_obs = (1 − λ) ν_com (ν_com + 1)/(ν_com + 3), λ = r/(1 + r);
- FMI = (r + 2/(ν + 3))/(r + 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.lazy import lazy_import

stats = lazy_import("scipy.stats")  # on first use: import mixedmodels stays fast

__all__ = ["rubin", "check_df_com", "POOLED_COLUMNS"]

#: the columns of a pooled coefficient table (mitml's, in lme4's spelling)
POOLED_COLUMNS = ["Estimate", "Std. Error", "t value", "df", "Pr(>|t|)", "RIV", "FMI"]


def check_df_com(df_com) -> float | None:
    """``df_com`` as a positive float, or None."""
    if df_com is None:
        return None
    if isinstance(df_com, bool) or not np.isscalar(df_com) or not np.isfinite(float(df_com)) or float(df_com) <= 0:
        raise ValueError(f"df_com must be a positive number (the complete-data degrees of freedom, e.g. "
                         f"nobs - number of fixed effects), got {df_com!r}")
    return float(df_com)


def rubin(qhat: np.ndarray, uhat: np.ndarray, names: list[str], df_com: float | None = None
          ) -> tuple[pd.DataFrame, np.ndarray]:
    """Pool m estimates by Rubin's rules.

    Parameters
    ----------
    qhat : ndarray, shape (m, p)
        The estimates, one row per imputed data set.
    uhat : ndarray, shape (m, p, p)
        Their covariance matrices.
    names : list of str
        Parameter names.
    df_com : float, optional
        Complete-data degrees of freedom for Barnard & Rubin's small-sample df.

    Returns
    -------
    (DataFrame, ndarray)
        The pooled table (``POOLED_COLUMNS``) and the total covariance matrix T.
    """
    qhat = np.asarray(qhat, dtype=float)
    uhat = np.asarray(uhat, dtype=float)
    m = qhat.shape[0]
    if m < 2:
        raise ValueError(f"pooling needs at least 2 imputed data sets (got {m}): the between-imputation "
                         "variance cannot be estimated from one")
    df_com = check_df_com(df_com)
    qbar = qhat.mean(axis=0)
    ubar = uhat.mean(axis=0)
    dev = qhat - qbar
    b = dev.T @ dev / (m - 1)
    total = ubar + (1 + 1 / m) * b
    se = np.sqrt(np.diag(total))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (1 + 1 / m) * np.diag(b) / np.diag(ubar)
        v = (m - 1) * (1 + 1 / r) ** 2
        if df_com is not None:
            lam = r / (r + 1)
            vobs = (1 - lam) * ((df_com + 1) / (df_com + 3)) * df_com
            v = 1 / (1 / v + 1 / vobs)
        fmi = (r + 2 / (v + 3)) / (r + 1)
        t = qbar / se
    p = 2 * stats.t.sf(np.abs(t), df=v)
    table = pd.DataFrame(np.column_stack([qbar, se, t, v, p, r, fmi]), index=list(names),
                         columns=POOLED_COLUMNS)
    return table, total
