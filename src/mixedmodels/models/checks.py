"""Checks run after a fit: scaling, convergence and singular fits, each with a filterable warning.

Every check records its finding on the model and then acts on it according to the level set in
:class:`~mixedmodels.models.optim.Control` (``"ignore"``, ``"warn"`` or ``"raise"``). At most one warning
per class is issued per fit, and each names what was found and what to do, with a pointer to the
matching section of the troubleshooting guide (``mm.help(topic)``, ``docs/convergence.md``).

Convergence is judged from a finite-difference gradient and Hessian of the objective in θ. They
are used scale-free: the Newton step ``H⁻¹g`` is measured in standard errors of θ
(``SE = sqrt(diag(2 H⁻¹))``, as the objective is −2 log-likelihood). lme4's check instead divides
the gradient by the Cholesky factor of H, a quantity that grows like √n for the same optimizer
accuracy and therefore false-alarms on large data. The derivatives need ``1 + 2k + k(k−1)/2``
objective evaluations for k parameters; they are skipped when that exceeds a quarter of the fit's
own evaluations (and 25), unless ``Control(check_hessian="always")``.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..exceptions import ConvergenceWarning, ScalingWarning, SingularFitWarning

__all__ = ["check_fit", "check_scaling", "check_convergence", "is_singular", "singular_terms",
           "theta_names", "ConvergenceInfo", "ScalingProblem", "CHECK_LEVELS"]

#: accepted values of ``Control.check_conv``, ``check_singular`` and ``check_scale``
CHECK_LEVELS = ("ignore", "warn", "raise")

# Scaling thresholds. lme4 warns when column SDs differ by more than 1e3 (checkScaleX). A column far
# from zero (|mean|/sd large, e.g. a calendar year) makes the intercept a prediction far outside the
# data; inside a random-effects term with an intercept it also puts the intercept variance and its
# correlation with the slope at that far-away point, where the correlation is driven towards ±1.
SD_RATIO_LIMIT = 1e3
OFFSET_LIMIT_FIXED = 25.0
OFFSET_LIMIT_RANDOM = 10.0

# the package root (models/ is one level below it)
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_GUIDE = "docs/convergence.md"


# -- acting on a finding --------------------------------------------------------------------------

def _user_stacklevel() -> int:
    """The stacklevel that points a warning at the first frame outside this package."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG_DIR):
        frame = frame.f_back
        level += 1
    return level


def _check_level(level: str, name: str) -> str:
    if level not in CHECK_LEVELS:
        raise ValueError(f"Control.{name} must be one of {', '.join(map(repr, CHECK_LEVELS))}, "
                         f"got {level!r}")
    return level


def _act(level: str, message: str, category: type[Warning]) -> None:
    """Ignore, warn or raise (the warning class is an Exception subclass, so it can be raised)."""
    if level == "ignore":
        return
    if level == "raise":
        raise category(message)
    warnings.warn(message, category, stacklevel=_user_stacklevel())


# -- names ---------------------------------------------------------------------------------------

def theta_names(model) -> list[str]:
    """lme4-style names of θ's entries: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``."""
    terms = model.design.terms
    return model.factor.parametrization.names([t.name for t in terms], [t.columns for t in terms])


def _term_label(term) -> str:
    structure = getattr(term.matrix, "structure", None)
    kind = "" if structure is None or structure.kind == "us" else structure.kind
    return f"{kind}({term.lhs} | {term.group})"


# -- scaling -------------------------------------------------------------------------------------

@dataclass
class ScalingProblem:
    """One column the scaling check flagged."""

    column: str
    mean: float
    sd: float
    reason: str  # "far_from_zero" or "sd_ratio"
    in_random: bool = False


def _fmt(x: float) -> str:
    """Readable numbers for messages: 2010, 15,000, 3.45, 0.00012."""
    if abs(x) >= 1e9:
        return f"{x:.3g}"
    if abs(x) >= 100:
        return f"{round(x):,}"
    return f"{x:.3g}"


