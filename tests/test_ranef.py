"""Conditional modes and conditional SDs of the random effects (lme4's condVar)."""


import numpy as np
import pytest
from refs import MORE
from scipy.linalg import block_diag

import mixedmodels as mm
from mixedmodels import lmer
from mixedmodels.postestimation.ranef import ranef_table
from mixedmodels.presentation.datasets import load_dataset


def test_ranef_table_condvar(sleep):
    tab = sleep.ranef_table()
    assert list(tab.columns) == ["group", "term", "level", "condval", "condsd"]
    assert len(tab) == 36
    b = sleep.ranef["Subject"]
    np.testing.assert_allclose(tab.loc[tab["term"] == "Days", "condval"], b["Days"].to_numpy())
    # a one-term model: condVar has a closed form per level, σ²(1/(σ²/σ_b² + n_g)) for (1 | g)
    m = lmer("Yield ~ 1 + (1 | Batch)", load_dataset("Dyestuff"))
    t = m.ranef_table()
    vc = m.varcorr
    s2b, s2 = vc["vcov"].iloc[0], m.sigma ** 2
    np.testing.assert_allclose(t["condsd"], np.sqrt(1.0 / (1.0 / s2b + 5.0 / s2)), rtol=1e-10)


def test_ranef_table_crossed_uses_all_terms():
    m = lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", load_dataset("Penicillin"))
    t = ranef_table(m)
    assert set(t["grpvar"]) == {"plate", "sample"}
    assert (t["condsd"] > 0).all()
    # crossed: uncertainty in the sample effects adds to each plate's conditional variance
    s2 = m.sigma ** 2
    s2p = m.varcorr.set_index("group").loc["plate", "vcov"]
    one = np.sqrt(1.0 / (1.0 / s2p + 6.0 / s2))
    assert (t.loc[t["grpvar"] == "plate", "condsd"] > one - 1e-12).all()


# --- against an independent dense computation: Var(b | y) = s² Λ (ΛᵀZᵀWZΛ + I)⁻¹ Λᵀ ------------

CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
GROUSE_FORMULA = "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"


def _dense_condsd(model) -> np.ndarray:
    """condsd in ranef_table's row order from dense numpy matrices: Z from the design, Λ from θ,
    W the prior weights (LMM) or the GLMM working weights wt·μ'(η)²/V(μ) at the mode, and s² the
    residual variance scale (σ² for the LMM, 1 for binomial and Poisson)."""
    design = model.design
    Z = np.hstack([t.matrix.sparse().toarray() for t in design.terms])
    Ts = model.factor.split_theta(model.theta)
    Lam = block_diag(*[np.kron(np.eye(t.nlevels), T) for t, T in zip(design.terms, Ts)])
    fam = model.family
    if fam.linear:
        W = model.prior_weights
    else:
        eta = model.linear_predictor()
        mu = model.fitted(type="response").to_numpy()
        W = model.prior_weights * fam.link.mu_eta(eta) ** 2 / fam.variance(mu)
    q = Z.shape[1]
    C = Lam.T @ Z.T @ (W[:, None] * Z) @ Lam + np.eye(q)
    V = model.residual_variance_scale * Lam @ np.linalg.solve(C, Lam.T)
    sds, pos = [], 0
    for t in design.terms:
        m, l = t.nlevels, t.ncols
        d = np.diag(V)[pos:pos + m * l].reshape(m, l)
        sds.extend(np.sqrt(d[:, j]) for j in range(l))      # ranef_table: term by term, column by column
        pos += m * l
    return np.concatenate(sds)


def _check_against_dense(model, rtol=1e-8):
    tab = ranef_table(model)
    assert list(tab.columns) == ["group", "term", "level", "condval", "condsd"]
    np.testing.assert_allclose(tab["condsd"], _dense_condsd(model), rtol=rtol)
    # the conditional modes are the model's
    for term, b in zip(model.design.terms, model.random_effects()):
        rows = tab[(tab["grpvar"] == term.group) & tab["term"].isin(term.columns)]
        np.testing.assert_allclose(rows["condval"].to_numpy(), b.T.ravel(), rtol=1e-12, atol=1e-14)
    return tab


def test_glmm_binomial_cbind_ranef_table_matches_dense_condvar():
    """cbpp with cbind(successes, failures): the working weights carry the herd sizes."""
    m = mm.glmer(CBPP_FORMULA, load_dataset("cbpp"), family="binomial")
    tab = _check_against_dense(m)
    assert len(tab) == 15 and (tab["condsd"] > 0).all()
    assert set(tab["grp"]) == set(m.ranef["herd"].index)
    np.testing.assert_allclose(tab["condval"], m.ranef["herd"]["(Intercept)"].to_numpy(), rtol=1e-12)
    # conditional SDs are below the random-effect SD: the data inform every herd
    sd_herd = np.sqrt(m.term_covariances()[0][0, 0])
    assert (tab["condsd"] < sd_herd).all()
    assert m.ranef_table().equals(tab)


def test_glmm_poisson_crossed_ranef_table_matches_dense_condvar():
    """grouseticks: a Poisson GLMM with two crossed terms (the dense-inverse path)."""
    m = mm.glmer(GROUSE_FORMULA, load_dataset("grouseticks"), family="poisson")
    tab = _check_against_dense(m)
    assert set(tab["grpvar"]) == {"BROOD", "LOCATION"}


def test_lmm_ranef_table_matches_dense_condvar(sleep):
    """sleepstudy (Days | Subject): one correlated term, 2×2 blocks."""
    _check_against_dense(sleep)


def test_lmm_weighted_and_crossed_ranef_table_match_dense_condvar():
    d = load_dataset("sleepstudy")
    w = 1.0 + (d["Days"].to_numpy() % 3)
    _check_against_dense(lmer("Reaction ~ Days + (Days | Subject)", d, weights=w))
    _check_against_dense(lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", load_dataset("Penicillin")))


def test_variance_parameters_follow_the_family_scale():
    from mixedmodels.postestimation.ranef import variance_parameter_names, variance_parameters

    m = mm.glmer(CBPP_FORMULA, load_dataset("cbpp"), family="binomial")
    assert variance_parameter_names(m) == ["sd_(Intercept)|herd"]          # no σ without a scale
    assert variance_parameters(m).iloc[0] == pytest.approx(m.theta[0], rel=1e-14)
    sleep = lmer("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    vp = variance_parameters(sleep)
    assert list(vp.index) == MORE["profile_ci"]["rows"][:4]
    # the same numbers as VarCorr (which orders them sd, sd, cor, residual)
    np.testing.assert_allclose(np.sort(vp.to_numpy()), np.sort(sleep.varcorr["sdcor"].to_numpy()),
                               rtol=1e-12)
    assert vp["sigma"] == sleep.sigma
