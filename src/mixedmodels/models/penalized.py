"""Penalized (maximum a posteriori) LMMs and GLMMs, as blme's ``blmer`` and ``bglmer``.

The priors of :mod:`mixedmodels.models.priors` add their penalty (−2 log prior) to the
profiled deviance (LMM) or to the Laplace deviance (GLMM); nothing else passes over the data.

LMM: the criterion is blme's. With the default priors σ (and β) are profiled out as in lmer:
σ² = (pwrss + quadratic prior terms) / (n − p_REML + df adjustment), or from the quadratic that a
gamma or inverse-gamma residual prior gives. With a prior that scales with σ in another way (a
t prior on β with ``common_scale``, a normal prior with ``common_scale=False``, a covariance prior
with ``common_scale=False`` and more than one power of σ) σ becomes a parameter of the
optimization, and with a t prior β does too (then the criterion has the GLS term
``‖R_Xᵀ(β − β̂)‖²/σ²``). A normal prior on β enters as pseudo-data: its precision is added to the
fixed-effects block of the crossproducts, so β̂ is the penalized estimate and log|R_X|² includes it.

As blme, ``loglik`` is the (RE)ML log-likelihood at the mode (without the penalty), ``penalty``
the prior's deviance there and ``penalized_objective`` their sum, the criterion minimised.
"""

from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np
import pandas as pd

from ..core.lapack import tri_solve
from ..spec.design import ModelDesign
from .checks import theta_names
from .glmm import GeneralizedLinearMixedModel
from .lmm import LinearMixedModel
from .optim import Control, minimize
from .priors import BoundPrior, NormalPrior, PointPrior, TPrior, get_prior

__all__ = ["PenalizedLinearMixedModel", "PenalizedGeneralizedLinearMixedModel", "PriorSet", "bind_priors"]

_LOG_2PI = np.log(2.0 * np.pi)


class PriorSet:
    """The bound priors of one model: one covariance prior (or None) per random-effects term,
    the fixed-effects prior and the residual prior."""

    def __init__(self, cov: list[BoundPrior | None], groups: list[str], fixef: BoundPrior | None,
                 resid: BoundPrior | None, spec: tuple = ("wishart", None, None)):
        self.cov, self.groups, self.fixef, self.resid = cov, groups, fixef, resid
        #: the user's (cov_prior, fixef_prior, resid_prior), to bind them to another design
        self.spec = spec

    @property
    def constant(self) -> float:
        return sum(p.constant for p in [*self.cov, self.fixef, self.resid] if p is not None)

    @property
    def df_adjustment(self) -> float:
        return sum(p.df_adjustment for p in [*self.cov, self.fixef, self.resid] if p is not None)

    def lines(self, digits: int = 4) -> list[str]:
        """As blme's summary: ``Cov prior  : g ~ wishart(...)``, ``Fixef prior: ...``."""
        out = []
        seen = set()
        cov = []
        for g, p in zip(self.groups, self.cov):
            if p is not None and (g, id(p)) not in seen:
                cov.append(f"{g} ~ {p.describe(digits)}")
                seen.add((g, id(p)))
        for i, text in enumerate(cov):
            out.append(("Cov prior  : " if i == 0 else "           : ") + text)
        if self.fixef is not None:
            out.append("Fixef prior: " + self.fixef.describe(digits))
        if self.resid is not None:
            out.append("Resid prior: " + self.resid.describe(digits))
        return out

    def cov_penalty(self, Ts: list[np.ndarray], exps: dict) -> float:
        """The covariance priors' polynomial terms (returned) and exponential terms (into ``exps``)."""
        poly = 0.0
        for prior, T in zip(self.cov, Ts):
            if prior is None:
                continue
            poly += prior.polynomial(T)
            k, v = prior.exponential(T)
            if v != 0:
                exps[k] += v
        return poly


