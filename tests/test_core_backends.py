"""Conformance of the numeric core's backends against independent dense linear algebra.

Every check is parametrized over the registry of :mod:`mixedmodels.core.backends`, read at
collection time, so a newly registered backend is tested without touching this file.

What is checked against what:

- each ``DenseOps`` (``dense_backends()``): ``cholesky_lower`` against ``numpy.linalg.cholesky``
  (C-, Fortran-ordered and strided input, only the lower triangle read, ``LinAlgError`` when not
  positive definite); ``syrk_lower`` against ``a @ a.T``; ``trsm`` against
  ``scipy.linalg.solve_triangular``; ``logdet_chol`` against ``numpy.linalg.slogdet``;
- ``BlockedFactor(cp, dense=name)``: ``logdet_z``, ``logdet_x``, ``pwrss`` and ``solve()``
  against a brute-force dense computation with the n × q matrix Z Λ (nested, crossed, vector
  valued, uncorrelated terms, no fixed effects, prior weights, the large-block paths);
- each ``RowOps`` (``row_backends()``), in chunks of 1, 7 and all rows: the crossproduct blocks
  against ``[Z X y]ᵀ W [Z X y]`` formed densely, ``linear_predictor`` and ``weighted_sum``
  against NumPy;
- ``BlockedCrossproducts.from_chunks`` against the one-shot constructor and the dense blocks;
  ``reweightable(...).reweight(w, z)`` against ``[Z X z]ᵀ diag(w) [Z X z]``, and a factor over
  reweighted crossproducts against the dense oracle with those weights;
- ``ThetaParametrization``: bounds, start, split and names against layouts written out by
  hand; ``to_sdcor``/``from_sdcor`` against sd and cor computed from σ² T Tᵀ;
- the registry: unknown names, and a toy backend registered here being used by the factor.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import scipy.linalg

import mixedmodels.core.factor as factor_module
from mixedmodels.core import (
    BlockedCrossproducts,
    BlockedFactor,
    DenseOps,
    ReTermMatrix,
    RowChunk,
    RowOps,
    ThetaParametrization,
    backends,
    get_dense,
    get_rows,
)
from mixedmodels.core.backends import dense_backends, register_dense, row_backends
from mixedmodels.core.crossproducts import TermShape
from mixedmodels.core.lapack import LapackOps

# read at collection time: a backend registered by importing mixedmodels.core is tested too
DENSE = dense_backends()
ROWS = row_backends()

FACTOR_REL = 1e-10  # logdet_z, logdet_x, pwrss
BETA_REL = 1e-8
U_REL, U_ABS = 1e-7, 1e-10
CP_TOL = {"rtol": 1e-12, "atol": 1e-11}  # sums of the same products in another order


# -- the dense oracle -------------------------------------------------------------------------

def _dense_z(term):
    """Z_i (n × m·l) with level-major columns, written out entry by entry."""
    n, l = term.values.shape
    Z = np.zeros((n, term.nlevels * l))
    for a in range(l):
        Z[np.arange(n), term.codes * l + a] = term.values[:, a]
    return Z


def _dense_pieces(terms, thetas, X, y, weights=None):
    """logdet(Λ'Z'WZΛ + I), logdet of the fixed-effects Schur complement, pwrss, β̂ and u by
    dense linear algebra on the n × q matrix ZΛ."""
    root = np.ones(len(y)) if weights is None else np.sqrt(weights)
    Z = np.hstack([_dense_z(t) for t in terms]) * root[:, None]
    Xw, yw = X * root[:, None], y * root
    Lam = scipy.linalg.block_diag(*[np.kron(np.eye(t.nlevels), T) for t, T in zip(terms, thetas)])
    ZL = Z @ Lam
    q = Z.shape[1]
    A = ZL.T @ ZL + np.eye(q)
    logdet_z = np.linalg.slogdet(A)[1]
    # penalized least squares over (u, β): det M = det A · det(Schur complement of A)
    M = np.block([[A, ZL.T @ Xw], [Xw.T @ ZL, Xw.T @ Xw]])
    logdet_x = np.linalg.slogdet(M)[1] - logdet_z
    sol = np.linalg.solve(M, np.concatenate([ZL.T @ yw, Xw.T @ yw]))
    u, beta = sol[:q], sol[q:]
    pwrss = np.sum((yw - ZL @ u - Xw @ beta) ** 2) + u @ u
    return logdet_z, logdet_x, pwrss, beta, u


def _dense_crossproducts(terms, X, y, weights=None):
    """The blocks of G = [Z₁ … Z_k X y]ᵀ W [Z₁ … Z_k X y], sliced out of one dense G."""
    Zs = [_dense_z(t) for t in terms]
    full = np.hstack(Zs + [X, y[:, None]])
    w = np.ones(len(y)) if weights is None else weights
    G = full.T @ (w[:, None] * full)
    edges = np.cumsum([0] + [Z.shape[1] for Z in Zs])
    block = [slice(edges[i], edges[i + 1]) for i in range(len(Zs))]
    xy = slice(edges[-1], None)
    diag = []
    for t, s in zip(terms, block):
        Gii = G[s, s]
        l = t.ncols
        blocks = np.array([Gii[g * l:(g + 1) * l, g * l:(g + 1) * l] for g in range(t.nlevels)])
        # the within-level blocks are all of ZᵢᵀWZᵢ: a row has one level per term
        rest = Gii.copy()
        for g in range(t.nlevels):
            rest[g * l:(g + 1) * l, g * l:(g + 1) * l] = 0.0
        assert not rest.any()
        diag.append(blocks)
    return {
        "xyxy": G[xy, xy],
        "diag": diag,
        "zxy": [G[xy, s] for s in block],
        "off": {(r, i): G[block[r], block[i]] for r in range(len(Zs)) for i in range(r)},
    }


def _assert_crossproducts(cp, expected, terms, n, p):
    assert (cp.n, cp.p) == (n, p)
    assert [(s.nlevels, s.ncols, s.correlated) for s in cp.terms] == \
        [(t.nlevels, t.ncols, t.correlated) for t in terms]
    np.testing.assert_allclose(cp.xyxy, expected["xyxy"], **CP_TOL)
    assert len(cp.diag) == len(cp.zxy) == len(terms)
    for got, want in zip(cp.diag, expected["diag"]):
        np.testing.assert_allclose(got, want, **CP_TOL)
    for got, want in zip(cp.zxy, expected["zxy"]):
        np.testing.assert_allclose(np.asarray(got), want, **CP_TOL)
    assert set(cp.off) == set(expected["off"])
    for key, want in expected["off"].items():
        np.testing.assert_allclose(cp.off[key].toarray(), want, **CP_TOL)


# -- random problems --------------------------------------------------------------------------

def _random_terms(rng, n, spec):
    terms = []
    for nlev, l, correlated in spec:
        codes = rng.integers(0, nlev, n)
        codes[:nlev] = np.arange(nlev)  # every level used
        values = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(l - 1)])
        terms.append(ReTermMatrix(codes, values, nlev, correlated))
    return terms


def _random_problem(rng, spec, n=400, p=2):
    terms = _random_terms(rng, n, spec)
    thetas = []
    for _, l, correlated in spec:
        T = np.tril(rng.uniform(0.2, 1.5, (l, l))) if correlated else np.diag(rng.uniform(0.2, 1.5, l))
        thetas.append(T)
    X = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(p - 1)])[:, :p]
    y = rng.normal(size=n) + X @ np.linspace(1.0, 0.5, p)
    return terms, thetas, X, y


def _sorted(terms, thetas):
    """Terms largest first, as the factor expects."""
    order = sorted(range(len(terms)), key=lambda i: -terms[i].nlevels)
    return [terms[i] for i in order], [thetas[i] for i in order]


def _theta_of(factor, thetas):
    return np.concatenate([T[r, c] for T, (r, c) in zip(thetas, factor.layouts)])


def _assert_factor_matches(factor, terms, thetas, X, y, weights=None):
    logdet_z, logdet_x, pwrss, beta, u = _dense_pieces(terms, thetas, X, y, weights)
    assert factor.logdet_z == pytest.approx(logdet_z, rel=FACTOR_REL)
    assert factor.logdet_x == pytest.approx(logdet_x, rel=FACTOR_REL, abs=1e-12)
    assert factor.pwrss == pytest.approx(pwrss, rel=FACTOR_REL)
    got_beta, got_u = factor.solve()
    np.testing.assert_allclose(got_beta, beta, rtol=BETA_REL)
    assert [len(ui) for ui in got_u] == [t.q for t in terms]
    np.testing.assert_allclose(np.concatenate(got_u), u, rtol=U_REL, atol=U_ABS)
    # solve() must leave the factor as it was: a second call gives the same numbers
    again_beta, again_u = factor.solve()
    np.testing.assert_array_equal(again_beta, got_beta)
    np.testing.assert_array_equal(np.concatenate(again_u), np.concatenate(got_u))


# -- DenseOps ---------------------------------------------------------------------------------

def _spd(rng, n):
    B = rng.normal(size=(n, n))
    return B @ B.T + n * np.eye(n)


def _with_garbage_upper(rng, a):
    """``a``'s lower triangle, arbitrary values above it: kernels must not read them."""
    return np.tril(a) + np.triu(rng.normal(size=a.shape) * 1e3, 1)


