"""Estimated marginal means and pairwise contrasts against R's emmeans 1.8.4 (pbkrtest for
Kenward-Roger, lmerTest for Satterthwaite); values made by tests/reference/make_emmeans_reference.R."""

import functools
import json

import numpy as np
import pandas as pd
import pytest
from refs import REF

import mixedmodels as mm
from mixedmodels.postestimation.emmeans import p_adjust

EMM = json.loads((REF / "emmeans_reference.json").read_text())
RTOL = 1e-6


def _num(values):
    return np.array([np.inf if v == "Inf" else v for v in values], dtype=float)


def _check(frame: pd.DataFrame, ref: dict, mapping: dict, rtol: float | None = None, atol: float = 0.0):
    rtol = RTOL if rtol is None else rtol
    for ours, theirs in mapping.items():
        got = frame[ours].to_numpy()
        want = ref[theirs]
        if isinstance(want[0], str) and want[0] != "Inf":
            assert [str(v) for v in got] == want, ours
        else:
            np.testing.assert_allclose(got.astype(float), _num(want), rtol=rtol, atol=atol, err_msg=ours)


EMM_COLS = {"emmean": "emmean", "SE": "SE", "df": "df", "lower.CL": "lower.CL", "upper.CL": "upper.CL"}
ASY_COLS = {"emmean": "emmean", "SE": "SE", "lower.CL": "asymp.LCL", "upper.CL": "asymp.UCL"}
PAIR_COLS = {"contrast": "contrast", "estimate": "estimate", "SE": "SE", "df": "df", "t.ratio": "t.ratio"}


@pytest.fixture(scope="module")
def cake():
    return mm.load_dataset("cake")


@pytest.fixture(scope="module")
def m_temp(cake):
    return mm.lmer("angle ~ recipe * temp + (1 | recipe:replicate)", cake)


@pytest.fixture(scope="module")
def m_by(cake):
    return mm.lmer("angle ~ recipe * temperature + (1 | recipe:replicate)", cake)


@pytest.fixture(scope="module")
def cbpp():
    return mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.load_dataset("cbpp"),
                    family="binomial")


def test_factor_and_covariate_kr_satterthwaite_asymptotic(m_temp):
    ref = EMM["cake_temp"]
    e = mm.emmeans(m_temp, "recipe")                     # Kenward-Roger by default for an LMM
    _check(e.to_frame(), ref["kr"], {"recipe": "recipe", **EMM_COLS})
    _check(mm.emmeans(m_temp, "recipe", ddf="satterthwaite").to_frame(), ref["satterthwaite"], EMM_COLS)
    asy = mm.emmeans(m_temp, "recipe", ddf="asymptotic").to_frame()
    _check(asy, ref["asymptotic"], ASY_COLS)
    assert np.all(np.isinf(asy["df"]))
    _check(mm.emmeans(m_temp, "recipe", at={"temp": 190}).to_frame(), ref["kr_at190"], EMM_COLS)
    _check(mm.emmeans(m_temp, "recipe", level=0.90).to_frame(), ref["kr_level90"], EMM_COLS)
    assert "temp = 200" in repr(e)                         # the covariate's mean, as emmeans


def test_pairs_adjustments(m_temp):
    ref = EMM["cake_temp"]
    kr = mm.emmeans(m_temp, "recipe")
    sat = mm.emmeans(m_temp, "recipe", ddf="satterthwaite")
    asy = mm.emmeans(m_temp, "recipe", ddf="asymptotic")
    for emm, adjust, key in ((kr, "tukey", "pairs_kr_tukey"), (kr, "holm", "pairs_kr_holm"),
                             (sat, "tukey", "pairs_sat_tukey"), (sat, "bonferroni", "pairs_sat_bonferroni")):
        frame = emm.pairs(adjust=adjust).to_frame()
        _check(frame, ref[key], PAIR_COLS)
        _check(frame, ref[key], {"p.value": "p.value"}, atol=1e-7)
    frame = asy.pairs(adjust="none").to_frame()
    _check(frame, ref["pairs_asy_none"], {"estimate": "estimate", "SE": "SE", "z.ratio": "z.ratio",
                                          "p.value": "p.value"})
    # Tukey-adjusted (simultaneous) intervals: qtukey
    _check(kr.pairs().to_frame(), ref["pairs_kr_tukey_ci"], {"lower.CL": "lower.CL", "upper.CL": "upper.CL"})


