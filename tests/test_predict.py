"""Prediction and simulation."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixedmodels.presentation.datasets import load_dataset
from mixedmodels.exceptions import DataError
from mixedmodels.models.lmm import lmer
from mixedmodels.postestimation.predict import predict, simulate

REF = Path(__file__).resolve().parent / "reference"
LME4 = json.loads((REF / "lme4_reference.json").read_text())


@pytest.fixture(scope="module")
def sleep():
    return lmer("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))


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
    glmm = pytest.importorskip("mixedmodels.models.glmm")
    d = load_dataset("cbpp")
    m = glmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial")
    nd = d.head(4)
    eta = predict(m, nd)
    mu = predict(m, nd, type="response")
    np.testing.assert_allclose(mu, 1 / (1 + np.exp(-eta)))
    sims = simulate(m, n=3, seed=1)
    assert ((sims >= 0) & (sims <= 1)).all().all()
