"""Small-sample inference on the fixed effects of linear mixed models.

- :func:`coef_table_ddf`: t tests of the fixed effects with Satterthwaite df (as lmerTest),
  Kenward-Roger df and adjusted covariance (as pbkrtest), or asymptotic z tests.
- :func:`contrast`: F tests of linear hypotheses ``L β = 0`` with the same df methods.

Satterthwaite uses the Hessian of the (RE)ML deviance in the variance parameters (θ, σ),
with σ not profiled out, as lmerTest does. The σ part of the Hessian is analytic; the θ part
comes from Richardson-extrapolated central differences of the pieces of the profiled
objective (log-determinants, penalized RSS, (RₓRₓᵀ)⁻¹), which each cost one blocked Cholesky
and never touch the n rows again.

Both df methods need the linear model's profiled deviance (its crossproducts and
``set_theta``); for GLMMs only the asymptotic tests apply.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve

from ..core.lapack import tri_solve
from ..core.lazy import lazy_import
from ..exceptions import ConvergenceWarning, MixedModelsWarning, SingularFitWarning
from ..models.base import implements

stats = lazy_import("scipy.stats")

__all__ = ["coef_table_ddf", "satterthwaite_df", "kenward_roger", "contrast", "clear_cache", "KR_MAX_DIM"]

_DDF_ALIASES = {
    "satterthwaite": "satterthwaite", "satt": "satterthwaite",
    "kenward-roger": "kenward-roger", "kenward_roger": "kenward-roger", "kenwardroger": "kenward-roger",
    "kr": "kenward-roger",
    "asymptotic": "asymptotic", "normal": "asymptotic", "z": "asymptotic", "wald": "asymptotic",
}
#: largest q + p for which Kenward-Roger builds its dense (q+p)² matrices
KR_MAX_DIM = 3000

# Satterthwaite and Kenward-Roger pieces per fitted model, valid while its θ is unchanged (kept
# here rather than on the model, so nothing of post-estimation is stored on, or pickled with, it)
_SATT_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_KR_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

class _LinearOnlyError(NotImplementedError, ValueError):
    """Small-sample df asked of a GLMM: not implemented there (its tests are asymptotic). A
    NotImplementedError, as the model contract has it, and a ValueError, as it was before."""


def _normalize_ddf(ddf: str | None, model) -> str:
    if ddf is None:
        return "asymptotic"
    key = str(ddf).strip().lower().replace(" ", "")
    if key not in _DDF_ALIASES:
        raise ValueError(f"ddf must be 'satterthwaite', 'kenward-roger' or 'asymptotic', got {ddf!r}")
    method = _DDF_ALIASES[key]
    if not model.family.linear and method != "asymptotic":
        raise _LinearOnlyError(
            f"ddf={ddf!r} applies to linear mixed models only; for a GLMM ({model.family.label} "
            "family) the fixed effects have asymptotic z tests: use ddf='asymptotic' (or None). "
            "For small samples use confint(method='profile' or 'boot') or a parametric bootstrap.")
    return method


def _cached(cache: weakref.WeakKeyDictionary, model):
    hit = cache.get(model)
    return hit[1] if hit is not None and np.array_equal(hit[0], model.theta) else None


def clear_cache(model=None) -> None:
    """Forget the Satterthwaite and Kenward-Roger pieces of ``model`` (of every model if None);
    they are recomputed on the next call."""
    for cache in (_SATT_CACHE, _KR_CACHE):
        if model is None:
            cache.clear()
        else:
            cache.pop(model, None)


def _restore(model) -> None:
    """Put the factor back at the fitted θ after evaluations elsewhere."""
    model.set_theta(model.theta)


def _unscaled_vcov(factor, p: int) -> np.ndarray:
    Rinv = tri_solve(np.ascontiguousarray(factor.R_xy[:p, :p]), np.eye(p))
    return Rinv.T @ Rinv


def _as_matrix(L, names: Sequence[str]) -> np.ndarray:
    """A hypothesis matrix from an array, a Series/dict of weights by name, or a DataFrame."""
    p = len(names)
    if isinstance(L, pd.DataFrame):
        missing = [c for c in L.columns if c not in names]
        if missing:
            raise ValueError(f"L has columns {missing} that are not fixed effects; they are {list(names)}")
        L = L.reindex(columns=list(names), fill_value=0.0).to_numpy(dtype=float)
    elif isinstance(L, (pd.Series, dict)):
        weights = dict(L)
        missing = [k for k in weights if k not in names]
        if missing:
            raise ValueError(f"L names {missing}, which are not fixed effects; they are {list(names)}")
        L = np.array([[float(weights.get(n, 0.0)) for n in names]])
    elif isinstance(L, str):
        if L not in names:
            raise ValueError(f"L {L!r} is not a fixed effect; they are {list(names)}")
        L = np.eye(p)[[list(names).index(L)]]
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[1] != p:
        raise ValueError(f"L must have {p} columns (one per fixed effect: {list(names)}), got {L.shape[1]}")
    return L


# --------------------------------------------------------------------------------------------
# Satterthwaite
# --------------------------------------------------------------------------------------------

@dataclass
class _SattInfo:
    """What Satterthwaite df need: vcov of β, its Jacobian in (θ, σ), and vcov of (θ, σ)."""

    vcov_beta: np.ndarray
    jacobian: list[np.ndarray]          # d vcov(β) / d varpar_k, one p×p per parameter
    vcov_varpar: np.ndarray             # 2 H⁻¹ (generalized inverse)
    hessian: np.ndarray


def _objective_parts(model, theta: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(log-determinant part, penalized RSS, (RₓRₓᵀ)⁻¹) at θ, on the model's REML/ML scale."""
    f = model.factor.update(theta)
    p = model.crossproducts.p
    a = f.logdet_z + (f.logdet_x if model.reml else 0.0)
    return a, f.pwrss, _unscaled_vcov(f, p)


