"""Generalized linear mixed models: Laplace and adaptive Gauss-Hermite fits, as lme4's ``glmer``.

For fixed θ (and β in the second stage), penalized iteratively reweighted least squares
(PIRLS) finds the conditional modes of the spherical random effects u. Each PIRLS step
reweights the crossproducts of ``[Z X z]`` (z the working response) and factors them with
the blocked Cholesky of :mod:`mixedmodels.core.factor`. The fit follows lme4's two stages:

1. ``nAGQ = 0``: optimise θ with β inside PIRLS;
2. optimise (θ, β) jointly on the Laplace (or AGQ) deviance, started at stage 1's estimates.

The Laplace deviance is ``aic(μ) + ‖u‖² + log det(L_Z)²`` where ``aic`` is −2 × the
log-likelihood of the response (R's ``family$aic``); adaptive quadrature, for a single scalar
term, replaces it by lme4's ``Σ devc₀ + log det(L_Z)² − 2 Σ log mult``, built from the
deviance residuals (so its log-likelihood omits the response's normalising constant, as
lme4's does).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular

from ..core.threads import SERIAL_FLOPS, serial_blas
from ..exceptions import ConvergenceWarning, DataError
from ..spec.design import ModelDesign
from .base import MixedModel
from .checks import check_fit, hessian_from_gradient, theta_names
from .cost import factor_evaluation_flops
from .family import Family
from .newton_secant import newton_secant, secant_curvature
from .optim import Control, OptSummary, is_default_optimizer, minimize, value_and_gradient
from .pirls import PirlsEngine, PirlsResult, gh_rule, history_text

__all__ = ["GeneralizedLinearMixedModel", "gh_rule", "check_separation"]

# lme4 computes the finite-difference Hessian (and uses it for vcov) below this many rows
_HESSIAN_NOBS_MAX = 10_000
_HESSIAN_STEP = 1e-3
# optimizer tolerances: stage 1 (θ, a start only) and stage 2 (θ and β in SE units)
_S1_FTOL, _S1_XTOL = 1e-6, 1e-5
_S1_FTOL_GRAD, _S1_XTOL_GRAD = 1e-3, 1e-3
_S2_FTOL, _S2_XTOL, _S2_STEP = 1e-8, 1e-8, 0.05
_BOUNDARY_TOL = 1e-5
# stage 2's gradient optimum is taken without a polish when every bounded θ is this far inside
_POLISH_CLEARANCE = 0.05


# --- the model -------------------------------------------------------------------------------------

class GeneralizedLinearMixedModel(MixedModel):
    """A generalized linear mixed model; fit with :meth:`fit` or :func:`glmer`.

    Parameters
    ----------
    design : ModelDesign
        From :func:`~mixedmodels.spec.design.build_design` with a GLM response.
    family : Family
    n_agq : int
        0 (θ only, β inside PIRLS), 1 (Laplace) or more (adaptive Gauss-Hermite; one scalar term).
    control : Control, optional
    y, wt, nsize : ndarray
        Response (proportions for binomial), total prior weights, binomial sizes.
    """

    reml = False
    r_class = "glmerMod"
    #: BOBYQA's first step in stage 2 for β, in units of its standard error (θ's is 5% of θ)
    stage2_beta_step = _S2_STEP
    #: the PIRLS engine (a streamed fit's runs its row operations as passes where the rows live)
    engine_class = PirlsEngine

    def __init__(self, design: ModelDesign, family: Family, n_agq: int = 1,
                 control: Control | None = None, data_name: str | None = None, *,
                 y: np.ndarray | None = None, wt: np.ndarray | None = None,
                 nsize: np.ndarray | None = None):
        n_agq = int(n_agq)
        if n_agq < 0 or n_agq > 100:
            raise ValueError(f"n_agq must be between 0 and 100, got {n_agq}")
        if n_agq > 1 and (len(design.terms) != 1 or design.terms[0].ncols != 1):
            raise ValueError("n_agq > 1 (adaptive Gauss-Hermite quadrature) is only available "
                             "for models with a single scalar random-effects term such as "
                             "(1 | g); use n_agq=1 (Laplace)")
        if not design.terms:
            raise DataError("the formula has no random-effects term such as (1 | g); for a GLM "
                            "without random effects use statsmodels' GLM")
        self.design = design
        self.family = family
        self.n_agq = n_agq
        self.control = control or Control()
        self.data_name = data_name
        self.name: str | None = None
        n = design.nobs
        prior = np.ones(n) if design.weights is None else np.asarray(design.weights, dtype=float)
        trials = design.trials
        if trials is not None and len(trials) != n:
            raise ValueError(f"the design's binomial trials have {len(trials)} values for {n} rows")
        self._y = np.asarray(design.y, dtype=float) if y is None else y
        self._nsize = (np.ones(n) if trials is None else np.asarray(trials, float)) if nsize is None else nsize
        # total weights: the prior weights times the trials of cbind() responses
        self._wt = (prior if trials is None else prior * self._nsize) if wt is None else wt
        offset = np.zeros(n) if design.offset is None else design.offset
        self._offset = offset
        self.engine = self.engine_class(design, family, self._y, self._wt, self._nsize, offset, self.control)
        self.factor = self.engine.factor
        self.optinfo: OptSummary | None = None
        self.optinfo_stage1: OptSummary | None = None
        self._theta: np.ndarray | None = None
        self._hessian_vcov: np.ndarray | None = None
        self._hessian_done = False
        self._check_messages: list[str] = []
        #: set by glmer when a separation warning was given (no second warning from the checks)
        self.separation_warned = False
        self.is_singular = False
        self._eta_start: np.ndarray | None = None
        self._eta_init = self.engine.eta.copy()
        self._stage1_curvature: float | None = None  # d²/dθ² of stage 1's deviance at its end
        if n_agq > 1:
            self._gh = gh_rule(n_agq)

    # -- objectives ------------------------------------------------------------------------------
    def objective(self, theta: np.ndarray, beta: np.ndarray | None = None) -> float:
        """The deviance lme4 reports: at θ with β inside PIRLS (``beta=None``, lme4's
        ``nAGQ = 0``), or at (θ, β) the Laplace (or, for ``n_agq > 1``, the AGQ) deviance.

        As lme4, PIRLS starts from the same linear predictor at every call and stops at a
        relative tolerance of 1e-7, so values agree with lme4's ``devfun`` to ~1e-10.
        """
        return self.evaluate(theta, beta)[0]

    def _objective_smooth(self, theta: np.ndarray, beta: np.ndarray | None = None) -> float:
        """The same deviance with PIRLS warm-started and converged tightly: smooth in (θ, β),
        which the optimizer needs; it differs from :meth:`objective` by lme4's PIRLS tolerance."""
        return self.evaluate(theta, beta, smooth=True)[0]

    def evaluate(self, theta: np.ndarray, beta: np.ndarray | None = None, *,
                 smooth: bool = False) -> tuple[float, PirlsResult]:
        """The deviance at θ (and β) and the PIRLS state it was computed at (the modes, η, μ):
        lme4's (``smooth=False``: PIRLS from the fit's fixed start, lme4's tolerance) or the
        smooth one (warm-started, converged tightly)."""
        theta = np.asarray(theta, dtype=float)
        eng = self.engine
        beta = None if beta is None else np.asarray(beta, dtype=float)
        if smooth:
            # stopped on the modes' step, not the deviance's change: near the mode the penalized
            # deviance is quadratic in u, so a 1e-11 relative change still leaves u ~1e-5 off and
            # log det (first order in u, through the weights) off by as much
            res = eng.pirls(theta, beta, eta_start=None, criterion="step")
        else:
            res = eng.pirls(theta, beta, eta_start=self._eta_start, tol=self.control.pirls_tol)
        if beta is None or self.n_agq <= 1:
            return eng.laplace(res), res
        return eng.agq(theta, beta, res, *self._gh), res

    def _safe(self, fun):
        def wrapped(x):
            try:
                value = fun(x)
            except (np.linalg.LinAlgError, FloatingPointError):
                return np.inf
            return value if np.isfinite(value) else np.inf
        return wrapped

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, start: dict | np.ndarray | None = None) -> "GeneralizedLinearMixedModel":
        """Fit in lme4's two stages and store the estimates.

        Stage 1 optimises θ with β inside PIRLS (lme4's ``nAGQ = 0``); stage 2 optimises
        (θ, β) on the Laplace or AGQ deviance from there. Both optimise the exact deviance
        (PIRLS iterated until the modes stop moving), which is also the one reported: glmmTMB's
        value, equal to or above lme4's, whose PIRLS tolerance leaves its logLik up to ~1e-3
        low on small binomial fits and stops its optimizer early where the likelihood is flat.

        Parameters
        ----------
        start : array or dict, optional
            θ start (array), or ``{"theta": ..., "beta": ..., "eta": ...}``; with β given, stage 1
            is skipped; ``eta`` is the linear predictor each PIRLS starts from.
        """
        ctrl = self.control
        f = self.factor
        lower = f.theta_lower_bounds()
        theta0 = beta0 = None
        if isinstance(start, dict):
            theta0 = start.get("theta")
            beta0 = start.get("beta", start.get("fixef"))
            if start.get("eta") is not None:  # where each PIRLS starts (a refit's: the fit's own)
                self._eta_start = np.asarray(start["eta"], dtype=float).copy()
            if start.get("stage1_curvature") is not None:  # θ's units for stage 2 (a refit's)
                self._stage1_curvature = float(start["stage1_curvature"])
        elif start is not None:
            theta0 = start
        elif ctrl.start is not None:
            theta0 = ctrl.start
        theta0 = f.theta_start() if theta0 is None else np.asarray(theta0, dtype=float)
        if len(theta0) != f.n_theta:
            raise ValueError(f"start has {len(theta0)} θ values; this model has {f.n_theta}")
        self.engine.prepare()
        with np.errstate(all="ignore"), serial_blas(self._small()):
            # (PIRLS steps out of range are caught and halved)
            if beta0 is None:
                # lme4: one PIRLS from the start values of μ; stage 1 starts each PIRLS there
                self._eta_start = self._eta_init
                self._eta_start = self.evaluate(theta0)[1].eta
                self.engine.eta = self._eta_start
                # stage 1 only provides the start of stage 2: a loose tolerance will do
                # (looser still when stage 2 has the analytic gradient, which converges from
                # farther away)
                loose = self._gradient_available() and is_default_optimizer(ctrl.optimizer)
                ftol1, xtol1 = (_S1_FTOL_GRAD, _S1_XTOL_GRAD) if loose else (_S1_FTOL, _S1_XTOL)
                stage1_ctrl = Control(optimizer=ctrl.optimizer, maxfun=ctrl.maxfun,
                                      ftol_abs=ftol1 if self.n_agq > 0 else ctrl.ftol_abs,
                                      xtol_abs=xtol1 if self.n_agq > 0 else ctrl.xtol_abs,
                                      options=dict(ctrl.options))
                opt1 = None
                if loose and self.n_agq > 0:
                    opt1 = self._stage1_with_gradient(theta0, lower)
                if opt1 is None:
                    opt1 = minimize(self._safe(self._objective_smooth), theta0, lower, stage1_ctrl)
                opt1 = self._check_boundary(opt1, self._objective_smooth, lower)
                self.optinfo_stage1 = opt1
                theta1 = _snap(opt1.x, lower)
                if self.n_agq == 0:
                    self.optinfo = opt1
                    self._record_factor()
                    self._finish(theta1, None)
                    return self
                res1 = self.evaluate(theta1)[1]
                beta1 = res1.beta
                # stage 2 starts each PIRLS from stage 1's final linear predictor
                self._eta_start = res1.eta
            else:
                theta1 = theta0
                beta1 = np.asarray(beta0, dtype=float)
                if len(beta1) != self.engine.p:
                    raise ValueError(f"start beta has {len(beta1)} values; the model has "
                                     f"{self.engine.p} fixed effects")
                if self._eta_start is None:
                    self._eta_start = self._eta_init
                    self._eta_start = self.evaluate(theta1, beta1)[1].eta
            self._fit_stage2(theta1, beta1)
        return self

    def _small(self) -> bool:
        """Whether an evaluation is too small for BLAS threads to pay: its dense Schur blocks
        and its pass over the rows (the weighted crossproducts of [X y])."""
        if getattr(self.factor, "mode", None) not in ("dense", "blocked"):
            return False  # the iterative path's factor: chosen for systems too large to factor
        p = self.engine.p
        return factor_evaluation_flops(self.factor) + self.engine.n * (p + 1) ** 2 < SERIAL_FLOPS

    def _fit_stage2(self, theta1: np.ndarray, beta1: np.ndarray) -> None:
        ctrl = self.control
        f = self.factor
        nth = f.n_theta
        lower_th = f.theta_lower_bounds()
        # β in units of its standard error: the trust region of BOBYQA is a ball
        res = self.engine.pirls(theta1, beta1, eta_start=self._eta_start)
        self.engine.eta = res.eta
        try:
            R = self.engine.rx(theta1, res)
            Rinv = solve_triangular(R, np.eye(len(beta1)), lower=True, check_finite=False)
            scale = np.sqrt(np.sum(Rinv * Rinv, axis=0))
            if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            scale = np.maximum(np.abs(beta1), 1.0)

        def to_par(x):
            return x[:nth], beta1 + scale * x[nth:]

        def fun(x):
            th, b = to_par(x)
            return self._objective_smooth(th, b)

        x0 = np.concatenate([theta1, np.zeros(len(beta1))])
        lower = np.concatenate([lower_th, np.full(len(beta1), -np.inf)])
        options = dict(ctrl.options)
        options.setdefault("initial_step", np.concatenate(
            [np.maximum(_S2_STEP * np.abs(theta1), 0.01), np.full(len(beta1), self.stage2_beta_step)]))
        ctrl2 = Control(optimizer=ctrl.optimizer, maxfun=ctrl.maxfun,
                        ftol_abs=max(ctrl.ftol_abs, _S2_FTOL), xtol_abs=max(ctrl.xtol_abs, _S2_XTOL),
                        options=options)
        opt = None
        if self._gradient_available() and is_default_optimizer(ctrl.optimizer):
            opt = self._minimize_with_gradient(to_par, scale, x0, lower, ctrl2)
        # (a user's Control(optimizer="lbfgsb") differences the deviance: it is always polished)
        gradient_search = opt is not None
        if opt is None:
            opt = minimize(self._safe(fun), x0, lower, ctrl2)
        opt = self._check_boundary(opt, fun, lower)
        if self.nobs < _HESSIAN_NOBS_MAX and not opt.maxfun_reached and not (
                gradient_search and _interior_gradient_optimum(opt, lower_th)):
            opt = self._polish(opt, to_par, lower, ctrl)
        th, b = to_par(opt.x)
        th = _snap(th, lower_th)
        # report in lme4's parametrisation (θ, β)
        opt.x = np.concatenate([th, b])
        opt.log_x = [np.concatenate(to_par(x)) for x in opt.log_x]
        self.optinfo = opt
        self._record_factor()
        self._finish(th, b)

    def _record_factor(self) -> None:
        """``optinfo.factor``: how the engine's blocked factor forms each term's block."""
        factor = getattr(self.engine, "factor", None)
        if factor is not None and hasattr(factor, "describe"):
            self.optinfo.factor = factor.describe([t.name for t in self.design.terms])

    def _gradient_available(self) -> bool:
        return self.has_analytic_gradient

    # -- the contract post-estimation uses -------------------------------------------------------
    @property
    def has_analytic_gradient(self) -> bool:
        """Whether :meth:`objective_and_gradient` is available: one scalar term, the Laplace
        deviance, a canonical link (binomial-logit, Poisson-log), and a response whose aic is its
        deviance plus a constant. Not for binomial successes that are not whole numbers: aic
        counts them rounded, as R's, so the deviance's gradient is not the objective's (L-BFGS-B
        then stopped away from the optimum; above 10,000 rows nothing polished it)."""
        return (self.engine.scalar and self.n_agq == 1 and self.family.analytic_gradient
                and self.engine.aic_is_deviance_plus_constant)

    def smooth_objective(self, theta: np.ndarray, beta: np.ndarray | None = None) -> float:
        """The deviance with PIRLS warm-started and converged tightly: smooth in (θ, β), what
        optimizers and profiles use. Call :meth:`restore_fit_state` when done."""
        return self._objective_smooth(theta, beta)

    def objective_and_gradient(self, theta: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray]:
        """The Laplace deviance at (θ, β) and its exact gradient in (θ, β) (see
        :attr:`has_analytic_gradient`). Raises FloatingPointError when PIRLS fails."""
        if not self.has_analytic_gradient:
            raise NotImplementedError("the analytic gradient needs one scalar random-effects term, "
                                      "n_agq=1 and a canonical link (binomial-logit, poisson-log)")
        eng = self.engine
        theta = np.asarray(theta, dtype=float)
        beta = np.asarray(beta, dtype=float)
        res = eng.pirls(theta, beta, criterion="step")
        if not res.converged:
            raise FloatingPointError(res.message)
        return float(eng.laplace(res)), eng.gradient_scalar(theta, res)

    def restore_fit_state(self) -> None:
        """Put the model back in its fitted state after deviance evaluations elsewhere: PIRLS'
        warm start and the factor at the fitted weights and θ."""
        self.engine.eta = self._eta.copy()
        self._factor_at_estimates()

    def _factor_at_estimates(self):
        eng = self.engine
        mu_eta = self.family.link.mu_eta(self._eta)
        w = self._wt * mu_eta * mu_eta / self.family.variance(self._mu)
        eng.cp_full.reweight(w, (self._eta - self._offset) + (self._y - self._mu) / mu_eta)
        return eng.factor.update(self._theta)

    @property
    def response(self) -> np.ndarray:
        return np.asarray(self._y, dtype=float)

    @property
    def prior_weights(self) -> np.ndarray:
        """Total prior weights per observation (trials × weights for binomial proportions)."""
        return np.asarray(self._wt, dtype=float)

    @property
    def trials(self) -> np.ndarray:
        return np.asarray(self._nsize, dtype=float)

    def linear_predictor(self) -> np.ndarray:
        """η = Xβ + Zb (+ offset) at the estimates."""
        return self._eta.copy()

    def warm_start(self):
        """θ, β and the linear predictor every PIRLS of this fit started from: a refit to the
        same response retraces the fit's last stage and lands on the same estimates."""
        # with stage 1's curvature, which sets θ's units in stage 2's gradient search: without
        # it a refit to a new response took twice the evaluations of a fresh fit (cbpp: 19 vs 9)
        return {"theta": self.theta, "beta": self.beta,
                "eta": None if self._eta_start is None else self._eta_start.copy(),
                "stage1_curvature": self._stage1_curvature}

    def _with_data(self, y, weights, control) -> "GeneralizedLinearMixedModel":
        design = self.design.with_response(self._y if y is None else y, weights)
        new = self.with_design(design, control=control)
        new.separation_warned = self.separation_warned
        return new

    def with_design(self, design: ModelDesign, *, control: Control | None = None) -> "GeneralizedLinearMixedModel":
        return GeneralizedLinearMixedModel(design, self.family, self.n_agq, control or self.control,
                                           self.data_name)


    def _stage1_with_gradient(self, theta0: np.ndarray, lower: np.ndarray) -> OptSummary | None:
        """Stage 1 (θ only, β in PIRLS) by L-BFGS-B with the analytic derivative; it only
        provides stage 2's start, so a loose tolerance does."""
        trace: list[tuple[float, float]] = []

        def fg(x):
            value, grad = self.engine.laplace_stage1_scalar(x)
            trace.append((float(x[0]), float(grad)))
            return value, np.array([grad])

        opt = None
        try:
            with np.errstate(all="ignore"):
                opt = newton_secant(lambda x: fg(np.array([x])), float(theta0[0]), float(lower[0]))
        except (FloatingPointError, np.linalg.LinAlgError, ValueError):
            pass
        if opt is None:  # L-BFGS-B, which needs no unimodality
            trace.clear()
            fun, grad = value_and_gradient(fg)
            try:
                with np.errstate(all="ignore"):
                    opt = minimize(fun, theta0, lower, self.control, grad=grad, optimizer="lbfgsb",
                                   options={"maxiter": 100, "ftol": 1e-12, "gtol": 1e-4})
            except (FloatingPointError, np.linalg.LinAlgError, ValueError):
                return None
        if not np.all(np.isfinite(opt.x)):
            return None
        self._stage1_curvature = secant_curvature(trace, float(opt.x[0]))
        return opt

    def _theta_scale(self, theta1: np.ndarray) -> np.ndarray:
        """θ's units in stage 2's gradient search: about its standard error, from stage 1's
        curvature, as β is in SE units. In raw units θ's curvature is thousands of times β's
        on large data (100k rows: 2/SE² ≈ 5,000 against 2), and L-BFGS-B, which starts from
        a multiple of the identity, needs ~10 extra evaluations to learn it. 1 (raw units)
        when stage 1 gave no curvature or θ sits near its bound."""
        h = getattr(self, "_stage1_curvature", None)
        scale = np.ones(len(theta1))
        if h is None or len(theta1) != 1 or not np.isfinite(h) or h <= 0 or theta1[0] < 1e-2:
            return scale
        scale[0] = float(np.clip(np.sqrt(2.0 / h), 1e-3, 1.0))
        return scale

    def _minimize_with_gradient(self, to_par, scale, x0, lower, ctrl) -> OptSummary | None:
        """Stage 2 by L-BFGS-B with the analytic gradient (one scalar term, canonical link):
        a handful of evaluations instead of BOBYQA's dozens. None if it does not converge."""
        eng = self.engine
        nth = self.factor.n_theta
        # the search runs in y = x with θ's part divided by th_scale (see _theta_scale)
        th_scale = self._theta_scale(x0[:nth])
        y_scale = np.concatenate([th_scale, np.ones(len(scale))])
        jac_scale = np.concatenate([th_scale, scale])

        def fg(y):
            th, b = to_par(y * y_scale)
            res = eng.pirls(th, b, criterion="step")
            if not res.converged:
                raise FloatingPointError(res.message)
            return eng.laplace(res), eng.gradient_scalar(th, res) * jac_scale

        fun, grad = value_and_gradient(fg)
        try:
            with np.errstate(all="ignore"):
                opt = minimize(fun, x0 / y_scale, lower / y_scale, ctrl, grad=grad,
                               optimizer="lbfgsb",
                               options={"maxiter": 200, "ftol": 1e-15, "gtol": 1e-6, "maxcor": 20})
        except (FloatingPointError, np.linalg.LinAlgError, ValueError):
            return None
        if not np.all(np.isfinite(opt.x)) or (not opt.converged and opt.maxfun_reached):
            return None
        opt.x = opt.x * y_scale
        opt.log_x = [x * y_scale for x in opt.log_x]
        return opt

    def _polish(self, opt: OptSummary, to_par, lower: np.ndarray, ctrl: Control) -> OptSummary:
        """A few small steps on the exact deviance (PIRLS to the modes), the one reported: the
        optimizer stops early where the likelihood is flat (small binary fits)."""
        def fun(x):
            th, b = to_par(x)
            return self._objective_smooth(th, b)

        x_smooth = opt.x.copy()
        start_value = self._safe(fun)(x_smooth)
        polish_ctrl = Control(optimizer=ctrl.optimizer, maxfun=min(ctrl.maxfun, 200),
                              ftol_abs=1e-10, xtol_abs=1e-7,
                              options={"initial_step": np.full(len(x_smooth), 1e-3)})
        pol = minimize(self._safe(fun), x_smooth, lower, polish_ctrl)
        if not np.isfinite(pol.fun) or pol.fun > start_value:
            return opt
        opt.x = pol.x
        opt.fun = pol.fun
        opt.nevals += pol.nevals
        opt.log_x = opt.log_x + pol.log_x
        opt.log_f = opt.log_f + pol.log_f
        opt.message += f"; polished on the exact deviance ({pol.nevals} evaluations)"
        return opt

    def _check_boundary(self, opt: OptSummary, fun, lower: np.ndarray) -> OptSummary:
        """lme4's check.boundary: θ within 1e-5 of its bound is set on it if that is no worse."""
        x = opt.x.copy()
        near = np.flatnonzero((x - lower > 0) & (x - lower < _BOUNDARY_TOL))
        if len(near) == 0:
            return opt
        best = opt.fun
        for i in near:
            trial = x.copy()
            trial[i] = lower[i]
            value = self._safe(fun)(trial)
            if value <= best:
                x, best = trial, value
        opt.x, opt.fun = x, best
        return opt

    def _finish(self, theta: np.ndarray, beta: np.ndarray | None) -> None:
        eng = self.engine
        ctrl = self.control
        pirls = {"tol": ctrl.pirls_tol, "tol_smooth": ctrl.pirls_tol_smooth,
                 "step_tol": ctrl.pirls_step_tol, "maxit": ctrl.pirls_maxit,
                 "max_halvings": ctrl.pirls_max_halvings}
        for opt in (self.optinfo, self.optinfo_stage1):  # one record of every tolerance
            if opt is not None:
                opt.pirls = dict(pirls)
        self._theta = np.asarray(theta, dtype=float).copy()
        # the exact Laplace (AGQ) deviance at the estimates: PIRLS converged tightly, so the value
        # is a function of (θ, β) alone. lme4's (PIRLS from a fixed start, tolerance 1e-7) sits
        # above it by up to ~1e-3 on small binary fits and depends on where PIRLS started.
        value, res = self.evaluate(self._theta, beta, smooth=True)
        self._objective_value = value
        self._beta = res.beta.copy()
        self._u_all = res.u.copy()
        self._eta = res.eta.copy()
        self._mu = res.mu.copy()
        self._pirls = res
        self._hessian_vcov = None
        self._hessian_done = False
        try:
            R = eng.rx(self._theta, res)
            Rinv = solve_triangular(R, np.eye(eng.p), lower=True, check_finite=False)
            self._vcov_unscaled = Rinv.T @ Rinv
        except np.linalg.LinAlgError:
            self._vcov_unscaled = np.full((eng.p, eng.p), np.nan)
        if self.family.has_scale:
            wrss = float(np.sum(self._wt * (self._y - self._mu) ** 2 / self.family.variance(self._mu)))
            self._sigma = float(np.sqrt((wrss + self._u_all @ self._u_all) / eng.n))
        else:
            self._sigma = 1.0
        self._post_fit_checks(res)

    def convergence_objective(self):
        """The smooth deviance over (θ, β) for :mod:`mixedmodels.models.checks`' derivative checks.

        Only below ``_HESSIAN_NOBS_MAX`` rows: each evaluation is a PIRLS over all rows, and
        larger fits are optimised with exact gradients whose own test already guards them.
        With ``n_agq = 0`` the optimisation was over θ alone, with β inside PIRLS.
        """
        if self.nobs >= _HESSIAN_NOBS_MAX:
            return None
        # with separation the optimum is at infinity and PIRLS failures are reported on their
        # own: a derivative check would only add a second ConvergenceWarning to the same fit
        if self.separation_warned or not getattr(self._pirls, "converged", True):
            return None
        nth = self.factor.n_theta
        lower_theta = self.factor.theta_lower_bounds()
        if self.n_agq == 0:
            x = self._theta.copy()
            lower = lower_theta
            names = theta_names(self)

            def fun(v: np.ndarray) -> float:
                return self._objective_smooth(v)
        else:
            # β in units of its standard error, as in stage 2: with an uncentred predictor the
            # Hessian in raw β is so ill-conditioned that finite-difference error alone can
            # make it look indefinite (a false alarm seen on VerbAgg's Anger)
            scale = np.sqrt(np.diag(self._vcov_unscaled))
            if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
                scale = np.ones(len(self._beta))
            x = np.concatenate([self._theta, self._beta / scale])
            lower = np.concatenate([lower_theta, np.full(len(self._beta), -np.inf)])
            names = theta_names(self) + list(self.design.fixef_names)

            def fun(v: np.ndarray) -> float:
                return self._objective_smooth(v[:nth], v[nth:] * scale)

        def restore() -> None:  # evaluations move PIRLS' warm start
            self.engine.eta = self._eta.copy()

        return self._safe(fun), x, lower, names, restore, None

    def _post_fit_checks(self, res: PirlsResult) -> None:
        check_fit(self)
        if not res.converged:
            msg = ("PIRLS did not converge at the estimates (" + res.message + "); "
                   + history_text(res) + ". The estimates may be unreliable: check for "
                   "separation or extreme values, rescale predictors, or simplify the model.")
            self._check_messages.append(msg)
            warnings.warn(msg, ConvergenceWarning, stacklevel=4)
        if self.family.accepts_trials:
            _warn_large_coefficients(self)

    # -- results ---------------------------------------------------------------------------------
    @property
    def loglik(self) -> float:
        """Log-likelihood: −½ × the exact Laplace (or AGQ) deviance at the estimates (lme4's
        ``logLik``, without its PIRLS tolerance: glmmTMB's value)."""
        return -0.5 * self._objective_value

    @property
    def deviance(self) -> float:
        """Sum of squared deviance residuals, as lme4's ``deviance()`` for GLMMs (the summary and
        :func:`~mixedmodels.postestimation.compare.anova` show −2 log-likelihood instead)."""
        return float(np.sum(self.engine.dev_resid(self._mu)))

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects: from the finite-difference Hessian of the deviance
        over (θ, β) when lme4 would compute it (fewer than 10,000 rows, Laplace or AGQ; singular
        fits included), else σ² (R_X R_Xᵀ)⁻¹."""
        names = self.design.fixef_names
        V = self._hessian_vcov_matrix()
        if V is None:
            V = self._sigma ** 2 * self._vcov_unscaled
        return pd.DataFrame(V, index=names, columns=names)

    def _hessian_vcov_matrix(self) -> np.ndarray | None:
        if self._hessian_done:
            return self._hessian_vcov
        self._hessian_done = True
        # singular fits too, as lme4: the deviance extends smoothly across a θ bound of 0 (T with
        # a negative diagonal entry still gives a covariance TTᵀ; a scalar term's deviance is
        # even in θ), so the central differences across it are sound, and the other θ's
        # uncertainty still widens β's SEs (R_X's were 2-5% small on a three-level binomial
        # fit whose district variance is 0)
        if self.n_agq == 0 or self.nobs >= _HESSIAN_NOBS_MAX or len(self._beta) == 0:
            return None
        nth = self.factor.n_theta
        x = np.concatenate([self._theta, self._beta])

        def fun(par):  # the exact deviance: lme4's own (PIRLS to 1e-7) is too rough to difference
            return self._objective_smooth(par[:nth], par[nth:])

        try:
            with np.errstate(all="ignore"):
                if self.has_analytic_gradient:
                    H = hessian_from_gradient(lambda p: self.objective_and_gradient(p[:nth], p[nth:])[1], x)
                else:
                    # a step of 1e-3: at lme4's 1e-4 the second differences of even the exact
                    # deviance carry ~1% rounding error (cbpp's SEs: glmmTMB's to 1e-7 at 1e-3)
                    H = _hessian(fun, x, self._objective_value, delta=_HESSIAN_STEP)
            self.restore_fit_state()
            Hinv = np.linalg.inv(H)
            V = Hinv[nth:, nth:]
            V = V + V.T
            if not np.all(np.isfinite(V)) or np.min(np.linalg.eigvalsh(V)) <= 0:
                warnings.warn("the fixed effects' covariance from the finite-difference Hessian "
                              "is not positive definite; using the one from R_X instead.",
                              ConvergenceWarning, stacklevel=3)
                V = None
        except (np.linalg.LinAlgError, FloatingPointError):
            V = None
        self._hessian_vcov = V
        return V

    def coef_table(self, ddf: str | None = None) -> pd.DataFrame:
        """Estimates, standard errors, z values and, as lme4's summary, Pr(>|z|) (Wald, normal).

        Parameters
        ----------
        ddf : optional
            Passed to :meth:`MixedModel.coef_table` (see :mod:`mixedmodels.postestimation.ddf`).
        """
        table = super().coef_table(ddf)
        if ddf is None and "z value" in table.columns:
            from scipy import stats

            table["Pr(>|z|)"] = 2.0 * stats.norm.sf(np.abs(table["z value"].to_numpy()))
        return table

    @property
    def _u(self) -> list[np.ndarray]:
        out, pos = [], 0
        for q in self.engine.qs:
            out.append(self._u_all[pos:pos + q])
            pos += q
        return out

    def fitted(self, type: str = "response") -> pd.Series:  # noqa: A002 (R's argument name)
        """Fitted values: the mean μ (``"response"``) or the linear predictor η (``"link"``),
        indexed by the data's row labels (rows the fit used)."""
        if type == "response":
            return self._by_row(self._mu.copy(), "fitted")
        if type == "link":
            return self._by_row(self._eta.copy(), "fitted")
        raise ValueError(f"type must be 'response' or 'link', got {type!r}")

    def residuals(self, type: str = "deviance", scaled: bool = False) -> pd.Series:  # noqa: A002
        """Residuals of type ``"deviance"`` (default, as lme4), ``"pearson"``, ``"response"`` or
        ``"working"``; ``scaled`` divides by σ (families with a scale). Indexed by the data's
        row labels (rows the fit used)."""
        y, mu = self._y, self._mu
        if type == "deviance":
            dev = np.maximum(self.engine.dev_resid(mu), 0.0)
            r = np.sign(y - mu) * np.sqrt(dev)
        elif type == "pearson":
            r = (y - mu) * np.sqrt(self._wt / self.family.variance(mu))
        elif type == "response":
            r = y - mu
        elif type == "working":
            r = (y - mu) / self.family.link.mu_eta(self._eta)
        else:
            raise ValueError("type must be 'deviance', 'pearson', 'response' or 'working', "
                             f"got {type!r}")
        return self._by_row(r / self._sigma if scaled else r, "residuals")

    def refit_ml(self) -> "GeneralizedLinearMixedModel":
        """GLMMs are fit by maximum likelihood already: returns self."""
        return self

    @property
    def model_label(self) -> str:
        if self.n_agq > 1:
            how = f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.n_agq}"
        elif self.n_agq == 1:
            how = "Laplace Approximation"
        else:
            how = "nAGQ = 0, PIRLS for the fixed effects"
        return f"Generalized linear mixed model fit by maximum likelihood ({how})"

    # -- over-dispersion -------------------------------------------------------------------------
    @property
    def overdispersion(self) -> dict:
        """Pearson χ², residual df, their ratio and the χ² upper-tail p-value."""
        from scipy import stats

        chisq = float(np.sum(self.residuals(type="pearson") ** 2))
        df = self.nobs - self.npar
        ratio = chisq / df if df > 0 else np.nan
        p = float(stats.chi2.sf(chisq, df)) if df > 0 else np.nan
        return {"chisq": chisq, "df": df, "ratio": ratio, "p_value": p}

    def _overdispersion_note(self) -> str | None:
        if not self.family.overdispersion_applies(self._y, self._nsize, self._wt):
            return None
        od = self.overdispersion
        if not np.isfinite(od["ratio"]) or od["ratio"] <= 1.5 or od["p_value"] >= 0.05:
            return None
        return (f"over-dispersion: Pearson chi2 / df = {od['ratio']:.2f} (chi2 = {od['chisq']:.1f} "
                f"on {od['df']} df, p = {od['p_value']:.2g}). Standard errors are likely too "
                "small; consider an observation-level random effect (1 | obs)"
                + self.family.overdispersion_remedy)

    def summary_notes(self) -> list[str]:
        notes = super().summary_notes()
        note = self._overdispersion_note()
        if note:
            notes.append(note)
        return notes


