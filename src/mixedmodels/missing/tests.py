"""Multiparameter tests on multiply imputed data: D1, D2 and D3, as mitml's ``testModels``.

- **D1** (Li, Raghunathan & Rubin 1991): a Wald test with the pooled estimates and the total
  variance Ũ(1 + r), r the average relative increase in variance; with ``df_com`` Reiter's (2007)
  small-sample df.
- **D2** (Li, Meng, Raghunathan & Rubin 1991): pools the m Wald χ² statistics.
- **D3** (Meng & Rubin 1992): pools likelihood-ratio statistics, evaluated at each fit's
  estimates and at the pooled estimates; needs maximum-likelihood fits.

All test the parameters of the larger model that the smaller lacks (the fixed effects, as mitml).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.lazy import lazy_import

stats = lazy_import("scipy.stats")  # on first use: import mixedmodels stays fast

__all__ = ["d1", "d2", "d3", "marginal_loglik", "results_table", "TEST_COLUMNS"]

TEST_COLUMNS = ["F value", "df1", "df2", "Pr(>F)", "RIV"]


def _difference(full: list, null: list) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The estimates (m, k) and covariances (m, k, k) of the fixed effects ``full`` has and ``null`` lacks."""
    names_full = list(full[0].fixef.index)
    names_null = set(null[0].fixef.index)
    extra = [n for n in names_full if n not in names_null]
    if not extra:
        raise ValueError("the two sets of fits are not nested: the larger model has no fixed effect that the "
                         "smaller lacks (give the larger model first, e.g. mm.anova(fits_full, fits_reduced))")
    idx = [names_full.index(n) for n in extra]
    q = np.array([f.fixef.to_numpy()[idx] for f in full])
    u = np.array([f.vcov.to_numpy()[np.ix_(idx, idx)] for f in full])
    return q, u, extra


def _row(F: float, k: float, v: float, r: float) -> dict:
    return {"F value": float(F), "df1": float(k), "df2": float(v), "Pr(>F)": float(stats.f.sf(F, k, v)),
            "RIV": float(r)}


def d1(full: list, null: list, df_com: float | None = None) -> dict:
    """D1: the pooled Wald test of the fixed effects ``full`` has and ``null`` lacks."""
    q, u, _ = _difference(full, null)
    m, k = q.shape
    qbar = q.mean(axis=0)
    ubar = u.mean(axis=0)
    b = np.atleast_2d(np.cov(q.T, ddof=1))
    r = (1 + 1 / m) * np.trace(b @ np.linalg.inv(ubar)) / k
    F = qbar @ np.linalg.solve((1 + r) * ubar, qbar) / k
    t = k * (m - 1)
    with np.errstate(divide="ignore", invalid="ignore"):  # mitml's formulas, t = 4 included
        if df_com is not None:
            a = r * t / (t - 2)
            vstar = ((df_com + 1) / (df_com + 3)) * df_com
            c0 = np.float64(1) / np.float64(t - 4)
            c1 = vstar - 2 * (1 + a)
            c2 = vstar - 4 * (1 + a)
            z = (1 / c2 + c0 * (a ** 2 * c1 / ((1 + a) ** 2 * c2))
                 + c0 * (8 * a ** 2 * c1 / ((1 + a) * c2 ** 2) + 4 * a ** 2 / ((1 + a) * c2))
                 + c0 * (4 * a ** 2 / (c2 * c1) + 16 * a ** 2 * c1 / c2 ** 3) + c0 * (8 * a ** 2 / c2 ** 2))
            v = 4 + 1 / z
        elif t > 4:
            v = 4 + (t - 4) * (1 + (1 - 2 / t) / r) ** 2
        else:
            v = t * (1 + 1 / k) * (1 + 1 / r) ** 2 / 2
    return _row(F, k, v, r)


def d2(full: list, null: list) -> dict:
    """D2: the m Wald χ² statistics pooled."""
    q, u, _ = _difference(full, null)
    m, k = q.shape
    d = np.array([qi @ np.linalg.solve(ui, qi) for qi, ui in zip(q, u)])
    r = (1 + 1 / m) * np.var(np.sqrt(d), ddof=1)
    F = (d.mean() / k - (m + 1) / (m - 1) * r) / (1 + r)
    v = k ** (-3 / m) * (m - 1) * (1 + 1 / r) ** 2
    return _row(F, k, v, r)


