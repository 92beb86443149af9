"""The Gibbs sampler of a two-level normal model with missing values, for k chains at once.

The model is jomo's (and, without level-2 variables, pan's): for cluster j,

    Yⱼ = Xⱼ β + Zⱼ bⱼ + Eⱼ,     rows of Eⱼ ~ N(0, Σ)              (level 1: r columns)
    Wⱼ = X2ⱼ β₂ + eⱼ                                              (level 2: s columns)
    uⱼ = (vec bⱼ, eⱼ) ~ N(0, Ω),

flat priors on β and β₂, inverse-Wishart priors Σ ~ IW(r, I) and Ω ~ IW(d, I) (d = r·q + s). A
categorical level-1 variable with K levels is K − 1 latent normal columns of Y (jomo's latent normal
model): the reference level when all are negative, level h when column h is the largest and positive.

One sweep draws, for every chain: bⱼ | rest (Gaussians, batched over clusters and chains), β | rest
(a matrix normal), Σ | rest (an inverse Wishart), the missing level-1 cells and the latent columns one
column at a time given the row's other columns (untruncated where missing, truncated where the category
is observed), then β₂, the missing level-2 cells and Ω. Everything is array arithmetic over the rows,
clusters and chains: per sweep the number of NumPy calls does not grow with the data, and the work is a
few passes over the rows (cluster sums by ``np.add.reduceat`` on rows sorted by cluster). Random numbers
are drawn in blocks of sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack
from scipy.special import ndtr, ndtri

from ..core.terms import ReTermMatrix

__all__ = ["TwoLevelSampler", "LatentFactor", "inv_wishart", "gaussian_draw_2x2"]

_BLOCK = 64   # sweeps of random numbers drawn at once


@dataclass(frozen=True)
class LatentFactor:
    """A categorical level-1 variable coded as latent columns ``cols`` of Y (K − 1 of them).

    ``codes`` holds each row's observed level 0..K-1 (0 the reference), -1 where missing."""

    cols: tuple[int, ...]
    codes: np.ndarray


def _cluster_sums(a: np.ndarray, starts: np.ndarray, axis: int = 0) -> np.ndarray:
    return np.add.reduceat(a, starts, axis=axis)


def inv_wishart(df: float, scale: np.ndarray, chi: np.ndarray, nrm: np.ndarray, tril: tuple):
    """k draws of Σ ~ IW(df, scale) (Bartlett), returned as (Σ, a square root F of Σ, Σ⁻¹).

    ``scale`` (k, d, d); ``chi`` (k, d) chi-squares with df − i degrees of freedom; ``nrm`` the
    normals below the diagonal. With scale = LLᵀ and the Wishart W = L⁻ᵀAAᵀL⁻¹, Σ = W⁻¹ = FFᵀ, F = LA⁻ᵀ.
    """
    d = scale.shape[-1]
    if scale.shape[0] == 1:
        # one chain: 2-D arrays and LAPACK directly (numpy.linalg's per-call overhead dominates on the
        # 2 × 2 matrices of a sweep)
        low, info = lapack.dpotrf(scale[0], lower=1, clean=1)
        if info == 0:
            a = np.diag(np.sqrt(chi[0]))
            if d > 1:
                a[tril] = nrm[0]
            f = low @ lapack.dtrtri(a, lower=1)[0].T
            g = a.T @ lapack.dtrtri(low, lower=1)[0]              # Σ⁻¹ = W = gᵀg
            return (f @ f.T)[None], f[None], (g.T @ g)[None]
    low = np.linalg.cholesky(scale)
    a = np.zeros(scale.shape)
    idx = np.arange(d)
    a[:, idx, idx] = np.sqrt(chi)
    if d > 1:
        a[:, tril[0], tril[1]] = nrm
    f = low @ np.linalg.inv(a).transpose(0, 2, 1)
    g = a.transpose(0, 2, 1) @ np.linalg.inv(low)          # Σ⁻¹ = W = gᵀg
    return f @ f.transpose(0, 2, 1), f, g.transpose(0, 2, 1) @ g


