"""Parametric bootstrap and the bootstrap likelihood-ratio test."""

import warnings

import numpy as np
import pandas as pd
import pytest
from refs import LME4, MORE

import mixedmodels as mm
from mixedmodels import lmer
from mixedmodels.postestimation.bootstrap import bootstrap, bootstrap_lrt
from mixedmodels.presentation.datasets import load_dataset


def test_bootstrap_reproducible_and_sensible(sleep):
    b1 = bootstrap(sleep, n=8, seed=3)
    b2 = bootstrap(sleep, n=8, seed=3)
    pd.testing.assert_frame_equal(b1.replicates, b2.replicates)
    assert list(b1.replicates.columns) == MORE["profile_ci"]["rows"]
    # replicate fixed effects scatter around the estimate on the scale of the SEs
    dev = (b1.replicates["Days"] - sleep.fixef["Days"]).abs().max()
    assert 0 < dev < 6 * LME4["sleepstudy_reml"]["se"]["Days"]
    ci = b1.confint()
    assert (ci["lower"] <= ci["upper"]).all()


def test_bootstrap_user_statistic_and_parallel(sleep):
    serial = bootstrap(sleep, n=4, seed=1, statistic=_sigma_stat)
    par = bootstrap(sleep, n=4, seed=1, statistic=_sigma_stat, parallel=2)
    np.testing.assert_allclose(serial.replicates.to_numpy(), par.replicates.to_numpy(), rtol=1e-10)
    assert serial.observed.iloc[0] == pytest.approx(LME4["sleepstudy_reml"]["sigma"], rel=1e-6)


def _sigma_stat(m):
    return m.sigma


def test_bootstrap_lrt():
    d = load_dataset("sleepstudy")
    small = lmer("Reaction ~ Days + (1 | Subject)", d, reml=False)
    large = lmer("Reaction ~ Days + (Days | Subject)", d, reml=False)
    tab = bootstrap_lrt(small, large, n=9, seed=1)
    assert list(tab.index) == ["LRT", "PBtest"]
    assert tab.loc["LRT", "stat"] == pytest.approx(2 * (large.loglik - small.loglik))
    assert tab.loc["LRT", "df"] == 2
    # LRT ≈ 42: no bootstrap replicate comes near, so p = 1 / (n + 1)
    assert tab.loc["PBtest", "p.value"] == pytest.approx(0.1)


def test_glmm_bootstrap_refits_quietly():
    from mixedmodels.postestimation.ranef import variance_parameter_names

    m = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", load_dataset("cbpp"),
                 family="binomial")
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # the refits' checks are off: no warnings
        res = bootstrap(m, n=3, seed=7)
    assert list(res.replicates.columns) == variance_parameter_names(m) + list(m.fixef.index)
    assert "sigma" not in res.replicates.columns
    assert res.n_failed == 0 and np.isfinite(res.replicates.to_numpy()).all()
    assert res.observed["period2"] == m.fixef["period2"]


def test_quiet_refit_keeps_the_model_and_turns_the_checks_off(sleep):
    from mixedmodels.postestimation.bootstrap import quiet_refit

    new = quiet_refit(sleep, sleep.response)
    assert new is not sleep
    assert (new.control.check_conv, new.control.check_singular, new.control.check_scale) == ("ignore",) * 3
    assert sleep.control.check_conv == "warn"
    np.testing.assert_allclose(new.theta, sleep.theta, rtol=1e-4)
    np.testing.assert_allclose(new.fixef, sleep.fixef, rtol=1e-6)
