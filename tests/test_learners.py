"""Mixed-effects learners (issue 16): the EM fixed point against lme4, recovery of known variance
components, calibration of the classifier, and the bad inputs of the issue.

References: tests/reference/learners_reference.json, made by make_learners_reference.R (lme4).
With a linear learner (LinearRegression) the EM loop's fixed point is lme4's ML fit of the same
model, so the numbers must agree with lmer's; the classifier's fixed point lies between glmer's
nAGQ = 0 and Laplace fits.
"""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from refs import REF
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, Ridge

import mixedmodels as mm
from mixedmodels.exceptions import ConvergenceWarning, DataError, MixedModelsWarning

LEARN = json.loads((REF / "learners_reference.json").read_text())


def _gpa_frame():
    d = mm.load_dataset("gpa")
    X = pd.DataFrame({"highgpa": d.highgpa, "sexmale": (d.sex == "male").astype(float),
                      "job2": (d.job == "2 hours").astype(float), "job3": (d.job == "3 hours").astype(float),
                      "occasion": d.occasion, "student": d.student})
    return X, d.gpa.to_numpy()


def friedman_groups(n_groups=200, per=20, seed=0, sd_int=1.0, sd_slope=0.5, sigma=1.0, classify=False):
    """Friedman #1 plus a random intercept and a random slope on z, per group."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    n = len(g)
    x = rng.uniform(size=(n, 5))
    z = rng.normal(size=n)
    f = 10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4]
    b0, b1 = sd_int * rng.normal(size=n_groups), sd_slope * rng.normal(size=n_groups)
    df = pd.DataFrame(x, columns=[f"x{j}" for j in range(5)])
    df["z"] = z
    df["group"] = [f"g{k}" for k in g]
    if classify:
        eta = (f - 14.4) / 4 + 0.5 * z + b0[g] + b1[g] * z
        return df, (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int), eta
    eta = f + z + b0[g] + b1[g] * z
    return df, eta + sigma * rng.normal(size=n), eta


@pytest.fixture(scope="module")
def gpa_fit():
    X, y = _gpa_frame()
    est = mm.MixedEffectsRegressor(LinearRegression(), random="(1 + occasion | student)", residuals="insample",
                                   tol=1e-10, max_iter=500)
    return est.fit(X, y), X, y


@pytest.fixture(scope="module")
def forest_fit():
    df, y, _ = friedman_groups(n_groups=100, per=20, seed=3)
    est = mm.MixedEffectsRegressor(RandomForestRegressor(60, min_samples_leaf=5, random_state=0),
                                   random="(1 + z | group)", tol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(df, y)
    return est, df, y


# --- the fixed point is lme4's ---------------------------------------------------------------

def test_linear_learner_reaches_lmer_ml_fit(gpa_fit):
    est, X, y = gpa_fit
    ref = LEARN["gpa"]
    fe = ref["fixef"]
    assert est.converged_
    coef = dict(zip(["highgpa", "sexmale", "job2 hours", "job3 hours"], est.learner_.coef_))
    for name, value in coef.items():
        assert abs(value - fe[name]) < 1e-4, name
    assert abs(est.learner_.intercept_ + est.fixef_["(Intercept)"] - fe["(Intercept)"]) < 1e-4
    assert abs(est.fixef_["occasion"] - fe["occasion"]) < 1e-6
    assert np.allclose(est.varcorr_["sdcor"].to_numpy(), ref["sdcor"], atol=1e-4)
    # the random part's ML deviance given the learner is lme4's deviance at the joint optimum
    assert abs(est.history_["deviance"].iloc[-1] - ref["deviance"]) < 1e-4
    b1 = est.ranef_["student"].iloc[0].to_numpy()
    assert np.allclose(b1, ref["ranef_student_1"], atol=1e-4)


def test_linear_learner_predictions_are_lmer_conditional_predictions(gpa_fit):
    est, X, y = gpa_fit
    d = mm.load_dataset("gpa")
    m = mm.lmer("gpa ~ occasion + highgpa + sex + job + (1 + occasion | student)", d, reml=False)
    assert np.allclose(est.predict(X), m.fitted(), atol=1e-4)
    parts = est.decompose(X)
    assert np.allclose(parts[["learner", "fixed", "random"]].sum(axis=1), parts["prediction"])
    assert not parts["new_group"].any()


def test_classifier_fixed_point_between_glmer_nagq0_and_laplace():
    d = pd.read_csv(REF / "learners_binary.csv")
    est = mm.MixedEffectsClassifier(LinearRegression(), random="(1 + z | cluster)", residuals="insample",
                                    tol=1e-8, max_iter=100).fit(d.drop(columns="y"), d.y)
    lap, agq0 = LEARN["binary_laplace"], LEARN["binary_nagq0"]
    assert est.converged_
    # PQL steps for the learner: its coefficients are the penalized-mode estimates, as nAGQ = 0
    for name, value in zip(["x1", "x2"], est.learner_.coef_):
        assert abs(value - agq0["fixef"][name]) < 0.01, name
        assert abs(value - lap["fixef"][name]) < 0.05, name
    assert abs(est.fixef_["z"] - lap["fixef"]["z"]) < 0.01
    # the log-likelihood (Laplace) is within 0.3 of glmer's maximum, and not above it
    loglik = est.model_.loglik
    assert lap["logLik"] - 0.3 < loglik <= lap["logLik"] + 1e-6
    assert np.allclose(est.varcorr_["sdcor"].to_numpy(), lap["sdcor"], atol=0.07)


# --- forests: known variance components, honest residuals ------------------------------------------

def test_forest_recovers_known_variance_components(forest_fit):
    est, df, y = forest_fit
    vc = est.varcorr_.set_index(["var1"])["sdcor"]
    assert est.residual_method_ == "oob"
    assert abs(vc.iloc[0] - 1.0) < 0.25          # sd of the intercepts: 1
    assert abs(vc.iloc[1] - 0.5) < 0.15          # sd of the slopes on z: 0.5
    assert abs(est.fixef_["z"] - 1.0) < 0.15     # the mean slope on z: 1
    hist = est.history_
    assert list(hist.columns[:5]) == ["iteration", "deviance", "rel_change", "learner_seconds", "random_seconds"]
    # the random part costs milliseconds per update; the learner takes the time
    assert hist["random_seconds"].median() < 0.25
    assert hist["random_seconds"].sum() < hist["learner_seconds"].sum()


def test_in_sample_forest_residuals_understate_the_residual_variance(forest_fit):
    est, df, y = forest_fit
    fits = {}
    for method in ("oob", "insample"):  # a fully grown forest (leaves of one row) reproduces its target
        other = clone(est).set_params(residuals=method, max_iter=4, tol=1e-9, learner__min_samples_leaf=1,
                                      learner__n_estimators=30)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[method] = other.fit(df, y).varcorr_["sdcor"].to_numpy()[[0, 1, 3]]
    # in-sample residuals of a grown forest are below the noise itself (σ = 1 in the simulation):
    # the random part then sees too little residual variance and shrinks the group effects too little
    assert fits["insample"][2] < 0.8 < 1.0 < fits["oob"][2]
    assert abs(fits["oob"][0] - 1.0) < 0.3 and abs(fits["oob"][1] - 0.5) < 0.15


def test_crossfit_residuals_for_learners_without_bagging():
    df, y, _ = friedman_groups(n_groups=40, per=15, seed=5)
    est = mm.MixedEffectsRegressor(Ridge(1e-6), random="(1 | group)", cv=3, tol=1e-6, random_state=0)
    est.fit(df, y)
    assert est.residual_method_ == "crossfit"
    assert est.learner_ is not None and est.learner_.coef_.shape == (6,)  # x0..x4 and z
    # a linear learner barely overfits: the cross-fitted fit is close to the LMM of the same model
    m = mm.lmer("y ~ x0 + x1 + x2 + x3 + x4 + z + (1 | group)", df.assign(y=y), reml=False)
    assert abs(est.varcorr_["sdcor"].iloc[0] - m.varcorr["sdcor"].iloc[0]) < 0.05
    assert np.allclose(est.learner_.coef_, m.fixef.to_numpy()[1:], atol=0.1)


def test_crossfit_boosting_stops_at_its_noise_floor():
    """A cross-fitted boosting learner refit to a slightly changed target moves its
    predictions a little at every iteration, so the deviance fluctuates without improving: the
    loop stops when it no longer improves (not after max_iter), with the known variance
    components."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    df, y, _ = friedman_groups(n_groups=100, per=20, seed=4)
    est = mm.MixedEffectsRegressor(HistGradientBoostingRegressor(max_iter=60, learning_rate=0.1, random_state=0),
                                   random="(1 + z | group)", tol=1e-6, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(df, y)
    hist = est.history_
    assert est.residual_method_ == "crossfit" and est.converged_ and est.n_iter_ < 20
    assert hist["deviance"].iloc[-1] >= hist["deviance"].iloc[:-1].min()      # stopped: no improvement
    assert (hist["target_step"] > 0).all()
    vc = est.varcorr_["sdcor"]                  # sd of the intercepts (1), of the slopes on z (0.5)
    assert abs(vc.iloc[0] - 1.0) < 0.25 and abs(vc.iloc[1] - 0.5) < 0.15


def test_predict_seen_and_new_groups(forest_fit):
    est, df, y = forest_fit
    new = df.iloc[:20].assign(group="never-seen")
    with pytest.warns(MixedModelsWarning, match="population level"):
        pred_new = est.predict(new)
    parts = est.decompose(df.iloc[:20])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedModelsWarning)
        parts_new = est.decompose(new)
    assert np.allclose(pred_new, parts["learner"] + parts["fixed"])
    assert parts_new["new_group"].all() and np.all(parts_new["random"] == 0)
    # a mixed test set: no warning, seen rows keep their random effects
    mixed = pd.concat([df.iloc[:5], new.iloc[:5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", MixedModelsWarning)
        out = est.predict(mixed)
    assert np.allclose(out[:5], parts["prediction"].iloc[:5])


# --- the classifier calibrates ---------------------------------------------------------------

def test_classifier_calibrates_on_seen_and_new_groups():
    # 120 groups of 16 rows (12 to fit, 4 to test) and 150 new groups (many: their mean effect varies)
    df, y, eta = friedman_groups(n_groups=270, per=16, classify=True, seed=11)
    groups = df["group"].str[1:].astype(int).to_numpy()
    new = pd.Series(groups >= 120)
    train = (np.arange(len(y)) % 4 != 0) & ~new.to_numpy()
    seen = pd.Series((np.arange(len(y)) % 4 == 0) & ~new.to_numpy())
    clf = mm.MixedEffectsClassifier(RandomForestClassifier(40, min_samples_leaf=10, random_state=0),
                                    random="(1 + z | group)", tol=1e-3, max_iter=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(df[train], y[train])
    # the classifier's regression counterpart fits the working responses, out of bag
    assert type(clf.learner_).__name__ == "RandomForestRegressor" and clf.residual_method_ == "oob"
    assert clf.learner_.min_samples_leaf == 10
    for rows in (seen, new):
        p = clf.predict_proba(df[rows])[:, 1] if not rows.equals(new) else _quiet_proba(clf, df[rows])
        obs = y[rows]
        # calibration in the large, and by fifths of the predicted probability
        assert abs(p.mean() - obs.mean()) < 0.05
        edges = np.quantile(p, [0.2, 0.4, 0.6, 0.8])
        fifth = np.searchsorted(edges, p)
        gaps = [abs(p[fifth == k].mean() - obs[fifth == k].mean()) for k in range(5)]
        assert max(gaps) < 0.09, gaps
        # the logistic recalibration slope is close to 1 (not over- or under-confident)
        slope = _recalibration_slope(p, obs)
        assert 0.75 < slope < 1.3, slope
    # the marginal probabilities of new groups are less extreme than the conditional ones at b = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedModelsWarning)
        p_new = clf.predict_proba(df[new])[:, 1]
        at_zero = 1 / (1 + np.exp(-clf.decision_function(df[new])))
    assert np.mean(np.abs(p_new - 0.5)) < np.mean(np.abs(at_zero - 0.5))


def _quiet_proba(clf, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedModelsWarning)
        return clf.predict_proba(X)[:, 1]


def _recalibration_slope(p, y):
    """Slope of logit(P(y)) on logit(p), by Newton's method (logistic regression, two columns)."""
    x = np.column_stack([np.ones_like(p), np.log(p / (1 - p))])
    beta = np.zeros(2)
    for _ in range(50):
        mu = 1 / (1 + np.exp(-(x @ beta)))
        beta = beta + np.linalg.solve(x.T @ (x * (mu * (1 - mu))[:, None]), x.T @ (y - mu))
    return beta[1]


def test_classifier_labels_and_scores():
    d = pd.read_csv(REF / "learners_binary.csv")
    labels = np.where(d.y == 1, "yes", "no")
    clf = mm.MixedEffectsClassifier(LinearRegression(), random="(1 | cluster)", residuals="insample", tol=1e-5)
    clf.fit(d.drop(columns="y"), labels)
    assert list(clf.classes_) == ["no", "yes"]
    proba = clf.predict_proba(d.drop(columns="y"))
    assert proba.shape == (len(d), 2) and np.allclose(proba.sum(axis=1), 1)
    assert set(clf.predict(d.drop(columns="y"))) <= {"no", "yes"}
    assert 0.6 < clf.score(d.drop(columns="y"), labels) <= 1
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(again.predict_proba(d.drop(columns="y")), proba)
    with pytest.raises(ValueError, match="binary(.|\n)*OneVsRestClassifier"):
        clone(clf).fit(d.drop(columns="y"), np.arange(len(d)) % 3)


def test_more_than_two_classes_one_vs_rest():
    """Three classes through OneVsRestClassifier (the error's advice): three binomial mixed
    models; the random intercepts beat the same learner without them on held-out rows of
    seen groups, and the probabilities are normalized."""
    from sklearn.metrics import log_loss
    from sklearn.multiclass import OneVsRestClassifier

    df, _, eta = friedman_groups(n_groups=60, per=24, seed=11, sd_int=1.5, classify=True)
    rng = np.random.default_rng(11)
    y = np.digitize(eta + rng.logistic(size=len(eta)), [-0.5, 1.0])      # ordered 0 / 1 / 2
    test = np.tile(np.arange(24), 60) >= 18
    ovr = OneVsRestClassifier(mm.MixedEffectsClassifier(LinearRegression(), random="(1 | group)",
                                                        residuals="insample", tol=1e-6, max_iter=100))
    ovr.fit(df[~test], y[~test])
    p = ovr.predict_proba(df[test])
    assert p.shape == (test.sum(), 3) and np.allclose(p.sum(axis=1), 1)
    feats = [f"x{j}" for j in range(5)] + ["z"]
    from sklearn.linear_model import LogisticRegression
    plain = OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(df.loc[~test, feats], y[~test])
    assert log_loss(y[test], p) < log_loss(y[test], plain.predict_proba(df.loc[test, feats])) - 0.05


# --- bad input -----------------------------------------------------------------------------

def test_bad_inputs_have_clear_errors():
    X, y = _gpa_frame()
    est = mm.MixedEffectsRegressor(LinearRegression(), random="(1 + occasion | school)")
    with pytest.raises(DataError, match="'school' named in random"):
        est.fit(X, y)
    est = mm.MixedEffectsRegressor(LinearRegression(), random="(1 + ocasion | student)")
    with pytest.raises(DataError, match="did you mean 'occasion'"):
        est.fit(X, y)
    est = mm.MixedEffectsRegressor(LinearRegression(), random="(1 | student)")
    with pytest.raises(DataError, match="without column names.*'student'"):
        est.fit(X.to_numpy(), y)
    with pytest.raises(ValueError, match="only random-effects terms"):
        mm.MixedEffectsRegressor(LinearRegression(), random="x + (1 | student)").fit(X, y)
    with pytest.raises(DataError, match="'highgp' in learner_features"):
        mm.MixedEffectsRegressor(LinearRegression(), random="(1 | student)", learner_features=["highgp"]).fit(X, y)
    with pytest.raises(TypeError, match="classifier"):
        mm.MixedEffectsRegressor(HistGradientBoostingClassifier(), random="(1 | student)").fit(X, y)
    with pytest.raises(ValueError, match="residuals='oob' needs a bagged"):
        mm.MixedEffectsRegressor(LinearRegression(), random="(1 | student)", residuals="oob").fit(X, y)
    with pytest.raises(ValueError, match="max_iter"):
        mm.MixedEffectsRegressor(LinearRegression(), random="(1 | student)", max_iter=0).fit(X, y)
    bad = X.copy()
    bad.loc[[3, 7], "student"] = np.nan
    with pytest.raises(DataError, match="grouping column 'student' has 2 missing"):
        mm.MixedEffectsRegressor(LinearRegression(), random="(1 | student)").fit(bad, y)
    with pytest.raises(ValueError, match="y has 10 values"):
        mm.MixedEffectsRegressor(LinearRegression(), random="(1 | student)").fit(X, y[:10])
    est = mm.MixedEffectsRegressor(LinearRegression(), random="(1 | student)", residuals="insample").fit(X, y)
    with pytest.raises(DataError, match="lacks the learner's feature column.*'job2'"):
        est.predict(X.drop(columns="job2"))


def test_non_convergence_warns_with_the_trace():
    X, y = _gpa_frame()
    est = mm.MixedEffectsRegressor(LinearRegression(), random="(1 + occasion | student)", residuals="insample",
                                   tol=1e-12, max_iter=3)
    with pytest.warns(ConvergenceWarning, match=r"did not converge in max_iter=3(.|\n)*iteration   3: deviance"):
        est.fit(X, y)
    assert not est.converged_ and len(est.history_) == 3


def test_sample_weight_gives_lmer_weighted_fit():
    X, y = _gpa_frame()
    w = 0.5 + (np.arange(len(y)) % 3)
    est = mm.MixedEffectsRegressor(LinearRegression(), random="(1 + occasion | student)", residuals="insample",
                                   tol=1e-10, max_iter=500).fit(X, y, sample_weight=w)
    d = mm.load_dataset("gpa")
    m = mm.lmer("gpa ~ occasion + highgpa + sex + job + (1 + occasion | student)", d, reml=False, weights=w)
    assert np.allclose(est.learner_.coef_, m.fixef.to_numpy()[2:], atol=1e-4)
    assert np.allclose(est.varcorr_["sdcor"], m.varcorr["sdcor"], atol=1e-4)
    assert abs(est.history_["deviance"].iloc[-1] - m.deviance) < 1e-4
    with pytest.raises(ValueError, match="sample_weight must be finite and positive"):
        clone(est).fit(X, y, sample_weight=w * 0)


def test_learner_features_may_share_random_columns():
    X, y = _gpa_frame()
    est = mm.MixedEffectsRegressor(LinearRegression(), random="(1 + occasion | student)", residuals="insample",
                                   learner_features=["highgpa", "sexmale", "job2", "job3", "occasion"], tol=1e-8,
                                   max_iter=500).fit(X, y)
    assert est.learner_features_[-1] == "occasion"
    # the occasion slope is shared by the learner and the random part; their sum is lme4's
    total = est.learner_.coef_[-1] + est.fixef_["occasion"]
    assert abs(total - LEARN["gpa"]["fixef"]["occasion"]) < 1e-4


# --- scikit-learn conventions ---------------------------------------------------------------

def test_params_clone_pickle_and_score(gpa_fit):
    est, X, y = gpa_fit
    params = est.get_params()
    assert params["random"] == "(1 + occasion | student)" and "learner__fit_intercept" in params
    other = clone(est).set_params(learner__fit_intercept=False, max_iter=7)
    assert other.learner.fit_intercept is False and other.max_iter == 7 and not hasattr(other, "learner_")
    again = pickle.loads(pickle.dumps(est))
    assert np.array_equal(again.predict(X), est.predict(X))
    r2 = est.score(X, y)
    assert np.isclose(r2, 1 - np.sum((y - est.predict(X)) ** 2) / np.sum((y - y.mean()) ** 2))


def test_group_kfold_cross_validation():
    from sklearn.model_selection import GroupKFold, cross_val_score

    X, y = _gpa_frame()
    est = mm.MixedEffectsRegressor(LinearRegression(), random="(1 + occasion | student)", residuals="insample",
                                   tol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedModelsWarning)  # every test fold holds new students only
        scores = cross_val_score(est, X, y, groups=X["student"], cv=GroupKFold(3))
    assert scores.shape == (3,) and np.all(scores > 0.2)


def test_metadata_routing_of_groups():
    import sklearn
    from sklearn.model_selection import GroupKFold, cross_validate

    X, y = _gpa_frame()
    est = mm.MixedEffectsRegressor(LinearRegression(), random="(1 | student)", residuals="insample", tol=1e-5)
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", MixedModelsWarning)
        res = cross_validate(est, X, y, cv=GroupKFold(2), params={"groups": X["student"]})
    assert len(res["test_score"]) == 2


def test_permutation_importance_and_partial_dependence(forest_fit):
    from sklearn.inspection import partial_dependence, permutation_importance

    est, df, y = forest_fit
    sub = df.iloc[:400]
    imp = permutation_importance(est, sub, y[:400], n_repeats=2, random_state=0,
                                 scoring="neg_mean_squared_error")
    imp = pd.Series(imp.importances_mean, index=df.columns)
    assert imp["x3"] > imp["x1"] * 0 and imp["x3"] > 1.0      # x3 enters Friedman #1 with slope 10
    assert imp["z"] > 0.5                                      # through the random part's slope
    pd_res = partial_dependence(est, sub, ["x3"], grid_resolution=5, kind="average")
    curve = pd_res["average"][0]
    assert curve[-1] - curve[0] > 4                           # rises by ~10 over [0, 1]


def test_sklearn_estimator_checks():
    """scikit-learn's estimator checks that apply. The rest fit on bare arrays, which cannot name
    the grouping column: they fail with the DataError that says so (documented in
    docs/machine-learning.md)."""
    from sklearn.utils.estimator_checks import check_estimator

    est = mm.MixedEffectsRegressor(LinearRegression(), random="(1 | group)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None)
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    failed = {r["check_name"]: r["exception"] for r in results if r["status"] == "failed"}
    for name in ("check_no_attributes_set_in_init", "check_parameters_default_constructible",
                 "check_get_params_invariance", "check_set_params", "check_estimator_repr",
                 "check_estimator_cloneable", "check_do_not_raise_errors_in_init_or_set_params",
                 "check_estimator_tags_renamed", "check_valid_tag_types", "check_mixin_order",
                 "check_estimator_sparse_tag"):
        assert name in passed, (name, failed.get(name))
    # its DataFrame has columns 0, 1, ... and no 'group' (sklearn re-raises without the cause)
    no_group_column = {"check_sample_weights_pandas_series"}
    for name, err in failed.items():  # every other failure is the bare-array error, nothing else
        text = f"{err} {err.__cause__}"
        assert name in no_group_column or "without column names" in text, (name, err)


def test_guide_is_in_help_and_shipped():
    import io
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    repo = (root / "docs" / "machine-learning.md").read_text("utf-8")
    shipped = (root / "src" / "mixedmodels" / "docs" / "machine-learning.md").read_text("utf-8")
    assert shipped == repo   # the package's copy, which mm.help prints, is the repository's guide
    out = io.StringIO()
    mm.help("machine_learning", file=out)
    assert out.getvalue().startswith("# Random effects in machine learning")
    assert "| method |" in out.getvalue() or "RMSE" in out.getvalue()   # the benchmark table is in it
