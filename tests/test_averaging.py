"""Model averaging: Akaike weights and averaged coefficients from lme4's ML fits (gpa)."""

from __future__ import annotations

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.exceptions import ModelComparisonWarning
from mixedmodels.postestimation.averaging import model_average, predict_newdata

F1 = "gpa ~ occasion + (1 + occasion | student)"
F2 = "gpa ~ occasion + sex + (1 + occasion | student)"


@pytest.fixture(scope="module")
def avg(gpa):
    return model_average({"gpa_1": mm.lmer(F1, gpa), "gpa_2": mm.lmer(F2, gpa)})


def _r_weights(lme4_ref) -> np.ndarray:
    aicc = []
    for key in ("gpa_1_ml", "gpa_2_ml"):
        r = lme4_ref[key]
        k, n = r["npar"], r["nobs"]
        aicc.append(-2 * r["loglik"] + 2 * k + 2 * k * (k + 1) / (n - k - 1))
    rel = np.exp(-0.5 * (np.array(aicc) - min(aicc)))
    return rel / rel.sum()


def test_weights_from_ml_refits(avg, lme4_ref):
    """REML fits with different fixed effects are refit by ML, as the comparison needs."""
    w = _r_weights(lme4_ref)
    np.testing.assert_allclose(avg.weights[["gpa_1", "gpa_2"]].to_numpy(), w, rtol=1e-5)
    assert not any(m.reml for m in avg.models.values())
    assert avg.criterion == "AICc"


def test_full_and_conditional_averages(avg, lme4_ref):
    """MuMIn's formulas on lme4's ML estimates and standard errors."""
    w = _r_weights(lme4_ref)
    r1, r2 = lme4_ref["gpa_1_ml"], lme4_ref["gpa_2_ml"]
    coef = avg.coefficients
    # sexmale only in gpa_2: full average shrinks it by gpa_2's weight, conditional does not
    b, se = r2["fixef"]["sexmale"], r2["se"]["sexmale"]
    assert coef.loc["sexmale", "full"] == pytest.approx(w[1] * b, rel=1e-4)
    assert coef.loc["sexmale", "conditional"] == pytest.approx(b, rel=1e-4)
    assert coef.loc["sexmale", "se_conditional"] == pytest.approx(se, rel=1e-3)
    full = w[1] * b
    se_full = np.sqrt(w[1] * (se ** 2 + (b - full) ** 2) + w[0] * (0 + full ** 2))
    assert coef.loc["sexmale", "se_full"] == pytest.approx(se_full, rel=1e-3)
    assert coef.loc["sexmale", "importance"] == pytest.approx(w[1], rel=1e-5)
    # the intercept is in both models
    est = np.array([r1["fixef"]["(Intercept)"], r2["fixef"]["(Intercept)"]])
    ses = np.array([r1["se"]["(Intercept)"], r2["se"]["(Intercept)"]])
    mean = w @ est
    assert coef.loc["(Intercept)", "full"] == pytest.approx(mean, rel=1e-5)
    assert coef.loc["(Intercept)", "conditional"] == pytest.approx(mean, rel=1e-5)
    assert coef.loc["(Intercept)", "se_full"] == pytest.approx(
        np.sqrt(w @ (ses ** 2 + (est - mean) ** 2)), rel=1e-3)
    assert coef.loc["(Intercept)", "n_models"] == 2


def test_predictions_are_weighted(avg, gpa):
    new = gpa.iloc[:12].drop(columns=["gpa"])
    parts = {k: predict_newdata(m, new) for k, m in avg.models.items()}
    expected = sum(avg.weights[k] * p for k, p in parts.items())
    np.testing.assert_allclose(avg.predict(new), expected, rtol=1e-12)
    # in-sample: the same as the weighted fitted values
    fitted = sum(avg.weights[k] * m.fitted() for k, m in avg.models.items())
    np.testing.assert_allclose(avg.predict(), fitted, rtol=1e-12)
    np.testing.assert_allclose(avg.predict(gpa), fitted, rtol=1e-10)


def test_new_levels_get_population_prediction(avg, gpa):
    new = gpa.iloc[:4].drop(columns=["gpa"]).copy()
    new["student"] = "never-seen"
    np.testing.assert_allclose(avg.predict(new), avg.predict(new, re_form="fixed"), rtol=1e-12)


def test_dominant_model_warns(sleepstudy):
    fits = {"slopes": mm.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy),
            "intercepts": mm.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)}
    with pytest.warns(ModelComparisonWarning, match="practically all the weight"):
        res = model_average(fits, criterion="AIC")
    assert res.weights["slopes"] > 0.999
    # same fixed effects: REML fits are kept (REML comparisons of random effects are valid)
    assert all(m.reml for m in res.models.values())