def _layout(a, order):
    if order == "C":
        return np.ascontiguousarray(a)
    if order == "F":
        return np.asfortranarray(a)
    big = np.zeros((2 * a.shape[0], 2 * a.shape[1]))  # "strided": neither C nor F contiguous
    big[::2, ::2] = a
    view = big[::2, ::2]
    assert a.size <= 1 or not (view.flags.c_contiguous or view.flags.f_contiguous)
    return view


@pytest.mark.parametrize("order", ["C", "F", "strided"])
@pytest.mark.parametrize("n", [1, 5, 80])
@pytest.mark.parametrize("name", DENSE)
def test_cholesky_lower(name, n, order):
    rng = np.random.default_rng(n)
    A = _spd(rng, n)
    got = get_dense(name).cholesky_lower(_layout(_with_garbage_upper(rng, A), order))
    np.testing.assert_allclose(np.tril(got), np.linalg.cholesky(A), rtol=1e-12, atol=1e-12)
    # clean=True: the whole array is the factor (its strict upper triangle zero)
    clean = get_dense(name).cholesky_lower(_layout(_with_garbage_upper(rng, A), order), clean=True)
    np.testing.assert_allclose(clean, np.linalg.cholesky(A), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("name", DENSE)
def test_cholesky_lower_not_positive_definite(name, order):
    rng = np.random.default_rng(3)
    A = _spd(rng, 6)
    A[4, 4] = -1.0  # a negative diagonal entry: not positive definite
    with pytest.raises(np.linalg.LinAlgError):
        get_dense(name).cholesky_lower(_layout(A, order))
    with pytest.raises(np.linalg.LinAlgError):  # singular counts as not positive definite
        get_dense(name).cholesky_lower(_layout(np.ones((3, 3)), order))


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("cols", [1, 10, 64, 65, 150])  # the LAPACK backend switches at 64
@pytest.mark.parametrize("name", DENSE)
def test_syrk_lower(name, cols, order):
    rng = np.random.default_rng(cols)
    a = _layout(rng.normal(size=(30, cols)), order)
    before = a.copy()
    got = get_dense(name).syrk_lower(a)
    assert got.shape == (30, 30)
    np.testing.assert_allclose(np.tril(got), np.tril(before @ before.T), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a, before)  # the factor reuses its input


@pytest.mark.parametrize("trans", [False, True])
@pytest.mark.parametrize("rhs_kind", ["vector", "matrix", "matrix_f"])
@pytest.mark.parametrize("order", ["C", "F", "strided"])
@pytest.mark.parametrize("name", DENSE)
def test_trsm(name, order, rhs_kind, trans):
    rng = np.random.default_rng(11)
    n = 40
    L = np.linalg.cholesky(_spd(rng, n))
    lower = _layout(_with_garbage_upper(rng, L), order)
    if rhs_kind == "vector":
        rhs = rng.normal(size=n)
    elif rhs_kind == "matrix":
        rhs = rng.normal(size=(n, 7))
    else:  # the factor passes transposes of C-ordered blocks
        rhs = np.ascontiguousarray(rng.normal(size=(7, n))).T
    lower_before, rhs_before = lower.copy(), rhs.copy()
    got = get_dense(name).trsm(lower, rhs, trans=trans)
    want = scipy.linalg.solve_triangular(L, rhs_before, lower=True, trans="T" if trans else "N")
    assert got.shape == rhs.shape
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
    # solve() passes a view of the factor as the right-hand side: it must not be overwritten
    np.testing.assert_array_equal(rhs, rhs_before)
    np.testing.assert_array_equal(lower, lower_before)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("name", DENSE)
def test_logdet_chol(name, order):
    rng = np.random.default_rng(5)
    A = _spd(rng, 30)
    lower = _layout(_with_garbage_upper(rng, np.linalg.cholesky(A)), order)
    assert get_dense(name).logdet_chol(lower) == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-12)


