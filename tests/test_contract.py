"""The contract matrix: every public method and function that takes a fitted model, on five models.

Rows (the models, fit once per module on bundled data):

- ``lmm``: ``lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)``
- ``binomial_cbind``: ``glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)``
- ``bernoulli``: ``glmer("r2 ~ Anger + Gender + (1 | id)", VerbAgg's first 60 respondents)``, r2 a
  two-level factor (N/Y)
- ``poisson_offset``: ``glmer("TICKS ~ YEAR + offset(log(HEIGHT/100)) + (1 | BROOD)", grouseticks)``
- ``negbin``: ``glmer("TICKS ~ YEAR + (1 | BROOD)", grouseticks, family="negative_binomial")``

Columns (the checks, ``CHECKS`` below): each cell either works and returns something sane (the
right shape, finite numbers, agreement with a fact computed here independently of the code
under test), or raises ``NotImplementedError`` whose message says what is supported instead
(:func:`works_or_not_implemented`). Any other exception fails the cell: an ``AttributeError``,
``TypeError`` or ``ValueError`` from a model the method is documented for is a broken contract.

Set ``CONTRACT_NOT_IMPLEMENTED_LOG=path`` to have the cells that raised ``NotImplementedError``
(and their messages) written to ``path`` at the end of the module.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedmodels as mm

pytestmark = pytest.mark.filterwarnings("ignore::mixedmodels.MixedModelsWarning")


# --------------------------------------------------------------------------------------------
# the helper every cell goes through
# --------------------------------------------------------------------------------------------

#: a NotImplementedError must say what to do instead, or what is supported
_NAMES_ALTERNATIVE = re.compile(
    r"\b(use|using|only|supported|support|available|implemented for|instead|refit|method=|try|"
    r"requires?|needs?|applies to|linear mixed models|LMMs?)\b", re.IGNORECASE)

NOT_IMPLEMENTED: list[str] = []


def works_or_not_implemented(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``, or None when it raises a NotImplementedError whose message is
    non-empty and names an alternative or what is supported. Any other exception propagates
    (the cell fails); so does a NotImplementedError with an unhelpful message."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as err:
        msg = str(err).strip()
        assert msg, f"{getattr(fn, '__name__', fn)} raised NotImplementedError without a message"
        assert _NAMES_ALTERNATIVE.search(msg), (
            f"{getattr(fn, '__name__', fn)}: the NotImplementedError message names neither an "
            f"alternative nor what is supported: {msg!r}")
        NOT_IMPLEMENTED.append(f"{getattr(fn, '__name__', fn)}: {msg}")
        return None


@pytest.fixture(scope="module", autouse=True)
def _log_not_implemented():
    yield
    path = os.environ.get("CONTRACT_NOT_IMPLEMENTED_LOG")
    if path:
        with open(path, "w") as fh:
            fh.write("\n".join(NOT_IMPLEMENTED) + "\n")


# --------------------------------------------------------------------------------------------
# the five models
# --------------------------------------------------------------------------------------------

def _sleepstudy() -> pd.DataFrame:
    return mm.load_dataset("sleepstudy")


def _cbpp() -> pd.DataFrame:
    return mm.load_dataset("cbpp")


def _verbagg60() -> pd.DataFrame:
    va = mm.load_dataset("VerbAgg")
    first = list(dict.fromkeys(va["id"].astype(str)))[:60]
    sub = va[va["id"].astype(str).isin(first)].copy()
    assert set(sub["r2"].astype(str)) == {"N", "Y"}   # a two-level factor response
    return sub


def _grouseticks() -> pd.DataFrame:
    gt = mm.load_dataset("grouseticks")
    assert {"TICKS", "YEAR", "HEIGHT", "BROOD"} <= set(gt.columns)
    assert np.all(np.isfinite(np.log(gt["HEIGHT"].to_numpy(dtype=float) / 100)))
    return gt


SPECS = {
    "lmm": dict(kind="lmer", data=_sleepstudy, family=None, group="Subject", support="real",
                formula="Reaction ~ Days + (Days | Subject)",
                small="Reaction ~ 1 + (Days | Subject)", n_varcorr=4),
    "binomial_cbind": dict(kind="glmer", data=_cbpp, family="binomial", group="herd",
                           support="proportion",
                           formula="cbind(incidence, size - incidence) ~ period + (1 | herd)",
                           small="cbind(incidence, size - incidence) ~ 1 + (1 | herd)", n_varcorr=1),
    "bernoulli": dict(kind="glmer", data=_verbagg60, family="binomial", group="id", support="binary",
                      formula="r2 ~ Anger + Gender + (1 | id)", small="r2 ~ Anger + (1 | id)",
                      n_varcorr=1),
    "poisson_offset": dict(kind="glmer", data=_grouseticks, family="poisson", group="BROOD",
                           support="count",
                           formula="TICKS ~ YEAR + offset(log(HEIGHT/100)) + (1 | BROOD)",
                           small="TICKS ~ 1 + offset(log(HEIGHT/100)) + (1 | BROOD)", n_varcorr=1),
    "negbin": dict(kind="glmer", data=_grouseticks, family="negative_binomial", group="BROOD",
                   support="count", formula="TICKS ~ YEAR + (1 | BROOD)", small="TICKS ~ 1 + (1 | BROOD)",
                   n_varcorr=1),
}
MODEL_IDS = list(SPECS)


def _fit(kind: str, formula: str, data: pd.DataFrame, family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "lmer":
            return mm.lmer(formula, data)
        return mm.glmer(formula, data, family=family)


class Case:
    """One row of the matrix: the fitted model, its data and the facts known about it."""

    def __init__(self, name: str, spec: dict):
        self.name = name
        self.kind = spec["kind"]
        self.family = spec["family"]
        self.formula = spec["formula"]
        self.small_formula = spec["small"]
        self.group = spec["group"]
        self.support = spec["support"]
        self.n_varcorr = spec["n_varcorr"]
        self.data = spec["data"]()
        self.model = _fit(self.kind, self.formula, self.data, self.family)

    @property
    def is_lmm(self) -> bool:
        return self.kind == "lmer"

    @cached_property
    def small(self):
        """The same kind of model (family, random effects) with fewer fixed effects."""
        return _fit(self.kind, self.small_formula, self.data, self.family)

    @property
    def offset(self) -> np.ndarray:
        """The offset, computed here from the data."""
        if "offset(" in self.formula:
            return np.log(self.data["HEIGHT"].to_numpy(dtype=float) / 100)
        return np.zeros(len(self.data))

    @property
    def n_levels(self) -> int:
        return int(self.data[self.group].astype(str).nunique())

    @property
    def slope(self) -> str:
        """The last fixed effect (a slope or contrast), for the one-parameter checks."""
        return str(self.model.fixef.index[-1])

    def head(self, k: int = 6) -> pd.DataFrame:
        return self.data.iloc[:k].copy()


@pytest.fixture(scope="module", params=MODEL_IDS)
def case(request) -> Case:
    return Case(request.param, SPECS[request.param])


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def _finite(x) -> bool:
    return bool(np.all(np.isfinite(np.asarray(x, dtype=float))))


def _check_support(c: Case, values: np.ndarray) -> None:
    values = np.asarray(values, dtype=float)
    assert _finite(values)
    if c.support == "proportion":
        assert np.all((values >= 0) & (values <= 1))
        successes = values * c.data["size"].to_numpy(dtype=float)[:, None]
        np.testing.assert_allclose(successes, np.rint(successes), atol=1e-8)
    elif c.support == "binary":
        assert set(np.unique(values)) <= {0.0, 1.0}
    elif c.support == "count":
        assert np.all(values >= 0)
        np.testing.assert_array_equal(values, np.rint(values))


def _population_eta(c: Case) -> np.ndarray:
    """X β + offset, from the design's X and the offset computed here."""
    m = c.model
    return np.asarray(m.design.X, dtype=float) @ m.fixef.to_numpy() + c.offset


