"""Random effects inside machine learning: mixed-effects estimators around any scikit-learn learner.

:class:`MixedEffectsRegressor` and :class:`MixedEffectsClassifier` (scikit-learn estimators)
alternate the learner and a random part fit by the package's LMM/GLMM engine, as MERF does;
see docs/machine-learning.md. They need scikit-learn (``pip install mixedmodels[learners]``).
"""

try:
    from .estimators import MixedEffectsClassifier, MixedEffectsRegressor
except ImportError as _err:  # scikit-learn is the optional [learners] extra
    _MISSING = str(_err)

    class _NeedsSklearn:
        def __init__(self, *args, **kwargs):
            raise ImportError(f"{type(self).__name__} needs scikit-learn ({_MISSING}); install it with "
                              "pip install 'mixedmodels[learners]'")

    class MixedEffectsRegressor(_NeedsSklearn):  # type: ignore[no-redef]
        """Needs scikit-learn: ``pip install 'mixedmodels[learners]'``."""

    class MixedEffectsClassifier(_NeedsSklearn):  # type: ignore[no-redef]
        """Needs scikit-learn: ``pip install 'mixedmodels[learners]'``."""

__all__ = ["MixedEffectsRegressor", "MixedEffectsClassifier"]