@pytest.mark.parametrize("name", DENSE)
def test_dense_kernels_chained(name):
    """As the factor uses them: factor a C-ordered block (its strict upper then holds scratch),
    solve with and take the log-determinant of the result."""
    rng = np.random.default_rng(8)
    A = _spd(rng, 70)
    ops = get_dense(name)
    assert isinstance(ops, DenseOps) and ops.name == name
    L = ops.cholesky_lower(_with_garbage_upper(rng, A))
    b = rng.normal(size=(70, 3))
    x = ops.trsm(L, ops.trsm(L, b), trans=True)  # L⁻ᵀ L⁻¹ b = A⁻¹ b
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-10)
    assert ops.logdet_chol(L) == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-12)


# -- BlockedFactor against the dense oracle ---------------------------------------------------

FACTOR_SPECS = {
    "scalar": [(60, 1, True)],
    "vector_l2": [(60, 2, True)],
    "vector_l3": [(30, 3, True)],
    "crossed_2": [(80, 1, True), (30, 1, True)],                  # product-map path
    "crossed_3": [(80, 1, True), (30, 1, True), (9, 1, True)],    # cross-product map
    "crossed_vector_l2": [(80, 1, True), (30, 2, True), (5, 1, True)],
    "crossed_vector_l3": [(70, 1, True), (15, 3, True)],
    "vector_first_l2": [(50, 2, True), (20, 1, True)],            # generic sparse path
    "vector_first_l3": [(30, 3, True), (12, 2, True)],
    "uncorrelated_l3": [(40, 3, False), (12, 1, True)],           # diagonal T
    "uncorrelated_crossed_l2": [(60, 1, True), (25, 2, False), (7, 3, False)],
}


