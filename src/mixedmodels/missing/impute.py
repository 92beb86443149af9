""":func:`impute`: one call for the one-off (forest) and the multilevel multiple imputations (pan, fcs)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..exceptions import ConvergenceWarning, DataError, MissingDataWarning
from ..spec.arguments import check_count
from .fcs import fcs_impute
from .forest import forest_impute
from .imputations import Imputations
from .jointmodel import parse_imputation_formula
from .pan import pan_impute
from .report import formula_roles

__all__ = ["impute"]

_METHODS = ("forest", "pan", "fcs")


def _drop_missing_groups(data: pd.DataFrame, groups: list[str]) -> tuple[pd.DataFrame, int]:
    if not groups:
        return data, 0
    bad = data[groups].isna().any(axis=1).to_numpy()
    k = int(bad.sum())
    if k:
        warnings.warn(f"{k} of {len(data)} rows have a missing grouping factor ({', '.join(groups)}) and are "
                      "dropped: a cluster cannot be imputed. Recover the cluster of those rows if you can.",
                      MissingDataWarning, stacklevel=4)
        data = data.loc[~bad]
    return data, k


def _entirely_missing(data: pd.DataFrame, cols: list[str]) -> None:
    for c in cols:
        if data[c].isna().all():
            raise DataError(f"column {c!r} is entirely missing: there is nothing to impute it from; "
                            "drop it from the imputation model")


def _pan_or_fcs(data: pd.DataFrame, formula, method: str, m: int, seed, **settings) -> Imputations:
    model = parse_imputation_formula(formula, data)
    data, dropped = _drop_missing_groups(data, [model["group"]])
    _entirely_missing(data, model["targets"] + model["level2"])
    if method == "pan":
        imps = pan_impute(data, model, m=m, seed=seed, **settings)
    else:
        imps = fcs_impute(data, model, m=m, seed=seed, **settings)
    imps.info["rows_dropped"] = dropped
    _warn_rhat(imps.diagnostics, "n_burn" if method == "pan" else "maxit")
    return imps


def _warn_rhat(diag: pd.DataFrame, knob: str) -> None:
    worst = diag["Rhat"].max()
    if np.isfinite(worst) and worst > 1.1:
        which = diag["Rhat"].idxmax()
        warnings.warn(f"the imputation model may not have converged: potential scale reduction R̂ = {worst:.3f} "
                      f"for {which} (above 1.1); increase {knob}", ConvergenceWarning, stacklevel=4)


def impute(data: pd.DataFrame, formula: str | None = None, *, method: str = "forest", m: int | None = None,
           seed=None, n_burn: int = 1000, n_iter: int = 100, maxit: int = 20, group: str | None = None,
           columns: list[str] | None = None, max_iter: int = 10, n_estimators: int = 100,
           **forest_options) -> pd.DataFrame | Imputations:
    """Impute missing values: once (missForest), or m times with a two-level imputation model.

    Parameters
    ----------
    data : pandas.DataFrame
    formula : str or list of two str, optional
        For ``"pan"`` and ``"fcs"`` (required): the imputation model, mitml's ``panImpute``
        spelling: the variables to impute on the left, the complete predictors on the right, and one
        random-effects term, e.g. ``"ReadDis + SES ~ ReadAchiev + (1 | ID)"``. With level-2
        variables (one value per cluster), a list of two formulas as mitml's ``jomoImpute``:
        ``["ReadDis ~ ReadAchiev + (1 | ID)", "SchClimate ~ 1"]``. Categorical variables (strings,
        categories, booleans) on the left are imputed through latent normal variables (jomo's
        model), with their observed levels only. For ``"forest"`` (optional): its variables are the
        columns used, and its grouping factor the cluster.
    method : {"forest", "pan", "fcs"}
        ``"forest"``: one-off imputation by missForest's algorithm (scikit-learn's random forests),
        the cluster means of the other variables as extra predictors. ``"pan"``: joint multilevel
        imputation by Gibbs sampling (as mitml's ``panImpute``). ``"fcs"``: chained equations, one
        two-level model per variable (as mice's ``2l.pan``).
    m : int, optional
        Number of imputations (default 20 for pan/fcs; 1 for forest, which then returns one data set).
    seed : int or numpy Generator, optional
    n_burn, n_iter : int
        pan: burn-in sweeps, and sweeps between imputations (panImpute's ``n.burn``, ``n.iter``).
    maxit : int
        fcs: cycles through the variables per imputation (mice's ``maxit``).
    group : str, optional
        forest without a formula: the grouping factor (its cluster means are predictors).
    columns : list of str, optional
        forest without a formula: the columns to use (default: all but ``group``).
    max_iter, n_estimators, **forest_options
        forest: the maximum number of sweeps, trees per forest, and options of scikit-learn's
        forests (``max_features``, ``min_samples_leaf``, ``n_jobs``).

    Returns
    -------
    pandas.DataFrame or Imputations
        forest with m = 1: the completed DataFrame, with ``.attrs["oob_error"]`` (the out-of-bag
        error per imputed variable, as missForest's ``OOBerror``), ``.attrs["imputed"]`` (the mask)
        and ``.attrs["convergence"]``. Otherwise an :class:`Imputations` object for
        ``mm.lmer(formula, imputations)``, with its ``diagnostics`` (R̂ per parameter, or OOB errors).

    Notes
    -----
    Rows with a missing grouping factor cannot be imputed: they are dropped, counted and warned
    (:class:`~mixedmodels.exceptions.MissingDataWarning`).

    Examples
    --------
    >>> import mixedmodels as mm, pandas as pd
    >>> d = mm.load_dataset("sleepstudy")
    >>> d.loc[d.index % 7 == 3, "Reaction"] = float("nan")
    >>> imps = mm.impute(d, "Reaction ~ Days + (1 | Subject)", method="pan", m=3, seed=1, n_burn=200, n_iter=20)
    >>> imps.m, int(imps[0]["Reaction"].isna().sum())
    (3, 0)
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if not isinstance(method, str) or method.lower() not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    method = method.lower()
    m = check_count("m", m if m is not None else (1 if method == "forest" else 20))
    if method in ("pan", "fcs"):
        if formula is None:
            raise ValueError(f"method={method!r} needs an imputation formula, e.g. "
                             "'ReadDis + SES ~ ReadAchiev + (1 | ID)'")
        if forest_options:
            raise TypeError(f"unexpected keyword arguments for method={method!r}: {', '.join(forest_options)}")
        if method == "pan":
            return _pan_or_fcs(data, formula, method, m, seed, n_burn=check_count("n_burn", n_burn, 3),
                               n_iter=check_count("n_iter", n_iter, 1))
        return _pan_or_fcs(data, formula, method, m, seed, maxit=check_count("maxit", maxit, 1))
    # forest
    if formula is not None:
        lhs, preds, groups = formula_roles(formula, data)
        cols = lhs + preds
    else:
        groups = [group] if group is not None else []
        cols = list(columns) if columns is not None else [c for c in data.columns if c not in groups]
        missing_cols = [c for c in cols + groups if c not in data.columns]
        if missing_cols:
            raise DataError(f"column {missing_cols[0]!r} is not in the data")
    sub, dropped = _drop_missing_groups(data, groups)
    _entirely_missing(sub, cols)
    rng = np.random.default_rng(seed)
    sets, oobs, recs = [], [], []
    for _ in range(m):
        done, oob, rec = forest_impute(sub, cols, groups, seed=rng, max_iter=check_count("max_iter", max_iter, 1),
                                       n_estimators=check_count("n_estimators", n_estimators, 1), **forest_options)
        sets.append(done)
        oobs.append(oob)
        recs.append(rec)
    mask = sub[cols].isna()
    if m == 1:
        out = sets[0]
        out.attrs["oob_error"] = oobs[0]
        out.attrs["imputed"] = mask
        out.attrs["convergence"] = recs[0]
        out.attrs["rows_dropped"] = dropped
        return out
    oob_all = pd.concat(oobs, keys=range(1, m + 1), names=["imputation"])
    return Imputations(sets, data=sub, mask=mask, method="forest", diagnostics=oob_all,
                       info={"seed": seed, "convergence": recs, "rows_dropped": dropped})
