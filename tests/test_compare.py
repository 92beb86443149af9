"""anova and aic_table against lme4 (issue 2's table and lme4_reference.json), cAIC rows against cAIC4."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.exceptions import DataError, ModelComparisonWarning
from mixedmodels.postestimation.compare import aic_table, anova

GPA = {
    "gpa_1": "gpa ~ occasion + (1 + occasion | student)",
    "gpa_2": "gpa ~ occasion + sex + (1 + occasion | student)",
    "gpa_3": "gpa ~ occasion + (1 | student)",
}
SMALL = {  # reference key -> dataset (fast fits only)
    "gpa_1": "gpa", "gpa_2": "gpa", "gpa_3": "gpa", "gpa_1_ml": "gpa", "gpa_2_ml": "gpa",
    "sleepstudy_reml": "sleepstudy", "sleepstudy_ml": "sleepstudy",
    "sleepstudy_zerocorr": "sleepstudy", "penicillin": "Penicillin", "pastes": "Pastes",
    "dyestuff": "Dyestuff",
}


@pytest.fixture(scope="module")
def gpa_fits(gpa):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {k: mm.lmer(f, gpa) for k, f in GPA.items()}


def test_anova_refit_gpa(gpa_fits):
    m1, m2 = gpa_fits["gpa_1"], gpa_fits["gpa_2"]
    table = anova(m1, m2, refit=True)
    row = table.iloc[1]
    assert row["Chisq"] == pytest.approx(10.166, abs=5e-4)
    assert int(row["Df"]) == 1
    assert row["Pr(>Chisq)"] == pytest.approx(0.001431, abs=5e-7)
    assert table.attrs["refit"]


def test_anova_refit_uses_ml_logliks(gpa_fits, lme4_ref):
    table = anova(gpa_fits["gpa_1"], gpa_fits["gpa_2"], refit=True)
    np.testing.assert_allclose(table["logLik"].to_numpy(),
                               [lme4_ref["gpa_1_ml"]["loglik"], lme4_ref["gpa_2_ml"]["loglik"]],
                               rtol=1e-6)
    np.testing.assert_allclose(table["AIC"].to_numpy(),
                               [lme4_ref["gpa_1_ml"]["aic"], lme4_ref["gpa_2_ml"]["aic"]], rtol=1e-6)


def test_anova_reml_random_effects(gpa_fits):
    table = anova(gpa_fits["gpa_3"], gpa_fits["gpa_1"], refit=False)
    assert list(table.index) == ["gpa_3", "gpa_1"] or table.iloc[0]["npar"] == 4
    assert table.iloc[1]["Chisq"] == pytest.approx(147.936, abs=5e-4)
    assert int(table.iloc[1]["Df"]) == 2


def test_anova_reml_different_fixed_effects_warns(gpa_fits):
    with pytest.warns(ModelComparisonWarning):
        anova(gpa_fits["gpa_1"], gpa_fits["gpa_2"], refit=False)


def test_aic_table_gpa(gpa_fits):
    with pytest.warns(ModelComparisonWarning, match="different fixed effects"):
        table = aic_table(gpa_fits)
    assert list(table.index) == ["gpa_2", "gpa_1", "gpa_3"]
    np.testing.assert_allclose(table["AIC"].to_numpy(), [269.785, 272.957, 416.893], atol=5e-4)
    np.testing.assert_allclose(table["dAIC"].to_numpy(), [0.0, 3.171, 147.108], atol=5e-4)
    w = np.exp(-0.5 * np.array([0.0, 3.171217, 147.107536]))
    np.testing.assert_allclose(table["weight"].to_numpy(), w / w.sum(), rtol=1e-4)


@pytest.mark.parametrize("key", list(SMALL))
def test_aic_table_matches_lme4(key, lme4_ref):
    ref = lme4_ref[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mm.lmer(ref["formula"], mm.load_dataset(SMALL[key]), reml=ref["reml"])
    row = aic_table({key: m}).loc[key]
    assert row["logLik"] == pytest.approx(ref["loglik"], rel=1e-6)
    assert row["AIC"] == pytest.approx(ref["aic"], rel=1e-6)
    assert row["BIC"] == pytest.approx(ref["bic"], rel=1e-6)
    assert row["npar"] == ref["npar"]
    k, n = ref["npar"], ref["nobs"]
    assert row["AICc"] == pytest.approx(ref["aic"] + 2 * k * (k + 1) / (n - k - 1), rel=1e-6)


def test_aic_table_caic_matches_caic4(sleepstudy, more_ref):
    fits = {f: mm.lmer(f, sleepstudy) for f in more_ref["caic"]}
    table = aic_table(fits, criterion="cAIC")
    for f, ref in more_ref["caic"].items():
        assert table.loc[f, "cAIC"] == pytest.approx(ref["caic"], abs=1e-3)
        assert table.loc[f, "df"] == pytest.approx(ref["df"], abs=1e-4)
        assert table.loc[f, "cond_logLik"] == pytest.approx(ref["conditional_loglik"], abs=1e-3)
    assert table.index[0] == "Reaction ~ Days + (Days | Subject)"
    delta = table["dcAIC"].iloc[1]
    assert delta == pytest.approx(1767.1182601365 - 1711.61774197854, abs=2e-3)
    assert table["weight"].sum() == pytest.approx(1.0)


def test_aic_table_refuses_different_data(sleepstudy):
    m1 = mm.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    m2 = mm.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy.iloc[:170])
    with pytest.raises(DataError, match="same data"):
        aic_table({"a": m1, "b": m2})
    other = sleepstudy.assign(Reaction=np.log(sleepstudy["Reaction"]))
    m3 = mm.lmer("Reaction ~ Days + (1 | Subject)", other)
    with pytest.raises(DataError, match="response"):
        aic_table({"a": m1, "c": m3})


def test_aic_table_mixed_reml_ml_warns(sleepstudy):
    m1 = mm.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    m2 = mm.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, reml=False)
    with pytest.warns(ModelComparisonWarning, match="REML and ML"):
        aic_table({"reml": m1, "ml": m2})


def test_aic_table_bad_criterion(sleepstudy):
    m = mm.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    with pytest.raises(ValueError, match="criterion"):
        aic_table({"m": m}, criterion="DIC")


def test_anova_bootstrap_column():
    """Parametric bootstrap LRT: with χ² = 42 on 2 df no simulated statistic comes close,
    so the p-value is pbkrtest's floor 1/(nsim + 1)."""
    import pytest as _pytest

    s = mm.load_dataset("sleepstudy")
    m0 = mm.lmer("Reaction ~ Days + (1 | Subject)", s)
    m1 = mm.lmer("Reaction ~ Days + (Days | Subject)", s)
    table = mm.anova(m0, m1, test="bootstrap", nsim=20, seed=1)
    assert table["Chisq"].iloc[1] == _pytest.approx(42.139, abs=1e-3)  # lme4: anova(fm0, fm1)
    assert table["Pr(boot)"].iloc[1] == _pytest.approx(1 / 21)
    with _pytest.raises(ValueError, match="test must be"):
        mm.anova(m0, m1, test="F")
