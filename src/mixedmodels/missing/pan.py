"""Joint multilevel imputation by Gibbs sampling: the model of Schafer & Yucel (2002), as R's pan
(mitml's ``panImpute``) fits it.

For the r incomplete variables Yⱼ (nⱼ × r) of cluster j, with predictors Xⱼ and random-effects
columns Zⱼ (an intercept, or slopes):

    Yⱼ = Xⱼ β + Zⱼ bⱼ + Eⱼ,   vec(bⱼ) ~ N(0, Ψ),   rows of Eⱼ ~ N(0, Σ),

with a flat prior on β and inverse-Wishart priors on Σ (df r, scale I) and Ψ (df r·q, scale I),
pan's defaults in mitml. One Gibbs sweep draws bⱼ | rest (one small Gaussian per cluster), β | rest
(a matrix normal), Σ | rest and Ψ | rest (inverse Wisharts), then the missing cells of each row from
their normal distribution given the row's observed cells. Imputations are taken from one chain after
``n_burn`` sweeps and every ``n_iter`` sweeps after that, as panImpute. Convergence: the potential
scale reduction R̂ of every parameter over the burn-in, split into three pieces (mitml's summary).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.linalg import lapack

from ..exceptions import DataError
from ..spec.design import design_matrix, to_formulaic

__all__ = ["PanSampler", "imputation_matrices", "gelman_rubin", "gelman_rubin_chains", "rhat_table", "inv_wishart"]


def _chol(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a small SPD matrix (LAPACK directly: numpy's per-call overhead
    dominates on the 2 × 2 matrices of a Gibbs sweep)."""
    c, info = lapack.dpotrf(a, lower=1, clean=1)
    if info != 0:
        return np.linalg.cholesky(a)  # raises LinAlgError with numpy's message
    return c


def _spd_inv(a: np.ndarray) -> np.ndarray:
    """Inverse of a small SPD matrix."""
    c, info = lapack.dpotrf(a, lower=1, clean=1)
    if info != 0:
        return np.linalg.inv(a)
    inv, _ = lapack.dpotri(c, lower=1)
    return np.tril(inv) + np.tril(inv, -1).T