def _fd_derivatives(model, theta: np.ndarray, rel_step: float = 1e-2):
    """Gradient and Hessian of a(θ), r(θ) and the Jacobian of U(θ), by central differences
    with one Richardson extrapolation (error O(h⁴))."""
    k = len(theta)
    steps = rel_step * np.maximum(np.abs(theta), 0.1)

    def at(delta):
        try:
            return _objective_parts(model, theta + delta)
        except np.linalg.LinAlgError as err:
            raise np.linalg.LinAlgError("the deviance could not be evaluated near the estimate; "
                                        "Satterthwaite df need an interior, well-defined optimum") from err

    a0, r0, U0 = at(np.zeros(k))
    p = U0.shape[0]

    def one_level(h):
        ga, gr = np.zeros(k), np.zeros(k)
        Ha, Hr = np.zeros((k, k)), np.zeros((k, k))
        JU = np.zeros((k, p, p))
        plus, minus = [], []
        for i in range(k):
            e = np.zeros(k)
            e[i] = h[i]
            plus.append(at(e))
            minus.append(at(-e))
            ap, rp, Up = plus[i]
            am, rm, Um = minus[i]
            ga[i] = (ap - am) / (2 * h[i])
            gr[i] = (rp - rm) / (2 * h[i])
            JU[i] = (Up - Um) / (2 * h[i])
            Ha[i, i] = (ap - 2 * a0 + am) / h[i] ** 2
            Hr[i, i] = (rp - 2 * r0 + rm) / h[i] ** 2
        for i in range(k):
            for j in range(i):
                vals = []
                for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                    e = np.zeros(k)
                    e[i] = si * h[i]
                    e[j] = sj * h[j]
                    vals.append(at(e))
                denom = 4 * h[i] * h[j]
                Ha[i, j] = Ha[j, i] = (vals[0][0] - vals[1][0] - vals[2][0] + vals[3][0]) / denom
                Hr[i, j] = Hr[j, i] = (vals[0][1] - vals[1][1] - vals[2][1] + vals[3][1]) / denom
        return ga, gr, Ha, Hr, JU

    coarse = one_level(steps)
    fine = one_level(steps / 2)
    out = [(4 * f - c) / 3 for c, f in zip(coarse, fine)]
    return (a0, r0, U0, *out)