# --- helpers -----------------------------------------------------------------------------------------

def _snap(theta: np.ndarray, lower: np.ndarray) -> np.ndarray:
    theta = np.asarray(theta, dtype=float).copy()
    theta[(lower == 0) & (theta < 0)] = 0.0
    return theta


def _interior_gradient_optimum(opt: OptSummary, lower_theta: np.ndarray) -> bool:
    """Whether stage 2's gradient search (L-BFGS-B on the analytic gradient) converged with every
    bounded θ clear of its bound, where polishing on the exact deviance gains nothing: on the
    GLMM tests' fits it moved the deviance by at most 6e-11 there, at 14-28 extra evaluations.
    At a bound it does not hold: the deviance is even in a θ at 0, so its gradient there
    vanishes and L-BFGS-B stops where the Laplace optimum is inside (a fit whose stage 1 ended
    on θ = 0: the polish found a deviance 1.1 lower). The convergence check after the fit still
    tests the point either way."""
    # only where it stopped on its gradient test: a stop on the relative reduction of f can be a
    # stall short of the optimum (seen at 0.07 in the logLik on a non-integer binomial response)
    if not opt.converged or "PROJECTED GRADIENT" not in opt.message:
        return False
    theta = opt.x[:len(lower_theta)]
    bounded = np.isfinite(lower_theta)
    return bool(np.all(theta[bounded] - lower_theta[bounded] > _POLISH_CLEARANCE))


