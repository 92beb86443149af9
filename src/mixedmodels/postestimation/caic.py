"""Conditional AIC of a linear mixed model (Greven & Kneib 2010), as R's ``cAIC4::cAIC``.

The conditional AIC judges a model by how well its conditional fit (fixed effects plus
predicted random effects) predicts new data from the *same* clusters. Its penalty, the effective
degrees of freedom, is the trace of the hat matrix of the conditional fit plus a correction for
the estimated covariance parameters (Greven & Kneib's implicit-function derivative), plus one
for σ. Ignoring that correction (the "naive" cAIC) favours larger random-effect structures.

Everything is computed in the space of the q random effects, never as n × n matrices: with
V₀ = W⁻¹ + ZΛΛᵀZᵀ, Woodbury gives V₀⁻¹ from the q × q matrix I + ΛᵀZᵀWZΛ, and the terms of
the correction reduce to products with ZᵀAZ (A the REML projection). The cost is O(q³ + n·p²),
so the limit is on q (``max_q``), not on n.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve

from ..exceptions import MixedModelsWarning
from ..models.base import printed_by_presentation
from .progress import Progress

__all__ = ["caic", "CAICResult"]

_LOG_2PI = np.log(2.0 * np.pi)


def _zero_columns(model, tol: float) -> list[list[int]]:
    """Per term, the columns whose scale (diagonal of T) is zero: cAIC4 refits without them."""
    out = []
    for T in model.factor.split_theta(model.theta):
        out.append([j for j in range(T.shape[0]) if abs(T[j, j]) <= tol])
    return out


def _reduced_model(model, zero_cols: list[list[int]]):
    """The model refit without the random-effect columns whose variance is zero (or None)."""
    reduced = model.design.drop_re_columns(zero_cols)
    if not reduced.terms:
        return None
    refit = model.with_design(reduced)
    # dropping columns keeps each term's number of levels, so the (stable) re-sort keeps the
    # terms in their order: the start is the kept blocks of T, term by term
    start = np.concatenate([_term_start(T, zeros) for T, zeros in
                            zip(model.factor.split_theta(model.theta), zero_cols)
                            if len(zeros) < T.shape[0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            refit.fit(start=start)
        except ValueError:
            refit.fit()
    return refit


def _term_start(T: np.ndarray, zeros: list[int]) -> np.ndarray:
    """θ start for a term reduced to its nonzero columns: T's kept block, column by column."""
    keep = [j for j in range(T.shape[0]) if j not in zeros]
    sub = T[np.ix_(keep, keep)]
    rows, cols = np.tril_indices(len(keep))
    order = np.lexsort((rows, cols))  # lower triangle column by column, θ's layout
    return sub[rows[order], cols[order]]


def _conditional_loglik(model) -> float:
    w = model.prior_weights
    resid = model.response - model.fitted()
    s2 = float(model.sigma) ** 2
    used = w > 0
    return float(-0.5 * np.sum(_LOG_2PI + np.log(s2 / w[used]) + w[used] * resid[used] ** 2 / s2))


def _bias_correction(model, max_q: int, progress: bool | str = "auto") -> float:
    """Greven & Kneib's corrected degrees of freedom (without the +1 for σ)."""
    if not model.factor.parametrization.is_linear:
        raise NotImplementedError("cAIC's bias correction differentiates the covariance entries of "
                                  "lme4's unstructured and diagonal terms; it is not available for "
                                  "cs, ar1 or ou terms. Compare such models by AIC/BIC instead.")
    design = model.design
    n = design.nobs
    X = np.asarray(design.X, dtype=float)
    p = X.shape[1]
    w = model.prior_weights
    terms = design.terms
    Ts = model.factor.split_theta(model.theta)
    layouts = model.factor.layouts
    sizes = [t.matrix.q for t in terms]
    q = int(sum(sizes))
    if q > max_q:
        raise ValueError(
            f"cAIC needs dense q × q matrices and this model has q = {q} random effects "
            f"(more than max_q = {max_q}); pass a larger max_q if the memory allows "
            f"(about {8 * q * q * 6 / 2**30:.1f} GiB)")
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    k = sum(len(rows) for rows, _ in layouts)
    # steps: the q × q factor and inverse, Zᵀ A Z, then per covariance parameter its direction,
    # its row of B and its row of C; "auto" shows the bar once the total is expected past ~2 s
    bar = Progress(3 + 3 * k, "caic", progress)
    try:
        return _corrected_df(model, X, w, terms, Ts, layouts, sizes, q, offsets, n, p, bar)
    finally:
        bar.close()


