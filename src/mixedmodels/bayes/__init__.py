"""Fully Bayesian fits of mixed models (posterior draws), comparable with the penalized (blme) fits.

``mixedmodels.bayes`` is this subpackage (its samplers and posteriors) and, as the issue's API
writes it, also callable: ``mm.bayes(formula, data, ...)`` is :func:`mixedmodels.bayes_fit`.
The presentation layer registers that function (:func:`register_fit`), so this layer imports
nothing above it.
"""

import sys
import types
from typing import Callable

_FIT: list[Callable] = []


def register_fit(fit: Callable) -> None:
    """Make ``mixedmodels.bayes(...)`` call ``fit`` (``mm.bayes_fit``)."""
    _FIT[:] = [fit]


class _Subpackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        if not _FIT:      # presentation.blme registers it; imported on first use
            from ..models.base import load_extensions

            load_extensions()
        if not _FIT:
            raise TypeError("mixedmodels.bayes is the subpackage of samplers and posteriors; "
                            "import mixedmodels for the fit, mm.bayes(formula, data, ...) or "
                            "mm.bayes_fit(formula, data, ...)")
        return _FIT[0](*args, **kwargs)


sys.modules[__name__].__class__ = _Subpackage
