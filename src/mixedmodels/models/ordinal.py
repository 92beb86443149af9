"""Cumulative-link mixed models for ordinal responses, as ordinal's ``clmm``.

``P(Y ≤ k | b) = F(τ_k − x'β − z'b)``: thresholds τ (``"1|2"``, ...) with a flexible,
equidistant or symmetric structure, the fixed effects β in ordinal's sign convention (a
positive β moves the response up), and random effects b = Λ u with u ~ N(0, I). The
likelihood is the Laplace approximation (``n_agq=1``) or, for one scalar term, adaptive
Gauss-Hermite quadrature (``n_agq > 1``), maximised with L-BFGS-B on the exact gradient of
the likelihood (:mod:`mixedmodels.models.ordinal_laplace`, :mod:`mixedmodels.models.ordinal_agq`).
Standard errors come from the Hessian over (α, β, θ): differences of that exact gradient.

The model fits the :class:`~mixedmodels.models.base.MixedModel` contract: ``fixef`` is β,
``vcov`` its covariance, ``varcorr``/``ranef``/``ranef_table`` the random effects,
``loglik``/``aic``/``npar`` what :func:`~mixedmodels.anova` and AIC tables need; ``predict``
returns category probabilities.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..exceptions import ConvergenceWarning
from ..spec.design import ModelDesign
from .base import JointLikelihoodModel, extension
from .checks import hessian_from_gradient
from .family import Family
from .optim import Control, OptSummary, minimize, value_and_gradient
from .ordinal_agq import agq_loglik_and_gradient
from .ordinal_laplace import OrdinalEngine
from .ordinal_links import CumulativeLink, category_probabilities, cumulative_link
from .ordinal_thresholds import Thresholds, make_thresholds

__all__ = ["CumulativeLinkMixedModel", "CumulativeLinkFamily"]

_GRAD_STEP = 1e-5


class CumulativeLinkFamily(Family):
    """The response distribution of a cumulative-link model (no dispersion parameter)."""

    name = "cumulative"

    def __init__(self, link: CumulativeLink):
        self.link = link

    @property
    def label(self) -> str:
        return f"cumulative {self.link.name}"

    def __repr__(self) -> str:
        return f"CumulativeLinkFamily(link={self.link.name!r})"


class CumulativeLinkMixedModel(JointLikelihoodModel):
    """A cumulative-link mixed model; fit with :meth:`fit` or :func:`mixedmodels.clmm`.

    Parameters
    ----------
    design : ModelDesign
        Its ``y`` holds the category codes 0..K−1 and ``X`` no intercept.
    levels : list of str
        The response levels, in order.
    link : str or CumulativeLink
        ``"logit"``, ``"probit"``, ``"cloglog"``, ``"loglog"`` or ``"cauchit"``.
    threshold : {"flexible", "equidistant", "symmetric"}
    n_agq : int
        1: Laplace; more: adaptive Gauss-Hermite quadrature (one scalar term).
    control : Control, optional
        ``maxfun`` and the checks; the optimizer is ``"lbfgsb"`` (exact gradient) unless
        ``control.optimizer`` names another one explicitly via ``optimizer=``.
    optimizer : str
    """

    reml = False
    r_class = "clmm"

    def __init__(self, design: ModelDesign, levels: list, link="logit", threshold: str = "flexible",
                 n_agq: int = 1, control: Control | None = None, optimizer: str = "lbfgsb",
                 data_name: str | None = None):
        self.design = design
        self.levels = [str(v) for v in levels]
        self.link = cumulative_link(link)
        self.family = CumulativeLinkFamily(self.link)
        self.thresholds_spec: Thresholds = make_thresholds(self.levels, threshold)
        self.threshold = self.thresholds_spec.kind
        self.n_agq = int(n_agq)
        if self.n_agq < 1:
            raise ValueError(f"n_agq must be at least 1 (1: Laplace), got {n_agq}")
        if self.n_agq > 1 and (len(design.terms) != 1 or design.terms[0].ncols != 1):
            raise ValueError("n_agq > 1 (adaptive Gauss-Hermite quadrature) needs a single scalar "
                             "random-effects term such as (1 | g); use n_agq=1 (Laplace)")
        self.control = control or Control()
        self.optimizer = optimizer
        self.data_name = data_name
        self.name: str | None = None
        self.engine = OrdinalEngine(np.asarray(design.y, dtype=np.int64), design.X, design.offset,
                                    [t.matrix for t in design.terms], self.thresholds_spec,
                                    self.link, design.weights)
        # the engine splits θ into the terms' factors T as the blocked factor does for the
        # other models (MixedModel's term_covariances and random_effects use it)
        self.factor = self.engine
        self.optinfo: OptSummary | None = None
        self._check_messages: list[str] = []
        self.is_singular = False
        if self.n_agq > 1:
            self._gh = np.polynomial.hermite.hermgauss(self.n_agq)

    # -- the objective -------------------------------------------------------------------------
    def _par_names(self) -> list[str]:
        theta = [f"ST{i + 1}" for i in range(self.engine.n_theta)]
        return list(self.thresholds_spec.names) + list(self.design.fixef_names) + theta

    def objective(self, x: np.ndarray, *args) -> float:
        """−2 × the Laplace (or AGQ) log-likelihood at x = (α, β, θ)."""
        agq = self._gh if self.n_agq > 1 else None
        with np.errstate(all="ignore"):
            ll = self.engine.loglik(np.asarray(x, float), agq).loglik
        return -2.0 * ll if np.isfinite(ll) else np.inf

    def objective_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """−2 × log-likelihood and its exact gradient (Laplace, or AGQ for ``n_agq > 1``)."""
        x = np.asarray(x, float)
        with np.errstate(all="ignore"):
            if self.n_agq == 1:
                ll, g = self.engine.loglik_and_gradient(x)
            else:
                ll, g = agq_loglik_and_gradient(self.engine, x, *self._gh)
        if not np.isfinite(ll):
            return np.inf, np.zeros(len(x))
        return -2.0 * ll, -2.0 * g

    @property
    def parameters(self) -> pd.Series:
        """The estimates (α, β, θ) as one vector: what the optimizer works on."""
        return pd.Series(self._x, index=self._par_names())

    @property
    def parameter_lower_bounds(self) -> np.ndarray:
        """Lower bounds of (α, β, θ): 0 for the diagonal of each T, else −∞."""
        e = self.engine
        return np.concatenate([np.full(e.n_alpha + e.p, -np.inf), e.theta_lower()])

    # -- fitting -------------------------------------------------------------------------------
    def _start(self) -> np.ndarray:
        """Thresholds from the marginal cumulative proportions, β = 0, then the model without
        random effects (cheap: no inner problem) as ordinal starts from ``clm``."""
        e = self.engine
        K = e.K
        w = e.wt
        counts = np.bincount(e.y, weights=w, minlength=K)
        cum = np.cumsum(counts)[:-1] / counts.sum()
        tau0 = self.link.quantile(np.clip(cum, 1e-4, 1 - 1e-4))
        alpha0 = self.thresholds_spec.alpha_from_tau(tau0)
        fixed = OrdinalEngine(e.y, e.X, e.offset, [], self.thresholds_spec, self.link, e.wt)
        x0 = np.concatenate([alpha0, np.zeros(e.p)])

        def fg(x):
            with np.errstate(all="ignore"):
                ll, g = fixed.loglik_and_gradient(x)
            return (-2 * ll, -2 * g) if np.isfinite(ll) else (np.inf, np.zeros(len(x)))

        fun, grad = value_and_gradient(fg)
        opt = minimize(fun, x0, np.full(len(x0), -np.inf), self.control, grad=grad,
                       optimizer="lbfgsb")
        return np.concatenate([opt.x, e.theta_start()])

    def fit(self, start: np.ndarray | dict | None = None) -> "CumulativeLinkMixedModel":
        """Maximise the likelihood; returns self.

        Parameters
        ----------
        start : array or dict, optional
            The full vector (α, β, θ), or ``{"alpha": ..., "beta": ..., "theta": ...}``.
        """
        e = self.engine
        if isinstance(start, dict):
            x0 = self._start()
            a, b, t = e.split(x0)
            x0 = np.concatenate([np.asarray(start.get("alpha", a), float),
                                 np.asarray(start.get("beta", b), float),
                                 np.asarray(start.get("theta", t), float)])
        elif start is not None:
            x0 = np.asarray(start, dtype=float)
        else:
            x0 = self._start()
        if len(x0) != e.n_par:
            raise ValueError(f"start has {len(x0)} values; this model has {e.n_par} parameters "
                             f"({', '.join(self._par_names())})")
        lower = self.parameter_lower_bounds
        fun, grad = value_and_gradient(self._laplace_fg)
        opt = minimize(fun, x0, lower, self.control, grad=grad, optimizer=self.optimizer)
        if self.n_agq > 1:  # from the Laplace optimum, on the quadrature likelihood
            fun, grad = value_and_gradient(self.objective_and_gradient)
            opt = minimize(fun, opt.x, lower, self.control, grad=grad, optimizer=self.optimizer)
        self.optinfo = opt
        self._finish(opt.x)
        return self

    def _laplace_fg(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(all="ignore"):
            ll, g = self.engine.loglik_and_gradient(np.asarray(x, float))
        return (-2.0 * ll, -2.0 * g) if np.isfinite(ll) else (np.inf, np.zeros(len(x)))

    def _finish(self, x: np.ndarray) -> None:
        e = self.engine
        x = np.asarray(x, float).copy()
        lower = self.parameter_lower_bounds
        x[(lower == 0) & (x < 0)] = 0.0
        self._x = x
        alpha, beta, theta = e.split(x)
        self._alpha, self._beta, self._theta = alpha.copy(), beta.copy(), theta.copy()
        self._sigma = 1.0
        agq = self._gh if self.n_agq > 1 else None
        with np.errstate(all="ignore"):
            state = e.loglik(x, agq)
        self._loglik = state.loglik
        self._u_all = state.u.copy()
        self._eta = state.eta.copy()
        self._newton_ok = state.converged
        self._hessian_matrix = None
        self.is_singular = bool(np.any(theta[lower[e.n_alpha + e.p:] == 0]
                                       < self.control.singular_tol))
        if not self.optinfo.converged:
            msg = f"the optimizer did not report convergence ({self.optinfo.message})"
            self._check_messages.append(msg)
            warnings.warn(msg + "; check the estimates, e.g. refit from other start values.",
                          ConvergenceWarning, stacklevel=3)
        if not state.converged:
            msg = "the Newton iterations for the random effects did not converge at the estimates"
            self._check_messages.append(msg)
            warnings.warn(msg, ConvergenceWarning, stacklevel=3)

    # -- estimates -----------------------------------------------------------------------------
    @property
    def thresholds(self) -> pd.Series:
        """The cut points τ (``"1|2"``, ...): ordinal's ``f$Theta``."""
        return pd.Series(self.thresholds_spec.tau(self._alpha), index=self.thresholds_spec.cut_names,
                         name="threshold")

    @property
    def alpha(self) -> pd.Series:
        """The threshold parameters α (τ = J α; α = τ for flexible thresholds)."""
        return pd.Series(self._alpha, index=self.thresholds_spec.names, name="Estimate")

    @property
    def coefficients(self) -> pd.Series:
        """α then β, as ordinal's ``coef(fit)``."""
        return pd.concat([self.alpha, self.fixef]).rename("Estimate")

    @property
    def loglik(self) -> float:
        """The Laplace (or AGQ) log-likelihood at the estimates (ordinal's ``logLik``)."""
        return float(self._loglik)

    def hessian(self) -> pd.DataFrame:
        """The Hessian of −log-likelihood over (α, β, θ) at the estimates: central differences
        of the exact gradient (of the Laplace or the AGQ likelihood)."""
        if self._hessian_matrix is None:
            x = self._x
            # the gradient is of the deviance, −2 log L: half its Hessian
            self._hessian_matrix = 0.5 * hessian_from_gradient(
                lambda p: self.objective_and_gradient(p)[1], x, _GRAD_STEP)
            self.engine.loglik(x)  # leave the warm start at the estimates
        names = self._par_names()
        return pd.DataFrame(self._hessian_matrix, index=names, columns=names)

    @property
    def vcov_full(self) -> pd.DataFrame:
        """Covariance of (α, β, θ) from the inverse Hessian, as ordinal's ``vcov(fit)``."""
        H = self.hessian()
        try:
            V = np.linalg.inv(H.to_numpy())
        except np.linalg.LinAlgError:
            V = np.linalg.pinv(H.to_numpy())
        return pd.DataFrame(V, index=H.index, columns=H.columns)

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects β (the block of :attr:`vcov_full`)."""
        names = list(self.design.fixef_names)
        return self.vcov_full.loc[names, names]

    @property
    def vcov_unscaled(self) -> np.ndarray:
        return self.vcov.to_numpy()

    def coef_table(self, ddf: str | None = None) -> pd.DataFrame:
        """Thresholds then fixed effects: estimates, standard errors, z values and Wald
        p-values (ordinal's ``coef(summary(fit))``)."""
        if ddf is not None:
            raise ValueError("ddf methods are for linear mixed models; a clmm's tests are Wald z")
        from scipy import stats

        est = self.coefficients
        V = self.vcov_full
        se = np.sqrt(np.diag(V.loc[est.index, est.index].to_numpy()))
        z = est.to_numpy() / se
        return pd.DataFrame({"Estimate": est.to_numpy(), "Std. Error": se, "z value": z,
                             "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))}, index=est.index)

    def confint(self, method: str = "wald", level: float = 0.95, **kwargs) -> pd.DataFrame:
        """Confidence intervals for the thresholds and fixed effects: ``"wald"`` or
        ``"profile"`` (likelihood-ratio intervals: each parameter fixed, the others
        re-optimised; ``parm=["ST1"]`` also profiles a random-effects standard deviation)."""
        if method == "profile":
            return extension("ordinal_profile")(self, level=level, **kwargs)
        if method != "wald":
            raise ValueError(f"method must be 'wald' or 'profile' for a clmm, got {method!r}")
        from scipy import stats

        tab = self.coef_table()
        z = stats.norm.ppf(0.5 + level / 2)
        lo, hi = f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"
        return pd.DataFrame({lo: tab["Estimate"] - z * tab["Std. Error"],
                             hi: tab["Estimate"] + z * tab["Std. Error"]}, index=tab.index)

    # -- random effects ------------------------------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        """The relative factors T per term (column-wise lower triangles): ordinal's ``ST``."""
        return self._theta.copy()

    @property
    def _u(self) -> list[np.ndarray]:
        e = self.engine
        out = []
        for t, off in zip(self.design.terms, e.u_offsets):
            out.append(self._u_all[off:off + t.nlevels * t.ncols])
        return out

    def conditional_covariance(self, max_q: int = 20_000) -> list[np.ndarray]:
        """Per term an (levels, l, l) array: Var(b_g | y) ≈ T H⁻¹_gg Tᵀ at the modes
        (ordinal's ``condVar``)."""
        e = self.engine
        Hinv, Ts, _ = e.conditional_covariance(self._x)
        e.loglik(self._x)
        if e.single:
            T = Ts[0]
            return [np.einsum("ab,gbc,dc->gad", T, Hinv, T)]
        out = []
        for t, T, off in zip(self.design.terms, Ts, e.u_offsets):
            m, l = t.nlevels, t.ncols
            idx = off + np.arange(m * l).reshape(m, l)
            blocks = Hinv[idx[:, :, None], idx[:, None, :]]
            out.append(np.einsum("ab,gbc,dc->gad", T, blocks, T))
        return out

    def _factor_at_estimates(self):
        raise NotImplementedError("a clmm has no blocked factor; use conditional_covariance()")

    # -- fitted values, prediction and simulation -----------------------------------------------
    def fitted(self) -> pd.Series:
        """The probability of each row's observed category at the conditional modes (ordinal's
        ``fitted(fit)``)."""
        return self._by_row(np.exp(self.engine.derivatives(self.thresholds.to_numpy(), self._eta).loglik),
                            "fitted")

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "prob",  # noqa: A002
                re_form: str | None = None, allow_new_levels: bool = False):
        """Predictions on the data or ``newdata``.

        Parameters
        ----------
        newdata : DataFrame, optional
        type : {"prob", "cum_prob", "class", "linear"}
            Category probabilities (a DataFrame, one column per level), cumulative
            probabilities P(Y ≤ k), the most probable level, or the linear predictor x'β + z'b.
        re_form : None or "~0"
            ``None``: with the random effects (conditional modes); ``"~0"``: without (b = 0),
            or a formula naming the terms to include, as for :func:`mixedmodels.predict`.
        allow_new_levels : bool
            Levels not in the fit get b = 0.
        """
        if type not in ("prob", "cum_prob", "class", "linear"):
            raise ValueError(f"type must be 'prob', 'cum_prob', 'class' or 'linear', got {type!r}")
        eta = extension("predict")(self, newdata, re_form=re_form, allow_new_levels=allow_new_levels,
                                   type="link")
        index = eta.index
        eta = eta.to_numpy()
        if type == "linear":
            return pd.Series(eta, index=index, name="eta")
        P = category_probabilities(self.link, self.thresholds.to_numpy(), eta)
        if type == "cum_prob":
            return pd.DataFrame(np.cumsum(P, axis=1)[:, :-1], index=index,
                                columns=self.thresholds_spec.cut_names)
        if type == "class":
            labels = np.array(self.levels, dtype=object)[np.argmax(P, axis=1)]
            return pd.Series(pd.Categorical(labels, categories=self.levels, ordered=True),
                             index=index, name="class")
        return pd.DataFrame(P, index=index, columns=self.levels)

    def simulate(self, n: int = 1, seed=None, use_u: bool = False, **kwargs) -> pd.DataFrame:
        """Responses drawn from the fitted model: new random effects from N(0, Σ) per simulation
        (or the conditional modes, ``use_u=True``), then a category per row. Returns a
        DataFrame of ordered categoricals, one column per simulation."""
        if kwargs:
            raise TypeError(f"simulate() got an unexpected keyword argument {next(iter(kwargs))!r}")
        rng = np.random.default_rng(seed)
        e = self.engine
        tau = self.thresholds.to_numpy()
        fixed = e.X @ self._beta + e.offset
        vals = e.slot_values(e.lambdas(self._theta))
        cols = {}
        for s in range(int(n)):
            u = self._u_all if use_u else rng.standard_normal(e.q)
            eta = fixed + (np.einsum("is,is->i", vals, u[e.cols]) if e.q else 0.0)
            cum = np.cumsum(category_probabilities(self.link, tau, eta), axis=1)
            k = (rng.random(len(eta))[:, None] > cum[:, :-1]).sum(axis=1)
            cols[f"sim_{s + 1}"] = pd.Categorical(np.array(self.levels, dtype=object)[k],
                                                  categories=self.levels, ordered=True)
        return pd.DataFrame(cols, index=self.design.frame.index if len(self.design.frame) == e.n else None)

    def with_design(self, design: ModelDesign, *, control: Control | None = None):
        return CumulativeLinkMixedModel(design, self.levels, self.link, self.threshold, self.n_agq,
                                        control or self.control, self.optimizer, self.data_name)

    def warm_start(self):
        return self._x.copy()

    # -- presentation --------------------------------------------------------------------------
    @property
    def model_label(self) -> str:
        how = (f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.n_agq}" if self.n_agq > 1
               else "Laplace approximation")
        return f"Cumulative Link Mixed Model fitted with the {how}"

    def summary(self, **kwargs):
        """ordinal's ``summary(fit)``: link, threshold, fit criteria, the random effects, the
        coefficients and the thresholds."""
        from .ordinal_report import OrdinalSummary

        return OrdinalSummary(self)

    def __repr__(self) -> str:
        return (f"<clmm {self.design.formula.text!r}: link {self.link.name}, {self.threshold} "
                f"thresholds, logLik {self.loglik:.4f}, {self.nobs} obs.>")

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

