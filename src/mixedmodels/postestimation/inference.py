"""Inference for fitted mixed models: small-sample df, contrasts, confidence intervals, bootstrap.

- :func:`coef_table_ddf`: t tests of the fixed effects with Satterthwaite df (as lmerTest),
  Kenward-Roger df and adjusted covariance (as pbkrtest), or asymptotic z tests.
- :func:`contrast`: F tests of linear hypotheses ``L β = 0`` with the same df methods.
- :func:`confint`: profile-likelihood (as lme4's ``confint(method="profile")``), Wald and
  parametric-bootstrap percentile intervals, rows named like lme4's ``oldNames=FALSE``.
- :func:`bootstrap`: parametric bootstrap of any statistic; :func:`bootstrap_lrt` the
  bootstrap likelihood-ratio test (pbkrtest's ``PBmodcomp``).
- :func:`ranef_table`: conditional modes with conditional SDs (lme4's ``condVar``).

Satterthwaite uses the Hessian of the (RE)ML deviance in the variance parameters (θ, σ),
with σ not profiled out, as lmerTest does. The σ part of the Hessian is analytic; the θ part
comes from Richardson-extrapolated central differences of the pieces of the profiled
objective (log-determinants, penalized RSS, (RₓRₓᵀ)⁻¹), which each cost one blocked Cholesky
and never touch the n rows again.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import optimize as sopt
from scipy import stats
from scipy.linalg import cho_factor, cho_solve, lapack

from ..exceptions import ConvergenceWarning, MixedModelsWarning, SingularFitWarning

__all__ = [
    "coef_table_ddf",
    "satterthwaite_df",
    "kenward_roger",
    "contrast",
    "confint",
    "profile_ci",
    "bootstrap",
    "BootstrapResult",
    "bootstrap_lrt",
    "ranef_table",
    "variance_parameter_names",
]

_DDF_ALIASES = {
    "satterthwaite": "satterthwaite", "satt": "satterthwaite",
    "kenward-roger": "kenward-roger", "kenward_roger": "kenward-roger", "kenwardroger": "kenward-roger",
    "kr": "kenward-roger",
    "asymptotic": "asymptotic", "normal": "asymptotic", "z": "asymptotic", "wald": "asymptotic",
}
#: largest q + p for which Kenward-Roger builds its dense (q+p)² matrices
KR_MAX_DIM = 3000


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _is_glmm(model) -> bool:
    return getattr(model, "family", None) is not None


def _normalize_ddf(ddf: str | None, model) -> str:
    if ddf is None:
        return "asymptotic"
    key = str(ddf).strip().lower().replace(" ", "")
    if key not in _DDF_ALIASES:
        raise ValueError(f"ddf must be 'satterthwaite', 'kenward-roger' or 'asymptotic', got {ddf!r}")
    method = _DDF_ALIASES[key]
    if _is_glmm(model) and method != "asymptotic":
        raise ValueError(
            f"ddf={ddf!r} applies to linear mixed models only; for a GLMM ({model.family.name} "
            "family) the fixed effects have asymptotic z tests: use ddf='asymptotic' (or None). "
            "For small samples use confint(method='profile' or 'boot') or a parametric bootstrap.")
    return method


def _restore(model) -> None:
    """Put the factor back at the fitted θ after evaluations elsewhere."""
    model._set_theta(model.theta)


def _tri_inv(R: np.ndarray) -> np.ndarray:
    """Inverse of a lower-triangular matrix (LAPACK trtri; scipy's solve_triangular is
    ~1000× slower on the non-contiguous views the factor hands out)."""
    inv, info = lapack.dtrtri(np.ascontiguousarray(R), lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("singular fixed-effects factor")
    return inv


def _unscaled_vcov(factor, p: int) -> np.ndarray:
    Rinv = _tri_inv(factor.R_xy[:p, :p])
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
        except np.linalg.LinAlgError:
            raise np.linalg.LinAlgError("the deviance could not be evaluated near the estimate; "
                                        "Satterthwaite df need an interior, well-defined optimum")

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
    cached = getattr(model, "_satt_cache", None)
    if cached is not None and np.array_equal(cached[0], model.theta):
        return cached[1]
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
    model._satt_cache = (model.theta, info)
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
    cached = getattr(model, "_kr_cache", None)
    if cached is not None and np.array_equal(cached[0], model.theta):
        return cached[1]
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
            IE2[r, s] = IE2[s, r] = Kt[r, s] - 2.0 * np.sum(Phi * Q[r][s]) + np.sum(PhiPr * (P[s] @ Phi))  # tr(P_r Φ P_s Φ)
    eig = np.linalg.eigvalsh(IE2)
    W = 2.0 * (np.linalg.inv(IE2) if np.min(np.abs(eig)) > 1e-10 else np.linalg.pinv(IE2))
    W = 0.5 * (W + W.T)
    U = np.zeros((p, p))
    for r in range(g):
        for s in range(g):
            U += W[r, s] * (Q[r][s] - P[r] @ Phi @ P[s])
    Phi_A = Phi + 2.0 * Phi @ U @ Phi
    info = _KRInfo(vcov=Phi, vcov_adj=0.5 * (Phi_A + Phi_A.T), P=P, W=W)
    model._kr_cache = (model.theta, info)
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


# --------------------------------------------------------------------------------------------
# variance parameters on the sd/cor scale
# --------------------------------------------------------------------------------------------

def variance_parameter_names(model) -> list[str]:
    """lme4's ``oldNames=FALSE`` names of the sd/cor parameters, in θ order, then ``sigma``."""
    names = []
    for term, (rows, cols) in zip(model.design.terms, model.factor.layouts):
        for a, b in zip(rows, cols):
            if a == b:
                names.append(f"sd_{term.columns[a]}|{term.name}")
            else:
                names.append(f"cor_{term.columns[a]}.{term.columns[b]}|{term.name}")
    if not _is_glmm(model) or getattr(model.family, "has_scale", False):
        names.append("sigma")
    return names