@pytest.mark.parametrize("spec", list(FACTOR_SPECS.values()), ids=list(FACTOR_SPECS))
@pytest.mark.parametrize("name", DENSE)
def test_factor_matches_dense(name, spec):
    rng = np.random.default_rng(len(spec) * 7 + spec[0][0])
    terms, thetas, X, y = _random_problem(rng, spec)
    terms, thetas = _sorted(terms, thetas)
    factor = BlockedFactor(BlockedCrossproducts(terms, X, y), dense=name)
    assert factor.dense.name == name
    factor.update(_theta_of(factor, thetas))
    _assert_factor_matches(factor, terms, thetas, X, y)


@pytest.mark.parametrize("name", DENSE)
def test_factor_reupdate_and_boundary(name):
    """The factor is updated in place: a second θ, on the boundary (a zero variance and a
    singular T), gives that θ's numbers, not a mix with the first."""
    rng = np.random.default_rng(21)
    spec = FACTOR_SPECS["crossed_vector_l2"]
    terms, thetas, X, y = _random_problem(rng, spec)
    terms, thetas = _sorted(terms, thetas)
    factor = BlockedFactor(BlockedCrossproducts(terms, X, y), dense=name)
    factor.update(_theta_of(factor, thetas))
    boundary = [np.zeros((1, 1)), np.array([[0.9, 0.0], [0.4, 0.0]]), np.array([[0.7]])]
    factor.update(_theta_of(factor, boundary))
    _assert_factor_matches(factor, terms, boundary, X, y)


@pytest.mark.parametrize("name", DENSE)
def test_factor_unused_levels(name):
    """A level with no rows (its block of Λᵀ Zᵀ Z Λ + I is I) in each term, crossed and vector."""
    rng = np.random.default_rng(17)
    terms, thetas, X, y = _random_problem(rng, [(80, 1, True), (30, 2, True), (9, 1, True)], n=200)
    terms = [ReTermMatrix(np.where(t.codes == 3, 4, t.codes), t.values, t.nlevels, t.correlated)
             for t in terms]
    assert all(np.bincount(t.codes, minlength=t.nlevels)[3] == 0 for t in terms)
    factor = BlockedFactor(BlockedCrossproducts(terms, X, y), dense=name)
    factor.update(_theta_of(factor, thetas))
    _assert_factor_matches(factor, terms, thetas, X, y)


@pytest.mark.parametrize("name", DENSE)
def test_factor_prior_weights(name):
    rng = np.random.default_rng(4)
    terms, thetas, X, y = _random_problem(rng, [(70, 1, True), (20, 2, True), (6, 1, True)])
    weights = rng.uniform(0.2, 3.0, len(y))
    factor = BlockedFactor(BlockedCrossproducts(terms, X, y, weights), dense=name)
    factor.update(_theta_of(factor, thetas))
    _assert_factor_matches(factor, terms, thetas, X, y, weights)


@pytest.mark.parametrize("name", DENSE)
def test_factor_without_fixed_effects(name):
    """p = 0 (``y ~ 0 + (1 | g)``, and the GLMM's u-only factor): logdet_x is 0, β empty."""
    rng = np.random.default_rng(6)
    terms, thetas, X, y = _random_problem(rng, [(50, 1, True), (15, 2, True)], p=0)
    assert X.shape == (400, 0)
    factor = BlockedFactor(BlockedCrossproducts(terms, X, y), dense=name)
    factor.update(_theta_of(factor, thetas))
    assert factor.logdet_x == 0.0
    _assert_factor_matches(factor, terms, thetas, X, y)


