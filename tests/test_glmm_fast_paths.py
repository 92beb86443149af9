"""The GLMM fast paths (one scalar term, canonical link): stage 1 by Newton-secant, stage 2 by
L-BFGS-B with θ in SE units, and the 0/1 deviance as logs of products. Each is checked
against an exact alternative: the elementwise deviance, and the optimality of the estimates
(no neighbouring (θ, β) has a lower exact deviance)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.models.family import binomial, poisson


def _sim(n: int, m: int, sd: float, family: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, m, n)
    x = rng.normal(size=n)
    eta = (-0.4 if family == "binomial" else 0.2) + 0.6 * x + sd * rng.normal(size=m)[g]
    if family == "binomial":
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


@pytest.mark.parametrize("weight", [1.0, 2.0])
@pytest.mark.parametrize("n", [1, 15, 16, 1000, 100_003])
def test_bernoulli_deviance_total_equals_the_elementwise_sum(n, weight):
    rng = np.random.default_rng(n)
    y = (rng.random(n) < 0.4).astype(float)
    eps = np.finfo(float).eps
    mu = np.clip(1.0 / (1.0 + np.exp(-rng.normal(0.0, 12.0, n))), eps, 1.0 - eps)
    mu[: min(n, 3)] = eps  # the clipped extremes: products of 16 stay above 1e-250
    dev = binomial().deviance_function(y, np.full(n, weight))
    expected = float(np.sum(dev(mu)))
    assert dev.total(mu) == pytest.approx(expected, rel=1e-13, abs=1e-12)


def test_deviance_total_falls_back_outside_the_unit_interval():
    y = np.array([0.0, 1.0] * 20)
    mu = np.full(40, 0.3)
    mu[5] = 1.2  # a log link can leave (0, 1); a success there still has a finite log
    dev = binomial().deviance_function(y, np.ones(40))
    assert dev.total(mu) == pytest.approx(float(np.sum(dev(mu))), rel=1e-14)
    mu[4] = 1.2  # a failure there has none: the elementwise route says so (NaN)
    with np.errstate(invalid="ignore"):
        assert np.isnan(dev.total(mu)) and np.isnan(float(np.sum(dev(mu))))
    counts = np.array([0.0, 3.0, 1.0, 7.0])
    pdev = poisson().deviance_function(counts, np.ones(4))
    mu4 = np.array([0.5, 2.5, 1.0, 6.0])
    assert pdev.total(mu4) == pytest.approx(float(np.sum(pdev(mu4))), rel=1e-15)


def _assert_optimal(model, delta: float = 1e-3) -> None:
    """The exact deviance at the estimates is no higher than at any neighbour (θ ± δ on its
    box, each β ± δ·SE): an optimality check independent of the optimizer."""
    th, b = model.theta.copy(), model.fixef.to_numpy().copy()
    se = np.sqrt(np.diag(model.vcov.to_numpy()))
    f0 = model.smooth_objective(th, b)
    assert f0 == pytest.approx(-2.0 * model.loglik, rel=1e-12)
    for i in range(len(th) + len(b)):
        for sign in (1.0, -1.0):
            t2, b2 = th.copy(), b.copy()
            if i < len(th):
                t2[i] += sign * delta
                if t2[i] < 0:
                    continue
            else:
                b2[i - len(th)] += sign * delta * se[i - len(th)]
            assert model.smooth_objective(t2, b2) >= f0 - 1e-9, (i, sign)
    model.restore_fit_state()


@pytest.mark.parametrize("n, m, sd, family, seed", [
    (20_000, 300, 0.8, "binomial", 1),   # above 10k rows: no polish, the gradient path alone
    (3_000, 40, 0.5, "binomial", 2),     # small: polished on the exact deviance
    (20_000, 120, 0.5, "poisson", 11),   # stage 1's Newton steps overshoot to θ = 0 and come back
    (5_000, 50, 0.0, "binomial", 3),     # no group variation: θ at (or next to) its bound
])
def test_scalar_fast_path_reaches_the_optimum(n, m, sd, family, seed):
    data = _sim(n, m, sd, family, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mm.glmer("y ~ x + (1 | g)", data, family=family)
    assert model.has_analytic_gradient
    assert model.optinfo_stage1.optimizer == "newton-secant"
    assert model.optinfo_stage1.nevals <= 15
    _assert_optimal(model)


def test_no_analytic_gradient_for_successes_that_are_not_whole_numbers():
    """Binomial proportions whose successes (trials × proportion) are not whole numbers: aic
    counts them rounded, as R's binomial()$aic, so it is no longer the deviance plus a constant
    and the deviance's closed-form gradient is not the objective's. With it, L-BFGS-B stopped
    at logLik -28394.7610 (θ 0.5419) on these 12,000 rows, above the polish's 10,000: the optimum
    is -28394.7580 (θ 0.5394)."""
    data = _sim(12_000, 150, 0.7, "binomial", 5)
    rng = np.random.default_rng(0)
    data["prop"] = np.clip(data["y"] * 0.8 + rng.uniform(0, 0.2, len(data)), 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mm.glmer("prop ~ x + (1 | g)", data, family="binomial", weights=np.full(len(data), 5.0))
        whole = mm.glmer("y ~ x + (1 | g)", data, family="binomial")
    assert whole.has_analytic_gradient and not model.has_analytic_gradient
    assert model.optinfo.optimizer != "lbfgsb"
    _assert_optimal(model)
    # the optimum's objective gradient, by central differences, is zero (in SE units)
    th, b = model.theta, model.fixef.to_numpy()
    se = np.sqrt(np.diag(model.vcov.to_numpy()))
    h = 1e-4
    slope = (model.smooth_objective(th + h, b) - model.smooth_objective(th - h, b)) / (2 * h)
    assert abs(slope) < 0.05  # at the old path's stop: 4.5
    for j in range(len(b)):
        step = np.eye(len(b))[j] * h * se[j]
        assert abs(model.smooth_objective(th, b + step) - model.smooth_objective(th, b - step)) / (2 * h) < 1e-3
    model.restore_fit_state()


def test_the_polish_runs_only_where_it_can_gain(lme4_ref):
    """After L-BFGS-B on the closed-form gradient stops on its gradient test inside the bounds,
    no BOBYQA polish (it gained at most 6e-11 there); after a user's L-BFGS-B, which differences
    the deviance, it still runs. Both reach lme4's cbpp optimum."""
    cbpp = mm.load_dataset("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    default = mm.glmer(formula, cbpp, family="binomial")
    user = mm.glmer(formula, cbpp, family="binomial", control=mm.Control(optimizer="lbfgsb"))
    assert "PROJECTED GRADIENT" in default.optinfo.message and "polished" not in default.optinfo.message
    assert "polished" in user.optinfo.message
    ref = lme4_ref["cbpp_laplace"]
    for m in (default, user):
        # lme4's PIRLS tolerance leaves its logLik 3e-4 low here: equal or better
        assert m.loglik >= ref["loglik"]
        np.testing.assert_allclose(m.theta, [ref["theta"]], rtol=1e-3)
    assert default.loglik == pytest.approx(user.loglik, abs=1e-9)
