"""Small-sample df against R: lmerTest (Satterthwaite) and pbkrtest (Kenward-Roger); contrasts."""


import numpy as np
import pytest
from refs import LME4, MORE, values

import mixedmodels as mm
from mixedmodels import lmer
from mixedmodels.postestimation.ddf import (
    clear_cache,
    coef_table_ddf,
    contrast,
    kenward_roger,
    satterthwaite_df,
)
from mixedmodels.presentation.datasets import load_dataset


def test_satterthwaite_sleepstudy(sleep):
    ref = MORE["ddf"]["satterthwaite"]
    tab = sleep.coef_table(ddf="satterthwaite")
    assert list(tab.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    np.testing.assert_allclose(tab["df"], values(ref["df"]), atol=1e-4)
    np.testing.assert_allclose(tab["Pr(>|t|)"], values(ref["p"]), rtol=1e-4)


@pytest.mark.parametrize("key", ["gpa_2", "gpa_1_ml", "gpa_3", "sleepstudy_ml", "sleepstudy_zerocorr",
                                 "pastes", "dyestuff"])
def test_satterthwaite_other_models(key):
    r = LME4[key]
    m = lmer(r["formula"], load_dataset(r["data"].removesuffix(".csv")), reml=r["reml"])
    df = satterthwaite_df(m).to_numpy()
    # rtol 2e-4: the df move with θ at that order between where BOBYQA stops (ours and lme4's
    # differ by ~1e-8 in logLik) and the exact optimum; e.g. gpa_1_ml: lme4 199.9902, ours
    # 199.9643, at the optimum (xtol_rel=1e-10) 199.9999 -- lme4's own error is 5e-5
    np.testing.assert_allclose(df, values(r["satterthwaite_df"]), rtol=2e-4, atol=1e-4)
    tab = coef_table_ddf(m, "satterthwaite")
    # on the log scale: p-values of 1e-202 move by 6% with the df above, their logs by 3e-4
    np.testing.assert_allclose(np.log(tab["Pr(>|t|)"]), np.log(values(r["p_satterthwaite"])), rtol=1e-3)


def test_satterthwaite_restores_model_state(sleep):
    theta, beta = sleep.theta, sleep.fixef.to_numpy()
    clear_cache(sleep)
    satterthwaite_df(sleep)
    np.testing.assert_array_equal(sleep.theta, theta)
    np.testing.assert_allclose(sleep.factor.solve()[0], beta, rtol=1e-12)


def test_kenward_roger_sleepstudy(sleep):
    ref = MORE["ddf"]["kenward_roger"]
    tab = sleep.coef_table(ddf="kenward-roger")
    np.testing.assert_allclose(tab["df"], values(ref["df"]), atol=1e-4)
    np.testing.assert_allclose(tab["Std. Error"], values(ref["se"]), rtol=1e-6)


def _kr_dense(model):
    """pbkrtest's formulas with explicit n × n matrices (independent of the q-space path)."""
    from mixedmodels.postestimation.ddf import _KRInfo, _weighted_parts

    Z, X = _weighted_parts(model)
    Z = Z.toarray()
    n = Z.shape[0]
    Gs, offset = [], 0
    for term in model.design.terms:
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
    for term, cov in zip(model.design.terms, model.term_covariances()):
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
    from mixedmodels.postestimation.ddf import _kr_ddf, _kr_info

    info, dense = _kr_info(m), _kr_dense(m)
    np.testing.assert_allclose(info.vcov_adj, dense.vcov_adj, rtol=1e-7)
    assert not np.allclose(info.vcov_adj, info.vcov, rtol=1e-4)   # unbalanced: a real adjustment
    for j in range(2):
        L = np.eye(2)[[j]]
        assert _kr_ddf(info, L)[0] == pytest.approx(_kr_ddf(dense, L)[0], rel=1e-7)


def test_kenward_roger_refuses_huge_models(monkeypatch):
    import mixedmodels.postestimation.ddf as inf

    monkeypatch.setattr(inf, "KR_MAX_DIM", 20)
    m = lmer("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    with pytest.raises(ValueError, match="satterthwaite"):
        kenward_roger(m)


def test_asymptotic_table(sleep):
    tab = coef_table_ddf(sleep, "asymptotic")
    se = values(LME4["sleepstudy_reml"]["se"])
    np.testing.assert_allclose(tab["Std. Error"], se, rtol=1e-5)
    z = tab["Estimate"] / tab["Std. Error"]
    from scipy import stats

    np.testing.assert_allclose(tab["Pr(>|z|)"], 2 * stats.norm.sf(np.abs(z)))


def test_bad_ddf(sleep):
    with pytest.raises(ValueError, match="satterthwaite"):
        sleep.coef_table(ddf="containment")


def test_ddf_on_glmm_says_which_methods_apply():
    d = load_dataset("cbpp")
    m = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial")
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


def test_df_functions_on_glmm_raise_the_clear_message():
    m = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", load_dataset("cbpp"),
                 family="binomial")
    # NotImplementedError as the model contract has it (and a ValueError, as before)
    with pytest.raises(NotImplementedError, match="linear mixed models only.*asymptotic"):
        satterthwaite_df(m)
    with pytest.raises(NotImplementedError, match="linear mixed models only.*asymptotic"):
        kenward_roger(m)
    with pytest.raises(ValueError, match="linear mixed models only"):
        contrast(m, {"period2": 1.0})
    chi = contrast(m, {"period2": 1.0}, ddf="asymptotic")
    assert chi["Df"].iloc[0] == 1
    z = m.coef_table().loc["period2", "z value"]
    assert chi["Chisq"].iloc[0] == pytest.approx(z ** 2, rel=1e-10)


def test_df_caches_are_not_stored_on_the_model(sleep):
    satterthwaite_df(sleep)
    kenward_roger(sleep)
    assert not any(k.startswith(("_satt", "_kr")) for k in vars(sleep))
