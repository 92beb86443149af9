"""Pooling and multiparameter tests on multiply imputed data against mitml (tests/reference/
make_missing_reference.R): the imputed data sets are mitml's panImpute output, exported from R, fit
here with our lmer and pooled here; mitml's testEstimates and testModels on the same data sets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from refs import REF

import mixedmodels as mm
from mixedmodels.missing import Imputations, MIFits

R = json.loads((REF / "missing_reference.json").read_text())
FULL = "ReadAchiev ~ ReadDis + SES + (1 | ID)"


@pytest.fixture(scope="module")
def imps() -> Imputations:
    return Imputations.from_long(pd.read_csv(REF / "missing_imputations.csv"))


@pytest.fixture(scope="module")
def fits(imps):
    return {name: mm.lmer(f, imps) for name, f in
            [("full", FULL), ("one", "ReadAchiev ~ ReadDis + (1 | ID)"), ("null", "ReadAchiev ~ 1 + (1 | ID)")]}


def test_each_fit_matches_lme4_on_the_same_imputed_data(fits):
    full = fits["full"]
    assert isinstance(full, MIFits) and full.m == R["m"] == 5
    for f, r in zip(full.fits, R["fits"]):
        np.testing.assert_allclose(f.fixef.to_numpy(), r["beta"], rtol=1e-6)
        np.testing.assert_allclose(f.loglik, r["loglik"], rtol=1e-9)


@pytest.mark.parametrize("key,df_com", [("pool", None), ("pool_dfcom", 747)])
def test_rubin_rules_match_mitml_testEstimates(fits, key, df_com):
    tab = fits["full"].coef_table(df_com=df_com)
    ref = R[key]
    assert list(tab.index) == ref["names"]
    for col, name in [("Estimate", "estimate"), ("Std. Error", "se"), ("t value", "t"), ("df", "df"),
                      ("RIV", "riv"), ("FMI", "fmi")]:
        np.testing.assert_allclose(tab[col].to_numpy(), ref[name], rtol=1e-6, err_msg=col)
    np.testing.assert_allclose(tab["Pr(>|t|)"].to_numpy(), ref["p"], rtol=1e-5, atol=1e-12)


def test_pool_of_a_list_of_fits_is_the_same(imps, fits):
    mine = [mm.lmer(FULL, d) for d in imps]
    pooled = mm.pool(mine, df_com=747)
    np.testing.assert_allclose(pooled.coef_table()["df"].to_numpy(), R["pool_dfcom"]["df"], rtol=1e-6)
    np.testing.assert_allclose(pooled.coef_table()["Estimate"], fits["full"].coef_table()["Estimate"], rtol=1e-7)


def test_pooled_variance_components_and_icc_match_mitml(fits):
    vc = fits["full"].varcorr
    ext = dict(zip(R["extra"]["names"], R["extra"]["estimate"]))
    np.testing.assert_allclose(vc["vcov"].to_numpy(), [ext["Intercept~~Intercept|ID"], ext["Residual~~Residual"]],
                               rtol=1e-6)
    np.testing.assert_allclose(fits["full"].icc(), ext["ICC|ID"], rtol=1e-6)


def test_confint_uses_the_barnard_rubin_df(fits):
    from scipy import stats
    ci = fits["full"].confint()
    ref = R["pool"]
    half = stats.t.ppf(0.975, ref["df"]) * np.array(ref["se"])
    np.testing.assert_allclose(ci.iloc[:, 0], np.array(ref["estimate"]) - half, rtol=1e-6)
    np.testing.assert_allclose(ci.iloc[:, 1], np.array(ref["estimate"]) + half, rtol=1e-6)


@pytest.mark.parametrize("name,small,test,df_com", [
    ("D1_one", "one", "D1", None), ("D1_one_dfcom", "one", "D1", 746), ("D1_two", "null", "D1", None),
    ("D1_two_dfcom", "null", "D1", 746), ("D2_one", "one", "D2", None), ("D2_two", "null", "D2", None),
    ("D3_one", "one", "D3", None), ("D3_two", "null", "D3", None)])
def test_d1_d2_d3_match_mitml_testModels(fits, name, small, test, df_com):
    kw = {} if df_com is None else {"df_com": df_com}
    res = mm.anova(fits["full"], fits[small], test=test, **kw).iloc[0]
    ref = R["tests"][name]
    np.testing.assert_allclose([res["F value"], res["df1"], res["df2"], res["RIV"]],
                               [ref["F"], ref["df1"], ref["df2"], ref["riv"]], rtol=1e-6)
    np.testing.assert_allclose(res["Pr(>F)"], ref["p"], rtol=1e-5)


def test_summary_predict_and_order_free_anova(fits, imps):
    full = fits["full"]
    text = full.summary()
    assert "Rubin" in text and "ReadDis" in text and "Number of obs: 750" in text
    pred = full.predict()
    each = np.mean([np.asarray(f.predict()) for f in full.fits], axis=0)
    np.testing.assert_allclose(pred, each)
    a = mm.anova(fits["one"], fits["full"], test="D1")  # smaller model first: same test
    b = mm.anova(fits["full"], fits["one"], test="D1")
    np.testing.assert_allclose(a["F value"].to_numpy(), b["F value"].to_numpy())


def test_bad_pooling_inputs(imps, fits):
    with pytest.raises(ValueError, match="not the same model"):
        mm.pool([fits["full"].fits[0], fits["one"].fits[1]])
    with pytest.raises(ValueError, match="at least 2"):
        mm.pool([fits["full"].fits[0]])
    with pytest.raises(ValueError, match="df_com"):
        mm.pool(fits["full"].fits, df_com=-3)
    with pytest.raises(ValueError, match="D3 needs maximum-likelihood"):
        mm.anova(fits["full"], fits["one"], test="D3", refit=False)
    with pytest.raises(ValueError, match="'D1', 'D2' or 'D3'"):
        mm.anova(fits["full"], fits["one"], test="chisq")
    with pytest.raises(TypeError, match="pooled fits"):
        mm.anova(fits["full"], fits["one"].fits[0], test="D1")
    with pytest.raises(ValueError, match="different numbers of rows"):
        Imputations([imps[0], imps[1].iloc[:-1]])
    with pytest.raises(TypeError, match="unexpected keyword"):
        mm.anova(fits["full"].fits[0], fits["one"].fits[0], df_com=3)


def test_d3_ml_fits_match_without_refit(imps):
    full = mm.lmer(FULL, imps, reml=False)
    one = mm.lmer("ReadAchiev ~ ReadDis + (1 | ID)", imps, reml=False)
    res = mm.anova(full, one, test="D3", refit=False).iloc[0]
    np.testing.assert_allclose(res["F value"], R["tests"]["D3_one"]["F"], rtol=1e-6)


def test_reused_design_equals_separate_fits_when_an_imputed_variable_has_a_random_slope(imps):
    import warnings
    formula = "ReadAchiev ~ ReadDis + (1 + ReadDis | ID)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        fast = mm.lmer(formula, imps)
        slow = [mm.lmer(formula, d) for d in imps]
    for a, b in zip(fast.fits, slow):
        np.testing.assert_allclose(a.loglik, b.loglik, rtol=1e-7)
        np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-4)


def test_help_prints_the_missing_data_guide():
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "missing-data.md").read_text("utf-8")
    from mixedmodels.presentation.guide import text
    assert text("missing-data") == doc
    pkg = Path(mm.__file__).resolve().parent / "docs" / "missing-data.md"
    assert pkg.read_text("utf-8") == doc            # the package copy is the repository's


def test_unseen_categorical_levels_across_imputations_raise(imps):
    sets = [d.assign(Grp=np.where(d.index % 2 == 0, "a", "b")) for d in imps]
    sets[2].loc[0, "Grp"] = "c"
    with pytest.raises(ValueError, match=r"column 'Grp' has other levels in imputed data set 3.*new: \['c'\]"):
        mm.lmer("ReadAchiev ~ ReadDis + Grp + (1 | ID)", Imputations(sets))


def test_glmer_on_imputations_pools_and_d3_refuses():
    import warnings
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(20), 10)
    x = rng.normal(size=200)
    y = (rng.random(200) < 1 / (1 + np.exp(-(0.3 + x + rng.normal(size=20)[g])))).astype(float)
    sets = []
    for _ in range(3):  # three "imputations" of a few x values
        xk = x.copy()
        xk[:15] = rng.normal(size=15)
        sets.append(pd.DataFrame({"y": y, "x": xk, "g": g}))
    imps = Imputations(sets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        full = mm.glmer("y ~ x + (1 | g)", imps, family="binomial")
        null = mm.glmer("y ~ 1 + (1 | g)", imps, family="binomial")
    each = [mm.glmer("y ~ x + (1 | g)", d, family="binomial") for d in sets]
    np.testing.assert_allclose(full.coef_table()["Estimate"].to_numpy(),
                               np.mean([f.fixef.to_numpy() for f in each], axis=0), rtol=1e-6)
    assert mm.anova(full, null, test="D2").iloc[0]["df1"] == 1
    with pytest.raises(ValueError, match="linear mixed models"):
        mm.anova(full, null, test="D3")


def test_imputations_object():
    long = pd.read_csv(REF / "missing_imputations.csv")
    imps = Imputations.from_long(long)
    back = imps.to_long()
    assert len(back) == len(long) and set(back[".imp"]) == set(range(1, 6))
    assert "m=5" in repr(imps)
    with pytest.raises(TypeError, match="list of DataFrames"):
        Imputations(long)
    with pytest.raises(ValueError, match="imputation number"):
        Imputations.from_long(long, imp="nope")


def test_refit_path_for_an_imputed_response_gives_the_separate_fits():
    """Only the response imputed: the fits after the first are refit(y) of the first (nothing re-parsed);
    they must be the fits lmer gives each data set on its own."""
    d = mm.load_dataset("sleepstudy")
    rng = np.random.default_rng(8)
    sets = [d.assign(Reaction=d["Reaction"] + rng.normal(scale=20, size=len(d)) * (d.index % 4 == 0))
            for _ in range(4)]
    imps = Imputations(sets)
    fits = mm.lmer("Reaction ~ Days + (Days | Subject)", imps)
    for f, data in zip(fits.fits, sets):
        alone = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
        np.testing.assert_allclose(f.fixef.to_numpy(), alone.fixef.to_numpy(), rtol=1e-5)
        np.testing.assert_allclose(f.loglik, alone.loglik, rtol=1e-8)
        np.testing.assert_allclose(f.theta, alone.theta, rtol=1e-3, atol=1e-4)