def _is_indicator(col: np.ndarray) -> bool:
    return bool(np.all((col == 0) | (col == 1)))


def check_scaling(design) -> list[ScalingProblem]:
    """Predictor columns on very different scales, or far from zero relative to their spread.

    Looks at the fixed-effects model matrix and the columns of the random-effects terms.
    0/1 indicator and constant columns are left out: their scale is 1, like the intercept's,
    whatever the level's frequency.

    - far from zero: ``|mean| / sd`` above 25 (10 for a column with a random slope);
    - scale: the SDs of the other columns, together with the unit scale of the intercept,
      span more than a factor of 1000 (lme4's ``check.scaleX`` limit); the extreme columns are
      named.

    Parameters
    ----------
    design : ModelDesign

    Returns
    -------
    list of ScalingProblem
        Empty when the scales are fine.
    """
    stats: dict[str, tuple[float, float]] = {}
    random_cols: set[str] = set()
    for term in design.terms:
        if "(Intercept)" not in term.columns:
            continue  # without an intercept in the term, the column's origin is part of the model
        values = term.matrix.values
        for j, name in enumerate(term.columns):
            if name != "(Intercept)":
                random_cols.add(name)
                if not _is_indicator(values[:, j]):
                    stats.setdefault(name, (float(values[:, j].mean()), float(values[:, j].std())))
    X = design.X
    for j, name in enumerate(design.fixef_names):
        if name != "(Intercept)" and not _is_indicator(X[:, j]):
            stats[name] = (float(X[:, j].mean()), float(X[:, j].std()))
    stats = {name: ms for name, ms in stats.items() if ms[1] > 0}
    problems: list[ScalingProblem] = []
    for name, (mean, sd) in stats.items():
        limit = OFFSET_LIMIT_RANDOM if name in random_cols else OFFSET_LIMIT_FIXED
        if abs(mean) / sd > limit:
            problems.append(ScalingProblem(name, mean, sd, "far_from_zero", name in random_cols))
    if stats:
        sds = {name: sd for name, (_, sd) in stats.items()}
        hi = max(sds, key=sds.get)
        lo = min(sds, key=sds.get)
        top, bottom = max(sds[hi], 1.0), min(sds[lo], 1.0)
        if top / bottom > SD_RATIO_LIMIT:
            for name in dict.fromkeys((hi, lo)):
                if sds[name] in (top, bottom):  # an extreme column, not the unit reference
                    mean, sd = stats[name]
                    problems.append(ScalingProblem(name, mean, sd, "sd_ratio", name in random_cols))
    return problems


def _scaling_message(problems: list[ScalingProblem]) -> str:
    far = [p for p in problems if p.reason == "far_from_zero"]
    ratio = [p for p in problems if p.reason == "sd_ratio"]
    parts = []
    if far:
        listed = ", ".join(f"{p.column} (mean {_fmt(p.mean)}, sd {_fmt(p.sd)})" for p in far)
        parts.append(f"predictors far from zero relative to their spread: {listed}.")
        names = ", ".join(p.column for p in far)
        parts.append(f"The intercept is the prediction at {names} = 0, far outside the data")
        if any(p.in_random for p in far):
            parts[-1] += (", and the random intercept's variance and its correlation with the "
                          "slope refer to that point, which pushes the correlation towards ±1 "
                          "and makes the optimizer's job hard")
        parts[-1] += "."
        example = far[0]
        parts.append(f"Centre such a predictor at a meaningful zero (e.g. {example.column} - "
                     f"{_round_origin(example.mean)}) or standardize.")
    if ratio:
        listed = ", ".join(f"{p.column} (sd {_fmt(p.sd)})" for p in ratio)
        parts.append(f"Predictors on very different scales: {listed}; with the intercept's "
                     "scale of 1, the SDs span more than a factor of 1000. Coefficients on such "
                     "scales are hard to compare")
        if any(p.in_random for p in ratio):
            parts[-1] += (", a random slope's variance on them is tiny or huge next to the "
                          "singular-fit tolerance")
        parts[-1] += (", and the optimizer's steps are badly proportioned (GLMMs especially); "
                      "rescale (e.g. income in thousands) or standardize.")
    text = " ".join(parts)
    text = text[0].upper() + text[1:]
    return (text + " mm.lmer(..., standardize=True) fits on centred and scaled predictors and "
            f"reports the coefficients on both scales. See mm.help('scaling') ({_GUIDE}#scaling).")