def _hessian(fun, x: np.ndarray, fx: float, delta: float = 1e-4) -> np.ndarray:
    """Central finite-difference Hessian, as lme4's ``deriv12``."""
    k = len(x)
    H = np.empty((k, k))
    for j in range(k):
        xp, xm = x.copy(), x.copy()
        xp[j] += delta
        xm[j] -= delta
        H[j, j] = (fun(xp) - 2.0 * fx + fun(xm)) / delta ** 2
        for i in range(j):
            vals = []
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                xx = x.copy()
                xx[i] += si * delta
                xx[j] += sj * delta
                vals.append(fun(xx))
            H[i, j] = H[j, i] = (vals[0] - vals[1] - vals[2] + vals[3]) / (2.0 * delta) ** 2
    return H


def _separation_columns(X: np.ndarray, names: list[str], y: np.ndarray,
                        nsize: np.ndarray, wt: np.ndarray) -> list[str]:
    """Fixed-effect columns that (quasi-)completely separate a binomial response."""
    found = []
    use = wt > 0
    fail_all = np.all(y[use] < 1)
    for j, name in enumerate(names):
        x = X[use, j]
        if np.ptp(x) == 0:
            continue
        yy = y[use]
        if np.all((x == 0) | (x == 1)):
            for val in (1.0, 0.0):
                rows = x == val
                if rows.any() and (np.all(yy[rows] == 0) or np.all(yy[rows] == 1)):
                    found.append((name, f"every row with {name} = {val:g} has "
                                  + ("no successes" if np.all(yy[rows] == 0) else "only successes")))
                    break
        elif np.all((yy == 0) | (yy == 1)) and not fail_all and not np.all(yy == 1):
            x0, x1 = x[yy == 0], x[yy == 1]
            if x0.max() <= x1.min() or x1.max() <= x0.min():
                found.append((name, f"{name} separates the successes from the failures"))
    return found


