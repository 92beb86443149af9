"""Optimizers for the profiled deviance, the fit log, and the fit control settings.

BOBYQA from nlopt is the default, as in lme4 (``nloptwrap``). NEWUOA and Nelder-Mead from
nlopt, and L-BFGS-B, Powell and COBYQA from scipy can be chosen through :class:`Control`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Control", "OptResult", "minimize", "OPTIMIZERS"]

_NLOPT = {"bobyqa": "LN_BOBYQA", "newuoa": "LN_NEWUOA_BOUND", "nelder_mead": "LN_NELDERMEAD",
          "nlopt_nelder_mead": "LN_NELDERMEAD", "sbplx": "LN_SBPLX"}
_SCIPY = {"lbfgsb": "L-BFGS-B", "l-bfgs-b": "L-BFGS-B", "powell": "Powell", "cobyqa": "COBYQA",
          "scipy_nelder_mead": "Nelder-Mead"}
#: optimizers that :func:`mixedmodels.all_fit` tries
OPTIMIZERS = ("bobyqa", "newuoa", "nelder_mead", "lbfgsb", "powell", "cobyqa")


@dataclass
class Control:
    """Settings for a fit, like lme4's ``lmerControl``.

    Parameters
    ----------
    optimizer : str
        ``"bobyqa"`` (default), ``"newuoa"``, ``"nelder_mead"``, ``"lbfgsb"``, ``"powell"`` or
        ``"cobyqa"``.
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
    options : dict
        Extra optimizer settings, e.g. ``{"initial_step": ...}`` for nlopt optimizers.
    """

    optimizer: str = "bobyqa"
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
    options: dict = field(default_factory=dict)


@dataclass
class OptResult:
    """What the optimizer did: kept on the fitted model as ``.optinfo``."""

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

    def history(self):
        """The fit log as a DataFrame (one row per evaluation)."""
        import pandas as pd

        frame = pd.DataFrame(np.array(self.log_x), columns=[f"theta{i}" for i in range(len(self.x))])
        frame["objective"] = self.log_f
        return frame


def minimize(fun: Callable[[np.ndarray], float], x0: np.ndarray, lower: np.ndarray,
             control: Control | None = None, upper: np.ndarray | None = None) -> OptResult:
    """Minimize ``fun`` over a box, logging each evaluation.

    Parameters
    ----------
    fun : callable
        The objective of θ.
    x0, lower : ndarray
        Start and lower bounds (``-inf`` where unbounded).
    control : Control, optional

    Returns
    -------
    OptResult
    """
    control = control or Control()
    name = control.optimizer.lower()
    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)
    upper = np.full_like(x0, np.inf) if upper is None else np.asarray(upper, dtype=float)
    log_x: list[np.ndarray] = []
    log_f: list[float] = []

    def logged(x: np.ndarray) -> float:
        value = float(fun(np.asarray(x, dtype=float)))
        log_x.append(np.array(x, dtype=float))
        log_f.append(value)
        return value if np.isfinite(value) else 1e300

    start = time.perf_counter()
    if len(x0) == 0:
        value = logged(x0)
        return OptResult(name, x0, value, 1, time.perf_counter() - start, True, "no parameters",
                         log_x, log_f)
    if name in _NLOPT:
        x, fun_value, message, converged, hit = _run_nlopt(_NLOPT[name], logged, x0, lower, upper, control)
    elif name in _SCIPY:
        x, fun_value, message, converged, hit = _run_scipy(_SCIPY[name], logged, x0, lower, upper, control)
    else:
        raise ValueError(f"unknown optimizer {control.optimizer!r}; choose one of "
                         f"{', '.join(OPTIMIZERS)}")
    # scipy's optimizers word their limit messages differently, and may overshoot it slightly
    hit = bool(hit or (not converged and len(log_f) >= control.maxfun))
    # the optimizer's reported point can differ from the best one it evaluated
    best = int(np.argmin(log_f))
    if log_f[best] < fun_value:
        x, fun_value = log_x[best], log_f[best]
    return OptResult(name, np.asarray(x, dtype=float), float(fun_value), len(log_f),
                     time.perf_counter() - start, converged, message, log_x, log_f, hit)


def _run_nlopt(algorithm: str, fun, x0, lower, upper, control: Control):
    import nlopt

    note = ""
    if algorithm == "LN_NEWUOA_BOUND" and len(x0) < 2:
        # NEWUOA needs two or more parameters; MixedModels.jl also uses BOBYQA for one
        algorithm, note = "LN_BOBYQA", " (NEWUOA needs two or more parameters: BOBYQA used)"
    opt = nlopt.opt(getattr(nlopt, algorithm), len(x0))
    opt.set_min_objective(lambda x, grad: fun(x))
    # real infinities: nlopt derives its first step from the bounds, as lme4's nloptwrap relies on
    opt.set_lower_bounds(lower)
    opt.set_upper_bounds(upper)
    opt.set_ftol_abs(control.ftol_abs)
    opt.set_xtol_abs(control.xtol_abs)
    opt.set_xtol_rel(control.xtol_rel)
    opt.set_maxeval(int(control.maxfun))
    if "initial_step" in control.options:
        opt.set_initial_step(control.options["initial_step"])
    start = np.clip(x0, lower, upper)
    try:
        x = opt.optimize(start)
        fun_value = opt.last_optimum_value()
        code = opt.last_optimize_result()
    except nlopt.RoundoffLimited:
        return start, fun(start), "nlopt: roundoff limited", False, False
    hit = code == nlopt.MAXEVAL_REACHED
    messages = {nlopt.SUCCESS: "success", nlopt.STOPVAL_REACHED: "stopval reached",
                nlopt.FTOL_REACHED: "ftol reached", nlopt.XTOL_REACHED: "xtol reached",
                nlopt.MAXEVAL_REACHED: "maxeval reached", nlopt.MAXTIME_REACHED: "maxtime reached"}
    return x, fun_value, f"nlopt: {messages.get(code, code)}{note}", code > 0 and not hit, hit


def _run_scipy(method: str, fun, x0, lower, upper, control: Control):
    from scipy.optimize import Bounds, minimize as sp_minimize

    bounds = Bounds(lower, upper)
    options: dict = {"maxiter": int(control.maxfun)}
    if method == "L-BFGS-B":
        options = {"maxfun": int(control.maxfun), "ftol": 1e-12, "gtol": 1e-7}
    elif method == "Powell":
        options.update({"xtol": 1e-8, "ftol": 1e-12, "maxfev": int(control.maxfun)})
    elif method == "COBYQA":
        options = {"maxfev": int(control.maxfun), "final_tr_radius": 1e-8}
    elif method == "Nelder-Mead":
        options.update({"xatol": 1e-8, "fatol": 1e-10, "maxfev": int(control.maxfun)})
        bounds = Bounds(lower, upper)
    start = np.clip(x0, lower, upper)
    calls = [0]

    def counted(x):
        calls[0] += 1
        return fun(x)

    res = sp_minimize(counted, start, method=method, bounds=bounds, options=options)
    if method == "Powell":
        # Powell's direction set degenerates when a line search ends on a bound, and it stops
        # short of the optimum (e.g. a variance at 0); a restart from there resets the directions
        for _ in range(10):
            left = int(control.maxfun) - calls[0]
            if not res.success or left <= 0:
                break
            again = sp_minimize(counted, res.x, method=method, bounds=bounds,
                                options={**options, "maxfev": left})
            improved = res.fun - again.fun
            res = again if again.fun <= res.fun else res
            if improved <= control.ftol_abs:
                break
    hit = "maximum" in str(res.message).lower()
    return res.x, res.fun, f"scipy {method}: {res.message}", bool(res.success), hit