def _new_level_frame(c: Case) -> pd.DataFrame:
    nd = c.head(4)
    nd[c.group] = nd[c.group].astype(str).astype(object)
    nd.loc[nd.index[2:], c.group] = "NEW_LEVEL_XYZ"
    return nd


def _xvx(c: Case, X: np.ndarray) -> np.ndarray:
    V = c.model.vcov.to_numpy()
    return np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))


def _variance_rows(c: Case) -> list[str]:
    """confint's variance-parameter rows: everything that is not a fixed effect."""
    wald = c.model.confint(method="wald")
    return [r for r in wald.index if r not in c.model.fixef.index]


# --------------------------------------------------------------------------------------------
# the checks (columns of the matrix)
# --------------------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[Case], None]] = {}


def check(name: str):
    def deco(fun):
        CHECKS[name] = fun
        return fun
    return deco


@check("summary")
def _summary(c: Case) -> None:
    s = works_or_not_implemented(c.model.summary)
    if s is None:
        return
    text = str(s)
    assert c.formula in text
    assert repr(c.model)


@check("varcorr")
def _varcorr(c: Case) -> None:
    vc = c.model.varcorr
    assert list(vc.columns) == ["group", "var1", "var2", "vcov", "sdcor"]
    assert len(vc) == c.n_varcorr
    variances = vc[vc["var2"].isna() & (vc["group"] != "Residual")]
    assert _finite(variances["vcov"]) and np.all(variances["vcov"] > 0)
    np.testing.assert_allclose(variances["sdcor"], np.sqrt(variances["vcov"]), rtol=1e-12)
    if c.is_lmm:
        resid = vc[vc["group"] == "Residual"]
        np.testing.assert_allclose(resid["sdcor"], c.model.sigma)


