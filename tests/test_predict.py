"""Prediction and simulation."""


from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from refs import LME4

import mixedmodels as mm
from mixedmodels import lmer
from mixedmodels.exceptions import DataError
from mixedmodels.postestimation.predict import predict, simulate
from mixedmodels.presentation.datasets import load_dataset


@pytest.fixture(scope="module")
def gpa():
    return lmer("gpa ~ occasion + sex + (1 + occasion | student)", load_dataset("gpa"))


def test_population_prediction_matches_lme4_fixed_effects(sleep):
    fe = LME4["sleepstudy_reml"]["fixef"]
    nd = pd.DataFrame({"Days": [0, 3, 9]})
    p = predict(sleep, nd, re_form="~0")
    np.testing.assert_allclose(p, fe["(Intercept)"] + fe["Days"] * nd["Days"], rtol=1e-7)
    assert list(p.index) == list(nd.index)


def test_categorical_levels_reapplied(gpa):
    fe = LME4["gpa_2"]["fixef"]
    # only one level of sex present: the training coding must still be used
    nd = pd.DataFrame({"occasion": [0, 2], "sex": ["male", "male"]})
    p = gpa.predict(nd, re_form="~0")
    np.testing.assert_allclose(p, fe["(Intercept)"] + fe["sexmale"] + fe["occasion"] * nd["occasion"],
                               rtol=1e-6)


def test_training_data_prediction_is_fitted(sleep):
    np.testing.assert_allclose(sleep.predict(), sleep.fitted())
    d = load_dataset("sleepstudy")
    np.testing.assert_allclose(sleep.predict(d.drop(columns="Reaction")), sleep.fitted(), rtol=1e-12)


def test_re_form_subset(sleep):
    nd = pd.DataFrame({"Days": [4.0], "Subject": ["309"]})
    b = sleep.ranef["Subject"].loc["309"]
    base = predict(sleep, nd, re_form="~0").iloc[0]
    assert predict(sleep, nd, re_form="~(1 | Subject)").iloc[0] == pytest.approx(base + b["(Intercept)"])
    assert predict(sleep, nd, re_form="~(0 + Days | Subject)").iloc[0] == pytest.approx(base + 4 * b["Days"])
    assert predict(sleep, nd).iloc[0] == pytest.approx(base + b["(Intercept)"] + 4 * b["Days"])
    with pytest.raises(ValueError, match="not in the model"):
        predict(sleep, nd, re_form="~(1 | Batch)")


def test_new_levels(sleep):
    nd = pd.DataFrame({"Days": [1, 1, 1, 1, 1, 1, 1], "Subject": ["308", "a", "b", "c", "d", "e", "f"]})
    with pytest.raises(DataError) as err:
        predict(sleep, nd)
    msg = str(err.value)
    assert "'Subject'" in msg and "'a'" in msg and "'e'" in msg and "'f'" not in msg
    assert "allow_new_levels=True" in msg
    p = predict(sleep, nd, allow_new_levels=True)
    pop = predict(sleep, nd, re_form="~0")
    np.testing.assert_allclose(p.iloc[1:], pop.iloc[1:])
    assert p.iloc[0] != pytest.approx(pop.iloc[0])


def test_missing_column_is_named(sleep):
    with pytest.raises(DataError, match="'Days'"):
        predict(sleep, pd.DataFrame({"Subject": ["308"]}))
    with pytest.raises(DataError, match="'Subject'"):
        predict(sleep, pd.DataFrame({"Days": [1]}))
    # with no random effects the grouping factor is not needed
    assert len(predict(sleep, pd.DataFrame({"Days": [1]}), re_form="~0")) == 1


def test_se_fit_and_intervals(sleep):
    se = LME4["sleepstudy_reml"]["se"]
    nd = pd.DataFrame({"Days": [0], "Subject": ["308"]})
    out = predict(sleep, nd, se_fit=True)
    assert out["se_fit"].iloc[0] == pytest.approx(se["(Intercept)"], rel=1e-6)
    ci = predict(sleep, nd, interval="confidence")
    assert ci["upper"].iloc[0] - ci["lower"].iloc[0] == pytest.approx(2 * 1.959964 * se["(Intercept)"], rel=1e-5)
    pi = predict(sleep, nd, interval="prediction", n_sims=2000, seed=1)
    # includes residual noise (σ ≈ 25.6) and the subject's conditional uncertainty
    width = pi["upper"].iloc[0] - pi["lower"].iloc[0]
    sigma = LME4["sleepstudy_reml"]["sigma"]
    assert 2 * 1.96 * sigma < width < 2 * 1.96 * 1.6 * sigma
    pi2 = predict(sleep, nd, interval="prediction", n_sims=2000, seed=1)
    pd.testing.assert_frame_equal(pi, pi2)


