"""mm.bayes_fit: the marginal posterior of (θ, σ), the conditional draws of β and b, the diagnostics
(against ArviZ), and the posterior summaries against rstanarm (tests/reference/
make_rstanarm_reference.R)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from refs import REF

import mixedmodels as mm
from mixedmodels.bayes import diagnostics as D
from mixedmodels.bayes.posterior import LMMPosterior
from mixedmodels.models.lmm import LinearMixedModel
from mixedmodels.models.priors import decov

RSTAN = REF / "rstanarm_reference.json"


# --- diagnostics ------------------------------------------------------------------------------

def _chains(seed=1):
    rng = np.random.default_rng(seed)
    x = np.empty((4, 600))
    for c in range(4):  # AR(1) chains, one shifted
        e = rng.standard_normal(600)
        for t in range(600):
            x[c, t] = (0.7 * x[c, t - 1] if t else 0.0) + e[t]
    x[2] += 0.4
    return x


def test_diagnostics_match_arviz():
    az = pytest.importorskip("arviz")
    for x in (_chains(1), _chains(2), np.exp(_chains(3))):
        assert D.rhat(x) == pytest.approx(float(az.rhat(x, method="rank")), rel=1e-10)
        assert D.ess_bulk(x) == pytest.approx(float(az.ess(x, method="bulk")), rel=1e-10)
        assert D.ess_tail(x) == pytest.approx(float(az.ess(x, method="tail")), rel=1e-10)


def test_diagnostics_on_independent_draws():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1000))
    assert D.rhat(x) < 1.01
    assert 3000 < D.ess_bulk(x) < 5000
    # an AR(1) with φ = 0.7 has ESS ≈ n (1 − φ)/(1 + φ) ≈ 0.18 n, and chains that disagree a large R-hat
    assert D.ess_bulk(_chains(1) - _chains(1).mean(axis=1, keepdims=True)) == pytest.approx(0.18 * 2400, rel=0.3)
    assert D.rhat(_chains(1)) > 1.01


# --- the marginal posterior ----------------------------------------------------------------------

def _dense_marginal(design, theta, sigma):
    """log ∫ N(y; Xβ + Zb, σ²) N(b; 0, σ² ΛΛᵀ) dβ db with a flat prior on β, densely."""
    X, y = design.X, design.y
    term = design.terms[0]
    Z = np.zeros((len(y), term.nlevels))
    Z[np.arange(len(y)), term.matrix.codes] = term.matrix.values[:, 0]
    V = sigma ** 2 * (np.eye(len(y)) + theta[0] ** 2 * Z @ Z.T)
    Vi = np.linalg.inv(V)
    A = X.T @ Vi @ X
    beta = np.linalg.solve(A, X.T @ Vi @ y)
    r = y - X @ beta
    n, p = X.shape
    return (-0.5 * (np.linalg.slogdet(V)[1] + np.linalg.slogdet(A)[1] + r @ Vi @ r)
            - 0.5 * (n - p) * math.log(2 * math.pi))


def test_marginal_density_is_the_integral_over_beta_and_b():
    design = mm.build_design("Yield ~ 1 + (1 | Batch)", mm.load_dataset("Dyestuff"))
    post = LMMPosterior(LinearMixedModel(design, reml=False), [None], None, None)
    vals = []
    for theta, sigma in ((0.8, 50.0), (1.5, 40.0), (0.3, 60.0)):
        x = post.to_x(np.array([theta]), sigma)
        # flat priors on θ and σ: the density in (log θ, log σ) has the Jacobian θσ
        mine = post.log_density(x) - math.log(theta) - math.log(sigma)
        vals.append((mine, _dense_marginal(design, [theta], sigma)))
    a, b = np.array(vals).T
    assert np.allclose(a - a[0], b - b[0], atol=1e-8)


def test_conditional_draws_have_the_conditional_mean_and_covariance():
    design = mm.build_design("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
    m = LinearMixedModel(design, reml=False).fit()
    post = LMMPosterior(LinearMixedModel(design, reml=False), [decov()], None, ("exponential", 0.02))
    x = post.to_x(m.theta, m.sigma)
    rng = np.random.default_rng(3)
    draws = np.array([post.conditional_draw(x, rng)[0] for _ in range(6000)])
    cov = m.vcov.to_numpy()   # σ̂² (R_X R_Xᵀ)⁻¹: the conditional covariance at σ = σ̂
    se = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(axis=0) - m.beta) < 0.06 * se)
    assert np.allclose(draws.std(axis=0), se, rtol=0.04)


# --- against rstanarm ---------------------------------------------------------------------------

def _sim5():
    return pd.read_csv(REF / "sim5.csv").astype({"g": str})


_FITS: dict = {}


def _bayes(name):
    if name not in _FITS:
        data = mm.load_dataset("sleepstudy") if name.startswith("sleep") else _sim5()
        f = "Reaction ~ Days + (Days | Subject)" if name.startswith("sleep") else "y ~ x + (1 | g)"
        pri = "rstanarm" if name.endswith("rstanarm") else "default"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mm.ConvergenceWarning)
            _FITS[name] = mm.bayes_fit(f, data, chains=4, draws=750, warmup=500, seed=11, priors=pri)
    return _FITS[name]


@pytest.mark.skipif(not RSTAN.exists(), reason="rstanarm reference not made")
@pytest.mark.parametrize("name", ["sleep_flat", "sim5_flat", "sim5_rstanarm"])
def test_posterior_matches_rstanarm(name):
    ref = json.loads(RSTAN.read_text())[name]
    s = _bayes(name).summary()
    for par, r in ref["summary"].items():
        row = s.loc[par]
        assert abs(row["mean"] - r["mean"]) < 0.1 * r["sd"], par
        assert row["sd"] == pytest.approx(r["sd"], rel=0.10), par
        for mine, theirs in ((row["2.5%"], r["q025"]), (row["97.5%"], r["q975"])):
            # (Monte Carlo error of a 2.5% quantile is ~0.1 posterior SD per sampler at these ESS)
            assert abs(mine - theirs) < 0.3 * r["sd"], par
    assert s["rhat"].max() <= 1.01
    assert s["ess_bulk"].min() > 400


def test_summary_draws_and_names():
    b = _bayes("sim5_flat")
    s = b.summary()
    assert list(s.index) == ["(Intercept)", "x", "sd_(Intercept)|g", "sigma"]
    assert list(s.columns) == ["mean", "sd", "2.5%", "97.5%", "rhat", "ess_bulk", "ess_tail"]
    d = b.draws(ranef=True)
    assert len(d) == 4 * 750 and "b[(Intercept)|g:1]" in d.columns
    # b = Λu: the random effects' posterior SD is of the order of the group SD
    assert 0.2 < d["b[(Intercept)|g:1]"].std() < 2 * s.loc["sd_(Intercept)|g", "mean"]


def test_predict_new_levels_are_wider():
    b = _bayes("sim5_flat")
    new = pd.DataFrame({"x": [0.0, 0.0], "g": ["1", "new"]})
    p = b.predict(new, allow_new_levels=True, seed=1, n_draws=150)
    assert p.loc[1, "sd"] > p.loc[0, "sd"]
    pop = b.predict(new, re_form="~0", seed=1, n_draws=150)
    assert pop.loc[0, "mean"] == pytest.approx(b.summary().loc["(Intercept)", "mean"], abs=0.05)


def test_bad_input():
    with pytest.raises(mm.DataError, match="random effects"):
        mm.bayes_fit("y ~ x", _sim5())
    with pytest.raises(ValueError, match="unknown prior"):
        mm.bayes_fit("y ~ x + (1 | g)", _sim5(), cov_prior="decof")
    with pytest.raises(NotImplementedError, match="t prior"):
        mm.bayes_fit("y ~ x + (1 | g)", _sim5(), fixef_prior="t")
    with pytest.raises(ValueError, match="priors must be"):
        mm.bayes_fit("y ~ x + (1 | g)", _sim5(), priors="stan")


def test_short_chains_warn_with_advice():
    with pytest.warns(mm.ConvergenceWarning, match="draws="):
        mm.bayes_fit("y ~ x + (1 | g)", _sim5(), chains=2, draws=30, warmup=30, seed=1, cores=1)


def test_compare_small_sample_side_by_side():
    d = _sim5()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = mm.compare_small_sample("y ~ x + (1 | g)", d, draws=300, warmup=300, chains=2, seed=3)
        reml = mm.lmer("y ~ x + (1 | g)", d)
        bl = mm.blmer("y ~ x + (1 | g)", d)
    v = c.variance
    assert v.loc[("sd_(Intercept)|g", "REML"), "estimate"] == pytest.approx(reml.theta[0] * reml.sigma, abs=1e-8)
    assert v.loc[("sd_(Intercept)|g", "blme"), "estimate"] == pytest.approx(bl.theta[0] * bl.sigma, rel=1e-8)
    # the profile interval of REML is lme4's
    prof = reml.confint(which=["x"])
    assert c.fixed.loc[("x", "REML"), "upper"] == pytest.approx(prof.loc["x", "upper"], rel=1e-8)
    lo, hi = v.loc[("sd_(Intercept)|g", "Bayes"), ["lower", "upper"]]
    assert 0 < lo < hi
    assert ("5 clusters of g: REML puts the SD of (Intercept) at 0 (singular fit); "
            "the penalized fit gives 0.36") in c.verdict
    assert c.plot() is not None


RSTAN_GLMM = REF / "rstanarm_glmm_reference.json"


@pytest.mark.skipif(not RSTAN_GLMM.exists(), reason="rstanarm GLMM reference not made")
def test_glmm_posterior_on_the_laplace_marginal_matches_stan_glmer():  # method='laplace'
    ref = json.loads(RSTAN_GLMM.read_text())["cbpp_flat"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.ConvergenceWarning)
        b = mm.bayes_fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.load_dataset("cbpp"),
                         family="binomial", chains=4, draws=500, warmup=500, seed=5, method="laplace")
    s = b.summary()
    for par, r in ref["summary"].items():
        row = s.loc[par]
        assert abs(row["mean"] - r["mean"]) < 0.1 * r["sd"], par
        assert row["sd"] == pytest.approx(r["sd"], rel=0.10), par
        for mine, theirs in ((row["2.5%"], r["q025"]), (row["97.5%"], r["q975"])):
            assert abs(mine - theirs) < 0.3 * r["sd"], par
    assert s["rhat"].max() <= 1.01


def test_to_arviz():
    az = pytest.importorskip("arviz")
    b = _bayes("sim5_flat")
    idata = b.to_arviz()
    x = np.asarray(idata.posterior["x"])
    assert x.shape == (4, 750)
    assert float(az.rhat(idata)["x"]) == pytest.approx(b.summary().loc["x", "rhat"], rel=1e-10)