def _round_origin(mean: float) -> str:
    """A round number near the mean, for the example in the message."""
    if mean == 0:
        return "0"
    mag = 10 ** np.floor(np.log10(abs(mean)))
    return f"{np.floor(mean / mag) * mag:g}"


# -- singular fits -------------------------------------------------------------------------------

def is_singular(model, tol: float = 1e-4) -> bool:
    """lme4's ``isSingular``: a θ entry with a lower bound of 0 is below ``tol``.

    Parameters
    ----------
    model : fitted model
    tol : float
        Tolerance on θ (relative standard deviation units), lme4's default 1e-4.

    Returns
    -------
    bool
    """
    lower = model.factor.theta_lower_bounds()
    return bool(np.any(model.theta[lower == 0] < tol))


def singular_terms(model, tol: float = 1e-4) -> list[str]:
    """What sits at the boundary, per term: zero variances, ±1 correlations, rank deficiency.

    Parameters
    ----------
    model : fitted model
    tol : float
        The singular tolerance on the diagonal of each relative covariance factor T.

    Returns
    -------
    list of str
        One description per problem, empty for a non-singular fit.
    """
    found = []
    for term, T in zip(model.design.terms, model.factor.split_theta(model.theta)):
        diag = np.abs(np.diag(T))
        if np.all(diag >= tol):
            continue
        label = _term_label(term)
        cov = T @ T.T
        sd = np.sqrt(np.diag(cov))
        zero = [j for j in range(len(sd)) if sd[j] < tol]
        for j in zero:
            found.append(f"the variance of '{term.columns[j]}' in {label} is ~0")
        live = [j for j in range(len(sd)) if sd[j] >= tol]
        rank = int(np.sum(diag >= tol))
        if len(live) > rank:  # the remaining columns are linearly dependent
            corr = cov[np.ix_(live, live)] / np.outer(sd[live], sd[live])
            pairs = [(live[a], live[b], corr[a, b]) for a in range(len(live))
                     for b in range(a) if abs(corr[a, b]) > 0.99]
            if len(live) == 2 and pairs:
                a, b, r = pairs[0]
                found.append(f"the correlation of '{term.columns[b]}' and '{term.columns[a]}' "
                             f"in {label} is {r:+.2f}")
            else:
                detail = "".join(f"; corr('{term.columns[b]}', '{term.columns[a]}') = {r:+.2f}"
                                 for a, b, r in pairs)
                found.append(f"the covariance matrix of {label} is rank deficient (rank {rank} of "
                             f"{len(sd)}): a combination of its effects has ~0 variance{detail}")
    return found


def _singular_message(model, what: list[str]) -> str:
    groups = []
    for term, T in zip(model.design.terms, model.factor.split_theta(model.theta)):
        if np.any(np.abs(np.diag(T)) < model.control.singular_tol):
            groups.append(f"{term.nlevels} levels of {term.group}")
    size = f" ({', '.join(dict.fromkeys(groups))})" if groups else ""
    return (f"boundary (singular) fit: {'; '.join(what) or 'a variance is ~0'}. The data cannot "
            f"separate this variation from the rest: usually too few groups{size} or too little "
            "data per group for this random-effects structure. The fixed effects are still "
            "estimated, but this term's variances, and tests of it, sit at the edge of the "
            "parameter space. Consider a simpler structure (drop the term, or its correlations "
            "with '||'), cluster-robust SEs or GEE for the fixed effects, or a regularized or "
            f"Bayesian fit that keeps variances off zero. See mm.help('singular') ({_GUIDE}#singular).")


