"""Variance accounted for: Nakagawa's R², the ICC, and R²β per fixed-effect term.

- :func:`r2` and :func:`icc` decompose the variance of the linear predictor on the latent
  (link) scale as R's ``performance::r2_nakagawa`` / ``performance::icc`` do (through
  ``insight::get_variance``): the variance of the fixed part ``var(Xβ)``, the mean random-effect
  variance over observations (Johnson 2014: the mean of ``z_iᵀ Σ z_i``, which covers random
  slopes), and the residual variance (σ² for LMMs; the distribution-specific variance of
  Nakagawa, Johnson & Schielzeth 2017 for binomial and Poisson GLMMs).
- :func:`r2_beta` computes Edwards et al.'s (2008) R²β for the whole model and each term, with
  the covariance summarised as in R's ``r2glmm::r2beta`` (``"sgv"`` or ``"nsj"``).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.lazy import lazy_import
from ..exceptions import MixedModelsWarning, SingularFitWarning
from ..models.base import printed_by_presentation
from ..spec.design import build_design, r_column_name
from ..spec.response import Response, response_parser

stats = lazy_import("scipy.stats")

__all__ = ["r2", "icc", "r2_beta", "variance_components", "VarianceResult"]


@printed_by_presentation  # its printing: presentation.reprs
class VarianceResult(dict):
    """A dict of the statistics, with ``.components`` (the variances used) and ``.note``.

    ``note`` is ``None`` or a sentence on why the numbers should be read with care; ``title``
    names the statistic (``"R2 for Mixed Models"``); :meth:`to_frame` is one row of them.
    """

    def __init__(self, values: dict, components: dict, note: str | None = None, title: str | None = None):
        super().__init__(values)
        self.components = components
        self.note = note
        self.title = title

    def to_frame(self) -> pd.DataFrame:
        """One row: the statistics, then the variance components they were computed from."""
        return pd.DataFrame([{**self, **self.components}])

    def __repr__(self) -> str:
        body = ", ".join(f"{k!r}: {v:.6g}" if isinstance(v, float) else f"{k!r}: {v!r}"
                         for k, v in self.items())
        return "{" + body + "}" + (f"  # note: {self.note}" if self.note else "")


# --- the variance components -----------------------------------------------------------------

def _fixed_matrix_with_intercept(model) -> tuple[np.ndarray, list[str]]:
    X = np.asarray(model.design.X, dtype=float)
    names = list(model.design.fixef_names)
    if "(Intercept)" not in names:
        # as insight: a model without an intercept still has random intercepts to weigh
        X = np.column_stack([np.ones(X.shape[0]), X])
        names = ["(Intercept)"] + names
    return X, names


def _term_random_variance(model, X: np.ndarray, names: list[str], term, cov: np.ndarray) -> float:
    """Johnson's (2014) mean of z_iᵀ Σ z_i over the rows, z taken from X's columns (as insight)."""
    keep = [j for j, c in enumerate(term.columns) if c in names]
    if not keep:
        return 0.0
    Z = X[:, [names.index(term.columns[j]) for j in keep]]
    sigma = cov[np.ix_(keep, keep)]
    return float(np.einsum("ij,jk,ik->", Z, sigma, Z) / Z.shape[0])


def _slopes_not_in_fixed(model, names: list[str]) -> list[str]:
    missing = []
    for term in model.design.terms:
        for col in term.columns:
            if col != "(Intercept)" and col not in names and col not in missing:
                missing.append(col)
    return missing


def _has_random_slopes(model) -> bool:
    return any(c != "(Intercept)" for t in model.design.terms for c in t.columns)


def _mean_trials(model) -> float:
    """Mean number of binomial trials of a ``cbind(successes, failures)`` response, else 1 (as
    insight): the model's trials are ones for other responses."""
    return float(np.mean(model.trials))


def _null_formula(model) -> str:
    spec = model.design.formula
    parts = ["1"]
    for term in spec.random:
        parts.append(str(term) if term.correlated else f"({term.lhs} || {term.group})")
    return f"{spec.response} ~ " + " + ".join(parts)


