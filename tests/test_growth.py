"""Latent growth curve against lavaan and lme4 (ML): the equal-residual-variance LGC is the ML LMM.

References: tests/reference/more_reference.json (lavaan growth() and lmer(REML=FALSE) on
sleepstudy) and lme4_reference.json (gpa, ML).
"""

import numpy as np
import pytest

from mixedmodels.alternatives.growth import growth_curve
from mixedmodels.presentation.datasets import load_dataset


def test_loglik_equals_lavaan_and_ml_lmm(more_ref, sleepstudy):
    ref = more_ref["growth_curve"]
    g = growth_curve(sleepstudy, id="Subject", time="Days", y="Reaction")
    assert g.converged
    assert g.loglik == pytest.approx(ref["loglik"], abs=1e-5)
    assert g.loglik == pytest.approx(ref["lmm_ml_loglik"], abs=1e-5)
    # lavaan stops at its own tolerance; the means agree to its precision
    assert g.params["i~1"] == pytest.approx(ref["intercept_mean"], abs=1e-4)
    assert g.params["s~1"] == pytest.approx(ref["slope_mean"], abs=1e-4)
    assert g.wide.shape == (18, 10)
    tab = g.coef_table()
    assert {"Estimate", "Std. Error", "Pr(>|z|)"} <= set(tab.columns)
    assert g.npar == 6 and "lmer(" in g.summary()


def test_gpa_growth_curve_equals_lme4_ml(lme4_ref):
    ref = lme4_ref["gpa_1_ml"]
    g = growth_curve(load_dataset("gpa"), id="student", time="occasion", y="gpa")
    assert g.loglik == pytest.approx(ref["loglik"], abs=1e-5)
    assert g.params["i~1"] == pytest.approx(ref["fixef"]["(Intercept)"], abs=1e-5)
    assert g.params["s~1"] == pytest.approx(ref["fixef"]["occasion"], abs=1e-5)
    vc = {(v["var1"], v["var2"]): v["vcov"] for v in ref["varcorr"]}
    assert g.params["i~~i"] == pytest.approx(vc[("(Intercept)", None)], rel=1e-3)
    assert g.params["s~~s"] == pytest.approx(vc[("occasion", None)], rel=1e-3)
    assert g.params["i~~s"] == pytest.approx(vc[("(Intercept)", "occasion")], rel=1e-3)
    assert g.params.iloc[-1] == pytest.approx(ref["sigma"] ** 2, rel=1e-4)


def test_free_residual_variances(sleepstudy):
    equal = growth_curve(sleepstudy, id="Subject", time="Days", y="Reaction")
    free = growth_curve(sleepstudy, id="Subject", time="Days", y="Reaction", residual="free")
    assert free.npar == 15
    # the equal-variance model is nested in the free one
    assert free.loglik >= equal.loglik - 1e-8


def test_compare_lmm_prints_the_equivalence(more_ref, sleepstudy, capsys):
    pytest.importorskip("mixedmodels.models.lmm")
    g = growth_curve(sleepstudy, id="Subject", time="Days", y="Reaction")
    table = g.compare_lmm()
    out = capsys.readouterr().out
    assert "REML=FALSE" in out and "(Intercept)" in out
    assert table.loc["log-likelihood", "LMM (ML)"] == pytest.approx(more_ref["growth_curve"]["lmm_ml_loglik"], abs=1e-5)
    assert abs(table.loc["log-likelihood", "difference"]) < 1e-5


def test_covariate_and_fiml_match_the_lmm(sleepstudy):
    lmm = pytest.importorskip("mixedmodels")
    gpa = load_dataset("gpa")
    g = growth_curve(gpa, id="student", time="occasion", y="gpa", covariates="sex")
    assert {"i~sexmale", "s~sexmale"} <= set(g.params.index)
    m = lmm.lmer("gpa ~ occasion * sex + (1 + occasion | student)", gpa, reml=False)
    assert g.loglik == pytest.approx(m.loglik, abs=1e-5)
    assert g.params["s~sexmale"] == pytest.approx(m.fixef["occasion:sexmale"], abs=1e-4)
    # missing time points: FIML gives the LMM fitted to the remaining rows
    rng = np.random.default_rng(7)
    holes = sleepstudy.drop(index=rng.choice(len(sleepstudy), 25, replace=False))
    with pytest.warns(UserWarning, match="full-information ML"):
        gf = growth_curve(holes, id="Subject", time="Days", y="Reaction")
    assert gf.n_incomplete > 0
    mf = lmm.lmer("Reaction ~ Days + (Days | Subject)", holes, reml=False)
    assert gf.loglik == pytest.approx(mf.loglik, abs=1e-5)


def test_bad_input(sleepstudy):
    jitter = sleepstudy.assign(Days=sleepstudy["Days"] + np.random.default_rng(1).uniform(0, 0.5, len(sleepstudy)))
    with pytest.raises(ValueError, match="time points differ between subjects.*Supported"):
        growth_curve(jitter, id="Subject", time="Days", y="Reaction")
    with pytest.raises(ValueError, match="more than one row"):
        growth_curve(sleepstudy.assign(Days=sleepstudy["Days"] // 2), id="Subject", time="Days", y="Reaction")
    with pytest.raises(ValueError, match="'Subject' .*must be numeric"):
        growth_curve(sleepstudy, id="Days", time="Subject", y="Reaction")
    with pytest.raises(ValueError, match="'dose' vary within 'Subject'"):
        growth_curve(sleepstudy.assign(dose=sleepstudy["Days"] * 2), id="Subject", time="Days", y="Reaction",
                     covariates="dose")
    with pytest.raises(ValueError, match="'nosuch' not found"):
        growth_curve(sleepstudy, id="Subject", time="nosuch", y="Reaction")