def _psd_chol(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor that tolerates semi-definite (zero-variance) matrices."""
    l = cov.shape[0]
    T = np.zeros_like(cov)
    for j in range(l):
        d = cov[j, j] - T[j, :j] @ T[j, :j]
        T[j, j] = np.sqrt(d) if d > 0 else 0.0
        for i in range(j + 1, l):
            s = cov[i, j] - T[i, :j] @ T[j, :j]
            T[i, j] = s / T[j, j] if T[j, j] > 0 else 0.0
    return T


def _theta_to_sv(model, theta: np.ndarray, sigma: float) -> np.ndarray:
    out = []
    for T, (rows, cols) in zip(model.factor.split_theta(theta), model.factor.layouts):
        cov = sigma ** 2 * (T @ T.T)
        sd = np.sqrt(np.diag(cov))
        for a, b in zip(rows, cols):
            if a == b:
                out.append(sd[a])
            else:
                den = sd[a] * sd[b]
                out.append(cov[a, b] / den if den > 0 else 0.0)
    return np.array(out + [sigma])


def _sv_to_theta(model, sv: np.ndarray) -> tuple[np.ndarray | None, float]:
    """(θ, σ) from sd/cor values; θ is None when the correlations are not positive semi-definite."""
    sigma = sv[-1]
    theta = []
    pos = 0
    for term, (rows, cols), size in zip(model.design.terms, model.factor.layouts, model.factor.theta_sizes):
        vals = sv[pos:pos + size]
        pos += size
        l = term.ncols
        if l == 1:
            theta.append(vals[0] / sigma)
            continue
        sd = np.zeros(l)
        corr = np.eye(l)
        for v, a, b in zip(vals, rows, cols):
            if a == b:
                sd[a] = v
            else:
                corr[a, b] = corr[b, a] = v
        if l > 2 and np.linalg.eigvalsh(corr)[0] < -1e-10:
            return None, sigma
        T = _psd_chol(corr * np.outer(sd, sd)) / sigma
        theta.extend(T[rows, cols])
    return np.array(theta), sigma


# --------------------------------------------------------------------------------------------
# profile confidence intervals
# --------------------------------------------------------------------------------------------

def _nlopt_min(fun, x0, lower, upper, step=None, ftol=1e-11, maxeval=4000):
    import nlopt

    x0 = np.asarray(x0, dtype=float)
    k = len(x0)
    if k == 0:
        return x0, float(fun(x0))
    opt = nlopt.opt(nlopt.LN_BOBYQA if k > 1 else nlopt.LN_BOBYQA, k)
    lower = np.asarray(lower, float)
    upper = np.asarray(upper, float)
    x0 = np.clip(x0, lower, upper)
    opt.set_lower_bounds(lower)
    opt.set_upper_bounds(upper)

    def f(x, grad):
        val = fun(x)
        return val if np.isfinite(val) else 1e300

    opt.set_min_objective(f)
    opt.set_ftol_abs(ftol)
    opt.set_xtol_rel(1e-10)
    opt.set_maxeval(maxeval)
    if step is not None:
        opt.set_initial_step(np.asarray(step, float))
    try:
        x = opt.optimize(x0)
        val = opt.last_optimum_value()
    except (nlopt.RoundoffLimited, ValueError):
        x, val = x0, f(x0, None)
    return np.asarray(x), float(val)


class _Profiler:
    """The ML deviance profiled over all but one parameter, as lme4's ``profile``."""

    def __init__(self, model):
        self.model = model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.ml = model.refit_ml()
        ml = self.ml
        self.factor = ml.factor   # moved by the evaluations below; restore() puts it back
        self.n = ml.crossproducts.n
        self.p = ml.crossproducts.p
        self.logw = getattr(ml, "_log_weights", 0.0)
        self.base = ml.deviance
        self.theta_hat = ml.theta
        self.sv_hat = _theta_to_sv(ml, ml.theta, ml.sigma)
        self.beta_hat = ml.fixef.to_numpy()
        self.se_hat = np.sqrt(np.diag(ml.vcov.to_numpy()))
        self.lower_theta = ml.factor.theta_lower_bounds()
        self.nvp = len(self.sv_hat)
        kinds = []
        for term, (rows, cols) in zip(ml.design.terms, ml.factor.layouts):
            kinds.extend("sd" if a == b else "cor" for a, b in zip(rows, cols))
        self.kinds = kinds + ["sigma"]
        self.nevals = 0

    # deviance in (θ, σ), σ not profiled (lme4's devfun2)
    def dev_sv(self, sv: np.ndarray) -> float:
        theta, sigma = _sv_to_theta(self.ml, sv)
        if theta is None or not sigma > 0:
            return np.inf
        try:
            f = self.factor.update(theta)
        except np.linalg.LinAlgError:
            return np.inf
        self.nevals += 1
        s2 = sigma * sigma
        return f.logdet_z + f.pwrss / s2 + self.n * np.log(2 * np.pi * s2) - self.logw

    def dev_fixed(self, theta: np.ndarray, j: int, value: float) -> float:
        try:
            f = self.factor.update(theta)
        except np.linalg.LinAlgError:
            return np.inf
        self.nevals += 1
        p = self.p
        Rinv = _tri_inv(f.R_xy[:p, :p])
        beta = Rinv.T @ f.R_xy[p, :p]          # Rᵀβ = the [X y] row of the factor
        # U = (R Rᵀ)⁻¹ with R lower: U_jj = ‖R⁻¹ e_j‖²
        ujj = float(Rinv[:, j] @ Rinv[:, j])
        rss = f.pwrss + (value - beta[j]) ** 2 / ujj
        n = self.n
        return f.logdet_z + n * (1.0 + np.log(2 * np.pi * rss / n)) - self.logw

    def bounds_sv(self):
        lo = np.array([0.0 if k in ("sd", "sigma") else -1.0 for k in self.kinds])
        hi = np.array([np.inf if k in ("sd", "sigma") else 1.0 for k in self.kinds])
        lo[-1] = 1e-12 * max(self.sv_hat[-1], 1.0)
        return lo, hi

    def profile_var(self, w: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        lo, hi = self.bounds_sv()
        free = np.array([i for i in range(self.nvp) if i != w])

        def fun(x):
            sv = np.empty(self.nvp)
            sv[free] = x
            sv[w] = value
            return self.dev_sv(sv)

        step = np.where(np.array(self.kinds)[free] == "cor", 0.05,
                        0.05 * np.maximum(np.abs(start), 1e-3 * max(self.sv_hat[-1], 1e-8)))
        x, val = _nlopt_min(fun, start, lo[free], hi[free], step)
        return val, x

    def profile_fixed(self, j: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        step = 0.05 * np.maximum(np.abs(start), 0.05)
        x, val = _nlopt_min(lambda th: self.dev_fixed(th, j, value), start, self.lower_theta,
                            np.full(len(start), np.inf), step)
        return val, x


class _StartMemory:
    """Inner-optimum solutions by profiled value: each inner fit starts from the nearest one."""

    def __init__(self, u0: float, x0: np.ndarray):
        self.us = [u0]
        self.xs = [np.asarray(x0, float).copy()]

    def nearest(self, u: float) -> np.ndarray:
        d = [abs(u - v) if np.isfinite(v) else np.inf for v in self.us]
        return self.xs[int(np.argmin(d))].copy() if np.isfinite(min(d)) else self.xs[0].copy()

    def add(self, u: float, x: np.ndarray) -> None:
        self.us.append(u)
        self.xs.append(np.asarray(x, float).copy())


def _solve_endpoint(zeta: Callable[[float], float], u0: float, direction: int, target: float,
                    step: float, u_bound: float, ftol: float | None = None) -> float:
    """u with zeta(u) = direction·target, zeta increasing in u, starting at zeta(u0) = 0.

    Secant steps outward (between 0.2 and 4 times the last) until the root is bracketed,
    then Brent to machine precision (LMMs, whose profile is exact), or, with ``ftol``,
    Illinois stopping at |zeta − target| < ftol (GLMMs, whose profile carries PIRLS noise).
    Returns ``u_bound`` when the profile stays inside the interval up to the bound.
    """
    goal = direction * target
    cache: dict[float, float] = {u0: -goal}

    def g(u: float) -> float:
        if u not in cache:
            cache[u] = zeta(u) - goal
        return cache[u]

    u_prev, g_prev = u0, -goal
    u = u0 + direction * step
    for _ in range(60):
        if direction * (u - u_bound) >= 0:
            u = u_bound
        gu = g(u)
        if not np.isfinite(gu):
            raise RuntimeError("the deviance could not be evaluated along the profile")
        if ftol is not None and abs(gu) < ftol:
            return u
        if direction * gu >= 0:
            if ftol is not None:
                return _illinois(g, u_prev, g_prev, u, gu, xtol=1e-7 * step, ftol=ftol)
            lo, hi = sorted((u_prev, u))
            return sopt.brentq(g, lo, hi, xtol=1e-10 * max(1.0, abs(u)), rtol=1e-12, maxiter=100)
        if u == u_bound:
            return u_bound
        # g increases with u: a secant step towards its root, else expand
        last = u - u_prev
        slope = (gu - g_prev) / last
        nxt = abs(gu / slope) if slope > 0 else 4.0 * abs(last)
        nxt = direction * min(max(nxt, 0.2 * abs(last)), 4.0 * abs(last))
        u_prev, g_prev = u, gu
        u = u + nxt
    raise RuntimeError("the profile did not reach the confidence limit; the likelihood is flat")


def profile_ci(model, level: float = 0.95, which: Sequence[str] | None = None) -> pd.DataFrame:
    """Profile-likelihood confidence intervals on lme4's scale (``confint(method="profile")``).

    The ML deviance is profiled (REML fits are refit by ML first, as lme4 does); the limits
    solve ``sign · sqrt(dev(x) − dev_min) = ±z`` exactly rather than through a spline.

    For a GLMM (Laplace or AGQ fit, a family without a scale: binomial, Poisson, negative
    binomial with its θ held fixed) the deviance is profiled over (sd/cor, β) as lme4 does:
    each parameter held fixed, all the others minimised, the sd of a scalar term being its θ.
    PIRLS is warm-started from one profile point to the next and converged tightly, so the
    deviance is smooth; lme4's own (PIRLS to a relative 1e-7 from a fixed start) differs from
    it by up to ~1e-3 away from the optimum, which moves the limits by ~1e-4 standard errors.
    The model's fitted state is restored afterwards. The number of deviance evaluations is in
    ``result.attrs["deviance_evaluations"]``.

    Parameters
    ----------
    model : LinearMixedModel or GeneralizedLinearMixedModel
    level : float
    which : list of str, optional
        Row names to compute (default all).

    Returns
    -------
    pandas.DataFrame
        Columns ``lower, upper``; rows ``sd_...|group``, ``cor_...|group``, ``sigma``, then the
        fixed effects.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if _is_glmm(model):
        return _glmm_profile_ci(model, level, which)
    prof = _Profiler(model)
    target = float(stats.norm.ppf(0.5 + level / 2.0))
    vnames = variance_parameter_names(model)
    fnames = list(model.fixef.index)
    rows = vnames + fnames
    wanted = rows if which is None else list(which)
    unknown = [w for w in wanted if w not in rows]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; choose from {rows}")
    lower = np.full(len(rows), np.nan)
    upper = np.full(len(rows), np.nan)
    base = prof.base

    try:
        for w, name in enumerate(vnames):
            if name not in wanted:
                continue
            kind = prof.kinds[w]
            xhat = prof.sv_hat[w]
            free_hat = np.delete(prof.sv_hat, w)
            # u-scale where the profile is close to linear: log for SDs, atanh for correlations
            if kind == "cor":
                fwd, back = np.arctanh, np.tanh
            else:
                fwd, back = np.log, np.exp
            for direction in (-1, 1):
                memory = _StartMemory(fwd(xhat) if (xhat > 0 or kind == "cor") else -np.inf, free_hat)

                def zeta(u, memory=memory, w=w, xhat=xhat, back=back, kind=kind):
                    x = float(back(u)) if np.isfinite(u) else (0.0 if kind != "cor" else float(np.sign(u)))
                    val, xs = prof.profile_var(w, x, memory.nearest(u))
                    if np.isfinite(val):
                        memory.add(u, xs)
                    d = max(val - base, 0.0)
                    return np.sign(x - xhat) * np.sqrt(d)

                if xhat <= 0 and direction < 0 and kind != "cor":
                    lower[w] = 0.0
                    continue
                if kind == "cor" and abs(xhat) >= 1 - 1e-10 and np.sign(xhat) == direction:
                    (upper if direction > 0 else lower)[w] = np.sign(xhat)
                    continue
                u0 = float(fwd(xhat)) if xhat > 0 or kind == "cor" else np.log(1e-3 * prof.sv_hat[-1])
                # bounds on u: SDs down to 1e-8 of σ (then 0), correlations to ±(1 − 1e-10)
                if kind == "cor":
                    ub = float(np.arctanh(direction * (1 - 1e-10)))
                else:
                    ub = float(np.log(1e-8 * prof.sv_hat[-1])) if direction < 0 else u0 + 20.0
                u = _solve_endpoint(zeta, u0, direction, target, 0.1, ub)
                if u == ub and kind != "sigma" and direction < 0 and kind == "sd":
                    x = 0.0
                elif u == ub and kind == "cor":
                    x = float(direction)
                else:
                    x = float(back(u))
                (upper if direction > 0 else lower)[w] = x
        for j, name in enumerate(fnames):
            if name not in wanted:
                continue
            r = len(vnames) + j
            bhat, se = prof.beta_hat[j], prof.se_hat[j]
            for direction in (-1, 1):
                memory = _StartMemory(bhat, prof.theta_hat)

                def zeta_fe(u, memory=memory, j=j, bhat=bhat):
                    val, th = prof.profile_fixed(j, u, memory.nearest(u))
                    if np.isfinite(val):
                        memory.add(u, th)
                    return np.sign(u - bhat) * np.sqrt(max(val - base, 0.0))

                u = _solve_endpoint(zeta_fe, bhat, direction, target, target * se, bhat + direction * 1e3 * se)
                (upper if direction > 0 else lower)[r] = u
    finally:
        _restore(prof.ml)
    out = pd.DataFrame({"lower": lower, "upper": upper}, index=rows)
    return out.loc[[r for r in rows if r in wanted]]


def _wald_ci(model, level: float) -> pd.DataFrame:
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    vnames = variance_parameter_names(model)
    est = model.fixef
    se = np.sqrt(np.diag(model.vcov.to_numpy()))
    lower = np.concatenate([np.full(len(vnames), np.nan), est.to_numpy() - z * se])
    upper = np.concatenate([np.full(len(vnames), np.nan), est.to_numpy() + z * se])
    return pd.DataFrame({"lower": lower, "upper": upper}, index=vnames + list(est.index))


def confint(model, method: str = "profile", level: float = 0.95, **kwargs) -> pd.DataFrame:
    """Confidence intervals for the variance parameters and fixed effects.

    Parameters
    ----------
    model : fitted mixed model
    method : {"profile", "wald", "boot"}
        ``"profile"``: profile likelihood (LMMs, and GLMMs without a scale parameter);
        ``"wald"``: estimate ± z·SE for the fixed
        effects (variance-parameter rows are NaN, as lme4); ``"boot"``: parametric-bootstrap
        percentile intervals (keywords ``n`` (default 500), ``seed``, ``parallel``,
        ``progress`` go to :func:`bootstrap`).
    level : float, default 0.95

    Returns
    -------
    pandas.DataFrame
        Columns ``lower, upper``; rows like lme4's ``oldNames=FALSE``: ``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sigma``, then the fixed effects.
    """
    key = str(method).lower()
    if key == "profile":
        return profile_ci(model, level=level, **kwargs)
    if key == "wald":
        return _wald_ci(model, level)
    if key in ("boot", "bootstrap"):
        kwargs.setdefault("n", kwargs.pop("nsim", 500))
        res = bootstrap(model, **kwargs)
        return res.confint(level)
    raise ValueError(f"method must be 'profile', 'wald' or 'boot', got {method!r}")


# --------------------------------------------------------------------------------------------
# profile confidence intervals for GLMMs
# --------------------------------------------------------------------------------------------

def _restore_glmm(model) -> None:
    """Put a GLMM back in its fitted state after deviance evaluations elsewhere: PIRLS' warm
    start, its last result and (several terms) the factor at the fitted weights and θ."""
    model.engine.eta = model._eta.copy()
    model._last = model._pirls
    if not model.engine.scalar:
        try:
            model.engine.rx(model._theta, model._pirls)
        except np.linalg.LinAlgError:
            pass


class _TraceMemory:
    """Inner-optimum solutions by profiled value; each inner fit starts from the straight line
    through the two nearest (the profile traces are close to linear on the u scale)."""

    def __init__(self, u0: float, x0: np.ndarray):
        self.us = [u0] if np.isfinite(u0) else []
        self.xs = [np.asarray(x0, float).copy()] if np.isfinite(u0) else []
        self.x0 = np.asarray(x0, float).copy()

    def start(self, u: float) -> np.ndarray:
        if not self.us:
            return self.x0.copy()
        order = np.argsort([abs(u - v) for v in self.us])
        i = int(order[0])
        if len(order) < 2 or self.us[int(order[1])] == self.us[i]:
            return self.xs[i].copy()
        j = int(order[1])
        t = (u - self.us[i]) / (self.us[j] - self.us[i])
        t = min(max(t, -4.0), 5.0)
        return self.xs[i] + t * (self.xs[j] - self.xs[i])

    def add(self, u: float, x: np.ndarray) -> None:
        if np.isfinite(u):
            self.us.append(u)
            self.xs.append(np.asarray(x, float).copy())


class _GlmmProfiler:
    """lme4's GLMM profile: the Laplace (or AGQ) deviance over (sd/cor, β), one parameter fixed
    and all the others minimised, on the smooth deviance (PIRLS warm-started and converged
    tightly). σ is 1 (families without a scale): a scalar term's sd is its θ."""

    def __init__(self, model):
        if model.n_agq == 0:
            raise NotImplementedError(
                "profile intervals need the Laplace or AGQ deviance over (θ, β); this model was "
                "fit with n_agq=0 (β inside PIRLS). Refit with n_agq=1, or use method='wald' "
                "or method='boot'")
        if getattr(model.family, "has_scale", False):
            raise NotImplementedError(
                f"profile intervals are not available for GLMMs with a scale parameter ({model.family.name} "
                "family), as in lme4; use method='wald' or method='boot'")
        self.model = model
        self.nth = model.factor.n_theta
        self.p = len(model._beta)
        self.sv_hat = _theta_to_sv(model, model.theta, 1.0)[:-1]
        self.nvp = len(self.sv_hat)
        kinds = []
        for rows, cols in model.factor.layouts:
            kinds.extend("sd" if a == b else "cor" for a, b in zip(rows, cols))
        self.kinds = kinds
        self.beta_hat = model._beta.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            se = np.sqrt(np.diag(model.vcov.to_numpy()))
        if not np.all(np.isfinite(se)) or np.any(se <= 0):
            se = np.maximum(np.abs(self.beta_hat), 1.0)
        self.se_hat = se
        self.lo = np.concatenate([[0.0 if k == "sd" else -1.0 for k in kinds], np.full(self.p, -np.inf)])
        self.hi = np.concatenate([[np.inf if k == "sd" else 1.0 for k in kinds], np.full(self.p, np.inf)])
        # units of the inner optimisation: β in standard errors, sd/cor in quarters
        self.scale = np.concatenate([np.full(self.nvp, 0.25), se])
        # one scalar term, canonical link, Laplace: the exact gradient, so L-BFGS-B (on the same
        # Laplace deviance, with log det at the mode's weights: equal to ~1e-10)
        self.use_grad = bool(model._gradient_available())
        self.nevals = 0
        self.par_hat = np.concatenate([self.sv_hat, self.beta_hat])
        self.reset_warm_start()
        self.base = self.dev_fit = self.dev(self.par_hat)
        # the smooth deviance's own minimum (within PIRLS' tolerance of the fitted one)
        val, x = self.minimize(None, np.nan, self.par_hat)
        if val < self.base:
            self.base = val
            self.par_opt = x
        else:
            self.par_opt = self.par_hat.copy()

    def reset_warm_start(self) -> None:
        self.model.engine.eta = self.model._eta.copy()

    def theta_of(self, sv: np.ndarray) -> np.ndarray | None:
        theta, _ = _sv_to_theta(self.model, np.append(sv, 1.0))
        return theta

    def dev(self, par: np.ndarray) -> float:
        theta = self.theta_of(par[:self.nvp])
        if theta is None:
            return np.inf
        self.nevals += 1
        try:
            with np.errstate(all="ignore"):
                value = self.model._objective_smooth(theta, par[self.nvp:])
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            return np.inf
        return float(value) if np.isfinite(value) else np.inf

    def dev_grad(self, par: np.ndarray) -> tuple[float, np.ndarray]:
        """Deviance and gradient in (θ, β) = (sd, β) for one scalar term (no restarts of PIRLS)."""
        eng = self.model.engine
        self.nevals += 1
        theta, beta = par[:1], par[1:]
        with np.errstate(all="ignore"):
            res = eng.pirls_scalar_u(theta, beta)
            if not res.converged:
                raise FloatingPointError(res.message)
            value = eng.laplace(res)
            grad = eng.gradient_scalar(theta, res)
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            raise FloatingPointError("non-finite deviance")
        return float(value), grad

    def minimize(self, w: int | None, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """Minimum of the deviance over all parameters but ``w`` (held at ``value``), started at
        ``start`` (the full parameter vector; its ``w`` entry is ignored)."""
        k = self.nvp + self.p
        free = np.arange(k) if w is None else np.delete(np.arange(k), w)
        x0full = np.asarray(start, float).copy()
        if w is not None:
            x0full[w] = value
        x0full = np.clip(x0full, self.lo, self.hi)
        s = self.scale[free]
        c = x0full[free]
        lo = (self.lo[free] - c) / s
        hi = (self.hi[free] - c) / s

        def full(x):
            par = x0full.copy()
            par[free] = c + s * x
            return par

        if self.use_grad:
            out = self._minimize_grad(full, free, s, lo, hi)
            if out is not None:
                return out
        x, val = _nlopt_min(lambda x: self.dev(full(x)), np.zeros(len(free)), lo, hi,
                            step=np.full(len(free), 0.02), ftol=1e-9, maxeval=2000)
        return val, full(x)

    def _minimize_grad(self, full, free, s, lo, hi):
        best = [np.inf, None]

        def fun(x):
            par = full(x)
            val, g = self.dev_grad(par)
            if val < best[0]:
                best[0], best[1] = val, par
            return val, g[free] * s

        bounds = [(a if np.isfinite(a) else None, b if np.isfinite(b) else None) for a, b in zip(lo, hi)]
        try:
            out = sopt.minimize(fun, np.zeros(len(free)), jac=True, method="L-BFGS-B", bounds=bounds,
                                options={"maxiter": 200, "ftol": 1e-15, "gtol": 1e-7, "maxcor": 20})
        except (FloatingPointError, np.linalg.LinAlgError, ValueError):
            self.reset_warm_start()
            return None
        if best[1] is None or (not out.success and out.nit >= 200):
            return None
        return float(best[0]), best[1]


#: the GLMM profile's limits solve zeta = ±z to this (a 1e-6 SE shift of the limit)
_ZETA_TOL = 1e-6


def _illinois(g: Callable[[float], float], a: float, ga: float, b: float, gb: float,
              xtol: float, ftol: float, maxiter: int = 60) -> float:
    """Root of g in the bracket [a, b] (g(a), g(b) of opposite signs) by the Illinois variant of
    regula falsi: superlinear on the near-linear profiles, and it stops as soon as |g| < ftol."""
    if abs(ga) < ftol:
        return a
    if abs(gb) < ftol:
        return b
    c = b
    for _ in range(maxiter):
        c = b - gb * (b - a) / (gb - ga)
        gc = g(c)
        if abs(gc) < ftol:
            return c
        if np.sign(gc) == np.sign(gb):
            ga *= 0.5           # a kept again: halve its weight (Illinois)
        else:
            a, ga = b, gb
        b, gb = c, gc
        if abs(b - a) < xtol:
            break
    return c


def _glmm_profile_ci(model, level: float, which: Sequence[str] | None) -> pd.DataFrame:
    """:func:`profile_ci` for a GLMM: every parameter (sd/cor, then β) profiled over all the
    others, as lme4; the model's fitted state is restored afterwards."""
    target = float(stats.norm.ppf(0.5 + level / 2.0))
    rows = variance_parameter_names(model) + list(model.fixef.index)
    wanted = rows if which is None else list(which)
    unknown = [w for w in wanted if w not in rows]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; choose from {rows}")
    lower = np.full(len(rows), np.nan)
    upper = np.full(len(rows), np.nan)
    nevals = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            prof = _GlmmProfiler(model)
            base, par_opt = prof.base, prof.par_opt
            lowest = [base]
            dev_fit = prof.dev_fit
            for w, name in enumerate(rows):
                if name not in wanted:
                    continue
                kind = prof.kinds[w] if w < prof.nvp else "beta"
                xhat = float(par_opt[w])
                # u: the scale on which the profile is close to linear
                back = {"sd": np.exp, "cor": np.tanh}.get(kind, float)
                for direction in (-1, 1):
                    if kind == "sd" and xhat <= 0 and direction < 0:
                        lower[w] = 0.0
                        continue
                    if kind == "cor" and abs(xhat) >= 1 - 1e-10 and np.sign(xhat) == direction:
                        (upper if direction > 0 else lower)[w] = np.sign(xhat)
                        continue
                    if kind == "sd":   # down to 1e-8 (then 0)
                        u0 = float(np.log(xhat)) if xhat > 0 else float(np.log(1e-3))
                        ub = float(np.log(1e-8)) if direction < 0 else u0 + 20.0
                        step = 0.1
                    elif kind == "cor":
                        u0 = float(np.arctanh(xhat))
                        ub = float(np.arctanh(direction * (1 - 1e-10)))
                        step = 0.1
                    else:
                        se = prof.se_hat[w - prof.nvp]
                        u0, ub, step = xhat, xhat + direction * 1e3 * se, target * se
                    memory = _TraceMemory(u0, par_opt)
                    prof.reset_warm_start()

                    def zeta(u, memory=memory, w=w, xhat=xhat, back=back):
                        x = float(back(u))
                        val, par = prof.minimize(w, x, memory.start(u))
                        if np.isfinite(val):
                            memory.add(u, par)
                            lowest[0] = min(lowest[0], val)
                        return np.sign(x - xhat) * np.sqrt(max(val - base, 0.0))

                    u = _solve_endpoint(zeta, u0, direction, target, step, ub, ftol=_ZETA_TOL)
                    if u == ub and kind == "sd" and direction < 0:
                        x = 0.0
                    elif u == ub and kind == "cor":
                        x = float(direction)
                    else:
                        x = float(back(u))
                    (upper if direction > 0 else lower)[w] = x
            nevals = prof.nevals
    finally:
        _restore_glmm(model)
    if lowest[0] < dev_fit - 1e-3:
        warnings.warn(
            f"profiling found a deviance {dev_fit - lowest[0]:.3g} below the fitted one: the fit is "
            "not at the optimum, so these intervals are unreliable (lme4 stops here with "
            "'profiling detected new, lower deviance'). Refit with another optimizer and compare.",
            ConvergenceWarning, stacklevel=4)
    out = pd.DataFrame({"lower": lower, "upper": upper}, index=rows)
    out = out.loc[[r for r in rows if r in wanted]]
    out.attrs["deviance_evaluations"] = nevals
    return out


# --------------------------------------------------------------------------------------------
# parametric bootstrap
# --------------------------------------------------------------------------------------------

def default_statistic(model) -> pd.Series:
    """sd/cor parameters, σ and fixed effects, named as in :func:`confint`."""
    sv = _theta_to_sv(model, model.theta, model.sigma if not _is_glmm(model) else 1.0)
    names = variance_parameter_names(model)
    sv = sv[:len(names)]
    return pd.concat([pd.Series(sv, index=names), model.fixef])


def _refit(model, y: np.ndarray):
    """The same model refit to a new response, started at the fitted θ."""
    if hasattr(model, "refit"):
        return model.refit(y)
    if _is_glmm(model):
        from ..models.glmm import GeneralizedLinearMixedModel

        ctrl = replace(model.control, check_conv="ignore", check_singular="ignore", check_scale="ignore")
        new = GeneralizedLinearMixedModel(model.design, model.family, n_agq=model.n_agq, control=ctrl,
                                          data_name=model.data_name, y=np.asarray(y, dtype=float),
                                          wt=model._wt, nsize=model._nsize)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            new.fit()
        return new
    from ..models.lmm import LinearMixedModel

    design = replace(model.design, y=np.asarray(y, dtype=float))
    ctrl = replace(model.control, check_conv="ignore", check_singular="ignore", check_scale="ignore")
    new = LinearMixedModel(design, reml=model.reml, control=ctrl, data_name=model.data_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new.fit(start=model.theta)
    return new


def _boot_one(args):
    model, y, statistic = args
    try:
        fitted = _refit(model, y)
        return np.asarray(statistic(fitted), dtype=float)
    except Exception:  # a failed refit counts as failed, as bootMer does
        return None


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.done = total, enabled, 0
        self.start = time.perf_counter()
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="bootstrap")
            except ImportError:
                self.bar = None

    def update(self, k: int = 1) -> None:
        if not self.enabled:
            return
        self.done += k
        if self.bar is not None:
            self.bar.update(k)
            return
        width = 30
        filled = int(width * self.done / self.total)
        el = time.perf_counter() - self.start
        sys.stderr.write(f"\rbootstrap [{'#' * filled}{'.' * (width - filled)}] "
                         f"{self.done}/{self.total} {el:.1f}s")
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class BootstrapResult:
    """Parametric bootstrap replicates.

    Attributes
    ----------
    observed : pandas.Series
        The statistic on the fitted model.
    replicates : pandas.DataFrame
        One row per successful replicate.
    n_failed : int
        Replicates whose refit failed (left out).
    seed : int or None
    """

    observed: pd.Series
    replicates: pd.DataFrame
    n_failed: int = 0
    seed: object = None

    def confint(self, level: float = 0.95, type: str = "perc") -> pd.DataFrame:
        """Percentile (``"perc"``), basic or normal intervals, as ``boot.ci``."""
        a = (1.0 - level) / 2.0
        reps = self.replicates
        if type == "perc":
            lo, hi = reps.quantile(a), reps.quantile(1 - a)
        elif type == "basic":
            lo, hi = 2 * self.observed - reps.quantile(1 - a), 2 * self.observed - reps.quantile(a)
        elif type == "norm":
            z = stats.norm.ppf(1 - a)
            bias = reps.mean() - self.observed
            sd = reps.std(ddof=1)
            lo, hi = self.observed - bias - z * sd, self.observed - bias + z * sd
        else:
            raise ValueError(f"type must be 'perc', 'basic' or 'norm', got {type!r}")
        return pd.DataFrame({"lower": lo.to_numpy(), "upper": hi.to_numpy()}, index=reps.columns)

    @property
    def std_error(self) -> pd.Series:
        return self.replicates.std(ddof=1)

    def __repr__(self) -> str:
        return (f"BootstrapResult({len(self.replicates)} replicates, {self.n_failed} failed)\n"
                + pd.DataFrame({"original": self.observed, "bias": self.replicates.mean() - self.observed,
                                "std. error": self.std_error}).to_string())


def bootstrap(model, n: int = 500, seed=None, statistic: Callable | None = None,
              parallel: int | None = None, progress: bool = False) -> BootstrapResult:
    """Parametric bootstrap: simulate from the fitted model, refit, and collect a statistic.

    Parameters
    ----------
    model : fitted mixed model
    n : int
        Number of replicates.
    seed : int, numpy SeedSequence or None
        All responses are simulated up front from this seed, so the results do not depend on
        ``parallel``.
    statistic : callable, optional
        ``statistic(fitted_model) -> float, array or pandas.Series``; by default the sd/cor
        parameters, σ and the fixed effects (named as :func:`confint` rows).
    parallel : int, optional
        Worker processes (default 1: none). The statistic must then be picklable (a
        module-level function).
    progress : bool
        Show a progress bar (tqdm if installed, else a text bar on stderr).

    Returns
    -------
    BootstrapResult
    """
    from .predict import simulate

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    stat = statistic or default_statistic
    observed = stat(model)
    if isinstance(observed, pd.Series):
        names = list(observed.index)
    else:
        arr = np.atleast_1d(np.asarray(observed, dtype=float))
        names = [f"t{i + 1}" for i in range(arr.size)] if arr.size > 1 else ["t1"]
        observed = pd.Series(arr, index=names)
    ys = simulate(model, n=n, seed=seed)
    ys = ys.to_numpy() if isinstance(ys, pd.DataFrame) else np.asarray(ys)
    work = [(model, ys[:, i], stat) for i in range(n)]
    results = _map_with_progress(_boot_one, work, parallel, progress)
    ok = [r for r in results if r is not None and np.all(np.isfinite(r))]
    failed = n - len(ok)
    if failed:
        warnings.warn(f"{failed} of {n} bootstrap refits failed and were left out",
                      ConvergenceWarning, stacklevel=2)
    reps = pd.DataFrame(np.vstack(ok) if ok else np.empty((0, len(names))), columns=names)
    return BootstrapResult(observed=observed.astype(float), replicates=reps, n_failed=failed, seed=seed)


def _lrt_stat(small, large) -> float:
    return max(0.0, 2.0 * (large.loglik - small.loglik))


def bootstrap_lrt(small_model, large_model, n: int = 500, seed=None, parallel: int | None = None,
                  progress: bool = False) -> pd.DataFrame:
    """Parametric bootstrap likelihood-ratio test of a nested pair (pbkrtest's ``PBmodcomp``).

    Both models are compared by maximum likelihood (REML fits are refit). Responses are
    simulated from the small model; each is refit by both models. The p-value is
    ``(1 + #{LRT* > LRT}) / (1 + n)``. Near a variance boundary the χ² reference is
    conservative; this test is not.

    Parameters
    ----------
    small_model, large_model : fitted models, the first nested in the second
    n : int
    seed : int or None
    parallel : int, optional
    progress : bool

    Returns
    -------
    pandas.DataFrame
        Rows ``LRT`` (χ² reference) and ``PBtest`` (bootstrap), columns ``stat, df, p.value``.
    """
    if small_model.npar > large_model.npar:
        small_model, large_model = large_model, small_model
    if small_model.nobs != large_model.nobs:
        raise ValueError("the two models must be fit to the same data (their numbers of "
                         f"observations differ: {small_model.nobs} and {large_model.nobs})")
    s_ml = small_model.refit_ml() if getattr(small_model, "reml", False) else small_model
    l_ml = large_model.refit_ml() if getattr(large_model, "reml", False) else large_model
    obs = _lrt_stat(s_ml, l_ml)
    df = l_ml.npar - s_ml.npar

    def stat(m):  # refits of the small model; the large one is refit to the same response
        return np.array([m.loglik])

    from .predict import simulate

    ys = simulate(s_ml, n=n, seed=seed)
    ys = ys.to_numpy() if isinstance(ys, pd.DataFrame) else np.asarray(ys)
    work = [((s_ml, l_ml), ys[:, i]) for i in range(n)]
    ref = _map_with_progress(_lrt_one, work, parallel, progress)
    ref = np.array([r for r in ref if r is not None and np.isfinite(r)])
    n_ok = len(ref)
    if n_ok < n:
        warnings.warn(f"{n - n_ok} of {n} bootstrap refits failed and were left out",
                      ConvergenceWarning, stacklevel=2)
    p_boot = (1.0 + np.sum(ref > obs)) / (1.0 + n_ok)
    table = pd.DataFrame({"stat": [obs, obs], "df": [float(df), np.nan],
                          "p.value": [float(stats.chi2.sf(obs, df)) if df > 0 else np.nan, p_boot]},
                         index=["LRT", "PBtest"])
    table.attrs["n_sim"] = n_ok
    table.attrs["reference"] = ref
    return table


def _map_with_progress(func, work: list, parallel: int | None, progress: bool) -> list:
    """``[func(item) for item in work]``, in worker processes when ``parallel`` > 1, with a
    progress bar. Each item carries its own simulated response, so results do not depend on
    the number of workers."""
    bar = _Progress(len(work), progress)
    results: list = []
    workers = int(parallel or 1)
    try:
        if workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=workers) as pool:
                chunk = max(1, len(work) // (4 * workers))
                for res in pool.map(func, work, chunksize=chunk):
                    results.append(res)
                    bar.update()
        else:
            for item in work:
                results.append(func(item))
                bar.update()
    finally:
        bar.close()
    return results


def _lrt_one(args):
    (small, large), y = args
    try:
        return _lrt_stat(_refit(small, y), _refit(large, y))
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# conditional variances of the random effects
# --------------------------------------------------------------------------------------------

def _cond_cov_blocks(model) -> list[np.ndarray]:
    """Per term an (m, l, l) array: Var(b_g | y) = σ² [Λ C⁻¹ Λᵀ]_gg (lme4's condVar)."""
    terms = model.design.terms
    Ts = model.factor.split_theta(model.theta)
    s2 = model.sigma ** 2 if not _is_glmm(model) or getattr(model.family, "has_scale", False) else 1.0
    if _is_glmm(model) and hasattr(model, "_cond_cov_blocks"):
        return model._cond_cov_blocks()
    q = sum(t.nlevels * t.ncols for t in terms)
    if len(terms) == 1:
        # C is block diagonal: invert the l×l blocks directly
        t, T = terms[0], Ts[0]
        diag = model.crossproducts.diag[0]
        C = np.einsum("ba,gbc,cd->gad", T, diag, T) + np.eye(t.ncols)[None]
        Ci = np.linalg.inv(C)
        return [s2 * np.einsum("ab,gbc,dc->gad", T, Ci, T)]
    if q > 20000:
        raise ValueError(f"conditional variances need a dense inverse of order q = {q}; "
                         "this model is too large for them")
    Z, _ = _weighted_parts(model)
    Lam = _lambda_matrix(model)
    C = (Lam.T @ (Z.T @ Z) @ Lam).toarray() + np.eye(q)
    cf = cho_factor(C, lower=True)
    Ci = cho_solve(cf, np.eye(q))
    out = []
    pos = 0
    for t, T in zip(terms, Ts):
        m, l = t.nlevels, t.ncols
        idx = pos + np.arange(m * l).reshape(m, l)
        blocks = Ci[idx[:, :, None], idx[:, None, :]]
        out.append(s2 * np.einsum("ab,gbc,dc->gad", T, blocks, T))
        pos += m * l
    return out


def ranef_table(model) -> pd.DataFrame:
    """Conditional modes and conditional SDs of the random effects (lme4's ``condVar``).

    Parameters
    ----------
    model : fitted mixed model

    Returns
    -------
    pandas.DataFrame
        Long format like R's ``as.data.frame(ranef(m, condVar=TRUE))``: ``grpvar, term, grp,
        condval, condsd``.
    """
    blocks = _cond_cov_blocks(model)
    frames = []
    for term, b, V in zip(model.design.terms, model._random_effects_b(), blocks):
        sd = np.sqrt(np.maximum(np.diagonal(V, axis1=1, axis2=2), 0.0))
        for j, col in enumerate(term.columns):
            frames.append(pd.DataFrame({"grpvar": term.group, "term": col,
                                        "grp": np.asarray(term.levels, dtype=object),
                                        "condval": b[:, j], "condsd": sd[:, j]}))
    return pd.concat(frames, ignore_index=True)