def gaussian_draw_2x2(p00: np.ndarray, p10: np.ndarray, p11: np.ndarray, rhs: np.ndarray, z: np.ndarray):
    """Draws from N(P⁻¹ rhs, P⁻¹) for a stack of 2 × 2 precisions P = [[p00, p10], [p10, p11]] (each
    element an array over the stack; ``rhs`` and ``z`` (…, 2)): x = L⁻ᵀ(L⁻¹ rhs + z) with P = LLᵀ, in
    closed form (elementwise over the stack, no LAPACK call per matrix)."""
    l11 = np.sqrt(p00)
    l21 = p10 / l11
    l22 = np.sqrt(p11 - l21 * l21)
    r1 = rhs[..., 0] / l11
    w1 = r1 + z[..., 0]
    x2 = ((rhs[..., 1] - l21 * r1) / l22 + z[..., 1]) / l22
    out = np.empty(rhs.shape)
    out[..., 0] = (w1 - l21 * x2) / l11
    out[..., 1] = x2
    return out


def _truncated(mean: np.ndarray, sd: np.ndarray, lower: np.ndarray, upper: np.ndarray, u: np.ndarray):
    """Draws of N(mean, sd²) truncated to [lower, upper], one side finite (inverse CDF on the tail that
    keeps precision)."""
    has_low = np.isfinite(lower)
    a = np.where(has_low, (lower - mean) / sd, (upper - mean) / sd)
    # lower bound: z = -Φ⁻¹(U Φ(-a)); upper bound: z = Φ⁻¹(U Φ(a))
    sign = np.where(has_low, -1.0, 1.0)
    p = ndtr(sign * a) * u
    z = sign * ndtri(np.clip(p, 1e-300, 1.0))
    both_inf = ~has_low & ~np.isfinite(upper)
    z = np.where(both_inf, ndtri(np.clip(u, 1e-16, 1 - 1e-16)), z)
    return mean + sd * z


