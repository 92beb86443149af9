"""tidy / glance / augment against R's broom.mixed (tests/reference/make_tidy_reference.R).

The sleepstudy LMM agrees with lme4 to about 1e-8, so its tables are compared at 1e-6. The cbpp
GLMM's reference is lme4 with PIRLS converged tightly (tolPwrss 1e-12; at its default lme4 stops
2.8e-4 in logLik short of the exact Laplace optimum, which ours reaches); its SEs come from lme4's
finite-difference Hessian, so the fit-dependent numbers are compared at 1e-4; what does not depend
on the fit (the data columns, weights, offsets) at 1e-10.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from refs import REF

import mixedmodels as mm

TIDY = json.loads((REF / "tidy_reference.json").read_text())


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows).replace({None: np.nan})


def _compare(ours: pd.DataFrame, ref: pd.DataFrame, rtol: float, atol: float = 0.0, keys=None) -> None:
    ref = _frame(ref)
    assert list(ours.columns) == list(ref.columns)
    if keys:   # same rows, matched by label
        ours = ours.set_index(keys)
        ref = ref.set_index(keys).loc[ours.index]
    assert len(ours) == len(ref)
    for col in ours.columns:
        a, b = ours[col], ref[col]
        if pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(b):
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=rtol, atol=atol,
                                       equal_nan=True, err_msg=col)
        else:
            assert [None if pd.isna(x) else str(x) for x in a] == [None if pd.isna(x) else str(x) for x in b], col


@pytest.fixture(scope="module")
def cbpp_fit():
    return mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.load_dataset("cbpp"),
                    family="binomial")


def test_tidy_fixed_lmm(sleep):
    _compare(mm.tidy(sleep, effects="fixed", conf_int=True), TIDY["sleep"]["fixed"], rtol=1e-6)
    _compare(mm.tidy(sleep, effects="fixed", conf_int=True, conf_level=0.9), TIDY["sleep"]["fixed90"], rtol=1e-6)


def test_tidy_ran_pars_lmm(sleep):
    _compare(mm.tidy(sleep, effects="ran_pars"), TIDY["sleep"]["ran_pars"], rtol=1e-6)
    both = mm.tidy(sleep)      # broom.mixed's default: fixed, then ran_pars
    assert list(both["effect"]) == ["fixed"] * 2 + ["ran_pars"] * 4


def test_tidy_ran_pars_profile_lmm(sleep):
    ours = mm.tidy(sleep, effects="ran_pars", conf_int=True, conf_method="profile")
    ref = _frame(TIDY["sleep"]["ran_pars_profile"])
    np.testing.assert_allclose(ours["estimate"], ref["estimate"], rtol=1e-6)
    # profile intervals: both sides interpolate the profile (R by splines), so 1e-4
    np.testing.assert_allclose(ours[["conf.low", "conf.high"]], ref[["conf.low", "conf.high"]], rtol=1e-4)


def test_tidy_ran_vals_and_coefs_lmm(sleep):
    # atol: the modes and limits are of order 10-60, so 1e-7 is ~1e-8 of their scale (a limit
    # near 0, 0.032 = -10.4 + 1.96·5.3, differs from R's by 5e-8 with some BLAS builds)
    _compare(mm.tidy(sleep, effects="ran_vals", conf_int=True), TIDY["sleep"]["ran_vals"], rtol=1e-6,
             atol=1e-7)
    _compare(mm.tidy(sleep, effects="ran_coefs"), TIDY["sleep"]["ran_coefs"], rtol=1e-6)


def test_glance_lmm(sleep):
    _compare(mm.glance(sleep), TIDY["sleep"]["glance"], rtol=1e-6)
    ml = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"), reml=False)
    _compare(mm.glance(ml), TIDY["sleep_ml"]["glance"], rtol=1e-6)


def test_augment_lmm(sleep):
    ours = mm.augment(sleep)
    ref = _frame(TIDY["sleep"]["augment"])
    ours = ours[list(ref.columns)]     # R's model frame has the response first
    _compare(ours, ref, rtol=1e-6, atol=1e-8)


def test_augment_with_dropped_rows_is_na_exclude():
    d = mm.load_dataset("sleepstudy")
    d.loc[[2, 49, 100], "Reaction"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MissingDataWarning)
        m = mm.lmer("Reaction ~ Days + (Days | Subject)", d)
    _compare(mm.glance(m), TIDY["sleep_na"]["glance"], rtol=1e-6)
    ref = _frame(TIDY["sleep_na"]["augment"]).drop(columns=".rownames")   # R's names of the kept rows
    model_frame = mm.augment(m)                 # the rows used, as R's na.omit
    _compare(model_frame[list(ref.columns)], ref, rtol=1e-6, atol=1e-8)
    full = mm.augment(m, d)                     # the data's rows and index: NaN where dropped
    assert full.index.equals(d.index) and list(full.columns[:3]) == list(d.columns)
    assert full.loc[[2, 49, 100], ".fitted"].isna().all()
    np.testing.assert_allclose(full[".resid"].dropna().to_numpy(), ref[".resid"].to_numpy(), rtol=1e-6, atol=1e-8)


def test_tidy_glmm(cbpp_fit):
    _compare(mm.tidy(cbpp_fit, effects="fixed", conf_int=True), TIDY["cbpp"]["fixed"], rtol=1e-4, atol=1e-12)
    _compare(mm.tidy(cbpp_fit, effects="ran_pars"), TIDY["cbpp"]["ran_pars"], rtol=1e-4)
    _compare(mm.tidy(cbpp_fit, effects="ran_vals", conf_int=True), TIDY["cbpp"]["ran_vals"], rtol=1e-4,
             atol=1e-5, keys=["group", "level", "term"])
    _compare(mm.glance(cbpp_fit), TIDY["cbpp"]["glance"], rtol=1e-4)


def test_augment_glmm(cbpp_fit):
    ours = mm.augment(cbpp_fit)
    ref = _frame(TIDY["cbpp"]["augment"])
    cols = [c for c in ref.columns]
    exact = [".offset", ".weights", "period", "herd"]
    _compare(ours[exact], ref[exact], rtol=1e-10)
    rest = [c for c in cols if c not in exact + [".cooksd"]]
    _compare(ours[rest], ref[rest], rtol=1e-4, atol=1e-5)
    # Cook's distance divides by (1 - hat)^2 with GLMM hat values near 1 (lme4's "may not make
    # sense for GLMMs"), which amplifies the fits' 1e-5 difference tenfold
    _compare(ours[[".cooksd"]], ref[[".cooksd"]], rtol=1e-3)


def test_tidy_options(sleep, cbpp_fit):
    exp = mm.tidy(cbpp_fit, effects="fixed", conf_int=True, exponentiate=True)
    raw = mm.tidy(cbpp_fit, effects="fixed", conf_int=True)
    np.testing.assert_allclose(exp["estimate"], np.exp(raw["estimate"]))
    np.testing.assert_allclose(exp["conf.low"], np.exp(raw["conf.low"]))
    vc = mm.tidy(sleep, effects="ran_pars", scales="vcov")
    assert vc["term"].tolist() == ["var__(Intercept)", "cov__(Intercept).Days", "var__Days", "var__Observation"]
    np.testing.assert_allclose(vc["estimate"].iloc[[0, 2, 3]], sleep.varcorr["vcov"].iloc[[0, 1, 3]])
    sat = mm.tidy(sleep, effects="fixed", ddf_method="satterthwaite")
    assert {"df", "p.value"} <= set(sat.columns) and (sat["df"] < sleep.nobs).all()
    with pytest.raises(ValueError, match="unknown effects"):
        mm.tidy(sleep, effects="random")
    with pytest.raises(ValueError, match="conf_method"):
        mm.tidy(sleep, conf_int=True, conf_method="exact")
    with pytest.raises(ValueError, match="Wald"):
        mm.tidy(sleep, effects="ran_vals", conf_int=True, conf_method="profile")
    with pytest.raises(ValueError, match="not the data"):
        mm.augment(sleep, mm.load_dataset("sleepstudy").iloc[:10])


@pytest.mark.parametrize("library", ["polars", "pyarrow"])
def test_tables_come_back_in_the_data_frame_type(library):
    """A model fit to a polars (pyarrow) frame gives tidy/glance/augment back as polars
    (pyarrow) frames, with broom.mixed's numbers; output= overrides the type."""
    lib = pytest.importorskip(library)
    data = mm.load_dataset("sleepstudy")
    native = lib.from_pandas(data) if library == "polars" else lib.Table.from_pandas(data, preserve_index=False)
    m = mm.lmer("Reaction ~ Days + (Days | Subject)", native)
    kind = lib.DataFrame if library == "polars" else lib.Table
    fixed, glance, aug = mm.tidy(m, effects="fixed", conf_int=True), mm.glance(m), mm.augment(m, native)
    assert all(isinstance(t, kind) for t in (fixed, glance, aug))
    _compare(fixed.to_pandas(), TIDY["sleep"]["fixed"], rtol=1e-6)
    _compare(glance.to_pandas(), TIDY["sleep"]["glance"], rtol=1e-6)
    ref = _frame(TIDY["sleep"]["augment"])
    np.testing.assert_allclose(aug.to_pandas()[".fitted"], ref[".fitted"], rtol=1e-6)
    assert isinstance(mm.tidy(m, output="pandas"), pd.DataFrame)
    with pytest.raises(ValueError, match="output must be"):
        mm.tidy(m, output="spark")