def _corrected_df(model, X, w, terms, Ts, layouts, sizes, q, offsets, n, p, bar) -> float:
    """The body of :func:`_bias_correction`, reporting each step to ``bar``."""
    Z = sp.hstack([t.matrix.sparse() for t in terms]).tocsr()
    lam = sp.block_diag([sp.kron(sp.identity(t.nlevels), sp.csr_matrix(T))
                         for t, T in zip(terms, Ts)]).tocsr()
    ZL = (Z @ lam).tocsr()
    WZL = sp.diags(w) @ ZL
    U = (ZL.T @ WZL).toarray()
    M = cho_factor(np.eye(q) + U, lower=True)
    bar.update()

    def v0inv(v: np.ndarray) -> np.ndarray:
        """V₀⁻¹ v with V₀ = W⁻¹ + ZΛΛᵀZᵀ (Woodbury)."""
        wv = v * (w if v.ndim == 1 else w[:, None])
        return wv - WZL @ cho_solve(M, ZL.T @ wv)

    PX = v0inv(X)                      # V₀⁻¹X
    XtPX = X.T @ PX
    xf = cho_factor(XtPX, lower=True)

    def apply_A(v: np.ndarray) -> np.ndarray:
        """A v, A = V₀⁻¹ − V₀⁻¹X(XᵀV₀⁻¹X)⁻¹XᵀV₀⁻¹ (the REML projection)."""
        return v0inv(v) - PX @ cho_solve(xf, PX.T @ v)

    # tr(W⁻¹A) = n − q + tr(M⁻¹) − tr((XᵀV₀⁻¹X)⁻¹ (V₀⁻¹X)ᵀW⁻¹(V₀⁻¹X))
    Minv = cho_solve(M, np.eye(q))
    wsafe = np.where(w > 0, w, np.inf)
    tr_RA = n - q + np.trace(Minv) - np.trace(cho_solve(xf, PX.T @ (PX / wsafe[:, None])))
    bar.update()

    # Zᵀ V₀⁻¹ Z and ZᵀAZ, q × q
    S = (Z.T @ sp.diags(w) @ Z).toarray()
    K = lam.T @ S                      # ΛᵀS  (q × q, dense via sparse @ dense)
    K = np.asarray(K)
    ZtV0Z = S - K.T @ cho_solve(M, K)
    ZtPX = np.asarray(Z.T @ PX)        # Zᵀ V₀⁻¹ X
    G = ZtV0Z - ZtPX @ cho_solve(xf, ZtPX.T)
    Gp = G if model.reml else ZtV0Z
    nprime = n - p if model.reml else n
    bar.update()

    y = model.response
    e = y - model.fitted()             # conditional residuals
    tye = float(y @ e)
    g = np.asarray(Z.T @ e).ravel()

    # derivative directions: D_j is the symmetric indicator of θ_j's position(s) in ΛΛᵀ's
    # covariance parametrisation (cAIC4's W_j = Z D_j Zᵀ)
    dirs = []  # (term index, row, col)
    for ti, (rows, cols) in enumerate(layouts):
        for r, c in zip(rows, cols):
            dirs.append((ti, int(r), int(c)))
    k = len(dirs)

    def d_times(j: int, vec: np.ndarray) -> np.ndarray:
        ti, r, c = dirs[j]
        l = terms[ti].ncols
        out = np.zeros(q)
        blk = vec[offsets[ti]:offsets[ti + 1]].reshape(-1, l)
        res = np.zeros_like(blk)
        res[:, r] += blk[:, c]
        if r != c:
            res[:, c] += blk[:, r]
        out[offsets[ti]:offsets[ti + 1]] = res.ravel()
        return out

    def d_block(j: int) -> sp.csr_matrix:
        """D_j restricted to its term's block (it is zero elsewhere)."""
        ti, r, c = dirs[j]
        l, m = terms[ti].ncols, terms[ti].nlevels
        E = np.zeros((l, l))
        E[r, c] = E[c, r] = 1.0
        return sp.kron(sp.identity(m), sp.csr_matrix(E)).tocsr()

    Dg = [d_times(j, g) for j in range(k)]
    eWe = np.array([g @ dg for dg in Dg])
    # a_j = A W_j e, h_j = W⁻¹ a_j
    a = []
    for dg in Dg:
        a.append(apply_A(np.asarray(Z @ dg).ravel()))
        bar.update()
    h = [aj / wsafe for aj in a]
    # G' D_j, nonzero only in the columns of θ_j's term: keep those (q × q_t)
    GD = []
    for j in range(k):
        ti = dirs[j][0]
        sl = slice(offsets[ti], offsets[ti + 1])
        GD.append((np.asarray(d_block(j) @ Gp[sl, :]).T, ti))  # = G'[:, sl] D_j (both symmetric)
    B = np.zeros((k, k))
    for j in range(k):
        for kk in range(j, k):
            Pj, tj = GD[j]
            Pk, tk = GD[kk]
            slj = slice(offsets[tj], offsets[tj + 1])
            slk = slice(offsets[tk], offsets[tk + 1])
            trace = float(np.sum(Pj[slk, :] * Pk[slj, :].T))
            val = (-tye * trace / (2 * nprime) - eWe[j] * eWe[kk] / (2 * tye)
                   + float(Dg[kk] @ (G @ Dg[j])))
            B[j, kk] = B[kk, j] = val
        bar.update()
    # C[j,:]·x = (D_j g)ᵀ ZᵀA x − (eᵀW_j e / (2 tye)) eᵀx ; needed for x = h_i
    ZtAh = [np.asarray(Z.T @ apply_A(hi)).ravel() for hi in h]
    Cx = np.zeros((k, k))  # Cx[j, i] = C[j,:]·h_i
    for j in range(k):
        for i in range(k):
            Cx[j, i] = Dg[j] @ ZtAh[i] - eWe[j] / (2 * tye) * float(e @ h[i])
        bar.update()
    try:
        lam_y = np.linalg.solve(B, Cx)
    except np.linalg.LinAlgError:
        lam_y = np.linalg.lstsq(B, Cx, rcond=None)[0]
    return float(n - tr_RA + np.trace(lam_y))