class TwoLevelSampler:
    """Gibbs sampling of the two-level normal model with missing values, k chains in parallel.

    Parameters
    ----------
    Y : ndarray (n, r)
        Level-1 variables (NaN where missing); latent columns of categorical variables hold starting
        values (see :class:`LatentFactor`) and NaN where the category is missing.
    X, Z : ndarray (n, p), (n, q)
        Complete fixed predictors and random-effects columns (q = 0 only without level-1 variables).
    codes : ndarray of int (n,)
        Cluster 0..J-1 of each row.
    W, X2 : ndarray (J, s), (J, p2), optional
        Level-2 variables (NaN where missing) and their complete predictors (with an intercept).
    factors : list of LatentFactor
    chains : int
    rng : numpy Generator
    """

    def __init__(self, Y, X, Z, codes, rng, *, W=None, X2=None, factors=(), chains: int = 1):
        codes = np.asarray(codes)
        self.order = np.argsort(codes, kind="stable")      # rows sorted by cluster (cluster sums by reduceat)
        self.inverse = np.empty_like(self.order)
        self.inverse[self.order] = np.arange(len(codes))
        self.codes = codes[self.order]
        self.J = int(self.codes.max()) + 1
        self.counts = np.bincount(self.codes, minlength=self.J)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.k, self.rng = int(chains), rng
        Y = np.asarray(Y, dtype=float).reshape(len(codes), -1)[self.order]
        self.n, self.r = Y.shape
        self.W0 = np.zeros((self.J, 0)) if W is None else np.asarray(W, dtype=float).reshape(self.J, -1)
        self.s = self.W0.shape[1]
        self.X2 = np.ones((self.J, 1)) if X2 is None else np.asarray(X2, dtype=float)
        self.x2_inv = self.x2_chol = None
        self.q = Z.shape[1] if self.r else 0
        self.Z = np.asarray(Z, dtype=float)[self.order] if self.r else np.zeros((self.n, 0))
        self.ones_z = self.q == 1 and bool(np.all(self.Z == 1.0))
        self.factors = [LatentFactor(f.cols, np.asarray(f.codes)[self.order]) for f in factors]
        self.latent = sorted(c for f in self.factors for c in f.cols)
        self.rq = self.r * self.q
        self.d = self.rq + self.s
        # level-1 missing cells per column (latent columns: every row, truncated where observed)
        self.miss = np.isnan(Y)
        self.mis_rows = [np.flatnonzero(self.miss[:, c]) for c in range(self.r)]
        # flat positions of those cells in the (k, n, r) arrays
        self._flat = [((np.arange(int(chains))[:, None] * self.n + rows[None, :]) * self.r + c)
                      for c, rows in enumerate(self.mis_rows)]
        self.w_miss = np.isnan(self.W0)
        self.w_rows = [np.flatnonzero(self.w_miss[:, c]) for c in range(self.s)]
        k = self.k
        # start: column means in the holes, the same in every chain; arrays are chain-first
        Y0 = Y.copy()
        if self.r:
            Y0[self.miss] = np.take(np.nanmean(Y, axis=0), np.nonzero(self.miss)[1])
        self.Y = np.repeat(Y0[None], k, axis=0)                                  # (k, n, r)
        W0 = self.W0.copy()
        if self.s:
            W0[self.w_miss] = np.take(np.nanmean(self.W0, axis=0), np.nonzero(self.w_miss)[1])
        self.W = np.repeat(W0[None], k, axis=0)                                  # (k, J, s)
        if self.r:
            self.ztz = ReTermMatrix(self.codes, self.Z, self.J).diag_blocks()    # (J, q, q), the engine's blocks
        self.set_predictors(X, X2=self.X2 if self.s else None, sorted_rows=False)
        # β by least squares, Σ the residual covariance, b zero, Ω scaled to the data
        x1 = self.X if self.X.ndim == 2 else self.X[0]
        beta0 = np.linalg.lstsq(x1, Y0, rcond=None)[0]
        self.beta = np.repeat(beta0[None], k, axis=0)                            # (k, p, r)
        # start near the moment estimates, so the slow-mixing random-effects variances need not travel
        # far: bⱼ half the per-cluster least-squares fit of the residuals, Ω their covariance
        res = Y0 - x1 @ beta0
        b0 = np.zeros((self.J, self.r, self.q))
        if self.r:
            ztr = np.stack([_cluster_sums(res * self.Z[:, [i]], self.starts) for i in range(self.q)], axis=1)
            fit = np.linalg.solve(self.ztz + 1e-6 * np.eye(self.q), ztr)                     # (J, q, r)
            b0 = 0.5 * np.where((self.counts > self.q)[:, None, None], fit, 0.0).transpose(0, 2, 1)
            res = res - (np.repeat(b0, self.counts, axis=0) * self.Z[:, None, :]).sum(-1)
        sig0 = np.cov(res.T).reshape(self.r, self.r) + 1e-8 * np.eye(self.r) if self.r else np.zeros((0, 0))
        self.sigma = np.repeat(sig0[None], k, axis=0)
        self.sigma_inv = np.linalg.inv(self.sigma) if self.r else self.sigma
        self._sig_root = np.linalg.cholesky(self.sigma) if self.r else self.sigma
        self.b = np.repeat(b0[None], k, axis=0)                                  # (k, J, r, q)
        x2 = self.X2 if self.X2.ndim == 2 else self.X2[0]
        beta2 = np.linalg.lstsq(x2, W0, rcond=None)[0] if self.s else np.zeros((x2.shape[1], 0))
        self.beta2 = np.repeat(beta2[None], k, axis=0)                           # (k, p2, s)
        om = np.eye(self.d)
        if self.r:
            om[: self.rq, : self.rq] = np.cov(b0.reshape(self.J, self.rq).T).reshape(self.rq, self.rq) \
                + 1e-6 * np.eye(self.rq)
        if self.s:
            om[self.rq:, self.rq:] = np.cov((W0 - x2 @ beta2).T).reshape(self.s, self.s) + 1e-6 * np.eye(self.s)
        self.omega = np.repeat(om[None], k, axis=0)
        self.omega_inv = np.linalg.inv(self.omega)
        # priors: Σ ~ IW(r, I), Ω ~ IW(d, I) (pan's and jomo's defaults in mitml)
        self.prior_sigma, self.prior_omega = float(self.r), float(self.d)
        self._tril_r, self._tril_d = np.tril_indices(self.r, -1), np.tril_indices(self.d, -1)
        self._triu = np.triu_indices(self.d), np.triu_indices(self.r)
        self._pos = _BLOCK
        self._lat_obs, self._bound_rows = {}, {}
        for f in self.factors:
            obs = np.flatnonzero(f.codes >= 0)
            codes = f.codes[obs]
            for h, c in enumerate(f.cols):
                self._lat_obs[c] = (f, h + 1, obs)
                rivals = [(cc, np.flatnonzero(codes == g)) for g, cc in enumerate(f.cols, start=1) if cc != c]
                self._bound_rows[c] = (np.flatnonzero(codes == h + 1), np.flatnonzero(codes == 0), rivals)

    # -- set-up -------------------------------------------------------------------------------
    def set_predictors(self, X: np.ndarray, X2: np.ndarray | None = None, sorted_rows: bool = True) -> None:
        """New fixed predictors, shared (n, p) or one set per chain (k, n, p) (chained equations: the
        other variables' current values), in the caller's row order unless ``sorted_rows``; ``X2``
        new level-2 predictors, (J, p2) or (k, J, p2)."""
        X = np.asarray(X, dtype=float)
        self.X = X if sorted_rows else X[..., self.order, :]
        self.p = self.X.shape[-1]
        self.xtx_inv = np.linalg.inv(np.swapaxes(self.X, -1, -2) @ self.X)
        self.xtx_chol = np.linalg.cholesky(self.xtx_inv)
        if self.r:
            # Zⱼᵀ Xⱼ per cluster, stacked (…, J·q, p)
            ztx = np.stack([_cluster_sums(self.X * self.Z[:, [i]], self.starts, axis=-2) for i in range(self.q)],
                           axis=-2)
            self.ztx = ztx.reshape(self.X.shape[:-2] + (self.J * self.q, self.p))
        if hasattr(self, "beta") and self.beta.shape[1] != self.p:
            self.beta = np.zeros((self.k, self.p, self.r))
            self._pos = _BLOCK          # the block's normals were sized for the old p
        if X2 is not None:
            self.X2 = np.asarray(X2, dtype=float)
            self.x2_inv = np.linalg.inv(np.swapaxes(self.X2, -1, -2) @ self.X2)
            self.x2_chol = np.linalg.cholesky(self.x2_inv)
            if hasattr(self, "beta2") and self.beta2.shape[1] != self.X2.shape[-1]:
                self.beta2 = np.zeros((self.k, self.X2.shape[-1], self.s))
                self._pos = _BLOCK

    def _sizes(self) -> dict:
        k = self.k
        sizes = {"b": self.J * k * self.rq, "beta": self.p * k * self.r, "sig": k * len(self._tril_r[0]),
                 "om": k * len(self._tril_d[0]), "beta2": self.X2.shape[-1] * k * self.s}
        for c in range(self.r):
            sizes[f"y{c}"] = len(self.mis_rows[c]) * k
        for c in range(self.s):
            sizes[f"w{c}"] = len(self.w_rows[c]) * k
        return sizes

    def _refill(self) -> None:
        """Random numbers for the next ``_BLOCK`` sweeps: standard normals, uniforms, chi-squares."""
        rng, k = self.rng, self.k
        sizes = self._sizes()
        self._offsets, total = {}, 0
        for key, size in sizes.items():
            self._offsets[key] = (total, total + size)
            total += size
        self._normals = rng.standard_normal((_BLOCK, total))
        n_lat = sum(len(v[2]) for v in self._lat_obs.values()) * k
        self._uniforms = rng.random((_BLOCK, max(n_lat, 1)))
        self._chi_sig = rng.chisquare(self.prior_sigma + self.n - np.arange(self.r), size=(_BLOCK, k, self.r)) \
            if self.r else None
        self._chi_om = rng.chisquare(self.prior_omega + self.J - np.arange(self.d), size=(_BLOCK, k, self.d))
        self._pos = 0

    def _z(self, key: str, shape) -> np.ndarray:
        a, b = self._offsets[key]
        return self._normals[self._pos, a:b].reshape(shape)

    # -- one sweep ------------------------------------------------------------------------------
    def _zb(self) -> np.ndarray:
        if self.ones_z:
            return np.repeat(self.b[..., 0], self.counts, axis=1)                # (k, n, r)
        return (np.repeat(self.b, self.counts, axis=1) * self.Z[None, :, None, :]).sum(-1)

    def sweep(self) -> None:
        if self._pos >= _BLOCK:
            self._refill()
        if self.r:
            self._level1()
        if self.s:
            self._level2()
        self._omega_step()
        self._pos += 1

    def _level1(self) -> None:
        k, r, q, J, n, p = self.k, self.r, self.q, self.J, self.n, self.p
        rq = self.rq
        Y = self.Y
        # b | β, Σ, Ω, Y, W: Gaussians with precision Ω⁻¹_bb + Σ⁻¹ ⊗ ZⱼᵀZⱼ (vec bⱼ, variables stacked)
        if self.ones_z:
            zty = _cluster_sums(Y, self.starts, axis=1)[:, :, None, :]             # (k, J, 1, r)
        else:
            zty = np.stack([_cluster_sums(Y * self.Z[None, :, [i]], self.starts, axis=1) for i in range(q)], axis=2)
        ztr = zty - (self.ztx @ self.beta).reshape(k, J, q, r)                     # Zⱼᵀ(Yⱼ − Xⱼβ)
        rhs = (ztr @ self.sigma_inv[:, None]).transpose(0, 1, 3, 2).reshape(k, J, rq)
        lam = self.omega_inv
        if self.s:
            e2 = self.W - self.X2 @ self.beta2                                    # (k, J, s)
            rhs = rhs - e2 @ lam[:, rq:, :rq]
        zn = self._z("b", (k, J, rq))
        if rq == 1:
            prec = lam[:, :1, 0] + self.sigma_inv[:, :1, 0] * self.ztz[None, :, 0, 0]    # (k, J)
            self.b = (rhs[..., 0] / prec + zn[..., 0] / np.sqrt(prec)).reshape(k, J, 1, 1)
        elif rq == 2 and self.ones_z:
            # random intercepts of two variables: precision Λ_bb + nⱼ Σ⁻¹, its three elements per cluster
            nj, si = self.ztz[None, :, 0, 0], self.sigma_inv
            p00 = lam[:, :1, 0] + nj * si[:, :1, 0]
            p10 = lam[:, 1:2, 0] + nj * si[:, 1:2, 0]
            p11 = lam[:, 1:2, 1] + nj * si[:, 1:2, 1]
            self.b = gaussian_draw_2x2(p00, p10, p11, rhs, zn).reshape(k, J, r, q)
        elif rq == 2:
            prec = lam[:, None, :2, :2] + (self.sigma_inv[:, None, :, None, :, None]
                                           * self.ztz[None, :, None, :, None, :]).reshape(k, J, 2, 2)
            self.b = gaussian_draw_2x2(prec[..., 0, 0], prec[..., 1, 0], prec[..., 1, 1], rhs, zn).reshape(k, J, r, q)
        else:
            kron = (self.sigma_inv[:, None, :, None, :, None] * self.ztz[None, :, None, :, None, :])
            kron = kron.reshape(k, J, rq, rq)
            cov = np.linalg.inv(lam[:, None, :rq, :rq] + kron)
            draw = cov @ rhs[..., None] + np.linalg.cholesky(cov) @ zn[..., None]
            self.b = draw.reshape(k, J, r, q)
        zb = self._zb()
        # β | b, Σ, Y: matrix normal around the least-squares fit of Y − Zb
        bt = self.b.transpose(0, 1, 3, 2).reshape(k, J * q, r)
        bhat = self.xtx_inv @ (np.swapaxes(self.X, -1, -2) @ Y - np.swapaxes(self.ztx, -1, -2) @ bt)   # (k, p, r)
        noise = self.xtx_chol @ self._z("beta", (k, p, r))
        self.beta = bhat + noise @ self._sig_root.transpose(0, 2, 1)
        # Σ | β, b, Y
        E = Y - self.X @ self.beta - zb
        ete = E.transpose(0, 2, 1) @ E
        self.sigma, self._sig_root, self.sigma_inv = inv_wishart(
            self.prior_sigma + n, np.eye(r) + ete, self._chi_sig[self._pos], self._z("sig", (k, -1)), self._tril_r)
        # missing cells and latent columns, one column at a time given the row's other columns
        sinv = self.sigma_inv
        upos = 0
        for c in range(r):
            lam_c = sinv[:, :, c:c + 1]                             # (k, r, 1)
            lcc = sinv[:, c:c + 1, c]                               # (k, 1)
            sd = 1.0 / np.sqrt(lcc)
            rows = self.mis_rows[c]
            if len(rows):
                er = E.take(rows, axis=1)                           # (k, m, r); take/put: no fancy-index overhead
                old = er[..., c]
                new = old - (er @ lam_c)[..., 0] / lcc + sd * self._z(f"y{c}", (k, len(rows)))
                flat = self._flat[c]
                np.put(Y, flat, Y.take(flat) + (new - old))
                np.put(E, flat, new)
            if c in self._lat_obs:
                f, level, obs = self._lat_obs[c]
                er = E[:, obs]
                old = er[..., c]
                mu_c = Y[:, obs, c] - old
                lower, upper = self._bounds(f, level, c, obs)
                u = self._uniforms[self._pos, upos: upos + len(obs) * k].reshape(k, len(obs))
                upos += len(obs) * k
                ynew = _truncated(mu_c + old - (er @ lam_c)[..., 0] / lcc, sd, lower, upper, u)
                E[:, obs, c] = ynew - mu_c
                Y[:, obs, c] = ynew

    def _bounds(self, f: LatentFactor, level: int, c: int, obs: np.ndarray):
        """Truncation of latent column c (level ``level``) in the rows with an observed category: above
        0 and the other columns where the row's level is this one, below 0 for the reference level,
        below the row's level's column otherwise. Returns (lower, upper), each (k, rows)."""
        mine, ref, rivals = self._bound_rows[c]
        lower = np.full((self.k, len(obs)), -np.inf)
        upper = np.full((self.k, len(obs)), np.inf)
        others = [cc for cc in f.cols if cc != c]
        lower[:, mine] = np.maximum(self.Y[:, obs[mine]][:, :, others].max(axis=-1), 0.0) if others else 0.0
        upper[:, ref] = 0.0
        for cc, sel in rivals:
            upper[:, sel] = self.Y[:, obs[sel], cc]
        return lower, upper

    def _level2(self) -> None:
        k, s, J, rq = self.k, self.s, self.J, self.rq
        lam = self.omega_inv
        ub = self.b.reshape(k, J, rq)
        p2 = self.X2.shape[-1]
        li = np.linalg.inv(np.linalg.cholesky(lam[:, rq:, rq:]))
        cov_ee = li.transpose(0, 2, 1) @ li                                        # Λ_ee⁻¹, (k, s, s)
        # β₂ | b, Ω, W: W − E[e | b] = X2 β₂ + N(0, Λ_ee⁻¹), with E[e | b] = −Λ_ee⁻¹ Λ_eb vec b
        target = self.W + (ub @ lam[:, :rq, rq:]) @ cov_ee if rq else self.W
        bhat = self.x2_inv @ (np.swapaxes(self.X2, -1, -2) @ target)               # (k, p2, s)
        noise = self.x2_chol @ self._z("beta2", (k, p2, s))
        self.beta2 = bhat + noise @ li                                             # root of Λ_ee⁻¹: liᵀ
        # missing level-2 cells, one column at a time given the cluster's other u
        e2 = self.W - self.X2 @ self.beta2
        u = np.concatenate([ub, e2], axis=2) if rq else e2
        for c in range(s):
            rows = self.w_rows[c]
            if not len(rows):
                continue
            i = rq + c
            lcc = lam[:, i:i + 1, i]                                               # (k, 1)
            ur = u[:, rows]
            old = ur[..., i]
            new = old - (ur @ lam[:, :, i:i + 1])[..., 0] / lcc + self._z(f"w{c}", (k, len(rows))) / np.sqrt(lcc)
            self.W[:, rows, c] += new - old
            u[:, rows, i] = new
        self._u = u

    def _omega_step(self) -> None:
        k = self.k
        u = self._u if self.s else self.b.reshape(k, self.J, self.rq)
        utu = u.transpose(0, 2, 1) @ u
        self.omega, _, self.omega_inv = inv_wishart(self.prior_omega + self.J, np.eye(self.d) + utu,
                                                    self._chi_om[self._pos], self._z("om", (k, -1)), self._tril_d)

    # -- output ---------------------------------------------------------------------------------
    def current_Y(self) -> np.ndarray:
        """The level-1 values of every chain, in the caller's row order: (k, n, r)."""
        return self.Y[:, self.inverse].copy()

    def current_W(self) -> np.ndarray:
        """The level-2 values of every chain: (k, J, s)."""
        return self.W.copy()

    def parameters(self) -> np.ndarray:
        """β, β₂, the unique elements of Ω and of Σ per chain: (k, P) (the traced parameters).

        A latent column's scale is not identified (only its sign is observed), so its parameters are
        reported on the scale where its residual variance is 1: β, Σ and Ω divided by √Σ_cc."""
        k = self.k
        iu_d, iu_r = self._triu
        beta, sigma, omega = self.beta, self.sigma, self.omega
        if self.latent:
            sc = np.ones((k, self.r))
            sc[:, self.latent] = np.sqrt(sigma[:, self.latent, self.latent])
            su = np.ones((k, self.d))
            su[:, : self.rq] = np.repeat(sc, self.q, axis=1)
            beta = beta / sc[:, None, :]
            sigma = sigma / (sc[:, :, None] * sc[:, None, :])
            omega = omega / (su[:, :, None] * su[:, None, :])
        parts = [beta.transpose(0, 2, 1).reshape(k, -1), self.beta2.transpose(0, 2, 1).reshape(k, -1),
                 omega[:, iu_d[0], iu_d[1]], sigma[:, iu_r[0], iu_r[1]]]
        return np.concatenate(parts, axis=1)

    def parameter_names(self, xnames, znames, ynames, x2names=(), wnames=()) -> list[str]:
        beta = [f"Beta[{x},{y}]" for y in ynames for x in xnames]
        beta2 = [f"Beta2[{x},{w}]" for w in wnames for x in x2names]
        u = [f"{z}:{y}" for y in ynames for z in znames] + list(wnames)
        iu_d = np.triu_indices(self.d)
        iu_r = np.triu_indices(self.r)
        psi = [f"Psi[{u[i]},{u[j]}]" for i, j in zip(*iu_d)]
        sig = [f"Sigma[{ynames[i]},{ynames[j]}]" for i, j in zip(*iu_r)]
        return beta + beta2 + psi + sig

    def run(self, m: int, n_burn: int, n_iter: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """Imputations after ``n_burn`` sweeps and then every ``n_iter`` sweeps, ceil(m / k) per chain (m
        in all), and the parameter trace over the burn-in: (list of (Y, W), trace (k, n_burn, P))."""
        trace = np.empty((self.k, n_burn, self.parameters().shape[1]))
        for t in range(n_burn):
            self.sweep()
            trace[:, t] = self.parameters()
        out = []
        per_chain = -(-m // self.k)
        for i in range(per_chain):
            if i:
                for _ in range(n_iter):
                    self.sweep()
            ys, ws = self.current_Y(), self.current_W()
            out += [(ys[c], ws[c]) for c in range(self.k)]
        return out[:m], trace
