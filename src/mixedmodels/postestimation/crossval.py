"""Cluster-aware cross-validation of mixed models: grouped k-fold, whole clusters held out.

Each fold refits every model on the training clusters, starting from the previous fold's θ
(the first fold starts from the full-data fit), and scores its predictions for the held-out
clusters. A held-out cluster is a *new level* of the factor it was held out by, so its random
effects are unknown: the prediction uses the fixed effects (and the conditional modes of any
other, crossed factor whose levels were seen in training), and the log score integrates the
unknown random effects out (their variance enters the predictive covariance).

The training designs are row subsets of the model's design (:meth:`ModelDesign.subset`: the
same model matrices, levels re-indexed), fit by a model of the same kind
(``model.with_design``), so no formula is evaluated again; the crossproducts and the fit are the
only work per fold.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from ..exceptions import ConvergenceWarning, DataError
from ..models.base import printed_by_presentation
from ..sources import is_streamed
from .compare import model_names
from .progress import Progress

__all__ = ["cross_validate", "CrossValidationResult", "grouped_folds"]

_LOG_2PI = np.log(2.0 * np.pi)


# --- folds --------------------------------------------------------------------------------------

def grouped_folds(labels: np.ndarray, folds: int, seed: int | None = 0) -> np.ndarray:
    """Assign each row to a fold so that every cluster lies in one fold, folds balanced by rows.

    Clusters are taken largest first (ties in random order) and each goes to the fold with the
    fewest rows so far.

    Parameters
    ----------
    labels : array-like
        Cluster label of each row.
    folds : int
        Number of folds (at least 2, at most the number of clusters).
    seed : int or None
        Seed of the random tie-breaking order.

    Returns
    -------
    ndarray of int
        Fold index (0..folds−1) of each row.
    """
    codes, uniques = pd.factorize(pd.Series(np.asarray(labels)), sort=False)
    if (codes < 0).any():
        raise DataError("the cluster variable has missing values; drop those rows first")
    m = len(uniques)
    if not 2 <= folds <= m:
        raise ValueError(f"folds must be between 2 and the number of clusters ({m}), got {folds}")
    sizes = np.bincount(codes, minlength=m)
    rng = np.random.default_rng(seed)
    order = rng.permutation(m)
    order = order[np.argsort(-sizes[order], kind="stable")]
    load = np.zeros(folds)
    cluster_fold = np.empty(m, dtype=np.int64)
    for c in order:
        f = int(np.argmin(load))
        cluster_fold[c] = f
        load[f] += sizes[c]
    return cluster_fold[codes]


def _cluster_labels(data: pd.DataFrame, by: str | list[str]) -> np.ndarray:
    parts = [by] if isinstance(by, str) else list(by)
    parts = [p.strip() for part in parts for p in part.split(":")]
    missing = [p for p in parts if p not in data.columns]
    if missing:
        raise DataError(f"by: column {missing[0]!r} is not in the data; the data has "
                        f"{', '.join(map(repr, list(data.columns)[:12]))}")
    if len(parts) == 1:
        return data[parts[0]].astype(str).to_numpy()
    return data[parts].astype(str).agg(":".join, axis=1).to_numpy()


# --- refits on a subset of rows --------------------------------------------------------------------

def _term_key(term) -> tuple:
    return (term.group, tuple(term.columns))


def _map_theta(theta: np.ndarray, from_terms: list, from_factor, to_terms: list) -> np.ndarray:
    """θ of one term order re-arranged for another order of the same terms."""
    pieces: dict[tuple, list[np.ndarray]] = {}
    pos = 0
    for term, size in zip(from_terms, from_factor.theta_sizes):
        pieces.setdefault(_term_key(term), []).append(theta[pos:pos + size])
        pos += size
    out = []
    for term in to_terms:
        out.append(pieces[_term_key(term)].pop(0))
    return np.concatenate(out) if out else np.zeros(0)


def _refit(model, design, start: np.ndarray, beta: np.ndarray | None, control):
    """A model of ``model``'s kind fit to ``design`` (a row subset of its design), started at
    θ (and, for GLMMs, β: with β given, lme4's first stage, θ with β inside PIRLS, is skipped)."""
    fit = model.with_design(design, control=control)
    return fit.fit(start={"theta": start, "beta": beta} if beta is not None else start)


def _predict_rows(fit, where, design, rows):
    """Linear predictor of ``rows`` of the full design from a fit on other rows.

    ``where`` is the :class:`~mixedmodels.spec.design.DesignSubset` of the fit's design.
    Returns the linear predictor and the relative-scale factor A (rows × q_new, sparse) of the
    random effects of levels unseen in training: their covariance is σ² A Aᵀ.
    """
    X = design.X[rows][:, where.keep_cols]
    eta = X @ fit.beta
    if design.offset is not None:
        eta = eta + design.offset[rows]
    b_all = fit.random_effects()
    Ts = fit.factor.split_theta(fit.theta)
    new_blocks = []
    # fit.design.terms are in the sub-design's order; `where.order` maps back to the full design's
    for k, (b, T) in enumerate(zip(b_all, Ts)):
        full_term = design.terms[where.order[k]]
        codes = full_term.matrix.codes[rows]
        vals = full_term.matrix.values[rows]
        used = where.used_levels[k]
        pos = np.searchsorted(used, codes)
        pos_clip = np.minimum(pos, len(used) - 1)
        known = used[pos_clip] == codes
        if known.any():
            eta[known] += np.einsum("ij,ij->i", vals[known], b[pos_clip[known]])
        if (~known).any():
            idx = np.flatnonzero(~known)
            _, new_codes = np.unique(codes[idx], return_inverse=True)
            zl = vals[idx] @ T          # row of Z Λ for the unseen level
            l = T.shape[0]
            ncode = int(new_codes.max()) + 1
            rr = np.repeat(idx, l)
            cc = (new_codes[:, None] * l + np.arange(l)[None, :]).ravel()
            new_blocks.append(sp.csr_matrix((zl.ravel(), (rr, cc)), shape=(len(rows), ncode * l)))
    A = sp.hstack(new_blocks).tocsr() if new_blocks else sp.csr_matrix((len(rows), 0))
    return eta, A


def _gaussian_log_score(resid: np.ndarray, sigma2: float, w: np.ndarray, A: sp.csr_matrix) -> float:
    """log N(resid; 0, σ²(W⁻¹ + AAᵀ)) by Woodbury, without forming the n × n covariance."""
    n = len(resid)
    wr = w * resid
    quad = float(resid @ wr)
    logdet = n * np.log(sigma2) - float(np.sum(np.log(w)))
    if A.shape[1]:
        M = (A.T @ sp.diags(w) @ A + sp.identity(A.shape[1])).tocsc()
        s = np.asarray(A.T @ wr).ravel()
        if A.shape[1] <= 4000:
            dense = M.toarray()
            chol = np.linalg.cholesky(dense)
            z = np.linalg.solve(chol, s)
            quad -= float(z @ z)
            logdet += 2.0 * float(np.sum(np.log(np.diag(chol))))
        else:
            lu = splu(M, diag_pivot_thresh=0.0, permc_spec="MMD_AT_PLUS_A")
            quad -= float(s @ lu.solve(s))
            logdet += float(np.sum(np.log(np.abs(lu.U.diagonal()))))
    return float(-0.5 * (n * _LOG_2PI + logdet + quad / sigma2))


def _glmm_log_score(fit, y, eta, A, weights, nodes: int = 20) -> float:
    """Σ_i log ∫ p(y_i | η_i + z) N(z; 0, v_i) dz (pointwise, Gauss-Hermite over unseen levels).

    ``weights`` are the total prior weights of the rows (the binomial trials); NaN for a family
    without a log density."""
    fam = fit.family
    v = np.asarray(A.multiply(A).sum(axis=1)).ravel() if A.shape[1] else np.zeros(len(y))
    x, wq = np.polynomial.hermite.hermgauss(nodes)
    etas = eta[:, None] + np.sqrt(2.0 * v)[:, None] * x[None, :]
    mu = np.asarray(fam.link.inverse(etas.ravel()), dtype=float).reshape(etas.shape)
    sigma = float(fit.sigma) if fit.has_scale else 1.0
    try:
        logp = fam.log_density(y, mu, trials=weights, weights=weights, sigma=sigma)
    except NotImplementedError:
        return float("nan")
    top = logp.max(axis=1, keepdims=True)
    return float(np.sum(top.ravel() + np.log(np.exp(logp - top) @ wq / np.sqrt(np.pi))))


# --- the result ---------------------------------------------------------------------------------

@printed_by_presentation  # its printing: presentation.reprs
@dataclasses.dataclass
class CrossValidationResult:
    """Per-fold scores (``folds``) and their summary (``summary``), one row per model.

    Attributes
    ----------
    folds : pandas.DataFrame
        One row per model and fold: ``model, fold, n_train, n_test, clusters_test, rmse, mae,
        log_score`` (total log predictive density of the held-out rows), ``nevals``, ``seconds``.
    summary : pandas.DataFrame
        Per model: ``rmse`` (pooled over all held-out rows), ``rmse_se`` (standard error over
        folds), ``mae``, ``log_score`` (sum over folds), ``log_score_per_obs``,
        ``d_log_score`` (difference to the best model) and its standard error over folds
        ``d_log_score_se``; sorted best (highest log score) first.
    by : str
        The factor whose clusters were held out.
    fold_of_row : pandas.Series
        The fold of each row of ``data``.
    """

    folds: pd.DataFrame
    summary: pd.DataFrame
    by: str
    fold_of_row: pd.Series

    def __repr__(self) -> str:
        return (f"CrossValidationResult(by={self.by!r}, folds={self.folds['fold'].nunique()})\n"
                f"{self.summary.to_string()}")


def _as_named(models) -> tuple[list[str], list]:
    if isinstance(models, Mapping):
        return [str(k) for k in models], list(models.values())
    if hasattr(models, "design"):
        models = [models]
    items = list(models)
    return model_names(items, frame_depth=3), items


def _default_by(items: list) -> str:
    groups = None
    for m in items:
        g = {t.group for t in m.design.terms}
        groups = g if groups is None else groups & g
    if groups and len(groups) == 1:
        return next(iter(groups))
    raise ValueError("by= is needed: name the grouping factor whose clusters are held out "
                     f"(the models share {sorted(groups) if groups else 'no'} grouping factors)")


def cross_validate(models: Mapping | Iterable, data: pd.DataFrame, folds: int = 5,
                   by: str | list[str] | None = None, *, seed: int | None = 0,
                   control=None, progress: bool | str = "auto") -> CrossValidationResult:
    """Grouped k-fold cross-validation: whole clusters of ``by`` are held out together.

    Every model is refit on the training clusters of each fold, starting from the previous
    fold's θ, and predicts the held-out clusters. The held-out clusters are new levels of
    ``by``: their random effects are unknown, so the point prediction uses the fixed effects,
    plus the conditional modes of other (crossed) grouping factors whose levels occur in the
    training rows; the log score integrates the unknown random effects out. This measures
    prediction for *new* clusters, the question a marginal criterion (AIC, BIC) answers; the
    conditional AIC answers prediction for the same clusters.

    Parameters
    ----------
    models : dict or list of fitted models
        Fit to ``data`` (the rows each model used are found through its design's row index).
    data : pandas.DataFrame
        The data the models were fit to; it holds the ``by`` column(s).
    folds : int, default 5
    by : str or list of str, optional
        The grouping factor to hold out (``"a:b"`` or a list for a combination). Defaults to
        the models' only grouping factor; for crossed designs it must be given.
    seed : int or None, default 0
        Seed for the fold assignment (clusters are balanced by rows across folds).
    control : Control, optional
        Fit settings per fold (default: each model's own, without the singular-fit warning).
    progress : {"auto", True, False}, default "auto"
        A progress bar over the refits when the output is interactive and they will take more
        than about 2 s (:mod:`~mixedmodels.postestimation.progress`).

    Returns
    -------
    CrossValidationResult
        ``.folds`` (per model and fold) and ``.summary`` (per model).

    Notes
    -----
    For LMMs the log score is the joint Gaussian log density of each fold's held-out rows,
    with covariance σ²W⁻¹ plus the covariance of the unseen random effects, so within-cluster
    correlation counts. For GLMMs it is the pointwise log probability with the unseen random
    effects integrated out by Gauss-Hermite quadrature, and RMSE is on the response scale.
    Parameters (β, θ, σ and the seen conditional modes) are plugged in.
    """
    names, items = _as_named(models)
    if not items:
        raise ValueError("cross_validate needs at least one model")
    if is_streamed(data) or any(getattr(m.design, "origin", None) is not None for m in items):
        raise NotImplementedError(
            "cross_validate refits every model per fold and scores the held-out rows in memory, which is not "
            "implemented for data that stays in a source (path, DuckDB, polars lazy, Dask, Spark). What works "
            "at this scale: AIC/BIC and anova from the crossproducts; or cross-validate on a sample of whole "
            "clusters collected into pandas.")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    by_label = by if by is not None else _default_by(items)
    labels_all = pd.Series(_cluster_labels(data, by_label), index=data.index)
    fold_all = pd.Series(grouped_folds(labels_all.to_numpy(), folds, seed), index=data.index,
                         name="fold")
    rows_out = []
    bar = Progress(len(items) * folds, "cross_validate", progress)
    for name, model in zip(names, items):
        design = model.design
        index = design.frame.index
        if not index.isin(data.index).all() or index.has_duplicates:
            raise DataError(f"model {name!r} was not fit to this data: its rows are not rows of "
                            "`data` (pass the same DataFrame, with the same index, as to the fit)")
        fold_of = fold_all.loc[index].to_numpy()
        labels = labels_all.loc[index].to_numpy()
        ctrl = control
        if ctrl is None:
            ctrl = dataclasses.replace(model.control, check_singular="ignore", start=None)
        linear = model.family.linear
        theta, terms_prev, factor_prev = model.theta, design.terms, model.factor
        beta = None if linear else model.beta
        y_all, w_all = model.response, model.prior_weights
        for f in range(folds):
            test = np.flatnonzero(fold_of == f)
            train = np.flatnonzero(fold_of != f)
            if len(test) == 0:
                continue
            t0 = time.perf_counter()
            sub, where = design.subset(train)
            start = _map_theta(theta, terms_prev, factor_prev, sub.terms)
            fold_ctrl = ctrl
            if linear and "initial_step" not in ctrl.options and len(start):
                # the optimum moves little between folds: a small first trust region halves the
                # evaluations (same optimum as a fresh fit, to the optimizer's tolerance)
                fold_ctrl = dataclasses.replace(
                    ctrl, options={**ctrl.options, "initial_step": 0.05 * np.abs(start) + 0.01})
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit = _refit(model, sub, start,
                             beta if beta is not None and len(beta) == sub.X.shape[1] else None,
                             fold_ctrl)
            for w in caught:
                if issubclass(w.category, ConvergenceWarning):
                    warnings.warn(f"{name}, fold {f + 1}: {w.message}", ConvergenceWarning,
                                  stacklevel=2)
            theta, terms_prev, factor_prev = fit.theta, fit.design.terms, fit.factor
            if not linear and len(fit.beta) == design.X.shape[1]:
                beta = fit.beta
            eta, A = _predict_rows(fit, where, design, test)
            y = y_all[test]
            if linear:
                pred = eta
                log_score = _gaussian_log_score(y - eta, float(fit.sigma) ** 2, w_all[test], A)
            else:
                pred = np.asarray(fit.family.link.inverse(eta), dtype=float)
                log_score = _glmm_log_score(fit, y, eta, A, w_all[test])
            err = y - pred
            rows_out.append({
                "model": name, "fold": f + 1, "n_train": len(train), "n_test": len(test),
                "clusters_test": int(pd.unique(labels[test]).size),
                "sse": float(err @ err), "sae": float(np.abs(err).sum()),
                "rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
                "log_score": log_score,
                "nevals": getattr(getattr(fit, "optinfo", None), "nevals", np.nan),
                "seconds": time.perf_counter() - t0,
            })
            bar.update()
    bar.close()
    table = pd.DataFrame(rows_out)
    summary = _summarise(table, names)
    folds_table = table.drop(columns=["sse", "sae"])
    return CrossValidationResult(folds_table, summary, str(by_label) if isinstance(by_label, str)
                                 else ":".join(by_label), fold_all)


def _summarise(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    rows = []
    for name in names:
        t = table[table["model"] == name]
        n = t["n_test"].sum()
        k = len(t)
        rows.append({"model": name, "n": int(n), "folds": k,
                     "rmse": float(np.sqrt(t["sse"].sum() / n)),
                     "rmse_se": float(t["rmse"].std(ddof=1) / np.sqrt(k)) if k > 1 else np.nan,
                     "mae": float(t["sae"].sum() / n),
                     "log_score": float(t["log_score"].sum()),
                     "log_score_per_obs": float(t["log_score"].sum() / n)})
    summary = pd.DataFrame(rows).set_index("model")
    best = summary["log_score"].idxmax() if summary["log_score"].notna().any() else None
    d, dse = [], []
    for name in summary.index:
        if best is None:
            d.append(np.nan), dse.append(np.nan)
            continue
        a = table[table["model"] == name].set_index("fold")["log_score"]
        b = table[table["model"] == best].set_index("fold")["log_score"]
        diff = (a - b).dropna()
        d.append(float(diff.sum()))
        dse.append(float(np.sqrt(len(diff)) * diff.std(ddof=1)) if len(diff) > 1 and name != best
                   else 0.0 if name == best else np.nan)
    summary["d_log_score"] = d
    summary["d_log_score_se"] = dse
    return summary.sort_values("log_score", ascending=False, kind="stable")
