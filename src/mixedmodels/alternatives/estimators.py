"""Alternatives to mixed models for clustered data, and a side-by-side comparison.

- :func:`cluster_robust`: OLS, or a GLM through ``family=``, with cluster-robust
  (sandwich) standard errors CR0, CR1, CR2 (Bell-McCaffrey) or CR3; one- or two-way clustering.
- :func:`fixed_effects`: the within (entity-demeaned) estimator with classical and clustered SEs.
- :func:`gee`: generalized estimating equations (statsmodels underneath, with geepack's
  moment estimators for the working correlation).
- :func:`compare_approaches`: OLS, cluster-robust OLS, within, GEE and the LMM in one table
  and one plot.

Numbers follow R: sandwich's ``vcovCL``, plm's ``vcovHC(method="arellano")`` and geepack's
``geeglm``.
"""

from __future__ import annotations

import re
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import linalg

from ..core.lazy import lazy_import
from ..exceptions import MissingDataWarning, RankDeficiencyWarning
from ..models.family import Family, get_family

stats = lazy_import("scipy.stats")

__all__ = [
    "cluster_robust",
    "fixed_effects",
    "gee",
    "AlternativeResult",
    "ClusterRobustResult",
    "FixedEffectsResult",
    "GEEResult",
    "TextSummary",
]

_CR_TYPES = ("CR0", "CR1", "CR2", "CR3")
_COV_STRUCTS = ("exchangeable", "ar1", "independence")


# --------------------------------------------------------------------------- helpers


def r_style_name(name: str) -> str:
    """formulaic's column name to R's: ``Intercept`` -> ``(Intercept)``, ``sex[T.male]`` -> ``sexmale``.

    Interactions keep ``:`` between their parts (``occasion:sex[T.male]`` -> ``occasion:sexmale``).
    """
    if name == "Intercept":
        return "(Intercept)"
    return ":".join(re.sub(r"^(.*)\[(?:T\.)?(.*)\]$", r"\1\2", part) for part in name.split(":"))


class TextSummary(str):
    """Text of a summary; shows as plain text (not a quoted string) at the prompt."""

    def __repr__(self) -> str:
        return str(self)


def _canonical_family(family: str | Family) -> Family:
    """The GLM family of the alternatives: gaussian, binomial or poisson with its canonical link
    (:mod:`mixedmodels.models.family`, the families the mixed models use)."""
    fam = get_family(family) if isinstance(family, (str, Family)) else None
    if fam is None or not fam.canonical_for_alternatives:
        raise ValueError(f"family must be 'gaussian', 'binomial' or 'poisson' with its canonical link, "
                         f"got {family!r}")
    return fam


def _check_columns(data: pd.DataFrame, roles: dict[str, str]) -> None:
    for name, role in roles.items():
        for part in name.split(":"):
            if part not in data.columns:
                raise ValueError(f"{role} column {part!r} not found in data")


def _response_values(data: pd.DataFrame, response: str, lhs: pd.DataFrame | None) -> np.ndarray:
    """The response as floats; a two-level factor or a boolean becomes 0/1 (second level = 1), as in R."""
    if response in data.columns:
        col = data[response]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == bool or not pd.api.types.is_numeric_dtype(col):
            levels = (list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype)
                      else sorted(col.dropna().unique()))
            if len(levels) != 2:
                raise ValueError(f"response column {response!r} is not numeric and does not have two levels")
            return (col == levels[1]).to_numpy(dtype=float)
        return col.to_numpy(dtype=float)
    if lhs is None or lhs.shape[1] != 1:
        raise ValueError(f"response {response!r} must evaluate to one numeric column")
    return lhs.iloc[:, 0].to_numpy(dtype=float)


