"""Inference against R: lmerTest (Satterthwaite), pbkrtest (Kenward-Roger), lme4 (profile CIs)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.presentation.datasets import load_dataset
from mixedmodels.postestimation.inference import (bootstrap, bootstrap_lrt, coef_table_ddf, confint, contrast,
                                   kenward_roger, ranef_table, satterthwaite_df)
from mixedmodels.models.lmm import lmer

REF = Path(__file__).resolve().parent / "reference"
LME4 = json.loads((REF / "lme4_reference.json").read_text())
MORE = json.loads((REF / "more_reference.json").read_text())


def _values(x):
    return np.array(list(x.values()) if isinstance(x, dict) else x, dtype=float)


@pytest.fixture(scope="module")
def sleep():
    return lmer("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))


def test_satterthwaite_sleepstudy(sleep):
    ref = MORE["ddf"]["satterthwaite"]
    tab = sleep.coef_table(ddf="satterthwaite")
    assert list(tab.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    np.testing.assert_allclose(tab["df"], _values(ref["df"]), atol=1e-4)
    np.testing.assert_allclose(tab["Pr(>|t|)"], _values(ref["p"]), rtol=1e-4)


@pytest.mark.parametrize("key", ["gpa_2", "gpa_1_ml", "gpa_3", "sleepstudy_ml", "sleepstudy_zerocorr",
                                 "pastes", "dyestuff"])
def test_satterthwaite_other_models(key):
    r = LME4[key]
    m = lmer(r["formula"], load_dataset(r["data"].removesuffix(".csv")), reml=r["reml"])
    df = satterthwaite_df(m).to_numpy()
    np.testing.assert_allclose(df, _values(r["satterthwaite_df"]), rtol=1e-5, atol=1e-4)
    tab = coef_table_ddf(m, "satterthwaite")
    np.testing.assert_allclose(tab["Pr(>|t|)"], _values(r["p_satterthwaite"]), rtol=1e-3)


def test_satterthwaite_restores_model_state(sleep):
    theta, beta = sleep.theta, sleep.fixef.to_numpy()
    sleep._satt_cache = None
    satterthwaite_df(sleep)
    np.testing.assert_array_equal(sleep.theta, theta)
    np.testing.assert_allclose(sleep.factor.solve()[0], beta, rtol=1e-12)


def test_kenward_roger_sleepstudy(sleep):
    ref = MORE["ddf"]["kenward_roger"]
    tab = sleep.coef_table(ddf="kenward-roger")
    np.testing.assert_allclose(tab["df"], _values(ref["df"]), atol=1e-4)
    np.testing.assert_allclose(tab["Std. Error"], _values(ref["se"]), rtol=1e-6)


def _kr_dense(model):
    """pbkrtest's formulas with explicit n × n matrices (independent of the q-space path)."""
    from mixedmodels.postestimation.inference import _KRInfo, _weighted_parts

    Z, X = _weighted_parts(model)
    Z = Z.toarray()
    n = Z.shape[0]
    Gs, offset = [], 0
    for term, cov in zip(model.design.terms, model._term_covariances()):
        l, m = term.ncols, term.nlevels
        Zi = Z[:, offset:offset + m * l]
        for b in range(l):
            for a in range(b, l):
                E = np.zeros((l, l))
                E[a, b] = E[b, a] = 1
                Gs.append(Zi @ np.kron(np.eye(m), E) @ Zi.T)
        offset += m * l
    Gs.append(np.eye(n))
    Sigma = np.eye(n) * model.sigma ** 2
    offset = 0
    for term, cov in zip(model.design.terms, model._term_covariances()):
        l, m = term.ncols, term.nlevels
        Zi = Z[:, offset:offset + m * l]
        Sigma = Sigma + Zi @ np.kron(np.eye(m), cov) @ Zi.T
        offset += m * l
    Si = np.linalg.inv(Sigma)
    Phi = model.vcov.to_numpy()
    g = len(Gs)
    P = [-X.T @ Si @ G @ Si @ X for G in Gs]
    Q = [[X.T @ Si @ Gs[r] @ Si @ Gs[s] @ Si @ X for s in range(g)] for r in range(g)]
    IE2 = np.array([[np.trace(Si @ Gs[r] @ Si @ Gs[s]) - 2 * np.sum(Phi * Q[r][s])
                     + np.trace(Phi @ P[r] @ Phi @ P[s]) for s in range(g)] for r in range(g)])
    W = 2 * np.linalg.inv(IE2)
    U = sum(W[r, s] * (Q[r][s] - P[r] @ Phi @ P[s]) for r in range(g) for s in range(g))
    return _KRInfo(Phi, Phi + 2 * Phi @ U @ Phi, P, W)