@check("coef_table")
def _coef_table(c: Case) -> None:
    t = works_or_not_implemented(c.model.coef_table, ddf=None)
    if t is None:
        return
    m = c.model
    assert list(t.index) == list(m.fixef.index)
    np.testing.assert_allclose(t["Estimate"], m.fixef.to_numpy())
    np.testing.assert_allclose(t["Std. Error"], np.sqrt(np.diag(m.vcov.to_numpy())))
    assert _finite(t.to_numpy(dtype=float))
    assert np.all(t["Std. Error"] > 0)


def _check_ddf_table(c: Case, t: pd.DataFrame) -> None:
    m = c.model
    assert list(t.index) == list(m.fixef.index)
    np.testing.assert_allclose(t["Estimate"], m.fixef.to_numpy())
    assert _finite(t.to_numpy(dtype=float))
    assert np.all(t["Std. Error"] > 0)
    assert np.all((t["df"] >= 1) & (t["df"] <= m.nobs))
    np.testing.assert_allclose(t["t value"], t["Estimate"] / t["Std. Error"], rtol=1e-10)
    np.testing.assert_allclose(t["Pr(>|t|)"], 2 * stats.t.sf(np.abs(t["t value"]), t["df"]), rtol=1e-8)


@check("coef_table_satterthwaite")
def _coef_table_satt(c: Case) -> None:
    t = works_or_not_implemented(c.model.coef_table, ddf="satterthwaite")
    if t is None:
        return
    _check_ddf_table(c, t)
    # lmerTest: the standard errors are the model's own
    np.testing.assert_allclose(t["Std. Error"], np.sqrt(np.diag(c.model.vcov.to_numpy())), rtol=1e-6)


@check("coef_table_kenward_roger")
def _coef_table_kr(c: Case) -> None:
    t = works_or_not_implemented(c.model.coef_table, ddf="kenward-roger")
    if t is None:
        return
    _check_ddf_table(c, t)
    # the adjusted covariance is never smaller than the unadjusted one on its diagonal
    assert np.all(t["Std. Error"] >= np.sqrt(np.diag(c.model.vcov.to_numpy())) * (1 - 1e-8))


@check("coef_table_asymptotic")
def _coef_table_asymptotic(c: Case) -> None:
    t = works_or_not_implemented(c.model.coef_table, ddf="asymptotic")
    if t is None:
        return
    m = c.model
    se = np.sqrt(np.diag(m.vcov.to_numpy()))
    np.testing.assert_allclose(t["Estimate"], m.fixef.to_numpy())
    np.testing.assert_allclose(t["Std. Error"], se)
    np.testing.assert_allclose(t["z value"], m.fixef.to_numpy() / se)
    np.testing.assert_allclose(t["Pr(>|z|)"], 2 * stats.norm.sf(np.abs(m.fixef.to_numpy() / se)))


@check("confint_wald")
def _confint_wald(c: Case) -> None:
    ci = works_or_not_implemented(c.model.confint, method="wald")
    if ci is None:
        return
    m = c.model
    est = m.fixef
    se = np.sqrt(np.diag(m.vcov.to_numpy()))
    z = stats.norm.ppf(0.975)
    assert list(ci.columns) == ["lower", "upper"]
    assert set(est.index) <= set(ci.index)
    np.testing.assert_allclose(ci.loc[est.index, "lower"], est.to_numpy() - z * se)
    np.testing.assert_allclose(ci.loc[est.index, "upper"], est.to_numpy() + z * se)


