"""blmer / bglmer against R's blme (tests/reference/make_blme_reference.R).

The references are blme's criterion minimised to convergence (blme's own default optimizer stops
short of it; see the R script), so agreement is to the optimum of the same criterion.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from refs import REF, values

import mixedmodels as mm
from mixedmodels.models import priors as P

BLME = json.loads((REF / "blme_reference.json").read_text())
SS = "Reaction ~ Days + (Days | Subject)"
DY = "Yield ~ 1 + (1 | Batch)"
PEN = "diameter ~ 1 + (1 | plate) + (1 | sample)"
CB = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
TIGHT_PIRLS = mm.Control(pirls_tol=1e-12)   # as the R reference (tolPwrss = 1e-12)


def _data(name):
    return mm.load_dataset(name)


CASES = {
    "sleep_reml": lambda: mm.blmer(SS, _data("sleepstudy")),
    "sleep_ml": lambda: mm.blmer(SS, _data("sleepstudy"), reml=False),
    "dyestuff": lambda: mm.blmer(DY, _data("Dyestuff")),
    "dyestuff2": lambda: mm.blmer(DY, _data("Dyestuff2")),
    "dyestuff2_ml": lambda: mm.blmer(DY, _data("Dyestuff2"), reml=False),
    "penicillin_gamma": lambda: mm.blmer(PEN, _data("Penicillin"), cov_prior="gamma"),
    "penicillin_gamma_rate": lambda: mm.blmer(PEN, _data("Penicillin"), cov_prior=P.gamma(shape=3, rate=0.5)),
    "penicillin_list": lambda: mm.blmer(PEN, _data("Penicillin"), cov_prior={"plate": "gamma", "sample": "invgamma"}),
    "sleep_wishart_normal": lambda: mm.blmer(SS, _data("sleepstudy"), cov_prior=P.wishart(df=4.5),
                                             fixef_prior=P.normal(sd=[10, 2.5])),
    "sleep_wishart_scale": lambda: mm.blmer(SS, _data("sleepstudy"), cov_prior=P.wishart(df=4, scale=[2, 0.5])),
    "sleep_wishart_uncommon": lambda: mm.blmer(SS, _data("sleepstudy"), cov_prior=P.wishart(
        df=4, scale=np.diag([400.0, 40.0]), common_scale=False)),
    "sleep_invwishart": lambda: mm.blmer(SS, _data("sleepstudy"), cov_prior="invwishart"),
    "dyestuff_invgamma": lambda: mm.blmer(DY, _data("Dyestuff"), cov_prior="invgamma"),
    "dyestuff_none_residgamma": lambda: mm.blmer(DY, _data("Dyestuff"), cov_prior=None,
                                                 resid_prior=P.gamma(shape=2, rate=0.001)),
    "dyestuff_residinvgamma": lambda: mm.blmer(DY, _data("Dyestuff"), resid_prior=P.invgamma(shape=2, scale=1000)),
    "dyestuff_residpoint": lambda: mm.blmer(DY, _data("Dyestuff"), resid_prior=P.point(50)),
    "dyestuff_t_ml": lambda: mm.blmer(DY, _data("Dyestuff"), reml=False,
                                      fixef_prior=P.t(df=3, mean=1500, scale=100 ** 2)),
    "sleep_normal_uncommon_ml": lambda: mm.blmer(SS, _data("sleepstudy"), reml=False,
                                                 fixef_prior=P.normal(sd=[300, 20], common_scale=False)),
    "cbpp_t": lambda: mm.bglmer(CB, _data("cbpp"), fixef_prior="t", control=TIGHT_PIRLS),
    "cbpp_default": lambda: mm.bglmer(CB, _data("cbpp"), control=TIGHT_PIRLS),
    "cbpp_normal_gamma": lambda: mm.bglmer(CB, _data("cbpp"), cov_prior="gamma",
                                           fixef_prior=P.normal(sd=[3, 1]), control=TIGHT_PIRLS),
}
_FITS: dict = {}


def fit(name):
    if name not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("error", mm.ConvergenceWarning)
            _FITS[name] = CASES[name]()
    return _FITS[name]


def _rel(a, b) -> float:
    """Largest difference relative to the vector's size (θ has near-zero entries)."""
    a, b = np.atleast_1d(np.asarray(a, float)), values(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_blme(name):
    m, r = fit(name), BLME[name]
    tol = 1e-4 if r["glmm"] else 1e-5
    se = m.coef_table()["Std. Error"].to_numpy()
    assert _rel(m.theta, r["theta"]) < tol
    assert _rel(m.fixef.to_numpy(), r["fixef"]) < tol
    assert _rel(se, r["se"]) < tol
    assert abs(m.loglik - r["loglik"]) < tol * abs(r["loglik"])
    assert abs(m.penalty - r["penalty"]) < tol * max(1.0, abs(r["penalty"]))
    if not r["glmm"]:
        assert abs(m.sigma - r["sigma"]) < tol * r["sigma"]


@pytest.mark.parametrize("name", ["sleep_reml", "penicillin_list", "dyestuff_t_ml", "sleep_normal_uncommon_ml",
                                  "dyestuff_residinvgamma", "sleep_wishart_uncommon", "cbpp_t"])
def test_criterion_is_blmes(name):
    """The penalized criterion itself, at blme's optimum and at a point away from it."""
    m, r = fit(name), BLME[name]
    nt = len(m.theta)
    pars = r["devfun"]["par"] if isinstance(r["devfun"]["par"][0], list) else [r["devfun"]["par"]]
    vals = np.atleast_1d(r["devfun"]["value"])
    for par, value in zip(pars, vals):
        par = np.asarray(par, float)
        mine = m.objective(par) if not r["glmm"] else m.objective(par[:nt], par[nt:])
        assert mine == pytest.approx(value, rel=1e-9)


def test_never_singular_where_reml_is():
    d2 = _data("Dyestuff2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reml = mm.lmer(DY, d2)
    assert reml.theta[0] == 0.0
    m = fit("dyestuff2")
    assert m.theta[0] > 0.3 and not m.is_singular


def test_summary_shows_priors_and_mode():
    text = str(fit("sleep_wishart_normal").summary())
    assert "Cov prior  : Subject ~ wishart(df = 4.5" in text
    assert "Fixef prior: normal(sd = c(10, 2.5)" in text
    assert "Prior dev" in text and "posterior mode" in text
    assert "['blmerMod']" in text
    g = str(fit("cbpp_t").summary())
    assert "Fixef prior: t(df = 3" in g and "['bglmerMod']" in g


def test_wald_and_profile_intervals_on_the_penalized_criterion():
    m = fit("dyestuff")
    w = m.confint()
    pr = m.confint("profile")
    for ci in (w, pr):
        assert np.all(ci["lower"] < ci["estimate"]) and np.all(ci["estimate"] < ci["upper"])
    # the profile limits are where the penalized criterion has risen by z² = 3.84
    crit_rows = list(pr.index)
    from mixedmodels.models.penalized_ci import ExplicitCriterion
    ml = m.refit_ml()
    crit = ExplicitCriterion(ml)
    j = crit_rows.index("(Intercept)")
    w0 = crit.w_hat.copy()
    w0[j] = pr.loc["(Intercept)", "upper"]
    # β enters quadratically given (θ, σ): profiling over the others can only lower it
    assert crit(w0) - crit.f_hat >= 3.84 * 0.999
    assert pr.loc["(Intercept)", "upper"] - 1527.5 == pytest.approx(
        1527.5 - pr.loc["(Intercept)", "lower"], rel=1e-3)


def test_refit_keeps_the_priors():
    m = fit("dyestuff")
    again = m.refit(m.response)
    assert np.allclose(again.theta, m.theta, rtol=1e-6)
    assert again.penalty == pytest.approx(m.penalty, rel=1e-6)


def test_with_design_rebinds_the_priors():
    m = fit("sleep_wishart_normal")
    sub = m.with_design(m.design.subset(np.arange(120))[0]).fit()
    assert sub.priors.cov[0].df == 4.5 and sub.priors.fixef is not None
    assert sub.nobs == 120 and np.all(np.isfinite(sub.theta))