@pytest.mark.parametrize("levels", [(1, 1), (2, 2), (1, 3)], ids=["l1_l1", "l2_l2", "l1_l3"])
@pytest.mark.parametrize("name", DENSE)
def test_nested_factor_keeps_block_diagonal(name, levels):
    """Nested grouping fills nothing in: the second diagonal block stays block-diagonal."""
    rng = np.random.default_rng(1)
    n = 300
    inner = rng.integers(0, 60, n)
    inner[:60] = np.arange(60)
    outer = inner // 6

    def values(l):
        return np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(l - 1)])

    terms = [ReTermMatrix(inner, values(levels[0]), 60), ReTermMatrix(outer, values(levels[1]), 10)]
    X = np.ones((n, 1))
    y = rng.normal(size=n)
    factor = BlockedFactor(BlockedCrossproducts(terms, X, y), dense=name)
    assert factor.diag_is_bd == [True, True]
    if levels == (1, 1):
        thetas = [np.array([[0.8]]), np.array([[1.3]])]
    else:
        thetas = [np.tril(rng.uniform(0.2, 1.5, (l, l))) for l in levels]
    factor.update(_theta_of(factor, thetas))
    _assert_factor_matches(factor, terms, thetas, X, y)


@pytest.mark.parametrize("spec", [[(90, 1, True), (70, 1, True), (9, 1, True)],
                                  [(90, 1, True), (40, 2, True), (9, 1, True)]],
                         ids=["scalar", "vector_l2"])
@pytest.mark.parametrize("dense_rows_limit, product_map_limit", [(0, 10**9), (10**9, 0)],
                         ids=["scatter", "dense_syrk"])
@pytest.mark.parametrize("name", DENSE)
def test_large_block_paths_match_dense(monkeypatch, name, dense_rows_limit, product_map_limit, spec):
    """The scatter and dense-syrk variants used for large blocks give the same factor."""
    monkeypatch.setattr(factor_module, "_DENSE_ROWS_LIMIT", dense_rows_limit)
    monkeypatch.setattr(factor_module, "_PRODUCT_MAP_LIMIT", product_map_limit)
    rng = np.random.default_rng(5)
    terms, thetas, X, y = _random_problem(rng, spec)
    factor = BlockedFactor(BlockedCrossproducts(terms, X, y), dense=name)
    # make sure the limits did switch paths, or this test would check nothing new
    maps = [m for m in factor.product_maps.values() if m is not None]
    if product_map_limit == 0:
        assert not maps and not factor.cross_maps
    else:
        assert maps and not any(m.dense_rows for m in maps)
    factor.update(_theta_of(factor, thetas))
    _assert_factor_matches(factor, terms, thetas, X, y)


# -- RowOps -----------------------------------------------------------------------------------

ROW_SPEC = [(8, 1, True), (5, 2, True), (3, 3, False)]  # largest first


def _row_problem(seed=0, n=53, p=3):
    rng = np.random.default_rng(seed)
    terms = _random_terms(rng, n, ROW_SPEC)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    y = rng.normal(size=n)
    weights = rng.uniform(0.3, 2.5, n)
    return rng, terms, X, y, weights


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("chunk_rows", [1, 7, 53, None], ids=["1", "7", "all", "default"])
@pytest.mark.parametrize("name", ROWS)
def test_rows_crossproducts(name, chunk_rows, weighted):
    _, terms, X, y, weights = _row_problem()
    w = weights if weighted else None
    rows = get_rows(name)(terms, X, y, w, chunk_rows=chunk_rows)
    assert isinstance(rows, RowOps) and rows.name == name
    assert (rows.n, rows.p) == X.shape
    _assert_crossproducts(rows.crossproducts(), _dense_crossproducts(terms, X, y, w), terms, *X.shape)


@pytest.mark.parametrize("chunk_rows", [1, 7, 53], ids=["1", "7", "all"])
@pytest.mark.parametrize("name", ROWS)
def test_rows_chunks_cover_the_rows(name, chunk_rows):
    """One pass over the chunks gives back every row once, in order, with its codes and values."""
    _, terms, X, y, weights = _row_problem()
    chunks = list(get_rows(name)(terms, X, y, weights, chunk_rows=chunk_rows).chunks())
    assert all(len(c.y) <= chunk_rows for c in chunks)
    np.testing.assert_array_equal(np.concatenate([c.X for c in chunks]), X)
    np.testing.assert_array_equal(np.concatenate([c.y for c in chunks]), y)
    np.testing.assert_array_equal(np.concatenate([c.weights for c in chunks]), weights)
    for k, t in enumerate(terms):
        np.testing.assert_array_equal(np.concatenate([c.codes[k] for c in chunks]), t.codes)
        np.testing.assert_array_equal(np.concatenate([c.values[k] for c in chunks]), t.values)