@check("confint_profile")
def _confint_profile(c: Case) -> None:
    m = c.model
    name = c.slope
    ci = works_or_not_implemented(m.confint, method="profile", which=[name])
    if ci is None:
        return
    assert list(ci.index) == [name]
    lo, hi = float(ci.loc[name, "lower"]), float(ci.loc[name, "upper"])
    est = float(m.fixef[name])
    assert np.isfinite(lo) and np.isfinite(hi)
    assert lo < est < hi
    wald = 2 * stats.norm.ppf(0.975) * float(np.sqrt(m.vcov.loc[name, name]))
    assert 0.5 < (hi - lo) / wald < 2.0      # a well-behaved fit: close to the Wald interval
    # the fitted state is restored afterwards
    np.testing.assert_allclose(m.predict(), m.fitted(type="link"), rtol=1e-10, atol=1e-10)


@check("confint_boot")
def _confint_boot(c: Case) -> None:
    m = c.model
    ci = works_or_not_implemented(m.confint, method="boot", n=20, seed=1)
    if ci is None:
        return
    assert list(ci.columns) == ["lower", "upper"]
    assert set(m.fixef.index) <= set(ci.index)
    assert set(_variance_rows(c)) <= set(ci.index)
    assert _finite(ci.to_numpy(dtype=float))
    assert np.all(ci["lower"] <= ci["upper"])


@check("predict_default_equals_fitted")
def _predict_default(c: Case) -> None:
    m = c.model
    p = works_or_not_implemented(m.predict)
    if p is None:
        return
    assert len(p) == m.nobs
    np.testing.assert_allclose(np.asarray(p), m.fitted(type="link"), rtol=1e-10, atol=1e-10)
    r = m.predict(type="response")
    np.testing.assert_allclose(np.asarray(r), m.fitted(), rtol=1e-10, atol=1e-12)
    # the training frame as newdata: the same conditional predictions
    nd = m.predict(newdata=c.data)
    np.testing.assert_allclose(np.asarray(nd), np.asarray(p), rtol=1e-10, atol=1e-10)


@check("predict_population")
def _predict_population(c: Case) -> None:
    m = c.model
    eta0 = _population_eta(c)
    np.testing.assert_allclose(m.offset, c.offset, rtol=1e-12, atol=1e-12)
    for re_form in ("~0", "NA"):
        p = works_or_not_implemented(m.predict, newdata=c.data, re_form=re_form)
        if p is None:
            continue
        np.testing.assert_allclose(np.asarray(p), eta0, rtol=1e-10, atol=1e-10)
        q = m.predict(re_form=re_form)
        np.testing.assert_allclose(np.asarray(q), eta0, rtol=1e-10, atol=1e-10)
    r = m.predict(newdata=c.data, re_form="~0", type="response")
    expected = eta0 if c.is_lmm else m.family.link.inverse(eta0)
    np.testing.assert_allclose(np.asarray(r), expected, rtol=1e-10, atol=1e-12)