@printed_by_presentation  # its printing: presentation.reprs
class CAICResult(dict):
    """The conditional AIC: a dict (``caic``, ``df``, ``conditional_loglik``, ``reduced_model``,
    ``new``) whose entries are also attributes; :meth:`to_frame` is one row of the numbers."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_frame(self) -> pd.DataFrame:
        """One row: ``cAIC``, ``df`` (effective degrees of freedom), ``cond_logLik``, ``reduced``."""
        return pd.DataFrame([{"cAIC": self["caic"], "df": self["df"], "cond_logLik": self["conditional_loglik"],
                              "reduced": bool(self["new"])}])


def caic(model, *, sigma_penalty: int = 1, max_q: int = 6000, zero_tol: float = 0.0,
         progress: bool | str = "auto") -> "CAICResult":
    """Conditional AIC with Greven & Kneib's (2010) corrected degrees of freedom, as ``cAIC4::cAIC``.

    ``caic = −2 × conditional log-likelihood + 2 × df``. The conditional log-likelihood is that
    of y given the predicted random effects (with the model's σ: the REML σ for REML fits, as
    cAIC4). ``df`` is the trace of the conditional hat matrix, plus the correction for the
    estimated covariance parameters, plus ``sigma_penalty`` for σ.

    Random-effect columns whose variance is estimated as zero are removed and the model refit
    first, as cAIC4 does (the correction is not defined on the boundary); the reduced model is
    returned as ``"reduced_model"``.

    Parameters
    ----------
    model : fitted LMM (REML or ML)
    sigma_penalty : int, default 1
        Degrees of freedom added for estimated residual-variance parameters.
    max_q : int, default 6000
        Largest number of random effects for which the dense q × q computation is attempted.
    zero_tol : float, default 0.0
        A relative-scale entry (diagonal of T) at or below this is treated as zero.
    progress : {"auto", True, False}, default "auto"
        A progress bar over the steps of the correction when the output is interactive and
        they will take more than about 2 s (:mod:`~mixedmodels.postestimation.progress`).

    Returns
    -------
    CAICResult
        A dict (entries also attributes, ``.to_frame()`` one row of them): ``caic``, ``df``,
        ``conditional_loglik``, ``reduced_model`` (None when nothing was removed) and ``new``
        (whether a reduced model was fit).

    Examples
    --------
    >>> import mixedmodels as mm
    >>> from mixedmodels.postestimation.caic import caic
    >>> m = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
    >>> round(caic(m)["caic"], 2)
    1711.62
    """
    if not model.family.linear:
        raise NotImplementedError(f"caic is implemented for linear mixed models, not for this "
                                  f"{model.family.label} GLMM; cAIC4 uses a bootstrap or refits "
                                  "per observation for GLMMs")
    if not model.design.terms:
        raise ValueError("the model has no random effects; use AIC")
    zeros = _zero_columns(model, zero_tol)
    reduced = None
    target = model
    if any(zeros):
        reduced = _reduced_model(model, zeros)
        if reduced is None:
            # every variance is zero: cAIC4 falls back to the linear model's rank
            warnings.warn("every random-effect variance is estimated as zero: the conditional AIC "
                          "is that of the linear model (df = number of fixed effects), as cAIC4.",
                          MixedModelsWarning, stacklevel=2)
            cll = _conditional_loglik(model)
            df = float(model.design.X.shape[1])
            return CAICResult({"caic": -2 * cll + 2 * df, "df": df, "conditional_loglik": cll,
                               "reduced_model": None, "new": False})
        warnings.warn("some random-effect variances are estimated as zero; as cAIC4, the cAIC is "
                      "that of the model refit without them (returned as 'reduced_model').",
                      MixedModelsWarning, stacklevel=2)
        target = reduced
    df = _bias_correction(target, max_q, progress) + sigma_penalty
    cll = _conditional_loglik(target)
    return CAICResult({"caic": -2 * cll + 2 * df, "df": df, "conditional_loglik": cll,
                       "reduced_model": reduced, "new": reduced is not None})