@pytest.mark.parametrize("chunk_rows", [1, 7, None], ids=["1", "7", "all"])
@pytest.mark.parametrize("name", ROWS)
def test_rows_linear_predictor_and_weighted_sum(name, chunk_rows):
    rng, terms, X, y, weights = _row_problem()
    rows = get_rows(name)(terms, X, y, weights, chunk_rows=chunk_rows)
    beta = rng.normal(size=X.shape[1])
    b = [rng.normal(size=(t.nlevels, t.ncols)) for t in terms]
    offset = rng.normal(size=len(y))
    # Z_k vec(b_k) with level-major columns is the row-major ravel of the (levels × l) array
    want = X @ beta + sum(_dense_z(t) @ bk.ravel() for t, bk in zip(terms, b))
    np.testing.assert_allclose(rows.linear_predictor(beta, b), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rows.linear_predictor(beta, b, offset), want + offset,
                               rtol=1e-12, atol=1e-12)
    values = rng.normal(size=len(y))
    assert rows.weighted_sum(values) == pytest.approx(np.sum(values), rel=1e-12)
    assert rows.weighted_sum(values, weights) == pytest.approx(np.dot(weights, values), rel=1e-12)


def test_memory_rows_rejects_empty_chunks():
    _, terms, X, y, _ = _row_problem()
    with pytest.raises(ValueError, match="chunk_rows"):
        get_rows("memory")(terms, X, y, chunk_rows=0)


# -- BlockedCrossproducts: from_chunks and reweight -------------------------------------------

def _chunks(terms, X, y, weights, edges):
    for a, b in pairwise(edges):
        w = None if weights is None else weights[a:b]
        yield RowChunk(X[a:b], y[a:b], w, [t.codes[a:b] for t in terms], [t.values[a:b] for t in terms])


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("edges", [[0, 53], [0, 1, 2, 20, 53], [0, 30, 30, 53]],
                         ids=["one", "uneven", "with_empty"])
def test_from_chunks_equals_one_shot(edges, weighted):
    _, terms, X, y, weights = _row_problem()
    w = weights if weighted else None
    one_shot = BlockedCrossproducts(terms, X, y, w)
    assert one_shot.values_fixed
    # the levels are global: from_chunks needs only the shapes of the terms
    shapes = [TermShape(t.nlevels, t.ncols, t.correlated) for t in terms]
    chunked = BlockedCrossproducts.from_chunks(shapes, X.shape[1], _chunks(terms, X, y, w, edges))
    assert chunked.values_fixed
    expected = _dense_crossproducts(terms, X, y, w)
    _assert_crossproducts(one_shot, expected, terms, *X.shape)
    _assert_crossproducts(chunked, expected, terms, *X.shape)


@pytest.mark.parametrize("p", [0, 2, 9])  # p < 8 and p >= 8 take different code paths
def test_reweight_equals_dense(p):
    rng, terms, X, _, _ = _row_problem(p=max(p, 1))
    X = X[:, :p]
    cp = BlockedCrossproducts.reweightable(terms, X)
    assert not cp.values_fixed
    n = len(X)
    # freshly built: weights 1, working response 0
    _assert_crossproducts(cp, _dense_crossproducts(terms, X, np.zeros(n)), terms, n, p)
    for _ in range(2):  # twice: nothing of the first weights may remain
        w, z = rng.uniform(0.1, 4.0, n), rng.normal(size=n)
        assert cp.reweight(w, z) is cp
        # reweight takes w itself as the weights: [Z X z]ᵀ diag(w) [Z X z]
        _assert_crossproducts(cp, _dense_crossproducts(terms, X, z, w), terms, n, p)
    for i, t in enumerate(terms):
        np.testing.assert_array_equal(cp.term_transpose(i).toarray(), _dense_z(t).T)


def test_reweight_needs_reweightable():
    _, terms, X, y, _ = _row_problem()
    shapes = [TermShape(t.nlevels, t.ncols, t.correlated) for t in terms]
    for cp in (BlockedCrossproducts(terms, X, y),
               BlockedCrossproducts.from_chunks(shapes, X.shape[1], _chunks(terms, X, y, None, [0, 53]))):
        with pytest.raises(TypeError, match="reweightable"):
            cp.reweight(np.ones(len(y)), y)


@pytest.mark.parametrize("spec", [FACTOR_SPECS["crossed_3"], FACTOR_SPECS["vector_first_l2"],
                                  FACTOR_SPECS["crossed_vector_l2"]],
                         ids=["crossed_3", "vector_first_l2", "crossed_vector_l2"])
