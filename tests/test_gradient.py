"""The analytic gradient of the profiled (RE)ML deviance (mixedmodels.core.gradient), against
central finite differences of the deviance on every lme4 reference LMM, at lme4's optimum and
away from it; the gradient optimizer's fits against lme4's logLik (equal or better)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from refs import LME4, REF, values

import mixedmodels as mm
from mixedmodels.core.gradient import theta_jacobians

SMALL = json.loads((REF / "small_fits_reference.json").read_text())
DATASETS = {"gpa.csv": "gpa", "sleepstudy.csv": "sleepstudy", "Penicillin.csv": "Penicillin",
            "Pastes.csv": "Pastes", "Dyestuff.csv": "Dyestuff"}
LMM_REFS = {k: r for k, r in LME4.items() if r.get("family") == "gaussian" and r["data"] in DATASETS}


def pixel() -> pd.DataFrame:
    frame = pd.read_csv(REF / "Pixel.csv", dtype={"Dog": str, "Side": str})
    frame["Dog"] = pd.Categorical(frame["Dog"])
    frame["Side"] = pd.Categorical(frame["Side"])
    return frame


CASES = {**{k: (r, lambda r=r: mm.load_dataset(DATASETS[r["data"]])) for k, r in LMM_REFS.items()},
         **{k: (r, pixel) for k, r in SMALL.items() if k.startswith("pixel_")}}


def _model(key: str, **control):
    ref, data = CASES[key]
    return mm.lmer(ref["formula"], data(), reml=bool(ref["reml"]), control=mm.Control(**control)), ref


def _central(fun, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Fourth-order central differences (error ~h⁴)."""
    out = np.empty(len(x))
    for j, e in enumerate(np.eye(len(x))):
        out[j] = (-fun(x + 2 * h * e) + 8 * fun(x + h * e) - 8 * fun(x - h * e) + fun(x - 2 * h * e)) / (12 * h)
    return out


def _crossed_data(n: int = 20_000, m1: int = 300, m2: int = 1_400, seed: int = 13) -> pd.DataFrame:
    """A seeded crossed design ``y ~ x + (1 | g1) + (1 | g2)`` (uniform level assignment)."""
    rng = np.random.default_rng(seed)
    g1, g2 = rng.integers(0, m1, n), rng.integers(0, m2, n)
    x = rng.normal(size=n)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.6, m1)[g1] + rng.normal(0, 0.8, m2)[g2] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g1": pd.Categorical(g1), "g2": pd.Categorical(g2)})


@pytest.mark.parametrize("key", list(CASES))
def test_gradient_matches_finite_differences(key):
    m, ref = _model(key, check_conv="ignore")
    assert m.has_gradient
    theta_ref = values(ref["theta"])
    for theta in (theta_ref, 1.3 * theta_ref + 0.05):
        value, grad = m.objective_and_gradient(theta)
        assert value == pytest.approx(m.objective(theta), rel=1e-10)
        fd = _central(m.objective, theta)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))
    # at lme4's optimum the deviance is flat (lme4 stops within its tolerances of it)
    _, grad = m.objective_and_gradient(theta_ref)
    assert np.abs(grad).max() < 0.05


@pytest.mark.parametrize("key", list(CASES))
def test_gradient_optimizer_reaches_lme4s_optimum(key):
    """L-BFGS-B with the analytic gradient: logLik equal to lme4's or better."""
    m, ref = _model(key, optimizer="lbfgsb")
    assert m.optinfo.optimizer == "lbfgsb"
    assert m.loglik >= ref["loglik"] - 1e-7 * abs(ref["loglik"])
    np.testing.assert_allclose(m.theta, values(ref["theta"]), rtol=2e-3, atol=2e-4)


def test_gradient_optimizer_leaves_a_zero_variance_bound():
    """The deviance is even in a diagonal entry of T, so its derivative on the bound is 0: on
    Pixel, L-BFGS-B's line search lands on θ = 0 for the slope's sd, a false stationary point.
    The boundary probe restarts it, and the fit reaches lme4's optimum."""
    m, ref = _model("pixel_reml", optimizer="lbfgsb")
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-8)
    assert m.theta[3] == pytest.approx(ref["theta"][3], rel=1e-3)


@pytest.mark.parametrize("key", ["pixel_reml", "pixel_ml"])
def test_pixel_default_fit_matches_lme4(key):
    m, ref = _model(key)
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-7)
    np.testing.assert_allclose(m.fixef.to_numpy(), values(ref["fixef"]), rtol=1e-5)
    np.testing.assert_allclose(m.coef_table()["Std. Error"].to_numpy(), values(ref["se"]), rtol=1e-3)


def test_structured_parametrization_without_jacobian_has_no_gradient():
    """A parametrization whose term gives no dT/dθ makes the gradient unavailable: the fit is
    derivative-free (BOBYQA's lme4 fit is unchanged)."""
    class NoJacobian:
        def jacobian(self, theta):
            return [None]

    assert theta_jacobians(NoJacobian(), np.ones(1)) is None
    m, ref = _model("dyestuff")
    assert theta_jacobians(m.factor.parametrization, m.theta)[0].shape == (1, 1, 1)