# -- convergence ----------------------------------------------------------------------------------

@dataclass
class ConvergenceInfo:
    """How the fit ended and whether the estimates are at a minimum (``model.convergence``).

    Attributes
    ----------
    optimizer, nevals, seconds, optimizer_message : from the optimizer
    maxfun_reached : bool
        The optimizer stopped at its evaluation limit.
    parameters : list of str
        Names of the optimized parameters (θ for LMMs).
    gradient, hessian : ndarray or None
        Finite-difference derivatives of the objective (−2 log-likelihood or REML criterion) at
        the estimates; None when the derivative checks were skipped.
    at_boundary : ndarray of bool or None
        Parameters on a bound that the gradient holds there (excluded from the checks below).
    hessian_eigenvalues : ndarray or None
        Eigenvalues of the Hessian over the free parameters.
    newton_step : ndarray or None
        ``H⁻¹g``: how far (in parameter units) the minimum of the local quadratic lies.
    relative_gradient : float or None
        The Newton step in standard errors of the parameters (largest component); small values
        mean the estimates are at the minimum to within a small fraction of their uncertainty.
    standard_errors : ndarray or None
        ``sqrt(diag(2 H⁻¹))`` over the free parameters (NaN for those held at a bound).
    derivative_evals : int
        Objective evaluations the derivative checks used.
    skipped : str
        Why the derivative checks did not run, if they did not.
    messages : list of str
        What failed; empty when the fit converged.
    notes : list of str
        Findings that are not failures (e.g. the evaluation limit was hit but the derivatives
        show the estimates are at the minimum).
    ok : bool
    """

    optimizer: str = ""
    nevals: int = 0
    seconds: float = 0.0
    optimizer_message: str = ""
    optimizer_converged: bool = True
    maxfun_reached: bool = False
    parameters: list = field(default_factory=list)
    estimates: np.ndarray | None = None
    gradient: np.ndarray | None = None
    hessian: np.ndarray | None = None
    at_boundary: np.ndarray | None = None
    hessian_eigenvalues: np.ndarray | None = None
    newton_step: np.ndarray | None = None
    relative_gradient: float | None = None
    standard_errors: np.ndarray | None = None
    tolerance: float = 0.01
    derivative_evals: int = 0
    skipped: str = ""
    messages: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    ok: bool = True

    def table(self) -> pd.DataFrame:
        """Per-parameter estimates, gradient, Newton step and its size in standard errors."""
        if self.gradient is None:
            return pd.DataFrame({"estimate": self.estimates}, index=self.parameters)
        frame = pd.DataFrame({"estimate": self.estimates, "gradient": self.gradient,
                              "at_boundary": self.at_boundary}, index=self.parameters)
        if self.newton_step is not None:
            frame["newton_step"] = self.newton_step
            frame["se"] = self.standard_errors
            frame["step_in_se"] = np.abs(self.newton_step) / self.standard_errors
        return frame

    def __str__(self) -> str:
        lines = [f"optimizer: {self.optimizer} ({self.optimizer_message}); {self.nevals} "
                 f"evaluations in {self.seconds:.3g} s"]
        if self.maxfun_reached:
            lines.append("stopped at the evaluation limit")
        if self.gradient is None:
            lines.append(f"derivative checks: skipped ({self.skipped})")
        else:
            if self.relative_gradient is not None:
                lines.append(f"relative gradient (Newton step in SEs): {self.relative_gradient:.2e} "
                             f"(tolerance {self.tolerance:g})")
            if self.hessian_eigenvalues is not None and len(self.hessian_eigenvalues):
                ev = ", ".join(f"{v:.4g}" for v in self.hessian_eigenvalues)
                lines.append(f"Hessian eigenvalues (free parameters): {ev}")
            if self.at_boundary is not None and self.at_boundary.any():
                held = ", ".join(np.asarray(self.parameters)[self.at_boundary])
                lines.append(f"held at a bound: {held}")
            lines.append(f"({self.derivative_evals} extra objective evaluations)")
        lines += [f"note: {m}" for m in self.notes]
        lines += [f"problem: {m}" for m in self.messages]
        lines.append("converged: " + ("yes" if self.ok else "NO"))
        return "\n".join(lines)

    __repr__ = __str__


