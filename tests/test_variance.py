"""R², ICC and R²β against R (performance 'r2_nakagawa'/'icc' in more_reference.json; lme4 fits)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from refs import TMB

import mixedmodels as mm
from mixedmodels.exceptions import MixedModelsWarning, SingularFitWarning
from mixedmodels.postestimation.variance import icc, r2, r2_beta, variance_components

FORMULAS = ["Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"]


@pytest.fixture(scope="module")
def sleep_fits(sleepstudy):
    return {f: mm.lmer(f, sleepstudy) for f in FORMULAS}


@pytest.mark.parametrize("formula", FORMULAS)
def test_r2_matches_performance(formula, sleep_fits, more_ref):
    ref = more_ref["r2_icc"][formula]
    out = r2(sleep_fits[formula])
    assert out["marginal"] == pytest.approx(ref["r2_marginal"], abs=1e-4)
    assert out["conditional"] == pytest.approx(ref["r2_conditional"], abs=1e-4)


@pytest.mark.parametrize("formula", FORMULAS)
def test_icc_matches_performance(formula, sleep_fits, more_ref):
    ref = more_ref["r2_icc"][formula]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedModelsWarning)
        out = icc(sleep_fits[formula])
    assert out["adjusted"] == pytest.approx(ref["icc_adjusted"], abs=1e-4)
    assert out["unadjusted"] == pytest.approx(ref["icc_unadjusted"], abs=1e-4)


def test_icc_warns_with_random_slopes(sleep_fits):
    with pytest.warns(MixedModelsWarning, match="random slopes"):
        out = icc(sleep_fits[FORMULAS[1]])
    assert out.note and "random slopes" in out.note
    with warnings.catch_warnings():
        warnings.simplefilter("error", MixedModelsWarning)
        assert icc(sleep_fits[FORMULAS[0]]).note is None


def test_components_are_lme4s(sleep_fits, lme4_ref):
    """Johnson's mean random-effect variance from lme4's own variance components."""
    ref = lme4_ref["sleepstudy_reml"]
    comp = variance_components(sleep_fits[FORMULAS[1]])
    vc = {(r["var1"], r["var2"]): r["vcov"] for r in ref["varcorr"] if r["grp"] == "Subject"}
    days = np.tile(np.arange(10.0), 18)
    expected = np.mean(vc[("(Intercept)", None)] + 2 * days * vc[("(Intercept)", "Days")]
                       + days ** 2 * vc[("Days", None)])
    assert comp["var_random"] == pytest.approx(expected, rel=1e-5)
    assert comp["var_residual"] == pytest.approx(ref["sigma"] ** 2, rel=1e-5)
    beta = ref["fixef"]
    assert comp["var_fixed"] == pytest.approx(np.var(beta["Days"] * days, ddof=1), rel=1e-5)


def test_singular_fit_gives_result_with_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        m = mm.lmer("Yield ~ 1 + (1 | Batch)", mm.load_dataset("Dyestuff2"))
    with pytest.warns(SingularFitWarning):
        out = r2(m)
    assert out["marginal"] == pytest.approx(0.0, abs=1e-12)  # intercept-only fixed part
    assert np.isfinite(out["conditional"]) and out.note


def test_slopes_not_in_fixed_effects_warn(sleepstudy):
    m = mm.lmer("Reaction ~ 1 + (Days | Subject)", sleepstudy)
    with pytest.warns(MixedModelsWarning, match="not fixed effects"):
        out = r2(m)
    # as insight: the slope's variance is left out, only the intercept variance counts
    comp = out.components
    assert comp["var_random"] == pytest.approx(m.term_covariances()[0][0, 0], rel=1e-10)


@pytest.mark.parametrize("formula", FORMULAS)
def test_r2_beta_nsj_is_marginal_r2(formula, sleep_fits, more_ref):
    """r2glmm's 'nsj' model R²β equals Nakagawa's marginal R² (r2glmm README)."""
    table = r2_beta(sleep_fits[formula], method="nsj")
    assert table.loc["Model", "Rsq"] == pytest.approx(more_ref["r2_icc"][formula]["r2_marginal"], abs=1e-4)
    assert table.loc["Model", "v2"] == 179


def test_r2_beta_sgv_dense_check(sleep_fits):
    """SGV from the determinant lemma equals the dense per-subject determinants."""
    m = sleep_fits[FORMULAS[1]]
    s2 = m.sigma ** 2
    cov = m.term_covariances()[0]
    Z = np.column_stack([np.ones(10), np.arange(10.0)])
    V = Z @ cov @ Z.T + s2 * np.eye(10)
    sgv = np.exp(np.linalg.slogdet(V)[1] / 10)
    X = m.design.X
    beta = m.fixef.to_numpy()
    F = beta[1] ** 2 / (sgv * np.linalg.inv(X.T @ X)[1, 1])
    ddf = 10 * (18 - 10 - 1 + 1) + 9 * 8 / 2  # r2glmm: mobs(m+1) + (mobs-1)(mobs-2)/2
    table = r2_beta(m)
    assert table.loc["Model", "v2"] == ddf
    assert table.loc["Model", "F"] == pytest.approx(F, rel=1e-8)
    assert table.loc["Model", "Rsq"] == pytest.approx(F / ddf / (1 + F / ddf), rel=1e-8)
    assert table.loc["Model", "lower.CL"] < table.loc["Model", "Rsq"] < table.loc["Model", "upper.CL"]


def test_r2_beta_partial_terms(gpa):
    m = mm.lmer("gpa ~ occasion + sex + (1 + occasion | student)", gpa)
    table = r2_beta(m)
    assert set(table.index) == {"Model", "occasion", "sex"}
    assert table["Rsq"].is_monotonic_decreasing
    assert (table["v1"] == pd.Series({"Model": 2.0, "occasion": 1.0, "sex": 1.0})[table.index]).all()


# --- GLMMs ---------------------------------------------------------------------------------------------

def _expected_from_lme4(ref: dict, X: np.ndarray, dist_var: float) -> tuple[float, float]:
    beta = np.array(list(ref["fixef"].values()))
    vf = np.var(X @ beta, ddof=1)
    vr = sum(r["vcov"] for r in ref["varcorr"] if r["var2"] is None)
    total = vf + vr + dist_var
    return vf / total, (vf + vr) / total


def test_binomial_glmm_r2_and_icc(lme4_ref):
    # at the exact Laplace optimum (glmmTMB's estimates): lme4 stops short of it on cbpp, by
    # 1e-3 SE in β, which moves R² by ~5e-4 relative
    tmb = TMB["cbpp_laplace"]
    ref = {"fixef": dict(enumerate(tmb["beta"])),
           "varcorr": [{"vcov": tmb["sd"] ** 2, "var2": None}]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mm.glmer(lme4_ref["cbpp_laplace"]["formula"], mm.load_dataset("cbpp"), family="binomial")
    out = r2(m)
    marg, cond = _expected_from_lme4(ref, m.design.X, np.pi ** 2 / 3)
    assert out["marginal"] == pytest.approx(marg, abs=1e-4)
    assert out["conditional"] == pytest.approx(cond, abs=1e-4)
    with pytest.warns(MixedModelsWarning, match="latent"):
        ic = icc(m)
    vr = ref["varcorr"][0]["vcov"]
    assert ic["adjusted"] == pytest.approx(vr / (vr + np.pi ** 2 / 3), abs=1e-4)
    # performance >= 0.12 divides the logit variance by the mean number of trials of cbind()
    size = mm.load_dataset("cbpp")["size"].mean()
    cur = r2(m, convention="current")
    marg2, _ = _expected_from_lme4(ref, m.design.X, np.pi ** 2 / 3 / size)
    assert cur["marginal"] == pytest.approx(marg2, abs=1e-4)


def test_poisson_glmm_r2_components(lme4_ref):
    ref = lme4_ref["grouseticks"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mm.glmer(ref["formula"], mm.load_dataset("grouseticks"), family="poisson")
        null = mm.glmer("TICKS ~ 1 + (1 | BROOD) + (1 | LOCATION)", mm.load_dataset("grouseticks"),
                          family="poisson")
        comp = variance_components(m, null_model=null)
        out = r2(m, null_model=null)
    beta = np.array(list(ref["fixef"].values()))
    assert comp["var_fixed"] == pytest.approx(np.var(m.design.X @ beta, ddof=1), rel=1e-4)
    assert comp["var_random"] == pytest.approx(sum(r["vcov"] for r in ref["varcorr"]), rel=1e-3)
    # lognormal approximation: log(1 + 1/λ), λ = exp(β₀ of the null model)
    lam = np.exp(null.fixef.iloc[0])
    assert comp["var_distribution"] == pytest.approx(np.log1p(1 / lam), rel=1e-10)
    total = comp["var_fixed"] + comp["var_random"] + comp["var_residual"]
    assert out["marginal"] == pytest.approx(comp["var_fixed"] / total)


def test_glmm_r2_and_icc_against_performance(extra_ref):
    """performance 0.10.2 (the version beside lme4 1.1-31): binomial logit and Poisson log."""
    cbpp = mm.load_dataset("cbpp")
    m = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    ref = extra_ref["cbpp_r2"]
    got = r2(m)
    # performance's values are at lme4's estimates, which stop short of the exact Laplace optimum
    # on cbpp (β 1e-3 SE, θ 3e-4 relative away; see tests/test_small_binary.py): R² moves 6e-4
    assert got["marginal"] == pytest.approx(ref["r2_marginal"], rel=1e-3)
    assert got["conditional"] == pytest.approx(ref["r2_conditional"], rel=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedModelsWarning)
        ic = icc(m)
    assert ic["adjusted"] == pytest.approx(ref["icc_adjusted"], rel=1e-3)
    assert ic["unadjusted"] == pytest.approx(ref["icc_unadjusted"], rel=1e-3)
    ref = extra_ref["grouse_r2"]
    g = mm.glmer(ref["formula"], mm.load_dataset("grouseticks"), family="poisson")
    with pytest.warns(MixedModelsWarning, match="mean count is 1.7"):  # performance warns too
        got = r2(g)
    # performance's null model is lme4's, which stops 3.8e-3 in logLik short of the optimum
    # (glmmTMB's, which ours matches: tests/test_glmm.py); its intercept moves R² by 5e-4
    assert got["marginal"] == pytest.approx(ref["r2_marginal"], rel=1e-3)
    assert got["conditional"] == pytest.approx(ref["r2_conditional"], rel=1e-3)
