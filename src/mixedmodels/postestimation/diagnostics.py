"""Fit diagnostics: refits with every optimizer, PCA of the random effects, standardized fits.

>>> import mixedmodels as mm
>>> from mixedmodels.diagnostics import all_fit, rePCA
>>> m = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
>>> all_fit(m).verdict                                             # doctest: +SKIP
'All 6 optimizers agree: ...'
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..models.checks import check_scaling, theta_names
from ..models.optim import OPTIMIZERS, Control

__all__ = ["all_fit", "AllFitResult", "rePCA", "RePCA", "standardized_lmer",
           "standardize_design", "Standardization"]

_GUIDE = "docs/convergence.md"


# -- all_fit --------------------------------------------------------------------------------------

class AllFitResult(pd.DataFrame):
    """The table :func:`all_fit` returns, one row per optimizer, with a ``.verdict`` line."""

    _metadata = ["verdict"]

    @property
    def _constructor(self):
        return AllFitResult

    def __repr__(self) -> str:
        return super().__repr__() + "\n" + str(getattr(self, "verdict", ""))


def _refit(model, control: Control):
    """A fresh fit of ``model``'s data and formula with another control (no shared mutable state)."""
    hook = getattr(model, "_refit_with_control", None)
    if hook is not None:
        return hook(control)
    from ..core.factor import BlockedFactor
    from ..models.lmm import LinearMixedModel

    if isinstance(model, LinearMixedModel):
        new = copy.copy(model)  # design and crossproducts are read-only: share them
        new.factor = BlockedFactor(model.crossproducts)
        new.control = control
        new.optinfo = None
        return new.fit()
    new = copy.deepcopy(model)
    new.control = control
    return new.fit()


def _one_fit(model, name: str) -> dict:
    # keep the user's tolerances, start and maxfun; the checks record rather than warn
    ctrl = replace(model.control, optimizer=name, check_conv="warn", check_singular="warn",
                   check_scale="warn")
    start = time.perf_counter()
    try:
        fit = _refit(model, ctrl)
    except Exception as err:  # one optimizer failing must not stop the comparison
        return {"optimizer": name, "ok": False, "seconds": time.perf_counter() - start,
                "messages": f"{type(err).__name__}: {err}", "model": None}
    seconds = time.perf_counter() - start
    conv = getattr(fit, "convergence", None)
    ok = bool(conv.ok) if conv is not None else bool(fit.optinfo.converged)
    messages = list(conv.messages) if conv is not None else []
    if getattr(fit, "is_singular", False):
        messages.append("singular")
    return {"optimizer": name, "ok": ok, "seconds": seconds, "messages": "; ".join(messages),
            "model": fit}


def _theta_labels(model) -> list[str]:
    try:
        return theta_names(model)
    except Exception:
        return [f"theta{i}" for i in range(len(model.theta))]