def test_kenward_roger_unbalanced_matches_dense_formulas():
    d = load_dataset("sleepstudy")
    d = d.drop(index=d.index[(d["Days"].to_numpy() > 6) & (d["Subject"].astype(str) < "335")])
    m = lmer("Reaction ~ Days + (Days | Subject)", d)
    from mixedmodels.postestimation.inference import _kr_ddf, _kr_info

    info, dense = _kr_info(m), _kr_dense(m)
    np.testing.assert_allclose(info.vcov_adj, dense.vcov_adj, rtol=1e-7)
    assert not np.allclose(info.vcov_adj, info.vcov, rtol=1e-4)   # unbalanced: a real adjustment
    for j in range(2):
        L = np.eye(2)[[j]]
        assert _kr_ddf(info, L)[0] == pytest.approx(_kr_ddf(dense, L)[0], rel=1e-7)


def test_kenward_roger_refuses_huge_models(monkeypatch):
    import mixedmodels.postestimation.inference as inf

    monkeypatch.setattr(inf, "KR_MAX_DIM", 20)
    m = lmer("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    with pytest.raises(ValueError, match="satterthwaite"):
        kenward_roger(m)


def test_asymptotic_table(sleep):
    tab = coef_table_ddf(sleep, "asymptotic")
    se = _values(LME4["sleepstudy_reml"]["se"])
    np.testing.assert_allclose(tab["Std. Error"], se, rtol=1e-5)
    z = tab["Estimate"] / tab["Std. Error"]
    from scipy import stats

    np.testing.assert_allclose(tab["Pr(>|z|)"], 2 * stats.norm.sf(np.abs(z)))


def test_bad_ddf(sleep):
    with pytest.raises(ValueError, match="satterthwaite"):
        sleep.coef_table(ddf="containment")


def test_ddf_on_glmm_says_which_methods_apply():
    glmm = pytest.importorskip("mixedmodels.models.glmm")
    d = load_dataset("cbpp")
    m = glmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial")
    with pytest.raises(ValueError, match="asymptotic"):
        m.coef_table(ddf="satterthwaite")
    with pytest.raises(ValueError, match="asymptotic"):
        m.coef_table(ddf="kenward-roger")
    tab = m.coef_table(ddf="asymptotic")
    assert "Pr(>|z|)" in tab.columns


def test_contrast_single_row_equals_coefficient_test(sleep):
    ref = MORE["ddf"]["satterthwaite"]
    out = contrast(sleep, {"Days": 1.0})
    assert out["DenDF"].iloc[0] == pytest.approx(ref["df"]["Days"], abs=1e-4)
    assert out["Pr(>F)"].iloc[0] == pytest.approx(ref["p"]["Days"], rel=1e-4)
    kr = contrast(sleep, [0, 1], ddf="kenward-roger")
    assert kr["DenDF"].iloc[0] == pytest.approx(MORE["ddf"]["kenward_roger"]["df"]["Days"], abs=1e-4)


def test_contrast_joint_and_errors(sleep):
    out = contrast(sleep, np.eye(2))
    assert out["NumDF"].iloc[0] == 2
    # F for both coefficients equals the Wald quadratic form / 2
    b = sleep.fixef.to_numpy()
    F = b @ np.linalg.solve(sleep.vcov.to_numpy(), b) / 2
    assert out["F value"].iloc[0] == pytest.approx(F, rel=1e-8)
    with pytest.raises(ValueError, match="2 columns"):
        contrast(sleep, [1, 0, 0])
    with pytest.raises(ValueError, match="not fixed effects"):
        contrast(sleep, {"Nights": 1})
    with pytest.raises(ValueError, match="linearly dependent"):
        contrast(sleep, [[0, 1], [0, 2]])


def test_profile_ci_sleepstudy(sleep):
    ref = MORE["profile_ci"]
    ci = sleep.confint(method="profile")
    assert list(ci.index) == ref["rows"]
    assert list(ci.columns) == ["lower", "upper"]
    np.testing.assert_allclose(ci["lower"], ref["lower"], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(ci["upper"], ref["upper"], rtol=2e-3, atol=2e-3)
    # the fitted model is left as it was
    np.testing.assert_allclose(sleep.fixef, _values(LME4["sleepstudy_reml"]["fixef"]), rtol=1e-6)


def test_profile_ci_boundary_sd_is_zero():
    # Dyestuff2: the batch SD estimate is 0, so its profile interval starts at 0 (as lme4)
    from mixedmodels.exceptions import SingularFitWarning

    with pytest.warns(SingularFitWarning):
        m = lmer("Yield ~ 1 + (1 | Batch)", load_dataset("Dyestuff2"))
    ci = confint(m, "profile", which=["sd_(Intercept)|Batch"])
    assert ci.loc["sd_(Intercept)|Batch", "lower"] == 0.0
    assert ci.loc["sd_(Intercept)|Batch", "upper"] > 0.0


def test_wald_ci(sleep):
    ci = sleep.confint(method="wald")
    assert ci.loc["sigma"].isna().all()
    se = _values(LME4["sleepstudy_reml"]["se"])
    est = _values(LME4["sleepstudy_reml"]["fixef"])
    np.testing.assert_allclose(ci.loc[["(Intercept)", "Days"], "lower"], est - 1.959963984540054 * se,
                               rtol=1e-6)


def test_bootstrap_reproducible_and_sensible(sleep):
    b1 = bootstrap(sleep, n=8, seed=3)
    b2 = bootstrap(sleep, n=8, seed=3)
    pd.testing.assert_frame_equal(b1.replicates, b2.replicates)
    assert list(b1.replicates.columns) == MORE["profile_ci"]["rows"]
    # replicate fixed effects scatter around the estimate on the scale of the SEs
    dev = (b1.replicates["Days"] - sleep.fixef["Days"]).abs().max()
    assert 0 < dev < 6 * LME4["sleepstudy_reml"]["se"]["Days"]
    ci = b1.confint()
    assert (ci["lower"] <= ci["upper"]).all()


def test_bootstrap_user_statistic_and_parallel(sleep):
    serial = bootstrap(sleep, n=4, seed=1, statistic=_sigma_stat)
    par = bootstrap(sleep, n=4, seed=1, statistic=_sigma_stat, parallel=2)
    np.testing.assert_allclose(serial.replicates.to_numpy(), par.replicates.to_numpy(), rtol=1e-10)
    assert serial.observed.iloc[0] == pytest.approx(LME4["sleepstudy_reml"]["sigma"], rel=1e-6)


def _sigma_stat(m):
    return m.sigma


def test_bootstrap_lrt():
    d = load_dataset("sleepstudy")
    small = lmer("Reaction ~ Days + (1 | Subject)", d, reml=False)
    large = lmer("Reaction ~ Days + (Days | Subject)", d, reml=False)
    tab = bootstrap_lrt(small, large, n=9, seed=1)
    assert list(tab.index) == ["LRT", "PBtest"]
    assert tab.loc["LRT", "stat"] == pytest.approx(2 * (large.loglik - small.loglik))
    assert tab.loc["LRT", "df"] == 2
    # LRT ≈ 42: no bootstrap replicate comes near, so p = 1 / (n + 1)
    assert tab.loc["PBtest", "p.value"] == pytest.approx(0.1)


def test_ranef_table_condvar(sleep):
    tab = sleep.ranef_table()
    assert list(tab.columns) == ["grpvar", "term", "grp", "condval", "condsd"]
    assert len(tab) == 36
    b = sleep.ranef["Subject"]
    np.testing.assert_allclose(tab.loc[tab["term"] == "Days", "condval"], b["Days"].to_numpy())
    # a one-term model: condVar has a closed form per level, σ²(1/(σ²/σ_b² + n_g)) for (1 | g)
    m = lmer("Yield ~ 1 + (1 | Batch)", load_dataset("Dyestuff"))
    t = m.ranef_table()
    vc = m.varcorr
    s2b, s2 = vc["vcov"].iloc[0], m.sigma ** 2
    np.testing.assert_allclose(t["condsd"], np.sqrt(1.0 / (1.0 / s2b + 5.0 / s2)), rtol=1e-10)


def test_ranef_table_crossed_uses_all_terms():
    m = lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", load_dataset("Penicillin"))
    t = ranef_table(m)
    assert set(t["grpvar"]) == {"plate", "sample"}
    assert (t["condsd"] > 0).all()
    # crossed: uncertainty in the sample effects adds to each plate's conditional variance
    s2 = m.sigma ** 2
    s2p = m.varcorr.set_index("group").loc["plate", "vcov"]
    one = np.sqrt(1.0 / (1.0 / s2p + 6.0 / s2))
    assert (t.loc[t["grpvar"] == "plate", "condsd"] > one - 1e-12).all()


def test_unbalanced_kenward_roger_and_satterthwaite_against_r(extra_ref):
    """pbkrtest and lmerTest on an unbalanced subset, where the KR adjustment is not trivial."""
    ref = extra_ref["sleep_unbalanced_reml"]
    sleep = mm.load_dataset("sleepstudy")
    data = sleep.drop(index=np.array(extra_ref["sleep_unbalanced_ml"]["rows_dropped"]) - 1)
    m = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    kr = m.coef_table(ddf="kenward-roger")
    np.testing.assert_allclose(kr["df"], list(ref["kenward_roger_df"].values()), rtol=1e-4)
    np.testing.assert_allclose(kr["Std. Error"], list(ref["kenward_roger_se"].values()), rtol=1e-4)
    st = m.coef_table(ddf="satterthwaite")
    np.testing.assert_allclose(st["df"], list(ref["satterthwaite_df"].values()), rtol=1e-4)


def test_profile_interval_dyestuff_against_lme4(extra_ref):
    ref = extra_ref["dyestuff_profile"]
    ci = mm.lmer("Yield ~ 1 + (1 | Batch)", mm.load_dataset("Dyestuff")).confint(method="profile")
    assert list(ci.index) == ref["rows"]
    np.testing.assert_allclose(ci["lower"], ref["lower"], rtol=2e-3)
    np.testing.assert_allclose(ci["upper"], ref["upper"], rtol=2e-3)


# --- GLMM profile intervals (tests/reference/make_glmm_profile_reference.R) --------------------

GLMM_PROFILE = json.loads((Path(__file__).resolve().parent / "reference"
                           / "glmm_profile_reference.json").read_text())
CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _glmm_for(key):
    from mixedmodels.models.family import binomial

    if key == "grouseticks":
        return mm.glmer(GLMM_PROFILE[key]["formula"], load_dataset("grouseticks"), family="poisson")
    family = binomial("probit") if key == "cbpp_probit" else "binomial"
    return mm.glmer(CBPP_FORMULA, load_dataset("cbpp"), family=family,
                    n_agq=GLMM_PROFILE[key].get("nAGQ", 1))


@pytest.mark.parametrize("key", ["cbpp", "cbpp_agq5", "cbpp_probit", "grouseticks"])
def test_glmm_profile_ci_against_lme4(key):
    """lme4's confint(method = "profile") for glmer fits: cbpp (Laplace with the exact gradient,
    AGQ, a probit link) and grouseticks (two crossed terms; the LOCATION sd's profile stays
    inside the interval down to 0). Largest relative difference measured: 4.6e-4, grouseticks'
    (Intercept) lower limit (3.4e-5 in absolute terms: lme4's PIRLS tolerance, not ours)."""
    ref = GLMM_PROFILE[key]
    m = _glmm_for(key)
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    loglik, fixef, theta = m.loglik, m.fixef.copy(), m.theta
    ci = confint(m, "profile")
    assert list(ci.index) == ref["rows"]
    np.testing.assert_allclose(ci["lower"], ref["lower"], rtol=2e-3, atol=1e-8)
    np.testing.assert_allclose(ci["upper"], ref["upper"], rtol=2e-3, atol=1e-8)
    # the fitted state is restored
    assert m.loglik == loglik
    pd.testing.assert_series_equal(m.fixef, fixef, check_exact=True)
    np.testing.assert_array_equal(m.theta, theta)


def test_glmm_profile_restores_state_and_repeats():
    m = _glmm_for("grouseticks")
    loglik, fixef = m.loglik, m.fixef.copy()
    eta = m.engine.eta.copy()
    ci = confint(m, "profile", which=["sd_(Intercept)|BROOD", "cHEIGHT"])
    assert list(ci.index) == ["sd_(Intercept)|BROOD", "cHEIGHT"]
    assert m.loglik == loglik
    pd.testing.assert_series_equal(m.fixef, fixef, check_exact=True)
    np.testing.assert_array_equal(m.engine.eta, eta)
    assert m._last is m._pirls
    # the same again: nothing of the first profile leaks into the second
    again = m.confint(method="profile", which=["sd_(Intercept)|BROOD", "cHEIGHT"])
    pd.testing.assert_frame_equal(ci, again)
    assert ci.attrs["deviance_evaluations"] > 0
    ref = GLMM_PROFILE["grouseticks"]
    full = pd.DataFrame({"lower": ref["lower"], "upper": ref["upper"]}, index=ref["rows"])
    np.testing.assert_allclose(ci.to_numpy(), full.loc[ci.index].to_numpy(), rtol=2e-3)


def test_glmm_profile_needs_laplace_or_agq():
    m = mm.glmer(CBPP_FORMULA, load_dataset("cbpp"), family="binomial", n_agq=0)
    with pytest.raises(NotImplementedError, match="n_agq=0"):
        confint(m, "profile")
    with pytest.raises(ValueError, match="unknown parameter"):
        confint(_glmm_for("cbpp"), "profile", which=["sigma"])
