"""The optimizer registry, the fit control settings and the fit record (:class:`OptSummary`).

Every optimization in the package goes through :func:`minimize` and the registry: the LMM and
GLMM fits, the GLMM's gradient stages, the profiles and the negative binomial θ. An optimizer
is a function ``(fun, x0, bounds, *, grad=None, options) -> OptimizerOutput`` registered with
:func:`register_optimizer`; adding one touches one place.

Built in: BOBYQA (the default, as lme4's ``nloptwrap``), NEWUOA, Nelder-Mead and Sbplx from
nlopt; L-BFGS-B (with an analytic gradient when given), Powell, COBYQA and Nelder-Mead from
scipy; and Brent's bounded method for one parameter.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Control", "OptSummary", "OptResult", "OptimizerOutput", "minimize",
           "register_optimizer", "optimizers", "OPTIMIZERS", "value_and_gradient", "uses_gradient", "escape_boundary",
           "is_default_optimizer", "DEFAULT_OPTIMIZER", "GRADIENT_FLOPS"]

#: optimizers that :func:`mixedmodels.all_fit` tries
OPTIMIZERS = ("bobyqa", "newuoa", "nelder_mead", "lbfgsb", "powell", "cobyqa")
#: what ``Control(optimizer="auto")`` runs where no cheaper path is chosen (lme4's optimizer)
DEFAULT_OPTIMIZER = "bobyqa"
#: LMMs: above this many flops per evaluation (the dense Schur blocks' Cholesky and updates;
#: a fifth of it where every dense block is updated by one syrk), "auto" takes the analytic
#: gradient with L-BFGS-B (about 0.4 s per evaluation at the cost model's FLOPS_DENSE;
#: InstEval, at about 4e9 with product maps, keeps BOBYQA and lme4's path)
GRADIENT_FLOPS = 1e10


@dataclass
class Control:
    """Settings for a fit, like lme4's ``lmerControl`` / ``glmerControl``.

    Parameters
    ----------
    optimizer : str
        ``"auto"`` (default) or a registered optimizer: ``"bobyqa"``, ``"newuoa"``,
        ``"nelder_mead"``, ``"lbfgsb"``, ``"powell"``, ``"cobyqa"``, ... (see
        :func:`optimizers`). ``"auto"`` is BOBYQA, lme4's path, except for LMMs whose
        evaluations are expensive (dense Schur blocks of more than about 10 GFLOP per
        evaluation, 2 where one syrk updates them; :data:`GRADIENT_FLOPS`) where the analytic
        gradient exists: there L-BFGS-B with that gradient takes about 10 evaluations instead
        of about 60. ``optinfo.optimizer`` records the one that ran.
    maxfun : int
        Limit on objective evaluations.
    ftol_abs, xtol_abs, xtol_rel : float
        Tolerances on the deviance and on θ (nlopt's meaning); the defaults are lme4's
        (``nloptwrap`` with nloptr's default ``xtol_rel = 1e-4``).
    start : array-like, optional
        Start values for θ (lme4's order).
    check_conv, check_singular, check_scale : {"warn", "ignore", "raise"}
        What to do when a check fails (``check_conv="ignore"`` also skips the derivative checks).
    singular_tol : float
        A fit is singular when a diagonal entry of θ is below this (lme4's 1e-4).
    check_hessian : {"auto", "always", "never"}
        The finite-difference gradient and Hessian in θ cost ``1 + 2k + k(k-1)/2`` evaluations for
        k parameters; ``"auto"`` runs them when that is at most a quarter of the fit's evaluations
        (or 25).
    check_conv_tol : float
        Largest acceptable distance to the minimum, in standard errors of θ, as estimated by the
        Newton step from the finite-difference gradient and Hessian.
    pirls_tol : float
        GLMMs: each deviance evaluation runs PIRLS from the same start to this relative change
        of the penalized deviance (lme4's ``tolPwrss``), so the deviance is lme4's.
    pirls_tol_smooth : float
        GLMMs: the tolerance of the warm-started PIRLS the optimizer sees (a smooth deviance).
    pirls_step_tol : float
        GLMMs: with exact gradients, PIRLS stops when no mode moves by more than this.
    pirls_maxit, pirls_max_halvings : int
        GLMMs: PIRLS iterations, and step-halvings per iteration.
    dense_backend, row_backend : str
        The engine's backends (:mod:`mixedmodels.core.backends`): ``"lapack"`` and ``"memory"``.
    options : dict
        Extra optimizer settings, e.g. ``{"initial_step": ...}`` for nlopt optimizers.
    method : {"auto", "exact", "iterative"}
        LMMs: the exact blocked Cholesky factor, or the iterative path (conjugate gradients and
        a stochastic log-determinant, no dense block); ``"auto"`` picks from the numbers of
        levels, rows and the memory available (see ``docs/big-data.md``).
    schur : {"auto", "dense", "sparse"}
        How the exact path factors a term's Schur block when it fills in (crossed factors;
        the last term's, or a middle one's with few random-effect columns below it, such as
        districts under schools): ``"auto"`` takes a sparse, fill-reducing factor when its pattern makes that
        cheaper (partially crossed designs) and a dense one otherwise; ``"sparse"`` takes the
        sparse one wherever the structure allows it. ``optinfo.factor["blocks"]`` records it.
    """

    optimizer: str = "auto"
    maxfun: int = 10_000
    ftol_abs: float = 1e-8
    xtol_abs: float = 1e-8
    #: R's nloptr default, which lme4's nloptwrap inherits; matching it reproduces lme4's optimum
    xtol_rel: float = 1e-4
    start: np.ndarray | None = None
    check_conv: str = "warn"
    check_singular: str = "warn"
    check_scale: str = "warn"
    singular_tol: float = 1e-4
    check_hessian: str = "auto"
    check_conv_tol: float = 0.01
    pirls_tol: float = 1e-7
    pirls_tol_smooth: float = 1e-11
    pirls_step_tol: float = 1e-10
    pirls_maxit: int = 100
    pirls_max_halvings: int = 20
    dense_backend: str = "lapack"
    row_backend: str = "memory"
    options: dict = field(default_factory=dict)
    method: str = "auto"
    schur: str = "auto"

    def __post_init__(self):
        if self.method not in ("auto", "exact", "iterative"):
            raise ValueError(f"method must be 'auto', 'exact' or 'iterative', got {self.method!r}")
        if self.schur not in ("auto", "dense", "sparse"):
            raise ValueError(f"schur must be 'auto', 'dense' or 'sparse', got {self.schur!r}")

    def optimizer_options(self) -> dict:
        """The options :func:`minimize` passes to the optimizer."""
        return {"maxfun": int(self.maxfun), "ftol_abs": self.ftol_abs, "xtol_abs": self.xtol_abs,
                "xtol_rel": self.xtol_rel, **self.options}


@dataclass
class OptimizerOutput:
    """What a registered optimizer returns."""

    x: np.ndarray
    fun: float
    converged: bool
    message: str
    maxfun_reached: bool = False


@dataclass
class OptSummary:
    """The record of an optimization, kept on the fitted model as ``.optinfo``: the optimizer,
    every tolerance it ran with (PIRLS's included, for GLMMs), the result and the fit log."""

    optimizer: str
    x: np.ndarray
    fun: float
    nevals: int
    seconds: float
    converged: bool
    message: str
    log_x: list[np.ndarray] = field(default_factory=list, repr=False)
    log_f: list[float] = field(default_factory=list, repr=False)
    maxfun_reached: bool = False
    #: the settings the optimizer ran with (tolerances, maxfun, initial step)
    options: dict = field(default_factory=dict, repr=False)
    #: PIRLS's settings (GLMMs): tolerance, smooth tolerance, iterations, step-halvings
    pirls: dict = field(default_factory=dict, repr=False)
    #: the factor's choices: one dense system or blocks, and per term how its diagonal block is
    #: formed (block-diagonal; dense from a product map, a sparse product or a syrk); whether
    #: the analytic gradient was used
    factor: dict = field(default_factory=dict, repr=False)

    def history(self):
        """The fit log as a DataFrame (one row per evaluation)."""
        import pandas as pd

        frame = pd.DataFrame(np.array(self.log_x), columns=[f"theta{i}" for i in range(len(self.x))])
        frame["objective"] = self.log_f
        return frame

    def settings(self) -> dict:
        """Every tolerance of the fit in one dict (optimizer options and PIRLS's)."""
        return {**self.options, **{f"pirls_{k}": v for k, v in self.pirls.items()}}


#: the former name, kept for code written against it
OptResult = OptSummary

Optimizer = Callable[..., OptimizerOutput]
_REGISTRY: dict[str, tuple[Optimizer, bool]] = {}


def register_optimizer(name: str, *, uses_gradient: bool = False, aliases: tuple[str, ...] = ()):
    """Decorator: register ``fun(objective, x0, bounds, *, grad=None, options) -> OptimizerOutput``.

    ``bounds`` is ``(lower, upper)`` (``±inf`` where unbounded); ``grad``, when given, returns
    the gradient at x; ``options`` is a dict (``maxfun``, ``ftol_abs``, ``xtol_abs``,
    ``xtol_rel``, ``initial_step`` and optimizer-specific keys). ``uses_gradient`` says whether
    the optimizer uses ``grad``.
    """
    def deco(fun: Optimizer) -> Optimizer:
        for key in (name, *aliases):
            _REGISTRY[key] = (fun, uses_gradient)
        return fun
    return deco


def is_default_optimizer(name: str) -> bool:
    """Whether ``name`` is the default optimizer, asked for by name or through ``"auto"``."""
    return name.lower() in ("auto", DEFAULT_OPTIMIZER)


def uses_gradient(name: str) -> bool:
    """Whether the registered optimizer ``name`` uses an analytic gradient (``"auto"``: no,
    unless the model resolves it to a gradient optimizer first)."""
    entry = _REGISTRY.get(name.lower())
    return bool(entry and entry[1])


def optimizers() -> list[str]:
    """Names of the registered optimizers."""
    return sorted(_REGISTRY)


def value_and_gradient(fg: Callable[[np.ndarray], tuple[float, np.ndarray]]):
    """Split ``x -> (value, gradient)`` into the ``fun`` and ``grad`` pair :func:`minimize`
    takes, computing both once per point."""
    cache: dict = {}

    def at(x):
        key = np.asarray(x, dtype=float).tobytes()
        if cache.get("key") != key:
            value, gradient = fg(np.asarray(x, dtype=float))
            cache.update(key=key, value=float(value), grad=np.asarray(gradient, dtype=float))
        return cache

    return (lambda x: at(x)["value"]), (lambda x: at(x)["grad"])


def minimize(fun: Callable[[np.ndarray], float], x0: np.ndarray, lower: np.ndarray,
             control: Control | None = None, upper: np.ndarray | None = None, *,
             grad: Callable[[np.ndarray], np.ndarray] | None = None, optimizer: str | None = None,
             options: dict | None = None, pirls: dict | None = None) -> OptSummary:
    """Minimize ``fun`` over a box with a registered optimizer, logging each evaluation.

    Parameters
    ----------
    fun : callable
        The objective.
    x0, lower : ndarray
        Start and lower bounds (``-inf`` where unbounded).
    control : Control, optional
        Supplies the optimizer and its tolerances.
    upper : ndarray, optional
    grad : callable, optional
        The gradient, for optimizers that use it.
    optimizer, options : optional
        Override ``control``'s optimizer and add to (or override) its options.
    pirls : dict, optional
        PIRLS settings to record in the summary.

    Returns
    -------
    OptSummary
    """
    control = control or Control()
    name = (optimizer or control.optimizer).lower()
    if name == "auto":
        name = DEFAULT_OPTIMIZER
    opts = {**control.optimizer_options(), **(options or {})}
    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)
    upper = np.full_like(x0, np.inf) if upper is None else np.asarray(upper, dtype=float)
    log_x: list[np.ndarray] = []
    log_f: list[float] = []

    def logged(x: np.ndarray) -> float:
        value = float(fun(np.asarray(x, dtype=float)))
        log_x.append(np.array(x, dtype=float))
        log_f.append(value)
        return value if math.isfinite(value) else 1e300

    start = time.perf_counter()
    record = {"options": {k: v for k, v in opts.items() if k != "initial_step"},
              "pirls": dict(pirls or {})}
    if len(x0) == 0:
        value = logged(x0)
        return OptSummary(name, x0, value, 1, time.perf_counter() - start, True, "no parameters",
                          log_x, log_f, **record)
    if name not in _REGISTRY:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(optimizers())}")
    method, uses_gradient = _REGISTRY[name]
    out = method(logged, x0, (lower, upper), grad=grad if uses_gradient else None, options=opts)
    x, fun_value = out.x, out.fun
    # scipy's optimizers word their limit messages differently, and may overshoot it slightly
    hit = bool(out.maxfun_reached or (not out.converged and len(log_f) >= opts["maxfun"]))
    # the optimizer's reported point can differ from the best one it evaluated
    best = int(np.argmin(log_f))
    if log_f[best] < fun_value:
        x, fun_value = log_x[best], log_f[best]
    return OptSummary(name, np.asarray(x, dtype=float), float(fun_value), len(log_f),
                      time.perf_counter() - start, out.converged, out.message, log_x, log_f, hit,
                      **record)


def escape_boundary(fun: Callable[[np.ndarray], float], result: OptSummary, lower: np.ndarray,
                    control: Control | None = None, *, grad: Callable | None = None,
                    steps: tuple[float, ...] = (0.1, 0.5), rounds: int = 3) -> OptSummary:
    """Restart a gradient optimizer that stopped with a variance parameter on its bound.

    The profiled deviance is even in each diagonal entry of T, so its derivative there is 0
    on the bound: a gradient method that lands on θⱼ = 0 sees a stationary point even when the
    optimum is inside. Each such θⱼ is probed at ``steps``; from the best probe that lowers the
    deviance the optimizer runs again (at most ``rounds`` times). A line search that jumped
    from the best point to the bound and ended higher also restarts, from the best point. The
    summary counts every evaluation.
    """
    lower = np.asarray(lower, dtype=float)
    for _ in range(rounds):
        x, best = np.asarray(result.x, dtype=float), result.fun
        probe_x, probe_f = None, best
        extra_x, extra_f = [], []
        last = np.asarray(result.log_x[-1], dtype=float) if result.log_x else x
        if result.log_f and result.log_f[-1] > best + 1e-6 and np.any((lower == 0) & (last <= 0)):
            probe_x = x
        for j in np.flatnonzero((lower == 0) & (x <= 0)) if probe_x is None else []:
            for step in steps:
                trial = x.copy()
                trial[j] = step
                value = float(fun(trial))
                extra_x.append(trial)
                extra_f.append(value)
                if value < probe_f - 1e-6:
                    probe_x, probe_f = trial, value
        result.log_x.extend(extra_x)
        result.log_f.extend(extra_f)
        result.nevals += len(extra_f)
        if probe_x is None:
            return result
        again = minimize(fun, probe_x, lower, control, grad=grad)
        merged = again if again.fun <= result.fun else result
        merged.log_x = result.log_x + again.log_x
        merged.log_f = result.log_f + again.log_f
        merged.nevals = result.nevals + again.nevals
        merged.seconds = result.seconds + again.seconds
        result = merged
    return result


# --- nlopt -------------------------------------------------------------------------------------

def _nlopt(algorithm: str):
    def run(fun, x0, bounds, *, grad=None, options):
        import nlopt

        lower, upper = bounds
        alg, note = algorithm, ""
        if alg == "LN_NEWUOA_BOUND" and len(x0) < 2:
            # NEWUOA needs two or more parameters; MixedModels.jl also uses BOBYQA for one
            alg, note = "LN_BOBYQA", " (NEWUOA needs two or more parameters: BOBYQA used)"
        opt = nlopt.opt(getattr(nlopt, alg), len(x0))
        opt.set_min_objective(lambda x, _grad: fun(x))
        # real infinities: nlopt derives its first step from the bounds, as lme4's nloptwrap relies on
        opt.set_lower_bounds(lower)
        opt.set_upper_bounds(upper)
        opt.set_ftol_abs(options["ftol_abs"])
        opt.set_xtol_abs(options["xtol_abs"])
        opt.set_xtol_rel(options["xtol_rel"])
        if "ftol_rel" in options:
            opt.set_ftol_rel(options["ftol_rel"])
        opt.set_maxeval(int(options["maxfun"]))
        if options.get("initial_step") is not None:
            opt.set_initial_step(np.asarray(options["initial_step"], dtype=float))
        start = np.clip(x0, lower, upper)
        try:
            x = opt.optimize(start)
            fun_value = opt.last_optimum_value()
            code = opt.last_optimize_result()
        except (nlopt.RoundoffLimited, ValueError):
            return OptimizerOutput(start, fun(start), False, "nlopt: roundoff limited")
        hit = code == nlopt.MAXEVAL_REACHED
        messages = {nlopt.SUCCESS: "success", nlopt.STOPVAL_REACHED: "stopval reached",
                    nlopt.FTOL_REACHED: "ftol reached", nlopt.XTOL_REACHED: "xtol reached",
                    nlopt.MAXEVAL_REACHED: "maxeval reached", nlopt.MAXTIME_REACHED: "maxtime reached"}
        return OptimizerOutput(x, fun_value, code > 0 and not hit,
                               f"nlopt: {messages.get(code, code)}{note}", hit)
    return run


register_optimizer("bobyqa")(_nlopt("LN_BOBYQA"))
register_optimizer("newuoa")(_nlopt("LN_NEWUOA_BOUND"))
register_optimizer("nelder_mead", aliases=("nlopt_nelder_mead",))(_nlopt("LN_NELDERMEAD"))
register_optimizer("sbplx")(_nlopt("LN_SBPLX"))


# --- scipy -------------------------------------------------------------------------------------

def _scipy_options(method: str, options: dict) -> dict:
    maxfun = int(options["maxfun"])
    if method == "L-BFGS-B":
        return {"maxfun": maxfun, "maxiter": options.get("maxiter", 15000),
                "ftol": options.get("ftol", 1e-12), "gtol": options.get("gtol", 1e-7),
                "maxcor": options.get("maxcor", 10)}
    if method == "Powell":
        return {"maxiter": maxfun, "xtol": 1e-8, "ftol": 1e-12, "maxfev": maxfun}
    if method == "COBYQA":
        return {"maxfev": maxfun, "final_tr_radius": 1e-8}
    return {"maxiter": maxfun, "xatol": 1e-8, "fatol": 1e-10, "maxfev": maxfun}


def _scipy(method: str):
    def run(fun, x0, bounds, *, grad=None, options):
        from scipy.optimize import Bounds
        from scipy.optimize import minimize as sp_minimize

        lower, upper = bounds
        box = Bounds(lower, upper)
        opts = _scipy_options(method, options)
        start = np.clip(x0, lower, upper)
        calls = [0]

        def counted(x):
            calls[0] += 1
            return fun(x)

        res = sp_minimize(counted, start, method=method, bounds=box, jac=grad, options=opts)
        if method == "Powell":
            # Powell's direction set degenerates when a line search ends on a bound, and it stops
            # short of the optimum (e.g. a variance at 0); a restart from there resets the directions
            for _ in range(10):
                left = int(options["maxfun"]) - calls[0]
                if not res.success or left <= 0:
                    break
                again = sp_minimize(counted, res.x, method=method, bounds=box,
                                    options={**opts, "maxfev": left})
                improved = res.fun - again.fun
                res = again if again.fun <= res.fun else res
                if improved <= options["ftol_abs"]:
                    break
        # L-BFGS-B says "ITERATIONS REACHED LIMIT" / "EVALUATIONS EXCEEDS LIMIT" (status 1)
        hit = res.status == 1 if method == "L-BFGS-B" else "maximum" in str(res.message).lower()
        return OptimizerOutput(res.x, float(res.fun), bool(res.success),
                               f"scipy {method}: {res.message}", hit)
    return run


register_optimizer("lbfgsb", uses_gradient=True, aliases=("l-bfgs-b",))(_scipy("L-BFGS-B"))
register_optimizer("powell")(_scipy("Powell"))
register_optimizer("cobyqa")(_scipy("COBYQA"))
register_optimizer("scipy_nelder_mead")(_scipy("Nelder-Mead"))


@register_optimizer("brent")
def _brent(fun, x0, bounds, *, grad=None, options):
    """Brent's bounded method for one parameter (finite bounds); ``xatol`` from ``options``."""
    from scipy.optimize import minimize_scalar

    lower, upper = bounds
    if len(x0) != 1 or not (np.isfinite(lower[0]) and np.isfinite(upper[0])):
        raise ValueError("the brent optimizer takes one parameter with finite bounds")
    res = minimize_scalar(lambda t: fun(np.array([t])), bounds=(float(lower[0]), float(upper[0])),
                          method="bounded", options={"xatol": options.get("xatol", 1e-5),
                                                     "maxiter": int(options["maxfun"])})
    return OptimizerOutput(np.array([res.x]), float(res.fun), bool(res.success),
                           f"brent: {res.message}")