def all_fit(model, parallel: bool = True, optimizers: tuple[str, ...] | None = None,
            tol_loglik: float = 1e-3, tol_fixef: float = 0.01) -> AllFitResult:
    """Refit a model with every optimizer and compare the results (lme4's ``allFit``).

    Each refit starts where the original fit started (``Control.start`` or the default start),
    with the model's tolerances and ``maxfun``; only the optimizer changes. Warnings from the
    refits are not shown: they are in the ``messages`` column. A model from
    ``standardize=True`` is refit on its standardized scale, and the table shows that scale.

    Parameters
    ----------
    model : fitted model
    parallel : bool, default True
        Run the refits in threads when a single fit takes long enough (0.5 s) to gain from it;
        the linear algebra releases the GIL. Small models run one after the other.
    optimizers : tuple of str, optional
        Defaults to :data:`mixedmodels.optimize.OPTIMIZERS` (bobyqa, newuoa, nelder_mead,
        lbfgsb, powell, cobyqa).
    tol_loglik : float
        Largest log-likelihood difference from the best fit still called agreement.
    tol_fixef : float
        Largest fixed-effect difference, in standard errors of the best fit, called agreement.

    Returns
    -------
    AllFitResult
        A DataFrame with one row per optimizer: ``optimizer``, ``ok`` (converged by the checks),
        ``loglik``, ``seconds``, ``nevals``, ``singular``, ``messages``, then one column per fixed
        effect and per θ entry. ``.verdict`` is a one-line summary.
    """
    optimizers = tuple(optimizers or OPTIMIZERS)
    # a standardized fit is refit as it was fit: on the standardized scale
    model = getattr(model, "standardized", None) or model
    single = getattr(getattr(model, "optinfo", None), "seconds", 0.0) or 0.0
    workers = min(len(optimizers), os.cpu_count() or 1)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        if parallel and workers > 1 and single > 0.5:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers) as pool:
                rows = list(pool.map(lambda name: _one_fit(model, name), optimizers))
        else:
            rows = [_one_fit(model, name) for name in optimizers]

    fixef_names = list(model.fixef.index)
    th_names = _theta_labels(model)
    records = []
    for row in rows:
        fit = row.pop("model")
        rec = {"optimizer": row["optimizer"], "ok": row["ok"],
               "loglik": fit.loglik if fit is not None else np.nan,
               "seconds": row["seconds"],
               "nevals": fit.optinfo.nevals if fit is not None else 0,
               "singular": bool(getattr(fit, "is_singular", False)) if fit is not None else False,
               "messages": row["messages"]}
        fe = fit.fixef.to_numpy() if fit is not None else np.full(len(fixef_names), np.nan)
        th = fit.theta if fit is not None else np.full(len(th_names), np.nan)
        rec.update(zip(fixef_names, fe))
        rec.update(zip(th_names, th))
        records.append(rec)
    table = AllFitResult(pd.DataFrame.from_records(records))
    table.verdict = _verdict(table, model, fixef_names, th_names, tol_loglik, tol_fixef)
    return table


def _verdict(table: pd.DataFrame, model, fixef_names, th_names, tol_loglik, tol_fixef) -> str:
    ok = table[table["ok"] & np.isfinite(table["loglik"])]
    failed = table.loc[~table.index.isin(ok.index), "optimizer"].tolist()
    note = f" ({', '.join(failed)} did not converge: see the messages column)" if failed else ""
    if ok.empty:
        return ("No optimizer converged: simplify the model, centre and scale predictors, or raise "
                f"maxfun. See mm.help('all_fit') ({_GUIDE}#all_fit).")
    best = ok.loc[ok["loglik"].idxmax()]
    se = np.sqrt(np.diag(model.vcov.to_numpy())) if len(fixef_names) else np.zeros(0)
    d_ll = (best["loglik"] - ok["loglik"]).to_numpy()
    fe = ok[fixef_names].to_numpy(dtype=float)
    d_fe = np.abs(fe - best[fixef_names].to_numpy(dtype=float)) / np.where(se > 0, se, 1.0)
    d_th = np.abs(ok[th_names].to_numpy(dtype=float) - best[th_names].to_numpy(dtype=float))
    max_fe = d_fe.max(axis=1) if d_fe.size else np.zeros(len(ok))
    max_th = float(d_th.max()) if d_th.size else 0.0
    differ = (d_ll > tol_loglik) | (max_fe > tol_fixef)
    if len(ok) == 1:
        return f"Only {best['optimizer']} converged{note}; nothing to compare."
    if not differ.any():
        return (f"All {len(ok)} converged optimizers agree: log-likelihood within {d_ll.max():.2g}, "
                f"fixed effects within {max_fe.max():.2g} SE, θ within {max_th:.2g}{note}. The fit "
                "does not depend on the optimizer.")
    parts = []
    for pos in np.flatnonzero(differ):
        name = ok["optimizer"].iloc[pos]
        detail = f"{name}: log-likelihood {d_ll[pos]:.3g} lower"
        if d_fe.size:
            j = int(np.argmax(d_fe[pos]))
            detail += f", '{fixef_names[j]}' off by {d_fe[pos, j]:.2g} SE"
        parts.append(detail)
    return (f"Optimizers disagree: the best log-likelihood is {best['loglik']:.6g} "
            f"({best['optimizer']}); " + "; ".join(parts) + f"{note}. Trust the best fit only if "
            "several optimizers reach it; otherwise simplify the model or rescale. See "
            f"mm.help('all_fit') ({_GUIDE}#all_fit).")