def test_large_scalar_systems_have_the_blocked_gradient():
    """InstEval (q ≈ 4,100, scalar terms): no dense inverse, the blocked gradient from the
    evaluation's own factor, equal to central differences of the deviance at lme4's θ and away
    from it."""
    from mixedmodels.core.gradient import ProfiledGradient

    ref = LME4["insteval"]
    m = mm.lmer(ref["formula"], mm.load_dataset("InstEval"), reml=bool(ref["reml"]),
                control=mm.Control(check_conv="ignore", maxfun=3))
    assert m.has_gradient and ProfiledGradient(m.factor).blocked is not None
    theta_ref = values(ref["theta"])
    for theta in (theta_ref, 1.3 * theta_ref + 0.05):
        value, grad = m.objective_and_gradient(theta)
        assert value == pytest.approx(m.objective(theta), rel=1e-10)
        fd = _central(m.objective, theta, h=1e-3)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))


def test_blocked_gradient_on_the_dense_syrk_schur_update(monkeypatch):
    """Two crossed scalar terms whose Schur update is the dense syrk (product maps and the sparse
    product switched off): the blocked gradient reads L_10 from the update's dense buffer, and
    equals central differences of the deviance (ML and REML)."""
    import mixedmodels.core.factor as factor_module
    from mixedmodels.core.gradient import ProfiledGradient

    monkeypatch.setattr(factor_module, "_PRODUCT_MAP_LIMIT", 0)
    monkeypatch.setattr(factor_module, "_SPARSE_PRODUCT_COST", 1e15)
    data = _crossed_data()
    for reml in (True, False):
        m = mm.lmer("y ~ x + (1 | g1) + (1 | g2)", data, reml=reml,
                    control=mm.Control(check_conv="ignore", maxfun=3, method="exact"))
        assert "dense, syrk" in m.factor.schur.values()
        assert ProfiledGradient(m.factor).blocked is not None
        for theta in (np.array([0.6, 0.8]), np.array([1.1, 0.3])):
            m.factor.update(theta)
            assert m.factor.first_term_dense(1) is not None
            value, grad = m.objective_and_gradient(theta)
            assert value == pytest.approx(m.objective(theta), rel=1e-10)
            fd = _central(m.objective, theta, h=1e-4)
            np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))


def test_auto_optimizer_keeps_bobyqa_on_insteval_and_takes_the_gradient_above_the_threshold(monkeypatch):
    """``Control(optimizer="auto")``: InstEval's evaluations (about 4e9 flops, product maps) stay
    on lme4's BOBYQA path; where the evaluations cost more than GRADIENT_FLOPS (lowered here so
    InstEval crosses it) the fit takes L-BFGS-B with the blocked gradient and reaches lme4's
    logLik or better."""
    import mixedmodels.models.lmm as lmm_module

    ref = LME4["insteval"]
    data = mm.load_dataset("InstEval")
    m = mm.lmer(ref["formula"], data, reml=bool(ref["reml"]))
    assert m.optinfo.optimizer == "bobyqa" and 1e9 < m.evaluation_flops() < lmm_module.GRADIENT_FLOPS
    monkeypatch.setattr(lmm_module, "GRADIENT_FLOPS", 1e9)
    m = mm.lmer(ref["formula"], data, reml=bool(ref["reml"]))
    assert m.optinfo.optimizer == "lbfgsb" and m.optinfo.factor["gradient"]
    assert m.loglik >= ref["loglik"] - 1e-7 * abs(ref["loglik"])
    np.testing.assert_allclose(m.theta, values(ref["theta"]), rtol=2e-3, atol=2e-4)


def test_auto_optimizer_lowers_the_threshold_after_a_dense_syrk_update(monkeypatch):
    """After a "dense, syrk" Schur update the gradient reuses its buffer, so "auto" takes it
    from a fifth of GRADIENT_FLOPS; the same design with a product map keeps BOBYQA. Both reach
    the same optimum."""
    import mixedmodels.core.factor as factor_module
    import mixedmodels.models.lmm as lmm_module

    data = _crossed_data()
    formula = "y ~ x + (1 | g1) + (1 | g2)"
    monkeypatch.setattr(lmm_module, "GRADIENT_FLOPS", 2e8)  # the design's 1.3e8 lies between
    mapped = mm.lmer(formula, data, control=mm.Control(method="exact"))
    assert "dense, product map" in mapped.factor.schur.values()
    assert mapped.optinfo.optimizer == "bobyqa"
    monkeypatch.setattr(factor_module, "_PRODUCT_MAP_LIMIT", 0)
    monkeypatch.setattr(factor_module, "_SPARSE_PRODUCT_COST", 1e15)
    syrk = mm.lmer(formula, data, control=mm.Control(method="exact"))
    assert "dense, syrk" in syrk.factor.schur.values()
    assert syrk.optinfo.optimizer == "lbfgsb" and syrk.optinfo.nevals < mapped.optinfo.nevals
    assert syrk.loglik >= mapped.loglik - 1e-9 * abs(mapped.loglik)
    np.testing.assert_allclose(syrk.theta, mapped.theta, rtol=2e-3)