@pytest.mark.parametrize("name", DENSE)
def test_factor_over_reweighted_crossproducts(name, spec):
    """PIRLS: the factor is built once, the crossproducts reweighted in place between updates;
    each update must use the current weights (nothing baked in from earlier values)."""
    rng = np.random.default_rng(13)
    terms, thetas, X, _ = _random_problem(rng, spec)
    terms, thetas = _sorted(terms, thetas)
    cp = BlockedCrossproducts.reweightable(terms, X)
    factor = BlockedFactor(cp, dense=name)
    theta = _theta_of(factor, thetas)
    for _ in range(2):
        w, z = rng.uniform(0.1, 4.0, len(X)), rng.normal(size=len(X))
        cp.reweight(w, z)
        factor.update(theta)
        _assert_factor_matches(factor, terms, thetas, X, z, w)


# -- ThetaParametrization ---------------------------------------------------------------------

PARAM = ThetaParametrization(ncols=(1, 2, 3, 3), correlated=(True, True, True, False))
TERM_NAMES = ["Subject", "item", "g", "h"]
COLUMNS = [["(Intercept)"], ["(Intercept)", "x"], ["(Intercept)", "a", "b"], ["(Intercept)", "a", "b"]]


def _entries(l, correlated):
    """(row, column) of T's free entries in θ order: the lower triangle column by column."""
    if not correlated:
        return [(j, j) for j in range(l)]
    return [(r, c) for c in range(l) for r in range(c, l)]


def _random_theta(rng):
    pieces = []
    for l, correlated in zip(PARAM.ncols, PARAM.correlated):
        pieces += [rng.uniform(0.3, 1.5) if r == c else rng.uniform(-1.0, 1.0)
                   for r, c in _entries(l, correlated)]
    return np.array(pieces)


def _split_by_hand(theta):
    Ts, pos = [], 0
    for l, correlated in zip(PARAM.ncols, PARAM.correlated):
        T = np.zeros((l, l))
        for r, c in _entries(l, correlated):
            T[r, c] = theta[pos]
            pos += 1
        Ts.append(T)
    assert pos == len(theta)
    return Ts


def test_theta_layout_bounds_start_split():
    terms = [ReTermMatrix(np.zeros(4, dtype=int), np.ones((4, l)), 1, c)
             for l, c in zip(PARAM.ncols, PARAM.correlated)]
    assert ThetaParametrization.of(terms) == PARAM
    entries = [e for l, c in zip(PARAM.ncols, PARAM.correlated) for e in _entries(l, c)]
    assert PARAM.sizes == [1, 3, 6, 3] and PARAM.n_theta == len(entries) == 13
    np.testing.assert_array_equal(PARAM.lower_bounds(), [0.0 if r == c else -np.inf for r, c in entries])
    np.testing.assert_array_equal(PARAM.start(), [1.0 if r == c else 0.0 for r, c in entries])
    # the start is every T the identity
    for T in PARAM.split(PARAM.start()):
        np.testing.assert_array_equal(T, np.eye(len(T)))
    theta = _random_theta(np.random.default_rng(0))
    for got, want in zip(PARAM.split(theta), _split_by_hand(theta)):
        np.testing.assert_array_equal(got, want)
    empty = ThetaParametrization((), ())
    assert empty.n_theta == 0 and empty.lower_bounds().shape == empty.start().shape == (0,)


def test_theta_names():
    # lme4's names for θ and (oldNames = FALSE) for the sd/cor parameters
    assert PARAM.names(TERM_NAMES, COLUMNS) == [
        "Subject.(Intercept)",
        "item.(Intercept)", "item.x.(Intercept)", "item.x",
        "g.(Intercept)", "g.a.(Intercept)", "g.b.(Intercept)", "g.a", "g.b.a", "g.b",
        "h.(Intercept)", "h.a", "h.b",
    ]
    assert PARAM.sdcor_names(TERM_NAMES, COLUMNS) == [
        "sd_(Intercept)|Subject",
        "sd_(Intercept)|item", "cor_x.(Intercept)|item", "sd_x|item",
        "sd_(Intercept)|g", "cor_a.(Intercept)|g", "cor_b.(Intercept)|g", "sd_a|g", "cor_b.a|g", "sd_b|g",
        "sd_(Intercept)|h", "sd_a|h", "sd_b|h",
    ]


