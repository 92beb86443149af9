"""The model contract: what every fitted mixed model offers, and how other layers extend it.

:class:`MixedModel` declares the state a fitted model holds (``design``, ``family``,
``control``, ``factor``, ``optinfo``) and the contract post-estimation relies on:
:meth:`~MixedModel.fit`, :meth:`~MixedModel.refit` (lme4's ``refit``, MixedModels.jl's
``refit!``), :meth:`~MixedModel.objective`, :meth:`~MixedModel.conditional_covariance`,
the estimates, and pickling. The LMM and the GLMM are its subclasses.

Post-estimation and presentation live in higher layers. They add the convenience methods a
user expects on the model (``m.confint()``, ``m.predict()``, ``m.summary()``, plots) by
registering their implementation with :func:`implements`; the method here looks it up. So
models import nothing from the layers above them, and the layers above import no concrete
model class. ``import mixedmodels`` imports none of them (issue 18: the import stays light); the
first method that needs one imports them all (:func:`load_extensions`), so a model built from
its module directly, or unpickled in a fresh process, has every method.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.factor import BlockedFactor
from ..spec.design import ModelDesign
from .family import Family
from .optim import Control, OptSummary

__all__ = ["MixedModel", "JointLikelihoodModel", "implements", "extension", "RowValues",
           "load_extensions", "Registered", "printed_by_presentation"]


class RowValues(pd.Series):
    """Per-observation values (``fitted()``, ``residuals()``) indexed by the data's row labels.

    Indexing with a NumPy integer array or a tuple (``r[order]``, ``r[:, None]``) is positional
    and gives an array, as on the arrays these methods returned before; labels, lists, slices
    and boolean masks index as on any Series. Arithmetic gives plain Series.
    """

    @property
    def _constructor(self):
        return pd.Series

    def __getitem__(self, key):
        if isinstance(key, tuple) or (isinstance(key, np.ndarray) and key.dtype.kind in "iu"):
            return np.asarray(self)[key]
        return super().__getitem__(key)

_EXTENSIONS: dict[str, Callable] = {}
# where each extension lives, for the error when it is missing
_PROVIDERS = {
    "coef_table_ddf": "mixedmodels.postestimation.ddf", "confint": "mixedmodels.postestimation.profile",
    "predict": "mixedmodels.postestimation.predict", "simulate": "mixedmodels.postestimation.predict",
    "ranef_table": "mixedmodels.postestimation.ranef", "summary": "mixedmodels.presentation.results",
    "repr": "mixedmodels.presentation.results", "plot_ranef": "mixedmodels.presentation.plots",
    "plot_residuals": "mixedmodels.presentation.plots",
    "plot_trajectories": "mixedmodels.presentation.plots",
    "plot_ranef_qq": "mixedmodels.presentation.plots", "plot_forest": "mixedmodels.presentation.plots",
    "plot_residuals_by_group": "mixedmodels.presentation.plots",
    "plot_effects": "mixedmodels.presentation.plots_more", "plot_profile": "mixedmodels.presentation.plots_more",
    "plot_simulated_residuals": "mixedmodels.presentation.plots_more",
}


def implements(name: str) -> Callable[[Callable], Callable]:
    """Decorator: register ``fun(model, ...)`` as the implementation of ``MixedModel.<name>``."""
    def deco(fun: Callable) -> Callable:
        _EXTENSIONS[name] = fun
        return fun
    return deco


# The modules whose import registers something on the classes of the layers below them: the
# model's methods (implements), the statsmodels-style aliases and the result objects' printing
# (presentation.aliases, presentation.reprs), mm.bayes(...) (presentation.blme), and the optimizer
# that lives with the iterative solver. Named, not imported: models import nothing above them.
EXTENSION_MODULES = (
    "mixedmodels.models.iterative",
    "mixedmodels.postestimation.ddf", "mixedmodels.postestimation.profile",
    "mixedmodels.postestimation.predict", "mixedmodels.postestimation.ranef",
    "mixedmodels.postestimation.streamed", "mixedmodels.postestimation.ordinal_profile",
    "mixedmodels.presentation.results", "mixedmodels.presentation.reprs",
    "mixedmodels.presentation.aliases", "mixedmodels.presentation.plots",
    "mixedmodels.presentation.plots_more", "mixedmodels.presentation.blme",
)
_LOADED: list[bool] = []


def load_extensions() -> None:
    """Import every module that registers methods on the model and result classes (once).

    ``import mixedmodels`` does not, to stay light; the package's first public name, the first
    registered method (``m.summary()``, ``m.confint()``, ``m.params``, plots) and the first print
    of a result object call this, so how the object was made (``mm.lmer``, the model class's
    own module, ``pickle.load`` in a fresh process) does not matter. No lock of its own: the
    import system's per-module locks make other threads wait for a module being imported, and a
    call made while one of these modules is being imported (same thread) gets it half-imported
    instead of recursing.
    """
    if _LOADED:
        return
    for module in EXTENSION_MODULES:
        importlib.import_module(module)
    _LOADED.append(True)


def extension(name: str) -> Callable:
    """The registered implementation of ``name`` (imported on first use: :func:`load_extensions`)."""
    if name not in _EXTENSIONS:
        load_extensions()
    try:
        return _EXTENSIONS[name]
    except KeyError:
        where = _PROVIDERS.get(name, "mixedmodels")
        raise NotImplementedError(f"{name} is provided by {where}, which did not register it; "
                                  f"import {where} to register it") from None


class Registered:
    """A class attribute that a module of a higher layer replaces when it is imported (the
    aliases ``m.params``, the result objects' ``__repr__``); until then, its first use imports
    those modules (:func:`load_extensions`) and returns what they put in its place.

    Parameters
    ----------
    fallback : callable, optional
        What to use if nothing replaces it; else what the base classes have.
    """

    def __init__(self, fallback: Any = None):
        self.fallback = fallback

    def __set_name__(self, owner: type, name: str) -> None:
        self.owner, self.name = owner, name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        load_extensions()
        attr = self.owner.__dict__.get(self.name, self)
        if attr is self:     # not registered (yet): the class's own, else its base classes', as before
            attr = self.fallback or next((k.__dict__[self.name] for k in self.owner.__mro__[1:]
                                          if self.name in k.__dict__), None)
            if attr is None:
                raise AttributeError(f"{self.owner.__name__!r} object has no attribute {self.name!r} "
                                     f"(none of {', '.join(EXTENSION_MODULES)} registered it)")
        return attr.__get__(obj, objtype) if hasattr(attr, "__get__") else attr


def printed_by_presentation(cls: type) -> type:
    """Class decorator for result objects whose printing ``mixedmodels.presentation.reprs``
    registers: their ``__repr__`` and ``_repr_html_`` import it at first use
    (:class:`Registered`); the class's own ``__repr__`` stays the fallback."""
    for name in ("__repr__", "_repr_html_"):
        placeholder = Registered(cls.__dict__.get(name))
        placeholder.__set_name__(cls, name)
        setattr(cls, name, placeholder)
    return cls


class MixedModel:
    """Base class of fitted mixed models.

    Attributes
    ----------
    design : ModelDesign
        The fixed and random-effects design (from :func:`~mixedmodels.spec.design.build_design`).
    family : Family
        The response distribution and link; ``gaussian()`` for the LMM.
    control : Control
        Optimizer, tolerances (PIRLS's included) and checks.
    factor : BlockedFactor
        The blocked Cholesky factor of the engine.
    optinfo : OptSummary or None
        The optimization record, after :meth:`fit`.
    reml : bool
    """

    design: ModelDesign
    family: Family
    control: Control
    factor: BlockedFactor
    optinfo: OptSummary | None
    reml: bool = False
    #: R's class name, shown in the summary header
    r_class = "merMod"

    # -- the contract subclasses implement -------------------------------------------------
    def fit(self, start: Any = None) -> "MixedModel":
        """Estimate the parameters; returns self."""
        raise NotImplementedError

    def objective(self, theta: np.ndarray, *args) -> float:
        """The criterion :meth:`fit` minimizes, at θ (and, for GLMMs, β)."""
        raise NotImplementedError

    def with_design(self, design: ModelDesign, *, control: Control | None = None) -> "MixedModel":
        """An unfitted model of the same kind and settings (family, REML, quadrature, control)
        on another design: a subset of the rows (:meth:`ModelDesign.subset`), fewer
        random-effects columns (:meth:`ModelDesign.drop_re_columns`), another fixed part. As
        lme4's ``update``; call :meth:`fit` on it."""
        raise NotImplementedError

    def _with_data(self, y: np.ndarray | None, weights: np.ndarray | None,
                   control: Control) -> "MixedModel":
        """An unfitted copy of this model with a new response and/or prior weights."""
        design = self.design if y is None else self.design.with_response(y)
        if weights is not None:
            design = design.with_response(design.y, weights)
        return self.with_design(design, control=control)

    def _small(self) -> bool:
        """Whether an evaluation is too small for BLAS threads to pay (core/threads.py): fits and
        profiles then run on one thread. The linear and generalized models say; others do not."""
        return False

    def warm_start(self) -> Any:
        """The start :meth:`refit` uses: this fit's estimates."""
        return self.theta

    def refit(self, y: np.ndarray | pd.Series | None = None, *, weights: np.ndarray | None = None,
              start: Any = None, control: Control | None = None) -> "MixedModel":
        """The same model fit again, to a new response and/or new prior weights.

        As lme4's ``refit(m, newresp)``: the design (fixed and random effects, offsets) is
        kept, nothing is re-parsed, and the fit starts at this model's estimates.

        Parameters
        ----------
        y : array-like, optional
            The new response on the fit's scale (proportions for binomial trials), one value
            per observation used. Default: the current response.
        weights : array-like, optional
            New prior weights (LMM), or new total binomial weights (GLMM): finite and
            positive. A zero weight raises ``ValueError``: lmer/glmer drop such a row from the
            fit, while refit keeps the fit's observations; fit again without those rows.
        start : optional
            Start values (default: this fit's estimates).
        control : Control, optional
            Default: this model's control.

        Returns
        -------
        MixedModel
            A new fitted model; this one is unchanged.
        """
        n = self.nobs
        y = None if y is None else np.asarray(y, dtype=float).ravel()
        if y is not None and len(y) != n:
            raise ValueError(f"refit: the new response has {len(y)} values; the model uses {n} "
                             "observations")
        if y is not None and not np.all(np.isfinite(y)):
            raise ValueError(f"refit: the new response has {int(np.sum(~np.isfinite(y)))} "
                             "non-finite values")
        w = None if weights is None else np.asarray(weights, dtype=float).ravel()
        if w is not None and (len(w) != n or np.any(~np.isfinite(w)) or np.any(w < 0)):
            raise ValueError(f"refit: weights must be {n} finite non-negative values")
        if w is not None and np.any(w == 0):
            # lmer/glmer drop a row of prior weight 0 (as absent: not counted in nobs or the
            # residual df); refit keeps the fit's rows, so it cannot do the same
            zero = np.flatnonzero(w == 0)
            shown = ", ".join(map(str, zero[:5])) + (", ..." if len(zero) > 5 else "")
            raise ValueError(
                f"refit: {len(zero)} of the {n} weights are 0 (observations {shown}); a zero prior "
                "weight removes the row from the fit, which refit cannot do (it keeps the fit's "
                "observations). Fit the model again without those rows, e.g. "
                "mm.lmer(formula, data[w > 0], weights=w[w > 0]) (or mm.glmer).")
        new = self._with_data(y, w, control or self.control)
        new.name, new.data_name = self.name, self.data_name
        return new.fit(start=self.warm_start() if start is None else start)

    def refit_ml(self) -> "MixedModel":
        """The same model fit by maximum likelihood (self if it already is)."""
        return self

    # -- estimates -------------------------------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        """θ in lme4's order and parametrisation (terms sorted by number of levels)."""
        return self._theta.copy()

    @property
    def sigma(self) -> float:
        """Residual standard deviation (LMM) or dispersion; 1 for binomial and Poisson."""
        return self._sigma

    @property
    def beta(self) -> np.ndarray:
        """The fixed effects as an array (``fixef`` is the named Series)."""
        return self._beta.copy()

    @property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates in the model matrix's column order."""
        return pd.Series(self._beta, index=self.design.fixef_names, name="Estimate")

    @property
    def vcov_unscaled(self) -> np.ndarray:
        """(R_X R_Xᵀ)⁻¹: the fixed effects' covariance over σ², from the factor at the estimates."""
        return self._vcov_unscaled.copy()

    @property
    def residual_variance_scale(self) -> float:
        """σ² where the family has a scale (gaussian, Gamma, ...), else 1."""
        return self._sigma ** 2 if self.family.has_scale else 1.0

    def term_covariances(self) -> list[np.ndarray]:
        """Per term, the covariance of its random effects: scale × T Tᵀ."""
        s2 = self.residual_variance_scale
        return [s2 * (T @ T.T) for T in self.factor.split_theta(self._theta)]

    def spherical_random_effects(self) -> list[np.ndarray]:
        """Per term, the spherical random effects u (``b = Λ u``), as flat vectors."""
        return [u.copy() for u in self._u]

    def random_effects(self) -> list[np.ndarray]:
        """Per term, the conditional modes b = Λu as (levels × columns) arrays."""
        out = []
        for term, u, T in zip(self.design.terms, self._u, self.factor.split_theta(self._theta)):
            out.append(u.reshape(term.nlevels, term.ncols) @ T.T)
        return out

    def conditional_covariance(self, max_q: int = 20_000) -> list[np.ndarray]:
        """Per term an (levels, l, l) array: Var(b_g | y) = scale × [Λ C⁻¹ Λᵀ]_gg (lme4's
        ``condVar``), with C = ΛᵀZᵀWZΛ + I at the estimates (W the GLMM's working weights)."""
        factor = self._factor_at_estimates()
        Ts = factor.split_theta(self._theta)
        s2 = self.residual_variance_scale
        terms = self.design.terms
        if len(terms) == 1 and factor.diag_is_bd[0]:  # C is block diagonal: invert its l×l blocks
            Linv = factor.L_inv_bd[0]
            Ci = np.einsum("gba,gbc->gac", Linv, Linv)
            return [s2 * np.einsum("ab,gbc,dc->gad", Ts[0], Ci, Ts[0])]
        q = sum(t.nlevels * t.ncols for t in terms)
        if q > max_q:
            raise ValueError(f"conditional variances need a dense inverse of order q = {q}; "
                             f"this model is too large for them (the limit is max_q={max_q})")
        Linv = np.linalg.inv(_dense_lower_factor(factor))
        Ci = Linv.T @ Linv
        out, pos = [], 0
        for t, T in zip(terms, Ts):
            m, l = t.nlevels, t.ncols
            idx = pos + np.arange(m * l).reshape(m, l)
            blocks = Ci[idx[:, :, None], idx[:, None, :]]
            out.append(s2 * np.einsum("ab,gbc,dc->gad", T, blocks, T))
            pos += m * l
        return out

    def _factor_at_estimates(self) -> BlockedFactor:
        """The factor updated at the estimates (and, for GLMMs, the working weights there)."""
        return self.factor.update(self._theta)

    # -- data the fit used -------------------------------------------------------------------
    def _by_row(self, values: np.ndarray, name: str) -> pd.Series:
        """Per-observation values labelled with the data's row labels (the rows the fit used),
        so ``data["resid"] = m.residuals()`` aligns and rows the fit dropped get NaN, as R's
        ``na.exclude``."""
        index = self.design.frame.index
        return RowValues(values, index=index if len(index) == len(values) else None, name=name)

    @property
    def response(self) -> np.ndarray:
        """The response on the fit's scale (proportions for binomial trials)."""
        return np.asarray(self.design.y, dtype=float)

    @property
    def prior_weights(self) -> np.ndarray:
        """Prior weights per observation (ones when none were given)."""
        w = self.design.weights
        return np.ones(self.nobs) if w is None else np.asarray(w, dtype=float)

    @property
    def trials(self) -> np.ndarray:
        """Binomial trials per observation (ones for other families)."""
        return np.ones(self.nobs)

    @property
    def offset(self) -> np.ndarray:
        """The offset per observation (zeros when there is none)."""
        off = self.design.offset
        return np.zeros(self.nobs) if off is None else np.asarray(off, dtype=float)

    # -- counts and criteria -----------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Number of observations used (after dropping missing values)."""
        return self.design.nobs

    @property
    def npar(self) -> int:
        """Number of estimated parameters: β, θ and the family's dispersion parameters."""
        return len(self.design.fixef_names) + self.factor.n_theta + self.family.n_dispersion_parameters

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.npar

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels of each grouping factor."""
        out: dict[str, int] = {}
        for term in self.design.terms:
            out.setdefault(term.group, term.nlevels)
        return out

    @property
    def is_reml(self) -> bool:
        return bool(self.reml)

    @property
    def has_scale(self) -> bool:
        """Whether σ is estimated (and a residual row belongs in the variance components)."""
        return bool(self.family.has_scale)

    # -- variance components and random effects -------------------------------------------------
    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as a tidy table, like R's ``as.data.frame(VarCorr(m))``."""
        rows = []
        param = self.factor.parametrization
        for i, (term, cov) in enumerate(zip(self.design.terms, self.term_covariances())):
            if not param.terms[i].linear:  # cs, ar1, ou: their sd, ρ or rate, not all l² entries
                rows += [(term.name, *r) for r in param.terms[i].summary_rows(
                    param.term_theta(self._theta, i), np.sqrt(self.residual_variance_scale), term.lhs,
                    term.columns)]
                continue
            sd = np.sqrt(np.diag(cov))
            for j, col in enumerate(term.columns):
                rows.append((term.name, col, None, cov[j, j], sd[j]))
            for j in range(len(term.columns)):
                for i in range(j + 1, len(term.columns)):
                    denom = sd[i] * sd[j]
                    corr = cov[i, j] / denom if denom > 0 else np.nan
                    rows.append((term.name, term.columns[j], term.columns[i], cov[i, j], corr))
        if self.has_scale:
            rows.append(("Residual", None, None, self.sigma ** 2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "var1", "var2", "vcov", "sdcor"])

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, one DataFrame per grouping factor."""
        out: dict[str, pd.DataFrame] = {}
        for term, b in zip(self.design.terms, self.random_effects()):
            frame = pd.DataFrame(b, index=term.levels, columns=term.columns)
            frame.index.name = term.group
            if term.group in out:  # (1 | g) + (0 + x | g), or a split (x || g): one frame per factor
                prev = out[term.group]
                frame.columns = [c if c not in prev.columns else f"{c}.1" for c in frame.columns]
                out[term.group] = pd.concat([prev, frame], axis=1)
            else:
                out[term.group] = frame
        return out

    # -- coefficients -------------------------------------------------------------------------
    def coef_table(self, ddf: str | None = None) -> pd.DataFrame:
        """Estimates, standard errors and t (or z) statistics of the fixed effects.

        Parameters
        ----------
        ddf : {None, "satterthwaite", "kenward-roger", "asymptotic"}
            With a method, adds ``df`` and ``Pr(>|t|)`` columns
            (see :mod:`mixedmodels.postestimation.ddf`).
        """
        if ddf is not None:
            return extension("coef_table_ddf")(self, ddf)
        est = self.fixef
        se = np.sqrt(np.diag(self.vcov.to_numpy()))
        return pd.DataFrame({"Estimate": est.to_numpy(), "Std. Error": se,
                             self.family.coef_statistic: est.to_numpy() / se}, index=est.index)

    # -- post-estimation and presentation (registered by the layers above) ------------------------
    # statsmodels-style names, set by mixedmodels.presentation.aliases
    params, bse, tvalues, pvalues, conf_int = Registered(), Registered(), Registered(), Registered(), Registered()

    def confint(self, method: str = "profile", level: float = 0.95, **kwargs) -> pd.DataFrame:
        """Confidence intervals: ``"profile"``, ``"wald"`` or ``"boot"``
        (see :func:`mixedmodels.confint`)."""
        return extension("confint")(self, method=method, level=level, **kwargs)

    def predict(self, newdata: pd.DataFrame | None = None, **kwargs):
        """Predictions, optionally for new data (see :func:`mixedmodels.predict`)."""
        return extension("predict")(self, newdata, **kwargs)

    def simulate(self, n: int = 1, seed=None, **kwargs):
        """Simulated responses from the fitted model (see :func:`mixedmodels.simulate`)."""
        return extension("simulate")(self, n=n, seed=seed, **kwargs)

    def ranef_table(self, **kwargs) -> pd.DataFrame:
        """Conditional modes with their conditional standard deviations (lme4's ``condVar``)."""
        return extension("ranef_table")(self, **kwargs)

    def plot_ranef(self, **kwargs):
        """Caterpillar plot of the random effects with intervals; returns the figure."""
        return extension("plot_ranef")(self, **kwargs)

    def plot_residuals(self, **kwargs):
        """Residuals against fitted values and QQ plots; returns the figure."""
        return extension("plot_residuals")(self, **kwargs)

    def plot_trajectories(self, **kwargs):
        """Fitted trajectories per group over the raw data; returns the figure."""
        return extension("plot_trajectories")(self, **kwargs)

    def plot_ranef_qq(self, **kwargs):
        """Normal QQ plot of the random effects with pointwise bands; returns the figure."""
        return extension("plot_ranef_qq")(self, **kwargs)

    def plot_forest(self, **kwargs):
        """Forest plot of the fixed effects with their intervals; returns the figure."""
        return extension("plot_forest")(self, **kwargs)

    def plot_residuals_by_group(self, **kwargs):
        """Box plots of the residuals per level of a grouping factor; returns the figure."""
        return extension("plot_residuals_by_group")(self, **kwargs)

    def plot_effects(self, x: str, **kwargs):
        """Predicted effect of ``x`` with confidence bands (as ggeffects); returns the figure."""
        return extension("plot_effects")(self, x, **kwargs)

    def plot_profile(self, **kwargs):
        """ζ profile plots of the fixed effects; returns the figure."""
        return extension("plot_profile")(self, **kwargs)

    def summary(self, **kwargs):
        """A summary printed like lme4's ``summary(m)``; keyword arguments go to :meth:`coef_table`."""
        return extension("summary")(self, **kwargs)

    def summary_notes(self) -> list[str]:
        """Notes the summary prints after the tables (singular fit, failed checks)."""
        notes = []
        if getattr(self, "is_singular", False):
            notes.append("boundary (singular) fit: see mm.help('singular')")
        notes.extend(getattr(self, "_check_messages", []))
        return notes

    def __repr__(self) -> str:
        load_extensions()
        if "repr" not in _EXTENSIONS:
            return f"<{type(self).__name__}: {self.design.formula.text}>"
        return extension("repr")(self)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()


def _dense_lower_factor(factor: BlockedFactor) -> np.ndarray:
    """The Z-part of the blocked factor as one dense q × q matrix F with F Fᵀ = C (lower
    triangular, except a sparse Schur block's factor, whose rows are in its own order)."""
    qs = [t.q for t in factor.cp.terms]
    starts = np.concatenate([[0], np.cumsum(qs)])
    L = np.zeros((starts[-1], starts[-1]))
    for i in range(len(qs)):
        a, b = starts[i], starts[i + 1]
        Li = factor.L_diag[i]
        if i in factor.sparse_plans:  # F Fᵀ = S but F is not triangular: the inverse reads it whole
            L[a:b, a:b] = Li.to_dense()
        elif Li.ndim == 3:
            m, l, _ = Li.shape
            for g in range(m):
                L[a + g * l:a + (g + 1) * l, a + g * l:a + (g + 1) * l] = np.tril(Li[g])
        else:
            L[a:b, a:b] = np.tril(Li)
        for r in range(i + 1, len(qs)):
            off = factor.L_off[(r, i)]
            L[starts[r]:starts[r + 1], a:b] = off.toarray() if sp.issparse(off) else off
    return L


class JointLikelihoodModel(MixedModel):
    """A model whose engine maximizes its likelihood over every parameter at once, with no scale
    profiled out (glmmTMB's families, ``clmm``): deviance −2 log L, the engine's parameter count,
    no σ. Subclasses set ``self.engine`` (with ``n_par``) and ``loglik``."""

    @property
    def deviance(self) -> float:
        return -2.0 * self.loglik

    @property
    def npar(self) -> int:
        """Every estimated parameter (ordinal's ``edf``, glmmTMB's ``df``)."""
        return self.engine.n_par

    @property
    def residual_variance_scale(self) -> float:
        return 1.0

    @property
    def has_scale(self) -> bool:
        return False
