"""Linear mixed models: the profiled (RE)ML deviance over θ and the fitted model.

Pipeline, each stage public: :func:`~mixedmodels.spec.formula.parse_formula` →
:func:`~mixedmodels.spec.design.build_design` → :class:`LinearMixedModel` (crossproducts once,
from the row backend; objective per θ) → :func:`~mixedmodels.models.optim.minimize` → the
fitted model's results.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from ..core.backends import get_rows
from ..core.factor import BlockedFactor
from ..core.gradient import ProfiledGradient
from ..core.lapack import tri_solve
from ..core.threads import SERIAL_FLOPS, serial_blas
from ..spec.design import ModelDesign
from .base import MixedModel
from .checks import check_fit, theta_names
from .cost import factor_evaluation_flops
from .family import gaussian
from .optim import (
    DEFAULT_OPTIMIZER,
    GRADIENT_FLOPS,
    Control,
    OptSummary,
    escape_boundary,
    minimize,
    uses_gradient,
    value_and_gradient,
)

__all__ = ["LinearMixedModel"]

_LOG_2PI = np.log(2.0 * np.pi)


class LinearMixedModel(MixedModel):
    """A linear mixed model ``y = Xβ + Zb + ε``; fit with :meth:`fit` or :func:`lmer`.

    Parameters
    ----------
    design : ModelDesign
        From :func:`~mixedmodels.spec.design.build_design`.
    reml : bool
        REML (default) or maximum likelihood.
    control : Control, optional
    """

    r_class = "lmerMod"

    def __init__(self, design: ModelDesign, reml: bool = True, control: Control | None = None,
                 data_name: str | None = None, *, engine: tuple | None = None):
        """``engine``: ``(crossproducts, factor)`` already built for this design (refit)."""
        self.design = design
        self.family = gaussian()
        self.reml = bool(reml)
        self.control = control or Control()
        self.data_name = data_name
        self.name: str | None = None
        if engine is not None:
            self.crossproducts, self.factor = engine
        else:
            y = design.y if design.offset is None else design.y - design.offset
            rows = get_rows(self.control.row_backend)([t.matrix for t in design.terms], design.X, y,
                                                      design.weights)
            self.crossproducts = rows.crossproducts()
            self.factor = BlockedFactor(self.crossproducts, dense=self.control.dense_backend,
                                      schur=self.control.schur)
        w = design.weights
        self._log_weights = 0.0 if w is None else float(np.log(w[w > 0]).sum())
        self.optinfo: OptSummary | None = None
        self._theta: np.ndarray | None = None

    # -- the objective -------------------------------------------------------------------------
    def objective(self, theta: np.ndarray, reml: bool | None = None) -> float:
        """The profiled deviance (−2 log-likelihood, or the REML criterion) at θ."""
        reml = self.reml if reml is None else reml
        f = self.factor.update(theta)
        n = self.crossproducts.n
        p = self.crossproducts.p
        pwrss = f.pwrss
        if reml:
            dof = n - p
            return (f.logdet_z + f.logdet_x + dof * (1.0 + _LOG_2PI + np.log(pwrss / dof))
                    - self._log_weights)
        return f.logdet_z + n * (1.0 + _LOG_2PI + np.log(pwrss / n)) - self._log_weights

    def fit(self, start: np.ndarray | None = None) -> "LinearMixedModel":
        """Optimize the profiled deviance over θ and store the estimates."""
        ctrl = self.control
        f = self.factor
        if start is None:
            start = ctrl.start if ctrl.start is not None else self.default_start()
        x0 = np.asarray(start, dtype=float)
        if len(x0) != f.n_theta:
            raise ValueError(f"start has {len(x0)} values; this model has {f.n_theta} θ parameters")

        def objective(theta: np.ndarray) -> float:
            try:
                return self.objective(theta)
            except np.linalg.LinAlgError:
                return np.inf

        warm = getattr(self, "_warm_step", None)
        if warm is not None and "initial_step" not in ctrl.options:
            # a refit: BOBYQA's first trust region from θ's standard errors when it starts at the
            # previous optimum (see _refit_step), else at a tenth of the start
            at, step = warm
            if not (len(at) == len(x0) and np.array_equal(at, x0)):
                step = np.maximum(0.1 * np.abs(x0), 0.01)
            ctrl = replace(ctrl, options={**ctrl.options, "initial_step": step})
        if ctrl.optimizer.lower() == "auto":
            gradient_pays = self.has_gradient and self.evaluation_flops() > GRADIENT_FLOPS * (
                # the gradient reuses the "dense, syrk" update's buffer: cheap next to an
                # evaluation there (1M rows, 1k × 5k: 10 evaluations, 5.4 s; BOBYQA 57, 8.9 s);
                # after a product map it needs a sparse product (InstEval: slower than BOBYQA)
                0.2 if all(f.updates_by_syrk(i) for i in range(1, f.k)) else 1.0)
            ctrl = replace(ctrl, optimizer="lbfgsb" if gradient_pays else DEFAULT_OPTIMIZER)
        grad = None
        if uses_gradient(ctrl.optimizer) and self.has_gradient:
            objective, grad = value_and_gradient(self.objective_and_gradient)
        with serial_blas(self._small()):
            self.optinfo = minimize(objective, x0, f.theta_lower_bounds(), ctrl, grad=grad)
            if grad is not None:
                self.optinfo = escape_boundary(objective, self.optinfo, f.theta_lower_bounds(), ctrl,
                                               grad=grad)
            self.optinfo.factor = {"gradient": grad is not None,
                                   **f.describe([t.name for t in self.design.terms])}
            self.set_theta(self.optinfo.x)
            self._post_fit_checks()
        return self

    def _small(self) -> bool:
        """Whether an evaluation is too small for BLAS threads to pay (see core/threads.py)."""
        return self.evaluation_flops() < SERIAL_FLOPS

    def evaluation_flops(self) -> float:
        """Floating-point operations of one evaluation's dense Schur blocks: each block's
        Cholesky (q³/3) and its update from the first term (q² q₀); 0 for a system factored as
        one small dense matrix. ``Control(optimizer="auto")`` chooses from it."""
        return factor_evaluation_flops(self.factor)

    @property
    def has_gradient(self) -> bool:
        """Whether :meth:`objective_and_gradient` is available: the profiled deviance of this
        class (not a penalized subclass's), a system small enough for the dense inverse, and a
        Jacobian dT/dθ for every term."""
        return (type(self).objective is LinearMixedModel.objective
                and ProfiledGradient.available(self.factor))

    def objective_and_gradient(self, theta: np.ndarray,
                               reml: bool | None = None) -> tuple[float, np.ndarray]:
        """The profiled deviance at θ and its analytic gradient (see
        :mod:`mixedmodels.core.gradient`); ``(inf, nan)`` where the system is not positive
        definite."""
        reml = self.reml if reml is None else reml
        if getattr(self, "_gradient", None) is None:
            self._gradient = ProfiledGradient(self.factor, dense=self.control.dense_backend)
        try:
            value, grad = self._gradient.value_and_gradient(theta, reml)
        except np.linalg.LinAlgError:
            return np.inf, np.full(len(theta), np.nan)
        return value - self._log_weights, grad

    def default_start(self) -> np.ndarray:
        """Start values for θ.

        lme4's start (T = I) reproduces lme4's optimizer path, so it is used unless an
        evaluation is expensive (a dense block of more than 200 levels, as in crossed designs
        such as InstEval). Then scalar terms start at a one-way ANOVA (method of moments)
        estimate from the crossproducts, on OLS residuals, which roughly halves the evaluations.
        """
        cp = self.crossproducts
        theta = self.factor.theta_start()
        dense_sizes = [t.q for t, bd in zip(cp.terms, self.factor.diag_is_bd) if not bd]
        if not dense_sizes or max(dense_sizes) <= 200:
            return theta
        p, n = cp.p, cp.n
        gram = cp.xyxy
        try:
            beta = np.linalg.solve(gram[:p, :p], gram[:p, p]) if p else np.zeros(0)
        except np.linalg.LinAlgError:
            return theta
        rss = gram[p, p] - gram[p, :p] @ beta
        pos = 0
        for term, diag, zxy, size in zip(cp.terms, cp.diag, cp.zxy, self.factor.theta_sizes):
            if term.ncols == 1:
                counts = diag[:, 0, 0]
                sums = zxy[p] - zxy[:p].T @ beta
                used = counts > 0
                m = int(used.sum())
                ss_between = float(np.sum(sums[used] ** 2 / counts[used]))
                if 1 < m < n and rss > ss_between:
                    ms_within = (rss - ss_between) / (n - m)
                    ms_between = ss_between / (m - 1)
                    n0 = (counts.sum() - np.sum(counts ** 2) / counts.sum()) / (m - 1)
                    var_between = (ms_between - ms_within) / n0
                    ratio = np.sqrt(var_between / ms_within) if var_between > 0 else 0.0
                    # never start on the boundary, where BOBYQA's first steps are lopsided
                    theta[pos] = min(max(ratio, 0.05), 10.0)
            pos += size
        return theta

    def set_theta(self, theta: np.ndarray) -> None:
        """Set θ and the estimates that follow from it (β, u, σ, the fixed effects' covariance)."""
        theta = np.asarray(theta, dtype=float).copy()
        lower = self.factor.theta_lower_bounds()
        # tiny negative values cannot come from a bounded optimizer; exact zeros stay zeros
        theta[(lower == 0) & (theta < 0)] = 0.0
        self._theta = theta
        self._objective_value = self.objective(theta)
        f = self.factor
        self._beta, self._u = f.solve()
        n, p = self.crossproducts.n, self.crossproducts.p
        self._sigma = float(np.sqrt(f.pwrss / (n - p if self.reml else n)))
        # a contiguous copy: scipy's solve on a strided slice is ~1000x slower
        R = np.ascontiguousarray(f.R_xy[:p, :p])
        Rinv = tri_solve(R, np.eye(p))
        self._vcov_unscaled = Rinv.T @ Rinv

    def _post_fit_checks(self) -> None:
        check_fit(self)

    # -- results ---------------------------------------------------------------------------------
    @property
    def reml_criterion(self) -> float:
        """The REML criterion at the optimum (−2 × REML log-likelihood); for ML fits, at the ML θ."""
        if self.reml:
            return self._objective_value
        return self.objective(self._theta, reml=True)

    @property
    def loglik(self) -> float:
        """Log-likelihood (the REML log-likelihood for REML fits, as lme4's ``logLik``)."""
        return -0.5 * self._objective_value

    @property
    def deviance(self) -> float:
        """−2 × log-likelihood (the REML criterion for REML fits, as lme4's anova table shows)."""
        return self._objective_value

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effect estimates."""
        names = self.design.fixef_names
        return pd.DataFrame(self._sigma ** 2 * self._vcov_unscaled, index=names, columns=names)

    def linear_predictor(self) -> np.ndarray:
        """Xβ + Zb (+ offset) per observation."""
        eta = self.design.X @ self._beta
        for term, b in zip(self.design.terms, self.random_effects()):
            m = term.matrix
            eta = eta + np.einsum("ij,ij->i", m.values, b[m.codes])
        if self.design.offset is not None:
            eta = eta + self.design.offset
        return eta

    def fitted(self, type: str = "response") -> pd.Series:  # noqa: A002 (R's argument name)
        """Fitted values (fixed plus random effects), indexed by the data's row labels; the
        link is the identity, so ``type`` ("response" or "link") changes nothing."""
        if type not in ("response", "link"):
            raise ValueError(f"type must be 'response' or 'link', got {type!r}")
        return self._by_row(self.linear_predictor(), "fitted")

    def residuals(self, type: str = "response", scaled: bool = False) -> pd.Series:  # noqa: A002
        """Residuals ``y − fitted`` (``"response"``, the default, ``"deviance"`` and ``"working"``
        are the same for an LMM; ``"pearson"`` multiplies by √w); divided by σ when ``scaled``.
        Indexed by the data's row labels, as :meth:`fitted`."""
        r = self.design.y - self.linear_predictor()
        if type == "pearson" and self.design.weights is not None:
            r = r * np.sqrt(self.design.weights)
        elif type not in ("response", "deviance", "working", "pearson"):
            raise ValueError("type must be 'response', 'deviance', 'pearson' or 'working', "
                             f"got {type!r}")
        return self._by_row(r / self._sigma if scaled else r, "residuals")

    def with_design(self, design: ModelDesign, *, control: Control | None = None) -> "LinearMixedModel":
        return LinearMixedModel(design, reml=self.reml, control=control or self.control,
                                data_name=self.data_name)

    def _with_data(self, y: np.ndarray | None, weights: np.ndarray | None,
                   control: Control) -> "LinearMixedModel":
        """A new response alone keeps ZᵀWZ, XᵀWZ, the symbolic factor and its maps: only the
        y row of the crossproducts is recomputed."""
        same_engine = (control.row_backend == self.control.row_backend == "memory"
                       and control.dense_backend == self.control.dense_backend
                       and control.schur == self.control.schur)
        if y is None or weights is not None or type(self) is not LinearMixedModel or not same_engine:
            return super()._with_data(y, weights, control)
        design = self.design.with_response(y)
        fit_y = design.y if design.offset is None else design.y - design.offset
        cp = self.crossproducts.with_response([t.matrix for t in design.terms], design.X, fit_y,
                                              design.weights)
        new = LinearMixedModel(design, reml=self.reml, control=control, data_name=self.data_name,
                               engine=(cp, self.factor.with_crossproducts(cp)))
        new._warm_step = self._refit_step()
        return new

    def _refit_step(self) -> tuple[np.ndarray, np.ndarray] | None:
        """BOBYQA's first step for a refit started at this fit's θ: θ's standard errors from the
        convergence check's Hessian (a new response moves θ by about that much), a tenth of θ
        where there are none (on a bound, or the check skipped); at least 0.01. Returned with
        the θ it is for. On 60 simulated responses each, against a tenth of θ throughout:
        sleepstudy 44.2 -> 38.0 evaluations, gpa 36.6 -> 34.2, Pixel 66.6 -> 59.3, Pastes (30)
        33.0 -> 25.6, no worse optimum than the best of seven starts (to 1.5e-6 in the deviance)."""
        if self._theta is None:
            return None
        step = 0.1 * np.abs(self._theta)
        info = getattr(self, "convergence", None)
        se = getattr(info, "standard_errors", None)
        if se is not None and len(se) == len(step):
            se = np.asarray(se, dtype=float)
            step = np.where(np.isfinite(se) & (se > 0), se, step)
        return self._theta.copy(), np.maximum(step, 0.01)

    def refit_ml(self) -> "LinearMixedModel":
        """The same model fit by maximum likelihood (self if already ML), started at this θ."""
        if not self.reml:
            return self
        other = LinearMixedModel(self.design, reml=False, control=self.control, data_name=self.data_name)
        other.name = self.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other.fit(start=self._theta)
        return other

    def convergence_objective(self):
        """``(fun, x, lower, names, restore, f0)``: what the derivative checks of
        :mod:`mixedmodels.models.checks` differentiate, the profiled objective over θ."""
        theta = self.theta

        def fun(x: np.ndarray) -> float:
            try:
                return float(self.objective(x))
            except np.linalg.LinAlgError:
                return np.inf

        return (fun, theta, self.factor.theta_lower_bounds(), theta_names(self),
                lambda: self.set_theta(theta), self._objective_value)

    @property
    def model_label(self) -> str:
        return "Linear mixed model fit by " + ("REML" if self.reml else "maximum likelihood")
