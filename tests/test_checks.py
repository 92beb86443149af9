"""Post-fit checks: singular fits, scaling, convergence, check levels, warning hygiene."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels import lmer
from mixedmodels.exceptions import ConvergenceWarning, ScalingWarning, SingularFitWarning
from mixedmodels.models.checks import check_convergence, check_scaling, finite_difference_derivatives, singular_terms
from mixedmodels.models.optim import Control


def _fit_recording(formula, data, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = lmer(formula, data, **kw)
    return model, caught


def _of(caught, category):
    return [w for w in caught if issubclass(w.category, category)]


# -- singular fits ------------------------------------------------------------------------------

def test_dyestuff2_is_singular_with_lme4_loglik():
    data = mm.load_dataset("Dyestuff2")
    m, caught = _fit_recording("Yield ~ 1 + (1 | Batch)", data)
    # lme4: REML criterion 161.8283, theta 0
    assert m.theta[0] == 0.0
    assert m.reml_criterion == pytest.approx(161.8283, abs=1e-4)
    assert m.loglik == pytest.approx(-80.91413, abs=1e-5)
    # brute force: at theta = 0 the model is OLS; REML criterion of an intercept-only OLS fit
    y = data["Yield"].to_numpy()
    n = len(y)
    rss = np.sum((y - y.mean()) ** 2)
    brute = (n - 1) * (1 + np.log(2 * np.pi * rss / (n - 1))) + np.log(n)
    assert m.reml_criterion == pytest.approx(brute, abs=1e-8)
    assert m.is_singular
    sing = _of(caught, SingularFitWarning)
    assert len(sing) == 1
    text = str(sing[0].message)
    assert "Batch" in text and "~0" in text
    for advice in ("too few groups", "simpler structure", "cluster-robust", "GEE", "regularized",
                   "mm.help('singular')"):
        assert advice in text
    # the warning points at the caller, not at the package's internals
    assert sing[0].filename == __file__
    # a boundary optimum is not a convergence failure
    assert not _of(caught, ConvergenceWarning)
    assert m.convergence.ok


def test_perfect_correlation_is_named():
    rng = np.random.default_rng(3)
    G, per = 8, 10
    g = np.repeat(np.arange(G), per)
    x = np.tile(np.linspace(0, 1, per), G)
    b0 = rng.normal(0, 1, G)
    y = 1 + 2 * x + b0[g] + 1.5 * b0[g] * x + rng.normal(0, 0.3, G * per)
    d = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    m, caught = _fit_recording("y ~ x + (1 + x | g)", d)
    assert m.is_singular
    corr = m.varcorr.query("var2 == 'x'")["sdcor"].iloc[0]
    assert abs(corr) == pytest.approx(1.0, abs=1e-6)
    (what,) = singular_terms(m)
    assert "correlation" in what and "+1.00" in what
    assert len(_of(caught, SingularFitWarning)) == 1
    assert not _of(caught, ConvergenceWarning)


def test_check_levels_raise_and_ignore():
    data = mm.load_dataset("Dyestuff2")
    with pytest.raises(SingularFitWarning, match="Batch"):
        lmer("Yield ~ 1 + (1 | Batch)", data, control=Control(check_singular="raise"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = lmer("Yield ~ 1 + (1 | Batch)", data, control=Control(check_singular="ignore"))
    assert m.is_singular  # recorded even when not reported
    with pytest.raises(ValueError, match="check_conv"):
        lmer("Yield ~ 1 + (1 | Batch)", data, control=Control(check_conv="loud"))


# -- scaling ------------------------------------------------------------------------------------

def test_calendar_year_triggers_scaling_warning_naming_the_column(year_data):
    d = year_data.copy()
    m, caught = _fit_recording("y ~ year + (1 | g)", d)
    (w,) = _of(caught, ScalingWarning)
    text = str(w.message)
    assert "year" in text and "mean 2,010" in text and "standardize=True" in text
    assert "mm.help('scaling')" in text
    assert [p.column for p in m.scaling_problems] == ["year"]
    assert m.convergence.ok and not m.is_singular


def test_very_different_scales_name_the_extreme_columns(year_data):
    d = year_data.copy()
    d["year"] = d["year"] - 2010
    (problem,) = check_scaling(mm.build_design("y ~ year + income + (1 | g)", d))
    assert problem.column == "income" and problem.reason == "sd_ratio"
    d["tiny"] = np.random.default_rng(0).normal(0, 1e-2, len(d))
    problems = check_scaling(mm.build_design("y ~ year + income + tiny + (1 | g)", d))
    assert {p.column for p in problems} == {"income", "tiny"}
    # a rare 0/1 indicator has a small SD but is not a scaling problem
    d["rare"] = (np.arange(len(d)) == 0).astype(float)
    assert check_scaling(mm.build_design("y ~ year + rare + (1 | g)", d)) == []


def test_well_scaled_columns_and_indicators_pass():
    gpa = mm.load_dataset("gpa")
    assert check_scaling(mm.build_design("gpa ~ occasion + sex + (1 + occasion | student)", gpa)) == []


def test_one_warning_per_class_and_true_convergence_warning(year_data):
    # random slope on a calendar year: the raw fit really fails (the centred fit is much better)
    d = year_data.copy()
    raw, caught = _fit_recording("y ~ year + (1 + year | g)", d)
    for cls in (ScalingWarning, ConvergenceWarning, SingularFitWarning):
        assert len(_of(caught, cls)) <= 1
    assert len(_of(caught, ScalingWarning)) == 1
    assert len(_of(caught, ConvergenceWarning)) == 1
    d["yc"] = d["year"] - 2010
    centred, caught2 = _fit_recording("y ~ yc + (1 + yc | g)", d)
    assert not caught2
    # the warning was true: the raw fit stopped well short of the optimum
    assert raw.loglik < centred.loglik - 1.0
    assert not raw.convergence.ok
    assert raw.convergence.relative_gradient > 0.1


# -- convergence --------------------------------------------------------------------------------

def test_finite_differences_match_analytic_derivatives():
    A = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, -0.2], [0.5, -0.2, 2.0]])
    b = np.array([1.0, -2.0, 0.5])

    def f(x):
        return 0.5 * x @ A @ x - b @ x + 0.1 * x[0] ** 4

    x = np.array([0.3, -0.7, 0.0])
    grad, hess, one_sided = finite_difference_derivatives(f, x, lower=np.array([-np.inf, -np.inf, 0.0]))
    exact_g = A @ x - b + np.array([0.4 * x[0] ** 3, 0, 0])
    exact_h = A + np.diag([1.2 * x[0] ** 2, 0, 0])
    assert one_sided.tolist() == [False, False, True]
    np.testing.assert_allclose(grad, exact_g, atol=1e-5)
    np.testing.assert_allclose(hess, exact_h, atol=1e-3)


def test_perturbed_estimates_fail_the_gradient_check(sleepstudy):
    m = lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    info = m.convergence
    assert info.ok and info.relative_gradient < 1e-3
    assert np.all(info.hessian_eigenvalues > 0)
    theta = m.theta
    m.set_theta(theta * np.array([1.3, 1.0, 1.0]))
    off = check_convergence(m, force=True)
    assert not off.ok and off.relative_gradient > 1
    assert "not at the minimum" in off.messages[0]
    np.testing.assert_allclose(m.theta, theta * np.array([1.3, 1.0, 1.0]))  # state restored


def test_evaluation_limit_warns(sleepstudy):
    m, caught = _fit_recording("Reaction ~ Days + (Days | Subject)", sleepstudy,
                               control=Control(maxfun=8))
    (w,) = _of(caught, ConvergenceWarning)
    assert "evaluation limit" in str(w.message) and "maxfun" in str(w.message)
    assert m.convergence.maxfun_reached and not m.convergence.ok


def test_derivative_checks_can_be_skipped(sleepstudy):
    m = lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, control=Control(check_hessian="never"))
    assert m.convergence.gradient is None and m.convergence.ok
    assert "never" in m.convergence.skipped


# -- no false alarms on the well-posed bundled examples -------------------------------------------

@pytest.mark.parametrize("name, formula", [
    ("gpa", "gpa ~ occasion + (1 + occasion | student)"),
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ("InstEval", "y ~ service + (1|s) + (1|d) + (1|dept)"),
])
def test_no_warning_on_well_posed_examples(name, formula):
    data = mm.load_dataset(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = lmer(formula, data)
    assert m.convergence.ok and m.convergence.gradient is not None
    assert m.convergence.relative_gradient < 0.01
    assert not m.is_singular and m._check_messages == []


def test_limit_hit_at_a_verified_minimum_is_a_note_not_a_warning(sleepstudy, more_ref, lme4_ref):
    m = lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    m.optinfo.maxfun_reached = True  # as if the limit had stopped it right at the optimum
    info = check_convergence(m)
    assert info.ok and not info.messages
    assert "evaluation limit" in info.notes[0]
    table = info.table()
    assert (table["step_in_se"] < 0.01).all()
    # SE of θ from the Hessian of the REML criterion, against lme4's profile interval for the
    # intercept SD: a 95% interval spans about 3.92 SE of θ₁ = sd/σ
    prof = more_ref["profile_ci"]
    i = prof["rows"].index("sd_(Intercept)|Subject")
    width = (prof["upper"][i] - prof["lower"][i]) / lme4_ref["sleepstudy_reml"]["sigma"]
    assert table.loc["Subject.(Intercept)", "se"] == pytest.approx(width / 3.92, rel=0.1)
