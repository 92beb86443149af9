"""The optimizers behind the fits: every one reaches a bounded optimum, logs, and flags limits."""

from __future__ import annotations

import numpy as np
import pytest

from mixedmodels.models.optim import DEFAULT_OPTIMIZER, OPTIMIZERS, Control, minimize

A = np.array([[3.0, 0.5, 0.2], [0.5, 2.0, -0.3], [0.2, -0.3, 1.5]])
TARGET = np.array([1.0, -0.5, -2.0])
LOWER = np.array([0.0, 0.0, -np.inf])


def quad(x: np.ndarray) -> float:
    d = x - TARGET
    return float(d @ A @ d)


def _exact_bounded_minimum() -> np.ndarray:
    # x1 is held at its bound 0 (its unconstrained optimum is -0.5); minimize over x0, x2
    free = [0, 2]
    x = np.zeros(3)
    rhs = A[np.ix_(free, free)] @ TARGET[free] + A[np.ix_(free, [1])] @ (TARGET[[1]] - 0.0)
    x[free] = np.linalg.solve(A[np.ix_(free, free)], rhs)
    return x


def test_control_defaults_are_lme4s():
    c = Control()
    # "auto" runs lme4's BOBYQA except on LMMs with expensive evaluations (tests/test_gradient.py)
    assert (c.optimizer, c.ftol_abs, c.xtol_abs, c.maxfun) == ("auto", 1e-8, 1e-8, 10_000)
    assert DEFAULT_OPTIMIZER == "bobyqa"
    assert (c.check_conv, c.check_singular, c.check_scale) == ("warn", "warn", "warn")
    assert c.singular_tol == 1e-4 and c.check_hessian == "auto"


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_finds_a_bounded_minimum(name):
    exact = _exact_bounded_minimum()
    assert exact[1] == 0.0 and quad(exact) < quad(np.array([exact[0], 0.01, exact[2]]))
    res = minimize(quad, np.array([0.5, 0.5, 0.5]), LOWER, Control(optimizer=name))
    np.testing.assert_allclose(res.x, exact, atol=2e-3)
    assert res.fun == pytest.approx(quad(exact), abs=1e-6)
    assert res.x[1] >= 0.0  # bounds respected
    assert res.optimizer == name and not res.maxfun_reached
    # the log holds every evaluation, and the returned point is the best one evaluated
    hist = res.history()
    assert len(hist) == res.nevals == len(res.log_f)
    assert res.fun == min(res.log_f)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_evaluation_limit_is_flagged(name):
    res = minimize(quad, np.array([0.5, 0.5, 0.5]), LOWER, Control(optimizer=name, maxfun=8))
    assert res.maxfun_reached
    assert not res.converged


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(ValueError, match="bobyqa.*cobyqa"):
        minimize(quad, np.zeros(3), LOWER, Control(optimizer="simplex"))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_one_parameter_with_the_optimum_on_the_bound(name):
    # a variance at zero: f(x) = (x + 1)^2 on x >= 0 has its minimum at the bound
    res = minimize(lambda x: float((x[0] + 1.0) ** 2), np.array([0.7]), np.array([0.0]),
                   Control(optimizer=name))
    assert res.x[0] == pytest.approx(0.0, abs=1e-4)
    assert res.fun == pytest.approx(1.0, abs=1e-6)