def _objective_for_checks(model):
    """``(fun, x, lower, names, restore, f0)`` for the derivative checks, or None.

    The model's ``convergence_objective()`` returns it (GLMMs: their
    final optimization is over θ and β): ``fun`` the objective that was minimized (−2 log-lik
    scale), ``x`` the estimates, ``lower`` their lower bounds (``-inf`` where unbounded),
    ``names`` their labels, ``restore()`` to put the model back in its fitted state after ``fun``
    has been evaluated elsewhere, and ``f0`` the objective at ``x`` (or None).
    The LMM gives its profiled objective in θ. Models without one get no derivative checks: a
    wrong objective would give false alarms.
    """
    hook = getattr(model, "convergence_objective", None)
    return None if hook is None else hook()


def derivative_evals_needed(k: int) -> int:
    """Objective evaluations used by :func:`finite_difference_derivatives` for k parameters."""
    return 1 + 2 * k + k * (k - 1) // 2


def hessian_from_gradient(grad, x: np.ndarray, rel_step: float = 1e-6) -> np.ndarray:
    """The Hessian by central differences of an exact gradient (symmetrized): accurate to
    ~1e-8 relative where the gradient is exact (glmmTMB's on cbpp), at 2k gradient calls.

    Parameters
    ----------
    grad : callable
        ``grad(x) -> ndarray``, the exact gradient.
    x : ndarray
        Where to evaluate.
    rel_step : float
        Step ``rel_step · max(1, |x_j|)`` per coordinate.
    """
    k = len(x)
    H = np.empty((k, k))
    for j in range(k):
        h = rel_step * max(1.0, abs(x[j]))
        e = np.zeros(k)
        e[j] = h
        H[:, j] = (grad(x + e) - grad(x - e)) / (2.0 * h)
    return 0.5 * (H + H.T)


