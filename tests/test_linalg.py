"""The blocked Cholesky against a dense brute-force computation on random designs."""

from __future__ import annotations

import numpy as np
import pytest

from mixedmodels.core import BlockedCrossproducts, BlockedFactor, ReTermMatrix


def _dense_pieces(terms, thetas, X, y):
    """logdet(Λ'Z'ZΛ + I), pwrss and β̂ by dense linear algebra."""
    Zs, Ls = [], []
    for term, T in zip(terms, thetas):
        n, l = term.values.shape
        Z = np.zeros((n, term.q))
        for a in range(l):
            Z[np.arange(n), term.codes * l + a] = term.values[:, a]
        Zs.append(Z)
        Ls.append(np.kron(np.eye(term.nlevels), T))
    Z = np.hstack(Zs)
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    pos = 0
    for L in Ls:
        Lam[pos:pos + L.shape[0], pos:pos + L.shape[0]] = L
        pos += L.shape[0]
    ZL = Z @ Lam
    A = ZL.T @ ZL + np.eye(Z.shape[1])
    logdet = np.linalg.slogdet(A)[1]
    # penalized least squares over (u, β)
    M = np.block([[A, ZL.T @ X], [X.T @ ZL, X.T @ X]])
    rhs = np.concatenate([ZL.T @ y, X.T @ y])
    sol = np.linalg.solve(M, rhs)
    u, beta = sol[: Z.shape[1]], sol[Z.shape[1]:]
    pwrss = np.sum((y - ZL @ u - X @ beta) ** 2) + u @ u
    return logdet, pwrss, beta, u


def _random_problem(rng, spec):
    n = 400
    terms, thetas = [], []
    for nlev, l, correlated in spec:
        codes = rng.integers(0, nlev, n)
        codes[:nlev] = np.arange(nlev)  # every level used
        values = np.column_stack([np.ones(n)] + [rng.normal(size=n) for _ in range(l - 1)])
        terms.append(ReTermMatrix(codes, values, nlev, correlated))
        T = np.tril(rng.uniform(0.2, 1.5, (l, l))) if correlated else np.diag(rng.uniform(0.2, 1.5, l))
        thetas.append(T)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n) + X @ [1.0, 0.5]
    return terms, thetas, X, y


@pytest.mark.parametrize("spec", [
    [(60, 1, True)],
    [(60, 2, True)],
    [(80, 1, True), (30, 1, True)],                       # crossed scalar: product-map path
    [(80, 1, True), (30, 1, True), (9, 1, True)],         # three crossed scalar: cross-product map
    [(80, 1, True), (30, 2, True), (5, 1, True)],         # crossed with a vector term
    [(50, 2, True), (20, 1, True)],                       # vector first term: generic sparse path
    [(40, 3, False), (12, 1, True)],                      # diagonal T
])
def test_factor_matches_dense(spec):
    rng = np.random.default_rng(len(spec) * 7 + spec[0][0])
    terms, thetas, X, y = _random_problem(rng, spec)
    order = sorted(range(len(terms)), key=lambda i: -terms[i].nlevels)
    terms = [terms[i] for i in order]
    thetas = [thetas[i] for i in order]
    factor = BlockedFactor(BlockedCrossproducts(terms, X, y))
    theta = np.concatenate([T[r, c] for T, (r, c) in zip(thetas, factor.layouts)])
    factor.update(theta)
    logdet, pwrss, beta, u = _dense_pieces(terms, thetas, X, y)
    assert factor.logdet_z == pytest.approx(logdet, rel=1e-10)
    assert factor.pwrss == pytest.approx(pwrss, rel=1e-10)
    got_beta, got_u = factor.solve()
    np.testing.assert_allclose(got_beta, beta, rtol=1e-8)
    np.testing.assert_allclose(np.concatenate(got_u), u, rtol=1e-7, atol=1e-10)


def test_nested_factor_keeps_block_diagonal():
    """Nested grouping fills nothing in: the second diagonal block stays block-diagonal."""
    rng = np.random.default_rng(1)
    n = 300
    inner = rng.integers(0, 60, n)
    inner[:60] = np.arange(60)
    outer = inner // 6
    terms = [ReTermMatrix(inner, np.ones((n, 1)), 60), ReTermMatrix(outer, np.ones((n, 1)), 10)]
    X = np.ones((n, 1))
    y = rng.normal(size=n)
    factor = BlockedFactor(BlockedCrossproducts(terms, X, y))
    assert factor.diag_is_bd == [True, True]
    factor.update(np.array([0.8, 1.3]))
    logdet, pwrss, beta, _ = _dense_pieces(terms, [np.array([[0.8]]), np.array([[1.3]])], X, y)
    assert factor.logdet_z == pytest.approx(logdet, rel=1e-10)
    assert factor.pwrss == pytest.approx(pwrss, rel=1e-10)


@pytest.mark.parametrize("dense_rows_limit, product_map_limit", [(0, 10**9), (10**9, 0)])
def test_large_block_paths_match_dense(monkeypatch, dense_rows_limit, product_map_limit):
    """The scatter and dense-syrk variants used for large blocks give the same factor."""
    import mixedmodels.core.factor as linalg

    monkeypatch.setattr(linalg, "_DENSE_ROWS_LIMIT", dense_rows_limit)
    monkeypatch.setattr(linalg, "_PRODUCT_MAP_LIMIT", product_map_limit)
    rng = np.random.default_rng(5)
    terms, thetas, X, y = _random_problem(rng, [(90, 1, True), (70, 1, True), (9, 1, True)])
    factor = BlockedFactor(BlockedCrossproducts(terms, X, y))
    theta = np.array([T[0, 0] for T in thetas])
    factor.update(theta)
    logdet, pwrss, beta, _ = _dense_pieces(terms, thetas, X, y)
    assert factor.logdet_z == pytest.approx(logdet, rel=1e-10)
    assert factor.pwrss == pytest.approx(pwrss, rel=1e-10)