# -- rePCA -----------------------------------------------------------------------------------------

class RePCA(dict):
    """Per-term principal components of the random effects (term name → DataFrame)."""

    def __init__(self, tables: dict, dims: dict, ncols: dict):
        super().__init__(tables)
        self.dims = dims
        self.ncols = ncols

    def summary(self) -> pd.DataFrame:
        """One row per term: its number of columns and how many dimensions it uses."""
        return pd.DataFrame({"columns": self.ncols, "dims_used": self.dims})

    def __repr__(self) -> str:
        out = []
        for name, table in self.items():
            out.append(f"{name}: {self.dims[name]} of {self.ncols[name]} dimensions used\n"
                       f"{table.to_string(float_format=lambda v: f'{v:.4g}')}")
        return "\n\n".join(out)


def rePCA(model, tol: float | None = None) -> RePCA:
    """How many dimensions each random-effects term really uses (lme4's ``rePCA``).

    The singular values of each term's relative covariance factor T give the standard
    deviations of the principal components of its random effects.

    Parameters
    ----------
    model : fitted model
    tol : float, optional
        A component counts as used when its standard deviation, relative to σ, is at least
        this; defaults to the singular tolerance (``Control.singular_tol``, 1e-4).

    Returns
    -------
    RePCA
        A dict term name → DataFrame indexed ``PC1, PC2, ...`` with ``sdev`` (in the response's
        units for LMMs), ``proportion`` (of the term's variance) and ``cumulative``; ``.dims``
        the number of dimensions used per term and ``.summary()`` a table of them.
    """
    tol = model.control.singular_tol if tol is None else tol
    has_scale = model.family is None or getattr(model.family, "has_scale", False)
    scale = model.sigma if has_scale else 1.0
    tables, dims, ncols = {}, {}, {}
    for term, T in zip(model.design.terms, model.factor.split_theta(model.theta)):
        d = np.linalg.svd(T, compute_uv=False)
        var = d ** 2
        total = var.sum()
        prop = var / total if total > 0 else np.zeros_like(var)
        tables[term.name] = pd.DataFrame(
            {"sdev": scale * d, "proportion": prop, "cumulative": np.cumsum(prop)},
            index=[f"PC{i + 1}" for i in range(len(d))])
        dims[term.name] = int(np.sum(d >= tol))
        ncols[term.name] = len(d)
    return RePCA(tables, dims, ncols)


# -- standardized fits ----------------------------------------------------------------------------

@dataclass
class Standardization:
    """The linear maps between the original and the standardized model matrices.

    ``X_std = X @ fixed_map`` and, per term, ``Z_std = Z @ term_maps[i]``; so ``beta =
    fixed_map @ beta_std`` and the original-scale random-effects covariance is
    ``M Σ_std Mᵀ`` with ``M = term_maps[i]``.
    """

    table: pd.DataFrame  # one row per transformed column: where, column, center, scale
    fixed_map: np.ndarray
    term_maps: list


def _column_map(names: list[str], values: np.ndarray, centre: bool, where: str, rows: list):
    """The map M (X_std = X M) that centres (if allowed) and scales each non-indicator column."""
    l = values.shape[1]
    M = np.eye(l)
    if "(Intercept)" not in names:
        centre = False
    icpt = names.index("(Intercept)") if centre else None
    for j, name in enumerate(names):
        if name == "(Intercept)":
            continue
        col = values[:, j]
        sd = float(col.std())
        if sd == 0 or np.all((col == 0) | (col == 1)):
            continue  # constants and 0/1 indicators stay as they are
        mean = float(col.mean()) if centre else 0.0
        M[j, j] = 1.0 / sd
        if icpt is not None:
            M[icpt, j] = -mean / sd
        rows.append((where, name, mean, sd))
    return M