def finite_difference_derivatives(fun, x: np.ndarray, lower: np.ndarray | None = None,
                                  rel_step: float = 1e-3, f0: float | None = None):
    """Gradient and Hessian of ``fun`` at ``x`` by finite differences, respecting lower bounds.

    Central differences for the gradient and the Hessian's diagonal; one extra point per pair for
    the off-diagonal; second-order one-sided differences for parameters on (or within a step of)
    their lower bound. The step is ``rel_step * max(|x_i|, 1)``: large enough that rounding in the
    objective (≈1e-12 relative) does not swamp the second differences.

    ``f0``, the value at ``x`` if already known, saves one evaluation.

    Returns
    -------
    gradient, hessian : ndarray
    one_sided : ndarray of bool
    """
    x = np.asarray(x, dtype=float)
    k = len(x)
    lower = np.full(k, -np.inf) if lower is None else np.asarray(lower, dtype=float)
    h = rel_step * np.maximum(np.abs(x), 1.0)
    one_sided = x - h < lower
    f0 = fun(x) if f0 is None else float(f0)
    fp = np.empty(k)
    fm = np.empty(k)  # f(x - h) for central, f(x + 2h) for one-sided
    grad = np.empty(k)
    hess = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = h[i]
        fp[i] = fun(x + e)
        if one_sided[i]:
            fm[i] = fun(x + 2 * e)
            grad[i] = (-3 * f0 + 4 * fp[i] - fm[i]) / (2 * h[i])
            hess[i, i] = (fm[i] - 2 * fp[i] + f0) / h[i] ** 2
        else:
            fm[i] = fun(x - e)
            grad[i] = (fp[i] - fm[i]) / (2 * h[i])
            hess[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
    for i in range(k):
        for j in range(i):
            e = np.zeros(k)
            e[i] = h[i]
            e[j] = h[j]
            hess[i, j] = hess[j, i] = (fun(x + e) - fp[i] - fp[j] + f0) / (h[i] * h[j])
    return grad, hess, one_sided


def check_convergence(model, force: bool | None = None) -> ConvergenceInfo:
    """Judge whether the optimizer reached a minimum; the result is ``model.convergence``.

    Parameters
    ----------
    model : fitted model
    force : bool, optional
        Run the finite-difference checks regardless of cost (True) or never (False); by default
        ``model.control.check_hessian`` decides (``"auto"``: when they cost at most a quarter of
        the fit's evaluations, or 25).

    Returns
    -------
    ConvergenceInfo
    """
    ctrl = model.control
    opt = model.optinfo
    info = ConvergenceInfo(tolerance=float(getattr(ctrl, "check_conv_tol", 0.01)))
    if opt is not None:
        info.optimizer, info.nevals, info.seconds = opt.optimizer, opt.nevals, opt.seconds
        info.optimizer_message, info.optimizer_converged = opt.message, bool(opt.converged)
        info.maxfun_reached = bool(opt.maxfun_reached)
    limit_msg = (f"the optimizer ({info.optimizer}) stopped at its evaluation limit "
                 f"({info.nevals} evaluations), so the estimates may not be at the optimum")

    spec = _objective_for_checks(model)
    mode = getattr(ctrl, "check_hessian", "auto")
    if force is not None:
        mode = "always" if force else "never"
    if spec is None:
        info.skipped = "no objective hook for this model class"
    else:
        fun, x, lower, names, restore, f0 = spec
        x = np.asarray(x, dtype=float)
        info.parameters, info.estimates = list(names), x.copy()
        k = len(x)
        cost = derivative_evals_needed(k)
        budget = max(25, info.nevals // 4)
        if mode == "never":
            info.skipped = "check_hessian='never'"
        elif k == 0:
            info.skipped = "no parameters"
        elif mode == "auto" and cost > budget:
            info.skipped = (f"{cost} evaluations for {k} parameters would exceed a quarter of the "
                            "fit's; Control(check_hessian='always') runs them")
        else:
            try:
                _derivative_checks(info, fun, x, lower, f0)
            finally:
                restore()

    verified = info.gradient is not None and not info.messages
    if info.maxfun_reached:
        if verified:  # the derivatives show the minimum was reached all the same
            info.notes.append(f"the optimizer stopped at its evaluation limit ({info.nevals}), "
                              "but the gradient and Hessian show the estimates are at the minimum")
        else:
            info.messages.insert(0, limit_msg)
    elif not info.optimizer_converged:
        if verified:
            info.notes.append(f"the optimizer reported {info.optimizer_message!r}, but the "
                              "gradient and Hessian show the estimates are at the minimum")
        else:
            info.messages.append(f"the optimizer reported failure ({info.optimizer_message})")
    info.ok = not info.messages
    return info


def _derivative_checks(info: ConvergenceInfo, fun, x: np.ndarray, lower: np.ndarray,
                       f0: float | None) -> None:
    grad, hess, one_sided = finite_difference_derivatives(fun, x, lower, f0=f0)
    info.derivative_evals = (derivative_evals_needed(len(x)) + int(one_sided.sum())
                             - (f0 is not None))
    if not (np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))):
        info.skipped = "the objective is not finite next to the estimates"
        return
    info.gradient, info.hessian = grad, hess
    # a parameter on its bound with a gradient pushing it outwards is where it should be
    at_bound = one_sided & (x - lower <= 1e-3 * np.maximum(np.abs(x), 1.0)) & (grad >= 0)
    info.at_boundary = at_bound
    free = ~at_bound
    if not free.any():
        info.hessian_eigenvalues = np.zeros(0)
        return
    H = hess[np.ix_(free, free)]
    g = grad[free]
    eig = np.linalg.eigvalsh(H)
    info.hessian_eigenvalues = eig
    scale = max(np.max(np.abs(eig)), 1e-300)
    if eig[0] < -1e-6 * scale:
        names = np.asarray(info.parameters)[free]
        vec = np.linalg.eigh(H)[1][:, 0]
        lead = ", ".join(names[np.argsort(-np.abs(vec))[:2]])
        info.messages.append(
            f"the Hessian at the estimates is not positive definite (smallest eigenvalue "
            f"{eig[0]:.3g}, mostly along {lead}), so this is not a well-defined minimum: a saddle "
            "point, a flat ridge, or still far from the optimum")
        return
    if eig[0] <= 0:
        return  # flat to within rounding: the Newton step is undefined, nothing to claim
    step = np.linalg.solve(H, g)
    se = np.sqrt(2.0 * np.diag(np.linalg.inv(H)))
    full = np.zeros(len(x))
    full[free] = step
    info.newton_step = full
    se_full = np.full(len(x), np.nan)
    se_full[free] = se
    info.standard_errors = se_full
    rel = np.abs(step) / se
    info.relative_gradient = float(rel.max())
    if info.relative_gradient > info.tolerance:
        worst = np.asarray(info.parameters)[free][int(np.argmax(rel))]
        gain = 0.5 * float(g @ step)
        info.messages.append(
            f"the estimates are not at the minimum: the gradient says {worst} is "
            f"{info.relative_gradient:.2g} standard errors from it (tolerance {info.tolerance:g}; "
            f"the deviance would drop by about {gain:.2g})")


