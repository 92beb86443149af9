"""Linear mixed models: the profiled (RE)ML deviance over θ and the fitted model.

Pipeline, each stage public: :func:`~mixedmodels.formula.parse_formula` →
:func:`~mixedmodels.design.build_design` → :class:`LinearMixedModel` (crossproducts once,
objective per θ) → :func:`~mixedmodels.optimize.minimize` → the fitted model's results.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..spec.design import ModelDesign, build_design
from ..core.crossproducts import BlockedCrossproducts
from ..core.factor import BlockedFactor
from ..core.lapack import tri_solve
from .optim import Control, OptResult, minimize
from ..presentation.results import MixedModelResults

__all__ = ["lmer", "LinearMixedModel"]

_LOG_2PI = np.log(2.0 * np.pi)


class LinearMixedModel(MixedModelResults):
    """A linear mixed model ``y = Xβ + Zb + ε``; fit with :meth:`fit` or :func:`lmer`.

    Parameters
    ----------
    design : ModelDesign
        From :func:`~mixedmodels.design.build_design`.
    reml : bool
        REML (default) or maximum likelihood.
    control : Control, optional
    """

    family = None

    def __init__(self, design: ModelDesign, reml: bool = True, control: Control | None = None,
                 data_name: str | None = None):
        self.design = design
        self.reml = bool(reml)
        self.control = control or Control()
        self.data_name = data_name
        self.name: str | None = None
        y = design.y if design.offset is None else design.y - design.offset
        self.crossproducts = BlockedCrossproducts([t.matrix for t in design.terms], design.X, y,
                                                  design.weights)
        self.factor = BlockedFactor(self.crossproducts)
        w = design.weights
        self._log_weights = 0.0 if w is None else float(np.log(w[w > 0]).sum())
        self.optinfo: OptResult | None = None
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

        self.optinfo = minimize(objective, x0, f.theta_lower_bounds(), ctrl)
        self._set_theta(self.optinfo.x)
        self._post_fit_checks()
        return self

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

    def _set_theta(self, theta: np.ndarray) -> None:
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
        from .checks import check_fit

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
    def npar(self) -> int:
        return self.design.X.shape[1] + self.factor.n_theta + 1

    @property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates in the model matrix's column order."""
        return pd.Series(self._beta, index=self.design.fixef_names, name="Estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effect estimates."""
        names = self.design.fixef_names
        return pd.DataFrame(self._sigma ** 2 * self._vcov_unscaled, index=names, columns=names)

    def _term_covariances(self) -> list[np.ndarray]:
        return [self._sigma ** 2 * (T @ T.T) for T in self.factor.split_theta(self._theta)]

    def _random_effects_b(self) -> list[np.ndarray]:
        """Conditional modes b = Λu per term, as (levels × columns) arrays."""
        out = []
        for term, u, T in zip(self.design.terms, self._u, self.factor.split_theta(self._theta)):
            out.append(u.reshape(term.nlevels, term.ncols) @ T.T)
        return out

    def _linear_predictor(self) -> np.ndarray:
        eta = self.design.X @ self._beta
        for term, b in zip(self.design.terms, self._random_effects_b()):
            m = term.matrix
            eta = eta + np.einsum("ij,ij->i", m.values, b[m.codes])
        if self.design.offset is not None:
            eta = eta + self.design.offset
        return eta

    def fitted(self) -> np.ndarray:
        """Fitted values (fixed plus random effects)."""
        return self._linear_predictor()

    def residuals(self, scaled: bool = False) -> np.ndarray:
        """Response residuals ``y − fitted``; divided by σ when ``scaled``."""
        r = self.design.y - self.fitted()
        return r / self._sigma if scaled else r

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

    @property
    def model_label(self) -> str:
        return "Linear mixed model fit by " + ("REML" if self.reml else "maximum likelihood")


def lmer(formula: str, data: pd.DataFrame, *, reml: bool = True,
         weights: np.ndarray | str | None = None, offset: np.ndarray | str | None = None,
         na_action: str = "drop", control: Control | None = None,
         standardize: bool = False) -> LinearMixedModel:
    """Fit a linear mixed model with an lme4 formula.

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"y ~ x + (1 + x | g)"``, ``"y ~ 1 + (1 | a) + (1 | b)"``,
        ``"y ~ 1 + (1 | a/b)"``, ``"y ~ x + (x || g)"``.
    data : pandas.DataFrame
    reml : bool, default True
        REML estimates (as lme4's default); False for maximum likelihood.
    weights : array-like or column name, optional
        Prior weights: the residual variance of row i is σ²/wᵢ.
    offset : array-like or column name, optional
    na_action : {"drop", "raise"}
        Rows with missing values in the model's variables are dropped (and counted) or raise.
    control : Control, optional
        Optimizer, tolerances, start values and check levels.
    standardize : bool, default False
        Fit on centred and scaled numeric predictors (the cure for scaling warnings) and
        report the coefficients on both scales (``m.standardized_coefficients``); the
        returned model is on the original scale.

    Returns
    -------
    LinearMixedModel
        The fitted model.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> m = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
    >>> round(m.loglik, 3)
    -871.814
    """
    if standardize:
        from ..postestimation.diagnostics import standardized_lmer

        return standardized_lmer(formula, data, reml=reml, weights=weights, offset=offset,
                                 na_action=na_action, control=control)
    design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action)
    model = LinearMixedModel(design, reml=reml, control=control)
    return model.fit()
