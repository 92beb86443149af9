"""Mixed-effects learners: random effects around any scikit-learn learner (MERF's EM, our engine).

The model is ``y = f(x) + X_r β + Z b + ε`` (regression) or ``logit P(y = 1) = f(x) + X_r β + Z b``
(classification): ``f`` is the learner, ``X_r β + Z b`` the random part of ``random=`` (its
intercept and mean slopes, and the group deviations). Fitting alternates, as MERF does:

1. the learner is fit to ``y − (X_r β + Z b)`` (the classifier: to PQL working responses,
   with the working weights);
2. the random part is fit by the package's LMM (ML) to the learner's honest residuals,
   out-of-bag or cross-fitted (:mod:`~mixedmodels.learners.honest`); the classifier's by the
   binomial GLMM (Laplace), with the learner's honest logits as an offset;

until the random part's −2 log-likelihood given the learner stops improving: its relative
change is below ``tol``, or it is no lower than at an earlier iteration. The second rule ends
loops that reach a noise floor: a boosted or cross-fitted learner refit to a slightly changed
target moves its predictions by a few hundredths of a residual SD at every iteration
(``history_["target_step"]``), so the deviance then fluctuates by 0.1–0.5 % without
improving, and waiting for ``tol`` only costs learner fits (K per iteration when
cross-fitting).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..exceptions import ConvergenceWarning, DataError, MixedModelsWarning
from .columns import check_fit_frame, check_frame, parse_random, split_columns
from .honest import fit_full, fit_honest, regression_twin, residual_method
from .randompart import RandomPart

__all__ = ["MixedEffectsRegressor", "MixedEffectsClassifier"]

# Gauss-Hermite rule for E[expit(η + s·Z)], Z ~ N(0, 1): the probabilities integrate over the
# random part's uncertainty (a new group's random effects are unknown, not zero)
_GH_X, _GH_W = np.polynomial.hermite.hermgauss(20)


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _target_step(old: np.ndarray, new: np.ndarray, weights: np.ndarray | None, model) -> float:
    """RMS change of the learner's target, weighted, in units of the residual SD (1 for the
    binomial GLMM, whose working responses have variance 1/weight)."""
    w = np.ones(len(old)) if weights is None else weights
    sigma = float(getattr(model, "sigma", 1.0) or 1.0)
    return float(np.sqrt(np.mean(w * (new - old) ** 2)) / sigma)


class _MixedEffectsBase(BaseEstimator):
    """What the regressor and the classifier share: columns, the EM loop, the results."""

    def __init__(self, learner=None, random: str = "(1 | group)", *, learner_features=None,
                 residuals: str = "auto", cv: int = 5, max_iter: int = 20, tol: float = 1e-3,
                 random_state=None):
        self.learner = learner
        self.random = random
        self.learner_features = learner_features
        self.residuals = residuals
        self.cv = cv
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    # -- checks ------------------------------------------------------------------------------
    def _check_settings(self) -> None:
        if self.learner is None:
            raise TypeError(f"{type(self).__name__} needs a learner, e.g. "
                            f"{type(self).__name__}(RandomForestRegressor(), random='(1 | group)')")
        checks = [("max_iter", self.max_iter, 1)]
        if isinstance(self.cv, (int, np.integer, bool)):
            checks.append(("cv", self.cv, 2))
        elif not hasattr(self.cv, "split") and not hasattr(self.cv, "__iter__"):
            raise ValueError(f"cv must be an integer >= 2 or a cross-validation splitter, got {self.cv!r}")
        for name, value, low in checks:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.tol, (int, float)) or not self.tol > 0:
            raise ValueError(f"tol must be a positive number, got {self.tol!r}")

    @staticmethod
    def _weights(sample_weight, n: int) -> np.ndarray | None:
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight, dtype=float).ravel()
        if len(w) != n:
            raise ValueError(f"sample_weight has {len(w)} values but X has {n} rows")
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"sample_weight must be finite and positive ({int(np.sum(~np.isfinite(w) | (w <= 0)))} "
                             "values are not); drop the rows of weight 0")
        return w

    def _prepare(self, X, y):
        self._check_settings()
        spec = parse_random(self.random)
        X = check_frame(X, spec)
        check_fit_frame(X, spec)
        y_arr = np.asarray(y)
        if y_arr.ndim == 2 and y_arr.shape[1] == 1:
            y_arr = y_arr.ravel()
        if y_arr.ndim != 1:
            raise ValueError(f"y must be one-dimensional (one value per row of X), got shape {y_arr.shape}")
        if len(y_arr) != len(X):
            raise ValueError(f"y has {len(y_arr)} values but X has {len(X)} rows")
        feats = split_columns(X, spec, self.learner_features)
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = X.shape[1]
        self.learner_features_ = list(feats)
        return spec, X, y_arr, feats

    def _frames(self, X) -> tuple[pd.DataFrame, pd.DataFrame]:
        check_is_fitted(self, "random_part_")
        spec = self.random_part_.spec
        X = check_frame(X, spec)
        missing = [c for c in self.learner_features_ if c not in X.columns]
        if missing:
            raise DataError(f"X lacks the learner's feature column(s) {', '.join(map(repr, missing))}, "
                            "which the fit used")
        return X[self.learner_features_], X[list(spec.columns)]

    # -- the EM loop -------------------------------------------------------------------------------
    def _em(self, learner, Xl: pd.DataFrame, part: RandomPart, target, random_fit, label: str):
        """Alternate learner and random part; ``target()`` gives the learner's response and
        weights, ``random_fit(prediction)`` refits the random part. Returns the last honest fit."""
        method = residual_method(learner, self.residuals)
        # one seed per fit: the same folds at every iteration, so the loop follows the learner only
        rs = self.random_state
        seed = int(rs) if isinstance(rs, (int, np.integer)) else int(check_random_state(rs).randint(2 ** 31 - 1))
        rows, prev, best, honest, converged = [], None, np.inf, None, False
        for it in range(1, int(self.max_iter) + 1):
            t0 = time.perf_counter()
            resp, weights = target(honest)
            honest = fit_honest(learner, Xl, resp, method=method, weights=weights, cv=self.cv, seed=seed)
            honest.response, honest.weights = resp, weights
            t1 = time.perf_counter()
            model = random_fit(honest.prediction)
            t2 = time.perf_counter()
            dev = -2.0 * float(model.loglik)
            change = np.nan if prev is None else abs(dev - prev) / max(abs(prev), 1e-8)
            # how far the learner's next target moved, in residual SDs (the noise floor)
            step = _target_step(resp, target(honest)[0], weights, model)
            row = {"iteration": it, "deviance": dev, "rel_change": change,
                   "learner_seconds": t1 - t0, "random_seconds": t2 - t1, "target_step": step}
            for _, r in model.varcorr.iterrows():
                key = f"{r['group']}:{r['var1']}" if r["var2"] is None or pd.isna(r["var2"]) else \
                    f"{r['group']}:cor({r['var1']},{r['var2']})"
                key = "Residual" if r["group"] == "Residual" else key
                row[key] = float(r["sdcor"])
            rows.append(row)
            if it > 1 and (change < self.tol or dev >= best):
                converged = True
                break
            prev, best = dev, min(best, dev)
        self.history_ = pd.DataFrame(rows)
        self.n_iter_ = len(rows)
        self.converged_ = converged
        self.residual_method_ = method
        if not converged:
            trace = "\n".join(f"  iteration {r['iteration']:>3}: deviance {r['deviance']:.6f}, relative change "
                              f"{r['rel_change']:.2e}, target step {r['target_step']:.2e}" for r in rows[-6:])
            warnings.warn(
                f"{label}: the EM loop did not converge in max_iter={self.max_iter} iterations (relative "
                f"change of the random part's deviance above tol={self.tol:g}, and still "
                f"improving). Last iterations:\n{trace}\n"
                "Increase max_iter, loosen tol, or fix the learner's random_state (a re-randomized forest "
                "makes the deviance fluctuate); the full trace is in history_.",
                ConvergenceWarning, stacklevel=3)
        if honest.learner is None:  # cross-fitted: the learner for prediction, on the target given
            resp, weights = target(honest)  # the last random part (the next iteration's)
            honest.learner = fit_full(learner, Xl, resp, weights)
        return honest

    # -- results -------------------------------------------------------------------------------
    @property
    def ranef_(self) -> dict[str, pd.DataFrame]:
        """The conditional modes of the random effects, one DataFrame per grouping factor."""
        check_is_fitted(self, "random_part_")
        return self.random_part_.model.ranef

    @property
    def varcorr_(self) -> pd.DataFrame:
        """The variance components (lme4's ``as.data.frame(VarCorr(m))``)."""
        check_is_fitted(self, "random_part_")
        return self.random_part_.model.varcorr

    @property
    def fixef_(self) -> pd.Series:
        """The random part's fixed effects: intercept and mean slopes of the random-effect columns."""
        check_is_fitted(self, "random_part_")
        return self.random_part_.model.fixef

    @property
    def model_(self):
        """The fitted random part (a LinearMixedModel or GeneralizedLinearMixedModel) at the last iteration."""
        check_is_fitted(self, "random_part_")
        return self.random_part_.model

    def _components(self, X):
        Xl, Xr = self._frames(X)
        f = np.asarray(self.learner_.predict(Xl), dtype=float).ravel()
        fixed, rand, new = self.random_part_.components(Xr)
        if len(X) and new.all():
            groups = ", ".join(map(repr, self.random_part_.spec.groups))
            warnings.warn(f"every row of X is in a group not seen in the fit ({groups}): the predictions "
                          "are at the population level (the learner plus the mean intercept and slopes; "
                          "random effects 0), as for any new group", MixedModelsWarning, stacklevel=3)
        return f, fixed, rand, new

    def decompose(self, X) -> pd.DataFrame:
        """Each prediction split into its parts.

        Returns
        -------
        DataFrame
            ``learner`` (f(x)), ``fixed`` (the random part's intercept and mean slopes),
            ``random`` (the group's deviation Zb; 0 for a new group), ``new_group`` and their sum
            (``prediction``; the classifier's is on the logit scale, ``probability`` its mean).
        """
        f, fixed, rand, new = self._components(X)
        out = pd.DataFrame({"learner": f, "fixed": fixed, "random": rand, "new_group": new},
                           index=getattr(X, "index", None))
        out["prediction"] = f + fixed + rand
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True     # grouping columns are labels
        tags.non_deterministic = True     # the learner may be
        return tags


class MixedEffectsRegressor(RegressorMixin, _MixedEffectsBase):
    """A scikit-learn regressor with random effects: ``y = f(x) + X_r β + Z b + ε``.

    ``f`` is any scikit-learn regressor; the random part is a linear mixed model fit by the
    package's engine (maximum likelihood) to the learner's out-of-bag or cross-fitted residuals,
    alternating as MERF does (see :mod:`mixedmodels.learners.estimators`).

    Parameters
    ----------
    learner : scikit-learn regressor
        Cloned at each iteration (``learner_`` is the last fit).
    random : str
        Random-effects terms in lme4 syntax, e.g. ``"(1 + x1 | school)"`` or
        ``"(1 | school) + (1 | district)"``. The columns it names are taken from X; the random
        part also holds their fixed effects (intercept and mean slopes).
    learner_features : list of str, optional
        The learner's columns; default every column of X that ``random`` does not use.
    residuals : {"auto", "oob", "crossfit", "insample"}
        The residuals the random part is fit to: out-of-bag (bagged learners that bootstrap;
        ``"auto"``'s choice for them), ``cv``-fold cross-fitted (``"auto"``'s choice otherwise),
        or in-sample (MERF's; right for learners that do not overfit, such as a linear model;
        a forest's in-sample residuals shrink the variance components towards 0).
    cv : int or cross-validation splitter
        Folds for ``"crossfit"``: a number (shuffled K-fold, seeded by ``random_state``) or a
        splitter or list of (train, test) pairs, e.g. ``KFold(5, shuffle=True, random_state=0)``.
    max_iter : int
        EM iterations at most (MERF's default, 20).
    tol : float
        Convergence: the random part's −2 log-likelihood stops improving (relative change below
        ``tol``, or no lower than at an earlier iteration).
    random_state : int, optional
        Seeds the cross-fitting folds (the learner's own ``random_state`` seeds the learner).

    Attributes
    ----------
    learner_ : fitted learner
    ranef_ : dict of DataFrame
        Conditional modes per grouping factor.
    varcorr_ : DataFrame
        Variance components.
    fixef_ : Series
        The random part's intercept and mean slopes.
    history_ : DataFrame
        Per iteration: the deviance, its relative change, seconds in the learner and in the random
        part, ``target_step`` (how far the learner's next target moved, root mean square, in
        residual SDs), and the standard deviations and correlations.
    n_iter_ : int
    converged_ : bool
    model_ : LinearMixedModel
        The random part's last fit.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestRegressor
    >>> est = MixedEffectsRegressor(RandomForestRegressor(100), random="(1 + x1 | school)")  # doctest: +SKIP
    >>> est.fit(X, y).predict(X_new)                                                        # doctest: +SKIP
    """

    def fit(self, X, y, sample_weight=None) -> "MixedEffectsRegressor":
        """Fit the learner and the random part by alternating them (see the class docstring).

        ``sample_weight`` (optional, positive) goes to the learner's fit and is the random part's
        precision weights (lmer's ``weights=``: the residual variance of row i is σ²/wᵢ)."""
        spec, X, y, feats = self._prepare(X, y)
        sw = self._weights(sample_weight, len(X))
        if is_classifier(self.learner):
            raise TypeError(f"{type(self.learner).__name__} is a classifier; MixedEffectsRegressor needs "
                            "a regressor (use MixedEffectsClassifier for a binary response)")
        try:
            y = y.astype(float)
        except (TypeError, ValueError):
            raise DataError("y must be numeric for MixedEffectsRegressor") from None
        if not np.all(np.isfinite(y)):
            raise DataError(f"y has {int(np.sum(~np.isfinite(y)))} missing or infinite values; drop those rows")
        part = RandomPart(spec, X[list(spec.columns)], weights=sw)
        part.fit(y)                       # the start: the random part alone
        state = {"part": part.fitted()}

        def target(_honest):
            return y - state["part"], sw

        def random_fit(pred):
            model = part.fit(y - pred)
            state["part"] = part.fitted()
            return model

        honest = self._em(self.learner, X[feats].reset_index(drop=True), part, target, random_fit,
                          "MixedEffectsRegressor")
        self.learner_ = honest.learner
        self.random_part_ = part
        self.oob_fallback_rows_ = honest.n_fallback
        return self

    def predict(self, X) -> np.ndarray:
        """``f(x) + X_r β + Z b``; rows of a new (or missing) group get the population level
        (random effects 0)."""
        f, fixed, rand, _ = self._components(X)
        return f + fixed + rand


class MixedEffectsClassifier(ClassifierMixin, _MixedEffectsBase):
    """A binary scikit-learn classifier with random effects: ``logit P(y=1) = f(x) + X_r β + Z b``.

    The algorithm (PQL for the learner, Laplace for the random part): at each iteration the
    learner is fit to the binomial GLMM's working responses ``f + (y − μ)/(μ(1 − μ))`` with
    the working weights ``μ(1 − μ)`` (a regression: a classifier learner is replaced by its
    regression counterpart with the same settings, e.g. HistGradientBoostingClassifier →
    HistGradientBoostingRegressor, since a classifier cannot take an offset); then the
    random part is fit by the package's binomial GLMM (Laplace) with the learner's honest
    logits as an offset. ``predict_proba`` averages the logistic over the random part's
    uncertainty (a known group's conditional variance; a new group's full variance), which is
    what calibrates the probabilities of new groups.

    Binary only; for more than two classes wrap it one-vs-rest,
    ``sklearn.multiclass.OneVsRestClassifier(MixedEffectsClassifier(...))`` (one binomial mixed
    model per class; a multiclass y raises a ValueError that says so).

    Parameters are those of :class:`MixedEffectsRegressor`.

    Attributes
    ----------
    classes_ : ndarray
        The two labels; the second is the event (as R).
    learner_ : fitted regressor
        Of the working responses (on the logit scale).
    ranef_, varcorr_, fixef_, history_, n_iter_, converged_, model_
        As :class:`MixedEffectsRegressor` (``model_`` a GeneralizedLinearMixedModel).
    """

    def fit(self, X, y, sample_weight=None) -> "MixedEffectsClassifier":
        """Fit by alternating PQL steps of the learner and Laplace fits of the random part.

        ``sample_weight`` (optional, positive) multiplies the working weights and is the GLMM's
        prior weights."""
        spec, X, y, feats = self._prepare(X, y)
        sw = self._weights(sample_weight, len(X))
        if pd.isna(pd.Series(y)).any():
            raise DataError(f"y has {int(pd.isna(pd.Series(y)).sum())} missing values; drop those rows")
        classes, y01 = np.unique(y, return_inverse=True)
        if len(classes) != 2:
            more = ("; for more than two, wrap it one-vs-rest: sklearn.multiclass.OneVsRestClassifier("
                    "MixedEffectsClassifier(...)), one binomial mixed model per class, probabilities "
                    "normalized to sum to 1") if len(classes) > 2 else ""
            raise ValueError(f"MixedEffectsClassifier is for a binary response (two classes); y has "
                             f"{len(classes)} class(es): {list(classes)[:10]}{more}")
        self.classes_ = classes
        y01 = y01.astype(float)
        learner = regression_twin(self.learner)
        part = RandomPart(spec, X[list(spec.columns)], classifier=True, weights=sw)
        part.fit(y01, offset=np.zeros(len(y01)))
        state = {"part": part.fitted(), "f": np.zeros(len(y01))}

        def target(_honest):
            eta = state["f"] + state["part"]
            mu = np.clip(_expit(eta), 1e-6, 1 - 1e-6)
            w = mu * (1.0 - mu)
            return state["f"] + (y01 - mu) / w, w if sw is None else w * sw

        def random_fit(pred):
            state["f"] = np.clip(pred, -30.0, 30.0)
            model = part.fit(y01, offset=state["f"])
            state["part"] = part.fitted()
            return model

        honest = self._em(learner, X[feats].reset_index(drop=True), part, target, random_fit,
                          "MixedEffectsClassifier")
        self.learner_ = honest.learner
        self.random_part_ = part
        self.oob_fallback_rows_ = honest.n_fallback
        return self

    def decision_function(self, X) -> np.ndarray:
        """The logit ``f(x) + X_r β + Z b`` (random effects 0 for new groups)."""
        f, fixed, rand, _ = self._components(X)
        return f + fixed + rand

    def predict_proba(self, X) -> np.ndarray:
        """``[P(y = classes_[0]), P(y = classes_[1])]`` per row: the logistic of the logit,
        averaged over the random part's uncertainty (Gauss-Hermite, 20 nodes)."""
        f, fixed, rand, _ = self._components(X)
        _, Xr = self._frames(X)
        sd = np.sqrt(self.random_part_.random_variance(Xr))
        eta = (f + fixed + rand)[:, None] + np.sqrt(2.0) * sd[:, None] * _GH_X[None, :]
        p1 = _expit(eta) @ _GH_W / np.sqrt(np.pi)
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X) -> np.ndarray:
        """The more probable label."""
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]

    def decompose(self, X) -> pd.DataFrame:
        out = super().decompose(X)
        out["probability"] = self.predict_proba(X)[:, 1]
        return out

    decompose.__doc__ = _MixedEffectsBase.decompose.__doc__
