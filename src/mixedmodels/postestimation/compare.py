"""Model comparison: likelihood-ratio tests with lme4's refit rules, and information-criterion tables."""

from __future__ import annotations

import inspect
import warnings
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ..core.lazy import lazy_import
from ..exceptions import DataError, ModelComparisonWarning
from ..models.base import MixedModel, printed_by_presentation
from ..spec.arguments import check_bool, check_count, check_models
from .bootstrap import bootstrap_lrt
from .caic import caic

stats = lazy_import("scipy.stats")

__all__ = ["anova", "aic_table", "model_names", "AnovaTable", "AICTable"]


@printed_by_presentation  # its printing: presentation.reprs
class AnovaTable(pd.DataFrame):
    """The table :func:`anova` returns: a DataFrame that prints as lme4's ``anova`` (the printing
    is registered by :mod:`mixedmodels.presentation.reprs`); ``attrs`` hold the formulas."""

    @property
    def _constructor(self):
        return AnovaTable


@printed_by_presentation  # its printing: presentation.reprs
class AICTable(pd.DataFrame):
    """The table :func:`aic_table` returns: a DataFrame with R-style printing (registered by
    :mod:`mixedmodels.presentation.reprs`)."""

    @property
    def _constructor(self):
        return AICTable


def model_names(models: list, frame_depth: int = 2) -> list[str]:
    """The variable names the caller gave the models, where they can be found; else ``model i``."""
    names: list[str | None] = [getattr(m, "name", None) for m in models]
    frame = inspect.currentframe()
    try:
        for _ in range(frame_depth):
            frame = frame.f_back if frame is not None else None
        scopes = [frame.f_locals, frame.f_globals] if frame is not None else []
        for i, model in enumerate(models):
            if names[i]:
                continue
            for scope in scopes:
                found = [k for k, v in scope.items() if v is model and not k.startswith("_")]
                if found:
                    names[i] = found[0]
                    break
    finally:
        del frame
    return [n or f"model {i + 1}" for i, n in enumerate(names)]


def _check_same_data(models: list, names: list[str]) -> None:
    base = models[0]
    for model, name in zip(models[1:], names[1:]):
        if model.nobs != base.nobs:
            raise DataError(
                f"models were not all fit to the same data: {names[0]} uses {base.nobs} "
                f"observations and {name} uses {model.nobs}. Refit them on the same rows "
                "(drop missing values for the union of their variables first).")
        y0, y1 = base.response, model.response
        if y0.shape != y1.shape or not np.allclose(y0, y1, rtol=1e-12, atol=0, equal_nan=True):
            raise DataError(f"models were not all fit to the same response: {names[0]} and "
                            f"{name} differ in their response values.")


#: anova for model objects of the layers above (pooled multiple-imputation fits), by their type
_ANOVA_HANDLERS: dict[type, object] = {}


def register_anova(cls: type, handler) -> None:
    """Make :func:`anova` of ``cls`` objects return ``handler(*models, refit=, names=, test=, ...)``."""
    _ANOVA_HANDLERS[cls] = handler


def anova(*models, refit: bool = True, names: list[str] | None = None, test: str = "chisq",
          nsim: int = 500, seed=None, parallel: int | None = None, **options) -> pd.DataFrame:
    """Likelihood-ratio tests between nested models, as lme4's ``anova``.

    Parameters
    ----------
    *models : fitted models
        Two or more, nested, fit to the same data.
    refit : bool, default True
        Refit REML fits by maximum likelihood first (needed to compare fixed effects).
        With False, REML fits are compared as they are: valid only for models that differ
        in their random effects, and a warning says so otherwise.
    names : list of str, optional
        Row labels; by default the models' variable names.
    test : {"chisq", "bootstrap"}
        ``"bootstrap"`` adds ``Pr(boot)``: a parametric bootstrap p-value of each model
        against the previous one (:func:`~mixedmodels.postestimation.bootstrap.bootstrap_lrt`),
        the honest test when a variance is tested at its boundary of zero, where the χ²
        reference is conservative.
    nsim, seed, parallel
        Simulations, random seed and workers for ``test="bootstrap"``.

    Returns
    -------
    pandas.DataFrame
        One row per model, sorted by number of parameters, with columns ``npar, AIC,
        BIC, logLik, deviance, Chisq, Df, Pr(>Chisq)`` (and ``Pr(boot)``).

    Pooled fits of multiply imputed data (``mm.lmer(formula, imputations)``) take ``test="D1"``,
    ``"D2"`` or ``"D3"`` (and ``df_com=`` for D1), as mitml's ``testModels``.
    """
    first = models[0][0] if len(models) == 1 and isinstance(models[0], (list, tuple)) and models[0] else \
        (models[0] if models else None)
    for cls, handler in _ANOVA_HANDLERS.items():
        if isinstance(first, cls):
            return handler(*models, refit=refit, names=names, test=test, nsim=nsim, seed=seed,
                           parallel=parallel, **options)
    if options:
        raise TypeError(f"anova() got an unexpected keyword argument {next(iter(options))!r}")
    if test not in ("chisq", "bootstrap"):
        raise ValueError(f"test must be 'chisq' or 'bootstrap', got {test!r}")
    if len(models) == 1 and isinstance(models[0], (list, tuple)):
        models = tuple(models[0])
    if len(models) < 2:
        raise ValueError("anova needs at least two models to compare")
    check_models("anova", models, MixedModel)
    refit = check_bool("refit", refit)
    if test == "bootstrap":
        nsim = check_count("nsim", nsim)
    labels = list(names) if names is not None else model_names(list(models))
    _check_same_data(list(models), labels)
    fitted = list(models)
    if refit:
        fitted = [m.refit_ml() if m.reml else m for m in models]
    else:
        reml_flags = {bool(m.reml) for m in models}
        if len(reml_flags) > 1:
            warnings.warn("comparing REML and ML fits: their likelihoods are not comparable; "
                          "use refit=True.", ModelComparisonWarning, stacklevel=2)
        elif True in reml_flags:
            fixed = {tuple(m.fixef.index) for m in models}
            if len(fixed) > 1:
                warnings.warn(
                    "these REML fits have different fixed effects, so their REML likelihoods "
                    "are not comparable and the test is invalid. Use refit=True to compare "
                    "fixed effects by maximum likelihood.", ModelComparisonWarning, stacklevel=2)
    order = sorted(range(len(fitted)), key=lambda i: fitted[i].npar)
    rows = []
    prev = None
    for i in order:
        m = fitted[i]
        ll = m.loglik
        row = {"npar": m.npar, "AIC": -2 * ll + 2 * m.npar, "BIC": -2 * ll + np.log(m.nobs) * m.npar,
               "logLik": ll, "deviance": -2 * ll, "Chisq": np.nan, "Df": np.nan,
               "Pr(>Chisq)": np.nan}
        if prev is not None:
            df = m.npar - prev.npar
            chisq = max(0.0, 2.0 * (ll - prev.loglik))
            row["Chisq"] = chisq
            row["Df"] = df
            row["Pr(>Chisq)"] = stats.chi2.sf(chisq, df) if df > 0 else np.nan
        if test == "bootstrap":
            row["Pr(boot)"] = np.nan
            if prev is not None:
                boot = bootstrap_lrt(prev, m, n=nsim, seed=seed, parallel=parallel)
                row["Pr(boot)"] = float(boot.loc["PBtest", "p.value"])
        rows.append(row)
        prev = m
    table = AnovaTable(rows, index=[labels[i] for i in order])
    table["Df"] = table["Df"].astype("Int64")
    table.attrs["refit"] = refit and any(m.reml for m in models)
    table.attrs["formulas"] = {labels[i]: models[i].design.formula.text for i in order}
    data_name = getattr(models[0], "data_name", None)
    if data_name:
        table.attrs["data_name"] = data_name
    return table