def _satterthwaite_info(model) -> _SattInfo:
    cached = _cached(_SATT_CACHE, model)
    if cached is not None:
        return cached
    theta = model.theta
    sigma = model.sigma
    n, p = model.crossproducts.n, model.crossproducts.p
    N = n - p if model.reml else n
    try:
        a0, r0, U0, ga, gr, Ha, Hr, JU = _fd_derivatives(model, theta)
    finally:
        _restore(model)
    k = len(theta)
    s2 = sigma ** 2
    H = np.empty((k + 1, k + 1))
    H[:k, :k] = Ha + Hr / s2
    H[:k, k] = H[k, :k] = -2.0 * gr / sigma ** 3
    H[k, k] = 6.0 * r0 / sigma ** 4 - 2.0 * N / s2
    H = 0.5 * (H + H.T)
    evals, evecs = np.linalg.eigh(H)
    tol = 1e-6
    if np.any(evals < -tol):
        warnings.warn(
            f"the deviance Hessian in (θ, σ) has {int(np.sum(evals < -tol))} negative eigenvalue(s) "
            f"({', '.join(f'{v:.1e}' for v in evals[evals < -tol])}): the fit may not be at a minimum, "
            "so the Satterthwaite df are unreliable. Refit with another optimizer "
            "(Control(optimizer=...)) and compare.", ConvergenceWarning, stacklevel=4)
    pos = evals > tol
    if not np.all(pos):
        warnings.warn(
            f"{int(np.sum(~pos))} eigenvalue(s) of the deviance Hessian in (θ, σ) are close to zero "
            "(a singular or nearly singular fit): Satterthwaite df use its generalized inverse. "
            "Consider simplifying the random effects.", SingularFitWarning, stacklevel=4)
    Hinv = (evecs[:, pos] / evals[pos]) @ evecs[:, pos].T
    jac = [s2 * JU[i] for i in range(k)] + [2.0 * sigma * U0]
    info = _SattInfo(vcov_beta=s2 * U0, jacobian=jac, vcov_varpar=2.0 * Hinv, hessian=H)
    _SATT_CACHE[model] = (model.theta, info)
    return info


def _satt_df_1d(info: _SattInfo, l: np.ndarray) -> tuple[float, float]:
    """(variance of lβ, Satterthwaite df) for one contrast row l."""
    var = float(l @ info.vcov_beta @ l)
    grad = np.array([l @ J @ l for J in info.jacobian])
    denom = float(grad @ info.vcov_varpar @ grad)
    df = 2.0 * var ** 2 / denom if denom > 0 else np.inf
    return var, df


def satterthwaite_df(model) -> pd.Series:
    """Satterthwaite denominator df of each fixed effect (lmerTest's ``summary`` df).

    Parameters
    ----------
    model : LinearMixedModel

    Returns
    -------
    pandas.Series
        df indexed by fixed-effect name.
    """
    _normalize_ddf("satterthwaite", model)
    info = _satterthwaite_info(model)
    p = len(model.fixef)
    dfs = [_satt_df_1d(info, np.eye(p)[j])[1] for j in range(p)]
    return pd.Series(dfs, index=model.fixef.index, name="df")


# --------------------------------------------------------------------------------------------
# Kenward-Roger
# --------------------------------------------------------------------------------------------

@dataclass
class _KRInfo:
    vcov: np.ndarray            # Φ, the unadjusted vcov(β)
    vcov_adj: np.ndarray        # Φ_A
    P: list[np.ndarray]
    W: np.ndarray


def _weighted_parts(model):
    """Z (sparse, rows scaled by √w), X (scaled) and n."""
    design = model.design
    w = design.weights
    root = None if w is None else np.sqrt(w)
    Z = sp.hstack([t.matrix.sparse(root) for t in design.terms]).tocsr()
    X = design.X if root is None else design.X * root[:, None]
    return Z, X


def _lambda_matrix(model) -> sp.csr_matrix:
    blocks = []
    for term, T in zip(model.design.terms, model.factor.split_theta(model.theta)):
        blocks.append(sp.kron(sp.identity(term.nlevels, format="csr"), sp.csr_matrix(T)))
    return sp.block_diag(blocks, format="csr")


