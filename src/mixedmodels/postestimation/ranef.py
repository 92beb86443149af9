"""The random effects after the fit: conditional modes with their conditional SDs, and the
variance parameters on lme4's sd/cor scale.

- :func:`ranef_table`: conditional modes and conditional SDs (lme4's ``condVar``), for LMMs
  and GLMMs alike, from :meth:`~mixedmodels.models.base.MixedModel.conditional_covariance`.
- :func:`variance_parameter_names` and :func:`variance_parameters`: the sd/cor parameters (and
  σ where the family has a scale) named as lme4's ``oldNames = FALSE``, in θ order; the rows
  of :func:`~mixedmodels.postestimation.profile.confint` and the default bootstrap statistic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..models.base import implements

__all__ = ["ranef_table", "variance_parameter_names", "variance_parameters", "RanefTable"]


class RanefTable(pd.DataFrame):
    """The long table of conditional modes: ``group`` (the grouping factor, as in ``varcorr``
    and ``tidy``), ``term``, ``level``, ``condval``, ``condsd``. R's names (``grpvar`` for the
    factor, ``grp`` for the level, as ``as.data.frame(ranef(m))``) still select those columns."""

    _R_NAMES = {"grpvar": "group", "grp": "level"}

    @property
    def _constructor(self):
        return RanefTable

    def __getitem__(self, key):
        if isinstance(key, str) and key not in self.columns and key in self._R_NAMES:
            key = self._R_NAMES[key]
        return super().__getitem__(key)


def variance_parameter_names(model) -> list[str]:
    """lme4's ``oldNames=FALSE`` names of the sd/cor parameters, in θ order, then ``sigma``
    (for families with a scale)."""
    terms = model.design.terms
    names = model.factor.parametrization.sdcor_names([t.name for t in terms],
                                                     [t.columns for t in terms])
    if model.has_scale:
        names.append("sigma")
    return names


def variance_parameters(model) -> pd.Series:
    """The sd/cor parameters at the estimates (then σ, for families with a scale), named as
    :func:`variance_parameter_names`; the scale of the random effects' covariances is
    :attr:`~mixedmodels.models.base.MixedModel.residual_variance_scale`."""
    sigma = model.sigma if model.has_scale else 1.0
    values = model.factor.parametrization.to_sdcor(model.theta, sigma)
    names = variance_parameter_names(model)
    return pd.Series(values[:len(names)], index=names)


@implements("ranef_table")
def ranef_table(model) -> pd.DataFrame:
    """Conditional modes and conditional SDs of the random effects (lme4's ``condVar``).

    For a GLMM the conditional covariance is lme4's: the inverse of the penalized Hessian at
    the mode, ``Λ (ΛᵀZᵀWZΛ + I)⁻¹ Λᵀ`` with W the working weights there.

    Parameters
    ----------
    model : fitted mixed model

    Returns
    -------
    pandas.DataFrame
        Long format like R's ``as.data.frame(ranef(m, condVar=TRUE))``, with the package's
        column names: ``group, term, level, condval, condsd`` (R's ``grpvar`` and ``grp`` still
        select ``group`` and ``level``).
    """
    blocks = model.conditional_covariance()
    frames = []
    for term, b, V in zip(model.design.terms, model.random_effects(), blocks):
        sd = np.sqrt(np.maximum(np.diagonal(V, axis1=1, axis2=2), 0.0))
        for j, col in enumerate(term.columns):
            frames.append(pd.DataFrame({"group": term.group, "term": col,
                                        "level": np.asarray(term.levels, dtype=object),
                                        "condval": b[:, j], "condsd": sd[:, j]}))
    return RanefTable(pd.concat(frames, ignore_index=True))
