"""The sparse Schur block (mixedmodels.core.sparse_schur): a partially crossed design against lme4
(tests/reference/partially_crossed_reference.json), with the school block last (pupils and
schools) or in the middle (pupils, schools and districts), the sparse factor against the dense
one at the same θ, the choice from the pattern (fully crossed designs stay dense) and its record."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from refs import REF
from test_gradient import _crossed_data

import mixedmodels as mm
from mixedmodels.core.factor import BlockedFactor
from mixedmodels.core.sparse_schur import SparseCholesky, analyse_pattern, sparse_may_pay
from mixedmodels.models import cost

PC = json.loads((REF / "partially_crossed_reference.json").read_text())
SPARSE = "sparse, supernodal (SuperLU, minimum-degree order)"
FORMULAS = {"intercepts": "y ~ x + (1 | pupil) + (1 | school)",
            "slopes": "y ~ x + (1 | pupil) + (x | school)",
            "intercepts_ml": "y ~ x + (1 | pupil) + (1 | school)",
            # the school block in the middle: sparse, with the 30 districts' dense block below it
            "three_level": "y3 ~ x + (1 | pupil) + (1 | school) + (1 | district)",
            "three_level_ml": "y3 ~ x + (1 | pupil) + (1 | school) + (1 | district)"}


@pytest.fixture(scope="module")
def pupils() -> pd.DataFrame:
    return pd.read_csv(REF / "partially_crossed.csv")


def _ring(seed: int, binary: bool = False) -> pd.DataFrame:
    """40,000 pupils x 8,000 schools on a ring, three rows per pupil at its home school or a
    neighbour: a dense school block would cost ~7 s per evaluation, its sparse factor ms. The
    schools sit in 200 districts of 40 neighbours."""
    rng = np.random.default_rng(seed)
    pupil = np.repeat(np.arange(40_000), 3)
    school = (rng.integers(0, 8_000, 40_000)[pupil] + rng.integers(-2, 3, len(pupil))) % 8_000
    y = rng.integers(0, 2, len(pupil)) if binary else rng.standard_normal(len(pupil))
    return pd.DataFrame({"y": y, "pupil": pd.Categorical(pupil), "school": pd.Categorical(school),
                         "district": pd.Categorical(school // 40)})


@pytest.mark.parametrize("key", list(FORMULAS))
def test_partially_crossed_lmm_against_lme4(key, pupils):
    ref = PC[key]
    m = mm.lmer(FORMULAS[key], pupils, reml=not key.endswith("_ml"))
    assert m.optinfo.factor["blocks"]["school"] == SPARSE
    if key.startswith("three"):
        assert m.optinfo.factor["blocks"]["district"].startswith("dense")
    assert m.optinfo.factor["sparse"]["school"]["nnz_factor"] > 0
    # equal or better than lme4's optimum, and the same estimates
    assert m.loglik >= ref["loglik"] - 1e-6 * abs(ref["loglik"])
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-8)
    np.testing.assert_allclose(m.fixef.to_numpy(), ref["beta"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.theta, ref["theta"], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov.to_numpy())), ref["se"], rtol=1e-4)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-5)


def test_partially_crossed_glmm_against_lme4(pupils):
    m = mm.glmer("passed ~ x + (1 | pupil) + (1 | school)", pupils, family="binomial")
    assert m.optinfo.factor["blocks"]["school"] == SPARSE
    # lme4's defaults stop its Laplace fit short (logLik ~6e-3 low): equal or better than it,
    # and the estimates of lme4 run with tight tolerances
    assert m.loglik >= PC["binomial"]["loglik"]
    ref = PC["binomial_tight"]
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-9)
    np.testing.assert_allclose(m.fixef.to_numpy(), ref["beta"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.theta, ref["theta"], rtol=2e-3)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov.to_numpy())), ref["se"], rtol=2e-3)


def test_three_level_glmm_against_lme4(pupils):
    """The sparse middle block inside PIRLS; the district variance is on its bound (the response
    has no district effect), as in lme4's fit."""
    m = mm.glmer("passed ~ x + (1 | pupil) + (1 | school) + (1 | district)", pupils,
                 family="binomial")
    assert m.optinfo.factor["blocks"]["school"] == SPARSE
    ref = PC["binomial_three_tight"]
    assert m.loglik >= ref["loglik"] - 1e-9 * abs(ref["loglik"])
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-9)
    np.testing.assert_allclose(m.fixef.to_numpy(), ref["beta"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.theta, ref["theta"], rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov.to_numpy())), ref["se"], rtol=2e-3)


