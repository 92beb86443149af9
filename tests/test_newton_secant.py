"""Stage 1's scalar optimizer (mixedmodels.models.newton_secant) on functions with known minima."""

from __future__ import annotations

import numpy as np
import pytest

from mixedmodels.models.newton_secant import newton_secant, secant_curvature


def test_reaches_an_interior_minimum_in_a_few_evaluations():
    # f = cosh(x - 1.3) + 0.1 x⁴: minimum where sinh(x - 1.3) + 0.4 x³ = 0
    def fg(x):
        return np.cosh(x - 1.3) + 0.1 * x ** 4, np.sinh(x - 1.3) + 0.4 * x ** 3

    opt = newton_secant(fg, 0.2, 0.0, xtol=1e-8)
    from scipy.optimize import brentq

    root = brentq(lambda x: np.sinh(x - 1.3) + 0.4 * x ** 3, 0.0, 2.0, xtol=1e-14)
    assert opt.x[0] == pytest.approx(root, abs=1e-7)
    assert opt.nevals <= 12 and opt.optimizer == "newton-secant"
    trace = [(float(x[0]), fg(float(x[0]))[1]) for x in opt.log_x]
    # the secant curvature at the end: f'' = cosh(x - 1.3) + 1.2 x² there, to the secant's accuracy
    h = secant_curvature(trace, float(opt.x[0]))
    assert h == pytest.approx(np.cosh(root - 1.3) + 1.2 * root ** 2, rel=0.05)


def test_stops_at_the_bound_when_the_minimum_is_below_it():
    opt = newton_secant(lambda x: ((x + 1.0) ** 2, 2.0 * (x + 1.0)), 0.5, 0.0)
    assert opt.x[0] == 0.0 and opt.message == "minimum at the bound"


def test_gives_up_without_a_bracket():
    # decreasing forever: no minimum, so the caller falls back to L-BFGS-B
    assert newton_secant(lambda x: (-x, -1.0), 1.0, 0.0, maxfun=10) is None


def test_non_finite_values_raise():
    with pytest.raises(FloatingPointError):
        newton_secant(lambda x: (np.nan, 0.0), 1.0, 0.0)