def _kr_info(model) -> _KRInfo:
    cached = _cached(_KR_CACHE, model)
    if cached is not None:
        return cached
    terms = model.design.terms
    q = sum(t.nlevels * t.ncols for t in terms)
    p = model.design.X.shape[1]
    if q + p > KR_MAX_DIM:
        raise ValueError(
            f"Kenward-Roger needs dense matrices of order q + p = {q + p} (q = {q} random effects); "
            f"this implementation stops at {KR_MAX_DIM}. Use ddf='satterthwaite', which scales to "
            "large models and usually agrees closely.")
    Z, X = _weighted_parts(model)
    n = Z.shape[0]
    H = sp.hstack([Z, sp.csr_matrix(X)]).tocsr()
    A0 = (H.T @ H).toarray()
    Lam = _lambda_matrix(model).toarray()
    Azz = A0[:q, :q]
    C = Lam.T @ Azz @ Lam + np.eye(q)
    cf = cho_factor(C, lower=True)
    K = Lam @ cho_solve(cf, Lam.T)                    # Λ C⁻¹ Λᵀ
    # σ²W = I − Z K Zᵀ; with H = [Z X]: Hᵀ(σ²W)ᵏH = (I − A0 K̃)ᵏ A0, K̃ = diag(K, 0)
    AK = A0[:, :q] @ K                                # (q+p) × q
    B1 = A0 - AK @ A0[:q, :]
    B2 = B1 - AK @ B1[:q, :]
    B3 = B2 - AK @ B2[:q, :]
    s2 = model.sigma ** 2
    ZWZ = B1[:q, :q] / s2
    XWZ = B1[q:, :q] / s2
    ZW2Z = B2[:q, :q] / s2 ** 2
    XW2Z = B2[q:, :q] / s2 ** 2
    XW2X = B2[q:, q:] / s2 ** 2
    XW3X = B3[q:, q:] / s2 ** 3
    KA = K @ Azz
    trW2 = (n - 2.0 * np.trace(KA) + np.sum(KA * KA.T)) / s2 ** 2

    # one D (q×q, sparse) per covariance element of each term; the residual variance last
    Ds: list[sp.csr_matrix] = []
    offset = 0
    for term in terms:
        l, m = term.ncols, term.nlevels
        for b in range(l):
            for a in range(b, l):
                E = np.zeros((l, l))
                E[a, b] = E[b, a] = 1.0
                D = sp.kron(sp.identity(m, format="csr"), sp.csr_matrix(E))
                full = sp.lil_matrix((q, q))
                full[offset:offset + m * l, offset:offset + m * l] = D
                Ds.append(full.tocsr())
        offset += m * l
    g = len(Ds) + 1
    Phi = model.vcov.to_numpy()
    DM = [np.asarray(D @ ZWZ) for D in Ds]           # D_r ZᵀWZ
    DX = [np.asarray(D @ XWZ.T) for D in Ds]         # D_r ZᵀWX
    P = [-(XWZ @ dx) for dx in DX] + [-XW2X]
    Q = [[None] * g for _ in range(g)]
    Kt = np.empty((g, g))
    for r in range(g - 1):
        for s in range(r, g - 1):
            Q[r][s] = XWZ @ DM[r] @ DX[s]
            Kt[r, s] = np.sum(DM[r] * DM[s].T)
        Q[r][g - 1] = XWZ @ np.asarray(Ds[r] @ XW2Z.T)
        Kt[r, g - 1] = np.sum(Ds[r].multiply(ZW2Z.T))
    Q[g - 1][g - 1] = XW3X
    Kt[g - 1, g - 1] = trW2
    for r in range(g):
        for s in range(r):
            Q[r][s] = Q[s][r].T
            Kt[r, s] = Kt[s, r]
    IE2 = np.empty((g, g))
    for r in range(g):
        PhiPr = Phi @ P[r]
        for s in range(r, g):
            # the last term is tr(P_r Φ P_s Φ)
            IE2[r, s] = IE2[s, r] = (Kt[r, s] - 2.0 * np.sum(Phi * Q[r][s])
                                     + np.sum(PhiPr * (P[s] @ Phi)))
    eig = np.linalg.eigvalsh(IE2)
    W = 2.0 * (np.linalg.inv(IE2) if np.min(np.abs(eig)) > 1e-10 else np.linalg.pinv(IE2))
    W = 0.5 * (W + W.T)
    U = np.zeros((p, p))
    for r in range(g):
        for s in range(g):
            U += W[r, s] * (Q[r][s] - P[r] @ Phi @ P[s])
    Phi_A = Phi + 2.0 * Phi @ U @ Phi
    info = _KRInfo(vcov=Phi, vcov_adj=0.5 * (Phi_A + Phi_A.T), P=P, W=W)
    _KR_CACHE[model] = (model.theta, info)
    return info