def _model_frame(formula: str, data: pd.DataFrame, extra: dict[str, str] | None = None):
    """Response, R-named design matrix and the rows used (complete cases of every variable).

    ``extra`` maps the grouping columns the caller needs (cluster, entity, time) to their role,
    for error messages; rows missing any of them are dropped too.

    Returns
    -------
    y : ndarray
    X : DataFrame
    rows : DataFrame
        ``data`` restricted to the rows the model uses (for cluster, entity and time columns).
    response : str
    """
    from formulaic import model_matrix

    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if "|" in formula:
        raise ValueError(f"{formula!r} has a random-effects term; these methods take a fixed-effects formula")
    if "~" not in formula:
        raise ValueError(f"formula {formula!r} needs a response: 'y ~ x'")
    response = formula.split("~", 1)[0].strip()
    extra = extra or {}
    extra_cols = [p for name in extra for p in name.split(":")]
    _check_columns(data, extra)
    n_given = len(data)
    # Rows missing a cluster/entity/time value cannot be assigned: drop them before formulaic does its own.
    if extra_cols:
        data = data.loc[data[extra_cols].notna().all(axis=1)]
    mm = model_matrix(formula, data)
    rhs = pd.DataFrame(np.asarray(mm.rhs, dtype=float), index=mm.rhs.index,
                       columns=[r_style_name(c) for c in mm.rhs.columns])
    rows = data.loc[rhs.index]
    y = _response_values(rows, response, getattr(mm, "lhs", None))
    if n_given > len(rows):
        warnings.warn(f"{n_given - len(rows)} row(s) with missing values dropped (complete cases only; see "
                      "mm.missing_report and mm.impute to look at or fill the gaps)", MissingDataWarning, stacklevel=3)
    return y, rhs, rows, response


def _group_codes(rows: pd.DataFrame, name: str, role: str = "cluster") -> tuple[np.ndarray, int]:
    """Integer codes 0..G-1 of a grouping column (``a:b`` for an interaction); errors name the column."""
    parts = name.split(":")
    keys = rows[parts[0]].astype(str) if len(parts) == 1 else rows[parts].astype(str).agg("\x1f".join, axis=1)
    codes, uniques = pd.factorize(keys, sort=True)
    if len(uniques) < 2:
        lvl = f" ({uniques[0]!r})" if len(uniques) else ""
        need = ("clustered standard errors need at least two clusters" if role in ("cluster", "groups")
                else "it needs at least two")
        raise ValueError(f"{role} column {name!r} has only one level{lvl}; {need}")
    return codes.astype(np.intp), len(uniques)


def _check_rank(X: np.ndarray, names: Sequence[str]) -> None:
    _, r, piv = linalg.qr(X, mode="economic", pivoting=True)
    d = np.abs(np.diag(r))
    rank = int(np.sum(d > d[0] * 1e-10)) if d.size else 0
    if rank < X.shape[1]:
        aliased = [names[j] for j in piv[rank:]]
        raise ValueError(f"design matrix is rank deficient; aliased column(s): {', '.join(aliased)}")


def _irls(y: np.ndarray, X: np.ndarray, family: Family, maxit: int = 100, tol: float = 1e-12):
    """GLM by iteratively reweighted least squares (exact least squares for the Gaussian family).

    Returns the coefficients, the means, the working weights and the working residuals.
    """
    if family.linear:
        beta = linalg.lstsq(X, y)[0]
        mu = X @ beta
        return beta, mu, np.ones_like(y), y - mu
    ones = np.ones_like(y)
    mu = family.mustart(y, ones)  # R's starting values
    link = family.link
    eta = link.link(mu)
    dev_old = np.inf
    for _ in range(maxit):
        g = link.mu_eta(eta)
        w = g**2 / family.variance(mu)
        z = eta + (y - mu) / g
        sw = np.sqrt(w)
        beta = linalg.lstsq(X * sw[:, None], z * sw)[0]
        eta = X @ beta
        mu = link.inverse(eta)
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = float(np.sum(family.dev_resid(y, mu, ones)))
        if abs(dev - dev_old) / (abs(dev) + 0.1) < tol:
            break
        dev_old = dev
    g = link.mu_eta(eta)
    w = g**2 / family.variance(mu)
    return beta, mu, w, (y - mu) / g