def bind_priors(design: ModelDesign, cov_prior="wishart", fixef_prior=None, resid_prior=None, *,
                glmm: bool = False) -> PriorSet:
    """Bind the user's priors to a design, as blme resolves ``cov.prior``, ``fixef.prior`` and
    ``resid.prior``.

    ``cov_prior`` is a prior, a name or None for every term, or a dict ``{group: prior}`` (blme's
    ``list(g ~ ..., h ~ ...)``): groups not named get no prior unless the key ``"*"`` gives one.
    """
    terms = design.terms
    groups = [t.group for t in terms]
    if isinstance(cov_prior, dict):
        unknown = [g for g in cov_prior if g != "*" and g not in groups]
        if unknown:
            raise ValueError(f"cov_prior names grouping factor(s) {unknown} that are not in the model "
                             f"(its grouping factors: {sorted(set(groups))})")
        default = get_prior(cov_prior.get("*"), "cov")
        chosen = [get_prior(cov_prior[g], "cov") if g in cov_prior else default for g in groups]
    else:
        chosen = [get_prior(cov_prior, "cov")] * len(terms)
    cov = [None if pr is None else pr.bind("cov", level_dim=t.ncols, glmm=glmm, group=t.group)
           for pr, t in zip(chosen, terms)]
    p = design.X.shape[1]
    fp = get_prior(fixef_prior, "fixef")
    fixef = None if fp is None else fp.bind("fixef", p=p, glmm=glmm)
    rp = get_prior(resid_prior, "resid")
    resid = None if rp is None else rp.bind("resid", glmm=glmm)
    return PriorSet(cov, groups, fixef, resid, (cov_prior, fixef_prior, resid_prior))


def _solve_u(factor, beta: np.ndarray) -> list[np.ndarray]:
    """The spherical random effects at a given β (the conditional modes given β)."""
    p = factor.cp.p
    u: list = [None] * factor.k
    for i in reversed(range(factor.k)):
        c = factor.L_xy[i][p] - factor.L_xy[i][:p].T @ beta
        for r in range(i + 1, factor.k):
            c = c - np.asarray(factor.L_off[(r, i)].T @ u[r]).ravel()
        u[i] = factor.solve_diag_t(i, c)
    return u


def _newton_polish(fun, x: np.ndarray, lower: np.ndarray, fx: float, iters: int = 6,
                   h: float = 1e-4) -> tuple[np.ndarray, float, int]:
    """Newton steps on finite-difference derivatives after BOBYQA, kept only when they lower the
    criterion: BOBYQA leaves the flat directions (a near-zero correlation) ~1e-5 off."""
    x = np.asarray(x, dtype=float).copy()
    k = len(x)
    evals = 0
    for _ in range(iters):
        free = ~(np.isfinite(lower) & (x - lower < 2 * h))
        idx = np.flatnonzero(free)
        if len(idx) == 0:
            break
        step = h * np.maximum(np.abs(x), 1.0)
        g = np.zeros(k)
        H = np.zeros((k, k))
        fp, fm = {}, {}
        for i in idx:
            e = np.zeros(k)
            e[i] = step[i]
            fp[i], fm[i] = fun(x + e), fun(x - e)
            g[i] = (fp[i] - fm[i]) / (2 * step[i])
            H[i, i] = (fp[i] - 2 * fx + fm[i]) / step[i] ** 2
        for a in idx:
            for b in idx:
                if b >= a:
                    continue
                e = np.zeros(k)
                e[a], e[b] = step[a], step[b]
                H[a, b] = H[b, a] = (fun(x + e) - fp[a] - fp[b] + fx) / (step[a] * step[b])
        evals += 2 * len(idx) + len(idx) * (len(idx) - 1) // 2
        Hs = H[np.ix_(idx, idx)]
        if not np.all(np.isfinite(Hs)) or not np.all(np.isfinite(g)):
            break
        try:
            np.linalg.cholesky(Hs)
            d = -np.linalg.solve(Hs, g[idx])
        except np.linalg.LinAlgError:
            break
        improved = False
        t = 1.0
        for _ in range(8):
            trial = x.copy()
            trial[idx] = x[idx] + t * d
            trial = np.maximum(trial, lower)
            ft = fun(trial)
            evals += 1
            if ft < fx:
                improved = fx - ft > 1e-13 * max(1.0, abs(fx))
                x, fx = trial, ft
                break
            t *= 0.5
        if not improved:
            break
    return x, fx, evals


