"""Model averaging with Akaike weights: fixed effects (full and conditional averages) and predictions.

Follows Burnham & Anderson (2002) and R's ``MuMIn::model.avg``: models are ranked by an
information criterion (AICc by default), weighted by ``exp(−Δ/2)`` normalised to 1, and

- the *full* average of a coefficient counts it as 0 in models that lack it
  (``Σ w_i β_i``), which shrinks weakly supported effects towards 0;
- the *conditional* average uses only the models that contain it, with their weights
  renormalised (``Σ_{i∋j} w_i β_i / Σ_{i∋j} w_i``);
- standard errors are Burnham & Anderson's revised unconditional ones,
  ``sqrt(Σ w_i (se_i² + (β_i − β̄)²))``, which add the spread between models to the
  within-model variance;
- ``importance`` is the sum of the weights of the models containing the coefficient.

Averaged coefficients are meaningful only when a coefficient means the same thing in every
model (same coding, same centring, no interaction changing what a main effect is).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ..exceptions import ModelComparisonWarning
from ..spec.design import design_matrix, fmt_level, r_column_name
from .compare import aic_table, model_names

__all__ = ["model_average", "ModelAverage", "predict_newdata"]


# --- predictions on new data --------------------------------------------------------------------

def _group_labels(data: pd.DataFrame, group: str) -> np.ndarray:
    """Level labels of ``group`` for each row, spelled as the design spells them."""
    parts = [p.strip() for p in group.split(":")]
    pieces = []
    for part in parts:
        if part not in data.columns:
            raise ValueError(f"newdata has no column {part!r} (grouping factor {group!r}); add it, "
                             "or predict with re_form='fixed'")
        col = data[part]
        if isinstance(col.dtype, pd.CategoricalDtype):
            pieces.append(col.astype(str).to_numpy(dtype=object))
        elif pd.api.types.is_numeric_dtype(col):
            pieces.append(np.array([fmt_level(v) for v in col.to_numpy()], dtype=object))
        else:
            pieces.append(col.astype(str).to_numpy(dtype=object))
    if len(pieces) == 1:
        return pieces[0]
    return np.array([":".join(map(str, row)) for row in zip(*pieces)], dtype=object)


def _select_columns(matrix, wanted: list[str], what: str) -> np.ndarray:
    names = [r_column_name(c) for c in matrix.columns]
    index = {n: i for i, n in enumerate(names)}
    missing = [w for w in wanted if w not in index]
    if missing:
        raise ValueError(f"newdata gives no column {missing[0]!r} for the {what}")
    arr = np.asarray(matrix, dtype=float)
    return arr[:, [index[w] for w in wanted]]


def predict_newdata(model, newdata: pd.DataFrame, *, re_form: str = "conditional",
                    type: str = "response") -> np.ndarray:
    """Predictions of a fitted model for new rows (lme4's ``allow.new.levels = TRUE``).

    Parameters
    ----------
    model : fitted LMM or GLMM
    newdata : pandas.DataFrame
        The predictor columns (the response is not needed).
    re_form : {"conditional", "fixed"}
        Add the conditional modes of the random effects (levels not seen in the fit get 0),
        or use the fixed effects only (population-level prediction).
    type : {"response", "link"}
        For GLMMs: the mean (inverse link) or the linear predictor.

    Returns
    -------
    ndarray
    """
    if re_form not in ("conditional", "fixed"):
        raise ValueError(f"re_form must be 'conditional' or 'fixed', got {re_form!r}")
    design = model.design
    fixed = design.fixed_spec.get_model_matrix(newdata, na_action="ignore")
    X = _select_columns(fixed, list(design.fixef_names), "fixed effects")
    eta = X @ np.asarray(model.fixef, dtype=float)
    for expr in design.formula.offsets:
        mat = design_matrix(f"0 + {expr}", newdata, "offset")
        eta = eta + np.asarray(mat, dtype=float).ravel()
    if re_form == "conditional":
        for term, b in zip(design.terms, model.random_effects()):
            values = _select_columns(term.model_spec.get_model_matrix(newdata, na_action="ignore"),
                                     list(term.columns), f"random-effects term ({term.lhs} | {term.group})")
            pos = term.levels.get_indexer(pd.Index(_group_labels(newdata, term.group)).astype(str))
            known = pos >= 0
            if known.any():
                eta[known] += np.einsum("ij,ij->i", values[known], b[pos[known]])
    if type not in ("response", "link"):
        raise ValueError(f"type must be 'response' or 'link', got {type!r}")
    return _mean(model, eta) if type == "response" else eta


def _mean(model, eta: np.ndarray) -> np.ndarray:
    """The mean from the linear predictor, through the model family's link (identity for LMMs)."""
    return np.asarray(model.family.link.inverse(eta), dtype=float)


# --- averaging -----------------------------------------------------------------------------------

@dataclasses.dataclass
class ModelAverage:
    """Result of :func:`model_average`.

    Attributes
    ----------
    table : pandas.DataFrame
        The ranking (criterion, Δ, weight per model), best first.
    coefficients : pandas.DataFrame
        Per fixed effect: ``full``, ``se_full``, ``conditional``, ``se_conditional``,
        ``importance`` (sum of weights of the models containing it) and ``n_models``.
    models : dict
        The models averaged (ML refits where REML fits were refit).
    weights : pandas.Series
        The Akaike weights by model name.
    criterion : str
    """

    table: pd.DataFrame
    coefficients: pd.DataFrame
    models: dict
    weights: pd.Series
    criterion: str

    def predict(self, newdata: pd.DataFrame | None = None, *, re_form: str = "conditional",
                type: str = "response") -> np.ndarray:
        """Weighted average of the models' predictions (fitted values when ``newdata`` is None).

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
        re_form : {"conditional", "fixed"}
            With or without the conditional modes of the random effects.
        type : {"response", "link"}
            Scale of the averaged prediction for GLMMs.
        """
        total = None
        for name, model in self.models.items():
            if newdata is None:
                if re_form == "fixed":
                    p = model.design.X @ model.beta + model.offset
                    if type == "response":
                        p = _mean(model, p)
                else:
                    p = np.asarray(model.fitted(type=type), dtype=float)
            else:
                p = predict_newdata(model, newdata, re_form=re_form, type=type)
            total = self.weights[name] * p if total is None else total + self.weights[name] * p
        return total

    def __repr__(self) -> str:
        return (f"ModelAverage over {len(self.models)} models by {self.criterion}\n"
                f"{self.table.to_string()}\n\n{self.coefficients.to_string()}")


def _par_avg(est: np.ndarray, se: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean and Burnham & Anderson's revised unconditional SE."""
    avg = float(np.sum(w * est))
    return avg, float(np.sqrt(np.sum(w * (se ** 2 + (est - avg) ** 2))))


def _named(models) -> tuple[list[str], list]:
    if isinstance(models, Mapping):
        return [str(k) for k in models], list(models.values())
    items = list(models)
    return model_names(items, frame_depth=3), items


def model_average(models: Mapping | Iterable, *, criterion: str = "AICc",
                  refit: bool = True) -> ModelAverage:
    """Average fixed effects and predictions over models, weighted by Akaike weights.

    Parameters
    ----------
    models : dict or list of fitted models
        Fit to the same data (checked). A dict gives the names.
    criterion : {"AICc", "AIC", "BIC", "cAIC"}
        The criterion behind the weights (MuMIn's default is AICc).
    refit : bool, default True
        When REML fits differ in their fixed effects their REML likelihoods are not comparable:
        refit them by ML first (and average the ML fits). With False they are used as they are
        and :func:`~mixedmodels.postestimation.compare.aic_table` warns.

    Returns
    -------
    ModelAverage
        ``.coefficients`` (full and conditional averages with unconditional SEs and
        importance), ``.table`` (weights), ``.predict(newdata)``.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> from mixedmodels.postestimation.averaging import model_average
    >>> gpa = mm.load_dataset("gpa")
    >>> avg = model_average({"a": mm.lmer("gpa ~ occasion + (1 + occasion | student)", gpa),
    ...                      "b": mm.lmer("gpa ~ occasion + sex + (1 + occasion | student)", gpa)})
    >>> round(float(avg.coefficients.loc["sexmale", "importance"]), 3)
    0.983
    """
    names, items = _named(models)
    if not items:
        raise ValueError("model_average needs at least one model")
    reml_flags = [bool(m.reml) for m in items]
    differ = len({tuple(m.fixef.index) for m in items}) > 1
    if refit and any(reml_flags) and (differ or not all(reml_flags)) and criterion.upper() != "CAIC":
        items = [m.refit_ml() if m.reml else m for m in items]
    named = dict(zip(names, items))
    table = aic_table(named, criterion=criterion)
    weights = table["weight"].reindex(names)
    all_coefs: list[str] = []
    for m in items:
        for c in m.fixef.index:
            if c not in all_coefs:
                all_coefs.append(c)
    rows = []
    w_all = weights.to_numpy()
    for coef in all_coefs:
        est = np.zeros(len(items))
        se = np.zeros(len(items))
        has = np.zeros(len(items), dtype=bool)
        for i, m in enumerate(items):
            if coef in m.fixef.index:
                has[i] = True
                est[i] = float(m.fixef[coef])
                se[i] = float(np.sqrt(m.vcov.loc[coef, coef]))
        full, se_full = _par_avg(est, se, w_all)
        wc = w_all[has] / w_all[has].sum()
        cond, se_cond = _par_avg(est[has], se[has], wc)
        rows.append({"coef": coef, "full": full, "se_full": se_full, "conditional": cond,
                     "se_conditional": se_cond, "importance": float(w_all[has].sum()),
                     "n_models": int(has.sum())})
    coefs = pd.DataFrame(rows).set_index("coef")
    coefs.index.name = None
    if len(items) > 1 and weights.max() > 0.999:
        warnings.warn(f"one model ({weights.idxmax()}) carries practically all the weight; the "
                      "average is that model's estimates.", ModelComparisonWarning, stacklevel=2)
    return ModelAverage(table, coefs, named, weights, table.columns[1])
