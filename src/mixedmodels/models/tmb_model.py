"""Mixed models with glmmTMB's families: zero-inflated and hurdle counts, NB1/NB2, beta,
Tweedie, and dispersion models, fit on the Laplace objective of
:mod:`mixedmodels.models.laplace` (what ``mm.glmer`` returns for these families, or with
``zi=`` / ``disp=``).

The model follows the :class:`~mixedmodels.models.base.MixedModel` contract, so the common
post-estimation (summary, confint, anova/AIC, ranef, refit, simulated residuals) applies; the
parts the other predictors add are :attr:`fixef_zi`, :attr:`fixef_disp`, ``coef_table(component=)``
and ``predict(type="zprob" | "cond" | "zlink" | "disp")``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.parametrization import ThetaParametrization
from ..exceptions import ConvergenceWarning
from ..spec.design import ModelDesign
from .base import JointLikelihoodModel, extension
from .laplace import LaplaceEngine
from .optim import Control, OptSummary, minimize, value_and_gradient
from .tmb_families import TMBFamily, TMBTweedie

__all__ = ["GlmmTMBModel", "Channel", "fit_glmmtmb"]

_SING_TOL = 1e-4
_COMPONENT_LABEL = {"zi": "Zero-inflation model", "disp": "Dispersion model",
                    "power": "Tweedie power (1 + logistic)"}


class Channel:
    """One extra linear predictor (zero inflation, dispersion, power): its model matrix on the
    fit's rows, their labels, the column names and formulaic's spec for new data."""

    def __init__(self, X: np.ndarray, names: list[str], index: pd.Index, spec=None,
                 formula: str = "~1"):
        self.X, self.names, self.index, self.spec, self.formula = np.asarray(X, float), names, index, spec, formula

    def rows(self, index: pd.Index) -> "Channel":
        """The channel on other rows of the same data (a design's subset)."""
        if len(index) == len(self.index) and index.equals(self.index):
            return self
        pos = self.index.get_indexer(index)
        if np.any(pos < 0):
            raise ValueError("the new design has rows the zero-inflation/dispersion model was not "
                             "built on; fit the model again with mm.glmer")
        return Channel(self.X[pos], self.names, index, self.spec, self.formula)

    def on(self, newdata: pd.DataFrame) -> np.ndarray:
        if self.spec is None:
            return np.ones((len(newdata), 1))
        return np.asarray(self.spec.get_model_matrix(newdata, na_action="ignore"), float)


class _ThetaMap:
    """The θ layout (what post-estimation reads from ``model.factor``)."""

    def __init__(self, par: ThetaParametrization):
        self.parametrization = par
        self.layouts = par.layouts
        self.n_theta = par.n_theta

    def split_theta(self, theta):
        return self.parametrization.split(theta)

    def theta_lower_bounds(self):
        return self.parametrization.lower_bounds()

    def theta_start(self):
        return self.parametrization.start()

    def update(self, theta):
        return self


class GlmmTMBModel(JointLikelihoodModel):
    """A mixed model with one of glmmTMB's families; fit with :meth:`fit` or ``mm.glmer``.

    Parameters
    ----------
    design : ModelDesign
        The conditional model's design.
    family : TMBFamily
    channels : dict of Channel
        The model matrix of each extra predictor the family uses (``"zi"``, ``"disp"``,
        ``"power"``).
    control : Control, optional
        ``optimizer`` other than the default runs that optimizer on the same objective
        (without the gradient unless it uses one); the default is L-BFGS-B with the gradient.
    """

    reml = False
    r_class = "glmmTMB"

    def __init__(self, design: ModelDesign, family: TMBFamily, channels: dict, control: Control | None = None,
                 data_name: str | None = None):
        if not design.terms:
            raise ValueError("the formula has no random-effects term such as (1 | g)")
        self.design, self.family, self.control = design, family, control or Control()
        self.data_name, self.name = data_name, None
        self.channels = {c: channels[c] for c in family.channels}
        self._hessian: np.ndarray | None = None
        self.engine = LaplaceEngine(family, design.y, design.X, design.terms, design.offset,
                                    design.weights, {c: ch.X for c, ch in self.channels.items()})
        self.factor = _ThetaMap(self.engine.par)
        self.optinfo: OptSummary | None = None
        self._x: np.ndarray | None = None
        self._cov: np.ndarray | None = None
        self.is_singular = False
        self._check_messages: list[str] = []

    # -- fitting ---------------------------------------------------------------------------------
    def start_values(self) -> np.ndarray:
        """θ = 1 (lme4's start), the intercept at the link of the mean response, the channels'
        intercepts at the family's moment values, other coefficients 0."""
        e = self.engine
        x = np.zeros(e.n_par)
        x[:e.n_theta] = self.factor.theta_start()
        y = np.asarray(self.design.y, float)
        names = self.design.fixef_names
        ybar = float(np.average(y, weights=self.prior_weights))
        mu = np.full(len(y), ybar)
        if "(Intercept)" in names:
            x[e.n_theta + names.index("(Intercept)")] = float(self.family.link.link(np.array(
                [min(max(ybar, 1e-4), 1 - 1e-4) if self.family.link.name == "logit" else max(ybar, 1e-4)]))[0])
        starts = self.family.start_aux(y, mu)
        for k, c in enumerate(e.channels):
            ch = self.channels[c]
            if "(Intercept)" in ch.names:
                x[e.slices[2 + k] + ch.names.index("(Intercept)")] = starts.get(c, 0.0)
        return x

    def fit(self, start=None) -> "GlmmTMBModel":
        """Minimize −log L (Laplace) over θ, β and the other predictors' coefficients.

        Parameters
        ----------
        start : array or dict, optional
            The full parameter vector (θ, β, then each channel's coefficients), or
            ``{"x": ...}`` / ``{"theta": ..., "beta": ...}``.
        """
        e = self.engine
        x0 = self.start_values()
        if isinstance(start, dict):
            if start.get("x") is not None:
                x0 = np.asarray(start["x"], float).copy()
            else:
                if start.get("theta") is not None:
                    x0[:e.n_theta] = start["theta"]
                if start.get("beta") is not None:
                    x0[e.n_theta:e.n_theta + e.p] = start["beta"]
        elif start is not None:
            x0[:e.n_theta] = np.asarray(start, float)
        elif self.control.start is not None:
            x0[:e.n_theta] = np.asarray(self.control.start, float)
        if len(x0) != e.n_par:
            raise ValueError(f"start has {len(x0)} values; this model has {e.n_par} parameters")
        lower = e.lower_bounds()
        with np.errstate(all="ignore"):
            default = self.control.optimizer in ("auto", "bobyqa", "lbfgsb", "l-bfgs-b")
            opt = self._optimize_log(x0, lower) if default else self._optimize(x0, lower)
            th = opt.x[:e.n_theta]
            diag = lower[:e.n_theta] == 0
            if default and np.any(th[diag] < _SING_TOL):
                # the optimum is on (or near) the boundary: finish there with bounds
                again = self._optimize(opt.x, lower)
                if again.fun <= opt.fun:
                    again.nevals += opt.nevals
                    opt = again
            x, H = self._newton_polish(opt, lower)
        self.optinfo = opt
        self._finish(x)
        self._hessian = H
        return self

    def _newton_polish(self, opt: OptSummary, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One Newton step from the optimizer's end on the (finite-difference of the exact
        gradient) Hessian, kept when it lowers F: quasi-Newton methods stop ~1e-5 short in flat
        directions. The Hessian is the one the standard errors use."""
        e = self.engine
        x = opt.x.copy()
        x[(lower == 0) & (x < 0)] = 0.0
        try:
            H = e.hessian(x)
            f0, g = e.value_and_gradient(x)
        except (FloatingPointError, np.linalg.LinAlgError):
            return x, None
        free = ~((lower == 0) & (x < _SING_TOL))      # parameters on their bound stay there
        d = np.diag(H)
        free &= d > 1e-9 * max(float(np.max(np.abs(d), initial=0.0)), 1e-300)
        try:
            step = np.zeros_like(x)
            step[free] = -np.linalg.solve(H[np.ix_(free, free)], g[free])
        except np.linalg.LinAlgError:
            return x, H
        trial = np.maximum(x + step, lower)
        f1 = e.objective(trial)
        if np.isfinite(f1) and f1 <= f0:
            opt.message += f"; one Newton step on the Hessian (F lowered by {f0 - f1:.2g})"
            opt.x, opt.fun = trial, f1
            return trial, H
        e.objective(x)
        return x, H

    def _optimize_log(self, x0: np.ndarray, lower: np.ndarray) -> OptSummary:
        """L-BFGS with the diagonal of each T on the log scale, as glmmTMB's log-sd (the
        boundary θ = 0 is a stationary point that the bounded optimizer can stop at)."""
        e = self.engine
        diag = lower == 0

        def to_x(z):
            x = z.copy()
            x[diag] = np.exp(z[diag])
            return x

        def fg(z):
            x = to_x(z)
            value, g = e.value_and_gradient(x)
            g = g.copy()
            g[diag] *= x[diag]
            return value, g

        fun, grad = value_and_gradient(fg)

        def safe_fun(z):
            try:
                return fun(z)
            except (FloatingPointError, np.linalg.LinAlgError):
                return np.inf
        z0 = x0.copy()
        z0[diag] = np.log(np.maximum(x0[diag], 1e-8))
        opt = minimize(safe_fun, z0, np.full(len(z0), -np.inf), self.control, grad=grad,
                       optimizer="lbfgsb",
                       options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9, "maxcor": 20})
        opt.x = to_x(opt.x)
        opt.log_x = [to_x(z) for z in opt.log_x]
        return opt

    def _optimize(self, x0: np.ndarray, lower: np.ndarray) -> OptSummary:
        e = self.engine
        ctrl = self.control
        if ctrl.optimizer in ("auto", "bobyqa", "lbfgsb", "l-bfgs-b"):
            fun, grad = value_and_gradient(e.value_and_gradient)

            def safe_fun(x):
                try:
                    return fun(x)
                except (FloatingPointError, np.linalg.LinAlgError):
                    return np.inf
            return minimize(safe_fun, x0, lower, ctrl, grad=grad, optimizer="lbfgsb",
                            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9, "maxcor": 20})
        return minimize(e.objective, x0, lower, ctrl)

    def _finish(self, x: np.ndarray) -> None:
        e = self.engine
        lower = e.lower_bounds()
        x = np.asarray(x, float).copy()
        x[(lower == 0) & (x < 0)] = 0.0
        st = e.modes(x)
        self._x = x
        self._state = st
        self._value = st["value"]
        self._theta, self._beta, self._coefs = e.split(x)
        self._theta, self._beta = self._theta.copy(), self._beta.copy()
        self._u_all = st["u"].copy()
        self._eta = st["eta"].copy()
        self._aux = {c: v.copy() for c, v in st["aux"].items()}
        self._cov = None
        self._sigma = self._dispersion_value()
        ldiag = lower[:e.n_theta] == 0
        self.is_singular = bool(np.any(self._theta[ldiag] < _SING_TOL))
        if not st["converged"]:
            self._check_messages.append("the inner Newton iterations for the random effects did not "
                                        "converge at the estimates")
        if self.optinfo is not None and not self.optinfo.converged:
            import warnings

            msg = (f"the optimizer did not report convergence ({self.optinfo.message}); check the "
                   "estimates, e.g. with mm.all_fit or other start values")
            self._check_messages.append(msg)
            warnings.warn(msg, ConvergenceWarning, stacklevel=3)

    def _dispersion_value(self) -> float:
        if "disp" not in self.channels:
            return 1.0
        ch = self.channels["disp"]
        if ch.X.shape[1] == 1 and np.allclose(ch.X, 1.0):
            return float(self.family.sigma(np.array([self._coefs["disp"][0]]))[0])
        return float("nan")

    # -- the contract ----------------------------------------------------------------------------
    def objective(self, theta, beta=None, coefs=None) -> float:
        """−2 log L (Laplace) at θ (with β and the channels' coefficients at the estimates unless
        given, ``coefs`` a dict by channel)."""
        x = self._x.copy() if self._x is not None else self.start_values()
        e = self.engine
        x[:e.n_theta] = theta
        if beta is not None:
            x[e.n_theta:e.n_theta + e.p] = beta
        for k, c in enumerate(e.channels):
            if coefs is not None and c in coefs:
                x[e.slices[2 + k]:e.slices[3 + k]] = coefs[c]
        return 2.0 * e.objective(x)

    def with_design(self, design: ModelDesign, *, control: Control | None = None) -> "GlmmTMBModel":
        channels = {c: ch.rows(design.frame.index) for c, ch in self.channels.items()}
        return GlmmTMBModel(design, self.family, channels, control or self.control, self.data_name)

    def warm_start(self):
        return {"x": self._x.copy()}

    # -- estimates -------------------------------------------------------------------------------
    @property
    def loglik(self) -> float:
        """The Laplace log-likelihood (glmmTMB's ``logLik``)."""
        return -self._value

    @property
    def params(self) -> pd.Series:
        """Every estimated parameter: θ, then ``cond.``, ``zi.``, ``disp.``, ``power.`` coefficients."""
        return pd.Series(self._x, index=self._param_names())

    def _param_names(self) -> list[str]:
        from .checks import theta_names

        names = theta_names(self) + [f"cond.{n}" for n in self.design.fixef_names]
        for c in self.engine.channels:
            names += [f"{c}.{n}" for n in self.channels[c].names]
        return names

    def _coef_series(self, c: str) -> pd.Series:
        if c not in self.channels:
            return pd.Series([], dtype=float, name="Estimate")
        return pd.Series(self._coefs[c].copy(), index=self.channels[c].names, name="Estimate")

    @property
    def fixef_zi(self) -> pd.Series:
        """The zero-inflation (hurdle) model's coefficients, on the logit scale."""
        return self._coef_series("zi")

    @property
    def fixef_disp(self) -> pd.Series:
        """The dispersion model's coefficients (log scale, glmmTMB's ``fixef(m)$disp``)."""
        return self._coef_series("disp")

    @property
    def power(self) -> float | None:
        """Tweedie's power parameter (glmmTMB's ``family_params``); None for other families."""
        if not isinstance(self.family, TMBTweedie):
            return None
        return self.family.power(self._coefs["power"][0])

    def covariance_of_parameters(self) -> pd.DataFrame:
        """The inverse Hessian of −log L over every parameter (as :attr:`params`)."""
        if self._cov is None:
            H = getattr(self, "_hessian", None)
            if H is None:
                with np.errstate(all="ignore"):
                    H = self.engine.hessian(self._x)
                    self.engine.modes(self._x)   # back to the estimates' mode and factor
            self._cov = _covariance_from_hessian(H)
            flat = np.isnan(np.diag(self._cov))
            if flat.any():
                names = [n for n, f in zip(self._param_names(), flat) if f]
                self._check_messages.append(
                    "the likelihood is flat in " + ", ".join(names) + " (estimates running off to "
                    "±infinity, e.g. a zero-inflation probability of 0 for some level): their "
                    "standard errors are not available; consider dropping those terms")
        names = self._param_names()
        return pd.DataFrame(self._cov, index=names, columns=names)

    def _block(self, c: str) -> np.ndarray:
        e = self.engine
        k = {"cond": 1, **{ch: 2 + i for i, ch in enumerate(e.channels)}}[c]
        s = slice(e.slices[k], e.slices[k + 1])
        return self.covariance_of_parameters().to_numpy()[s, s]

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the conditional model's fixed effects (from the Hessian, as glmmTMB)."""
        names = self.design.fixef_names
        return pd.DataFrame(self._block("cond"), index=names, columns=names)

    @property
    def vcov_unscaled(self) -> np.ndarray:
        return self.vcov.to_numpy()

    def vcov_component(self, component: str = "cond") -> pd.DataFrame:
        """Covariance of ``"cond"``, ``"zi"`` or ``"disp"`` coefficients (glmmTMB's ``vcov(m)$zi``)."""
        names = self.design.fixef_names if component == "cond" else self.channels[component].names
        return pd.DataFrame(self._block(component), index=names, columns=names)

    def coef_table(self, ddf: str | None = None, component: str = "cond") -> pd.DataFrame:
        """Estimates, standard errors, z and Pr(>|z|) of ``component``: ``"cond"`` (default),
        ``"zi"``, ``"disp"``."""
        from scipy import stats

        if ddf is not None:
            raise ValueError("glmmTMB-family models have Wald z tests only (ddf=None)")
        if component != "cond" and component not in self.channels:
            raise ValueError(f"component must be one of cond, {', '.join(self.channels)}; got "
                             f"{component!r}")
        est = self.fixef if component == "cond" else self._coef_series(component)
        se = np.sqrt(np.diag(self.vcov_component(component).to_numpy()))
        z = est.to_numpy() / se
        return pd.DataFrame({"Estimate": est.to_numpy(), "Std. Error": se, "z value": z,
                             "Pr(>|z|)": 2.0 * stats.norm.sf(np.abs(z))}, index=est.index)

    def _sd_rows(self) -> list[tuple[str, int]]:
        """(name, index in θ) of the scalar terms' standard deviations (θ is the sd there)."""
        from .checks import theta_names  # noqa: F401 (the same names the summary uses)

        out, pos = [], 0
        for term, size in zip(self.design.terms, self.engine.par.sizes):
            if term.ncols == 1:
                out.append((f"sd_{term.columns[0]}|{term.name}", pos))
            pos += size
        return out

    def confint(self, method: str = "wald", level: float = 0.95, which=None, **kwargs) -> pd.DataFrame:
        """Confidence intervals for every coefficient (``zi.`` and ``disp.`` prefixed for those
        parts) and the scalar terms' standard deviations.

        ``"wald"`` (default, glmmTMB's): estimate ± z·SE from the Hessian; the sd's interval is
        Wald on the log scale, as glmmTMB's. ``"profile"``: the likelihood-ratio interval of each
        coefficient, the others re-optimised (``which=`` names a subset). ``"boot"``: parametric
        bootstrap (:func:`mixedmodels.confint`).
        """
        from scipy import stats

        if method == "boot":
            return extension("confint")(self, method="boot", level=level, which=which, **kwargs)
        if kwargs:
            raise TypeError(f"confint got unexpected keyword argument(s) {sorted(kwargs)}")
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1, got {level}")
        z = stats.norm.ppf(0.5 + level / 2)
        names = self._param_names()
        se = np.sqrt(np.diag(self.covariance_of_parameters().to_numpy()))
        nth = self.engine.n_theta
        rows, lo, hi, index = [], [], [], []
        for name, j in self._sd_rows():
            sd, s = self._theta[j], se[j] / max(self._theta[j], 1e-300)
            index.append(name)
            lo.append(sd * np.exp(-z * s))
            hi.append(sd * np.exp(z * s))
            rows.append(j)
        for j in range(nth, len(names)):
            index.append(names[j][5:] if names[j].startswith("cond.") else names[j])
            lo.append(self._x[j] - z * se[j])
            hi.append(self._x[j] + z * se[j])
            rows.append(j)
        out = pd.DataFrame({"lower": lo, "upper": hi}, index=index)
        if method == "wald":
            return out if which is None else out.loc[list(np.atleast_1d(which))]
        if method != "profile":
            raise ValueError(f"method must be 'wald', 'profile' or 'boot', got {method!r}")
        chosen = [n for n in out.index if n in names or f"cond.{n}" in names]
        if which is not None:
            chosen = [n for n in np.atleast_1d(which)]
        prof = pd.DataFrame(index=chosen, columns=["lower", "upper"], dtype=float)
        for n in chosen:
            j = names.index(n if n in names else f"cond.{n}")
            prof.loc[n] = [self._profile_limit(j, -1, level, se[j]),
                           self._profile_limit(j, +1, level, se[j])]
        return prof

    def _profile_limit(self, j: int, side: int, level: float, se: float) -> float:
        """Where the profile deviance of parameter j crosses the χ²₁ quantile, on one side."""
        from scipy import optimize, stats

        e = self.engine
        target = 0.5 * stats.chi2.ppf(level, 1)
        others = np.array([k for k in range(e.n_par) if k != j])
        lower = e.lower_bounds()[others]
        state = {"z": self._x[others].copy()}

        def excess(b: float) -> float:
            def fg(zz):
                x = self._x.copy()
                x[others], x[j] = zz, b
                value, g = e.value_and_gradient(x)
                return value, g[others]
            fun, grad = value_and_gradient(fg)
            with np.errstate(all="ignore"):
                opt = minimize(fun, state["z"], lower, self.control, grad=grad, optimizer="lbfgsb",
                               options={"maxiter": 500, "ftol": 1e-13, "gtol": 1e-7})
            state["z"] = opt.x.copy()
            return opt.fun - self._value - target

        if not np.isfinite(se) or se <= 0:
            return float("nan")
        est = self._x[j]
        step = 1.96 * se
        a = est
        for _ in range(12):   # step out until the profile passes the cut-off
            b = est + side * step
            fb = excess(b)
            if fb > 0:
                break
            a, step = b, step * 1.6
        else:
            return float("nan")
        state["z"] = self._x[others].copy()
        root = optimize.brentq(excess, min(a, b), max(a, b), xtol=1e-6 * max(1.0, abs(est)))
        self.engine.modes(self._x)
        return float(root)

    def conditional_covariance(self, max_q: int = 20_000) -> list[np.ndarray]:
        """Per term, Var(b | y) = Λ H⁻¹ Λᵀ at the mode (levels, l, l)."""
        e = self.engine
        e.modes(self._x)
        sol = e.solver
        Ts = self.factor.split_theta(self._theta)
        if hasattr(sol, "codes"):
            return [np.einsum("ab,gbc,dc->gad", Ts[0], sol.Hinv, Ts[0])]
        out, pos = [], 0
        for t, T in zip(self.design.terms, Ts):
            m, l = t.nlevels, t.ncols
            idx = pos + np.arange(m * l).reshape(m, l)
            blocks = sol.Hinv[idx[:, :, None], idx[:, None, :]]
            out.append(np.einsum("ab,gbc,dc->gad", T, blocks, T))
            pos += m * l
        return out

    @property
    def _u(self) -> list[np.ndarray]:
        out, pos = [], 0
        for t in self.design.terms:
            out.append(self._u_all[pos:pos + t.nlevels * t.ncols])
            pos += t.nlevels * t.ncols
        return out

    # -- values per observation -------------------------------------------------------------------
    def linear_predictor(self) -> np.ndarray:
        return self._eta.copy()

    def fitted(self, type: str = "response") -> pd.Series:  # noqa: A002 (R's argument name)
        """E(y) (``"response"``), the conditional mean μ (``"cond"``) or η (``"link"``)."""
        return self._by_row(self._values(type, self._eta, self._aux), "fitted")

    def _values(self, type, eta, aux) -> np.ndarray:  # noqa: A002
        fam = self.family
        if type == "response":
            return fam.response_mean(eta, aux)
        if type in ("cond", "conditional"):
            return fam.conditional_mean(eta, aux)
        if type == "link":
            return eta.copy()
        if type in ("zprob", "zlink"):
            zi = aux.get("zi", np.full(len(eta), -np.inf))
            return zi.copy() if type == "zlink" else 0.5 * (1.0 + np.tanh(0.5 * zi))
        if type == "disp":
            return fam.sigma(aux["disp"]) if "disp" in aux else np.ones(len(eta))
        raise ValueError("type must be 'response', 'link', 'cond' ('conditional'), 'zprob', "
                         f"'zlink' or 'disp', got {type!r}")

    def residuals(self, type: str = "response", scaled: bool = False) -> pd.Series:  # noqa: A002
        """``"response"`` (y − E(y), glmmTMB's default) or ``"pearson"`` residuals."""
        y = self.response
        mean = self.family.response_mean(self._eta, self._aux)
        r = y - mean
        if type == "pearson":
            r = r / np.sqrt(self.family.variance_of(self.family.cond_mean(self._eta), self._aux))
        elif type not in ("response", "deviance"):
            raise ValueError(f"type must be 'response' or 'pearson', got {type!r}")
        return self._by_row(r, "residuals")

    #: mm.predict / mm.simulate hand these models' non-link predictions and draws to them
    own_predictions = True

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link",  # noqa: A002
                re_form=None, **kwargs):
        """Predictions as glmmTMB's ``predict``: ``type`` is ``"link"`` (default, η of the
        conditional model), ``"response"`` (E(y), zero inflation and truncation included),
        ``"cond"``/``"conditional"`` (its mean μ), ``"zprob"`` (the probability of a structural
        zero), ``"zlink"`` or ``"disp"``. ``re_form`` and ``allow_new_levels`` as
        :func:`mixedmodels.predict`."""
        kwargs = {k: v for k, v in kwargs.items() if v is not None and v is not False
                  and k not in ("level", "n_sims", "seed")}
        if type != "link" and (kwargs.get("se_fit") or kwargs.get("interval")):
            raise NotImplementedError("standard errors and intervals of glmmTMB-family predictions "
                                      "are available for type='link' only")
        if newdata is None and re_form is None and not kwargs:
            return self._by_row(self._values(type, self._eta, self._aux), "fit")
        if type == "link":
            return extension("predict")(self, newdata, type="link", re_form=re_form, **kwargs)
        eta = np.asarray(extension("predict")(self, newdata, type="link", re_form=re_form, **kwargs),
                         dtype=float)
        if newdata is None:
            aux = self._aux
            index = self.design.frame.index
        else:
            frame = newdata if isinstance(newdata, pd.DataFrame) else pd.DataFrame(newdata)
            aux = {c: ch.on(frame) @ self._coefs[c] for c, ch in self.channels.items()}
            index = frame.index
        return pd.Series(self._values(type, eta, aux), index=index if len(index) == len(eta) else None,
                         name="fit")

    def simulate(self, n: int = 1, seed=None, use_u: bool = False, **kwargs) -> pd.DataFrame:
        """Responses simulated from the fitted model: new random effects each time (or, with
        ``use_u``, the fitted ones), the fitted zero-inflation and dispersion."""
        from ..spec.arguments import check_count

        n = check_count("n", n)
        rng = np.random.default_rng(seed)
        design = self.design
        if use_u:
            eta = np.repeat(self._eta[:, None], n, axis=1)
        else:
            eta = np.repeat((design.X @ self._beta + self.offset)[:, None], n, axis=1)
            for term, T in zip(design.terms, self.factor.split_theta(self._theta)):
                m = term.matrix
                b = rng.standard_normal((n, term.nlevels, term.ncols)) @ T.T
                eta += np.einsum("il,sil->is", m.values, b[:, m.codes, :])
        aux = {c: v[:, None] for c, v in self._aux.items()}
        y = self.family.simulate_from(self.family.cond_mean(eta), aux, rng)
        return pd.DataFrame(y, index=design.frame.index, columns=[f"sim_{i + 1}" for i in range(n)])

    # -- presentation ------------------------------------------------------------------------------
    @property
    def model_label(self) -> str:
        return "Generalized linear mixed model fit by maximum likelihood (Laplace Approximation) [glmmTMB]"

    def summary_notes(self) -> list[str]:
        notes = super().summary_notes()
        for c in self.engine.channels:
            table = self.coef_table(component=c)
            lines = [_COMPONENT_LABEL.get(c, c) + (f" ({self.channels[c].formula})"
                                                    if c != "power" else "") + ":"]
            width = max(len(s) for s in table.index)
            lines.append(" " * width + "   Estimate Std. Error z value Pr(>|z|)")
            for name, row in table.iterrows():
                lines.append(f"{name:<{width}} {row['Estimate']:10.5f} {row['Std. Error']:10.5f} "
                             f"{row['z value']:7.3f} {row['Pr(>|z|)']:8.3g}")
            notes.append("\n".join(lines))
        if "disp" in self.channels and np.isfinite(self._sigma):
            notes.append(f"Dispersion parameter for {self.family.name} family (sigma): {self._sigma:.4g}")
        if self.power is not None:
            notes.append(f"Tweedie power parameter: {self.power:.4g}")
        return notes