def _as_named(models: Mapping | Iterable) -> tuple[list[str], list]:
    if isinstance(models, Mapping):
        return [str(k) for k in models], list(models.values())
    items = list(models)
    return model_names(items, frame_depth=3), items


def aic_table(models: Mapping | Iterable, criterion: str = "AIC") -> pd.DataFrame:
    """Rank models by an information criterion, best first, with differences and Akaike weights.

    Parameters
    ----------
    models : dict or list
        Fitted models (a dict gives the row names).
    criterion : {"AIC", "AICc", "BIC", "cAIC"}
        The criterion to rank by. Models are taken as fit (REML fits keep their REML
        likelihood, as R's ``AIC``); a warning says when that makes the comparison invalid.
        ``"cAIC"`` is the conditional AIC of :func:`~mixedmodels.postestimation.caic.caic`
        (LMMs only); it answers a different question (prediction for the same clusters) and
        its ``df`` column is the effective degrees of freedom.

    Returns
    -------
    pandas.DataFrame
        Columns ``npar``, the criterion, ``d<criterion>``, ``weight`` (and the other
        criteria for reference; ``df`` and ``cond_logLik`` with cAIC), sorted best first.

    Raises
    ------
    DataError
        If the models were fit to different observations or responses.
    """
    names, items = _as_named(models)
    check_models("aic_table", items, MixedModel)
    if len(items) == 0:
        raise ValueError("aic_table needs at least one model")
    crit = {"AIC": "AIC", "AICC": "AICc", "BIC": "BIC", "CAIC": "cAIC"}.get(str(criterion).upper())
    if crit is None:
        raise ValueError(f"criterion must be 'AIC', 'AICc', 'BIC' or 'cAIC', got {criterion!r}")
    if len(items) > 1:
        _check_same_data(items, names)
        reml_flags = {bool(m.reml) for m in items}
        if crit != "cAIC" and len(reml_flags) > 1:
            warnings.warn("the table mixes REML and ML fits, whose likelihoods are not comparable; "
                          "refit the REML ones with reml=False (m.refit_ml()).",
                          ModelComparisonWarning, stacklevel=2)
        elif crit != "cAIC" and True in reml_flags and len({tuple(m.fixef.index) for m in items}) > 1:
            warnings.warn("REML fits with different fixed effects are not comparable by AIC; "
                          "refit them with reml=False (m.refit_ml()).", ModelComparisonWarning,
                          stacklevel=2)
    rows = []
    for m in items:
        k, n = m.npar, m.nobs
        aic = -2 * m.loglik + 2 * k
        aicc = aic + 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else np.inf
        row = {"npar": k, "AIC": aic, "AICc": aicc, "BIC": -2 * m.loglik + np.log(n) * k,
               "logLik": m.loglik}
        if crit == "cAIC":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ModelComparisonWarning)
                res = caic(m)
            row.update({"cAIC": res["caic"], "df": res["df"], "cond_logLik": res["conditional_loglik"]})
        rows.append(row)
    table = AICTable(rows, index=names)
    delta = table[crit] - table[crit].min()
    rel = np.exp(-0.5 * delta)
    table.insert(2, f"d{crit}", delta)
    table.insert(3, "weight", rel / rel.sum())
    extra = ["df", "cond_logLik"] if crit == "cAIC" else []
    cols = ["npar", crit, f"d{crit}", "weight"] + extra + [
        c for c in ("AIC", "AICc", "BIC", "logLik") if c != crit]
    return table.loc[:, [c for c in cols if c in table.columns]].sort_values(crit, kind="stable")
