"""Level-2 and categorical variables in pan and fcs imputation, against R (tests/reference/
make_missing_l2cat_reference.R): mitml's jomoImpute (the joint model: level-2 variables and latent
normal categorical variables) and mice (2l.pan, 2l.bin, 2lonly.norm) on the same data, each pooled by
mitml's testEstimates.

Imputations are random, so the pooled estimates are compared within Monte-Carlo error: a pooled
estimate from m imputations varies by sqrt(B/m) (B the between-imputation variance, from RIV and the
standard error), so two independent runs differ by sqrt(B₁/m₁ + B₂/m₂); allowed: 4 of those, plus 10%
of a standard error for the differences between the samplers (priors; jomo fixes the latent variance,
ours reports it on that scale)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
from refs import REF

import mixedmodels as mm

R = json.loads((REF / "missing_l2cat_reference.json").read_text())
D = pd.read_csv(REF / "missing_l2cat_data.csv")
FORMULAS = ["ReadDis + SES + SexNA ~ ReadAchiev + (1 | ID)", "SchQual ~ 1"]
ANALYSIS = "ReadAchiev ~ ReadDis + SES + SexNA + SchQual + (1 | ID)"


def _between(se: np.ndarray, riv: np.ndarray, m: int) -> np.ndarray:
    """B from the pooled SE and RIV: T = Ū(1 + RIV), RIV = (1 + 1/m) B / Ū."""
    ubar = se ** 2 / (1 + riv)
    return riv * ubar / (1 + 1 / m)


def _agree(imps: mm.Imputations, ref: dict) -> pd.DataFrame:
    tab = mm.lmer(ANALYSIS, imps).coef_table()
    assert list(tab.index) == ref["names"]
    se_r, riv_r = np.array(ref["se"]), np.array(ref["riv"])
    mc = np.sqrt(_between(tab["Std. Error"].to_numpy(), tab["RIV"].to_numpy(), imps.m) / imps.m
                 + _between(se_r, riv_r, R["m"]) / R["m"])
    diff = np.abs(tab["Estimate"].to_numpy() - ref["estimate"])
    assert np.all(diff < 4 * mc + 0.1 * se_r), (diff, mc)
    np.testing.assert_allclose(tab["Std. Error"], se_r, rtol=0.25)
    return tab


def _checks(imps: mm.Imputations, ref: dict) -> None:
    miss_sex, miss_l2 = D["SexNA"].isna().to_numpy(), D["SchQual"].isna().to_numpy()
    assert miss_sex.sum() == R["n_missing_sex"]
    for d in imps:
        obs = ~miss_sex
        assert (d.loc[obs, "SexNA"] == D.loc[obs, "SexNA"]).all()          # observed categories untouched
        assert set(d["SexNA"]) == {"Boy", "Girl"}                           # only observed levels imputed
        assert d.groupby("ID")["SchQual"].nunique().max() == 1              # one value per school
        assert (d.loc[~miss_l2, "SchQual"].to_numpy() == D.loc[~miss_l2, "SchQual"].to_numpy()).all()
        assert d[["ReadDis", "SES"]].notna().all().all()
    girl = np.mean([(d.loc[miss_sex, "SexNA"] == "Girl").mean() for d in imps])
    assert abs(girl - ref["girl_share"]) < 0.06
    l2 = np.mean([d.loc[miss_l2, "SchQual"].mean() for d in imps])
    assert abs(l2 - ref["schqual_mean"]) < 0.3


def test_pan_with_level2_and_categorical_variables_agrees_with_jomo():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.ConvergenceWarning)
        pan = mm.impute(D, FORMULAS, method="pan", m=10, seed=5, n_burn=1500, n_iter=50)
    _checks(pan, R["jomo"])
    _agree(pan, R["jomo"])
    diag = pan.diagnostics
    assert {"Beta2[Intercept,SchQual]", "Psi[Intercept:SexNA.Girl,SchQual]", "Sigma[SexNA.Girl,SexNA.Girl]"} \
        <= set(diag.index)
    assert pan.info["levels"] == {"SexNA": ["Boy", "Girl"]} and pan.info["level2"] == ["SchQual"]


def test_fcs_with_level2_and_categorical_variables_agrees_with_mice():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.ConvergenceWarning)
        imps = mm.impute(D, FORMULAS, method="fcs", m=10, seed=6, maxit=20)
    _checks(imps, R["mice"])
    _agree(imps, R["mice"])
    assert imps.diagnostics["Rhat"].notna().all()


def test_three_level_categorical_and_a_level2_only_formula_without_missing_level1():
    d = D.copy()
    d["Group"] = np.where(d["SES"].fillna(50) > 60, "high", np.where(d["SES"].fillna(50) > 40, "mid", "low"))
    d.loc[d.index % 7 == 0, "Group"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.ConvergenceWarning)
        imps = mm.impute(d, ["Group ~ ReadAchiev + (1 | ID)", "SchQual ~ 1"], method="pan", m=3, seed=1,
                         n_burn=200, n_iter=20)
    for x in imps:
        assert set(x["Group"]) == {"high", "low", "mid"}
        assert x["SchQual"].notna().all()
    assert imps.info["levels"]["Group"] == ["high", "low", "mid"]