def _fit_null_glmm(model):
    """The intercept-only GLMM with the same random effects (insight's ``null_model``): a model
    of ``model``'s kind on the null design, with the same response, weights and offsets."""
    design = model.design
    store = Response()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        null_design = build_design(_null_formula(model), design.frame, weights=design.weights,
                                   offset=design.offset,  # formula and argument offsets together
                                   response=response_parser(model.family, store),
                                   check_levels=False,
                                   expand_doublebar=design.extra.get("expand_doublebar", "lme4"))
        if store.trials is not None:
            null_design = dataclasses.replace(null_design, trials=store.trials)
        return model.with_design(null_design).fit()


def _random_variance(model, X, names, obs_level: bool | None = None) -> float:
    n = X.shape[0]
    total = 0.0
    for term, cov in zip(model.design.terms, model.term_covariances()):
        is_obs = term.nlevels == n
        if obs_level is None or is_obs == obs_level:
            total += _term_random_variance(model, X, names, term, cov)
    return total


def _distribution_variance(model, convention: str, null_model) -> float:
    """The family's latent-scale observation variance; the intercept-only model's mean where the
    family needs it (Poisson with the log link)."""
    fam = model.family
    null_mean = None
    if fam.latent_variance_needs_null_mean:
        null = null_model if null_model is not None else _fit_null_glmm(model)
        beta0 = float(null.beta[0])
        if convention == "current":
            Xn, nn = _fixed_matrix_with_intercept(null)
            beta0 += 0.5 * _random_variance(null, Xn, nn, obs_level=False)
        null_mean = float(np.exp(beta0))
        if convention == "classic" and null_mean < 6:
            warnings.warn(
                f"the null model's mean count is {null_mean:.2g}: the lognormal approximation of "
                "the Poisson variance is unreliable for means below about 6, so R² and the ICC "
                "may be off. Read them as rough.", MixedModelsWarning, stacklevel=4)
    return fam.latent_variance(convention=convention, sigma=float(model.sigma),
                               mean_trials=_mean_trials(model), null_mean=null_mean)


def variance_components(model, *, convention: Literal["classic", "current"] = "classic",
                        null_model=None) -> dict[str, float]:
    """The variances behind :func:`r2` and :func:`icc`, as ``insight::get_variance``.

    Parameters
    ----------
    model : fitted LMM or GLMM
    convention : {"classic", "current"}
        For GLMMs only (identical for LMMs). ``"classic"``, as performance ≤ 0.11 (insight
        < 0.20): π²/3 (logit), 1 (probit) for binomial models, and the Poisson variance
        ``log(1 + 1/λ)`` with ``λ = exp(β₀)`` of the intercept-only model. ``"current"``, as
        performance ≥ 0.12: the binomial variance is divided by the mean number of trials for
        ``cbind()`` responses, and ``λ = exp(β₀ + σ²_null/2)`` (Nakagawa et al. 2017, eq. 5.8).
    null_model : fitted GLMM, optional
        The intercept-only model with the same random effects (Poisson only); refit if absent.

    Returns
    -------
    dict
        ``var_fixed`` (variance of Xβ, n − 1 denominator), ``var_random`` (Johnson's mean
        random-effect variance, observation-level terms excluded), ``var_residual``
        (``var_distribution + var_dispersion``), ``var_distribution`` and ``var_dispersion``
        (the variance of observation-level random effects in GLMMs; 0 for LMMs).
    """
    if convention not in ("classic", "current"):
        raise ValueError(f"convention must be 'classic' or 'current', got {convention!r}")
    if not model.design.terms:
        raise ValueError("the model has no random effects; use an ordinary R² instead")
    X, names = _fixed_matrix_with_intercept(model)
    eta_fixed = np.asarray(model.design.X, dtype=float) @ np.asarray(model.fixef, dtype=float)
    var_fixed = float(np.var(eta_fixed, ddof=1)) if len(eta_fixed) > 1 else 0.0
    var_random = _random_variance(model, X, names, obs_level=False)
    # observation-level random effects are over-dispersion where the family has no scale
    var_dispersion = 0.0 if model.has_scale else _random_variance(model, X, names, obs_level=True)
    var_distribution = _distribution_variance(model, convention, null_model)
    return {"var_fixed": var_fixed, "var_random": var_random,
            "var_residual": var_distribution + var_dispersion,
            "var_distribution": var_distribution, "var_dispersion": var_dispersion}


