"""Honest predictions of a learner on its own training rows: out-of-bag or cross-fitted.

A forest's in-sample predictions nearly reproduce its target, so residuals from them have
almost no group structure left and the variance components shrink towards zero. The random
part is therefore fit on residuals from predictions that did not see the row: out-of-bag
(bagged learners, free with the fit) or K-fold cross-fitted (any learner, K extra fits).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.model_selection import KFold, check_cv

__all__ = ["HonestFit", "fit_honest", "residual_method", "regression_twin"]

_METHODS = ("auto", "oob", "crossfit", "insample")


@dataclass
class HonestFit:
    """A fitted learner and its honest predictions on the training rows."""

    learner: object            # fitted on all rows (None while cross-fitting: fit at the end)
    prediction: np.ndarray     # out-of-bag / cross-fitted / in-sample
    method: str
    n_fallback: int = 0        # rows without an out-of-bag prediction (in-sample used)


def _bagged(learner) -> bool:
    return bool(getattr(learner, "bootstrap", False)) and hasattr(type(learner), "estimators_samples_")


def residual_method(learner, method: str) -> str:
    """The method ``"auto"`` stands for with this learner: ``"oob"`` for bagged learners that
    bootstrap (random forests, bagging), ``"crossfit"`` otherwise."""
    if method not in _METHODS:
        raise ValueError(f"residuals must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    if method == "auto":
        return "oob" if _bagged(learner) else "crossfit"
    if method == "oob" and not _bagged(learner):
        raise ValueError(f"residuals='oob' needs a bagged learner that bootstraps (a random forest or "
                         f"bagging ensemble with bootstrap=True); {type(learner).__name__} is not one: "
                         "use residuals='crossfit'")
    return method


def _fit(learner, X, y, w):
    if w is None:
        return learner.fit(X, y)
    if "sample_weight" not in inspect.signature(learner.fit).parameters:
        raise TypeError(f"{type(learner).__name__}.fit takes no sample_weight, which this fit needs (the "
                        "classifier's working weights, or the sample_weight given); choose a learner that does")
    return learner.fit(X, y, sample_weight=w)


def _oob_prediction(forest, X) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the trees that did not draw a row (and how many did not), per row."""
    n = len(X)
    total, count = np.zeros(n), np.zeros(n)
    data = X.to_numpy(dtype=np.float32) if hasattr(X, "to_numpy") else np.asarray(X, dtype=np.float32)
    feats = getattr(forest, "estimators_features_", None)
    for k, (tree, rows) in enumerate(zip(forest.estimators_, forest.estimators_samples_)):
        out = np.ones(n, dtype=bool)
        out[rows] = False
        if not out.any():
            continue
        cols = data[out] if feats is None else data[out][:, feats[k]]
        pred = tree.predict(cols, check_input=False) if feats is None else tree.predict(cols)
        total[out] += np.asarray(pred, dtype=float).ravel()
        count[out] += 1
    return total, count


def fit_honest(learner, X, y: np.ndarray, *, method: str, weights: np.ndarray | None = None,
               cv: int = 5, seed: int | None = None) -> HonestFit:
    """Fit a clone of ``learner`` to ``(X, y)`` and predict the training rows honestly.

    Parameters
    ----------
    learner : scikit-learn regressor (unfitted; it is cloned)
    X : DataFrame or array
    y : ndarray
    method : {"oob", "crossfit", "insample"}
    weights : ndarray, optional
        Sample weights for the learner (the classifier's working weights).
    cv : int or cross-validation splitter
        Folds for ``"crossfit"``: a number (shuffled K-fold, seeded by ``seed``) or a splitter
        or iterable of (train, test) index pairs, as scikit-learn's ``cv=``.
    seed : int, optional
        For the folds.
    """
    if method == "crossfit":
        pred = np.empty(len(y))
        folds = KFold(n_splits=cv, shuffle=True, random_state=seed) if isinstance(cv, (int, np.integer)) \
            else check_cv(cv)
        for train, test in folds.split(np.zeros((len(y), 1))):
            part = clone(learner)
            Xtr = X.iloc[train] if hasattr(X, "iloc") else X[train]
            Xte = X.iloc[test] if hasattr(X, "iloc") else X[test]
            _fit(part, Xtr, y[train], None if weights is None else weights[train])
            pred[test] = np.asarray(part.predict(Xte), dtype=float).ravel()
        return HonestFit(None, pred, method)
    fitted = _fit(clone(learner), X, y, weights)
    if method == "insample":
        return HonestFit(fitted, np.asarray(fitted.predict(X), dtype=float).ravel(), method)
    total, count = _oob_prediction(fitted, X)
    missing = count == 0
    pred = np.divide(total, count, out=np.zeros_like(total), where=~missing)
    if missing.any():  # too few trees for every row to be out of bag somewhere
        rows = X.iloc[np.flatnonzero(missing)] if hasattr(X, "iloc") else X[missing]
        pred[missing] = np.asarray(fitted.predict(rows), dtype=float).ravel()
    return HonestFit(fitted, pred, method, int(missing.sum()))


def fit_full(learner, X, y: np.ndarray, weights: np.ndarray | None = None):
    """A clone of ``learner`` fit on all rows (the final learner after cross-fitting)."""
    return _fit(clone(learner), X, y, weights)


def regression_twin(learner):
    """The regressor a classifier learner stands for on the working responses.

    A scikit-learn classifier cannot take the random part as an offset, so the classifier fits
    its regression counterpart (same module, ``...Classifier`` → ``...Regressor``) with the
    shared parameters (the loss and split criterion are the regressor's defaults) to the
    working responses. A regressor is returned as it is.

    Raises
    ------
    TypeError
        For a classifier with no regression counterpart; the message says what to pass.
    """
    if not is_classifier(learner):
        if not hasattr(learner, "fit") or not hasattr(learner, "predict"):
            raise TypeError(f"learner must be a scikit-learn estimator with fit and predict, got "
                            f"{type(learner).__name__}")
        return learner
    cls = type(learner)
    name = cls.__name__
    module = inspect.getmodule(cls)
    twin = getattr(module, name.replace("Classifier", "Regressor"), None) if "Classifier" in name else None
    if twin is None:  # classes defined in private modules are re-exported by the package
        package = __import__(cls.__module__.rsplit("._", 1)[0], fromlist=["_"])
        twin = getattr(package, name.replace("Classifier", "Regressor"), None) if "Classifier" in name else None
    if twin is None:
        raise TypeError(
            f"{name} has no regression counterpart to fit the working responses of the binomial "
            "mixed model (a scikit-learn classifier cannot take the random effects as an offset); "
            "pass a regressor, e.g. HistGradientBoostingRegressor() or RandomForestRegressor()")
    accepted = set(twin().get_params())
    params = {k: v for k, v in learner.get_params(deep=False).items()
              if k in accepted and k not in ("criterion", "loss", "class_weight", "scoring")}
    return twin(**params)
