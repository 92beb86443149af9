"""Conditional AIC against cAIC4 (more_reference.json) and a dense n × n evaluation of Greven & Kneib."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla
import scipy.sparse as sp

import mixedmodels as mm
from mixedmodels.exceptions import MixedModelsWarning
from mixedmodels.postestimation.caic import caic

FORMULAS = ["Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"]


@pytest.mark.parametrize("formula", FORMULAS)
def test_caic_matches_caic4(formula, sleepstudy, more_ref):
    ref = more_ref["caic"][formula]
    out = caic(mm.lmer(formula, sleepstudy))
    assert out["caic"] == pytest.approx(ref["caic"], abs=1e-3)
    assert out["df"] == pytest.approx(ref["df"], abs=1e-4)
    assert out["conditional_loglik"] == pytest.approx(ref["conditional_loglik"], abs=1e-3)
    assert out["reduced_model"] is None and not out["new"]


def _dense_df(model) -> float:
    """Greven & Kneib's df written with n × n matrices, as in their paper's notation."""
    d = model.design
    n, X = d.nobs, d.X
    w = d.weights if d.weights is not None else np.ones(n)
    Z = sp.hstack([t.matrix.sparse() for t in d.terms]).toarray()
    Ts = model.factor.split_theta(model.theta)
    Lam = sla.block_diag(*[np.kron(np.eye(t.nlevels), T) for t, T in zip(d.terms, Ts)])
    V0i = np.linalg.inv(np.diag(1 / w) + Z @ Lam @ Lam.T @ Z.T)
    A = V0i - V0i @ X @ np.linalg.inv(X.T @ V0i @ X) @ X.T @ V0i
    e = d.y - model.fitted()
    tye = d.y @ e
    offs = np.cumsum([0] + [t.matrix.q for t in d.terms])
    Ws = []
    for ti, (t, (rows, cols)) in enumerate(zip(d.terms, model.factor.layouts)):
        for r, c in zip(rows, cols):
            E = np.zeros((t.ncols, t.ncols))
            E[r, c] = E[c, r] = 1
            D = np.zeros((offs[-1], offs[-1]))
            D[offs[ti]:offs[ti + 1], offs[ti]:offs[ti + 1]] = np.kron(np.eye(t.nlevels), E)
            Ws.append(Z @ D @ Z.T)
    k = len(Ws)
    P = A if model.reml else V0i
    nprime = n - X.shape[1] if model.reml else n
    B, C = np.zeros((k, k)), np.zeros((k, n))
    for j in range(k):
        C[j] = (e @ Ws[j]) @ A - (e @ Ws[j] @ e) * e / (2 * tye)
        for kk in range(k):
            B[j, kk] = (-tye * np.trace(Ws[j] @ P @ Ws[kk] @ P) / (2 * nprime)
                        - (e @ Ws[j] @ e) * (e @ Ws[kk] @ e) / (2 * tye)
                        + e @ Ws[kk] @ A @ Ws[j] @ e)
    dlam = np.linalg.solve(B, C)
    RA = np.diag(1 / w) @ A
    return n - np.trace(RA) + sum(dlam[j] @ (RA @ Ws[j] @ e) for j in range(k)) + 1


@pytest.mark.parametrize("case", ["ml", "weights", "zerocorr", "crossed", "nested"])
def test_q_space_equals_dense(case, sleepstudy):
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case == "ml":
            m = mm.lmer(FORMULAS[1], sleepstudy, reml=False)
        elif case == "weights":
            m = mm.lmer(FORMULAS[1], sleepstudy, weights=rng.uniform(0.5, 2, len(sleepstudy)))
        elif case == "zerocorr":
            m = mm.lmer("Reaction ~ Days + (Days || Subject)", sleepstudy)
        elif case == "crossed":
            m = mm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", mm.load_dataset("Penicillin"))
        else:
            m = mm.lmer("strength ~ 1 + (1 | batch/cask)", mm.load_dataset("Pastes"))
    assert caic(m)["df"] == pytest.approx(_dense_df(m), rel=1e-9)


def _slope_singular_data() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(12), 8)
    x = np.tile(np.arange(8.0), 12)
    y = 1 + 0.5 * x + rng.normal(0, 1, 12)[g] + rng.normal(0, 1, len(g))
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})


def test_zero_variance_column_is_dropped_and_refit():
    data = _slope_singular_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = mm.lmer("y ~ x + (x | g)", data)
        simple = mm.lmer("y ~ x + (1 | g)", data)
    assert full.factor.split_theta(full.theta)[0][1, 1] == 0.0  # the slope's scale is on the bound
    with pytest.warns(MixedModelsWarning, match="zero"):
        out = caic(full)
    assert out["new"] and out["reduced_model"] is not None
    assert out["caic"] == pytest.approx(caic(simple)["caic"], abs=1e-5)


def test_all_variances_zero_gives_linear_model_df():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mm.lmer("Yield ~ 1 + (1 | Batch)", mm.load_dataset("Dyestuff2"))
    with pytest.warns(MixedModelsWarning, match="every random-effect variance"):
        out = caic(m)
    assert out["df"] == 1.0
    resid = m.design.y - m.design.y.mean()
    cll = np.sum(-0.5 * (np.log(2 * np.pi * m.sigma ** 2) + resid ** 2 / m.sigma ** 2))
    assert out["conditional_loglik"] == pytest.approx(cll, rel=1e-10)


def test_large_q_fails_clearly(sleepstudy):
    m = mm.lmer(FORMULAS[1], sleepstudy)
    with pytest.raises(ValueError, match="max_q"):
        caic(m, max_q=10)


def test_glmm_not_supported():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                       mm.load_dataset("cbpp"), family="binomial")
    with pytest.raises(NotImplementedError):
        caic(m)


def test_caic_random_intercept_gpa_against_caic4(extra_ref):
    import mixedmodels as mm
    from mixedmodels.postestimation.caic import caic

    ref = extra_ref["caic_gpa3"]
    got = caic(mm.lmer(ref["formula"], mm.load_dataset("gpa")))
    assert got["caic"] == pytest.approx(ref["caic"], rel=1e-5)
    assert got["df"] == pytest.approx(ref["df"], rel=1e-5)
