"""Warning and error classes. Each warning class can be filtered on its own.

docs/errors.md describes each class: what it means, its typical causes and the fix.

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
    "OrdinalResponseWarning",
    "IterativeConvergenceWarning",
    "DataError",
    "ModelSizeError",
]


class MixedModelsWarning(UserWarning):
    """Base class of every warning this package raises; ``warnings.simplefilter("ignore",
    MixedModelsWarning)`` silences them all. Used directly for caveats without a class of
    their own (binomial proportions without weights, R² and ICC caveats, ...)."""


class MissingDataWarning(MixedModelsWarning):
    """Rows were dropped because a variable the model uses was missing, or because their prior
    weight was 0 (as lme4: not counted as observations). ``na_action="raise"`` makes missing
    values a :class:`DataError` instead."""


class RankDeficiencyWarning(MixedModelsWarning):
    """Fixed-effect columns were aliased (linear combinations of others) and dropped; the
    message names them (duplicated or collinear predictors, empty cells of an interaction)."""


class ConvergenceWarning(MixedModelsWarning):
    """The optimizer may not have reached the optimum (evaluation limit, gradient or Hessian
    check); also separation in binomial GLMMs and failed bootstrap refits. Raised as an
    exception with ``Control(check_conv="raise")``."""


class SingularFitWarning(MixedModelsWarning):
    """A boundary fit: a variance is (nearly) zero or a correlation is (nearly) ±1. Raised as
    an exception with ``Control(check_singular="raise")``; see ``mm.help("singular")``."""


class ScalingWarning(MixedModelsWarning):
    """Predictors sit on very different scales or far from zero; centre and scale them (or
    ``standardize=True``). Raised as an exception with ``Control(check_scale="raise")``."""


class ModelComparisonWarning(MixedModelsWarning):
    """A comparison that is invalid or easy to misread (e.g. REML fits with different fixed effects)."""


class OrdinalResponseWarning(MixedModelsWarning):
    """``mm.clmm`` was given a response that is not an ordered categorical (strings, numbers or
    an unordered categorical); it was converted with the order the message names. Pass an
    ordered ``pd.Categorical`` to state the order and silence it."""
class IterativeConvergenceWarning(ConvergenceWarning):
    """The iterative path's conjugate gradients stopped at their iteration limit before the
    tolerance; the message gives the residual norms and what to change (``cg_maxiter``,
    ``cg_tol``, or ``Control(method="exact")``)."""


class DataError(ValueError):
    """The data cannot be used for the model as given; the message names the column (and the
    count and rows where it applies): a missing column, ±Inf values, no random-effects term,
    unusable grouping factors, new levels or ±Inf in ``predict``'s ``newdata``. A ValueError."""


class ModelSizeError(MemoryError):
    """The model fits neither on the exact path nor on the iterative one in the memory
    available; raised before any work, with both estimates (see docs/big-data.md)."""