def test_by_and_averaging_over_a_factor(m_by):
    ref = EMM["cake_by"]
    e = mm.emmeans(m_by, "recipe", by="temperature")
    _check(e.to_frame(), ref["kr_by"], {"recipe": "recipe", "temperature": "temperature", **EMM_COLS})
    for adjust, key in (("tukey", "pairs_by_tukey"), ("holm", "pairs_by_holm")):
        frame = e.pairs(adjust=adjust).to_frame()
        _check(frame, ref[key], {**PAIR_COLS, "temperature": "temperature"}, atol=1e-9)
        _check(frame, ref[key], {"p.value": "p.value"}, atol=1e-7)
    text = repr(e)
    assert "temperature = 175:" in text and max(len(line) for line in text.splitlines()) <= 80
    # means over temperature averaged over recipe with equal weights; the contrast labels carry
    # the variable's name for number-like levels, as emmeans
    t = mm.emmeans(m_by, "temperature", ddf="satterthwaite")
    _check(t.to_frame(), ref["sat_temperature"], EMM_COLS)
    for adjust, key in (("holm", "pairs_temperature_holm"), ("tukey", "pairs_temperature_tukey")):
        frame = t.pairs(adjust=adjust).to_frame()
        _check(frame, ref[key], PAIR_COLS)
        _check(frame, ref[key], {"p.value": "p.value"}, atol=1e-7)


def test_glmm_grid_is_exact_at_rs_estimates(cbpp):
    # R's side is glmmTMB's fit (the exact Laplace optimum and Hessian, which ours equal: lme4's
    # optimum is that of its PIRLS-tolerance deviance, 2e-4 away in β); at R's own β and vcov the
    # grid gives emmeans' numbers to 1e-9
    ref = EMM["cbpp"]
    beta_r = np.array(list(ref["fixef"].values()))
    np.testing.assert_allclose(cbpp.fixef.to_numpy(), beta_r, atol=1e-6)
    e = mm.emmeans(cbpp, "period")
    np.testing.assert_allclose(e.L @ beta_r, ref["link"]["emmean"], rtol=1e-9)
    V = np.array(ref["vcov"])
    np.testing.assert_allclose(np.sqrt(np.einsum("ij,jk,ik->i", e.L, V, e.L)), ref["link"]["SE"], rtol=1e-9)


def test_glmm_link_response_and_regrid(cbpp):
    ref = EMM["cbpp"]
    # β and vcov agree with glmmTMB's to ~3e-7 (see above)
    chk = functools.partial(_check, rtol=1e-5)
    e = mm.emmeans(cbpp, "period")
    chk(e.to_frame(), ref["link"], ASY_COLS)
    r = mm.emmeans(cbpp, "period", type="response").to_frame()
    chk(r, ref["response"], {"prob": "prob", "SE": "SE", "lower.CL": "asymp.LCL", "upper.CL": "asymp.UCL"})
    link_pairs = e.pairs().to_frame()
    chk(link_pairs, ref["pairs_link_tukey"], {"contrast": "contrast", "estimate": "estimate", "SE": "SE",
                                                 "z.ratio": "z.ratio"})
    chk(link_pairs, ref["pairs_link_tukey"], {"p.value": "p.value"}, atol=1e-7)
    ratios = mm.emmeans(cbpp, "period", type="response").pairs()
    frame = ratios.to_frame()
    chk(frame, ref["pairs_response_tukey"], {"contrast": "contrast", "odds.ratio": "odds.ratio", "SE": "SE",
                                                "z.ratio": "z.ratio"})
    chk(frame, ref["pairs_response_tukey_ci"], {"lower.CL": "asymp.LCL", "upper.CL": "asymp.UCL"})
    assert "odds ratio" in repr(ratios)
    g = e.regrid()
    chk(g.to_frame(), ref["regrid"], {"prob": "prob", "SE": "SE", "lower.CL": "asymp.LCL",
                                         "upper.CL": "asymp.UCL"})
    frame = g.pairs(adjust="holm").to_frame()
    chk(frame, ref["pairs_regrid_holm"], {"contrast": "contrast", "estimate": "estimate", "SE": "SE",
                                             "z.ratio": "z.ratio"})
    chk(frame, ref["pairs_regrid_holm"], {"p.value": "p.value"}, atol=1e-7)


def test_reprs_and_errors(m_temp, cbpp):
    e = mm.emmeans(m_temp, "recipe")
    html = e._repr_html_()
    assert "<table" in html and "kenward-roger" in html
    assert "<table" in e.pairs()._repr_html_()
    assert "P value adjustment: tukey" in repr(e.pairs())
    with pytest.raises(ValueError, match="not a variable of the fixed effects"):
        mm.emmeans(m_temp, "Recipe")
    with pytest.raises(ValueError, match="adjust must be"):
        e.pairs(adjust="scheffe-ish")
    with pytest.raises(ValueError, match="not in the fitted data"):
        mm.emmeans(m_temp, "recipe", at={"recipe": ["Z"]})
    with pytest.raises(ValueError, match="applies to linear mixed models only"):
        mm.emmeans(cbpp, "period", ddf="kenward-roger")


def test_p_adjust_matches_r():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.2), "holm") = 0.04 0.09 0.09 0.20
    np.testing.assert_allclose(p_adjust(np.array([0.01, 0.04, 0.03, 0.2]), "holm"), [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(p_adjust(np.array([0.01, 0.3]), "bonferroni"), [0.02, 0.6])