def test_simulate(sleep):
    sims = simulate(sleep, n=200, seed=1)
    assert sims.shape == (180, 200)
    pd.testing.assert_frame_equal(sims, simulate(sleep, n=200, seed=1))
    r = LME4["sleepstudy_reml"]
    # marginal variance of a day-0 observation: σ_b0² + σ²
    day0 = (load_dataset("sleepstudy")["Days"] == 0).to_numpy()
    v = r["varcorr"][0]["vcov"] + r["sigma"] ** 2
    assert sims[day0].to_numpy().var() == pytest.approx(v, rel=0.15)
    assert sims.to_numpy().mean() == pytest.approx(r["fixef"]["(Intercept)"] + 4.5 * r["fixef"]["Days"], rel=0.02)
    cond = simulate(sleep, n=50, seed=2, use_u=True)
    assert np.abs(cond.mean(axis=1).to_numpy() - sleep.fitted()).mean() < 10


def test_glmm_predict_response_scale():
    d = load_dataset("cbpp")
    m = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial")
    nd = d.head(4)
    eta = predict(m, nd)
    mu = predict(m, nd, type="response")
    np.testing.assert_allclose(mu, 1 / (1 + np.exp(-eta)))
    sims = simulate(m, n=3, seed=1)
    assert ((sims >= 0) & (sims <= 1)).all().all()


# --- GLMMs: standard errors and prediction intervals (they used the LMM's crossproducts) -------

CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp_fit():
    return mm.glmer(CBPP_FORMULA, load_dataset("cbpp"), family="binomial")


@pytest.fixture(scope="module")
def poisson_fit():
    return mm.glmer("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", load_dataset("grouseticks"),
                    family="poisson")


@pytest.mark.parametrize("which", ["cbpp_fit", "poisson_fit"])
def test_glmm_se_fit(which, request):
    m = request.getfixturevalue(which)
    nd = m.design.frame.head(6)
    out = predict(m, nd, se_fit=True)
    X = m.design.X[:6]
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, m.vcov.to_numpy(), X))
    np.testing.assert_allclose(out["se_fit"], se, rtol=1e-12)
    np.testing.assert_allclose(out["fit"], m.linear_predictor()[:6], rtol=1e-10)
    # the response scale: the delta method, and the confidence limits mapped through the link
    resp = predict(m, nd, se_fit=True, interval="confidence", type="response")
    np.testing.assert_allclose(resp["se_fit"], se * m.family.link.mu_eta(out["fit"].to_numpy()), rtol=1e-12)
    assert (resp["lower"] < resp["fit"]).all() and (resp["fit"] < resp["upper"]).all()


@pytest.mark.parametrize("which", ["cbpp_fit", "poisson_fit"])
def test_glmm_prediction_interval(which, request):
    m = request.getfixturevalue(which)
    nd = m.design.frame.head(6)
    pi = predict(m, nd, interval="prediction", n_sims=500, seed=4)
    assert list(pi.columns) == ["fit", "lower", "upper"]
    assert (pi["lower"] < pi["fit"]).all() and (pi["fit"] < pi["upper"]).all()
    pd.testing.assert_frame_equal(pi, predict(m, nd, interval="prediction", n_sims=500, seed=4))
    # wider than the fixed effects' confidence interval: the random effects' conditional spread
    ci = predict(m, nd, interval="confidence")
    assert ((pi["upper"] - pi["lower"]) > (ci["upper"] - ci["lower"])).all()
    resp = predict(m, nd, interval="prediction", n_sims=500, seed=4, type="response")
    assert (resp["lower"] > 0).all()
    if m.family.accepts_trials:
        assert (resp["upper"] < 1).all()


