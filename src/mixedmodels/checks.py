"""Checks run after a fit: singular fits and optimizer trouble, each with a filterable warning."""

from __future__ import annotations

import warnings

import numpy as np

from .exceptions import ConvergenceWarning, SingularFitWarning

__all__ = ["check_fit", "is_singular", "singular_terms"]


def singular_terms(model, tol: float = 1e-4) -> list[str]:
    """Descriptions of what sits at the boundary: zero variances, ±1 correlations, rank deficiency."""
    found = []
    for term, T in zip(model.design.terms, model.factor.split_theta(model.theta)):
        diag = np.abs(np.diag(T))
        for col, d in zip(term.columns, diag):
            if d < tol:
                found.append(f"the variance of '{col}' in ({term.lhs} | {term.group}) is ~0")
        if T.shape[0] > 1 and np.all(diag >= tol):
            cov = T @ T.T
            sd = np.sqrt(np.diag(cov))
            corr = cov / np.outer(sd, sd)
            off = np.abs(corr[np.tril_indices(T.shape[0], -1)])
            if np.any(off > 1 - 1e-6):
                found.append(f"a correlation in ({term.lhs} | {term.group}) is ±1")
    return found


def is_singular(model, tol: float = 1e-4) -> bool:
    """lme4's ``isSingular``: a θ entry with a lower bound of 0 is below ``tol``."""
    lower = model.factor.theta_lower_bounds()
    theta = model.theta
    return bool(np.any(theta[lower == 0] < tol))


def _act(level: str, message: str, category) -> None:
    if level == "ignore":
        return
    if level == "raise":
        raise category(message) if issubclass(category, Exception) else RuntimeError(message)
    warnings.warn(message, category, stacklevel=4)


def check_fit(model) -> None:
    """Run the post-fit checks and record their messages on ``model._check_messages``."""
    ctrl = model.control
    messages: list[str] = []
    opt = model.optinfo
    if opt is not None and opt.maxfun_reached:
        msg = (f"the optimizer ({opt.optimizer}) stopped at its evaluation limit ({opt.nevals}); "
               "the estimates may not be optimal. Raise it with control=mm.Control(maxfun=...), "
               "try another optimizer, or centre and scale predictors. See mm.help('convergence').")
        messages.append(msg)
        _act(ctrl.check_conv, msg, ConvergenceWarning)
    model.is_singular = is_singular(model, ctrl.singular_tol)
    if model.is_singular:
        what = "; ".join(singular_terms(model, ctrl.singular_tol)) or "a variance is ~0"
        msg = (f"boundary (singular) fit: {what}. The data do not support this random-effects "
               "structure (too few groups, or too little variation between them). Consider a "
               "simpler structure, cluster-robust SEs or GEE for the fixed effects, or a "
               "regularized fit. See mm.help('singular').")
        messages.append(msg)
        _act(ctrl.check_singular, msg, SingularFitWarning)
    model._check_messages = messages