def check_separation(design: ModelDesign, y, nsize, wt) -> bool:
    found = _separation_columns(design.X, design.fixef_names, y, nsize, wt)
    if found:
        names = ", ".join(n for n, _ in found)
        detail = "; ".join(d for _, d in found)
        warnings.warn(
            f"complete or quasi-complete separation, likely predictor(s): {names} ({detail}). "
            "Its coefficient has no finite maximum-likelihood estimate, so its estimate and "
            "standard error are meaningless. Merge or drop the level, drop the predictor, or use "
            "a penalized (e.g. Firth or Bayesian) fit.", ConvergenceWarning, stacklevel=3)
    return bool(found)


def _warn_large_coefficients(model: GeneralizedLinearMixedModel) -> None:
    if getattr(model, "separation_warned", False):
        return
    X = model.design.X
    sd = X.std(axis=0)
    se = np.sqrt(np.abs(np.diag(model._vcov_unscaled)))
    big = [name for name, b, s, e in zip(model.design.fixef_names, model._beta, sd, se)
           if s > 0 and abs(b) * s > 10 and (not np.isfinite(e) or abs(b) / e < 2)]
    if big:
        warnings.warn(
            f"very large fixed-effect estimate(s) with large standard errors: {', '.join(big)}; "
            "this is the signature of complete or quasi-complete separation. Check the cross-"
            "tabulation of the response with these predictors; consider a penalized fit.",
            ConvergenceWarning, stacklevel=4)
