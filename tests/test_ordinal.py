"""mm.clmm against ordinal::clmm on ordinal's wine data (tests/reference/make_ordinal_reference.R)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.models.ordinal_laplace import OrdinalEngine
from mixedmodels.models.ordinal_links import CUMULATIVE_LINKS
from mixedmodels.models.ordinal_thresholds import make_thresholds

REF = json.loads((Path(__file__).parent / "reference" / "ordinal_reference.json").read_text())
WINE = mm.load_dataset("wine")

_FITS: dict = {}
# ordinal 2022.11.16's clmm swaps these two links (see make_ordinal_reference.R: its
# link="cloglog" fit is the model with F(x) = exp(-exp(-x)), ordinal's documented loglog);
# mm.clmm follows the documented definitions (those of ordinal's clm)
_SAME_MODEL = {"cloglog": "loglog", "loglog": "cloglog"}


def _fit(case: str):
    if case not in _FITS:
        r = REF[case]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mm.SingularFitWarning)
            _FITS[case] = mm.clmm(r["formula"], WINE, link=_SAME_MODEL.get(r["link"], r["link"]),
                                  threshold=r["threshold"], n_agq=r["nAGQ"])
    return _FITS[case]


def _reference_parameters(o, r) -> np.ndarray:
    """ordinal's estimates as (α, β, θ) with θ the Cholesky factors of its covariances."""
    theta = []
    for t in o.design.terms:
        cov = np.reshape(r["covariance"][t.group], (t.ncols, t.ncols))
        L = np.sqrt(cov) if t.ncols == 1 else np.linalg.cholesky(cov)
        theta += [L[i, j] for j in range(t.ncols) for i in range(j, t.ncols)]
    return np.concatenate([list(r["alpha"].values()), list(r["beta"].values()), theta])


def _reference_loglik(r) -> float:
    """ordinal's logLik, or, for one (1 | g) term, the Laplace likelihood computed by hand in R
    at ordinal's estimates: ordinal's own report is off it by up to 3e-4 (cloglog, loglog,
    cauchit), ~1e-5 elsewhere (its inner iterations)."""
    return r["laplace_by_hand"] if r.get("laplace_by_hand") is not None else r["logLik"]


# cauchit (not log-concave, where ordinal's optimizer stops ~3e-4 short) is checked on its own
CASES = [c for c in REF if c != "cauchit"]


@pytest.mark.parametrize("case", list(REF))
def test_likelihood_at_ordinals_estimates(case):
    """Our Laplace/AGQ likelihood evaluated at ordinal's estimates is the reference's."""
    r, o = REF[case], _fit(case)
    ours = -0.5 * o.objective(_reference_parameters(o, r))
    assert ours == pytest.approx(_reference_loglik(r), rel=1e-7)
    assert ours == pytest.approx(r["logLik"], rel=5e-6)


@pytest.mark.parametrize("case", CASES)
def test_loglik_and_estimates(case):
    r, o = REF[case], _fit(case)
    assert o.loglik == pytest.approx(r["logLik"], rel=1e-6 if case not in ("cloglog", "loglog") else 3e-6)
    # our optimum is ordinal's or above it
    assert o.loglik >= _reference_loglik(r) - 1e-7
    tol = 2e-4 if case in ("cloglog", "loglog") else 1e-4  # where ordinal stops early
    assert list(o.alpha.index) == list(r["alpha"])
    np.testing.assert_allclose(o.alpha.to_numpy(), list(r["alpha"].values()), atol=tol)
    np.testing.assert_allclose(o.thresholds.to_numpy(), r["thresholds"], atol=tol)
    assert list(o.fixef.index) == list(r["beta"])
    np.testing.assert_allclose(o.fixef.to_numpy(), list(r["beta"].values()), atol=tol)
    assert o.aic == pytest.approx(r["AIC"], rel=3e-6)


@pytest.mark.parametrize("case", CASES)
def test_variances_and_standard_errors(case):
    r, o = REF[case], _fit(case)
    covs = {t.group: c for t, c in zip(o.design.terms, o.term_covariances())}
    for group, ref in r["covariance"].items():
        np.testing.assert_allclose(np.ravel(covs[group], order="F"), np.atleast_1d(ref), atol=1e-3)
    se = o.coef_table()["Std. Error"]
    # at a variance on its boundary ordinal's numerical Hessian differs more
    rtol = 2e-3 if o.is_singular else 1e-3
    np.testing.assert_allclose(se.to_numpy(), list(r["se"].values()), rtol=rtol)