def _z_blocks(design) -> sp.csr_matrix:
    """The random-effects model matrix Z (level-major columns within each term)."""
    blocks = []
    n = design.nobs
    for term in design.terms:
        mat = term.matrix
        l = mat.ncols
        rows = np.repeat(np.arange(n), l)
        cols = (mat.codes[:, None] * l + np.arange(l)[None, :]).ravel()
        blocks.append(sp.csr_matrix((mat.values.ravel(), (rows, cols)), shape=(n, mat.nlevels * l)))
    return sp.hstack(blocks, format="csr")


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return v * np.sqrt(np.clip(w, 0, None))


def marginal_loglik(model, beta: np.ndarray, covs: list[np.ndarray], sigma2: float) -> float:
    """The Gaussian log-likelihood of an LMM's data at given β, random-effects covariances and σ².

    ``log N(y; Xβ + offset, σ²I + Z G Zᵀ)``, computed through the q × q matrix I + ΛᵀZᵀZΛ/σ²
    (ΛΛᵀ = G), so it costs one sparse factorization as the fit does.
    """
    design = model.design
    if design.weights is not None and not np.allclose(design.weights, 1):
        raise ValueError("D3 is not available for fits with prior weights")
    r = np.asarray(design.y, float) - design.X @ np.asarray(beta, float)
    if design.offset is not None:
        r = r - design.offset
    n = len(r)
    z = _z_blocks(design)
    lam = sp.block_diag([sp.kron(sp.identity(t.matrix.nlevels), _sqrt_psd(c) / np.sqrt(sigma2))
                         for t, c in zip(design.terms, covs)], format="csr")
    zl = z @ lam
    a = (zl.T @ zl + sp.identity(zl.shape[1])).tocsc()
    c = zl.T @ r
    if a.shape[0] <= 4000:
        dense = a.toarray()
        chol = np.linalg.cholesky(dense)
        logdet = 2 * np.sum(np.log(np.diag(chol)))
        sol = np.linalg.solve(dense, c)
    else:
        lu = sp.linalg.splu(a)
        logdet = float(np.sum(np.log(np.abs(lu.U.diagonal()))))
        sol = lu.solve(c)
    quad = (r @ r - c @ sol) / sigma2
    return float(-0.5 * (n * np.log(2 * np.pi) + n * np.log(sigma2) + logdet + quad))


def _pooled_loglik(fits: list) -> tuple[np.ndarray, np.ndarray]:
    """Each fit's log-likelihood at its own and at the pooled estimates (β, G, σ² averaged)."""
    own = np.array([f.loglik for f in fits])
    beta = np.mean([f.fixef.to_numpy() for f in fits], axis=0)
    covs = [np.mean(c, axis=0) for c in zip(*[f.term_covariances() for f in fits])]
    sigma2 = float(np.mean([f.sigma ** 2 for f in fits]))
    pooled = np.array([marginal_loglik(f, beta, covs, sigma2) for f in fits])
    return own, pooled


def d3(full: list, null: list) -> dict:
    """D3: Meng & Rubin's pooled likelihood-ratio test (maximum-likelihood fits)."""
    if not all(getattr(f.family, "linear", False) for f in list(full) + list(null)):
        raise ValueError("D3 evaluates the Gaussian likelihood at pooled estimates: it is available for linear "
                         "mixed models (lmer); use D1 or D2 for GLMMs")
    if any(f.reml for f in list(full) + list(null)):
        raise ValueError("D3 pools likelihood ratios, which need maximum-likelihood fits: these are REML "
                         "fits. Fit with reml=False, or use mm.anova(..., refit=True) to refit them by ML")
    m = len(full)
    k = full[0].npar - null[0].npar
    if k <= 0:
        raise ValueError("the first set of fits must be the larger model (more parameters) for D3")
    ll, ll_pooled = _pooled_loglik(full)
    ll0, ll0_pooled = _pooled_loglik(null)
    dl_bar = np.mean(-2 * (ll0 - ll))
    dl_tilde = np.mean(-2 * (ll0_pooled - ll_pooled))
    r = (m + 1) / (k * (m - 1)) * (dl_bar - dl_tilde)
    F = dl_tilde / (k * (1 + r))
    t = k * (m - 1)
    if t > 4:
        v = 4 + (t - 4) * (1 + (1 - 2 / t) / r) ** 2
    else:
        v = t * (1 + 1 / k) * (1 + 1 / r) ** 2 / 2
    return _row(F, k, v, r)


def results_table(rows: dict[str, dict]) -> pd.DataFrame:
    """Rows of test results as a table."""
    return pd.DataFrame.from_dict(rows, orient="index")[TEST_COLUMNS]