def inv_wishart(rng: np.random.Generator, df: float, scale: np.ndarray) -> np.ndarray:
    """One draw of W⁻¹ with W ~ Wishart(df, scale⁻¹) (Bartlett decomposition).

    With scale = LLᵀ and W = L⁻ᵀAAᵀL⁻¹ (A Bartlett's lower-triangular factor), W⁻¹ = (LA⁻ᵀ)(LA⁻ᵀ)ᵀ.
    """
    d = scale.shape[0]
    low = _chol(scale)
    a = np.zeros((d, d))
    a[np.diag_indices(d)] = np.sqrt(rng.chisquare(df - np.arange(d)))
    a[np.tril_indices(d, -1)] = rng.standard_normal(d * (d - 1) // 2)
    ainv, _ = lapack.dtrtri(a, lower=1)
    f = low @ ainv.T
    return f @ f.T


def gelman_rubin(chain: np.ndarray, pieces: int = 3) -> np.ndarray:
    """R̂ per column of ``chain`` (iterations × parameters), the chain split into ``pieces``."""
    n = chain.shape[0] // pieces
    if n < 2:
        return np.full(chain.shape[1], np.nan)
    parts = chain[: n * pieces].reshape(pieces, n, -1)
    means = parts.mean(axis=1)
    w = parts.var(axis=1, ddof=1).mean(axis=0)
    b = n * means.var(axis=0, ddof=1)
    vhat = (n - 1) / n * w + (pieces + 1) / (pieces * n) * b
    with np.errstate(divide="ignore", invalid="ignore"):
        rhat = np.sqrt(vhat / w)
    rhat[(w == 0) & (b == 0)] = 1.0
    return rhat


def imputation_matrices(data: pd.DataFrame, model: dict):
    """The imputation model's fixed and random-effects matrices (formulaic frames, for their column
    names) and the cluster codes; complete predictors are required (the sampler conditions on them)."""
    spec = model["spec"]
    incomplete = [c for c in model["predictors"] if data[c].isna().any()]
    if incomplete:
        raise DataError(f"the predictors {', '.join(map(repr, incomplete))} of the imputation model have missing "
                        "values; put them on the left of '~' to impute them too")
    fixed = design_matrix(to_formulaic(spec.fixed), data, "imputation model")
    zmat = design_matrix(to_formulaic(spec.random[0].lhs), data, "imputation model's random effects")
    return fixed, zmat, pd.factorize(data[model["group"]])[0]


class PanSampler:
    """The Gibbs sampler of a multivariate two-level normal model with missing responses.

    Parameters
    ----------
    Y : ndarray (n, r)
        The variables to impute (NaN where missing).
    X : ndarray (n, p)
        Complete fixed predictors (with the intercept).
    Z : ndarray (n, q)
        Complete random-effects columns.
    codes : ndarray of int (n,)
        The cluster of each row, 0..J-1.
    """

    def __init__(self, Y: np.ndarray, X: np.ndarray, Z: np.ndarray, codes: np.ndarray, rng: np.random.Generator):
        self.Y = np.array(Y, dtype=float)
        self.X, self.Z, self.codes, self.rng = X, Z, codes, rng
        self.n, self.r = self.Y.shape
        self.p, self.q = X.shape[1], Z.shape[1]
        self.J = int(codes.max()) + 1
        self.miss = np.isnan(self.Y)
        # start: column means in the holes, β by least squares, Σ the residual covariance
        col_means = np.nanmean(self.Y, axis=0)
        self.Y[self.miss] = np.take(col_means, np.nonzero(self.miss)[1])
        self.xtx_inv = np.linalg.inv(X.T @ X)
        self.xtx_inv_chol = np.linalg.cholesky(self.xtx_inv)
        self.beta = self.xtx_inv @ X.T @ self.Y
        res = self.Y - X @ self.beta
        # start near the moment estimates, so the slow-mixing variance of b need not travel far: b from
        # the per-cluster least-squares fit of the residuals (shrunk by half), Ψ their covariance
        self.b = np.zeros((self.J, self.q, self.r))
        counts = np.bincount(codes, minlength=self.J)
        for j in np.flatnonzero(counts > self.q):
            rows = codes == j
            self.b[j] = 0.5 * np.linalg.lstsq(Z[rows], res[rows], rcond=None)[0]
        vb = self.b.transpose(0, 2, 1).reshape(self.J, self.r * self.q)
        self.psi = np.cov(vb.T).reshape(self.r * self.q, self.r * self.q) + 1e-6 * np.eye(self.r * self.q)
        e = res - self._zb()
        self.sigma = np.cov(e.T).reshape(self.r, self.r) + 1e-8 * np.eye(self.r)
        # per cluster Zⱼᵀ Zⱼ (J, q, q), by bincount over the rows
        zz = Z[:, :, None] * Z[:, None, :]
        self.ztz = np.stack([np.bincount(codes, weights=zz[:, i, k], minlength=self.J)
                             for i in range(self.q) for k in range(self.q)], axis=-1).reshape(self.J, self.q, self.q)
        # rows grouped by their missingness pattern, for the conditional draws
        keys = {}
        for i, row in enumerate(self.miss):
            if row.any():
                keys.setdefault(tuple(row), []).append(i)
        self.patterns = []
        for k, v in keys.items():
            mis = np.flatnonzero(k)
            obs = np.flatnonzero(~np.array(k))
            rows = np.array(v)[:, None]
            self.patterns.append((np.ix_(mis, mis), np.ix_(mis, obs), np.ix_(obs, obs), (rows, mis), (rows, obs),
                                  len(obs) > 0, len(mis)))
        # the cluster-indicator matrix (J × n): cluster sums of any row quantity in one product
        import scipy.sparse as sp
        self.G = sp.csr_matrix((np.ones(self.n), (codes, np.arange(self.n))), shape=(self.J, self.n))
        # prior: Σ ~ IW(r, I), Ψ ~ IW(r·q, I) (pan's defaults in mitml)
        self.prior_a, self.prior_B = float(self.r), np.eye(self.r)
        self.prior_c, self.prior_D = float(self.r * self.q), np.eye(self.r * self.q)

    def set_predictors(self, X: np.ndarray) -> None:
        """New fixed predictors (chained equations: the other variables' current values)."""
        self.X = X
        self.p = X.shape[1]
        self.xtx_inv = np.linalg.inv(X.T @ X)
        self.xtx_inv_chol = np.linalg.cholesky(self.xtx_inv)
        if self.beta.shape[0] != self.p:
            self.beta = self.xtx_inv @ X.T @ (self.Y - self._zb())

    def _zb(self) -> np.ndarray:
        if self.q == 1:
            return self.Z * self.b[self.codes, 0, :]
        return np.einsum("nq,nqr->nr", self.Z, self.b[self.codes])

    def sweep(self) -> None:
        rng, r, q = self.rng, self.r, self.q
        # b_j | β, Σ, Ψ, Y: precision Ψ⁻¹ + Σ⁻¹ ⊗ ZⱼᵀZⱼ, on vec(bⱼ) (columns stacked)
        sinv = _spd_inv(self.sigma)
        res = self.Y - self.X @ self.beta
        ztr = (self.G @ (self.Z[:, :, None] * res[:, None, :]).reshape(self.n, q * r)).reshape(self.J, q, r)
        prec = _spd_inv(self.psi)[None] + (sinv[None, :, None, :, None] * self.ztz[:, None, :, None, :]
                                                ).reshape(self.J, r * q, r * q)
        rhs = (ztr @ sinv).transpose(0, 2, 1).reshape(self.J, r * q)  # vec(Zᵀ R Σ⁻¹), columns stacked
        cov = np.linalg.inv(prec)
        chol = np.linalg.cholesky(cov)
        zstd = rng.standard_normal((self.J, r * q, 1))
        draw = (cov @ rhs[..., None] + chol @ zstd)[..., 0]
        self.b = draw.reshape(self.J, r, q).transpose(0, 2, 1)
        zb = self._zb()
        # β | b, Σ, Y: matrix normal around the least-squares fit of Y − Zb
        bhat = self.xtx_inv @ (self.X.T @ (self.Y - zb))
        lsig = _chol(self.sigma)
        self.beta = bhat + self.xtx_inv_chol @ rng.standard_normal((self.p, r)) @ lsig.T
        # Σ | β, b, Y and Ψ | b: inverse Wisharts
        e = self.Y - self.X @ self.beta - zb
        self.sigma = inv_wishart(rng, self.prior_a + self.n, self.prior_B + e.T @ e)
        vb = self.b.transpose(0, 2, 1).reshape(self.J, r * q)
        self.psi = inv_wishart(rng, self.prior_c + self.J, self.prior_D + vb.T @ vb)
        # Y_mis | Y_obs, β, b, Σ: the conditional normal of each row's missing cells
        mu = self.X @ self.beta + zb
        for i_mm, i_mo, i_oo, r_mis, r_obs, has_obs, k in self.patterns:
            s_mm = self.sigma[i_mm]
            if has_obs:
                s_mo = self.sigma[i_mo]
                coef = s_mo @ _spd_inv(self.sigma[i_oo])
                cmean = mu[r_mis] + (self.Y[r_obs] - mu[r_obs]) @ coef.T
                ccov = s_mm - coef @ s_mo.T
            else:
                cmean, ccov = mu[r_mis], s_mm
            lc = _chol(ccov + 1e-12 * np.eye(k))
            self.Y[r_mis] = cmean + rng.standard_normal(cmean.shape) @ lc.T

    def parameters(self) -> np.ndarray:
        """β, the unique elements of Ψ and of Σ, as one vector (the traced parameters)."""
        iu_p = np.triu_indices(self.r * self.q)
        iu_s = np.triu_indices(self.r)
        return np.concatenate([self.beta.ravel(order="F"), self.psi[iu_p], self.sigma[iu_s]])

    def parameter_names(self, xnames: list[str], znames: list[str], ynames: list[str]) -> list[str]:
        beta = [f"Beta[{x},{y}]" for y in ynames for x in xnames]
        vz = [f"{z}:{y}" for y in ynames for z in znames]
        iu_p = np.triu_indices(self.r * self.q)
        iu_s = np.triu_indices(self.r)
        psi = [f"Psi[{vz[i]},{vz[k]}]" for i, k in zip(*iu_p)]
        sig = [f"Sigma[{ynames[i]},{ynames[k]}]" for i, k in zip(*iu_s)]
        return beta + psi + sig

    def run(self, m: int, n_burn: int, n_iter: int) -> tuple[list[np.ndarray], np.ndarray]:
        """The imputed Y after ``n_burn`` sweeps and then every ``n_iter`` sweeps (m of them), and the
        parameter trace over the burn-in."""
        trace = np.empty((n_burn, len(self.parameters())))
        for t in range(n_burn):
            self.sweep()
            trace[t] = self.parameters()
        out = [self.Y.copy()]
        for _ in range(m - 1):
            for _ in range(n_iter):
                self.sweep()
            out.append(self.Y.copy())
        return out, trace


def gelman_rubin_chains(traces: np.ndarray) -> np.ndarray:
    """R̂ per parameter from independent chains (chains × iterations × parameters), second halves."""
    t = traces.shape[1]
    return gelman_rubin(traces[:, t // 2:].reshape(-1, traces.shape[2]), pieces=traces.shape[0]) \
        if traces.shape[0] > 1 else gelman_rubin(traces[0])


def rhat_table(trace: np.ndarray, names: list[str]) -> pd.DataFrame:
    """R̂ per parameter, as a table (mitml's ``summary`` convergence section)."""
    return pd.DataFrame({"Rhat": gelman_rubin(trace)}, index=pd.Index(names, name="parameter"))