@pytest.mark.parametrize("case", ["logit", "probit", "crossed2", "vector"])
def test_random_effects_and_conditional_variances(case):
    r, o = REF[case], _fit(case)
    for term, b in zip(o.design.terms, o.random_effects()):
        np.testing.assert_allclose(np.ravel(b, order="F"), r["ranef"][term.group], atol=1e-3)
    cv = o.conditional_covariance()
    ref = np.asarray(r["condVar"][0] if isinstance(r["condVar"][0], list) else r["condVar"])
    if case == "vector":  # ordinal: the dense 18 × 18 matrix, intercepts then slopes
        m = o.design.terms[0].nlevels
        full = ref.reshape(2 * m, 2 * m, order="F")
        for g in range(m):
            block = full[np.ix_([g, m + g], [g, m + g])]
            np.testing.assert_allclose(cv[0][g], block, rtol=2e-3, atol=1e-5)
    else:
        ours = np.concatenate([c[:, 0, 0] for c in cv])
        np.testing.assert_allclose(ours, ref, rtol=2e-3)


@pytest.mark.parametrize("case", ["logit", "probit", "cloglog", "equidistant", "agq10", "vector"])
def test_predicted_probabilities(case):
    r, o = REF[case], _fit(case)
    np.testing.assert_allclose(o.predict().to_numpy()[:8], r["prob_re"], atol=1e-4)
    np.testing.assert_allclose(o.predict(re_form="~0").to_numpy()[:8], r["prob0"], atol=1e-4)
    new = WINE.iloc[:8].drop(columns=["rating"])
    np.testing.assert_allclose(o.predict(new).to_numpy(), r["prob_re"], atol=1e-4)
    cum = o.predict(new, type="cum_prob")
    assert list(cum.columns) == ["1|2", "2|3", "3|4", "4|5"]
    np.testing.assert_allclose(cum.to_numpy(), np.cumsum(r["prob_re"], axis=1)[:, :-1], atol=1e-4)
    cls = o.predict(new, type="class")
    assert list(cls.astype(str)) == [str(k + 1) for k in np.argmax(r["prob_re"], axis=1)]


def test_cauchit_is_at_least_ordinals_optimum():
    r, o = REF["cauchit"], _fit("cauchit")
    assert o.loglik >= r["logLik"]
    assert o.loglik == pytest.approx(r["logLik"], rel=1e-4)
    np.testing.assert_allclose(o.fixef.to_numpy(), list(r["beta"].values()), atol=5e-3)


def test_laplace_gradient_is_exact():
    """The hand-derived gradient against central differences, for every link, a crossed and a
    vector model."""
    y = WINE["rating"].cat.codes.to_numpy()
    X = np.column_stack([(WINE.temp == "warm"), (WINE.contact == "yes")]).astype(float)
    o = _fit("vector")
    crossed = _fit("crossed2")
    rng = np.random.default_rng(1)
    for terms, Xm in (([t.matrix for t in o.design.terms], X),
                      ([t.matrix for t in crossed.design.terms], X[:, 1:])):
        for link in CUMULATIVE_LINKS.values():
            e = OrdinalEngine(y, Xm, None, terms, make_thresholds(list("12345"), "flexible"), link)
            x = np.concatenate([[-1.5, 0.5, 2.5, 4.0], rng.normal(size=Xm.shape[1]),
                                0.5 + rng.random(e.n_theta)])
            _, g = e.loglik_and_gradient(x)
            h = 1e-6
            num = [(e.loglik(x + h * d).loglik - e.loglik(x - h * d).loglik) / (2 * h)
                   for d in np.eye(len(x))]
            np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_post_estimation_contract():
    o = _fit("logit")
    tab = o.coef_table()
    assert list(tab.index) == ["1|2", "2|3", "3|4", "4|5", "tempwarm", "contactyes"]
    assert list(o.vcov.index) == ["tempwarm", "contactyes"]
    ci = o.confint()
    np.testing.assert_allclose(ci.iloc[:, 1] - ci.iloc[:, 0], 2 * 1.959964 * tab["Std. Error"], rtol=1e-5)
    vc = o.varcorr
    assert vc.loc[0, "vcov"] == pytest.approx(REF["logit"]["variance"]["judge"], rel=1e-3)
    assert set(o.ranef) == {"judge"}
    text = str(o.summary())
    assert "Threshold coefficients" in text and "judge" in text
    fitted = o.fitted()
    P = o.predict().to_numpy()
    np.testing.assert_allclose(fitted.to_numpy(), P[np.arange(72), WINE["rating"].cat.codes], rtol=1e-10)
    smaller = mm.clmm("rating ~ temp + (1 | judge)", WINE)
    table = mm.anova(smaller, o)
    assert table["Df"].iloc[1] == 1
    assert table["Chisq"].iloc[1] == pytest.approx(2 * (o.loglik - smaller.loglik))


