"""The entry points for few clusters: :func:`blmer` and :func:`bglmer` (blme's penalized fits),
:func:`bayes` (posterior sampling) and :func:`compare_small_sample` (REML, ML, blme and Bayes
side by side)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..models.family import get_family
from ..models.optim import Control
from ..models.penalized import PenalizedGeneralizedLinearMixedModel, PenalizedLinearMixedModel, bind_priors
from ..spec.design import build_design
from ..spec.response import Response, response_parser


def _check_bool(name: str, value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def _check_common(na_action, weights, offset, control) -> None:
    if na_action not in ("drop", "raise"):
        raise ValueError(f"na_action must be 'drop' or 'raise', got {na_action!r}")
    for name, v in (("weights", weights), ("offset", offset)):
        if v is not None and not isinstance(v, (str, np.ndarray, pd.Series, list, tuple)):
            raise TypeError(f"{name} must be a column name or an array with one value per row, got "
                            f"{type(v).__name__}")
    if control is not None and not isinstance(control, Control):
        raise TypeError(f"control must be a mm.Control, got {type(control).__name__}")

__all__ = ["blmer", "bglmer"]


def blmer(formula: str, data: pd.DataFrame, *, reml: bool = True, cov_prior="wishart", fixef_prior=None,
          resid_prior=None, weights=None, offset=None, na_action: str = "drop",
          control: Control | None = None, expand_doublebar: str = "lme4") -> PenalizedLinearMixedModel:
    """Fit a linear mixed model by maximising the posterior, as blme's ``blmer``.

    Parameters
    ----------
    formula, data, reml, weights, offset, na_action, control, expand_doublebar
        As :func:`mixedmodels.lmer`.
    cov_prior : prior, name, None or dict, default "wishart"
        The prior on each term's covariance: blme's default ``wishart`` (df = dimension + 2.5,
        scale = inf), ``invwishart``, ``gamma`` or ``invgamma`` (scalar terms), None, or per
        grouping factor ``{"g": mm.priors.gamma(), "h": None}`` (``"*"`` for the others).
        A name means blme's defaults for it.
    fixef_prior : prior, name or None
        ``mm.priors.normal(sd=...)`` or ``mm.priors.t(...)`` (the t needs ``reml=False``).
    resid_prior : prior, name or None
        ``mm.priors.point(value)``, ``gamma`` or ``invgamma`` on σ².

    Returns
    -------
    PenalizedLinearMixedModel
        A fitted model like :func:`~mixedmodels.lmer`'s; ``loglik`` is the likelihood at the mode,
        ``penalty`` the prior's deviance, ``penalized_objective`` their sum.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> m = mm.blmer("Yield ~ 1 + (1 | Batch)", mm.load_dataset("Dyestuff2"))
    >>> round(float(m.theta[0]), 4)
    0.4106
    """
    reml = _check_bool("reml", reml)
    _check_common(na_action, weights, offset, control)
    design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action,
                          expand_doublebar=expand_doublebar)
    if not design.terms:
        raise DataError("the formula has no random-effects term such as (1 | g)")
    priors = bind_priors(design, cov_prior, fixef_prior, resid_prior)
    model = PenalizedLinearMixedModel(design, reml=reml, control=control, priors=priors)
    return model.fit()


def bglmer(formula: str, data: pd.DataFrame, *, family="binomial", cov_prior="wishart", fixef_prior=None,
           n_agq: int = 1, weights=None, offset=None, na_action: str = "drop", control: Control | None = None,
           expand_doublebar: str = "lme4") -> PenalizedGeneralizedLinearMixedModel:
    """Fit a GLMM by maximising the Laplace-approximate posterior, as blme's ``bglmer``.

    Parameters
    ----------
    formula, data, family, n_agq, weights, offset, na_action, control, expand_doublebar
        As :func:`mixedmodels.glmer`.
    cov_prior : prior, name, None or dict, default "wishart"
        As :func:`blmer` (GLMM defaults of blme for ``invwishart`` and ``invgamma``).
    fixef_prior : prior, name or None
        ``normal`` (β ~ N(0, diag(sd²)), default sd = (10, 2.5)) or ``t`` (multivariate t, df 3,
        scale (10², 2.5²)).

    Returns
    -------
    PenalizedGeneralizedLinearMixedModel
    """
    _check_common(na_action, weights, offset, control)
    if isinstance(n_agq, (bool, np.bool_)) or int(n_agq) != n_agq or not 0 <= n_agq <= 100:
        raise ValueError(f"n_agq must be an integer from 0 to 100, got {n_agq!r}")
    fam = get_family(family)
    if fam.linear:
        raise ValueError("family 'gaussian' with the identity link is a linear mixed model: use mm.blmer")
    store = Response()
    design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action,
                          response=response_parser(fam, store), check_levels=False,
                          expand_doublebar=expand_doublebar)
    if store.trials is not None:
        import dataclasses

        design = dataclasses.replace(design, trials=store.trials)
    if not design.terms:
        raise DataError("the formula has no random-effects term such as (1 | g)")
    priors = bind_priors(design, cov_prior, fixef_prior, None, glmm=True)
    model = PenalizedGeneralizedLinearMixedModel(design, fam, n_agq, control, priors=priors)
    return model.fit()
