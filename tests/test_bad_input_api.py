"""Bad input to the public API raises a clear error: predict's new data (unseen levels of a
categorical predictor, missing columns, ±Inf), refit's zero weights, lmer/glmer's arguments (wrong types and values, R's
spellings) and confint's. Table-driven: (id, callable, exception class, message fragment)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.exceptions import DataError

SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _sleep():
    return mm.load_dataset("sleepstudy")


def _cbpp():
    return mm.load_dataset("cbpp")


def _factor_frame() -> pd.DataFrame:
    """y ~ x + f + (1 | g): f a two-level predictor (hi/lo), g six groups."""
    rng = np.random.default_rng(1)
    n = 60
    frame = pd.DataFrame({"x": rng.normal(size=n), "f": np.tile(["hi", "lo"], n // 2),
                          "g": np.repeat(list("abcdef"), 10)})
    frame["y"] = frame["x"] + (frame["f"] == "hi") + np.repeat(rng.normal(size=6), 10) \
        + rng.normal(size=n)
    return frame


_MODELS: dict[str, object] = {}


def _model(name: str):
    """Fitted once per session and shared by the cases."""
    if name not in _MODELS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "factor":
                _MODELS[name] = mm.lmer("y ~ x + f + (1 | g)", _factor_frame())
            elif name == "sleep":
                _MODELS[name] = mm.lmer(SLEEP, _sleep())
            elif name == "cbpp":
                _MODELS[name] = mm.glmer(CBPP, _cbpp(), family="binomial")
            elif name == "slope-only":   # Days in the random-effects term only
                _MODELS[name] = mm.lmer("Reaction ~ 1 + (0 + Days | Subject)", _sleep())
            elif name == "log":
                _MODELS[name] = mm.lmer("Reaction ~ log(Days + 1) + (1 | Subject)", _sleep())
    return _MODELS[name]


def _days(days: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"Days": days, "Subject": ["308"] * len(days)})


def _zero_weights(n: int, rows: list[int]) -> np.ndarray:
    w = np.ones(n)
    w[rows] = 0.0
    return w


def _new(**cols) -> pd.DataFrame:
    base = {"x": [0.0, 0.0], "f": ["hi", "lo"], "g": ["a", "b"]}
    base.update(cols)
    return pd.DataFrame(base)


CASES = [
    # -- item 1: predict with newdata ---------------------------------------------------------
    ("predict-new-predictor-level", lambda: _model("factor").predict(_new(f=["hi", "ultra"])),
     DataError, "newdata column 'f' has level(s) 'ultra'"),
    ("predict-new-predictor-level-lists-known",
     lambda: _model("factor").predict(_new(f=["hi", "ultra"])), DataError, "['hi', 'lo']"),
    ("predict-new-predictor-level-allow-new-levels",
     lambda: _model("factor").predict(_new(f=["ultra", "mega"]), allow_new_levels=True),
     DataError, "allow_new_levels= applies to grouping factors only"),
    ("predict-new-predictor-level-fixed-only",
     lambda: _model("factor").predict(_new(f=["ultra", "lo"]), re_form="~0"), DataError,
     "'ultra'"),
    ("predict-new-predictor-level-se-fit",
     lambda: _model("factor").predict(_new(f=["lo", "ultra"]), se_fit=True), DataError,
     "not in the fitted data"),
    ("predict-new-predictor-level-interval",
     lambda: _model("factor").predict(_new(f=["lo", "ultra"]), interval="prediction", n_sims=10),
     DataError, "'ultra'"),
    ("predict-missing-predictor-column",
     lambda: _model("factor").predict(_new().drop(columns="f")), DataError,
     "newdata lacks column 'f'"),
    ("predict-missing-numeric-column",
     lambda: _model("factor").predict(_new().drop(columns="x")), DataError,
     "newdata lacks column 'x'"),
    ("predict-missing-group-column",
     lambda: _model("factor").predict(_new().drop(columns="g")), DataError,
     "newdata lacks column 'g'"),
    ("predict-typo-column-hint",
     lambda: _model("sleep").predict(pd.DataFrame({"Dayz": [1.0], "Subject": ["308"]})),
     DataError, "did you mean 'Dayz'"),
    ("predict-new-group-level", lambda: _model("factor").predict(_new(g=["a", "zz"])),
     DataError, "level(s) of 'g' not in the fitted data ('zz')"),
    ("predict-missing-group-value", lambda: _model("factor").predict(_new(g=["a", None])),
     DataError, "missing grouping value"),
    ("predict-newdata-not-a-frame", lambda: _model("factor").predict([[0.0, 1.0]]), TypeError,
     "newdata must be a pandas DataFrame"),
    ("predict-newdata-dict-lacks-column", lambda: _model("factor").predict({"x": [0.0]}), DataError,
     "newdata lacks column"),
    ("predict-bad-type", lambda: _model("factor").predict(type="mean"), ValueError,
     "type must be 'link' or 'response'"),
    ("predict-bad-interval", lambda: _model("factor").predict(interval="conf"), ValueError,
     "interval must be None"),
    # -- issue 17: ±Inf in newdata (an error naming the column and the count, as in the fit) -----
    ("predict-inf-fixed-column", lambda: _model("sleep").predict(_days([1.0, np.inf])), DataError,
     "Inf in newdata column 'Days'"),
    ("predict-inf-count-and-rows", lambda: _model("sleep").predict(_days([np.inf, 1.0, -np.inf])),
     DataError, "2 infinite values (1 Inf, 1 -Inf; rows 0, 2)"),
    ("predict-inf-with-nan", lambda: _model("sleep").predict(_days([np.nan, -np.inf])), DataError,
     "1 infinite value (1 -Inf; rows 1)"),
    ("predict-inf-fixed-only", lambda: _model("sleep").predict(_days([np.inf]), re_form="~0"),
     DataError, "Inf in newdata column 'Days'"),
    ("predict-inf-se-fit", lambda: _model("sleep").predict(_days([np.inf]), se_fit=True), DataError,
     "Inf in newdata column 'Days'"),
    ("predict-inf-interval",
     lambda: _model("sleep").predict(_days([np.inf]), interval="prediction", n_sims=10), DataError,
     "Inf in newdata column 'Days'"),
    ("predict-inf-random-only-column", lambda: _model("slope-only").predict(_days([2.0, np.inf])),
     DataError, "Inf in newdata column 'Days'"),
    ("predict-inf-factor-model", lambda: _model("factor").predict(_new(x=[np.inf, 0.0])), DataError,
     "Inf in newdata column 'x': 1 infinite value"),
    ("predict-inf-computed-column", lambda: _model("log").predict(_days([-1.0, 2.0])), DataError,
     "Inf in the fixed-effects column"),
    ("predict-newdata-series", lambda: _model("sleep").predict(_sleep()["Days"]), TypeError,
     "newdata must be a pandas DataFrame, got pandas"),
    # -- issue 17: refit with zero weights (lmer drops those rows; refit keeps the fit's rows) ----
    ("refit-zero-weight", lambda: _model("sleep").refit(weights=_zero_weights(180, [3, 5])),
     ValueError, "2 of the 180 weights are 0 (observations 3, 5)"),
    ("refit-zero-weight-advice", lambda: _model("sleep").refit(weights=_zero_weights(180, [0])),
     ValueError, "Fit the model again without those rows"),
    ("refit-zero-weight-with-response",
     lambda: _model("sleep").refit(_sleep()["Reaction"], weights=_zero_weights(180, [7])),
     ValueError, "1 of the 180 weights are 0"),
    ("refit-zero-weight-glmm",
     lambda: _model("cbpp").refit(weights=_zero_weights(56, [1]) * _cbpp()["size"].to_numpy()),
     ValueError, "weights are 0 (observations 1)"),
    ("refit-negative-weight", lambda: _model("sleep").refit(weights=-np.ones(180)), ValueError,
     "finite non-negative"),
    # -- item 5: lmer ------------------------------------------------------------------------
    ("lmer-reml-string", lambda: mm.lmer(SLEEP, _sleep(), reml="FALSE"), TypeError,
     "write reml=False"),
    ("lmer-reml-int", lambda: mm.lmer(SLEEP, _sleep(), reml=0), TypeError,
     "reml must be True or False"),
    ("lmer-R-REML", lambda: mm.lmer(SLEEP, _sleep(), REML=False), TypeError,
     "the Python spelling is reml="),
    ("lmer-family", lambda: mm.lmer(SLEEP, _sleep(), family="binomial"), TypeError,
     "use mm.glmer for a GLMM"),
    ("lmer-naAction", lambda: mm.lmer(SLEEP, _sleep(), naAction="drop"), TypeError,
     "the Python spelling is na_action="),
    ("lmer-na.action", lambda: mm.lmer(SLEEP, _sleep(), **{"na.action": "na.omit"}), TypeError,
     "na_action="),
    ("lmer-nAGQ", lambda: mm.lmer(SLEEP, _sleep(), nAGQ=1), TypeError,
     "n_agq (nAGQ) is an argument of mm.glmer"),
    ("lmer-typo", lambda: mm.lmer(SLEEP, _sleep(), wieghts="Days"), TypeError,
     "did you mean weights=?"),
    ("lmer-unknown-argument", lambda: mm.lmer(SLEEP, _sleep(), frobnicate=1), TypeError,
     "unexpected keyword argument 'frobnicate'"),
    ("lmer-start", lambda: mm.lmer(SLEEP, _sleep(), start=[1.0]), TypeError,
     "control=mm.Control(start=...)"),
    ("lmer-na-action-R-value", lambda: mm.lmer(SLEEP, _sleep(), na_action="na.omit"),
     ValueError, "R's 'na.omit' is na_action='drop'"),
    ("lmer-na-action-bad", lambda: mm.lmer(SLEEP, _sleep(), na_action="skip"), ValueError,
     "na_action must be 'drop' or 'raise'"),
    ("lmer-na-action-type", lambda: mm.lmer(SLEEP, _sleep(), na_action=True), TypeError,
     "na_action must be 'drop' or 'raise'"),
    ("lmer-control-dict", lambda: mm.lmer(SLEEP, _sleep(), control={"optimizer": "bobyqa"}),
     TypeError, "use mm.Control(**options)"),
    ("lmer-standardize-string", lambda: mm.lmer(SLEEP, _sleep(), standardize="yes"), TypeError,
     "standardize must be True or False"),
    ("lmer-weights-scalar", lambda: mm.lmer(SLEEP, _sleep(), weights=2.0), TypeError,
     "weights must be a column name or an array"),
    ("lmer-offset-2d", lambda: mm.lmer(SLEEP, _sleep(), offset=np.zeros((180, 2))), ValueError,
     "offset must be one-dimensional"),
    ("lmer-offset-dict", lambda: mm.lmer(SLEEP, _sleep(), offset={"a": 1}), TypeError,
     "offset must be a column name or an array"),
    # -- item 5: glmer -----------------------------------------------------------------------
    ("glmer-R-nAGQ", lambda: mm.glmer(CBPP, _cbpp(), nAGQ=5), TypeError,
     "the Python spelling is n_agq="),
    ("glmer-reml", lambda: mm.glmer(CBPP, _cbpp(), reml=False), TypeError,
     "GLMMs are fit by maximum likelihood only"),
    ("glmer-REML", lambda: mm.glmer(CBPP, _cbpp(), REML=True), TypeError,
     "maximum likelihood only"),
    ("glmer-standardize", lambda: mm.glmer(CBPP, _cbpp(), standardize=True), TypeError,
     "argument of mm.lmer only"),
    ("glmer-link", lambda: mm.glmer(CBPP, _cbpp(), link="probit"), TypeError,
     "family=mm.binomial('probit')"),
    ("glmer-n-agq-float", lambda: mm.glmer(CBPP, _cbpp(), n_agq=1.5), TypeError,
     "n_agq must be an integer from 0 to 100"),
    ("glmer-n-agq-string", lambda: mm.glmer(CBPP, _cbpp(), n_agq="1"), TypeError,
     "n_agq must be an integer"),
    ("glmer-n-agq-bool", lambda: mm.glmer(CBPP, _cbpp(), n_agq=True), TypeError,
     "n_agq must be an integer"),
    ("glmer-n-agq-negative", lambda: mm.glmer(CBPP, _cbpp(), n_agq=-1), ValueError,
     "n_agq must be from 0 to 100"),
    ("glmer-n-agq-too-many", lambda: mm.glmer(CBPP, _cbpp(), n_agq=101), ValueError,
     "got 101"),
    ("glmer-family-function", lambda: mm.glmer(CBPP, _cbpp(), family=mm.binomial), TypeError,
     "call it, e.g. family=mm.binomial()"),
    ("glmer-family-number", lambda: mm.glmer(CBPP, _cbpp(), family=1), TypeError,
     "family must be a name"),
    ("glmer-family-unknown", lambda: mm.glmer(CBPP, _cbpp(), family="binomal"), ValueError,
     "unknown family 'binomal'"),
    ("glmer-na-action", lambda: mm.glmer(CBPP, _cbpp(), na_action="na.fail"), ValueError,
     "na_action='raise'"),
    ("glmer-control", lambda: mm.glmer(CBPP, _cbpp(), control="bobyqa"), TypeError,
     "control must be a mm.Control"),
    ("glmer-weights", lambda: mm.glmer(CBPP, _cbpp(), weights=object()), TypeError,
     "weights must be a column name or an array"),
    # -- item 5: confint ---------------------------------------------------------------------
    ("confint-level-percent-wald", lambda: _model("sleep").confint(method="wald", level=95),
     ValueError, "write level=0.95"),
    ("confint-level-percent-profile", lambda: _model("sleep").confint(level=95), ValueError,
     "level must be between 0 and 1"),
    ("confint-level-zero", lambda: _model("sleep").confint(method="wald", level=0), ValueError,
     "level must be between 0 and 1"),
    ("confint-level-one", lambda: _model("sleep").confint(method="wald", level=1.0), ValueError,
     "got 1"),
    ("confint-level-string", lambda: _model("sleep").confint(method="wald", level="0.95"),
     TypeError, "level must be a number"),
    ("confint-level-nan", lambda: _model("sleep").confint(method="wald", level=float("nan")),
     ValueError, "level must be between 0 and 1"),
    ("confint-method-unknown", lambda: _model("sleep").confint(method="walt"), ValueError,
     "method must be 'profile', 'wald' or 'boot'"),
    ("confint-method-type", lambda: _model("sleep").confint(method=None), TypeError,
     "method must be 'profile', 'wald' or 'boot'"),
    ("confint-which-unknown-profile", lambda: _model("sleep").confint(which=["Dayz"]),
     ValueError, "unknown parameter(s) ['Dayz']"),
    ("confint-which-unknown-wald", lambda: _model("sleep").confint(method="wald", which="Dayz"),
     ValueError, "choose from"),
    ("confint-which-unknown-glmm", lambda: _model("cbpp").confint(which=["period5"]),
     ValueError, "unknown parameter(s) ['period5']"),
    ("confint-which-type", lambda: _model("sleep").confint(method="wald", which=3), TypeError,
     "which must be a parameter name"),
    ("confint-wald-extra-argument", lambda: _model("sleep").confint(method="wald", nsim=10),
     TypeError, "unexpected keyword argument"),
    ("confint-glmm-level", lambda: _model("cbpp").confint(level=-0.5), ValueError,
     "level must be between 0 and 1"),
    # the other public functions' arguments (spec/arguments.py)
    ("anova-refit-string", lambda: mm.anova(_model("slope-only"), _model("sleep"), refit="no"), TypeError,
     "refit must be True or False"),
    ("anova-refit-R-string", lambda: mm.anova(_model("slope-only"), _model("sleep"), refit="FALSE"), TypeError,
     "write refit=False"),
    ("anova-not-a-model", lambda: mm.anova(_model("sleep"), 3), TypeError, "argument 2 is int"),
    ("anova-bootstrap-nsim", lambda: mm.anova(_model("slope-only"), _model("sleep"), test="bootstrap", nsim=0),
     ValueError, "nsim must be at least 1"),
    ("aic-table-not-a-model", lambda: mm.aic_table([_model("sleep"), "m2"]), TypeError, "argument 2 is str"),
    ("predict-allow-new-levels-string", lambda: _model("sleep").predict(_sleep(), allow_new_levels="yes"),
     TypeError, "allow_new_levels must be True or False"),
    ("predict-se-fit-int", lambda: _model("sleep").predict(_sleep(), se_fit=2), TypeError,
     "se_fit must be True or False"),
    ("predict-n-sims-float", lambda: _model("sleep").predict(_sleep(), interval="prediction", n_sims=10.5),
     TypeError, "n_sims must be a whole number"),
    ("bootstrap-n-float", lambda: mm.bootstrap(_model("sleep"), n=2.5), TypeError, "n must be a whole number"),
    ("bootstrap-n-string", lambda: mm.bootstrap(_model("sleep"), n="100"), TypeError, "n must be a whole number"),
    ("simulate-n-zero", lambda: mm.simulate(_model("sleep"), n=0), ValueError, "n must be at least 1"),
    ("all-fit-unknown-optimizer", lambda: mm.all_fit(_model("sleep"), optimizers=("bogus",)), ValueError,
     "unknown optimizer(s) 'bogus'"),
]


@pytest.mark.parametrize("case_id, call, exc, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises(case_id, call, exc, fragment):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc) as info:
            call()
    assert fragment in str(info.value), f"{case_id}: {info.value}"


def test_case_table_is_large_and_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) >= 30 and len(ids) == len(set(ids))


# -- the behaviour that replaces the errors where lme4 does not raise ----------------------------

def test_predict_missing_values_give_nan_rows():
    m = _model("factor")
    nd = pd.DataFrame({"x": [0.0, np.nan, 0.0, 0.0], "f": ["hi", "lo", None, "lo"],
                       "g": ["a", "a", "a", "a"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # formulaic's NaN-category warning is handled
        pred = m.predict(nd)
    assert np.isfinite(pred.iloc[[0, 3]]).all() and pred.iloc[[1, 2]].isna().all()
    full = m.predict(nd, se_fit=True)
    assert full["se_fit"].iloc[[1, 2]].isna().all() and np.isfinite(full["se_fit"].iloc[0])


def test_predict_known_levels_unchanged():
    m = _model("factor")
    nd = _new()
    pred = m.predict(nd)
    beta = m.fixef
    pop = m.predict(nd, re_form="~0")
    assert pop.iloc[0] == pytest.approx(beta["(Intercept)"])
    assert pop.iloc[1] == pytest.approx(beta["(Intercept)"] + beta["flo"])
    assert np.isfinite(pred).all()


def test_missing_group_with_allow_new_levels_predicts_population():
    m = _model("factor")
    pred = m.predict(_new(g=["a", None]), allow_new_levels=True)
    pop = m.predict(_new(g=["a", None]), re_form="~0")
    assert pred.iloc[1] == pytest.approx(pop.iloc[1])


def test_refit_of_a_zero_weight_fit_equals_a_fresh_fit_without_those_rows():
    """lmer drops rows of prior weight 0; refit of that fit (its 177 observations) with new
    weights is the fresh lmer on the data without those rows, from the same start."""
    ss = _sleep()
    w = np.random.default_rng(3).uniform(0.5, 2.0, size=len(ss))
    keep = np.ones(len(ss), bool)
    keep[[0, 17, 40]] = False
    with pytest.warns(mm.MissingDataWarning, match="3 of 180 rows have prior weight 0"):
        m = mm.lmer(SLEEP, ss, weights=np.where(keep, w, 0.0))
    assert m.nobs == 177
    w2 = w[keep] ** 2
    new = m.refit(weights=w2)
    ref = mm.lmer(SLEEP, ss[keep].reset_index(drop=True), weights=w2, control=mm.Control(start=m.theta))
    assert new.nobs == ref.nobs == 177
    assert new.loglik == pytest.approx(ref.loglik, abs=1e-8)
    np.testing.assert_allclose(np.asarray(new.fixef), np.asarray(ref.fixef), atol=1e-8)
    with pytest.raises(ValueError, match="weights are 0"):
        m.refit(weights=np.where(np.arange(177) == 9, 0.0, w2))


def test_predict_inf_in_an_unused_column_is_ignored():
    m = _model("sleep")
    nd = _days([1.0, 2.0]).assign(Reaction=[np.inf, -np.inf], other=[np.inf, 1.0])
    pred = m.predict(nd)
    np.testing.assert_allclose(pred.to_numpy(), m.predict(_days([1.0, 2.0])).to_numpy())


def test_valid_arguments_still_accepted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mm.lmer(SLEEP, _sleep(), reml=np.bool_(False), weights=np.ones(180),
                    na_action="raise", control=mm.Control())
        g = mm.glmer(CBPP, _cbpp(), family=mm.binomial(), n_agq=np.int64(1))
    assert m.loglik == pytest.approx(-875.9697, abs=1e-3)
    assert g.loglik == pytest.approx(-92.03, abs=0.01)
    assert list(_model("sleep").confint(method="wald", which="Days").index) == ["Days"]