class PenalizedLinearMixedModel(LinearMixedModel):
    """A linear mixed model fit by maximising the posterior (blme's ``blmer``).

    Parameters
    ----------
    design : ModelDesign
    reml : bool
    control : Control, optional
    priors : PriorSet
        From :func:`bind_priors`.
    """

    r_class = "blmerMod"

    def __init__(self, design: ModelDesign, reml: bool = True, control: Control | None = None,
                 data_name: str | None = None, *, priors: PriorSet):
        super().__init__(design, reml=reml, control=control, data_name=data_name)
        self.priors = priors
        fx = priors.fixef
        if isinstance(fx, TPrior) and self.reml:
            raise ValueError("a t prior on the fixed effects needs maximum likelihood (reml=False), as in "
                             "blme; use a normal prior with REML")
        p = self.crossproducts.p
        self._xx_base = self.crossproducts.xyxy[:p, :p].copy()
        self.fixef_numeric = isinstance(fx, TPrior) and p > 0
        self.sigma_type = self._sigma_type()
        if isinstance(fx, NormalPrior) and fx.common_scale:
            self.crossproducts.xyxy = self.crossproducts.xyxy.copy()
            self.crossproducts.xyxy[:p, :p] = self._xx_base + fx.precision
        self._state: dict = {}

    # -- how σ is handled (blme's getSigmaOptimizationType) ----------------------------------------
    def _sigma_type(self) -> str:
        pr = self.priors
        if isinstance(pr.resid, PointPrior):
            return "point"
        fx = pr.fixef
        if isinstance(fx, NormalPrior) and not fx.common_scale:
            return "numeric"
        if isinstance(fx, TPrior) and fx.common_scale:
            return "numeric"
        powers = set()
        for c in pr.cov:
            if c is None:
                continue
            if c.sigma_power() != 0:
                powers.add(c.sigma_power())
        if pr.resid is not None and pr.resid.sigma_power() != 0:
            powers.add(pr.resid.sigma_power())
        extra = powers - {-2}
        if not extra:
            return "sq_linear"
        if len(extra) > 1 or not extra <= {-1, 2}:
            return "numeric"
        return "quadratic" if extra == {-1} else "sq_quadratic"

    @property
    def n_par(self) -> int:
        return (self.factor.n_theta + (self.crossproducts.p if self.fixef_numeric else 0)
                + (1 if self.sigma_type == "numeric" else 0))

    def par_names(self) -> list[str]:
        names = theta_names(self)
        if self.fixef_numeric:
            names += list(self.design.fixef_names)
        if self.sigma_type == "numeric":
            names.append("sigma")
        return names

    def par_lower(self) -> np.ndarray:
        lower = [self.factor.theta_lower_bounds()]
        if self.fixef_numeric:
            lower.append(np.full(self.crossproducts.p, -np.inf))
        if self.sigma_type == "numeric":
            lower.append(np.zeros(1))
        return np.concatenate(lower)

    # -- the criterion ----------------------------------------------------------------------------
    def evaluate(self, par: np.ndarray, *, sigma: float | None = None, beta: np.ndarray | None = None) -> dict:
        """blme's criterion at ``par`` = (θ[, β][, σ]) and the quantities at that point.

        ``sigma`` and ``beta`` fix σ and β instead of profiling them (the profiles and intervals
        use this explicit criterion; with ``beta`` the GLS term ``‖R_Xᵀ(β − β̂)‖²/σ²`` is added).
        """
        par = np.atleast_1d(np.asarray(par, dtype=float))
        nt = self.factor.n_theta
        cp = self.crossproducts
        n, p = cp.n, cp.p
        pr = self.priors
        theta = par[:nt]
        beta_fixed = beta
        if sigma is not None:
            sigma = float(sigma)
            if not sigma > 0:
                return {"value": np.inf}
        elif self.sigma_type == "numeric":
            sigma = float(par[-1])
            if not sigma > 0:
                return {"value": np.inf}
        elif self.sigma_type == "point":
            sigma = pr.resid.value
        fx = pr.fixef
        if isinstance(fx, NormalPrior) and not fx.common_scale:
            cp.xyxy[:p, :p] = self._xx_base + sigma ** 2 * fx.precision
        f = self.factor.update(theta)
        beta_hat, u = f.solve()
        pwrss = f.pwrss
        exps: dict = defaultdict(float)
        if isinstance(fx, NormalPrior):
            # pwrss of the factor includes the pseudo-data βᵀPᵀPβ; blme counts βᵀRRᵀβ separately
            scale2 = 1.0 if fx.common_scale else sigma ** 2
            pv = fx.R_cov_inv @ beta_hat
            pwrss -= scale2 * float(pv @ pv)
            k, v = fx.exponential(beta_hat)
            exps[k] += v
        beta = beta_hat
        d = np.zeros(0)
        if self.fixef_numeric or beta_fixed is not None:
            beta = par[nt:nt + p] if beta_fixed is None else np.asarray(beta_fixed, dtype=float)
            L = f.R_xy[:p, :p]
            d = L.T @ (beta - beta_hat)
            exps[-2] += float(d @ d)
            u = _solve_u(f, beta)
            if self.fixef_numeric:
                exps[0] += fx.exponential(beta, sigma if fx.common_scale else None)[1]
        poly = pr.cov_penalty(f.T, exps)
        if pr.resid is not None:
            k, v = pr.resid.exponential()
            if v != 0:
                exps[k] += v
        if any(not np.isfinite(v) for v in exps.values()) or not np.isfinite(poly):
            return {"value": np.inf}
        p_reml = p if self.reml else 0
        df = n - p_reml + pr.df_adjustment
        if sigma is None:
            total = pwrss + exps.get(-2, 0.0)
            if self.sigma_type == "sq_linear":
                sigma = np.sqrt(total / df)
            elif self.sigma_type == "sq_quadratic":
                a = exps[2]
                sigma = np.sqrt((np.sqrt(df * df + 4.0 * total * a) - df) / (2.0 * a))
            else:
                a = exps[-1]
                sigma = 0.25 * (np.sqrt(a * a + 16.0 * df * total) + a) / df
        s2 = sigma * sigma
        base = f.logdet_z + (f.logdet_x if self.reml else 0.0) + pwrss / s2 + (n - p_reml) * np.log(2 * np.pi * s2)
        prior_exp = sum(v * sigma ** k for k, v in exps.items())
        value = base + prior_exp + poly + pr.constant + pr.df_adjustment * np.log(s2) - self._log_weights
        unpenalized = base - self._log_weights
        if len(d):
            unpenalized += float(d @ d) / s2
        return {"value": float(value), "unpenalized": float(unpenalized), "sigma": float(sigma),
                "beta": np.array(beta, dtype=float), "u": u, "theta": theta.copy()}

    def objective(self, theta: np.ndarray, reml: bool | None = None) -> float:
        """The penalized criterion (−2 log posterior, blme's) at ``theta`` = the full parameter
        vector (θ, then β and σ when they are optimised, see :meth:`par_names`)."""
        if reml is not None and bool(reml) != self.reml:
            return LinearMixedModel.objective(self, np.asarray(theta)[:self.factor.n_theta], reml=reml)
        try:
            return self.evaluate(theta)["value"]
        except np.linalg.LinAlgError:
            return np.inf

    def fit(self, start: np.ndarray | None = None) -> "PenalizedLinearMixedModel":
        """Minimise the penalized criterion; the optimizer runs to tight tolerances (blme's
        defaults stop visibly short of its own optimum, e.g. a gradient of 2 on sleepstudy)."""
        ctrl = self.control
        nt = self.factor.n_theta
        if start is None:
            start = ctrl.start
        x0 = self.default_start() if start is None else np.asarray(start, dtype=float)
        if len(x0) == nt and self.n_par > nt:
            x0 = self._extend_start(x0)
        if len(x0) != self.n_par:
            raise ValueError(f"start has {len(x0)} values; this model has {self.n_par} parameters "
                             f"({', '.join(self.par_names())})")
        tight = Control(optimizer=ctrl.optimizer, maxfun=max(ctrl.maxfun, 100_000),
                        ftol_abs=min(ctrl.ftol_abs, 1e-12), xtol_abs=min(ctrl.xtol_abs, 1e-10),
                        xtol_rel=min(ctrl.xtol_rel, 1e-10), options=dict(ctrl.options))
        lower = self.par_lower()
        # β and σ (when optimised) in units of their size, so BOBYQA's trust region is a ball
        scale = np.ones(len(x0))
        if self.n_par > nt:
            st = self.evaluate(x0)
            sig = st.get("sigma", 1.0) if np.isfinite(st["value"]) else 1.0
            pos = nt
            if self.fixef_numeric:
                p = self.crossproducts.p
                R = np.ascontiguousarray(self.factor.R_xy[:p, :p])
                Rinv = tri_solve(R, np.eye(p))
                scale[pos:pos + p] = sig * np.sqrt(np.sum(Rinv * Rinv, axis=0))
                pos += p
            if self.sigma_type == "numeric":
                scale[pos] = max(sig, 1e-8)
        z_lower = np.where(np.isfinite(lower), lower / scale, -np.inf)

        def fun(z):
            return self.objective(z * scale)

        opt = minimize(fun, x0 / scale, z_lower, tight)
        # a restart from the optimum (BOBYQA's trust region may have collapsed early)
        opt2 = minimize(fun, opt.x, z_lower, tight)
        if opt2.fun <= opt.fun:
            opt2.nevals += opt.nevals
            opt = opt2
        z, value, extra = _newton_polish(fun, opt.x, z_lower, opt.fun)
        opt.x, opt.fun = z * scale, value
        opt.nevals += extra
        self.optinfo = opt
        self.set_theta(opt.x)
        self._post_fit_checks()
        return self

    def _extend_start(self, theta0: np.ndarray) -> np.ndarray:
        f = self.factor.update(theta0)
        beta, _ = f.solve()
        parts = [theta0]
        if self.fixef_numeric:
            parts.append(beta)
        if self.sigma_type == "numeric":
            n, p = self.crossproducts.n, self.crossproducts.p
            parts.append([np.sqrt(f.pwrss / (n - (p if self.reml else 0)))])
        return np.concatenate(parts)

    def default_start(self) -> np.ndarray:
        return self._extend_start(LinearMixedModel.default_start(self))

    def warm_start(self):
        return self._par.copy()

    def set_theta(self, theta: np.ndarray) -> None:
        """Set the parameters (θ[, β][, σ]) and everything that follows from them."""
        par = np.asarray(theta, dtype=float).copy()
        nt = self.factor.n_theta
        lower = self.par_lower()
        par[(lower == 0) & (par < 0)] = 0.0
        st = self.evaluate(par)
        if not np.isfinite(st["value"]):
            raise ValueError("the penalized criterion is not finite at these parameters")
        self._par = par
        self._state = st
        self._theta = par[:nt].copy()
        self._objective_value = st["value"]
        self._beta = st["beta"]
        self._u = st["u"]
        self._sigma = st["sigma"]
        p = self.crossproducts.p
        R = np.ascontiguousarray(self.factor.R_xy[:p, :p])
        Rinv = tri_solve(R, np.eye(p))
        self._vcov_unscaled = Rinv.T @ Rinv

    # -- results ---------------------------------------------------------------------------------
    @property
    def penalized_objective(self) -> float:
        """The criterion minimised: −2 log-likelihood (REML: the REML criterion) + the penalty."""
        return self._objective_value

    @property
    def penalty(self) -> float:
        """The priors' deviance at the mode (blme's ``Prior dev``)."""
        return self._objective_value - self._state["unpenalized"]

    @property
    def loglik(self) -> float:
        """The (REML) log-likelihood at the posterior mode, without the penalty, as blme's ``logLik``."""
        return -0.5 * self._state["unpenalized"]

    @property
    def deviance(self) -> float:
        return self._state["unpenalized"]

    @property
    def reml_criterion(self) -> float:
        if self.reml:
            return self._state["unpenalized"]
        return LinearMixedModel.objective(self, self._theta, reml=True)

    def convergence_objective(self):
        par = self._par.copy()
        return (self.objective, par, self.par_lower(), self.par_names(),
                lambda: self.set_theta(par), self._objective_value)

    def with_design(self, design: ModelDesign, *, control: Control | None = None) -> "PenalizedLinearMixedModel":
        """An unfitted model with the same priors (bound again to the new design's terms)."""
        return PenalizedLinearMixedModel(design, reml=self.reml, control=control or self.control,
                                         data_name=self.data_name, priors=bind_priors(design, *self.priors.spec))

    def _with_data(self, y, weights, control):
        design = self.design if y is None else self.design.with_response(y)
        if weights is not None:
            design = design.with_response(design.y, weights)
        return PenalizedLinearMixedModel(design, reml=self.reml, control=control, data_name=self.data_name,
                                         priors=self.priors)

    def refit_ml(self) -> "PenalizedLinearMixedModel":
        if not self.reml:
            return self
        other = PenalizedLinearMixedModel(self.design, reml=False, control=self.control,
                                          data_name=self.data_name, priors=self.priors)
        other.name = self.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other.fit(start=self._theta)
        return other

    def confint(self, method: str = "wald", level: float = 0.95, **kwargs) -> pd.DataFrame:
        """Intervals at the mode: ``"wald"`` (default: estimate ± z·SE for β; the variance rows as
        Wald intervals on the log-SD scale from the curvature of the penalized criterion) or
        ``"profile"`` (the penalized criterion profiled, see :func:`penalized_profile_ci`)."""
        from .penalized_ci import penalized_ci

        return penalized_ci(self, method=method, level=level, **kwargs)

    @property
    def model_label(self) -> str:
        return ("Linear mixed model fit by " + ("REML" if self.reml else "maximum likelihood")
                + ", penalized by priors (blme)")

    def summary_notes(self) -> list[str]:
        notes = self.priors.lines()
        notes.append(f"Prior dev  : {self.penalty:.4f}   (penalized criterion {self.penalized_objective:.4f})")
        notes.append("logLik and the REML criterion are the likelihood's at the posterior mode, "
                     "without the prior")
        return notes + LinearMixedModel.summary_notes(self)