def _convergence_message(info: ConvergenceInfo) -> str:
    return ("model may not have converged: " + "; ".join(info.messages) + ". Try: centre and scale "
            "the predictors (standardize=True), a different optimizer or more evaluations "
            "(control=mm.Control(optimizer='nelder_mead', maxfun=100_000)), restarting from these "
            "estimates (control=mm.Control(start=m.theta)), and mm.all_fit(m) to see whether "
            "other optimizers agree; if they do, the warning is a false alarm. See "
            f"mm.help('convergence') ({_GUIDE}#convergence).")


# -- all checks ----------------------------------------------------------------------------------

def check_fit(model) -> None:
    """Run the post-fit checks; set ``model.is_singular``, ``model.convergence``,
    ``model.scaling_problems`` and ``model._check_messages``, and warn or raise per ``Control``.

    At most one warning per class: ScalingWarning, ConvergenceWarning, SingularFitWarning.
    """
    ctrl = model.control
    levels = {name: _check_level(getattr(ctrl, name), name)
              for name in ("check_scale", "check_conv", "check_singular")}
    messages: list[str] = []
    actions: list[tuple[str, str, type[Warning]]] = []

    problems = check_scaling(model.design)  # cheap: recorded even when the level is "ignore"
    model.scaling_problems = problems
    if problems:
        msg = _scaling_message(problems)
        messages.append(msg)
        actions.append((levels["check_scale"], msg, ScalingWarning))

    info = check_convergence(model, force=False if levels["check_conv"] == "ignore" else None)
    model.convergence = info
    if info.messages:
        msg = _convergence_message(info)
        messages.append(msg)
        actions.append((levels["check_conv"], msg, ConvergenceWarning))

    model.is_singular = is_singular(model, ctrl.singular_tol)
    if model.is_singular:
        msg = _singular_message(model, singular_terms(model, ctrl.singular_tol))
        messages.append(msg)
        actions.append((levels["check_singular"], msg, SingularFitWarning))
    model._check_messages = messages
    # act only once everything is recorded, so a "raise" leaves a fully described model behind
    for level, msg, category in actions:
        _act(level, msg, category)
