"""``clmm``: cumulative-link mixed models for ordinal responses, with ordinal's formula and options."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from ..exceptions import DataError, OrdinalResponseWarning, RankDeficiencyWarning
from ..models.optim import Control
from ..models.ordinal import CumulativeLinkMixedModel
from ..models.ordinal_links import cumulative_link
from ..models.ordinal_thresholds import make_thresholds
from ..postestimation import ordinal_profile as _ordinal_profile  # noqa: F401  (registers the profile)
from ..sources import as_pandas
from ..spec.arguments import check_count
from ..spec.design import aliased_columns, build_design
from ..spec.response import eval_numeric
from .datasets import r_level_order

__all__ = ["clmm"]


def _response_codes(expr: str, frame: pd.DataFrame, store: dict) -> np.ndarray:
    """Category codes 0..K−1 of an ordinal response; anything but an ordered categorical is
    converted with a warning naming the order assumed."""
    expr = expr.strip()
    if expr in frame.columns:
        col = frame[expr]
    else:
        col = pd.Series(eval_numeric(expr, frame, "response"), index=frame.index)
    if isinstance(col.dtype, pd.CategoricalDtype) and col.cat.ordered:
        used = col.cat.remove_unused_categories()
        if len(used.cat.categories) < len(col.cat.categories):
            empty = [str(c) for c in col.cat.categories if c not in set(used.cat.categories)]
            warnings.warn(f"response {expr!r}: level(s) {', '.join(empty)} have no observations "
                          "and were dropped", OrdinalResponseWarning, stacklevel=4)
        col = used
    else:
        values = col.dropna()
        if isinstance(col.dtype, pd.CategoricalDtype):
            levels = [c for c in col.cat.categories if c in set(values)]
            how = "an unordered categorical; its category order was used"
        elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            levels = sorted(values.unique())
            how = "numeric; its sorted values were used"
        else:
            labels = values.astype(str)
            levels = r_level_order(labels.unique())
            col = col.where(col.isna(), col.astype(str))
            how = "not categorical; its values were sorted" + (
                " as numbers" if levels and all(s.lstrip("-").isdigit() for s in levels) else "")
        shown = " < ".join(str(v) for v in levels[:10]) + (" < ..." if len(levels) > 10 else "")
        warnings.warn(
            f"response {expr!r} is {how} as the order: {shown}. Pass an ordered categorical, "
            f"e.g. data[{expr!r}] = pd.Categorical(data[{expr!r}], categories=[...], "
            "ordered=True), to state the order.", OrdinalResponseWarning, stacklevel=4)
        col = pd.Series(pd.Categorical(col, categories=levels, ordered=True), index=col.index)
    levels = [str(c) for c in col.cat.categories]
    if len(levels) < 2:
        raise DataError(f"response {expr!r} has {len(levels)} level(s) with observations "
                        f"({', '.join(levels)}); an ordinal model needs at least 2")
    store["levels"] = levels
    store["name"] = expr
    codes = col.cat.codes.to_numpy().astype(float)
    codes[codes < 0] = np.nan
    return codes


def _without_intercept(design):
    """The design without its intercept, which the thresholds take the place of; columns
    that are then aliased with the thresholds (``0 + f`` codes every level of f) are dropped."""
    names = list(design.fixef_names)
    keep = [j for j, n in enumerate(names) if n != "(Intercept)"]
    X = design.X[:, keep]
    aliased = [j - 1 for j in aliased_columns(np.column_stack([np.ones(len(X)), X])) if j > 0]
    if aliased:
        dropped = [names[keep[j]] for j in aliased]
        warnings.warn(f"fixed-effect column(s) {', '.join(dropped)} are aliased with the thresholds "
                      "(which absorb the intercept) and were dropped", RankDeficiencyWarning,
                      stacklevel=3)
        keep = [k for i, k in enumerate(keep) if i not in set(aliased)]
    return dataclasses.replace(design, X=np.ascontiguousarray(design.X[:, keep]),
                               fixef_names=[names[j] for j in keep])


def clmm(formula: str, data, *, link: str = "logit", threshold: str = "flexible", n_agq: int = 1,
         weights: np.ndarray | str | None = None, offset: np.ndarray | str | None = None,
         na_action: str = "drop", control: Control | None = None,
         optimizer: str = "lbfgsb") -> CumulativeLinkMixedModel:
    """Fit a cumulative-link mixed model for an ordinal response, as ordinal's ``clmm``.

    ``P(Y ≤ k) = F(θ_k − x'β − z'b)``: the thresholds θ_k are named ``"1|2"``, ``"2|3"``, ...
    and a positive β moves the response to higher categories (ordinal's convention).

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"rating ~ temp + contact + (1 | judge)"``; several terms (crossed
        or nested) and vector terms such as ``(1 + x | g)`` are allowed. The intercept is
        absorbed by the thresholds.
    data : DataFrame
        pandas (or polars, pyarrow, a dict of arrays). The response should be an ordered
        categorical; strings, numbers and unordered categoricals are converted with an
        :class:`~mixedmodels.exceptions.OrdinalResponseWarning` naming the order used. Two
        levels give a binary cumulative-link (e.g. logistic) mixed model.
    link : {"logit", "probit", "cloglog", "loglog", "cauchit"}
    threshold : {"flexible", "equidistant", "symmetric"}
        Equidistant and symmetric thresholds need at least 3 response levels.
    n_agq : int, default 1
        1: Laplace approximation; more: adaptive Gauss-Hermite quadrature with that many nodes
        (one scalar random-effects term only).
    weights : array-like or column name, optional
        Case weights.
    offset : array-like or column name, optional
        Added to x'β.
    na_action : {"drop", "raise"}
    control : Control, optional
        ``maxfun`` and the singular tolerance.
    optimizer : str, default "lbfgsb"
        A registered optimizer (:func:`mixedmodels.optimizers`); L-BFGS-B uses the exact
        gradient.

    Returns
    -------
    CumulativeLinkMixedModel

    Examples
    --------
    >>> import mixedmodels as mm
    >>> o = mm.clmm("rating ~ temp + contact + (1 | judge)", mm.load_dataset("wine"))
    >>> round(o.loglik, 2)
    -81.57
    """
    cumulative_link(link)
    if not isinstance(threshold, str):
        raise TypeError(f"threshold must be a string, got {type(threshold).__name__}")
    make_thresholds(["1", "2", "3"], threshold)  # an unknown name lists the valid ones
    n_agq = check_count("n_agq", n_agq)
    if control is not None and not isinstance(control, Control):
        raise TypeError(f"control must be a mm.Control, got {type(control).__name__}")
    data = as_pandas(data)
    store: dict = {}
    try:
        design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action,
                              response=lambda expr, frame: _response_codes(expr, frame, store),
                              check_levels=False)
    except DataError as err:
        if "no random effects terms" not in str(err):
            raise
        raise DataError(f"no random-effects term in {formula!r}: clmm needs at least one, such as "
                        "(1 | group). For a cumulative-link model without random effects use "
                        "statsmodels' OrderedModel (R: ordinal::clm).") from None
    design = _without_intercept(design)
    model = CumulativeLinkMixedModel(design, store["levels"], link=link, threshold=threshold,
                                     n_agq=n_agq, control=control, optimizer=optimizer)
    model.fit()
    return model
