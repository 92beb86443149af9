"""Fit diagnostics: refits with every optimizer and the PCA of the random effects.

>>> import mixedmodels as mm
>>> from mixedmodels.postestimation.diagnostics import all_fit, rePCA
>>> m = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
>>> all_fit(m).verdict                                             # doctest: +SKIP
'All 6 optimizers agree: ...'
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd

from ..models.base import printed_by_presentation
from ..models.checks import theta_names
from ..models.optim import OPTIMIZERS, Control
from ..models.optim import optimizers as registered_optimizers
from .progress import Progress

__all__ = ["all_fit", "AllFitResult", "rePCA", "RePCA"]

_GUIDE = "docs/convergence.md"


# -- all_fit --------------------------------------------------------------------------------------

@printed_by_presentation  # its printing: presentation.reprs
class AllFitResult(pd.DataFrame):
    """The table :func:`all_fit` returns, one row per optimizer, with a ``.verdict`` line."""

    _metadata = ["verdict"]

    @property
    def _constructor(self):
        return AllFitResult

    def __repr__(self) -> str:
        return super().__repr__() + "\n" + str(getattr(self, "verdict", ""))


def _refit(model, control: Control, start_from_fit: bool):
    """``model`` fit again with another control: from its estimates (``model.refit``), or from
    where the original fit started (a fresh fit of the same design)."""
    if start_from_fit:
        return model.refit(control=control)
    return model.with_design(model.design, control=control).fit()


def _one_fit(model, name: str, start_from_fit: bool) -> dict:
    # keep the user's tolerances, start and maxfun; the checks record rather than warn
    ctrl = replace(model.control, optimizer=name, check_conv="warn", check_singular="warn",
                   check_scale="warn")
    start = time.perf_counter()
    try:
        fit = _refit(model, ctrl, start_from_fit)
    except Exception as err:  # one optimizer failing must not stop the comparison
        return {"optimizer": name, "ok": False, "seconds": time.perf_counter() - start,
                "messages": f"{type(err).__name__}: {err}", "model": None, "limited": False}
    seconds = time.perf_counter() - start
    conv = getattr(fit, "convergence", None)
    ok = bool(conv.ok) if conv is not None else bool(fit.optinfo.converged)
    messages = list(conv.messages) if conv is not None else []
    if getattr(fit, "is_singular", False):
        messages.append("singular")
    # stopped by the evaluation limit and not verified by the derivatives: no evidence either way
    limited = not ok and bool(getattr(fit.optinfo, "maxfun_reached", False))
    return {"optimizer": name, "ok": ok, "seconds": seconds, "messages": "; ".join(messages),
            "model": fit, "limited": limited}


def _theta_labels(model) -> list[str]:
    try:
        return theta_names(model)
    except Exception:
        return [f"theta{i}" for i in range(len(model.theta))]


def all_fit(model, parallel: bool = True, optimizers: tuple[str, ...] | None = None,
            tol_loglik: float = 1e-3, tol_fixef: float = 0.01, *,
            start_from_fit: bool = False, progress: bool | str = "auto") -> AllFitResult:
    """Refit a model with every optimizer and compare the results (lme4's ``allFit``).

    Each refit (LMM or GLMM) starts where the original fit started (``Control.start`` or the
    default start), or with ``start_from_fit=True`` at the model's estimates
    (:meth:`~mixedmodels.models.base.MixedModel.refit`, as lme4 ≥ 2.0's ``start_from_mle``);
    it keeps the model's tolerances and ``maxfun``, only the optimizer changes. Warnings from
    the refits are not shown: they are in the ``messages`` column. A model from
    ``standardize=True`` is refit on its standardized scale, and the table shows that scale.

    Parameters
    ----------
    model : fitted LMM or GLMM
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
    start_from_fit : bool, default False
        Start each refit at the model's estimates (does each optimizer stay there, or find a
        better optimum?) rather than at the original start (does each reach the same optimum
        from there?).
    progress : {"auto", True, False}, default "auto"
        A progress bar over the optimizers when the output is interactive and the refits
        will take more than about 2 s (:mod:`~mixedmodels.postestimation.progress`).

    Returns
    -------
    AllFitResult
        A DataFrame with one row per optimizer: ``optimizer``, ``ok`` (converged by the checks),
        ``loglik``, ``seconds``, ``nevals``, ``singular``, ``messages``, then one column per fixed
        effect and per θ entry. ``.verdict`` is a one-line summary.
    """
    optimizers = tuple(optimizers or OPTIMIZERS)
    unknown = [name for name in optimizers if name not in registered_optimizers()]
    if unknown:
        raise ValueError(f"unknown optimizer(s) {', '.join(map(repr, unknown))}; registered: "
                         f"{', '.join(registered_optimizers())} (mm.register_optimizer adds one)")
    # a standardized fit is refit as it was fit: on the standardized scale
    model = getattr(model, "standardized", None) or model
    single = getattr(getattr(model, "optinfo", None), "seconds", 0.0) or 0.0
    workers = min(len(optimizers), os.cpu_count() or 1)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        with Progress(len(optimizers), "all_fit", progress) as bar:
            rows = []
            if parallel and workers > 1 and single > 0.5:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    for row in pool.map(lambda name: _one_fit(model, name, start_from_fit), optimizers):
                        rows.append(row)
                        bar.update()
            else:
                for name in optimizers:
                    rows.append(_one_fit(model, name, start_from_fit))
                    bar.update()

    fixef_names = list(model.fixef.index)
    th_names = _theta_labels(model)
    records = []
    limited = {row["optimizer"] for row in rows if row["limited"]}
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
    table.verdict = _verdict(table, model, fixef_names, th_names, tol_loglik, tol_fixef, limited)
    return table


def _verdict(table: pd.DataFrame, model, fixef_names, th_names, tol_loglik, tol_fixef,
             limited: set[str] = frozenset()) -> str:
    """One line on whether the optimizers agree. Every fit that produced estimates is compared,
    whether or not its derivative checks passed: each row's log-likelihood is the model's own
    objective at that row's estimates, so the rows are comparable, and agreement among fits the
    checks flagged is the evidence that the flags are false alarms. Fits stopped by the
    evaluation limit (``limited``) and not verified are no evidence and are left out."""
    fitted = table[np.isfinite(table["loglik"]) & ~table["optimizer"].isin(limited)]
    if fitted.empty and limited:
        return ("No optimizer converged: every one stopped at its evaluation limit; raise maxfun, "
                "simplify the model, or centre and scale predictors. See mm.help('all_fit') "
                f"({_GUIDE}#all_fit).")
    errors = table.loc[~table.index.isin(fitted.index), "optimizer"].tolist()
    flagged = fitted.loc[~fitted["ok"].astype(bool), "optimizer"].tolist()
    error_note = (f" ({', '.join(errors)} failed or stopped at the evaluation limit: see the messages "
                  "column)") if errors else ""
    if fitted.empty:
        return ("No optimizer produced a fit: simplify the model, centre and scale predictors, or "
                f"raise maxfun. See mm.help('all_fit') ({_GUIDE}#all_fit).")
    best = fitted.loc[fitted["loglik"].idxmax()]
    se = np.sqrt(np.diag(model.vcov.to_numpy())) if len(fixef_names) else np.zeros(0)
    d_ll = (best["loglik"] - fitted["loglik"]).to_numpy()
    fe = fitted[fixef_names].to_numpy(dtype=float)
    d_fe = np.abs(fe - best[fixef_names].to_numpy(dtype=float)) / np.where(se > 0, se, 1.0)
    d_th = np.abs(fitted[th_names].to_numpy(dtype=float) - best[th_names].to_numpy(dtype=float))
    max_fe = d_fe.max(axis=1) if d_fe.size else np.zeros(len(fitted))
    max_th = float(d_th.max()) if d_th.size else 0.0
    differ = (d_ll > tol_loglik) | (max_fe > tol_fixef)
    if len(fitted) == 1:
        state = "passed" if not flagged else "did not pass"
        return (f"Only {best['optimizer']} produced a fit (its convergence checks {state}){error_note}; "
                "nothing to compare.")
    if not differ.any():
        line = (f"All {len(fitted)} optimizers agree: log-likelihood within {d_ll.max():.2g}, fixed "
                f"effects within {max_fe.max():.2g} SE, θ within {max_th:.2g}{error_note}.")
        if flagged:
            return line + (f" The convergence checks flagged {', '.join(flagged)} (messages column), but "
                           "every optimizer reaches the same optimum: the warnings are false alarms.")
        return line + " The fit does not depend on the optimizer."
    parts = []
    for pos in np.flatnonzero(differ):
        name = fitted["optimizer"].iloc[pos]
        detail = f"{name}: log-likelihood {d_ll[pos]:.3g} lower"
        if d_fe.size:
            j = int(np.argmax(d_fe[pos]))
            detail += f", '{fixef_names[j]}' off by {d_fe[pos, j]:.2g} SE"
        parts.append(detail)
    flag_note = f" (convergence checks flagged {', '.join(flagged)})" if flagged else ""
    return (f"Optimizers disagree: the best log-likelihood is {best['loglik']:.6g} "
            f"({best['optimizer']}); " + "; ".join(parts) + f"{flag_note}{error_note}. Trust the best "
            "fit only if several optimizers reach it; otherwise simplify the model or rescale. See "
            f"mm.help('all_fit') ({_GUIDE}#all_fit).")


# -- rePCA -----------------------------------------------------------------------------------------

@printed_by_presentation  # its printing: presentation.reprs
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
    scale = model.sigma if model.has_scale else 1.0
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