def _cluster_meat(Xw: np.ndarray, ew: np.ndarray, codes: np.ndarray, n_groups: int, kind: str,
                  bread: np.ndarray) -> np.ndarray:
    """Sum over clusters of U_g U_gᵀ, U_g = X̃_gᵀ ẽ_g, with the CR2/CR3 residual adjustments.

    ``Xw`` and ``ew`` are the design and working residuals times the square root of the working
    weights (identity for OLS), so that the hat-matrix blocks are symmetric.
    """
    if kind in ("CR2", "CR3"):
        ew = ew.copy()
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        for idx in np.split(order, bounds):
            Xg = Xw[idx]
            M = np.eye(len(idx)) - Xg @ bread @ Xg.T
            vals, vecs = linalg.eigh(M)
            # A cluster-level dummy makes I - H_gg singular: use the pseudo-inverse (Bell & McCaffrey).
            keep = vals > 1e-12
            power = -0.5 if kind == "CR2" else -1.0
            inv = np.zeros_like(vals)
            inv[keep] = vals[keep] ** power
            ew[idx] = (vecs * inv) @ (vecs.T @ ew[idx])
    scores = Xw * ew[:, None]
    U = np.zeros((n_groups, Xw.shape[1]))
    np.add.at(U, codes, scores)
    return U.T @ U


def _multiway_groups(rows: pd.DataFrame, clusters: Sequence[str]) -> list[tuple[int, np.ndarray, int]]:
    """(sign, codes, G) for each term of the inclusion-exclusion sum of multiway clustering."""
    codes = [_group_codes(rows, c) for c in clusters]
    if len(codes) == 1:
        return [(1, codes[0][0], codes[0][1])]
    if len(codes) > 2:
        raise ValueError("at most two clustering columns are supported")
    (c1, g1), (c2, g2) = codes
    both, uniq = pd.factorize(c1.astype(np.int64) * g2 + c2)
    return [(1, c1, g1), (1, c2, g2), (-1, both.astype(np.intp), len(uniq))]


def _pvalues(tvals: np.ndarray, df: float | None) -> np.ndarray:
    if df is None or not np.isfinite(df):
        return 2 * stats.norm.sf(np.abs(tvals))
    return 2 * stats.t.sf(np.abs(tvals), df)


# --------------------------------------------------------------------------- results


