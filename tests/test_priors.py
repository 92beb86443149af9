"""Prior objects: blme's defaults and penalties, and clear errors for bad parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.models import priors as P
from mixedmodels.models.penalized import bind_priors


def test_wishart_default_penalty_is_blmes():
    # blme: wishart(df = d + 2.5, scale = Inf) gives -2 (df - d - 1) sum(log diag(Λ))
    b = P.wishart().bind("cov", level_dim=2)
    assert b.df == 4.5 and b.constant == 0.0
    T = np.array([[1.2, 0.0], [0.3, 0.5]])
    assert b.polynomial(T) == pytest.approx(-3.0 * (math.log(1.2) + math.log(0.5)))
    assert b.exponential(T) == (0, 0.0)
    assert b.polynomial(np.array([[0.0, 0], [0, 1]])) == np.inf


def test_gamma_default_on_a_scalar_term_equals_the_wishart_default():
    g = P.gamma().bind("cov", level_dim=1)
    w = P.wishart().bind("cov", level_dim=1)
    T = np.array([[0.7]])
    assert g.polynomial(T) == pytest.approx(w.polynomial(T))   # both -3 log θ


def test_gamma_and_invgamma_constants_are_the_log_densities():
    # a proper gamma on θ: -2 log dgamma(θ; shape, rate) = poly + exp + const
    from scipy import stats

    g = P.gamma(shape=3.0, rate=0.5).bind("cov", level_dim=1)
    th = 1.7
    total = g.polynomial(np.array([[th]])) + g.exponential(np.array([[th]]))[1] + g.constant
    assert total == pytest.approx(-2 * stats.gamma.logpdf(th, 3.0, scale=1 / 0.5))
    ig = P.invgamma(shape=2.0, scale=3.0, posterior_scale="sd").bind("cov", level_dim=1)
    total = ig.polynomial(np.array([[th]])) + ig.exponential(np.array([[th]]))[1] + ig.constant
    assert total == pytest.approx(-2 * stats.invgamma.logpdf(th, 2.0, scale=3.0))


def test_normal_and_t_constants_are_the_log_densities():
    from scipy import stats

    beta = np.array([1.0, -2.0, 0.5])
    n = P.normal(sd=[10, 2.5]).bind("fixef", p=3, glmm=True)
    total = n.exponential(beta)[1] + n.constant
    assert total == pytest.approx(-2 * stats.norm.logpdf(beta, 0, [10, 2.5, 2.5]).sum())
    t = P.t().bind("fixef", p=3, glmm=True)
    S = np.diag([100.0, 6.25, 6.25])
    total = t.exponential(beta)[1] + t.constant
    assert total == pytest.approx(-2 * stats.multivariate_t.logpdf(beta, np.zeros(3), S, df=3))


def test_glmm_and_lmm_defaults_differ_as_in_blme():
    lmm = P.invgamma().bind("cov", level_dim=1)
    glmm = P.invgamma().bind("cov", level_dim=1, glmm=True)
    assert (lmm.shape, lmm.scale, lmm.posterior_scale) == (0.001, pytest.approx(0.051), "var")
    assert (glmm.shape, glmm.scale, glmm.posterior_scale) == (0.5, 100.0, "sd")
    assert P.normal().bind("fixef", p=2).common_scale is True
    assert P.normal().bind("fixef", p=2, glmm=True).common_scale is False
    iw = P.invwishart().bind("cov", level_dim=2, glmm=True)
    assert iw.df == pytest.approx(1.5)


def test_priors_by_name_mean_blmes_defaults():
    d = mm.build_design("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
    ps = bind_priors(d, "wishart", "normal")
    assert ps.cov[0].df == 4.5
    assert np.allclose(np.diag(ps.fixef.R_cov_inv), [0.1, 0.4])


@pytest.mark.parametrize("make, match", [
    (lambda: P.wishart(df=-1).bind("cov", level_dim=2), "df must be greater"),
    (lambda: P.wishart(df=0.5).bind("cov", level_dim=2), "singular"),
    (lambda: P.wishart(scale=[1, 2, 3]).bind("cov", level_dim=2), "scale has 3 values"),
    (lambda: P.wishart(scale=[[1, 2], [2, 1]]).bind("cov", level_dim=2), "not positive definite"),
    (lambda: P.invwishart(df=0.2).bind("cov", level_dim=2), "df must be greater"),
    (lambda: P.gamma(shape=-1).bind("cov", level_dim=1), "non-negative"),
    (lambda: P.gamma(rate=-0.1).bind("cov", level_dim=1), "non-negative"),
    (lambda: P.invgamma(scale=-2).bind("cov", level_dim=1), "non-negative"),
    (lambda: P.normal(sd=[1, 2, 3]).bind("fixef", p=4), "3 values for 4 fixed effects"),
    (lambda: P.normal(sd=[1, -2]).bind("fixef", p=2), "positive"),
    (lambda: P.t(df=0).bind("fixef", p=2), "positive"),
    (lambda: P.t(mean=[0, 1, 2]).bind("fixef", p=2), "3 values for 2 fixed effects"),
    (lambda: P.point(value=0).bind("resid"), "positive"),
    (lambda: P.point(value=1, posterior_scale="log").bind("resid"), "posterior_scale"),
    (lambda: P.normal().bind("cov", level_dim=1), "is not a cov_prior"),
    (lambda: P.wishart().bind("fixef", p=2), "is not a fixef_prior"),
    (lambda: P.gamma().bind("resid", glmm=True), "linear mixed models only"),
])
def test_bad_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unknown_names_and_groups_raise():
    d = mm.load_dataset("Dyestuff")
    with pytest.raises(ValueError, match="unknown prior 'wishard'.*did you mean 'wishart'"):
        mm.blmer("Yield ~ 1 + (1 | Batch)", d, cov_prior="wishard")
    with pytest.raises(ValueError, match="grouping factor"):
        mm.blmer("Yield ~ 1 + (1 | Batch)", d, cov_prior={"Plate": "gamma"})
    with pytest.raises(TypeError, match="cov_prior must be a prior"):
        mm.blmer("Yield ~ 1 + (1 | Batch)", d, cov_prior=3)
    with pytest.raises(ValueError, match="reml=False"):
        mm.blmer("Yield ~ 1 + (1 | Batch)", d, fixef_prior="t")


def test_gamma_on_a_vector_term_is_ignored_with_a_warning_as_blme():
    with pytest.warns(mm.MixedModelsWarning, match="scalar terms only"):
        b = P.gamma().bind("cov", level_dim=2, group="Subject")
    assert b is None
