"""The iterative GLMM path (issue 13, section 2): PIRLS with PCG solves and an SLQ
log-determinant, against the exact GLMM fit (itself checked against lme4 and glmmTMB in
tests/test_glmm.py), and the cost model's choice and refusals for GLMMs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.exceptions import IterativeConvergenceWarning, ModelSizeError
from mixedmodels.models import cost
from mixedmodels.models.glmm import GeneralizedLinearMixedModel
from mixedmodels.models.iterative_glmm import IterativeGLMM, choose_glmm_path

ITER = mm.Control(method="iterative")
EXACT = mm.Control(method="exact")
F = "y ~ x + (1 | g1) + (1 | g2)"


def crossed(n, m1, m2, family="binomial", seed=1):
    rng = np.random.default_rng(seed)
    g1, g2, x = rng.integers(0, m1, n), rng.integers(0, m2, n), rng.normal(size=n)
    eta = -0.3 + 0.5 * x + 0.8 * rng.normal(size=m1)[g1] + 0.5 * rng.normal(size=m2)[g2]
    if family == "binomial":
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g1": g1.astype(str), "g2": g2.astype(str)})


def close(it, ex):
    """The issue's tolerances: θ 1e-3 relative, logLik 1e-6 relative (exact at the optimum),
    fixed-effect SEs 1e-3 relative."""
    assert isinstance(it, IterativeGLMM) and type(ex) is GeneralizedLinearMixedModel
    np.testing.assert_allclose(it.theta, ex.theta, rtol=1e-3)
    assert it.loglik_exact
    assert it.loglik == pytest.approx(ex.loglik, rel=1e-6)
    np.testing.assert_allclose(it.coef_table()["Std. Error"], ex.coef_table()["Std. Error"], rtol=1e-3)
    np.testing.assert_allclose(it.fixef, ex.fixef, rtol=1e-3, atol=1e-4)


def test_crossed_binomial_against_exact():
    """10,000 rows, 300 × 200 crossed levels: 200 unknowns after eliminating g1, so the
    log-determinant is exact (the Schur complement's own Cholesky); the solves are PCG."""
    df = crossed(10_000, 300, 200)
    ex = mm.glmer(F, df, family="binomial", control=EXACT)
    it = mm.glmer(F, df, family="binomial", control=ITER)
    assert it.exact_trace and it.optinfo.path["method"] == "iterative"
    assert max(it.optinfo.path["cg_iterations"]) > 1  # the solves did iterate
    close(it, ex)


def test_crossed_poisson_stochastic_against_exact():
    """Poisson, 8,000 rows, 500 × 250 levels: 250 unknowns, 40 probes, a stochastic
    log-determinant; the Laplace deviance evaluated exactly at the optimum; the SEs from the
    finite-difference Hessian (below 10,000 rows, as lme4) of the stochastic deviance."""
    df = crossed(8_000, 500, 250, family="poisson", seed=3)
    ex = mm.glmer(F, df, family="poisson", control=EXACT)
    it = mm.glmer(F, df, family="poisson", control=ITER)
    assert not it.exact_trace and it.optinfo.path["probes"] == 40
    assert 0 < it.optinfo.path["loglik_mc_se"] < 0.5
    # the stochastic estimate is within a few Monte Carlo SEs of the exact value
    assert abs(it.optinfo.path["loglik_estimate"] - ex.loglik) < 5 * it.optinfo.path["loglik_mc_se"] + 1e-6
    close(it, ex)
    assert any("logLik evaluated exactly" in note for note in it.summary_notes())


@pytest.mark.parametrize("formula, data, family", [
    ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial"),
    ("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", "grouseticks", "poisson"),
])
def test_reference_glmms_against_exact(formula, data, family):
    df = mm.load_dataset(data)
    ex = mm.glmer(formula, df, family=family, control=EXACT)
    it = mm.glmer(formula, df, family=family, control=ITER)
    close(it, ex)


def test_laplace_deviance_at_fixed_parameters_matches_exact():
    """At the same (θ, β) the iterative PIRLS finds the exact modes and deviance."""
    df = crossed(3_000, 80, 50, seed=7)
    design = mm.glmer(F, df, family="binomial", control=ITER).design
    fam = mm.binomial()
    theta, beta = np.array([0.7, 0.4]), np.array([-0.2, 0.45])
    it = IterativeGLMM(design, fam)
    ex = GeneralizedLinearMixedModel(design, fam)
    assert it.smooth_objective(theta, beta) == pytest.approx(ex.smooth_objective(theta, beta), rel=1e-10)
    # lme4's nAGQ = 0 deviance (β in PIRLS) too
    assert it.smooth_objective(theta) == pytest.approx(ex.smooth_objective(theta), rel=1e-10)


def test_poisson_with_offset_and_weights_at_fixed_parameters_matches_exact():
    from mixedmodels.spec.design import build_design

    df = crossed(2_000, 300, 200, family="poisson", seed=12)
    rng = np.random.default_rng(13)
    design = build_design(F, df, offset=rng.normal(0, 0.3, len(df)),
                          weights=rng.uniform(0.5, 2.0, len(df)), check_levels=False)
    fam = mm.poisson()
    theta, beta = np.array([0.8, 0.5]), np.array([-0.3, 0.5])
    it, ex = IterativeGLMM(design, fam), GeneralizedLinearMixedModel(design, fam)
    assert it.smooth_objective(theta, beta) == pytest.approx(ex.smooth_objective(theta, beta), rel=1e-10)
    assert it.engine.exact_trace


def test_nagq0_against_exact():
    df = crossed(3_000, 80, 50, seed=8)
    ex = mm.glmer(F, df, family="binomial", n_agq=0, control=EXACT)
    it = mm.glmer(F, df, family="binomial", n_agq=0, control=ITER)
    np.testing.assert_allclose(it.theta, ex.theta, rtol=1e-3)
    assert it.loglik == pytest.approx(ex.loglik, rel=1e-6)


def test_auto_picks_iterative_when_the_exact_path_is_too_slow(monkeypatch):
    """The cost model's choice, with the dense flop rate made tiny (no huge design needed)."""
    df = crossed(3_000, 80, 50, seed=9)
    small = mm.glmer(F, df, family="binomial")
    assert type(small) is GeneralizedLinearMixedModel
    assert small.optinfo.path["method"] == "exact" and small.optinfo.path["reason"].startswith("auto")
    monkeypatch.setattr(cost, "FLOPS_DENSE", 1.0)
    m = mm.glmer(F, df, family="binomial")
    assert isinstance(m, IterativeGLMM)
    assert m.optinfo.path["reason"].startswith("auto: exact ~")
    assert "iterative path (auto: exact" in m.summary_notes()[0]


class _Term:
    def __init__(self, nlevels):
        self.nlevels, self.ncols, self.matrix = nlevels, 1, None


class _Design:
    """The shape of the benchmark's design: 5M rows, two crossed 50,000-level factors."""

    def __init__(self, n=5_000_000, levels=(50_000, 50_000)):
        self.nobs, self.terms = n, [_Term(m) for m in levels]
        self.X = np.zeros((1, 2))


def test_big_glmm_goes_iterative_and_too_big_is_refused(monkeypatch):
    monkeypatch.setattr(cost, "available_memory", lambda: 32e9)
    choice = choose_glmm_path(_Design())
    assert choice["method"] == "iterative" and "exact factor needs" in choice["reason"]
    assert choice["exact_estimate"]["memory_gb"] > 50
    with pytest.raises(ModelSizeError, match="method='iterative'"):
        choose_glmm_path(_Design(), "exact")
    monkeypatch.setattr(cost, "available_memory", lambda: 1e8)
    with pytest.raises(ModelSizeError, match="neither path") as err:
        choose_glmm_path(_Design())
    assert "GB are available" in str(err.value)


def test_glmer_refuses_before_any_work(monkeypatch):
    df = crossed(3_000, 80, 50, seed=10)
    monkeypatch.setattr(cost, "available_memory", lambda: 1e5)

    def no_fit(self, *args, **kwargs):
        raise AssertionError("a fit was started")

    monkeypatch.setattr(GeneralizedLinearMixedModel, "fit", no_fit)
    with pytest.raises(ModelSizeError, match="neither path"):
        mm.glmer(F, df, family="binomial")


def test_nonconvergence_warns_with_residuals():
    df = crossed(1_000, 300, 200, seed=11)
    ctrl = mm.Control(method="iterative", maxfun=10, options={"cg_maxiter": 1, "exact_loglik": "never"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mm.glmer(F, df, family="binomial", control=ctrl)
    msgs = [str(w.message) for w in caught if issubclass(w.category, IterativeConvergenceWarning)]
    assert msgs and "largest relative residual" in msgs[0] and "cg_maxiter" in msgs[0]


def test_adaptive_quadrature_stays_exact():
    cbpp = mm.load_dataset("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    assert type(mm.glmer(f, cbpp, family="binomial", n_agq=5)) is GeneralizedLinearMixedModel
    with pytest.raises(ValueError, match="exact path"):
        mm.glmer(f, cbpp, family="binomial", n_agq=5, control=ITER)


def test_conditional_variances_from_the_exact_factor_at_the_estimates():
    df = crossed(2_000, 60, 40, seed=2)
    ex = mm.glmer(F, df, family="binomial", control=EXACT)
    it = mm.glmer(F, df, family="binomial", control=ITER)
    for a, b in zip(it.conditional_covariance(), ex.conditional_covariance()):
        np.testing.assert_allclose(a, b, rtol=1e-4)