def standardize_design(design):
    """A copy of ``design`` with centred and scaled numeric columns, and the maps back.

    Fixed-effect columns are centred (when the model has an intercept) and scaled; the columns
    of a correlated random-effects term with an intercept likewise; other random-effects
    columns are only scaled, because centring them would change the model. 0/1 indicator and
    constant columns are left alone. Both fits have the same likelihood (ML exactly; the REML
    criterion differs by the constant ``2 log|det M|`` of the fixed-effects map).

    Returns
    -------
    (ModelDesign, Standardization)
    """
    rows: list = []
    fmap = _column_map(list(design.fixef_names), design.X, True, "fixed", rows)
    new_terms, tmaps = [], []
    for term in design.terms:
        mat = term.matrix
        centre = mat.correlated and mat.ncols > 1
        M = _column_map(list(term.columns), mat.values, centre, f"({term.lhs} | {term.group})", rows)
        tmaps.append(M)
        new_terms.append(replace(term, matrix=replace(mat, values=mat.values @ M)))
    table = pd.DataFrame(rows, columns=["where", "column", "center", "scale"])
    std = replace(design, X=design.X @ fmap, terms=new_terms,
                  extra={**design.extra, "standardized": True})
    return std, Standardization(table, fmap, tmaps)


def _lower_factor(A: np.ndarray) -> np.ndarray:
    """Lower-triangular L with non-negative diagonal and L Lᵀ = A Aᵀ (also when A is singular)."""
    if A.shape[0] == 0:
        return A
    R = np.linalg.qr(A.T, mode="r")
    L = R.T
    signs = np.where(np.diag(L) < 0, -1.0, 1.0)
    return L * signs  # flip columns: L Lᵀ unchanged


def _theta_from_factors(model, factors: list[np.ndarray]) -> np.ndarray:
    theta = []
    for T, (rows, cols) in zip(factors, model.factor.layouts):
        theta.append(T[rows, cols])
    return np.concatenate(theta) if theta else np.zeros(0)


def standardized_lmer(formula: str, data: pd.DataFrame, *, reml: bool = True,
                      weights=None, offset=None, na_action: str = "drop",
                      control: Control | None = None):
    """Fit an LMM on centred and scaled numeric predictors; report it on both scales.

    The fit runs on the standardized model matrices (see :func:`standardize_design`), where the
    optimizer works well. It is then mapped back exactly: the returned model lives on the
    original scale (``fixef``, ``vcov``, ``varcorr``, ``predict`` as usual, and the same
    log-likelihood as a successful fit on the raw predictors), and carries

    - ``standardized``: the fitted model on the standardized scale;
    - ``standardization``: the centre and scale of every transformed column;
    - ``standardized_coefficients``: a table of the fixed effects and SEs on both scales.

    No ScalingWarning is issued (that is what the standardizing fixes); the convergence and
    singular-fit checks run on the standardized fit.

    Parameters
    ----------
    formula, data, reml, weights, offset, na_action, control
        As for :func:`mixedmodels.lmm.lmer`.

    Returns
    -------
    LinearMixedModel
    """
    from ..spec.design import build_design
    from ..models.lmm import LinearMixedModel

    design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action)
    std_design, info = standardize_design(design)
    control = control or Control()
    std_control = replace(control, check_scale="ignore")
    std = LinearMixedModel(std_design, reml=reml, control=std_control)
    if control.start is not None:  # a start given on the original scale
        raw = std.factor.split_theta(np.asarray(control.start, dtype=float))
        std_control.start = _theta_from_factors(
            std, [_lower_factor(np.linalg.solve(M, T)) for M, T in zip(info.term_maps, raw)])
    std.fit()
    factors = [_lower_factor(M @ T) for M, T in zip(info.term_maps, std.factor.split_theta(std.theta))]
    model = LinearMixedModel(design, reml=reml, control=control)
    model._set_theta(_theta_from_factors(model, factors))
    model.optinfo = std.optinfo
    model.convergence = std.convergence
    model.is_singular = std.is_singular
    model._check_messages = list(std._check_messages)
    model.scaling_problems = check_scaling(design)
    model.standardized = std
    model.standardization = info
    se = np.sqrt(np.diag(model.vcov.to_numpy()))
    se_std = np.sqrt(np.diag(std.vcov.to_numpy()))
    model.standardized_coefficients = pd.DataFrame(
        {"Estimate": model.fixef.to_numpy(), "Std. Error": se,
         "Estimate (std)": std.fixef.to_numpy(), "Std. Error (std)": se_std},
        index=model.fixef.index)
    return model