@pytest.mark.parametrize("key", ["intercepts", "slopes", "three_level"])
def test_sparse_and_dense_factors_agree(key, pupils):
    m = mm.lmer(FORMULAS[key], pupils, control=mm.Control(schur="dense"))
    assert m.optinfo.factor["blocks"]["school"].startswith("dense")
    cp = m.factor.cp
    sparse, dense = BlockedFactor(cp, schur="sparse"), BlockedFactor(cp, schur="dense")
    assert sparse.schur[1] == SPARSE and dense.schur[1] != SPARSE
    rng = np.random.default_rng(1)
    for theta in (m.theta, m.theta * rng.uniform(0.5, 1.5, len(m.theta)), np.ones(len(m.theta))):
        sparse.update(theta)
        dense.update(theta)
        assert sparse.logdet_z == pytest.approx(dense.logdet_z, rel=1e-12)
        assert sparse.logdet_x == pytest.approx(dense.logdet_x, rel=1e-12)
        assert sparse.pwrss == pytest.approx(dense.pwrss, rel=1e-11)
        (b1, u1), (b2, u2) = sparse.solve(), dense.solve()
        np.testing.assert_allclose(b1, b2, rtol=1e-10)
        for a, b in zip(u1, u2):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        rhs = rng.standard_normal(cp.terms[1].q)
        # F⁻ᵀ differs from the dense L⁻ᵀ (another factor), but F⁻ᵀF⁻¹ = S⁻¹ for both
        np.testing.assert_allclose(sparse.solve_diag_t(1, sparse.L_diag[1].solve_half(rhs)),
                                   dense.solve_diag_t(1, dense.dense.trsm(dense.L_diag[1], rhs)),
                                   rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("key", ["intercepts", "three_level"])
def test_conditional_variances_with_a_sparse_block(key, pupils):
    sparse = mm.lmer(FORMULAS[key], pupils)
    dense = mm.lmer(FORMULAS[key], pupils, control=mm.Control(schur="dense"))
    assert sparse.optinfo.factor["blocks"]["school"] == SPARSE
    # the two fits' optimizers stop ~1e-5 apart in θ (test_sparse_and_dense_factors_agree holds
    # the modes at the same θ to 1e-9)
    for a, b in zip(sparse.random_effects(), dense.random_effects()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # at the same θ, through a dense factor
    at_same_theta = copy.copy(sparse)
    at_same_theta.factor = BlockedFactor(sparse.factor.cp, schur="dense")
    for a, b in zip(sparse.conditional_covariance(), at_same_theta.conditional_covariance()):
        np.testing.assert_allclose(a, b, rtol=1e-9)
    for a, b in zip(sparse.conditional_covariance(), dense.conditional_covariance()):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_refit_keeps_the_sparse_plan(pupils):
    m = mm.lmer(FORMULAS["intercepts"], pupils)
    again = m.refit(pupils["y"].to_numpy()[::-1].copy())
    fresh = mm.lmer(FORMULAS["intercepts"], pupils.assign(y=pupils["y"].to_numpy()[::-1]))
    assert again.optinfo.factor["blocks"]["school"] == SPARSE
    assert again.loglik == pytest.approx(fresh.loglik, rel=1e-9)


def test_fully_crossed_design_stays_dense():
    data = _crossed_data(m1=600, m2=1_400, seed=5)
    m = mm.lmer("y ~ 1 + (1 | g1) + (1 | g2)", data)
    assert m.optinfo.factor["blocks"]["g1"].startswith("dense")
    assert "sparse" not in m.optinfo.factor
    # forced sparse, the same fit (the pattern is nearly full, so it is only slower)
    forced = mm.lmer("y ~ 1 + (1 | g1) + (1 | g2)", data, control=mm.Control(schur="sparse"))
    assert forced.optinfo.factor["blocks"]["g1"] == SPARSE
    assert forced.loglik == pytest.approx(m.loglik, rel=1e-10)


def test_cost_model_counts_the_sparse_factor():
    """A dense school block would send the fit to the iterative path; its sparse factor keeps it
    exact."""
    data = _ring(seed=3)
    quiet = {"maxfun": 1, "check_conv": "ignore", "check_singular": "ignore"}
    m = mm.lmer("y ~ 1 + (1 | pupil) + (1 | school)", data, control=mm.Control(**quiet))
    assert m.optinfo.path["method"] == "exact"
    assert m.optinfo.factor["blocks"]["school"] == SPARSE
    dense = mm.lmer("y ~ 1 + (1 | pupil) + (1 | school)", data,
                    control=mm.Control(schur="dense", **quiet))
    assert dense.optinfo.path["method"] == "iterative"


def test_cost_model_counts_a_sparse_middle_block():
    """With 200 districts below it, the school block is a middle one: still factored sparse,
    and the cost model keeps the fit exact; dense, it sends it to the iterative path."""
    from mixedmodels.spec.design import build_design

    design = build_design("y ~ 1 + (1 | pupil) + (1 | school) + (1 | district)", _ring(seed=3))
    choice = cost.choose_path(design)
    assert choice["method"] == "exact"
    assert choice["exact_estimate"]["seconds"] < 30
    assert cost.choose_path(design, schur="dense")["method"] == "iterative"


def test_no_sparse_middle_block_with_many_columns_below(pupils, monkeypatch):
    """The blocks below a sparse middle one are dense (q_r × q_school each): past
    SPARSE_BELOW_MAX_COLUMNS columns below, the school block is factored dense, and the cost
    model no longer counts it sparse."""
    import mixedmodels.core.factor as factor_module

    monkeypatch.setattr(factor_module, "SPARSE_BELOW_MAX_COLUMNS", 29)
    m = mm.lmer(FORMULAS["three_level"], pupils, control=mm.Control(schur="sparse"))
    assert m.optinfo.factor["blocks"]["school"].startswith("dense")
    assert m.loglik == pytest.approx(PC["three_level"]["loglik"], rel=1e-8)
    monkeypatch.setattr(cost, "SPARSE_BELOW_MAX_COLUMNS", 29)
    from mixedmodels.spec.design import build_design

    design = build_design("y ~ 1 + (1 | pupil) + (1 | school) + (1 | district)", _ring(seed=3))
    assert cost.choose_path(design)["method"] == "iterative"


def test_sparse_cholesky_of_a_known_matrix():
    rng = np.random.default_rng(7)
    q = 600
    a = sp.random(q, q, density=0.004, random_state=rng)
    s = (a @ a.T + sp.identity(q)).tocsr()
    plan = analyse_pattern(s, 0, force=True)
    chol = SparseCholesky(s, plan)
    dense = s.toarray()
    F = chol.to_dense()
    np.testing.assert_allclose(F @ F.T, dense, atol=1e-12)
    assert chol.logdet == pytest.approx(np.linalg.slogdet(dense)[1], rel=1e-12)
    b = rng.standard_normal((q, 3))
    np.testing.assert_allclose(chol.solve_half_t(chol.solve_half(b)), np.linalg.solve(dense, b),
                               atol=1e-10)
    not_pd = s - 3.0 * sp.identity(q)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite|singular"):
        SparseCholesky(not_pd, plan)


def test_schur_control_is_validated():
    with pytest.raises(ValueError, match="'auto', 'dense' or 'sparse'"):
        mm.Control(schur="cholmod")


def test_choose_path_without_codes_keeps_the_dense_estimate():
    class _Term:
        nlevels, ncols, matrix = 8_000, 1, None

    class _Design:
        nobs, terms, X = 120_000, [_Term(), _Term()], np.zeros((1, 1))

    assert cost.choose_path(_Design())["exact_estimate"]["seconds"] > 60


def test_sparse_is_not_considered_where_the_pattern_cannot_be_formed():
    # MovieLens-32M's movie block: ~1e10 update products; forming its pattern would need
    # hundreds of GB (the cost model once did, and was killed for memory)
    assert not sparse_may_pay(84_432, 10_000_000_000)
    assert not sparse_may_pay(300, 1_000)          # small blocks: dense LAPACK
    assert sparse_may_pay(30_000, 1_000_000)


def test_glmm_cost_model_counts_the_sparse_factor():
    from mixedmodels.models.iterative_glmm import choose_glmm_path
    from mixedmodels.spec.design import build_design

    design = build_design("y ~ 1 + (1 | pupil) + (1 | school)", _ring(seed=4, binary=True))
    assert choose_glmm_path(design)["method"] == "exact"
    assert choose_glmm_path(design, schur="dense")["method"] == "iterative"
