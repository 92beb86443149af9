"""The entry points: :func:`lmer` and :func:`glmer`, lme4's pipeline in one call each.

Each is the pipeline, stage by stage: the formula and data to a design
(:func:`~mixedmodels.spec.design.build_design`), the model (:mod:`mixedmodels.models`), its
fit, and the fit checks.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from ..exceptions import DataError, MixedModelsWarning
from ..models.family import Family, NegativeBinomial, get_family
from ..models.glmm import GeneralizedLinearMixedModel, check_separation
from ..models.lmm import LinearMixedModel
from ..models.nbinom import fit_negative_binomial
from ..models.optim import Control
from ..models.standardize import standardized_lmer
from ..spec.design import build_design
from ..spec.response import Response, response_parser

__all__ = ["lmer", "glmer"]


def lmer(formula: str, data: pd.DataFrame, *, reml: bool = True,
         weights: np.ndarray | str | None = None, offset: np.ndarray | str | None = None,
         na_action: str = "drop", control: Control | None = None,
         standardize: bool = False) -> LinearMixedModel:
    """Fit a linear mixed model with an lme4 formula.

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"y ~ x + (1 + x | g)"``, ``"y ~ 1 + (1 | a) + (1 | b)"``,
        ``"y ~ 1 + (1 | a/b)"``, ``"y ~ x + (x || g)"``.
    data : pandas.DataFrame
    reml : bool, default True
        REML estimates (as lme4's default); False for maximum likelihood.
    weights : array-like or column name, optional
        Prior weights: the residual variance of row i is σ²/wᵢ.
    offset : array-like or column name, optional
    na_action : {"drop", "raise"}
        Rows with missing values in the model's variables are dropped (and counted) or raise.
    control : Control, optional
        Optimizer, tolerances, start values and check levels.
    standardize : bool, default False
        Fit on centred and scaled numeric predictors (the cure for scaling warnings) and
        report the coefficients on both scales (``m.standardized_coefficients``); the
        returned model is on the original scale.

    Returns
    -------
    LinearMixedModel
        The fitted model.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> m = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
    >>> round(m.loglik, 3)
    -871.814
    """
    if standardize:
        return standardized_lmer(formula, data, reml=reml, weights=weights, offset=offset,
                                 na_action=na_action, control=control)
    design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action)
    model = LinearMixedModel(design, reml=reml, control=control)
    return model.fit()


def glmer(formula: str, data: pd.DataFrame, *, family: str | Family = "binomial", n_agq: int = 1,
          weights: np.ndarray | str | None = None, offset: np.ndarray | str | None = None,
          na_action: str = "drop", control: Control | None = None) -> GeneralizedLinearMixedModel:
    """Fit a generalized linear mixed model with an lme4 formula, by maximum likelihood.

    Parameters
    ----------
    formula : str
        lme4 syntax. Binomial responses may be 0/1, a two-level factor (the second level is
        a success, as R), ``cbind(successes, failures)``, or proportions with ``weights`` giving
        the trials. Offsets: ``offset(log(exposure))`` in the formula or ``offset=``.
    data : pandas.DataFrame
    family : str or Family
        ``"binomial"``, ``"poisson"``, ``"negative_binomial"`` (dispersion estimated, as lme4's
        ``glmer.nb``), ``"Gamma"``, ``"inverse_gaussian"``, or a family object with its link,
        e.g. ``mixedmodels.binomial("probit")``.
    n_agq : int, default 1
        1: Laplace approximation. >1: adaptive Gauss-Hermite quadrature with that many nodes
        (one scalar random-effects term only). 0: lme4's ``nAGQ = 0`` (faster, β from PIRLS).
    weights : array-like or column name, optional
        Prior weights (the number of trials for proportions).
    offset : array-like or column name, optional
        Added to the linear predictor (and to any ``offset()`` in the formula).
    na_action : {"drop", "raise"}
    control : Control, optional

    Returns
    -------
    GeneralizedLinearMixedModel

    Examples
    --------
    >>> import mixedmodels as mm
    >>> m = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              mm.load_dataset("cbpp"), family="binomial")
    >>> round(m.loglik, 2)
    -92.03
    """
    fam = get_family(family)
    if fam.linear:
        raise ValueError("family 'gaussian' with the identity link is a linear mixed model: "
                         "use mm.lmer")
    store = Response()
    design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action,
                          response=response_parser(fam, store), check_levels=False)
    y = np.asarray(design.y, dtype=float)
    n = len(y)
    prior = np.ones(n) if design.weights is None else np.asarray(design.weights, dtype=float)
    nsize = np.ones(n)
    wt = prior
    if fam.accepts_trials:
        if store.trials is not None:
            nsize = store.trials
            wt = prior * nsize
            design = dataclasses.replace(design, trials=nsize)
        elif design.weights is not None:
            succ = prior * y
            if np.any(np.abs(succ - np.rint(succ)) > 1e-3):
                warnings.warn("non-integer numbers of successes (weights × proportion) in the "
                              "binomial response: give weights= the number of trials.",
                              MixedModelsWarning, stacklevel=2)
        elif np.any((y != 0) & (y != 1)):
            warnings.warn(f"binomial response {store.name!r} has proportions but no "
                          "weights: each row counts as one trial. Give weights= the number of "
                          "trials, or cbind(successes, failures).", MixedModelsWarning,
                          stacklevel=2)
        separated = check_separation(design, y, nsize, wt)
    else:
        separated = False
    if np.all(y == y[0]) and fam.constant_response_is_error:
        raise DataError(f"response {store.name or design.response_name!r} is constant "
                        f"({y[0]:g}); there is nothing to model")
    if isinstance(fam, NegativeBinomial) and fam.theta is None:
        model = fit_negative_binomial(design, fam, n_agq, control)
    else:
        model = GeneralizedLinearMixedModel(design, fam, n_agq, control)
        model.separation_warned = separated
        model.fit()
    return model
