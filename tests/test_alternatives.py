"""Cluster-robust OLS/GLM, the within estimator, GEE and the side-by-side comparison, against R.

References: tests/reference/more_reference.json (sandwich, plm, geepack on sleepstudy),
made by make_more_reference.R beside it, and lme4_reference.json for the LMM column.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixedmodels.alternatives.compare import compare_approaches
from mixedmodels.alternatives.estimators import cluster_robust, fixed_effects, gee
from mixedmodels.presentation.datasets import load_dataset


@pytest.fixture(scope="module")
def gpa():
    return load_dataset("gpa")


def _series(d):
    return pd.Series(d, dtype=float)


def _check_table(tab):
    assert {"Estimate", "Std. Error"} <= set(tab.columns)
    assert any(c.startswith("Pr(") or c == "p.value" for c in tab.columns)


# --------------------------------------------------------------------------- cluster_robust


@pytest.mark.parametrize("kind", ["CR1", "CR2", "CR3"])
def test_cluster_robust_se_matches_sandwich(more_ref, sleepstudy, kind):
    ref = more_ref["cluster_robust"]
    res = cluster_robust("Reaction ~ Days", sleepstudy, cluster="Subject", type=kind)
    se = _series(ref[f"se_{kind}"])
    np.testing.assert_allclose(res.params[se.index], _series(ref["coef"])[se.index], rtol=1e-9)
    np.testing.assert_allclose(res.bse[se.index], se, atol=1e-5, rtol=1e-7)
    tab = res.coef_table()
    _check_table(tab)
    np.testing.assert_allclose(tab["Std. Error"], se, atol=1e-5)
    assert "CR" in res.summary() and "Subject (18)" in res.summary()


def test_cr0_is_liang_zeger_as_geepack_independence(more_ref, sleepstudy):
    # geepack's robust SE under independence is the CR0 sandwich of OLS, with no small-sample factor.
    res = cluster_robust("Reaction ~ Days", sleepstudy, cluster="Subject", type="CR0")
    np.testing.assert_allclose(res.bse.to_numpy(), more_ref["gee"]["independence"]["se_robust"], atol=1e-6)


def test_two_way_and_glm_agree_with_statsmodels(gpa):
    sm = pytest.importorskip("statsmodels.api")
    from formulaic import model_matrix

    mm = model_matrix("gpa ~ occasion + sex", gpa)
    groups = np.column_stack([gpa["student"].cat.codes, gpa["occas"].cat.codes])
    ref = sm.OLS(np.asarray(mm.lhs).ravel(), np.asarray(mm.rhs)).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": True})
    res = cluster_robust("gpa ~ occasion + sex", gpa, cluster=["student", "occas"], type="CR1")
    np.testing.assert_allclose(res.bse.to_numpy(), ref.bse, rtol=1e-8)

    ticks = load_dataset("grouseticks")
    mm = model_matrix("TICKS ~ YEAR + cHEIGHT", ticks)
    ref = sm.GLM(np.asarray(mm.lhs).ravel(), np.asarray(mm.rhs), family=sm.families.Poisson()).fit(
        cov_type="cluster", cov_kwds={"groups": ticks["BROOD"].cat.codes.to_numpy()})
    res = cluster_robust("TICKS ~ YEAR + cHEIGHT", ticks, cluster="BROOD", type="CR1", family="poisson")
    assert list(res.params.index) == ["(Intercept)", "YEAR96", "YEAR97", "cHEIGHT"]
    np.testing.assert_allclose(res.params.to_numpy(), ref.params, rtol=1e-7)
    np.testing.assert_allclose(res.bse.to_numpy(), ref.bse, rtol=1e-6)
    assert "z value" in res.coef_table().columns


def test_cluster_robust_bad_input(sleepstudy):
    one = sleepstudy.assign(site="A")
    with pytest.raises(ValueError, match="'site' has only one level"):
        cluster_robust("Reaction ~ Days", one, cluster="site")
    with pytest.raises(ValueError, match="cluster column 'nosuch' not found"):
        cluster_robust("Reaction ~ Days", sleepstudy, cluster="nosuch")
    with pytest.raises(ValueError, match="type must be one of"):
        cluster_robust("Reaction ~ Days", sleepstudy, cluster="Subject", type="HC9")
    with pytest.raises(ValueError, match="random-effects"):
        cluster_robust("Reaction ~ Days + (1 | Subject)", sleepstudy, cluster="Subject")


# --------------------------------------------------------------------------- fixed_effects


def test_within_estimator_matches_plm(more_ref, sleepstudy):
    ref = more_ref["within"]
    res = fixed_effects("Reaction ~ Days", sleepstudy, entity="Subject", cluster="Subject")
    assert list(res.params.index) == ["Days"]
    np.testing.assert_allclose(res.params["Days"], ref["coef"]["Days"], atol=1e-5, rtol=1e-9)
    np.testing.assert_allclose(res.se_classical["Days"], ref["se"]["Days"], atol=1e-5, rtol=1e-8)
    np.testing.assert_allclose(res.se_cluster["Days"], ref["se_cluster"]["Days"], atol=1e-5, rtol=1e-8)
    _check_table(res.coef_table())
    np.testing.assert_allclose(res.coef_table().loc["Days", "Std. Error"], ref["se_cluster"]["Days"], atol=1e-5)
    # without a cluster, the table shows the classical standard error
    plain = fixed_effects("Reaction ~ Days", sleepstudy, entity="Subject")
    np.testing.assert_allclose(plain.bse["Days"], ref["se"]["Days"], atol=1e-5)


def test_within_drops_cluster_level_terms(gpa):
    with pytest.warns(UserWarning, match="sexmale"):
        res = fixed_effects("gpa ~ occasion + job + sex", gpa, entity="student", cluster="student")
    assert "sexmale" in res.dropped and "sexmale" not in res.params.index
    assert "occasion" in res.params.index and "Within" in res.summary()
    tw = fixed_effects("gpa ~ job", gpa, entity="student", cluster="student", time="occasion")
    assert list(tw.params.index) == ["job2 hours", "job3 hours"]


def test_within_bad_input(sleepstudy):
    with pytest.raises(ValueError, match="cluster column 'site' has only one level"):
        fixed_effects("Reaction ~ Days", sleepstudy.assign(site="A"), entity="Subject", cluster="site")
    with pytest.raises(ValueError, match="entity column 'site' has only one level"):
        fixed_effects("Reaction ~ Days", sleepstudy.assign(site="A"), entity="site")


# --------------------------------------------------------------------------- gee


@pytest.mark.parametrize("structure", ["exchangeable", "ar1", "independence"])
def test_gee_matches_geepack(more_ref, sleepstudy, structure):
    pytest.importorskip("statsmodels")
    ref = more_ref["gee"][structure]
    # shuffle the rows: gee must order by group and time itself, as geepack needs
    shuffled = sleepstudy.sample(frac=1.0, random_state=3)
    res = gee("Reaction ~ Days", shuffled, groups="Subject", time="Days", cov_struct=structure)
    coef = _series(ref["coef"])
    np.testing.assert_allclose(res.params[coef.index], coef, atol=1e-3)
    np.testing.assert_allclose(res.bse.to_numpy(), ref["se_robust"], atol=1e-3)
    if structure == "independence":
        assert res.alpha is None
    else:
        assert res.alpha == pytest.approx(ref["alpha"], abs=1e-6)
    _check_table(res.coef_table())
    assert structure in res.summary()


def test_gee_binomial_and_poisson_run(gpa):
    pytest.importorskip("statsmodels")
    data = gpa.assign(high=(gpa["gpa"] > 3).astype(int))
    res = gee("high ~ occasion + sex", data, groups="student", time="occasion", cov_struct="ar1", family="binomial")
    assert res.params["occasion"] > 0 and 0 < res.alpha < 1
    ticks = load_dataset("grouseticks")
    pois = gee("TICKS ~ YEAR", ticks, groups="BROOD", family="poisson", cov_struct="independence")
    # under independence the GEE point estimates are the Poisson GLM's
    glm = cluster_robust("TICKS ~ YEAR", ticks, cluster="BROOD", type="CR0", family="poisson")
    np.testing.assert_allclose(pois.params, glm.params, rtol=1e-6)
    np.testing.assert_allclose(pois.bse, glm.bse, rtol=1e-5)


def test_gee_bad_input(sleepstudy):
    pytest.importorskip("statsmodels")
    with pytest.raises(ValueError, match="needs `time`"):
        gee("Reaction ~ Days", sleepstudy, groups="Subject", cov_struct="ar1")
    with pytest.raises(ValueError, match="time column 'visit' not found"):
        gee("Reaction ~ Days", sleepstudy, groups="Subject", time="visit", cov_struct="ar1")
    holes = sleepstudy.assign(visit=sleepstudy["Days"].where(sleepstudy.index % 7 != 0))
    with pytest.raises(ValueError, match="time column 'visit' has .* missing"):
        gee("Reaction ~ Days", holes, groups="Subject", time="visit", cov_struct="ar1")
    with pytest.raises(ValueError, match="groups column 'site' has only one level"):
        gee("Reaction ~ Days", sleepstudy.assign(site="A"), groups="site")
    with pytest.raises(ValueError, match="cov_struct"):
        gee("Reaction ~ Days", sleepstudy, groups="Subject", cov_struct="toeplitz")


# --------------------------------------------------------------------------- compare_approaches


def test_compare_approaches_table_and_plot(more_ref, lme4_ref, sleepstudy):
    pytest.importorskip("statsmodels")
    pytest.importorskip("mixedmodels.models.lmm")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    cmp = compare_approaches("Reaction ~ Days + (Days | Subject)", sleepstudy)
    t = cmp.table
    names = list(cmp.results)
    assert names == ["OLS", "OLS, cluster-robust (CR2)", "Within (fixed effects)", "GEE (exchangeable)", "LMM"]
    cr, within, gee_ref = more_ref["cluster_robust"], more_ref["within"], more_ref["gee"]["exchangeable"]
    lmm = lme4_ref["sleepstudy_reml"]
    np.testing.assert_allclose(t[("OLS", "Estimate")], _series(cr["coef"]), rtol=1e-9)
    np.testing.assert_allclose(t[("OLS, cluster-robust (CR2)", "Std. Error")], _series(cr["se_CR2"]), atol=1e-5)
    assert np.isnan(t.loc["(Intercept)", ("Within (fixed effects)", "Estimate")])
    np.testing.assert_allclose(t.loc["Days", ("Within (fixed effects)", "Std. Error")],
                               within["se_cluster"]["Days"], atol=1e-5)
    np.testing.assert_allclose(t[("GEE (exchangeable)", "Std. Error")], gee_ref["se_robust"], atol=1e-3)
    np.testing.assert_allclose(t[("LMM", "Estimate")], _series(lmm["fixef"]), rtol=1e-5)
    np.testing.assert_allclose(t[("LMM", "Std. Error")], _series(lmm["se"]), rtol=1e-4)
    assert "marginal" in cmp.footnote and "conditional" in cmp.footnote
    _check_table(cmp.coef_table())
    fig = cmp.plot()
    assert len(fig.axes) == 2
    matplotlib.pyplot.close(fig)


def test_compare_approaches_names_cluster_level_terms(lme4_ref, gpa):
    pytest.importorskip("statsmodels")
    pytest.importorskip("mixedmodels.models.lmm")
    cmp = compare_approaches("gpa ~ occasion + sex + (1 + occasion | student)", gpa)
    assert "sexmale" in cmp.footnote and "cannot estimate" in cmp.footnote
    ref = lme4_ref["gpa_2"]
    np.testing.assert_allclose(cmp.table[("LMM", "Estimate")], _series(ref["fixef"]), rtol=1e-5)
    assert "Within" in cmp.summary()


def test_compare_approaches_needs_a_random_term(sleepstudy):
    with pytest.raises(ValueError, match="no random-effects term"):
        compare_approaches("Reaction ~ Days", sleepstudy)


def test_gpa_against_sandwich_plm_geepack():
    """Unseen-data checks on gpa (tests/reference/make_alternatives_reference.R)."""
    import warnings as _warnings

    import mixedmodels as mm

    ref = json.loads((Path(__file__).resolve().parent / "reference" / "alternatives_reference.json").read_text())
    gpa = mm.load_dataset("gpa")
    for kind in ("CR1", "CR2", "CR3"):
        fit = mm.cluster_robust("gpa ~ occasion + sex", gpa, cluster="student", type=kind)
        np.testing.assert_allclose(fit.coef_table()["Std. Error"], ref["cluster_robust"][f"se_{kind}"], rtol=1e-5)
    hi = gpa.assign(hi=(gpa["gpa"] > 3).astype(float))
    logit = mm.cluster_robust("hi ~ occasion + sex", hi, cluster="student", type="CR1", family="binomial")
    np.testing.assert_allclose(logit.coef_table()["Estimate"], ref["cluster_robust_logit"]["coef"], rtol=1e-6)
    np.testing.assert_allclose(logit.coef_table()["Std. Error"], ref["cluster_robust_logit"]["se_CR1"], rtol=1e-5)
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        within = mm.fixed_effects("gpa ~ occasion + job", gpa, entity="student", cluster="student")
    np.testing.assert_allclose(within.coef_table()["Estimate"], list(ref["within"]["coef"].values()), rtol=1e-6)
    np.testing.assert_allclose(within.coef_table()["Std. Error"], ref["within"]["se_cluster"], rtol=1e-5)
    for cs in ("exchangeable", "ar1"):
        g = mm.gee("gpa ~ occasion + sex", gpa, groups="student", time="occasion", cov_struct=cs)
        np.testing.assert_allclose(g.coef_table()["Estimate"], ref["gee"][cs]["coef"], rtol=1e-3)
        np.testing.assert_allclose(g.coef_table()["Std. Error"], ref["gee"][cs]["se"], rtol=1e-3)
    g = mm.gee("hi ~ occasion + sex", hi, groups="student", time="occasion", cov_struct="exchangeable",
               family="binomial")
    np.testing.assert_allclose(g.coef_table()["Std. Error"], ref["gee"]["binomial_exchangeable"]["se"], rtol=1e-3)