def _kr_ddf(info: _KRInfo, L: np.ndarray) -> tuple[float, float]:
    """(denominator df, F scaling) for the hypothesis rows L (pbkrtest's ``Lb_ddf``)."""
    L = np.atleast_2d(L)
    V0 = info.vcov
    Theta = L.T @ np.linalg.solve(L @ V0 @ L.T, L)
    q = np.linalg.matrix_rank(L)
    ThV = Theta @ V0
    us = [ThV @ Pr @ V0 for Pr in info.P]
    tr = np.array([np.trace(u) for u in us])
    g = len(us)
    A1 = float(tr @ info.W @ tr)
    A2 = 0.0
    for r in range(g):
        for s in range(g):
            A2 += info.W[r, s] * np.sum(us[r] * us[s].T)
    B = (A1 + 6.0 * A2) / (2.0 * q)
    gg = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2) if A2 != 0 else 0.0
    den = 3.0 * q + 2.0 * (1.0 - gg)
    c1, c2, c3 = gg / den, (q - gg) / den, (q + 2 - gg) / den
    V0s = 1.0 + c1 * B
    V1 = 1.0 - c2 * B
    V2 = 1.0 - c3 * B
    V0s = 0.0 if abs(V0s) < 1e-10 else V0s
    ratio = (1.0 - A2 / q) / V1 if V1 != 0 else 0.0
    rho = ratio ** 2 * V0s / V2 / q
    df2 = 4.0 + (q + 2.0) / (q * rho - 1.0)
    scaling = 1.0 if abs(df2 - 4.0) < 1e-2 else df2 * (1.0 - A2 / q) / (df2 - 2.0)
    return float(df2), float(scaling)


def kenward_roger(model) -> tuple[pd.DataFrame, pd.Series]:
    """Kenward-Roger adjusted covariance of the fixed effects and each one's df (pbkrtest).

    Parameters
    ----------
    model : LinearMixedModel
        A REML fit is what the method assumes (as pbkrtest).

    Returns
    -------
    vcov_adj : pandas.DataFrame
    df : pandas.Series
    """
    _normalize_ddf("kenward-roger", model)
    if not model.reml:
        warnings.warn("Kenward-Roger is derived for REML fits; this model was fit by ML.",
                      MixedModelsWarning, stacklevel=2)
    info = _kr_info(model)
    names = model.fixef.index
    p = len(names)
    dfs = [_kr_ddf(info, np.eye(p)[[j]])[0] for j in range(p)]
    return (pd.DataFrame(info.vcov_adj, index=names, columns=names),
            pd.Series(dfs, index=names, name="df"))


# --------------------------------------------------------------------------------------------
# coefficient tables and contrasts
# --------------------------------------------------------------------------------------------

@implements("coef_table_ddf")
def coef_table_ddf(model, ddf: str | None) -> pd.DataFrame:
    """Fixed-effects table with tests under the chosen denominator df.

    Parameters
    ----------
    model : fitted mixed model
    ddf : {"satterthwaite", "kenward-roger", "asymptotic", None}
        ``"satterthwaite"`` (lmerTest's default), ``"kenward-roger"`` (pbkrtest; standard
        errors from the adjusted covariance), or ``"asymptotic"`` z tests (the only choice for
        GLMMs).

    Returns
    -------
    pandas.DataFrame
        ``Estimate, Std. Error, df, t value, Pr(>|t|)``; for ``"asymptotic"``
        ``Estimate, Std. Error, z value, Pr(>|z|)``.
    """
    method = _normalize_ddf(ddf, model)
    est = model.fixef
    beta = est.to_numpy()
    if method == "asymptotic":
        se = np.sqrt(np.diag(model.vcov.to_numpy()))
        z = beta / se
        return pd.DataFrame({"Estimate": beta, "Std. Error": se, "z value": z,
                             "Pr(>|z|)": 2.0 * stats.norm.sf(np.abs(z))}, index=est.index)
    if method == "satterthwaite":
        info = _satterthwaite_info(model)
        p = len(beta)
        se = np.sqrt(np.diag(info.vcov_beta))
        df = np.array([_satt_df_1d(info, np.eye(p)[j])[1] for j in range(p)])
    else:
        vadj, dfs = kenward_roger(model)
        se = np.sqrt(np.diag(vadj.to_numpy()))
        df = dfs.to_numpy()
    t = beta / se
    return pd.DataFrame({"Estimate": beta, "Std. Error": se, "df": df, "t value": t,
                         "Pr(>|t|)": 2.0 * stats.t.sf(np.abs(t), df)}, index=est.index)