class AlternativeResult:
    """Coefficients and their covariance from one of the non-mixed-model approaches.

    Attributes
    ----------
    params : pandas.Series
        Estimates, indexed by R-style names.
    vcov : pandas.DataFrame
        Covariance of the estimates used for ``Std. Error`` and the tests.
    df : float or None
        Degrees of freedom of the t tests; None for z (Wald) tests.
    method : str
        What was fitted, for the summary.
    nobs : int
    notes : list of str
    """

    def __init__(self, params: pd.Series, vcov: pd.DataFrame, *, method: str, nobs: int,
                 df: float | None = None, notes: Sequence[str] = (), info: Sequence[str] = ()):
        self.params = params
        self.vcov = vcov
        self.method = method
        self.nobs = int(nobs)
        self.df = df
        self.notes = list(notes)
        self._info = list(info)

    @property
    def bse(self) -> pd.Series:
        """Standard errors."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.params.index)

    def coef_table(self) -> pd.DataFrame:
        """Estimates, standard errors, t (or z) statistics and two-sided p-values.

        Returns
        -------
        pandas.DataFrame
            Columns ``Estimate``, ``Std. Error``, ``t value``/``z value`` and ``Pr(>|t|)``/``Pr(>|z|)``.
        """
        se = self.bse.to_numpy()
        est = self.params.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            tv = est / se
        s = "z" if self.df is None else "t"
        return pd.DataFrame({"Estimate": est, "Std. Error": se, f"{s} value": tv,
                             f"Pr(>|{s}|)": _pvalues(tv, self.df)}, index=self.params.index)

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        """Wald intervals from the t (or normal) quantile."""
        q = stats.norm.ppf(0.5 + level / 2) if self.df is None else stats.t.ppf(0.5 + level / 2, self.df)
        se = self.bse
        return pd.DataFrame({"lower": self.params - q * se, "upper": self.params + q * se})

    def summary(self) -> TextSummary:
        """A printable summary: the method, the data sizes and the coefficient table."""
        table = self.coef_table()
        lines = [self.method, f"Number of observations: {self.nobs}", *self._info, ""]
        lines.append(table.to_string(float_format=lambda v: f"{v:.6g}"))
        if self.df is not None:
            lines.append(f"t tests on {self.df:g} degrees of freedom")
        for note in self.notes:
            lines.append(f"Note: {note}")
        return TextSummary("\n".join(lines))

    def __repr__(self) -> str:
        return str(self.summary())


class ClusterRobustResult(AlternativeResult):
    """OLS/GLM with cluster-robust standard errors (see :func:`cluster_robust`).

    Extra attributes: ``type`` (CR0..CR3), ``cluster`` (column names), ``n_clusters``
    (dict column -> number of clusters), ``family``, ``vcov_classical`` (model-based covariance).
    """


class FixedEffectsResult(AlternativeResult):
    """The within estimator (see :func:`fixed_effects`).

    Extra attributes: ``vcov_classical``, ``vcov_cluster`` (None without ``cluster``),
    ``dropped`` (terms the within transformation removes: cluster-level terms), ``entity``,
    ``n_entities``, ``df_resid``.
    """

    @property
    def se_classical(self) -> pd.Series:
        """Classical standard errors, σ̂² (X̃ᵀX̃)⁻¹ with n - G - k residual df (plm's ``vcov``)."""
        return pd.Series(np.sqrt(np.diag(self.vcov_classical.to_numpy())), index=self.params.index)

    @property
    def se_cluster(self) -> pd.Series | None:
        """Clustered (Arellano) standard errors, or None without ``cluster``."""
        if self.vcov_cluster is None:
            return None
        return pd.Series(np.sqrt(np.diag(self.vcov_cluster.to_numpy())), index=self.params.index)


class GEEResult(AlternativeResult):
    """Generalized estimating equations (see :func:`gee`).

    Extra attributes: ``alpha`` (working-correlation parameter, None for independence),
    ``scale`` (dispersion, Σ Pearson residual² / N as in geepack), ``cov_struct``, ``family``,
    ``vcov_naive`` (model-based covariance), ``n_groups``, ``statsmodels_result``.
    """


# --------------------------------------------------------------------------- cluster_robust


def cluster_robust(formula: str, data: pd.DataFrame, cluster: str | Sequence[str], *,
                   type: str = "CR1", family: str = "gaussian") -> ClusterRobustResult:
    """OLS (or a GLM) with cluster-robust standard errors.

    Parameters
    ----------
    formula : str
        Fixed-effects formula, e.g. ``"gpa ~ occasion + sex"``.
    data : pandas.DataFrame
    cluster : str or list of two str
        Clustering column(s); two columns give two-way clustering (Cameron, Gelbach & Miller):
        V = V₁ + V₂ - V₁₂. ``"a:b"`` clusters on the combination of two columns.
    type : {"CR0", "CR1", "CR2", "CR3"}, default "CR1"
        CR0: Liang-Zeger, no small-sample factor. CR1: times G/(G-1) · (n-1)/(n-k), Stata's
        factor (R ``sandwich::vcovCL(type="HC1")``). CR2: Bell-McCaffrey, residuals of cluster g
        times (I - H_gg)^(-1/2) (``vcovCL(type="HC2")``). CR3: times (I - H_gg)⁻¹, the
        jackknife-like variant (``vcovCL(type="HC3")``).
    family : {"gaussian", "binomial", "poisson"}, default "gaussian"
        Gaussian is OLS; the others are GLMs with the canonical link fitted by IRLS. For GLMs, CR2
        and CR3 use the hat matrix of the weighted design W^½X (as clubSandwich does).

    Returns
    -------
    ClusterRobustResult
        t tests on G - 1 df for the Gaussian family (G: the smallest number of clusters), z tests
        for GLMs.

    Raises
    ------
    ValueError
        A cluster column that is absent or has a single level, an unknown type or family,
        a rank-deficient design.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> r = mm.cluster_robust("Reaction ~ Days", mm.load_dataset("sleepstudy"), cluster="Subject", type="CR2")
    >>> r.coef_table()["Std. Error"].round(4).tolist()
    [6.8246, 1.5458]
    """
    kind = str(type).upper()
    if kind not in _CR_TYPES:
        raise ValueError(f"type must be one of {', '.join(_CR_TYPES)}, got {type!r}")
    fam = _canonical_family(family)
    clusters = [cluster] if isinstance(cluster, str) else list(cluster)
    if not clusters:
        raise ValueError("cluster must name at least one column")
    y, Xdf, rows, response = _model_frame(formula, data, {c: "cluster" for c in clusters})
    fam.check_response(y, response)
    X = Xdf.to_numpy()
    names = list(Xdf.columns)
    _check_rank(X, names)
    n, k = X.shape
    terms = _multiway_groups(rows, clusters)

    beta, mu, w, r = _irls(y, X, fam)
    sw = np.sqrt(w)
    Xw, ew = X * sw[:, None], r * sw
    bread = linalg.inv(Xw.T @ Xw)  # (XᵀWX)⁻¹
    meat = np.zeros((k, k))
    for sign, codes, G in terms:
        adj = G / (G - 1) if kind == "CR1" else 1.0
        meat += sign * adj * _cluster_meat(Xw, ew, codes, G, kind, bread)
    if kind == "CR1":
        meat *= (n - 1) / (n - k)
    V = bread @ meat @ bread

    if fam.linear:
        sigma2 = float(ew @ ew) / (n - k)
        df = float(min(G for s, _, G in terms if s > 0) - 1)
    else:
        sigma2, df = 1.0, None
    n_clusters = {c: G for c, (_, _, G) in zip(clusters, terms)}
    label = "OLS" if fam.linear else f"GLM ({fam.name}, canonical link)"
    res = ClusterRobustResult(
        pd.Series(beta, index=names), pd.DataFrame(V, index=names, columns=names),
        method=f"{label} with cluster-robust ({kind}) standard errors: {formula}",
        nobs=n, df=df,
        info=["Clusters: " + ", ".join(f"{c} ({G})" for c, G in n_clusters.items())],
    )
    res.type, res.cluster, res.n_clusters, res.family = kind, clusters, n_clusters, fam.name
    res.vcov_classical = pd.DataFrame(sigma2 * bread, index=names, columns=names)
    res.fitted = pd.Series(mu, index=rows.index)
    return res


# --------------------------------------------------------------------------- fixed_effects


def _demean(a: np.ndarray, codes: np.ndarray, G: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=G).astype(float)
    sums = np.zeros((G,) + a.shape[1:])
    np.add.at(sums, codes, a)
    return a - (sums / counts.reshape((-1,) + (1,) * (a.ndim - 1)))[codes]


def fixed_effects(formula: str, data: pd.DataFrame, entity: str, *, cluster: str | None = None,
                  time: str | None = None, type: str = "HC1") -> FixedEffectsResult:
    """The within (fixed-effects) estimator: OLS on entity-demeaned data.

    Parameters
    ----------
    formula : str
        e.g. ``"gpa ~ occasion + job"``. The intercept and every term that does not vary
        within an entity (e.g. ``sex``) are removed by the demeaning; they are listed in
        ``result.dropped`` and a warning says so.
    data : pandas.DataFrame
    entity : str
        Column whose levels get their own intercepts (are demeaned out).
    cluster : str, optional
        Column to cluster on for the Arellano standard errors (usually ``entity``); then the
        table's ``Std. Error`` is the clustered one. Without it, the classical one.
    time : str, optional
        Column of time periods: adds time fixed effects (two-way within estimator). Their
        coefficients are estimated but not shown.
    type : {"HC0", "HC1"}, default "HC1"
        Small-sample factor of the clustered covariance: HC1 multiplies by n/(n - k) with k the
        number of shown coefficients, as plm's ``vcovHC(method="arellano", type="HC1")``.

    Returns
    -------
    FixedEffectsResult
        Classical SEs use σ̂² = RSS / (n - G - k) (plm's ``vcov``); t tests use n - G - k df for
        the classical SEs and C - 1 df (C clusters) for the clustered ones.

    Raises
    ------
    ValueError
        An entity or cluster column that is absent or has one level; no coefficient left.
    """
    if str(type).upper() not in ("HC0", "HC1"):
        raise ValueError(f"type must be 'HC0' or 'HC1', got {type!r}")
    extra = {n: r for n, r in ((time, "time"), (cluster, "cluster"), (entity, "entity")) if n}
    y, Xdf, rows, _ = _model_frame(formula, data, extra)
    ecodes, G = _group_codes(rows, entity, role="entity")
    shown = [c for c in Xdf.columns if c != "(Intercept)"]
    X = Xdf[shown].to_numpy()
    n = len(y)
    Xt = _demean(X, ecodes, G)
    yt = _demean(y, ecodes, G)

    # Terms constant within every entity vanish after demeaning: cluster-level terms.
    scale = np.sqrt((X**2).sum(axis=0)) + 1.0
    within_var = np.sqrt((Xt**2).sum(axis=0)) > 1e-9 * scale
    dropped = ["(Intercept)"] if "(Intercept)" in Xdf.columns else []
    dropped += [c for c, keep in zip(shown, within_var) if not keep]
    shown = [c for c, keep in zip(shown, within_var) if keep]
    Xt = Xt[:, within_var]
    if not shown:
        raise ValueError(f"no term of {formula!r} varies within {entity!r}; the within estimator has nothing "
                         "to estimate")
    if time is not None:
        tcodes, T = _group_codes(rows, time, role="time")
        D = np.zeros((n, T - 1))
        mask = tcodes > 0
        D[np.flatnonzero(mask), tcodes[mask] - 1] = 1.0
        Z = np.column_stack([Xt, _demean(D, ecodes, G)])
    else:
        Z = Xt
    # Terms aliased with others after demeaning (e.g. with the time effects) cannot be estimated either.
    _, rr, piv = linalg.qr(Z, mode="economic", pivoting=True)
    d = np.abs(np.diag(rr))
    rank = int(np.sum(d > d[0] * 1e-10))
    alias = set(piv[rank:].tolist())
    if alias:
        k_all = len(shown)
        dropped += [shown[j] for j in sorted(alias) if j < k_all]
        keep_cols = [j for j in range(Z.shape[1]) if j not in alias]
        shown = [shown[j] for j in range(k_all) if j not in alias]
        Z = Z[:, keep_cols]
    k = len(shown)
    bread = linalg.inv(Z.T @ Z)
    coef = bread @ (Z.T @ yt)
    e = yt - Z @ coef
    df_resid = n - G - Z.shape[1]
    sigma2 = float(e @ e) / df_resid
    Vc = (sigma2 * bread)[:k, :k]

    notes = []
    if [t for t in dropped if t != "(Intercept)"]:
        msg = (f"the within estimator cannot estimate {', '.join(t for t in dropped if t != '(Intercept)')}: "
               f"constant within each level of {entity!r} (or aliased after demeaning); dropped")
        warnings.warn(msg, RankDeficiencyWarning, stacklevel=2)
        notes.append(msg)
    Vcl = None
    df = float(df_resid)
    if cluster is not None:
        ccodes, C = _group_codes(rows, cluster)
        meat = _cluster_meat(Z, e, ccodes, C, "CR0", bread)
        Vcl = (bread @ meat @ bread)[:k, :k]
        if str(type).upper() == "HC1":
            Vcl *= n / (n - k)
        df = float(C - 1)
    names = shown
    vc_df = pd.DataFrame(Vc, index=names, columns=names)
    vcl_df = None if Vcl is None else pd.DataFrame(Vcl, index=names, columns=names)
    se_label = f"clustered by {cluster} (Arellano, {str(type).upper()})" if cluster else "classical"
    info = [f"Entities ({entity}): {G}", f"Standard errors: {se_label}"]
    if time is not None:
        info.append(f"Time effects: {time}")
    res = FixedEffectsResult(pd.Series(coef[:k], index=names), vcl_df if vcl_df is not None else vc_df,
                             method=f"Within (entity fixed-effects) estimator: {formula}", nobs=n, df=df,
                             notes=notes, info=info)
    res.vcov_classical, res.vcov_cluster = vc_df, vcl_df
    res.dropped, res.entity, res.n_entities, res.df_resid = dropped, entity, G, df_resid
    return res


# --------------------------------------------------------------------------- gee

_AR1_CLASS = None


def _geepack_ar1():
    """statsmodels CovStruct for AR(1) with geepack's estimator of α (built on first use).

    statsmodels' own ``Autoregressive`` regresses each residual on earlier ones (weighted least
    squares) and builds the correlation from index positions; geepack instead solves
    Σ_pairs (z_jk - α^|t_j - t_k|)² → min, with z_jk = r_j r_k / φ, r the Pearson residuals and
    φ = Σ r² / N. The two give different α and hence different β; on sleepstudy statsmodels'
    estimator even fails to bracket its minimum. This class does what geepack does.
    """
    global _AR1_CLASS
    if _AR1_CLASS is not None:
        return _AR1_CLASS
    from statsmodels.genmod.cov_struct import CovStruct

    class GeepackAR1(CovStruct):
        """AR(1) working correlation α^|t_j - t_k| with geepack's moment estimator of α."""

        def __init__(self):
            super().__init__()
            self.dep_params = 0.0

        def initialize(self, model):
            super().initialize(model)
            self._pairs = []
            for t in model.time_li:
                t = np.asarray(t, dtype=float)[:, 0]
                iu = np.triu_indices(len(t), 1)
                self._pairs.append((iu, np.abs(t[:, None] - t[None, :])[iu]))
            self._lags = np.concatenate([lag for _, lag in self._pairs]) if self._pairs else np.zeros(0)

        def update(self, params):
            m = self.model
            resid = []
            for i in range(m.num_group):
                mu, _ = m.cached_means[i]
                resid.append((m.endog_li[i] - mu) / np.sqrt(m.family.variance(mu)))
            phi = sum(float(r @ r) for r in resid) / sum(len(r) for r in resid)
            z = np.concatenate([np.outer(r, r)[iu] / phi for r, (iu, _) in zip(resid, self._pairs)])
            d = self._lags
            if z.size == 0:
                self.dep_params = 0.0
                return
            # Gauss-Newton on Σ (z - α^d)², started (as geepack's first step from 0) at the lag-1 mean.
            a = float(np.mean(z[d == 1])) if np.any(d == 1) else 0.0
            a = min(max(a, -0.99), 0.99)
            for _ in range(200):
                f = a**d
                J = d * np.where(d > 0, a ** np.maximum(d - 1, 0), 0.0)
                denom = float(J @ J)
                if denom == 0:
                    break
                new = float(np.clip(a + (J @ (z - f)) / denom, -0.999999, 0.999999))
                if abs(new - a) < 1e-14:
                    a = new
                    break
                a = new
            self.dep_params = a

        def covariance_matrix(self, expval, index):
            t = np.asarray(self.model.time_li[index], dtype=float)[:, 0]
            return self.dep_params ** np.abs(t[:, None] - t[None, :]), True

        def summary(self):
            return f"AR(1) working correlation (geepack estimator): alpha = {self.dep_params:.4f}"

    _AR1_CLASS = GeepackAR1
    return GeepackAR1


def gee(formula: str, data: pd.DataFrame, groups: str, *, time: str | None = None,
        cov_struct: str = "exchangeable", family: str = "gaussian", maxiter: int = 100) -> GEEResult:
    """Generalized estimating equations with robust (sandwich) standard errors, as R's geepack.

    Parameters
    ----------
    formula : str
        Fixed-effects formula, e.g. ``"gpa ~ occasion + sex"``.
    data : pandas.DataFrame
    groups : str
        Column of the clusters (geepack's ``id``).
    time : str, optional
        Column that orders the observations within a group; required for ``"ar1"``, where the
        working correlation of two observations is α^|t_j - t_k| (geepack with ``waves = time``;
        for consecutive integer times this is geepack's default).
    cov_struct : {"exchangeable", "ar1", "independence"}, default "exchangeable"
    family : {"gaussian", "binomial", "poisson"}, default "gaussian"
        Canonical links. The binomial response is 0/1 (or a two-level factor).
    maxiter : int, default 100

    Returns
    -------
    GEEResult
        ``Std. Error`` is the robust one (geepack's ``Std.err``); z (Wald) tests.

    Raises
    ------
    ImportError
        Without statsmodels (``pip install mixedmodels[alternatives]``).
    ValueError
        A missing ``time`` for AR(1) (absent, with missing values or repeated within a group),
        a groups column with one level, an unknown structure or family.

    Notes
    -----
    statsmodels' GEE does the fitting. Its exchangeable estimator equals geepack's when the
    scale uses N rather than N - p (``ddof_scale=0``: geepack's φ = Σ r²/N); its AR(1) estimator
    does not (see ``_geepack_ar1``), so AR(1) uses our own estimator of α inside statsmodels.
    """
    try:
        import statsmodels.api as sm
        from statsmodels.genmod import cov_struct as sm_cov
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("gee() needs statsmodels: pip install mixedmodels[alternatives]") from err

    cs = str(cov_struct).lower()
    if cs not in _COV_STRUCTS:
        raise ValueError(f"cov_struct must be one of {', '.join(_COV_STRUCTS)}, got {cov_struct!r}")
    fam = _canonical_family(family)
    if cs == "ar1":
        if time is None:
            raise ValueError("cov_struct='ar1' needs `time`: the column that orders observations within each group")
        if time not in data.columns:
            raise ValueError(f"time column {time!r} not found in data")
        if data[time].isna().any():
            raise ValueError(f"time column {time!r} has {int(data[time].isna().sum())} missing value(s); "
                             "AR(1) needs the time of every observation")
        if not pd.api.types.is_numeric_dtype(data[time]):
            raise ValueError(f"time column {time!r} must be numeric for AR(1) (distances are |t_j - t_k|)")
    extra = {n: r for n, r in ((time, "time"), (groups, "groups")) if n}
    y, Xdf, rows, response = _model_frame(formula, data, extra)
    fam.check_response(y, response)
    codes, G = _group_codes(rows, groups, role="groups")
    names = list(Xdf.columns)
    _check_rank(Xdf.to_numpy(), names)
    # geepack needs each cluster's rows together and in time order; statsmodels keeps row order within groups.
    if time is None:
        tvals = np.zeros(len(y))
    elif isinstance(rows[time].dtype, pd.CategoricalDtype):
        tvals = rows[time].cat.codes.to_numpy(dtype=float)  # only orders the rows (not AR(1))
    elif pd.api.types.is_numeric_dtype(rows[time]):
        tvals = rows[time].to_numpy(dtype=float)
    else:
        raise ValueError(f"time column {time!r} must be numeric or categorical")
    order = np.lexsort((tvals, codes))
    if cs == "ar1" and np.any((np.diff(codes[order]) == 0) & (np.diff(tvals[order]) == 0)):
        raise ValueError(f"time column {time!r} repeats a value within a group of {groups!r}; AR(1) needs "
                         "distinct times")
    structure = {"exchangeable": sm_cov.Exchangeable, "independence": sm_cov.Independence,
                 "ar1": _geepack_ar1()}[cs]()
    sm_family = fam.statsmodels_family()
    model = sm.GEE(y[order], Xdf.to_numpy()[order], groups=codes[order],
                   time=tvals[order] if time is not None else None,
                   family=sm_family, cov_struct=structure)
    fit = model.fit(maxiter=maxiter, ctol=1e-8, ddof_scale=0)
    if fit is None:
        raise RuntimeError("GEE did not converge (singular working covariance)")
    V = pd.DataFrame(np.asarray(fit.cov_robust), index=names, columns=names)
    resid = (y[order] - fit.fittedvalues) / np.sqrt(fam.variance(np.asarray(fit.fittedvalues)))
    alpha = None if cs == "independence" else float(np.squeeze(structure.dep_params))
    info = [f"Groups ({groups}): {G}", f"Family: {fam.name}; working correlation: {cs}"
            + (f" (alpha = {alpha:.6g})" if alpha is not None else ""),
            "Standard errors: robust (sandwich)"]
    res = GEEResult(pd.Series(np.asarray(fit.params), index=names), V,
                    method=f"GEE: {formula}", nobs=len(y), df=None, info=info)
    res.alpha, res.scale = alpha, float(np.mean(resid**2))
    res.cov_struct, res.family, res.n_groups = cs, fam.name, G
    res.vcov_naive = pd.DataFrame(np.asarray(fit.cov_naive), index=names, columns=names)
    res.statsmodels_result = fit
    return res