def _sdcor_by_hand(theta, sigma):
    out = []
    for T, l, correlated in zip(_split_by_hand(theta), PARAM.ncols, PARAM.correlated):
        cov = sigma ** 2 * T @ T.T
        sd = np.sqrt(np.diag(cov))
        cor = cov / np.outer(sd, sd)
        out += [sd[r] if r == c else cor[r, c] for r, c in _entries(l, correlated)]
    return np.array(out + [sigma])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sdcor_round_trip(seed):
    rng = np.random.default_rng(seed)
    theta, sigma = _random_theta(rng), rng.uniform(0.5, 3.0)
    sv = PARAM.to_sdcor(theta, sigma)
    np.testing.assert_allclose(sv, _sdcor_by_hand(theta, sigma), rtol=1e-12)
    back, back_sigma = PARAM.from_sdcor(sv)
    assert back_sigma == sigma
    # T has a positive diagonal, so the Cholesky factor, hence θ, is unique
    np.testing.assert_allclose(back, theta, rtol=1e-10, atol=1e-12)


def test_sdcor_round_trip_on_the_boundary():
    """A zero variance: its correlations are reported as 0 and the covariance comes back."""
    theta = _random_theta(np.random.default_rng(4))
    theta[4] = 0.0  # g's intercept: T[0, 0] = 0, so cov row 0 is zero
    sigma = 1.7
    sv = PARAM.to_sdcor(theta, sigma)
    np.testing.assert_array_equal(sv[[4, 5, 6]], [0.0, 0.0, 0.0])  # sd and both its cors
    back, _ = PARAM.from_sdcor(sv)
    for T, B in zip(_split_by_hand(theta), _split_by_hand(back)):
        np.testing.assert_allclose(B @ B.T, T @ T.T, rtol=1e-10, atol=1e-12)


def test_from_sdcor_rejects_non_psd_correlations():
    sv = PARAM.to_sdcor(_random_theta(np.random.default_rng(5)), 1.2)
    # g's correlations: 0.9, 0.9 with the intercept and -0.9 between a and b: not PSD
    sv[[5, 6, 8]] = [0.9, 0.9, -0.9]
    assert np.linalg.eigvalsh([[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]])[0] < 0
    theta, sigma = PARAM.from_sdcor(sv)
    assert theta is None and sigma == 1.2


def test_from_sdcor_rejects_non_psd_2x2_correlation():
    param = ThetaParametrization((2,), (True,))
    sv = np.array([2.0, 1.5, 3.0, 1.0])  # sd 2, cor 1.5, sd 3, sigma 1: [[1, 1.5], [1.5, 1]] is not PSD
    assert np.linalg.eigvalsh([[1.0, 1.5], [1.5, 1.0]])[0] < 0
    theta, sigma = param.from_sdcor(sv)
    assert theta is None and sigma == 1.0


# -- the registry -----------------------------------------------------------------------------

def test_builtin_backends_registered():
    assert "lapack" in DENSE and "memory" in ROWS
    assert isinstance(get_dense(), LapackOps)
    assert get_rows().name == "memory"
    ops = LapackOps()
    assert get_dense(ops) is ops  # an object is passed through


@pytest.mark.parametrize("getter, kind, registered", [(get_dense, "dense", DENSE), (get_rows, "row", ROWS)])
def test_unknown_backend_names_the_registered_ones(getter, kind, registered):
    with pytest.raises(ValueError, match=f"unknown {kind} backend 'nope'") as err:
        getter("nope")
    for name in registered:
        assert name in str(err.value)


def test_registered_toy_backend_is_used(monkeypatch):
    calls = []
    with monkeypatch.context() as m:
        m.setattr(backends, "_DENSE", dict(backends._DENSE))

        @register_dense("toy")
        class ToyOps(LapackOps):
            def cholesky_lower(self, a, clean=False):
                calls.append("cholesky_lower")
                return super().cholesky_lower(a, clean)

            def syrk_lower(self, a):
                calls.append("syrk_lower")
                return super().syrk_lower(a)

            def logdet_chol(self, lower):
                calls.append("logdet_chol")
                return super().logdet_chol(lower)

        assert "toy" in dense_backends() and ToyOps.name == "toy" and LapackOps.name == "lapack"
        rng = np.random.default_rng(9)
        # crossed terms: the second diagonal block is dense, so every kernel is called
        terms, thetas, X, y = _random_problem(rng, [(80, 1, True), (30, 2, True), (5, 1, True)])
        factor = BlockedFactor(BlockedCrossproducts(terms, X, y), dense="toy")
        assert isinstance(factor.dense, ToyOps)
        factor.update(_theta_of(factor, thetas))
        _assert_factor_matches(factor, terms, thetas, X, y)
        assert {"cholesky_lower", "syrk_lower", "logdet_chol"} <= set(calls)
    assert "toy" not in dense_backends()  # the registry is as it was
    with pytest.raises(ValueError):
        get_dense("toy")
