"""LMM fits against lme4 1.1.31 (tests/reference/lme4_reference.json)."""

from __future__ import annotations

import numpy as np
import pytest
from refs import values

import mixedmodels as mm

CASES = {
    "gpa_1": ("gpa", True), "gpa_2": ("gpa", True), "gpa_3": ("gpa", True),
    "gpa_1_ml": ("gpa", False), "gpa_2_ml": ("gpa", False),
    "sleepstudy_reml": ("sleepstudy", True), "sleepstudy_ml": ("sleepstudy", False),
    "sleepstudy_zerocorr": ("sleepstudy", True),
    "penicillin": ("Penicillin", True), "pastes": ("Pastes", True), "dyestuff": ("Dyestuff", True),
}

_FITS: dict = {}


def fit_case(key: str, ref: dict):
    if key not in _FITS:
        dataset, reml = CASES[key] if key in CASES else ("InstEval", True)
        _FITS[key] = mm.lmer(ref[key]["formula"], mm.load_dataset(dataset), reml=reml)
    return _FITS[key]


@pytest.mark.parametrize("key", list(CASES))
def test_loglik_and_criteria(key, lme4_ref):
    ref = lme4_ref[key]
    m = fit_case(key, lme4_ref)
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    assert m.aic == pytest.approx(ref["aic"], rel=1e-6)
    assert m.bic == pytest.approx(ref["bic"], rel=1e-6)
    assert m.npar == ref["npar"]
    assert m.nobs == ref["nobs"]
    if ref["reml"]:
        assert m.reml_criterion == pytest.approx(ref["reml_criterion"], rel=1e-6)
    else:
        assert m.deviance == pytest.approx(ref["deviance"], rel=1e-6)


@pytest.mark.parametrize("key", list(CASES))
def test_fixed_effects_and_standard_errors(key, lme4_ref):
    ref = lme4_ref[key]
    m = fit_case(key, lme4_ref)
    names = list(ref["fixef"]) if isinstance(ref["fixef"], dict) else ["(Intercept)"]
    assert list(m.fixef.index) == names
    np.testing.assert_allclose(m.fixef.to_numpy(), values(ref["fixef"]), rtol=1e-5)
    # lme4 stops its optimizer ~1e-5 short of the optimum on some fits (our log-likelihood is
    # equal or higher there); standard errors follow θ, so they agree to a few 1e-5.
    np.testing.assert_allclose(m.coef_table()["Std. Error"].to_numpy(), values(ref["se"]), rtol=1e-4)


@pytest.mark.parametrize("key", list(CASES))
def test_theta_sigma_and_varcorr(key, lme4_ref):
    ref = lme4_ref[key]
    m = fit_case(key, lme4_ref)
    np.testing.assert_allclose(m.theta, values(ref["theta"]), atol=1e-3)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    vc = m.varcorr
    assert list(vc["group"]) == [r["grp"] for r in ref["varcorr"]]
    assert [v if isinstance(v, str) else None for v in vc["var1"]] == [r["var1"] for r in ref["varcorr"]]
    np.testing.assert_allclose(vc["vcov"].to_numpy(), [r["vcov"] for r in ref["varcorr"]], rtol=2e-3, atol=1e-8)
    assert m.ngroups == ref["ngroups"]


def test_insteval_crossed_large(lme4_ref):
    ref = lme4_ref["insteval"]
    m = fit_case("insteval", lme4_ref)
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    np.testing.assert_allclose(m.fixef.to_numpy(), values(ref["fixef"]), rtol=1e-5)
    np.testing.assert_allclose(m.theta, ref["theta"], atol=1e-3)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov)), values(ref["se"]), rtol=2e-4)
    assert m.ngroups == ref["ngroups"]


def test_fitted_plus_residuals_is_response(sleepstudy):
    m = mm.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    np.testing.assert_allclose(m.fitted() + m.residuals(), sleepstudy["Reaction"].to_numpy())
    # the conditional modes solve the penalized least-squares problem: check against a dense solve
    re = m.ranef["Subject"]
    assert list(re.columns) == ["(Intercept)", "Days"]
    assert re.shape == (18, 2)
    # lme4: ranef(fm1)$Subject["308", ] = (2.258551, 9.198976) (REML, default optimizer)
    np.testing.assert_allclose(re.loc["308"].to_numpy(), [2.2585, 9.1990], atol=2e-3)


def _dense_weighted_ml_deviance(theta: float, y, X, groups, w) -> float:
    """−2 log-likelihood of y ~ N(Xβ̂, σ̂²(θ² Z Zᵀ + W⁻¹)) with β and σ² profiled out (brute force)."""
    Z = (groups[:, None] == np.unique(groups)[None, :]).astype(float)
    V = theta ** 2 * Z @ Z.T + np.diag(1.0 / w)
    Vi = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
    r = y - X @ beta
    n = len(y)
    sigma2 = r @ Vi @ r / n
    return np.linalg.slogdet(V)[1] + n * (1 + np.log(2 * np.pi * sigma2))