@check("predict_new_level")
def _predict_new_level(c: Case) -> None:
    m = c.model
    nd = _new_level_frame(c)
    with pytest.raises(mm.DataError, match="allow_new_levels"):
        m.predict(newdata=nd)
    p = works_or_not_implemented(m.predict, newdata=nd, allow_new_levels=True)
    if p is None:
        return
    p = np.asarray(p)
    assert p.shape == (4,) and _finite(p)
    # known levels: the conditional prediction; the new level: the population one
    np.testing.assert_allclose(p[:2], np.asarray(m.predict())[:2], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(p[2:], _population_eta(c)[2:4], rtol=1e-10, atol=1e-10)


@check("predict_se_fit")
def _predict_se_fit(c: Case) -> None:
    m = c.model
    nd = c.head(8)
    out = works_or_not_implemented(m.predict, newdata=nd, se_fit=True)
    if out is None:
        return
    assert {"fit", "se_fit"} <= set(out.columns)
    assert len(out) == 8
    np.testing.assert_allclose(out["fit"], np.asarray(m.predict())[:8], rtol=1e-10, atol=1e-10)
    X = np.asarray(m.design.X, dtype=float)[:8]
    np.testing.assert_allclose(out["se_fit"], _xvx(c, X), rtol=1e-8)
    assert np.all(out["se_fit"] > 0)


@check("predict_interval_confidence")
def _predict_confidence(c: Case) -> None:
    m = c.model
    nd = c.head(8)
    out = works_or_not_implemented(m.predict, newdata=nd, interval="confidence")
    if out is None:
        return
    assert {"fit", "lower", "upper"} <= set(out.columns)
    assert _finite(out[["fit", "lower", "upper"]].to_numpy(dtype=float))
    z = stats.norm.ppf(0.975)
    se = _xvx(c, np.asarray(m.design.X, dtype=float)[:8])
    np.testing.assert_allclose(out["upper"] - out["fit"], z * se, rtol=1e-8)
    np.testing.assert_allclose(out["fit"] - out["lower"], z * se, rtol=1e-8)


@check("predict_interval_prediction")
def _predict_prediction(c: Case) -> None:
    m = c.model
    nd = c.head(8)
    out = works_or_not_implemented(m.predict, newdata=nd, interval="prediction", n_sims=300, seed=1)
    if out is None:
        return
    assert {"fit", "lower", "upper"} <= set(out.columns)
    assert _finite(out[["fit", "lower", "upper"]].to_numpy(dtype=float))
    assert np.all(out["lower"] < out["fit"]) and np.all(out["fit"] < out["upper"])
    conf = m.predict(newdata=nd, interval="confidence")
    # random effects (and, for the LMM, the residual) widen it beyond the confidence interval
    assert np.all(out["upper"] - out["lower"] > conf["upper"] - conf["lower"])
    again = m.predict(newdata=nd, interval="prediction", n_sims=300, seed=1)
    pd.testing.assert_frame_equal(out, again)


@check("simulate")
def _simulate(c: Case) -> None:
    m = c.model
    sims = works_or_not_implemented(m.simulate, n=3, seed=1)
    if sims is None:
        return
    values = np.asarray(sims, dtype=float)
    assert values.shape == (m.nobs, 3)
    _check_support(c, values)
    np.testing.assert_array_equal(values, np.asarray(m.simulate(n=3, seed=1), dtype=float))
    assert not np.array_equal(values, np.asarray(m.simulate(n=3, seed=2), dtype=float))
    assert not np.array_equal(values[:, 0], values[:, 1])


@check("refit_same_response")
def _refit_same(c: Case) -> None:
    m = c.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = works_or_not_implemented(m.refit, m.response)
    if r is None:
        return
    assert r is not m
    assert abs(r.loglik - m.loglik) <= 1e-6 * abs(m.loglik)
    se = np.sqrt(np.diag(m.vcov.to_numpy()))
    assert np.all(np.abs(r.fixef.to_numpy() - m.fixef.to_numpy()) < 0.01 * se)


@check("refit_simulated_response")
def _refit_simulated(c: Case) -> None:
    m = c.model
    ll, beta = m.loglik, m.fixef.to_numpy().copy()
    y = np.asarray(m.simulate(n=1, seed=7), dtype=float)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = works_or_not_implemented(m.refit, y)
    if r is None:
        return
    np.testing.assert_allclose(r.response, y)
    assert np.isfinite(r.loglik) and _finite(r.fixef)
    assert abs(r.loglik - ll) > 1e-6 * abs(ll)
    assert not np.allclose(r.fixef.to_numpy(), beta)
    # the original is unchanged
    assert m.loglik == ll
    np.testing.assert_array_equal(m.fixef.to_numpy(), beta)


@check("ranef_table")
def _ranef_table(c: Case) -> None:
    m = c.model
    t = works_or_not_implemented(m.ranef_table)
    if t is None:
        return
    assert list(t.columns) == ["group", "term", "level", "condval", "condsd"]
    ncols = sum(len(frame.columns) for frame in m.ranef.values())
    assert len(t) == c.n_levels * ncols
    assert set(t["grp"].astype(str)) == set(c.data[c.group].astype(str))
    assert _finite(t["condval"]) and _finite(t["condsd"])
    assert np.all(t["condsd"] > 0)
    vc = m.varcorr
    for (g, col), sub in t.groupby(["group", "term"]):
        modes = m.ranef[g][col]
        np.testing.assert_allclose(sub["condval"].to_numpy(), modes.loc[sub["grp"]].to_numpy(), atol=1e-12)
        sd = float(vc[(vc["var1"] == col) & vc["var2"].isna() & (vc["group"] != "Residual")]["sdcor"].iloc[0])
        # the conditional sd never exceeds the prior one
        assert np.all(sub["condsd"] <= sd * (1 + 1e-8))


def _plot(c: Case, method: str, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    fig = works_or_not_implemented(getattr(c.model, method), **kwargs)
    if fig is None:
        return None
    try:
        assert isinstance(fig, Figure)
        assert len(fig.axes) >= 1
        return len([ax for ax in fig.axes if ax.get_visible()])
    finally:
        plt.close(fig)


@check("plot_ranef")
def _plot_ranef(c: Case) -> None:
    n = _plot(c, "plot_ranef")
    if n is not None:
        assert n == sum(len(frame.columns) for frame in c.model.ranef.values())


@check("plot_residuals")
def _plot_residuals(c: Case) -> None:
    n = _plot(c, "plot_residuals")
    if n is not None:
        assert n == 3


@check("plot_trajectories")
def _plot_trajectories(c: Case) -> None:
    _plot(c, "plot_trajectories")


@check("r2")
def _r2(c: Case) -> None:
    m = c.model
    res = works_or_not_implemented(mm.r2, m)
    if res is None:
        return
    marg, cond = res["marginal"], res["conditional"]
    assert np.isfinite(marg) and np.isfinite(cond)
    assert 0 <= marg <= cond <= 1
    comp = res.components
    eta_fixed = np.asarray(m.design.X, dtype=float) @ m.fixef.to_numpy()
    np.testing.assert_allclose(comp["var_fixed"], np.var(eta_fixed, ddof=1), rtol=1e-10)
    if c.is_lmm:
        np.testing.assert_allclose(comp["var_residual"], m.sigma ** 2, rtol=1e-10)
    elif c.family == "binomial":
        np.testing.assert_allclose(comp["var_distribution"], np.pi ** 2 / 3, rtol=1e-10)


@check("icc")
def _icc(c: Case) -> None:
    res = works_or_not_implemented(mm.icc, c.model)
    if res is None:
        return
    adj, unadj = res["adjusted"], res["unadjusted"]
    assert np.isfinite(adj) and np.isfinite(unadj)
    assert 0 <= unadj <= adj <= 1


@check("caic")
def _caic(c: Case) -> None:
    m = c.model
    res = works_or_not_implemented(mm.caic, m)
    if res is None:
        return
    assert np.isfinite(res["caic"]) and np.isfinite(res["df"]) and np.isfinite(res["conditional_loglik"])
    np.testing.assert_allclose(res["caic"], -2 * res["conditional_loglik"] + 2 * res["df"], rtol=1e-10)
    assert len(m.fixef) < res["df"] < m.nobs


@check("all_fit")
def _all_fit(c: Case) -> None:
    m = c.model
    table = works_or_not_implemented(mm.all_fit, m, parallel=False, optimizers=("bobyqa", "nelder_mead"))
    if table is None:
        return
    assert list(table["optimizer"]) == ["bobyqa", "nelder_mead"]
    assert isinstance(table.verdict, str) and table.verdict
    assert set(m.fixef.index) <= set(table.columns)
    row = table[table["optimizer"] == "bobyqa"].iloc[0]
    assert bool(row["ok"]), row["messages"]
    # the same model and optimizer from the same default start: the same optimum, within
    # all_fit's own agreement tolerance (tol_loglik=1e-3)
    # The lead's call, on purpose: the reported GLMM deviance is lme4's (PIRLS from the fit's own
    # fixed start, to lme4's 1e-7), so it depends on that start. glmer.nb's final fit is
    # warm-started inside its θ search, a fresh fit is not: −916.2206 against −916.2229 on
    # grouseticks, while the smooth deviance at the two optima agrees to 2e-5. The same happened
    # before the refactor; it is in the closing note as an open item.
    assert abs(row["loglik"] - m.loglik) < 5e-3
    assert np.all(np.isfinite(table["loglik"]))


@check("rePCA")
def _repca(c: Case) -> None:
    m = c.model
    res = works_or_not_implemented(mm.rePCA, m)
    if res is None:
        return
    assert len(res) == len(m.ranef)
    vc = m.varcorr
    for name, table in res.items():
        assert list(table.columns) == ["sdev", "proportion", "cumulative"]
        assert np.all(table["sdev"] >= 0) and _finite(table.to_numpy(dtype=float))
        np.testing.assert_allclose(table["proportion"].sum(), 1.0)
        assert 1 <= res.dims[name] <= res.ncols[name]
        # the components' variances add up to the term's total variance
        total = vc[(vc["group"] == name) & vc["var2"].isna()]["vcov"].sum()
        np.testing.assert_allclose(np.sum(table["sdev"] ** 2), total, rtol=1e-8)


@check("cross_validate")
def _cross_validate(c: Case) -> None:
    m = c.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = works_or_not_implemented(mm.cross_validate, m, c.data, folds=3)
    if cv is None:
        return
    assert len(cv.summary) == 1
    row = cv.summary.iloc[0]
    assert int(row["n"]) == m.nobs and int(row["folds"]) == 3
    assert np.isfinite(row["rmse"]) and row["rmse"] > 0
    assert np.isfinite(row["log_score"])
    assert len(cv.folds) == 3
    assert cv.folds["clusters_test"].sum() == c.n_levels


@check("bootstrap")
def _bootstrap(c: Case) -> None:
    m = c.model
    res = works_or_not_implemented(mm.bootstrap, m, n=10, seed=1)
    if res is None:
        return
    assert res.n_failed == 0       # a refit that failed is an error swallowed by bootstrap
    assert res.replicates.shape == (10, len(res.observed))
    assert _finite(res.replicates.to_numpy(dtype=float))
    np.testing.assert_allclose(res.observed[list(m.fixef.index)], m.fixef.to_numpy())
    assert set(_variance_rows(c)) <= set(res.observed.index)
    assert np.all(res.std_error[list(m.fixef.index)] > 0)


def _ml(model):
    return model.refit_ml() if model.reml else model


@check("anova_lrt")
def _anova_lrt(c: Case) -> None:
    m0, m1 = c.small, c.model
    table = works_or_not_implemented(mm.anova, m0, m1)
    if table is None:
        return
    assert len(table) == 2
    big = table.iloc[1]
    assert int(big["Df"]) == len(m1.fixef) - len(m0.fixef)
    chisq = 2 * (_ml(m1).loglik - _ml(m0).loglik)
    np.testing.assert_allclose(big["Chisq"], max(chisq, 0.0), rtol=1e-8, atol=1e-8)
    assert 0 <= big["Pr(>Chisq)"] <= 1
    np.testing.assert_allclose(big["Pr(>Chisq)"], stats.chi2.sf(big["Chisq"], int(big["Df"])), rtol=1e-8)


@check("anova_bootstrap")
def _anova_bootstrap(c: Case) -> None:
    m0, m1 = c.small, c.model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = works_or_not_implemented(mm.anova, m0, m1, test="bootstrap", nsim=10, seed=1, parallel=2)
    if table is None:
        return
    failed = [str(w.message) for w in caught if "failed" in str(w.message)]
    assert not failed, failed   # failed refits (e.g. models that do not pickle) are swallowed
    p = table.iloc[1]["Pr(boot)"]
    assert 1 / 11 - 1e-12 <= p <= 1
    lrt = mm.anova(m0, m1)
    np.testing.assert_allclose(table["Chisq"].iloc[1], lrt["Chisq"].iloc[1])


@check("model_average")
def _model_average(c: Case) -> None:
    m0, m1 = c.small, c.model
    avg = works_or_not_implemented(mm.model_average, {"small": m0, "full": m1})
    if avg is None:
        return
    np.testing.assert_allclose(avg.weights.sum(), 1.0)
    coefs = avg.coefficients
    assert set(coefs.index) == set(m1.fixef.index)
    np.testing.assert_allclose(coefs.loc["(Intercept)", "importance"], 1.0)
    only_full = [n for n in m1.fixef.index if n not in m0.fixef.index]
    full = _ml(m1)
    np.testing.assert_allclose(coefs.loc[only_full, "conditional"], full.fixef[only_full], rtol=1e-6)
    expected = sum(avg.weights[k] * np.asarray(mod.fitted(), dtype=float) for k, mod in avg.models.items())
    np.testing.assert_allclose(avg.predict(), expected, rtol=1e-10)
    p = avg.predict(c.head(5))
    assert np.shape(p) == (5,) and _finite(p)


@check("pickle")
def _pickle(c: Case) -> None:
    m = c.model
    m2 = works_or_not_implemented(lambda: pickle.loads(pickle.dumps(m)))
    if m2 is None:
        return
    np.testing.assert_array_equal(m2.fixef.to_numpy(), m.fixef.to_numpy())
    assert m2.loglik == m.loglik
    np.testing.assert_allclose(np.asarray(m2.predict()), np.asarray(m.predict()), rtol=1e-12)
    nd = c.head(6)
    np.testing.assert_allclose(np.asarray(m2.predict(newdata=nd)), np.asarray(m.predict(newdata=nd)),
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(m2.predict(newdata=nd, re_form="~0")),
                               np.asarray(m.predict(newdata=nd, re_form="~0")), rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(m2.simulate(n=2, seed=3)), np.asarray(m.simulate(n=2, seed=3)))
    pd.testing.assert_frame_equal(m2.ranef_table(), m.ranef_table())


# -- the other public functions that take a fitted model ----------------------------------------

@check("satterthwaite_df")
def _satterthwaite_df(c: Case) -> None:
    df = works_or_not_implemented(mm.satterthwaite_df, c.model)
    if df is None:
        return
    assert list(df.index) == list(c.model.fixef.index)
    assert _finite(df) and np.all((df >= 1) & (df <= c.model.nobs))


@check("kenward_roger")
def _kenward_roger(c: Case) -> None:
    out = works_or_not_implemented(mm.kenward_roger, c.model)
    if out is None:
        return
    vadj, df = out
    p = len(c.model.fixef)
    assert vadj.shape == (p, p) and _finite(vadj.to_numpy())
    assert _finite(df) and np.all(df >= 1)


@check("contrast_asymptotic")
def _contrast(c: Case) -> None:
    m = c.model
    out = works_or_not_implemented(mm.contrast, m, c.slope, ddf="asymptotic")
    if out is None:
        return
    z = float(m.fixef[c.slope]) / float(np.sqrt(m.vcov.loc[c.slope, c.slope]))
    np.testing.assert_allclose(out["Chisq"].iloc[0], z ** 2, rtol=1e-8)


@check("r2_beta")
def _r2_beta(c: Case) -> None:
    out = works_or_not_implemented(mm.r2_beta, c.model)
    if out is None:
        return
    assert "Model" in out.index
    assert np.all((out["Rsq"] >= 0) & (out["Rsq"] <= 1))


@check("variance_components")
def _variance_components(c: Case) -> None:
    m = c.model
    comp = works_or_not_implemented(mm.variance_components, m)
    if comp is None:
        return
    assert all(np.isfinite(v) and v >= 0 for v in comp.values())
    eta_fixed = np.asarray(m.design.X, dtype=float) @ m.fixef.to_numpy()
    np.testing.assert_allclose(comp["var_fixed"], np.var(eta_fixed, ddof=1), rtol=1e-10)


@check("aic_table")
def _aic_table(c: Case) -> None:
    m0, m1 = c.small, c.model
    table = works_or_not_implemented(mm.aic_table, {"small": m0, "full": m1})
    if table is None:
        return
    np.testing.assert_allclose(table["weight"].sum(), 1.0)
    for name, mod in (("small", m0), ("full", m1)):
        np.testing.assert_allclose(table.loc[name, "AIC"], -2 * mod.loglik + 2 * mod.npar)


@check("predict_newdata")
def _predict_newdata(c: Case) -> None:
    m = c.model
    nd = c.head(6)
    cond = works_or_not_implemented(mm.predict_newdata, m, nd, re_form="conditional", type="link")
    if cond is None:
        return
    np.testing.assert_allclose(cond, np.asarray(m.predict(newdata=nd)), rtol=1e-10, atol=1e-10)
    fixed = mm.predict_newdata(m, nd, re_form="fixed", type="link")
    np.testing.assert_allclose(fixed, _population_eta(c)[:6], rtol=1e-10, atol=1e-10)


@check("function_forms")
def _function_forms(c: Case) -> None:
    """mm.predict / simulate / confint / ranef_table are the methods."""
    m = c.model
    np.testing.assert_array_equal(np.asarray(mm.predict(m)), np.asarray(m.predict()))
    np.testing.assert_array_equal(np.asarray(mm.simulate(m, n=2, seed=1)),
                                  np.asarray(m.simulate(n=2, seed=1)))
    pd.testing.assert_frame_equal(mm.confint(m, method="wald"), m.confint(method="wald"))
    pd.testing.assert_frame_equal(mm.ranef_table(m), m.ranef_table())


@pytest.mark.parametrize("check_name", list(CHECKS))
def test_contract(case: Case, check_name: str) -> None:
    CHECKS[check_name](case)