def _covariance_from_hessian(H: np.ndarray, rel_tol: float = 1e-9) -> np.ndarray:
    """The inverse Hessian, leaving out parameters whose curvature vanishes (coefficients
    running off to ±∞; their rows are NaN). Their coupling with the others vanishes with it,
    so the others' covariance is that of the full inverse (as glmmTMB's sdreport gives it)."""
    k = H.shape[0]
    d = np.diag(H)
    keep = d > rel_tol * max(float(np.max(np.abs(d), initial=0.0)), 1e-300)
    cov = np.full((k, k), np.nan)
    if keep.any():
        try:
            cov[np.ix_(keep, keep)] = np.linalg.inv(H[np.ix_(keep, keep)])
        except np.linalg.LinAlgError:
            pass
    return cov


def _channel(formula: str | None, frame: pd.DataFrame, what: str) -> Channel:
    from ..spec.design import design_matrix, r_column_name

    if formula is None or formula.replace(" ", "") in ("~1", "1"):
        return Channel(np.ones((len(frame), 1)), ["(Intercept)"], frame.index)
    text = formula.strip()
    if not text.startswith("~"):
        text = "~" + text
    mat = design_matrix(text, frame, what)
    return Channel(np.asarray(mat, float), [r_column_name(c) for c in mat.columns], frame.index,
                   mat.model_spec, text)


