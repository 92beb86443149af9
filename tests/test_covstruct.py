"""glmmTMB's covariance-structure terms (us, diag, cs, ar1, ou) against glmmTMB
(tests/reference/make_covstruct_reference.R) and their θ → T maps against their definitions."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from refs import REF, values

import mixedmodels as mm
from mixedmodels.core.parametrization import ThetaParametrization
from mixedmodels.core.structures import AR1, OU, CompoundSymmetry, Diagonal, Unstructured
from mixedmodels.exceptions import DataError
from mixedmodels.spec.formula import FormulaError

COV = json.loads((REF / "covstruct_reference.json").read_text())
PANEL = pd.read_csv(REF / "covstruct_panel.csv")
OU_DATA = pd.read_csv(REF / "covstruct_ou.csv")


def _sleep() -> pd.DataFrame:
    d = mm.load_dataset("sleepstudy").copy()
    d["fdays"] = "d" + (d["Days"] // 4).astype(str)   # as the R script's factor(Days %/% 4)
    return d


CASES = {
    "panel_ar1": ("y ~ time + x + (1 | id) + ar1(ftime + 0 | id)", PANEL, None),
    "panel_ar1_reml": ("y ~ time + x + (1 | id) + ar1(ftime + 0 | id)", PANEL, None),
    "panel_ar1_only": ("y ~ time + x + ar1(ftime + 0 | id)", PANEL, None),
    "panel_poisson_ar1": ("count ~ time + x + ar1(ftime + 0 | id)", PANEL, "poisson"),
    "ou": ("y ~ x + ou(time + 0 | id)", OU_DATA, None),
    "sleep_us": ("Reaction ~ Days + us(Days | Subject)", None, None),
    "sleep_diag": ("Reaction ~ Days + diag(Days | Subject)", None, None),
    "sleep_cs": ("Reaction ~ Days + cs(0 + fdays | Subject)", None, None),
}
_FITS: dict = {}


def fit(key: str):
    if key not in _FITS:
        formula, data, family = CASES[key]
        data = _sleep() if data is None else data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = (mm.lmer(formula, data, reml=key.endswith("_reml")) if family is None
                          else mm.glmer(formula, data, family=family))
    return _FITS[key]


def _structure_params(ref_term: dict, kind: str, times=None) -> np.ndarray:
    """glmmTMB's VarCorr of a term as the structure's parameters (sd, ρ, rate)."""
    sd = values(ref_term["sd"])
    cor = np.asarray(ref_term["cor"], dtype=float)
    if kind == "ar1":
        return np.array([sd[0], cor[0, 1]])
    if kind == "ou":
        return np.array([sd[0], -np.log(cor[0, 1]) / (times[1] - times[0])])
    if kind == "cs":
        return np.append(sd, cor[0, 1])
    return sd if kind == "diag" or len(sd) == 1 else np.array([sd[0], cor[0, 1], sd[1]])


@pytest.mark.parametrize("key", list(CASES))
def test_matches_glmmtmb(key):
    m, ref = fit(key), COV[key]
    assert abs(m.loglik - ref["loglik"]) / abs(ref["loglik"]) < 1e-6
    np.testing.assert_allclose(m.fixef[list(ref["fixef"])].to_numpy(), values(ref["fixef"]), rtol=1e-4, atol=1e-6)
    # glmmTMB's SEs invert the joint Hessian of (β, θ); lme4's (and ours) condition on θ. They
    # agree to ~1e-5 for us/diag, ~1% where β and the structure's parameters interact (cs).
    se = np.sqrt(np.diag(m.vcov.to_numpy()))
    np.testing.assert_allclose(se, values(ref["se"]), rtol=2e-2)
    if m.has_scale:
        assert m.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    param = m.factor.parametrization
    sigma = m.sigma if m.has_scale else 1.0
    ours = param.to_sdcor(m.theta, sigma)[:-1]
    pos = 0
    for term, (name, ref_term) in zip(param.terms, ref["terms"].items()):
        size = term.n_theta
        expected = _structure_params(ref_term, term.kind, ref.get("times"))
        np.testing.assert_allclose(ours[pos:pos + size], expected, rtol=1e-3, atol=1e-4, err_msg=name)
        pos += size


def test_us_is_the_plain_term_and_matches_lme4():
    m = fit("sleep_us")
    plain = mm.lmer("Reaction ~ Days + (Days | Subject)", _sleep(), reml=False)
    np.testing.assert_array_equal(m.theta, plain.theta)
    ref = COV["sleep_us_lme4"]
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-9)
    np.testing.assert_allclose(m.fixef.to_numpy(), values(ref["fixef"]), rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov.to_numpy())), values(ref["se"]), rtol=1e-4)


def test_varcorr_summary_and_tidy_show_the_structure():
    m = fit("panel_ar1")
    ref = COV["panel_ar1"]["terms"]["id.1"]
    vc = m.varcorr
    rho = vc[(vc["group"] == "id.1") & (vc["var2"] == "rho")]["sdcor"]
    assert len(rho) == 1 and rho.iloc[0] == pytest.approx(ref["cor"][0][1], rel=1e-3)
    sd = vc[(vc["group"] == "id.1") & vc["var2"].isna()]["sdcor"]
    assert len(sd) == 1 and sd.iloc[0] == pytest.approx(ref["sd"][0], rel=1e-3)
    assert "rho 0.72" in str(m.summary())
    tidy = mm.tidy(m, effects="ran_pars")
    assert tidy["term"].tolist() == ["sd__(Intercept)", "sd__ar1(ftime + 0)", "rho__ar1(ftime + 0)",
                                     "sd__Observation"]
    ou = fit("ou")
    rate = ou.varcorr.query("var2 == 'rate'")["sdcor"].iloc[0]
    times = COV["ou"]["times"]
    assert rate == pytest.approx(-np.log(COV["ou"]["terms"]["id"]["cor"][0][1]) / (times[1] - times[0]), rel=1e-3)
    assert "rate 0.70" in str(ou.summary())


def test_ou_predicts_new_data_with_the_fitted_times():
    m = fit("ou")
    new = OU_DATA.iloc[:12]
    np.testing.assert_allclose(np.asarray(m.predict(new)), np.asarray(m.predict())[:12], rtol=1e-10)


# --- the θ → T maps ------------------------------------------------------------------------------

STRUCTURES = [
    (Unstructured(3), np.array([1.2, 0.3, -0.4, 0.8, 0.1, 0.5])),
    (Diagonal(3), np.array([1.2, 0.0, 0.7])),
    (CompoundSymmetry(4), np.array([0.9, 1.4, 0.3, 2.0, 0.6])),
    (CompoundSymmetry(2), np.array([0.9, 1.4, -0.8])),
    (AR1(6), np.array([1.3, -0.7])),
    (OU(5, (0.0, 0.5, 1.5, 2.0, 3.5)), np.array([0.8, np.log(0.6)])),
]


@pytest.mark.parametrize("structure,theta", STRUCTURES, ids=lambda s: getattr(s, "kind", ""))
def test_jacobian_is_the_derivative_of_T(structure, theta):
    jac = structure.jacobian(theta)
    assert jac.shape == (structure.n_theta, structure.ncols, structure.ncols)
    h = 1e-6
    for k in range(structure.n_theta):
        up, down = theta.copy(), theta.copy()
        up[k] += h
        down[k] -= h
        fd = (structure.factor(up) - structure.factor(down)) / (2 * h)
        np.testing.assert_allclose(jac[k], fd, atol=1e-7)


def test_structures_give_their_named_correlations():
    lag = np.abs(np.subtract.outer(np.arange(6), np.arange(6)))
    T = AR1(6).factor(np.array([1.3, -0.7]))
    rho = -0.7 / np.sqrt(1 + 0.49)
    np.testing.assert_allclose(T @ T.T, 1.3 ** 2 * rho ** lag, atol=1e-12)
    t = np.array([0.0, 0.5, 1.5, 2.0, 3.5])
    T = OU(5, tuple(t)).factor(np.array([0.8, np.log(0.6)]))
    np.testing.assert_allclose(T @ T.T, 0.64 * np.exp(-0.6 * np.abs(np.subtract.outer(t, t))), atol=1e-12)
    cs = CompoundSymmetry(4)
    s = np.array([0.9, 1.4, 0.3, 2.0])
    T = cs.factor(np.append(s, 0.6))
    r = cs.rho(0.6)
    assert -1 / 3 < r < 1
    np.testing.assert_allclose(T @ T.T, np.outer(s, s) * ((1 - r) * np.eye(4) + r), atol=1e-12)
    for structure, theta in STRUCTURES:
        assert np.allclose(np.triu(structure.factor(theta), 1), 0.0)


@pytest.mark.parametrize("structure,theta", STRUCTURES, ids=lambda s: getattr(s, "kind", ""))
def test_parameters_round_trip(structure, theta):
    back = structure.from_params(structure.to_params(theta, 2.5), 2.5)
    T, T_back = structure.factor(theta), structure.factor(back)
    np.testing.assert_allclose(T_back @ T_back.T, T @ T.T, atol=1e-10)


def test_lme4_layout_is_unchanged_by_the_structures():
    plain = ThetaParametrization((1, 2, 3), (True, True, False))
    explicit = ThetaParametrization((1, 2, 3), (True, True, False), (Unstructured(1), Unstructured(2), Diagonal(3)))
    theta = np.array([0.7, 1.1, -0.2, 0.5, 0.9, 0.0, 1.3])
    for a, b in zip(plain.split(theta), explicit.split(theta)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(plain.lower_bounds(), explicit.lower_bounds())
    np.testing.assert_array_equal(plain.start(), explicit.start())
    assert plain.sdcor_names(["a", "b", "c"], [["1"], ["1", "x"], ["1", "x", "z"]]) == \
        explicit.sdcor_names(["a", "b", "c"], [["1"], ["1", "x"], ["1", "x", "z"]])
    jac = plain.jacobian(theta)
    assert [j.shape for j in jac] == [(1, 1, 1), (3, 2, 2), (3, 3, 3)]


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("formula,data,error,match", [
    ("y ~ x + ar1(ftime + 0 | id)", "one_time", DataError, r"ar1\(ftime \+ 0 \| id\): found 1 level of 'ftime'"),
    ("y ~ x + ou(time + 0 | id)", "one_time", DataError, r"ou\(time \+ 0 \| id\): found 1 distinct time"),
    ("y ~ x + ar1(ftime | id)", None, FormulaError, r"ar1\(ftime \| id\) has an intercept.*ar1\(ftime \+ 0"),
    ("y ~ x + ar1(time + 0 | id)", None, DataError, r"ar1\(time \+ 0 \| id\): ar1 needs 'time' to be a factor"),
    ("y ~ x + toep(ftime + 0 | id)", None, FormulaError, r"unknown covariance structure 'toep"),
    ("y ~ x + ou(ftime + 0 | id)", None, DataError, r"ou\(ftime \+ 0 \| id\): ou needs 'ftime' to be one numeric"),
    ("y ~ x + cs(1 | id)", None, DataError, r"cs\(1 \| id\) has 1 column"),
    ("y ~ x + ar1(ftime + 0 || id)", None, FormulaError, r"takes one '\|'"),
])
def test_bad_structure_terms(formula, data, error, match):
    d = PANEL[PANEL["ftime"] == "t0"] if data == "one_time" else PANEL
    with pytest.raises(error, match=match):
        mm.lmer(formula, d, reml=False)


def test_standardized_fit_keeps_the_structure():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mm.lmer(CASES["panel_ar1"][0], PANEL, reml=False, standardize=True)
    assert abs(m.loglik - COV["panel_ar1"]["loglik"]) / abs(COV["panel_ar1"]["loglik"]) < 1e-6
    rho = m.varcorr.query("var2 == 'rho'")["sdcor"].iloc[0]
    assert rho == pytest.approx(COV["panel_ar1"]["terms"]["id.1"]["cor"][0][1], rel=1e-3)


def test_caic_says_it_has_no_structured_terms():
    with pytest.raises(NotImplementedError, match="not available for cs, ar1 or ou"):
        mm.caic(fit("panel_ar1_only"))


def test_re_form_selects_a_structured_term_whole():
    m = fit("panel_ar1")
    full, fixed = np.asarray(m.predict()), np.asarray(m.predict(re_form="~0"))
    ar1 = np.asarray(m.predict(re_form="~ar1(ftime + 0 | id)"))
    intercept = np.asarray(m.predict(re_form="~(1 | id)"))
    np.testing.assert_allclose((ar1 - fixed) + (intercept - fixed), full - fixed, atol=1e-12)
    assert np.abs(ar1 - fixed).max() > 0.1
    ou = fit("ou")
    np.testing.assert_allclose(np.asarray(ou.predict(re_form="~ou(time + 0 | id)")), np.asarray(ou.predict()))


def test_streamed_ar1_matches_glmmtmb_and_ou_needs_the_data(tmp_path):
    pytest.importorskip("duckdb")
    PANEL.to_parquet(tmp_path / "panel.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mm.lmer(CASES["panel_ar1"][0], str(tmp_path / "panel.parquet"), reml=False)
    assert abs(m.loglik - COV["panel_ar1"]["loglik"]) / abs(COV["panel_ar1"]["loglik"]) < 1e-6
    OU_DATA.to_parquet(tmp_path / "ou.parquet")
    with pytest.raises(DataError, match=r"ou\(time \+ 0 \| id\) reads its time points"):
        mm.lmer(CASES["ou"][0], str(tmp_path / "ou.parquet"), reml=False)
