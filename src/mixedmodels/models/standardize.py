"""Standardized LMM fits: fit on centred and scaled predictors, report on both scales.

The chapter's cure for scaling warnings (``mm.lmer(..., standardize=True)``): the optimizer
works on well-scaled model matrices and the fit is mapped back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..spec.design import ModelDesign, build_design
from .checks import check_scaling
from .lmm import LinearMixedModel
from .optim import Control

__all__ = ["standardized_lmer", "standardize_design", "Standardization"]


# -- standardized fits ----------------------------------------------------------------------------

@dataclass
class Standardization:
    """The linear maps between the original and the standardized model matrices.

    ``X_std = X @ fixed_map`` and, per term, ``Z_std = Z @ term_maps[i]``; so ``beta =
    fixed_map @ beta_std`` and the original-scale random-effects covariance is
    ``M Σ_std Mᵀ`` with ``M = term_maps[i]``.
    """

    table: pd.DataFrame  # one row per transformed column: where, column, center, scale
    fixed_map: np.ndarray
    term_maps: list


def _column_map(names: list[str], values: np.ndarray, centre: bool, where: str, rows: list):
    """The map M (X_std = X M) that centres (if allowed) and scales each non-indicator column."""
    l = values.shape[1]
    M = np.eye(l)
    if "(Intercept)" not in names:
        centre = False
    icpt = names.index("(Intercept)") if centre else None
    for j, name in enumerate(names):
        if name == "(Intercept)":
            continue
        col = values[:, j]
        sd = float(col.std())
        if sd == 0 or np.all((col == 0) | (col == 1)):
            continue  # constants and 0/1 indicators stay as they are
        mean = float(col.mean()) if centre else 0.0
        M[j, j] = 1.0 / sd
        if icpt is not None:
            M[icpt, j] = -mean / sd
        rows.append((where, name, mean, sd))
    return M


def standardize_design(design: ModelDesign) -> tuple[ModelDesign, "Standardization"]:
    """A copy of ``design`` with centred and scaled numeric columns, and the maps back.

    Fixed-effect columns are centred (when the model has an intercept) and scaled; the columns
    of a correlated random-effects term with an intercept likewise; other random-effects
    columns are only scaled, because centring them would change the model. 0/1 indicator and
    constant columns are left alone. Both fits have the same likelihood (ML exactly; the REML
    criterion differs by the constant ``2 log|det M|`` of the fixed-effects map).

    Returns
    -------
    (ModelDesign, Standardization)
    """
    rows: list = []
    fmap = _column_map(list(design.fixef_names), design.X, True, "fixed", rows)
    new_terms, tmaps = [], []
    for term in design.terms:
        mat = term.matrix
        centre = mat.correlated and mat.ncols > 1
        if mat.structure is not None and not mat.structure.linear:
            M = np.eye(mat.ncols)  # cs/ar1/ou: rescaled columns would change the structure itself
        else:
            M = _column_map(list(term.columns), mat.values, centre, f"({term.lhs} | {term.group})", rows)
        tmaps.append(M)
        new_terms.append(replace(term, matrix=replace(mat, values=mat.values @ M)))
    table = pd.DataFrame(rows, columns=["where", "column", "center", "scale"])
    std = replace(design, X=design.X @ fmap, terms=new_terms,
                  extra={**design.extra, "standardized": True})
    return std, Standardization(table, fmap, tmaps)


def _lower_factor(A: np.ndarray) -> np.ndarray:
    """Lower-triangular L with non-negative diagonal and L Lᵀ = A Aᵀ (also when A is singular)."""
    if A.shape[0] == 0:
        return A
    R = np.linalg.qr(A.T, mode="r")
    L = R.T
    signs = np.where(np.diag(L) < 0, -1.0, 1.0)
    return L * signs  # flip columns: L Lᵀ unchanged


def _theta_from_factors(model, factors: list[np.ndarray], structured_theta: np.ndarray) -> np.ndarray:
    """θ of ``model`` from its factors T; a structured term (columns not rescaled) keeps its slice
    of ``structured_theta``."""
    param = model.factor.parametrization
    theta = []
    for i, (T, s, (rows, cols)) in enumerate(zip(factors, param.terms, param.layouts)):
        theta.append(T[rows, cols] if s.linear else param.term_theta(structured_theta, i))
    return np.concatenate(theta) if theta else np.zeros(0)


def standardized_lmer(formula: str, data: pd.DataFrame, *, reml: bool = True,
                      weights=None, offset=None, na_action: str = "drop",
                      control: Control | None = None,
                      expand_doublebar: str = "lme4"):
    """Fit an LMM on centred and scaled numeric predictors; report it on both scales.

    The fit runs on the standardized model matrices (see :func:`standardize_design`), where the
    optimizer works well. It is then mapped back exactly: the returned model lives on the
    original scale (``fixef``, ``vcov``, ``varcorr``, ``predict`` as usual, and the same
    log-likelihood as a successful fit on the raw predictors), and carries

    - ``standardized``: the fitted model on the standardized scale;
    - ``standardization``: the centre and scale of every transformed column;
    - ``standardized_coefficients``: a table of the fixed effects and SEs on both scales.

    No ScalingWarning is issued (that is what the standardizing fixes); the convergence and
    singular-fit checks run on the standardized fit.

    Parameters
    ----------
    formula, data, reml, weights, offset, na_action, control, expand_doublebar
        As for :func:`mixedmodels.lmer`.

    Returns
    -------
    LinearMixedModel
    """
    design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action,
                          expand_doublebar=expand_doublebar)
    std_design, info = standardize_design(design)
    control = control or Control()
    std_control = replace(control, check_scale="ignore")
    std = LinearMixedModel(std_design, reml=reml, control=std_control)
    if control.start is not None:  # a start given on the original scale
        raw = std.factor.split_theta(np.asarray(control.start, dtype=float))
        std_control.start = _theta_from_factors(
            std, [_lower_factor(np.linalg.solve(M, T)) for M, T in zip(info.term_maps, raw)],
            np.asarray(control.start, dtype=float))
    std.fit()
    factors = [_lower_factor(M @ T) for M, T in zip(info.term_maps, std.factor.split_theta(std.theta))]
    model = LinearMixedModel(design, reml=reml, control=control)
    model.set_theta(_theta_from_factors(model, factors, std.theta))
    model.optinfo = std.optinfo
    model.convergence = std.convergence
    model.is_singular = std.is_singular
    model._check_messages = list(std._check_messages)
    model.scaling_problems = check_scaling(design)
    model.standardized = std
    model.standardization = info
    se = np.sqrt(np.diag(model.vcov.to_numpy()))
    se_std = np.sqrt(np.diag(std.vcov.to_numpy()))
    model.standardized_coefficients = pd.DataFrame(
        {"Estimate": model.fixef.to_numpy(), "Std. Error": se,
         "Estimate (std)": std.fixef.to_numpy(), "Std. Error (std)": se_std},
        index=model.fixef.index)
    return model