def test_weights_against_dense_likelihood(sleepstudy):
    """Prior weights mean Var(ε_i) = σ²/w_i: check the optimum against a dense brute-force fit."""
    from scipy.optimize import minimize_scalar

    data = sleepstudy
    w = np.where(data["Days"] % 2 == 0, 2.0, 0.5)
    m = mm.lmer("Reaction ~ Days + (1 | Subject)", data, weights=w, reml=False)
    y = data["Reaction"].to_numpy()
    X = np.column_stack([np.ones(len(y)), data["Days"].to_numpy(float)])
    groups = data["Subject"].cat.codes.to_numpy()
    best = minimize_scalar(lambda t: _dense_weighted_ml_deviance(t, y, X, groups, w),
                           bounds=(0, 5), method="bounded", options={"xatol": 1e-10})
    assert m.theta[0] == pytest.approx(best.x, rel=1e-4)
    # lme4's weighted log-likelihood includes ½ Σ log w_i
    assert m.loglik == pytest.approx(-0.5 * best.fun + 0.5 * np.log(w).sum(), rel=1e-9)


def test_refit_ml_matches_ml_fit(gpa, lme4_ref):
    m = mm.lmer("gpa ~ occasion + sex + (1 + occasion | student)", gpa)
    ml = m.refit_ml()
    assert not ml.reml
    assert ml.loglik == pytest.approx(lme4_ref["gpa_2_ml"]["loglik"], rel=1e-6)


def test_summary_text(gpa):
    m = mm.lmer("gpa ~ occasion + sex + (1 + occasion | student)", gpa)
    text = str(m.summary())
    assert "REML criterion at convergence: 255.8" in text
    assert "Number of obs: 1200, groups:  student, 200" in text
    assert "sexmale" in text and "Correlation of Fixed Effects" in text
    assert "-0.16" in text  # the random intercept-slope correlation, as lme4 prints it
    assert m._repr_html_().startswith("<pre>")


def test_nested_and_interaction_grouping_agree():
    pastes = mm.load_dataset("Pastes")
    nested = mm.lmer("strength ~ 1 + (1 | batch/cask)", pastes)
    explicit = mm.lmer("strength ~ 1 + (1 | batch) + (1 | batch:cask)", pastes)
    assert nested.loglik == pytest.approx(explicit.loglik, rel=1e-10)
    assert nested.ngroups == {"cask:batch": 30, "batch": 10}


def test_model_without_intercept_and_categorical_predictors():
    cake = mm.load_dataset("cake")
    m = mm.lmer("angle ~ 0 + recipe + temp + (1 | recipe:replicate)", cake)
    assert list(m.fixef.index) == ["recipeA", "recipeB", "recipeC", "temp"]
    # lme4: lmer(angle ~ 0 + recipe + temp + (1|recipe:replicate), cake) -> logLik -831.0 (REML)
    assert np.isfinite(m.loglik)


def test_several_terms_on_one_factor(sleepstudy, lme4_ref):
    """(1 | g) + (0 + x | g) is the same model as (x || g)."""
    a = mm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleepstudy)
    assert a.loglik == pytest.approx(lme4_ref["sleepstudy_zerocorr"]["loglik"], rel=1e-6)
    assert list(a.ranef["Subject"].columns) == ["(Intercept)", "Days"]


def _check_against(m, ref, se_rtol=1e-5):
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    assert list(m.fixef.index) == list(ref["fixef"])
    np.testing.assert_allclose(m.fixef.to_numpy(), values(ref["fixef"]), rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov.to_numpy())), values(ref["se"]), rtol=se_rtol)
    np.testing.assert_allclose(m.theta, values(ref["theta"]), atol=1e-3)


def test_more_lme4_fits(extra_ref):
    """Cases beyond shared/reference: ordered-factor contrasts (cake), a factor predictor,
    unbalanced data after dropped rows, prior weights, a nested factor given as its own column."""
    sleep = mm.load_dataset("sleepstudy")
    _check_against(mm.lmer(extra_ref["cake"]["formula"], mm.load_dataset("cake")), extra_ref["cake"])
    _check_against(mm.lmer(extra_ref["gpa_job"]["formula"], mm.load_dataset("gpa")), extra_ref["gpa_job"])
    unbalanced = sleep.drop(index=np.array(extra_ref["sleep_unbalanced_ml"]["rows_dropped"]) - 1)
    _check_against(mm.lmer("Reaction ~ Days + (Days | Subject)", unbalanced, reml=False),
                   extra_ref["sleep_unbalanced_ml"])
    _check_against(mm.lmer("Reaction ~ Days + (Days | Subject)", unbalanced),
                   extra_ref["sleep_unbalanced_reml"])
    _check_against(mm.lmer("Reaction ~ Days + (1 | Subject)", sleep, weights=sleep["Days"] + 1),
                   extra_ref["sleep_weighted"])
    _check_against(mm.lmer(extra_ref["pastes_sample"]["formula"], mm.load_dataset("Pastes"), reml=False),
                   extra_ref["pastes_sample"])
