"""Fully Bayesian fits of mixed models (posterior draws), comparable with the penalized (blme) fits.

The entry point is the function :func:`mixedmodels.bayes_fit`; ``mixedmodels.bayes`` is this
subpackage (its samplers and posteriors). Calling it explains that, instead of Python's bare
"'module' object is not callable".
"""

import sys
import types


class _Subpackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        raise TypeError("mm.bayes is the subpackage mixedmodels.bayes (samplers and posteriors); the "
                        "Bayesian fit is the function mm.bayes_fit(formula, data, ...)")


sys.modules[__name__].__class__ = _Subpackage