def _warn_common(model, names: list[str], what: str) -> str | None:
    notes = []
    missing = _slopes_not_in_fixed(model, names)
    if missing:
        msg = (f"random slopes ({', '.join(missing)}) are not fixed effects; their variance is left "
               f"out of the {what}, as performance does. Add them as fixed effects (the usual model) "
               "to account for it.")
        warnings.warn(msg, MixedModelsWarning, stacklevel=3)
        notes.append(msg)
    if getattr(model, "is_singular", False):
        msg = (f"singular fit: some random-effect variances are ~0 or a correlation is ±1; the {what} "
               "uses the estimates as they are (performance returns NA for the conditional part). "
               "Simplify the random effects before reading it.")
        warnings.warn(msg, SingularFitWarning, stacklevel=3)
        notes.append(msg)
    return " ".join(notes) or None


def r2(model, *, convention: Literal["classic", "current"] = "classic",
       null_model=None) -> VarianceResult:
    """Marginal and conditional R² of a mixed model (Nakagawa & Schielzeth 2013; Johnson 2014).

    ``marginal = σ²_f / (σ²_f + σ²_r + σ²_ε)`` is the share of the (latent-scale) variance that
    the fixed effects account for; ``conditional = (σ²_f + σ²_r) / (σ²_f + σ²_r + σ²_ε)`` adds
    the random effects. With random slopes σ²_r is the mean over observations of ``z_iᵀ Σ z_i``
    (Johnson 2014), so it depends on where the slope covariates are centred. Same numbers as
    R's ``performance::r2_nakagawa``.

    Parameters
    ----------
    model : fitted LMM, or binomial (logit/probit/cloglog) / Poisson (log/sqrt) GLMM
    convention : {"classic", "current"}
        GLMM conventions, see :func:`variance_components`.
    null_model : fitted GLMM, optional
        Intercept-only model for the Poisson variance; refit when not given.

    Returns
    -------
    VarianceResult
        ``{"marginal": ..., "conditional": ...}`` with ``.components`` and ``.note``.

    Warns
    -----
    SingularFitWarning
        For a singular fit: the values are computed from the estimates as they are.
    MixedModelsWarning
        When random slopes are not also fixed effects.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> from mixedmodels.postestimation.variance import r2
    >>> m = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
    >>> {k: round(v, 4) for k, v in r2(m).items()}
    {'marginal': 0.2787, 'conditional': 0.7992}
    """
    comp = variance_components(model, convention=convention, null_model=null_model)
    _, names = _fixed_matrix_with_intercept(model)
    note = _warn_common(model, names, "R²")
    total = comp["var_fixed"] + comp["var_random"] + comp["var_residual"]
    return VarianceResult({"marginal": comp["var_fixed"] / total,
                           "conditional": (comp["var_fixed"] + comp["var_random"]) / total},
                          comp, note, title="R2 for Mixed Models")


def icc(model, *, convention: Literal["classic", "current"] = "classic",
        null_model=None) -> VarianceResult:
    """Intraclass correlation, adjusted and unadjusted, as R's ``performance::icc``.

    ``adjusted = σ²_r / (σ²_r + σ²_ε)``: the share of the variance left after the fixed effects
    that lies between groups. ``unadjusted = σ²_r / (σ²_f + σ²_r + σ²_ε)``. With several
    random-effect terms σ²_r is their sum, so this is the correlation of two observations that
    share every grouping level.

    The ICC is the correlation between two observations of one group only for a random-intercept
    LMM. With random slopes that correlation depends on the covariate values, and σ²_r is an
    average over the observed ones; for GLMMs the ICC is on the latent scale. Both cases warn
    (:class:`~mixedmodels.exceptions.MixedModelsWarning`) and set ``.note``.

    Parameters
    ----------
    model : fitted LMM or GLMM
    convention, null_model
        As :func:`r2`.

    Returns
    -------
    VarianceResult
        ``{"adjusted": ..., "unadjusted": ...}`` with ``.components`` and ``.note``.
    """
    comp = variance_components(model, convention=convention, null_model=null_model)
    _, names = _fixed_matrix_with_intercept(model)
    notes = []
    base = _warn_common(model, names, "ICC")
    if base:
        notes.append(base)
    if _has_random_slopes(model):
        msg = ("the model has random slopes: the ICC then depends on the covariate values and the "
               "number reported averages over the observed ones, so it is not the correlation "
               "within a group. Report the variance components (m.varcorr) instead.")
        warnings.warn(msg, MixedModelsWarning, stacklevel=2)
        notes.append(msg)
    if not model.family.linear:
        msg = (f"for a {model.family.label} GLMM the ICC is on the latent (link) scale with a fixed "
               "distribution-specific variance; it is not the correlation of the observed "
               "responses.")
        warnings.warn(msg, MixedModelsWarning, stacklevel=2)
        notes.append(msg)
    vr, vres, vf = comp["var_random"], comp["var_residual"], comp["var_fixed"]
    return VarianceResult({"adjusted": vr / (vr + vres), "unadjusted": vr / (vf + vr + vres)},
                          comp, " ".join(notes) or None, title="Intraclass Correlation Coefficient")