def test_profile_interval_contains_wald_centre():
    o = _fit("logit")
    prof = o.confint("profile", parm=["tempwarm"])
    lo, hi = prof.loc["tempwarm"]
    x = o.parameters.to_numpy()
    j = list(o.parameters.index).index("tempwarm")
    # at each end the likelihood-ratio statistic is the chi-square quantile
    from mixedmodels.postestimation.ordinal_profile import _profile_deviance  # noqa: PLC0415

    for end in (lo, hi):
        dev = _profile_deviance(o, j, end, x)[0]
        assert dev - (-2 * o.loglik) == pytest.approx(3.841459, abs=1e-3)
    assert lo < o.fixef["tempwarm"] < hi


def test_simulate():
    o = _fit("logit")
    sims = o.simulate(200, seed=3)
    assert sims.shape == (72, 200)
    assert list(sims["sim_1"].cat.categories) == ["1", "2", "3", "4", "5"]
    freq = np.mean([np.bincount(sims[c].cat.codes, minlength=5) for c in sims], axis=0) / 72
    observed = np.bincount(WINE["rating"].cat.codes, minlength=5) / 72
    assert np.max(np.abs(freq - observed)) < 0.06


def test_unordered_response_warns_with_the_order():
    data = WINE.copy()
    data["rating"] = data["rating"].astype(str)
    with pytest.warns(mm.OrdinalResponseWarning, match="1 < 2 < 3 < 4 < 5"):
        o = mm.clmm("rating ~ temp + contact + (1 | judge)", data)
    assert o.loglik == pytest.approx(REF["logit"]["logLik"], rel=1e-6)
    data["rating"] = pd.Categorical(data["rating"])
    with pytest.warns(mm.OrdinalResponseWarning, match="unordered categorical"):
        mm.clmm("rating ~ temp + contact + (1 | judge)", data)


def test_two_levels_is_a_binary_cumulative_link_model():
    data = WINE.copy()
    data["high"] = pd.Categorical(np.where(WINE["rating"].cat.codes >= 2, "hi", "lo"),
                                  categories=["lo", "hi"], ordered=True)
    o = mm.clmm("high ~ temp + contact + (1 | judge)", data)
    g = mm.glmer("high ~ temp + contact + (1 | judge)", data, family="binomial")
    # the same model: threshold = −intercept
    assert o.loglik == pytest.approx(g.loglik, abs=1e-3)
    np.testing.assert_allclose(o.fixef.to_numpy(), g.fixef.to_numpy()[1:], atol=1e-3)
    assert o.thresholds.iloc[0] == pytest.approx(-g.fixef.iloc[0], abs=1e-3)
    with pytest.raises(ValueError, match="at least 3 levels"):
        mm.clmm("high ~ temp + (1 | judge)", data, threshold="symmetric")


def test_bad_arguments():
    with pytest.raises(ValueError, match="'logit', 'probit', 'cloglog'"):
        mm.clmm("rating ~ temp + (1 | judge)", WINE, link="logistic")
    with pytest.raises(ValueError, match="'flexible', 'equidistant', 'symmetric'"):
        mm.clmm("rating ~ temp + (1 | judge)", WINE, threshold="free")
    with pytest.raises(ValueError, match="single scalar"):
        mm.clmm("rating ~ temp + (1 | judge) + (1 | bottle)", WINE, n_agq=5)
    with pytest.raises(mm.DataError, match="OrderedModel"):
        mm.clmm("rating ~ temp", WINE)
    data = WINE.copy()
    data["one"] = pd.Categorical(["a"] * 72, ordered=True)
    with pytest.raises(mm.DataError, match="at least 2"):
        mm.clmm("one ~ temp + (1 | judge)", data)


