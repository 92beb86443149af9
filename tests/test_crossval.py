"""Grouped cross-validation: folds, refits equal to fresh fits on the training rows, predictions."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedmodels as mm
from mixedmodels.exceptions import DataError
from mixedmodels.postestimation.averaging import predict_newdata
from mixedmodels.postestimation.crossval import (
    _gaussian_log_score,
    _predict_rows,
    _refit,
    cross_validate,
    grouped_folds,
)

F0 = "Reaction ~ Days + (1 | Subject)"
F1 = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep_cv(sleepstudy):
    fits = {"intercepts": mm.lmer(F0, sleepstudy), "slopes": mm.lmer(F1, sleepstudy)}
    return fits, cross_validate(fits, sleepstudy, folds=6, by="Subject", seed=1)


def test_folds_keep_clusters_and_balance():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 40, 1000)
    fold = grouped_folds(labels, 5, seed=3)
    per_cluster = pd.Series(fold).groupby(labels).nunique()
    assert (per_cluster == 1).all()
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= np.bincount(labels).max()
    with pytest.raises(ValueError, match="folds"):
        grouped_folds(labels, 41)


def test_result_shape_and_summary(sleep_cv, sleepstudy):
    fits, res = sleep_cv
    assert len(res.folds) == 12 and set(res.folds["model"]) == set(fits)
    assert (res.folds.groupby("model")["n_test"].sum() == 180).all()
    assert (res.folds["clusters_test"] == 3).all()
    # every subject sits in exactly one fold
    assert (res.fold_of_row.groupby(sleepstudy["Subject"]).nunique() == 1).all()
    s = res.summary
    pooled = np.sqrt((res.folds["rmse"] ** 2 * res.folds["n_test"]).groupby(res.folds["model"]).sum() / 180)
    np.testing.assert_allclose(s.loc[pooled.index, "rmse"], pooled, rtol=1e-12)
    # random slopes predict new subjects' trajectories better (joint log score)
    assert s.index[0] == "slopes" and s.loc["intercepts", "d_log_score"] < 0


def test_fold_refit_equals_fresh_fit_on_training_rows(sleepstudy):
    model = mm.lmer(F1, sleepstudy)
    fold = grouped_folds(sleepstudy["Subject"].to_numpy(), 5, seed=0)
    train = np.flatnonzero(fold != 2)
    sub, _ = model.design.subset(train)
    fit = _refit(model, sub, model.theta, None, model.control)
    fresh = mm.lmer(F1, sleepstudy.iloc[train])
    assert fit.loglik == pytest.approx(fresh.loglik, abs=1e-7)
    np.testing.assert_allclose(fit.fixef.to_numpy(), fresh.fixef.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(fit.theta, fresh.theta, rtol=1e-3, atol=1e-4)


def test_held_out_cluster_prediction_and_log_score(sleepstudy):
    model = mm.lmer(F1, sleepstudy)
    fold = grouped_folds(sleepstudy["Subject"].to_numpy(), 6, seed=0)
    train, test = np.flatnonzero(fold != 0), np.flatnonzero(fold == 0)
    sub, where = model.design.subset(train)
    fit = _refit(model, sub, model.theta, None, model.control)
    eta, A = _predict_rows(fit, where, model.design, test)
    # new subjects: the population line
    np.testing.assert_allclose(eta, model.design.X[test] @ fit.fixef.to_numpy(), rtol=1e-12)
    # joint Gaussian density with the new subjects' random effects integrated out, densely
    y = model.design.y[test]
    days = sleepstudy["Days"].to_numpy()[test]
    subj = sleepstudy["Subject"].to_numpy()[test]
    cov = fit.term_covariances()[0]
    Z = np.column_stack([np.ones(len(test)), days])
    same = subj[:, None] == subj[None, :]
    V = np.where(same, Z @ cov @ Z.T, 0.0) + fit.sigma ** 2 * np.eye(len(test))
    dense = stats.multivariate_normal(mean=eta, cov=V).logpdf(y)
    woodbury = _gaussian_log_score(y - eta, fit.sigma ** 2, np.ones(len(test)), A)
    assert woodbury == pytest.approx(dense, rel=1e-10)


def test_crossed_factor_keeps_its_conditional_modes():
    data = mm.load_dataset("Penicillin")
    model = mm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", data)
    with pytest.raises(ValueError, match="by="):
        cross_validate({"m": model}, data)
    res = cross_validate({"m": model}, data, folds=4, by="plate")
    assert res.by == "plate" and len(res.folds) == 4
    # held-out plates are new; samples are seen: prediction = β + sample mode
    fold = res.fold_of_row.to_numpy()
    train, test = np.flatnonzero(fold != 0), np.flatnonzero(fold == 0)
    sub, where = model.design.subset(train)
    fit = _refit(model, sub, model.theta, None, model.control)
    eta, _ = _predict_rows(fit, where, model.design, test)
    np.testing.assert_allclose(eta, predict_newdata(fit, data.iloc[test]), rtol=1e-12)
    assert np.std(eta) > 0  # the sample effects vary within a plate


def test_bad_inputs(sleepstudy):
    m = mm.lmer(F0, sleepstudy)
    with pytest.raises(DataError, match="Subjct"):
        cross_validate([m], sleepstudy, by="Subjct")
    with pytest.raises(DataError, match="not fit to this data"):
        cross_validate([m], sleepstudy.reset_index(drop=True).iloc[::-1].set_index(
            np.arange(1000, 1180)), by="Subject")


def test_binomial_glmm_cross_validation():
    data = mm.load_dataset("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data,
                       family="binomial")
        res = cross_validate({"m": m}, data, folds=5, by="herd")
    f = res.folds
    assert len(f) == 5 and (f["n_test"].sum() == len(data))
    assert np.isfinite(f["log_score"]).all() and (f["log_score"] < 0).all()
    # a proportion's RMSE is below 1; the held-out herds get the population prediction
    assert 0 < res.summary.loc["m", "rmse"] < 0.5


def test_cross_validate_equals_fresh_fits_per_fold(sleep_cv, sleepstudy):
    """The fold scores equal those of models fit from scratch on each fold's training rows."""
    _, res = sleep_cv
    fold = res.fold_of_row.to_numpy()
    for k in range(6):
        train, test = sleepstudy.iloc[fold != k], sleepstudy.iloc[fold == k]
        fresh = mm.lmer(F1, train)
        pred = predict_newdata(fresh, test)
        rmse = np.sqrt(np.mean((test["Reaction"].to_numpy() - pred) ** 2))
        row = res.folds[(res.folds["model"] == "slopes") & (res.folds["fold"] == k + 1)].iloc[0]
        assert row["rmse"] == pytest.approx(rmse, rel=1e-6)
