"""Warning and error classes. Each warning class can be filtered on its own.

>>> import warnings, mixedmodels as mm
>>> warnings.simplefilter("ignore", mm.MissingDataWarning)   # doctest: +SKIP
"""

from __future__ import annotations

__all__ = [
    "MixedModelsWarning",
    "MissingDataWarning",
    "RankDeficiencyWarning",
    "ConvergenceWarning",
    "SingularFitWarning",
    "ScalingWarning",
    "ModelComparisonWarning",
    "DataError",
]


class MixedModelsWarning(UserWarning):
    """Base class of every warning this package raises."""


class MissingDataWarning(MixedModelsWarning):
    """Rows were dropped because a variable the model uses was missing."""


class RankDeficiencyWarning(MixedModelsWarning):
    """Fixed-effect columns were aliased (linear combinations of others) and dropped."""


class ConvergenceWarning(MixedModelsWarning):
    """The optimizer may not have reached the optimum."""


class SingularFitWarning(MixedModelsWarning):
    """A variance is (nearly) zero or a correlation is (nearly) ±1."""


class ScalingWarning(MixedModelsWarning):
    """Predictors sit on very different scales or far from zero."""


class ModelComparisonWarning(MixedModelsWarning):
    """A comparison that is invalid or easy to misread (e.g. REML fits with different fixed effects)."""


class DataError(ValueError):
    """The data cannot be used for the model as given; the message names the column."""
