"""Stage 1's optimizer for one scalar θ (a GLMM's nAGQ = 0 fit, with the closed-form
derivative): Newton steps with the secant's curvature, safeguarded by bisection, and the
curvature at its end that sets θ's units in stage 2's gradient search."""

from __future__ import annotations

import time

import numpy as np

from .optim import OptSummary

__all__ = ["newton_secant", "secant_curvature"]


def newton_secant(fg, x0: float, lower: float, xtol: float = 1e-4,
                   maxfun: int = 30) -> OptSummary | None:
    """Minimise a smooth f of one variable over [lower, ∞) from its value and derivative:
    Newton steps with the secant's curvature, inside the interval the values and derivatives
    seen so far leave for the minimum (bisection where a step leaves it), stopped when the
    step from the best point is below ``xtol`` relative. ~6 evaluations where L-BFGS-B takes
    ~10 (its first step goes to the bound). None when it does not converge in ``maxfun``
    evaluations (the caller falls back to L-BFGS-B)."""
    start = time.perf_counter()
    log_x: list[np.ndarray] = []
    log_f: list[float] = []
    lo, hi = lower, np.inf  # the minimum of a unimodal f lies in [lo, hi]
    best = None             # (f, x, g) at the lowest value seen

    def at(x):
        nonlocal lo, hi, best
        f, g = fg(x)
        f, g = float(f), float(np.asarray(g).ravel()[0])
        if not (np.isfinite(f) and np.isfinite(g)):
            raise FloatingPointError("non-finite value or derivative")
        log_x.append(np.array([x]))
        log_f.append(f)
        if best is not None and f > best[0]:  # a worse point bounds the side it is on
            lo, hi = (max(lo, x), hi) if x < best[1] else (lo, min(hi, x))
        else:
            best = (f, x, g)
        if g > 0:
            hi = min(hi, x)
        elif g < 0:
            lo = max(lo, x)
        return g

    def done(message):
        return OptSummary("newton-secant", np.array([best[1]]), best[0], len(log_f),
                          time.perf_counter() - start, True, message, log_x, log_f,
                          options={"xtol": xtol, "maxfun": maxfun})

    xa = max(x0, lower)
    ga = at(xa)
    xb = max(xa - np.sign(ga) * 0.05 * max(abs(xa), 0.1), lower)  # a probe for the curvature
    while len(log_f) < maxfun:
        gb = at(xb)
        f_best, x_best, g_best = best
        tol = xtol * max(1.0, abs(x_best))
        if x_best == lower and g_best >= 0:
            return done("minimum at the bound")
        if hi - lo <= tol:
            return done("the interval holding the minimum is below xtol")
        h = (gb - ga) / (xb - xa)
        if h > 0:
            xn = x_best - g_best / h
            if abs(xn - x_best) <= tol:
                return done("the Newton step fell below xtol")
        else:  # not convex here: downhill from the best point
            xn = x_best - np.sign(g_best) * 2.0 * abs(xb - xa)
        xn = max(xn, lower)
        seen = min(abs(xn - float(x[0])) for x in log_x)
        if not lo <= xn <= hi or seen <= 0.5 * tol:
            if not np.isfinite(hi):
                return None
            xn = 0.5 * (lo + hi)
        xa, ga, xb = xb, gb, xn
    return None


def secant_curvature(trace: list[tuple[float, float]], x_end: float) -> float | None:
    """d²f/dθ² at stage 1's end from its gradients: the secant to the nearest earlier point
    at least 1e-4 away (closer ones difference rounding and PIRLS' tolerance)."""
    g_end = [g for x, g in trace if x == x_end]
    if not g_end:
        return None
    others = [(abs(x - x_end), x, g) for x, g in trace if abs(x - x_end) >= 1e-4 * max(1.0, abs(x_end))]
    if not others:
        return None
    _, x, g = min(others)
    return (g - g_end[-1]) / (x - x_end)