# --- R²β (Edwards et al. 2008) ------------------------------------------------------------------

def _fixed_term_columns(model) -> list[tuple[str, list[int]]]:
    """(term label, indices into the model's fixed effects) for each term of the fixed formula."""
    design = model.design
    spec = design.fixed_spec
    names = list(design.fixef_names)
    cols = list(spec.column_names)
    out = []
    for term, idx in spec.term_indices.items():
        label = str(term)
        if label == "1":
            continue
        kept = [names.index(r_column_name(cols[i])) for i in idx if r_column_name(cols[i]) in names]
        if kept:
            out.append((label, kept))
    return out


def _cluster_blocks(model) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the last grouping factor (fewest levels, as lme4's flist) and its block sizes."""
    term = model.design.terms[-1]
    codes = term.matrix.codes
    counts = np.bincount(codes, minlength=term.nlevels)
    return codes, counts[counts > 0]


def _sgv(model) -> float:
    """Geometric mean over clusters of det(V_c)^(1/n_c), V = σ²(ZΛΛᵀZᵀ + W⁻¹) (r2glmm's SGV).

    Each block's determinant comes from the matrix determinant lemma on the columns of ZΛ that
    the block touches, so no n×n matrix is formed.
    """
    design = model.design
    n = design.nobs
    s2 = float(model.sigma) ** 2
    w = model.prior_weights
    codes, _ = _cluster_blocks(model)
    # ZΛ as a sparse n × q matrix
    blocks = []
    for term, T in zip(design.terms, model.factor.split_theta(model.theta)):
        zl = term.matrix.values @ T  # row i of Z_t Λ_t for its level
        l = term.ncols
        rows = np.repeat(np.arange(n), l)
        cols = (term.matrix.codes[:, None] * l + np.arange(l)[None, :]).ravel()
        blocks.append(sp.csr_matrix((zl.ravel(), (rows, cols)), shape=(n, term.nlevels * l)))
    ZL = sp.hstack(blocks).tocsr()
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    logs = []
    for rows in np.split(order, bounds):
        sub = ZL[rows]
        used = np.unique(sub.indices)
        A = sub[:, used].toarray()
        wr = w[rows]
        M = np.eye(len(used)) + (A * wr[:, None]).T @ A
        sign, logdet = np.linalg.slogdet(M)
        # log det(σ²(W⁻¹ + AAᵀ)) = m log σ² − Σ log w + log det(I + AᵀWA)
        ld = len(rows) * np.log(s2) - np.sum(np.log(wr)) + logdet
        logs.append(ld / len(rows) if sign > 0 else np.nan)
    logs = np.asarray(logs)
    bad = ~np.isfinite(logs)
    if bad.any():
        warnings.warn("some cluster covariance determinants are not finite and were replaced by the "
                      "largest finite one (as r2glmm); consider rescaling the response.",
                      MixedModelsWarning, stacklevel=3)
        logs[bad] = np.nanmax(logs)
    return float(np.exp(np.mean(logs)))


def _ncbeta_ppf(q: float, a: float, b: float, ncp: float) -> float:
    """Quantile of the noncentral beta via the noncentral F: X = v1 F / (v1 F + v2)."""
    v1, v2 = 2 * a, 2 * b
    f = stats.ncf.ppf(q, v1, v2, ncp) if ncp > 0 else stats.f.ppf(q, v1, v2)
    return float(v1 * f / (v1 * f + v2))


def r2_beta(model, *, method: Literal["sgv", "nsj"] = "sgv", partial: bool = True,
            level: float = 0.95) -> pd.DataFrame:
    """R²β for the fixed effects as a whole and per term (Edwards et al. 2008), as ``r2glmm``.

    R²β = (ν₁/ν₂)F / (1 + (ν₁/ν₂)F), where F is the Wald statistic for the tested fixed
    effects (all but the intercept for ``"Model"``; one term's columns for a semi-partial row)
    computed with the marginal covariance V̂ replaced by a scalar summary: its standardized
    generalized variance (``"sgv"``, Jaeger et al. 2017; the geometric mean over clusters of
    det(V̂_c)^(1/n_c), clusters being the grouping factor with the fewest levels) or its mean
    diagonal (``"nsj"``). Confidence limits use the noncentral beta distribution.

    Semi-partial R²β values need not add up to the model's R²β; they measure each term's share
    given the others, in the metric of the summarised covariance.

    Parameters
    ----------
    model : fitted LMM
    method : {"sgv", "nsj"}
        How V̂ is summarised (r2glmm's default is ``"sgv"``).
    partial : bool, default True
        Also one row per fixed-effect term.
    level : float, default 0.95
        Confidence level of the limits.

    Returns
    -------
    pandas.DataFrame
        Index ``Effect`` (``"Model"`` and term labels), columns ``Rsq``, ``lower.CL``,
        ``upper.CL``, ``F``, ``v1``, ``v2``, ``ncp``; sorted by ``Rsq``, largest first.

    Notes
    -----
    r2glmm cuts V̂ into consecutive diagonal blocks by cluster size, which matches the clusters
    only when the rows are sorted by cluster; here the blocks are the clusters themselves, so
    the result does not depend on the row order.
    """
    if not model.family.linear:
        raise NotImplementedError("r2_beta is implemented for linear mixed models; r2glmm uses PQL "
                                  "fits for GLMMs, which this package does not provide")
    method = method.lower()
    if method not in ("sgv", "nsj"):
        raise ValueError(f"method must be 'sgv' or 'nsj', got {method!r}")
    design = model.design
    X = np.asarray(design.X, dtype=float)
    n, p = X.shape
    beta = np.asarray(model.fixef, dtype=float)
    if p < 2:
        raise ValueError("r2_beta needs at least one fixed effect besides the intercept")
    if design.fixef_names[0] != "(Intercept)":
        raise ValueError("r2_beta needs a model with an intercept (its first fixed effect)")
    _, sizes = _cluster_blocks(model)
    if method == "sgv":
        sighat = _sgv(model)
        mobs = float(np.mean(sizes))
        m = len(sizes) - mobs - 1
        ddf = n - 1.0 if m <= 0 else mobs * (m + 1) + (mobs - 1) * (mobs - 2) / 2
    else:
        s2 = float(model.sigma) ** 2
        w = model.prior_weights
        diag_zgz = np.zeros(n)
        for term, cov in zip(design.terms, model.term_covariances()):
            v = term.matrix.values
            diag_zgz += np.einsum("ij,jk,ik->i", v, cov, v)
        sighat = float(np.mean(diag_zgz + s2 / w))
        ddf = n - 1.0
    xtx_inv = np.linalg.inv(X.T @ X)
    contrasts = [("Model", list(range(1, p)))]
    if partial:
        contrasts += _fixed_term_columns(model)
    rows = []
    alpha = 1.0 - level
    for label, idx in contrasts:
        C = np.zeros((len(idx), p))
        C[np.arange(len(idx)), idx] = 1.0
        cb = C @ beta
        denom = sighat * (C @ xtx_inv @ C.T)
        ndf = len(idx)
        wald = float(cb @ np.linalg.solve(denom, cb) / ndf)
        ss = ndf / ddf * wald
        ncp = wald * ndf
        rows.append({"Effect": label, "Rsq": ss / (1 + ss),
                     "upper.CL": _ncbeta_ppf(1 - alpha / 2, ndf / 2, ddf / 2, ncp),
                     "lower.CL": _ncbeta_ppf(alpha / 2, ndf / 2, ddf / 2, ncp),
                     "F": wald, "v1": float(ndf), "v2": float(ddf), "ncp": ncp})
    table = pd.DataFrame(rows).set_index("Effect")
    return table.sort_values("Rsq", ascending=False, kind="stable")