def test_glmm_prediction_interval_new_levels(cbpp_fit):
    nd = pd.DataFrame({"period": ["1", "4"], "herd": ["1", "new herd"]})
    pi = predict(cbpp_fit, nd, interval="prediction", allow_new_levels=True, n_sims=2000, seed=1)
    # a new herd draws its effect from N(0, σ_herd²), wider than herd 1's conditional spread
    width = (pi["upper"] - pi["lower"]).to_numpy()
    sd_herd = np.sqrt(cbpp_fit.term_covariances()[0][0, 0])
    condsd = cbpp_fit.ranef_table()["condsd"].iloc[0]
    assert sd_herd > condsd
    assert width[1] > 2 * 1.96 * sd_herd * 0.9


# --- simulate: the family draws the responses ---------------------------------------------------

def test_simulate_weighted_lmm_residual_sd_is_sigma_over_root_w():
    d = load_dataset("sleepstudy")
    w = 1.0 + (d["Days"].to_numpy() % 3)
    m = lmer("Reaction ~ Days + (Days | Subject)", d, weights=w)
    sims = simulate(m, n=4, seed=11, use_u=True)          # conditional on b: only the residual is drawn
    z = np.random.default_rng(11).standard_normal((m.nobs, 4))
    np.testing.assert_allclose(sims.to_numpy() - m.fitted().to_numpy()[:, None], z * (m.sigma / np.sqrt(w))[:, None],
                               rtol=1e-10, atol=1e-10)


def test_simulate_glmm_binomial_trials_and_poisson_counts(cbpp_fit, poisson_fit):
    sims = simulate(cbpp_fit, n=20, seed=2)
    size = cbpp_fit.trials
    k = sims.to_numpy() * size[:, None]
    np.testing.assert_allclose(k, np.rint(k), atol=1e-9)         # proportions of whole successes
    assert ((sims >= 0) & (sims <= 1)).all().all()
    counts = simulate(poisson_fit, n=5, seed=3, use_u=True).to_numpy()
    assert (counts >= 0).all() and np.array_equal(counts, np.rint(counts))
    # use_u: the means are the fitted ones
    big = simulate(poisson_fit, n=400, seed=3, use_u=True).to_numpy().mean(axis=1)
    mu = poisson_fit.fitted(type="response")
    assert np.abs(big - mu).max() < 6 * np.sqrt(mu.max() / 400)


def test_simulate_gamma_glmm_uses_the_family():
    """Families other than gaussian/binomial/Poisson simulate too (a Gamma GLMM)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mm.glmer("Reaction ~ Days + (1 | Subject)", load_dataset("sleepstudy"), family=mm.Gamma("log"))
    sims = simulate(m, n=200, seed=5, use_u=True).to_numpy()
    assert (sims > 0).all()
    mu = m.fitted(type="response")
    # Gamma with dispersion σ²: sd = σ μ
    np.testing.assert_allclose(sims.std(axis=1).mean() / (m.sigma * mu).mean(), 1.0, atol=0.1)


def test_re_form_with_a_double_bar_factor_term_includes_every_indicator():
    # lme4 expands (Machine || Worker) to (1 | Worker) + (0 + Machine | Worker): re_form must name
    # the same columns, MachineA included (tests/reference/Machines.csv, from nlme)
    machines = pd.read_csv(Path(__file__).resolve().parent / "reference" / "Machines.csv")
    m = lmer("score ~ Machine + (Machine || Worker)", machines)
    np.testing.assert_allclose(m.predict(machines, re_form="~(Machine || Worker)"), m.fitted(), rtol=1e-12)
    written_out = m.predict(machines, re_form="~(1 | Worker) + (0 + Machine | Worker)")
    np.testing.assert_allclose(written_out, m.fitted(), rtol=1e-12)


def test_predict_takes_polars_pyarrow_and_dicts_as_the_fit_does():
    """newdata in any frame the fit accepts (issue 18): the same predictions as the pandas frame."""
    pl = pytest.importorskip("polars")
    pa = pytest.importorskip("pyarrow")
    d = mm.load_dataset("sleepstudy")
    m = mm.lmer("Reaction ~ Days + (Days | Subject)", d)
    rows = d.iloc[[0, 11, 25]].reset_index(drop=True)
    want = m.predict(rows).to_numpy()
    for frame in (pl.from_pandas(rows), pa.Table.from_pandas(rows),
                  {"Days": rows["Days"].to_numpy(), "Subject": rows["Subject"].astype(str).to_numpy()}):
        np.testing.assert_allclose(m.predict(frame).to_numpy(), want, rtol=1e-12)