def _channel_rows_complete(formula: str | None, data: pd.DataFrame, what: str) -> np.ndarray:
    """Rows where the channel's model matrix has no missing value."""
    if formula is None:
        return np.ones(len(data), bool)
    ch = _channel(formula, data, what)
    return ~np.isnan(ch.X).any(axis=1)


def fit_glmmtmb(formula: str, data: pd.DataFrame, family, *, zi: str | None = None,
                disp: str | None = None, weights=None, offset=None, na_action: str = "drop",
                control: Control | None = None, expand_doublebar: str = "lme4") -> GlmmTMBModel:
    """Build and fit a :class:`GlmmTMBModel` (what ``mm.glmer`` calls for glmmTMB's families or
    with ``zi=`` / ``disp=``). Rows with a missing value in the zi/disp variables are dropped
    (or raise with ``na_action="raise"``) as the conditional model's are."""
    import warnings

    from ..exceptions import DataError, MissingDataWarning
    from ..spec.design import build_design
    from .tmb_families import tmb_family

    for name, value in (("zi", zi), ("disp", disp)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name}= must be a one-sided formula string such as '~ x', got "
                            f"{type(value).__name__}")
    zi = None if zi is None or zi.replace(" ", "") in ("~0", "0") else zi
    fam = tmb_family(family, zi=zi is not None)
    if disp is not None and "disp" not in fam.channels:
        raise ValueError(f"disp= needs a family with a dispersion parameter (nbinom1, nbinom2, "
                         f"beta, Gamma, gaussian, tweedie); the {fam.name} family has none")
    keep = _channel_rows_complete(zi, data, "zero-inflation design") & _channel_rows_complete(
        disp, data, "dispersion design")
    if not keep.all():
        if na_action == "raise":
            raise DataError(f"{int((~keep).sum())} rows have missing values in the zi=/disp= "
                            "variables; na_action='raise' stops here")
        warnings.warn(f"{int((~keep).sum())} of {len(data)} rows dropped for missing values in the "
                      "zi=/disp= variables", MissingDataWarning, stacklevel=3)
        data = data.loc[keep]
    design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action,
                          check_levels=False, expand_doublebar=expand_doublebar)
    fam.check_response(np.asarray(design.y, float), design.response_name)
    frame = data.loc[design.frame.index]
    channels = {}
    same_as_fixed = (zi is not None and not design.dropped_columns and not design.formula.offsets
                     and zi.replace(" ", "").lstrip("~") == str(design.formula.fixed).replace(" ", ""))
    if "zi" in fam.channels and same_as_fixed:   # zi= repeats the fixed part: its matrix is X
        channels["zi"] = Channel(design.X, list(design.fixef_names), frame.index, design.fixed_spec,
                                 zi.strip())
    elif "zi" in fam.channels:
        channels["zi"] = _channel(zi, frame, "zero-inflation design")
    if "disp" in fam.channels:
        channels["disp"] = _channel(disp, frame, "dispersion design")
    if "power" in fam.channels:
        channels["power"] = _channel(None, frame, "power")
    model = GlmmTMBModel(design, fam, channels, control)
    return model.fit()