def test_columns_aliased_with_the_thresholds_are_dropped():
    # as R's pivoting (and clm): the later of the aliased columns goes
    with pytest.warns(mm.RankDeficiencyWarning, match="tempwarm"):
        o = mm.clmm("rating ~ 0 + temp + contact + (1 | judge)", WINE)
    assert list(o.fixef.index) == ["tempcold", "contactyes"]
    assert o.fixef["tempcold"] == pytest.approx(-REF["logit"]["beta"]["tempwarm"], abs=1e-4)
    assert o.loglik == pytest.approx(REF["logit"]["logLik"], rel=1e-6)


def test_case_weights_are_repeated_rows():
    doubled = pd.concat([WINE, WINE.iloc[:10]], ignore_index=True)
    a = mm.clmm("rating ~ temp + contact + (1 | judge)", doubled)
    w = np.ones(len(WINE))
    w[:10] = 2.0
    b = mm.clmm("rating ~ temp + contact + (1 | judge)", WINE, weights=w)
    assert b.loglik == pytest.approx(a.loglik, rel=1e-9)
    np.testing.assert_allclose(b.coefficients.to_numpy(), a.coefficients.to_numpy(), atol=1e-6)


@pytest.mark.parametrize("link", list(CUMULATIVE_LINKS))
def test_agq_gradient_is_exact(link):
    from mixedmodels.models.ordinal_agq import agq_loglik_and_gradient

    o = _fit("agq10")
    e = OrdinalEngine(o.engine.y, o.engine.X, None, [t.matrix for t in o.design.terms],
                      o.thresholds_spec, CUMULATIVE_LINKS[link])
    gh = np.polynomial.hermite.hermgauss(7)
    x = o.parameters.to_numpy() + np.array([0.1, -0.2, 0.1, 0.3, 0.2, -0.1, 0.3])
    _, g = agq_loglik_and_gradient(e, x, *gh)
    h = 1e-6
    num = [(agq_loglik_and_gradient(e, x + h * d, *gh, gradient=False)[0]
            - agq_loglik_and_gradient(e, x - h * d, *gh, gradient=False)[0]) / (2 * h)
           for d in np.eye(len(x))]
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-6)


def test_pickle_and_refit_to_a_simulated_response():
    import pickle

    o = _fit("logit")
    back = pickle.loads(pickle.dumps(o))
    assert back.loglik == o.loglik
    np.testing.assert_allclose(back.predict().to_numpy(), o.predict().to_numpy())
    same = o.refit()  # the same response: the same fit, started at the estimates
    assert same.loglik == pytest.approx(o.loglik, rel=1e-10)
    y = o.simulate(1, seed=2)["sim_1"].cat.codes.to_numpy().astype(float)
    new = o.refit(y)
    assert new.nobs == 72 and np.isfinite(new.loglik) and new.loglik != o.loglik


def test_profile_interval_of_a_standard_deviation():
    from mixedmodels.postestimation.ordinal_profile import _profile_deviance  # noqa: PLC0415

    o = _fit("logit")
    lo, hi = o.confint("profile", parm=["ST1"]).loc["ST1"]
    j = list(o.parameters.index).index("ST1")
    for end in (lo, hi):
        dev = _profile_deviance(o, j, end, o.parameters.to_numpy())[0]
        assert dev + 2 * o.loglik == pytest.approx(3.841459, abs=1e-3)
    assert 0 < lo < o.theta[0] < hi
    # bottle's sd is estimated at its bound 0: the interval starts there
    crossed = _fit("crossed")
    names = list(crossed.parameters.index)
    bottle = f"ST{1 + [t.group for t in crossed.design.terms].index('bottle')}"
    lo, hi = crossed.confint("profile", parm=[bottle]).loc[bottle]
    assert lo == 0.0 and hi > 0
    assert bottle in names
