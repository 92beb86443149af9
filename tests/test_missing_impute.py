"""missing_report, the forest / pan / fcs imputations, compare_missing and their bad inputs.

Imputations are random, so they are checked by their properties: observed values untouched bit for
bit, pooled estimates within Monte-Carlo error of mitml's panImpute on the same data (R reference
in tests/reference/make_missing_reference.R), diagnostics present, and less bias than complete-case
analysis on a simulated MAR design."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from refs import REF

import mixedmodels as mm

R = json.loads((REF / "missing_reference.json").read_text())
SR = pd.read_csv(REF / "studentratings.csv")
MODEL = "ReadAchiev ~ ReadDis + SES + (1 | ID)"
IMP = "ReadDis + SES ~ ReadAchiev + (1 | ID)"


def _observed_untouched(before: pd.DataFrame, after: pd.DataFrame, cols) -> None:
    for c in cols:
        obs = before[c].notna().to_numpy()
        a, b = before[c].to_numpy()[obs], after.loc[before.index, c].to_numpy()[obs]
        if a.dtype.kind == "f":
            assert np.array_equal(a.view(np.uint64), b.astype(float).view(np.uint64)), c
        else:
            assert list(a) == list(b), c
        assert after[c].notna().all(), c


# -- missing_report -----------------------------------------------------------------------------

def test_pattern_table_matches_mice_md_pattern():
    rep = mm.missing_report(SR, MODEL)
    pat = rep.pattern
    ref = R["md_pattern"]
    cols = ref["columns"][:-1]
    assert list(pat.columns[:-1]) == cols
    ours = {(tuple(int(v) for v in row[cols]), int(k)) for k, row in pat.iloc[:-1].iterrows()}
    theirs = {(tuple(r[:-1]), int(c)) for r, c in zip(ref["rows"][:-1], ref["counts"][:-1])}
    assert ours == theirs
    assert list(pat.iloc[-1]) == ref["rows"][-1]
    assert rep.complete_cases == R["complete_case"]["nobs"] == 373
    assert len(rep.dropped_rows) == 750 - 373
    assert rep.per_variable.loc["SES", "n_missing"] == 281
    assert rep.per_cluster.shape[0] == 50 and rep.per_cluster["rows"].sum() == 750
    assert "loses 377" in str(rep)


def test_dropout_curve_and_missing_cluster_rows():
    d = mm.load_dataset("sleepstudy").copy()
    subjects = d["Subject"].unique()
    gone = d["Subject"].isin(subjects[:6]) & (d["Days"] >= 8)   # 6 of 18 drop out after day 7
    d.loc[gone, "Reaction"] = np.nan
    d.loc[0, "Subject"] = None
    rep = mm.missing_report(d, "Reaction ~ Days + (Days | Subject)", time="Days")
    assert rep.dropout.loc[7, "in_study"] == pytest.approx(1.0)
    assert rep.dropout.loc[8, "in_study"] == pytest.approx(12 / 18)
    assert rep.dropout.loc[9, "observed"] == 12
    assert rep.missing_group_rows == 1
    assert "Dropout" in rep.summary() and "missing grouping factor" in rep.summary()


# -- forest -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def forest():
    data = SR.copy()
    data.loc[data.index % 9 == 0, "Sex"] = np.nan        # a categorical variable with holes
    return data, mm.impute(data, "ReadAchiev ~ ReadDis + SES + Sex + (1 | ID)", method="forest", seed=1,
                           n_estimators=25)


def test_forest_keeps_observed_values_and_reports_oob(forest):
    data, done = forest
    _observed_untouched(data, done, ["ReadDis", "SES", "Sex", "ReadAchiev"])
    assert set(done["Sex"].unique()) <= {"Boy", "Girl"}
    oob = done.attrs["oob_error"]
    assert set(oob.index) == {"ReadDis", "SES", "Sex"}
    assert 0 < oob.loc["SES", "oob_nrmse"] < 1.2 and 0 <= oob.loc["Sex", "oob_pfc"] <= 1
    conv = done.attrs["convergence"]
    assert conv["converged"] and 1 <= conv["sweeps"] <= 10
    assert done.attrs["imputed"]["SES"].sum() == 281


# -- pan and fcs --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.ConvergenceWarning)
        return mm.impute(SR, IMP, method="pan", m=10, seed=11, n_burn=500, n_iter=50)


def test_pan_observed_values_diagnostics_and_pooled_estimates_near_mitml(pan):
    assert pan.m == 10 and pan.method == "pan"
    for d in pan:
        _observed_untouched(SR, d, ["ReadDis", "SES", "ReadAchiev"])
    diag = pan.diagnostics
    assert {"Beta[Intercept,SES]", "Psi[Intercept:SES,Intercept:SES]", "Sigma[ReadDis,SES]"} <= set(diag.index)
    assert diag["Rhat"].between(0.9, 1.5).all()
    fits = mm.lmer(MODEL, pan)
    tab = fits.coef_table()
    ref = R["pan20"]["pool"]
    # within Monte-Carlo error of mitml's panImpute (m = 20): both pooled means carry sqrt(B/m)
    assert np.all(np.abs(tab["Estimate"].to_numpy() - ref["estimate"]) < 0.75 * np.array(ref["se"]))
    assert np.all(np.abs(tab["Std. Error"].to_numpy() / ref["se"] - 1) < 0.25)
    vc = fits.varcorr["vcov"].to_numpy()
    ext = dict(zip(R["pan20"]["extra"]["names"], R["pan20"]["extra"]["estimate"]))
    assert abs(vc[1] / ext["Residual~~Residual"] - 1) < 0.05
    assert abs(vc[0] / ext["Intercept~~Intercept|ID"] - 1) < 0.35
    assert fits.summary().count("Rhat") == 1


def test_fcs_imputes_and_reports_rhat():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.ConvergenceWarning)
        imps = mm.impute(SR, IMP, method="fcs", m=4, seed=3, maxit=10)
    for d in imps:
        _observed_untouched(SR, d, ["ReadDis", "SES"])
    assert imps.method == "fcs" and "Rhat" in imps.diagnostics
    tab = mm.lmer(MODEL, imps).coef_table()
    ref = R["pan20"]["pool"]
    assert np.all(np.abs(tab["Estimate"].to_numpy() - ref["estimate"]) < 1.0 * np.array(ref["se"]))


def _mar_data(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    J, n = 60, 15
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n) + rng.normal(scale=0.7, size=J)[g]
    y = 1 + 0.5 * x + rng.normal(scale=0.8, size=J)[g] + rng.normal(size=J * n)
    z = (y - y.mean()) / y.std()
    miss = rng.random(J * n) < 1 / (1 + np.exp(-(-0.6 + 2.0 * z)))   # x missing more often when y is high: MAR
    x = np.where(miss, np.nan, x)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def test_mi_is_less_biased_than_complete_case_under_mar():
    d = _mar_data(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        cc = mm.lmer("y ~ x + (1 | g)", d).fixef["x"]
        imps = mm.impute(d, "x ~ y + (1 | g)", method="pan", m=5, seed=2, n_burn=200, n_iter=20)
        mi = mm.lmer("y ~ x + (1 | g)", imps).fixef["x"]
    assert abs(mi - 0.5) < abs(cc - 0.5) / 2


def test_compare_missing_table_and_text():
    d = _mar_data(6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        c = mm.compare_missing("y ~ x + (1 | g)", d, methods=("complete", "forest", "pan"), m=3, seed=1,
                               n_burn=100, n_iter=10, n_estimators=20)
    t = c.table
    assert t.loc["nobs", ("complete", "Estimate")] == d["x"].notna().sum()
    assert t.loc["nobs", ("pan", "Estimate")] == len(d)
    assert "moved x by" in c.summary() and "SE" in c.summary()
    assert {"var: g (Intercept)", "var: Residual "} <= set(t.index)
    # the one-off imputation's SE is the smallest: it treats imputed values as observed
    assert t.loc["x", ("forest", "SE")] < t.loc["x", ("pan", "SE")]
    import matplotlib
    matplotlib.use("Agg")
    ax = c.plot()
    assert len(ax.get_yticklabels()) == 2          # (Intercept) and x
    import matplotlib.pyplot as plt
    plt.close("all")


# -- bad input ------------------------------------------------------------------------------------

def test_bad_inputs_get_clear_errors_or_reported_decisions():
    d = SR.copy()
    with pytest.raises(ValueError, match="at least 1"):
        mm.impute(d, IMP, method="pan", m=0)
    with pytest.raises(mm.DataError, match="'Nope' in the formula"):
        mm.impute(d, "ReadDis + Nope ~ ReadAchiev + (1 | ID)", method="pan", m=2)
    with pytest.raises(mm.DataError, match="not in the data"):
        mm.missing_report(d, "ReadAchiev ~ ReadDiss + (1 | ID)")
    d2 = d.assign(Empty=np.nan)
    with pytest.raises(mm.DataError, match="entirely missing"):
        mm.impute(d2, "ReadDis + Empty ~ ReadAchiev + (1 | ID)", method="pan", m=2)
    with pytest.raises(mm.DataError, match="entirely missing"):
        mm.impute(d2[["ID", "ReadDis", "Empty"]], group="ID", method="forest")
    with pytest.raises(mm.DataError, match="1 observed level"):
        mm.impute(d.assign(Sex=d["Sex"].where(d["Sex"] == "Boy")), "Sex ~ ReadAchiev + (1 | ID)", method="pan", m=2)
    with pytest.raises(mm.DataError, match="varies within"):
        mm.impute(d, ["ReadDis ~ ReadAchiev + (1 | ID)", "SES ~ 1"], method="pan", m=2)
    with pytest.raises(mm.DataError, match="level-2 column 'Sex' is categorical"):
        mm.impute(d.assign(Sex=d["ID"].map(lambda i: "a" if i % 2 else None)),
                  ["ReadDis ~ ReadAchiev + (1 | ID)", "Sex ~ 1"], method="pan", m=2)
    with pytest.raises(ValueError, match="left of both"):
        mm.impute(d, ["ReadDis ~ ReadAchiev + (1 | ID)", "ReadDis ~ 1"], method="pan", m=2)
    with pytest.raises(mm.DataError, match="left of '~'"):
        mm.impute(d, "ReadDis ~ SES + (1 | ID)", method="pan", m=2)
    with pytest.raises(ValueError, match="method must be"):
        mm.impute(d, IMP, method="mice")
    d3 = d.copy()
    d3.loc[:4, "ID"] = np.nan
    with pytest.warns(mm.MissingDataWarning, match="5 of 750 rows have a missing grouping factor"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.ConvergenceWarning)
        imps = mm.impute(d3, IMP, method="pan", m=2, seed=1, n_burn=30, n_iter=2)
    assert imps.info["rows_dropped"] == 5 and len(imps[0]) == 745


def test_inverse_wishart_draws_have_the_right_mean():
    from mixedmodels.missing.sampler import inv_wishart
    rng = np.random.default_rng(0)
    scale = np.array([[2.0, 0.5], [0.5, 1.0]])
    k = 8000
    chi = rng.chisquare(10.0 - np.arange(2), size=(k, 2))
    sig, root, prec = inv_wishart(10.0, np.repeat(scale[None], k, axis=0), chi, rng.standard_normal((k, 1)),
                                  np.tril_indices(2, -1))
    np.testing.assert_allclose(sig.mean(axis=0), scale / (10 - 2 - 1), rtol=0.05)   # E[IW(ν, S)] = S/(ν − d − 1)
    np.testing.assert_allclose(root @ root.transpose(0, 2, 1), sig, rtol=1e-10)
    np.testing.assert_allclose(prec @ sig, np.repeat(np.eye(2)[None], k, axis=0), atol=1e-8)
    # one chain goes to LAPACK directly: the same draw as the batched path
    one = inv_wishart(10.0, scale[None], chi[:1], np.full((1, 1), 0.3), np.tril_indices(2, -1))
    two = inv_wishart(10.0, np.repeat(scale[None], 2, axis=0), chi[:2], np.full((2, 1), 0.3), np.tril_indices(2, -1))
    for a, b in zip(one, two):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-12)


def test_closed_form_gaussian_draw_of_2x2_precisions_matches_the_cholesky_solve():
    from mixedmodels.missing.sampler import gaussian_draw_2x2
    rng = np.random.default_rng(1)
    m = rng.normal(size=(3, 5, 2, 2))
    prec = m @ m.transpose(0, 1, 3, 2) + np.eye(2)
    rhs, z = rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 5, 2))
    low = np.linalg.cholesky(prec)
    want = np.linalg.solve(low.transpose(0, 1, 3, 2), (np.linalg.solve(low, rhs[..., None]) + z[..., None]))[..., 0]
    np.testing.assert_allclose(gaussian_draw_2x2(prec[..., 0, 0], prec[..., 1, 0], prec[..., 1, 1], rhs, z), want,
                               rtol=1e-12)


def test_pan_with_random_slopes_under_mcar_agrees_with_the_full_data_fit():
    d = mm.load_dataset("sleepstudy")
    rng = np.random.default_rng(4)
    holes = d.assign(Reaction=d["Reaction"].where(rng.random(len(d)) > 0.2))   # 20% MCAR holes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MixedModelsWarning)
        imps = mm.impute(holes, "Reaction ~ Days + (1 + Days | Subject)", method="pan", m=5, seed=3, n_burn=300,
                         n_iter=20)
        fits = mm.lmer("Reaction ~ Days + (Days | Subject)", imps)
    assert "Psi[Days:Reaction,Days:Reaction]" in imps.diagnostics.index
    vals = imps.imputed_values("Reaction")
    assert vals.shape == (int(holes["Reaction"].isna().sum()), 5) and vals.notna().all().all()
    full = mm.lmer("Reaction ~ Days + (Days | Subject)", d)
    tab = fits.coef_table()
    se = full.coef_table()["Std. Error"]
    # the 80% observed rows and the imputations recover the full-data estimates within a fraction of their SE
    assert np.all(np.abs(tab["Estimate"] - full.fixef) < 0.5 * se)