def contrast(model, L, ddf: str = "satterthwaite", rhs=None) -> pd.DataFrame:
    """Test the linear hypothesis ``L β = rhs`` (lmerTest's ``contest``).

    Parameters
    ----------
    model : fitted mixed model
    L : array-like, shape (q, p) or (p,), dict/Series of weights by name, DataFrame, or a
        fixed-effect name
        One row per linear combination.
    ddf : {"satterthwaite", "kenward-roger", "asymptotic"}
    rhs : array-like, optional
        Hypothesised values (default 0).

    Returns
    -------
    pandas.DataFrame
        One row: ``Estimate`` and ``Std. Error`` when L has one row, then ``NumDF, DenDF,
        F value, Pr(>F)`` (a chi-square test ``Chisq, Df, Pr(>Chisq)`` for ``"asymptotic"``).
        With one row F is t²; for Kenward-Roger and several rows F is pbkrtest's scaled F.
    """
    method = _normalize_ddf(ddf, model)
    names = list(model.fixef.index)
    Lm = _as_matrix(L, names)
    beta = model.fixef.to_numpy()
    r = np.zeros(Lm.shape[0]) if rhs is None else np.atleast_1d(np.asarray(rhs, dtype=float))
    if r.shape != (Lm.shape[0],):
        raise ValueError(f"rhs must have {Lm.shape[0]} values (one per row of L), got {r.shape}")
    q = np.linalg.matrix_rank(Lm)
    if q < Lm.shape[0]:
        raise ValueError(f"the rows of L are linearly dependent (rank {q} < {Lm.shape[0]} rows); "
                         "drop the redundant rows")
    diff = Lm @ beta - r
    out: dict[str, float] = {}
    if method == "asymptotic":
        V = model.vcov.to_numpy()
        chisq = float(diff @ np.linalg.solve(Lm @ V @ Lm.T, diff))
        if q == 1:
            out = {"Estimate": float(diff[0] + r[0]), "Std. Error": float(np.sqrt(Lm[0] @ V @ Lm[0]))}
        out.update({"Chisq": chisq, "Df": q, "Pr(>Chisq)": float(stats.chi2.sf(chisq, q))})
        return pd.DataFrame([out])
    if method == "satterthwaite":
        info = _satterthwaite_info(model)
        V = info.vcov_beta
        if q == 1:
            var, df = _satt_df_1d(info, Lm[0])
            F = diff[0] ** 2 / var
            out = {"Estimate": float(diff[0] + r[0]), "Std. Error": float(np.sqrt(var))}
        else:
            # lmerTest's contestMD: Satterthwaite df of each eigen-direction, then pooled
            VL = Lm @ V @ Lm.T
            evals, evecs = np.linalg.eigh(VL)
            PL = evecs.T @ Lm
            nus = np.array([_satt_df_1d(info, row)[1] for row in PL])
            F = float(np.sum((evecs.T @ diff) ** 2 / evals) / q)
            E = np.sum(nus[nus > 2] / (nus[nus > 2] - 2.0))
            df = 2.0 * E / (E - q) if E > q else np.inf
            if not np.all(nus > 2) or not E > q:
                df = float(np.mean(nus)) if np.all(nus <= 2) else df
    else:
        info = _kr_info(model)
        Vadj = info.vcov_adj
        df, scaling = _kr_ddf(info, Lm)
        F = float(diff @ np.linalg.solve(Lm @ Vadj @ Lm.T, diff)) / q
        if q == 1:
            out = {"Estimate": float(diff[0] + r[0]), "Std. Error": float(np.sqrt(Lm[0] @ Vadj @ Lm[0]))}
        else:
            F *= scaling
    out.update({"NumDF": q, "DenDF": float(df), "F value": float(F),
                "Pr(>F)": float(stats.f.sf(F, q, df))})
    return pd.DataFrame([out])