class PenalizedGeneralizedLinearMixedModel(GeneralizedLinearMixedModel):
    """A GLMM fit by maximising the Laplace-approximate posterior (blme's ``bglmer``): the penalty
    at (θ, β) is added to the Laplace (or AGQ) deviance in both of lme4's stages (stage 1 at the
    PIRLS β), and the fixed effects' covariance comes from the Hessian of the penalized deviance."""

    r_class = "bglmerMod"

    def __init__(self, design: ModelDesign, family, n_agq: int = 1, control: Control | None = None,
                 data_name: str | None = None, *, priors: PriorSet, **kwargs):
        super().__init__(design, family, n_agq, control, data_name, **kwargs)
        self.priors = priors

    def prior_penalty(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """The priors' deviance at (θ, β): blme's exponential and polynomial terms and constants."""
        pr = self.priors
        exps: dict = defaultdict(float)
        poly = pr.cov_penalty(self.factor.split_theta(np.asarray(theta, dtype=float)), exps)
        if pr.fixef is not None and len(beta):
            exps[0] += pr.fixef.exponential(np.asarray(beta, dtype=float))[1]
        return float(sum(exps.values()) + poly + pr.constant)

    def evaluate(self, theta, beta=None, *, smooth=False):
        value, res = super().evaluate(theta, beta, smooth=smooth)
        return value + self.prior_penalty(theta, res.beta if beta is None else beta), res

    @property
    def has_analytic_gradient(self) -> bool:
        return False

    @property
    def penalty(self) -> float:
        return self.prior_penalty(self._theta, self._beta)

    @property
    def penalized_objective(self) -> float:
        return self._objective_value

    @property
    def loglik(self) -> float:
        """The Laplace log-likelihood at the posterior mode, without the penalty (blme's ``logLik``)."""
        return -0.5 * (self._objective_value - self.penalty)

    def with_design(self, design: ModelDesign, *, control: Control | None = None):
        return PenalizedGeneralizedLinearMixedModel(design, self.family, self.n_agq, control or self.control,
                                                    self.data_name,
                                                    priors=bind_priors(design, *self.priors.spec, glmm=True))

    def confint(self, method: str = "wald", level: float = 0.95, **kwargs) -> pd.DataFrame:
        """Intervals at the mode (see :meth:`PenalizedLinearMixedModel.confint`)."""
        from .penalized_ci import penalized_ci

        return penalized_ci(self, method=method, level=level, **kwargs)

    @property
    def model_label(self) -> str:
        return GeneralizedLinearMixedModel.model_label.fget(self) + ", penalized by priors (blme)"

    def summary_notes(self) -> list[str]:
        notes = self.priors.lines()
        notes.append(f"Prior dev  : {self.penalty:.4f}   (penalized criterion {self.penalized_objective:.4f})")
        notes.append("logLik is the likelihood's at the posterior mode, without the prior")
        return notes + GeneralizedLinearMixedModel.summary_notes(self)
