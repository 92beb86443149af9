"""The No-U-Turn sampler (multinomial trajectories, as Stan's), for the joint posterior of a GLMM.

One chain of :func:`run_nuts` adapts during warm-up, as Stan does, the step size (dual averaging
towards a mean acceptance statistic of 0.8) and a diagonal inverse mass matrix (the regularised
variance of the draws of doubling windows after an initial fast phase). Leapfrog steps use the
exact gradient of the log density, and the trajectories are sampled multinomially
(Betancourt 2017) with the generalised U-turn criterion. Divergent transitions (an energy error
above 1000) and trajectories cut at the maximum tree depth are counted for the warnings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .sampler import DrawStore

__all__ = ["run_nuts", "NutsResult"]


@dataclass
class NutsResult:
    x: np.ndarray          # (draws, k)
    logp: np.ndarray
    divergences: int
    max_treedepth_hits: int
    step_size: float
    mean_accept: float
    n_leapfrog: int
    extras: list


@dataclass
class _Tree:
    x_minus: np.ndarray
    r_minus: np.ndarray
    g_minus: np.ndarray
    x_plus: np.ndarray
    r_plus: np.ndarray
    g_plus: np.ndarray
    x_prop: np.ndarray
    lp_prop: float
    g_prop: np.ndarray
    log_w: float
    rho: np.ndarray
    stop: bool
    divergent: bool
    sum_accept: float
    n: int


class _Integrator:
    def __init__(self, f, inv_m: np.ndarray):
        self.f, self.inv_m = f, inv_m
        self.calls = 0

    def leapfrog(self, x, r, g, eps):
        r = r + 0.5 * eps * g
        x = x + eps * self.inv_m * r
        lp, g = self.f(x)
        self.calls += 1
        r = r + 0.5 * eps * g
        return x, r, lp, g

    def kinetic(self, r) -> float:
        return 0.5 * float(r @ (self.inv_m * r))


def _no_turn(inv_m, rho, r_minus, r_plus) -> bool:
    return float((inv_m * r_minus) @ rho) > 0 and float((inv_m * r_plus) @ rho) > 0


def _build(integ: _Integrator, x, r, g, v: int, depth: int, eps: float, H0: float, rng) -> _Tree:
    if depth == 0:
        x1, r1, lp1, g1 = integ.leapfrog(x, r, g, v * eps)
        H1 = lp1 - integ.kinetic(r1) if np.isfinite(lp1) else -np.inf
        if not np.isfinite(H1):
            H1 = -np.inf
        div = (H0 - H1) > 1000.0
        acc = math.exp(min(0.0, H1 - H0)) if np.isfinite(H1) else 0.0
        return _Tree(x1, r1, g1, x1, r1, g1, x1, lp1, g1, H1 - H0, r1.copy(), div, div, acc, 1)
    a = _build(integ, x, r, g, v, depth - 1, eps, H0, rng)
    if a.stop:
        return a
    if v > 0:
        b = _build(integ, a.x_plus, a.r_plus, a.g_plus, v, depth - 1, eps, H0, rng)
    else:
        b = _build(integ, a.x_minus, a.r_minus, a.g_minus, v, depth - 1, eps, H0, rng)
    return _merge(integ, a, b, v, rng, biased=False)


def _merge(integ: _Integrator, a: _Tree, b: _Tree, v: int, rng, biased: bool) -> _Tree:
    """``b`` extends ``a`` in direction ``v``; multinomial choice of the proposal (biased towards
    the new subtree at the top level, as Stan)."""
    log_w = float(np.logaddexp(a.log_w, b.log_w))
    if b.stop:
        # a divergent or turning subtree is never used for the proposal
        return _Tree(a.x_minus, a.r_minus, a.g_minus, a.x_plus, a.r_plus, a.g_plus, a.x_prop, a.lp_prop,
                     a.g_prop, a.log_w, a.rho, True, b.divergent, a.sum_accept + b.sum_accept, a.n + b.n)
    take_b = math.log(rng.random()) < (b.log_w - (a.log_w if biased else log_w))
    prop = (b.x_prop, b.lp_prop, b.g_prop) if take_b else (a.x_prop, a.lp_prop, a.g_prop)
    if v > 0:
        ends = (a.x_minus, a.r_minus, a.g_minus, b.x_plus, b.r_plus, b.g_plus)
    else:
        ends = (b.x_minus, b.r_minus, b.g_minus, a.x_plus, a.r_plus, a.g_plus)
    rho = a.rho + b.rho
    stop = not _no_turn(integ.inv_m, rho, ends[1], ends[4])
    if not stop:
        # the extra checks across the two halves (Stan ≥ 2.26): the left half with the first point
        # of the right half, and the right half with the last point of the left half
        left, right = (a, b) if v > 0 else (b, a)
        stop = (not _no_turn(integ.inv_m, left.rho + right.r_minus, left.r_minus, right.r_minus)
                or not _no_turn(integ.inv_m, right.rho + left.r_plus, left.r_plus, right.r_plus))
    return _Tree(*ends, prop[0], prop[1], prop[2], log_w, rho, stop, False, a.sum_accept + b.sum_accept,
                 a.n + b.n)


def _transition(integ: _Integrator, x, lp, g, eps: float, max_depth: int, rng):
    r0 = rng.standard_normal(len(x)) / np.sqrt(integ.inv_m)
    H0 = lp - integ.kinetic(r0)
    tree = _Tree(x, r0, g, x, r0, g, x, lp, g, 0.0, r0.copy(), False, False, 0.0, 0)
    depth = 0
    while depth < max_depth:
        v = 1 if rng.random() < 0.5 else -1
        if v > 0:
            sub = _build(integ, tree.x_plus, tree.r_plus, tree.g_plus, v, depth, eps, H0, rng)
        else:
            sub = _build(integ, tree.x_minus, tree.r_minus, tree.g_minus, v, depth, eps, H0, rng)
        tree = _merge(integ, tree, sub, v, rng, biased=True)
        depth += 1
        if tree.stop:
            break
    accept = tree.sum_accept / max(tree.n, 1)
    return tree.x_prop, tree.lp_prop, tree.g_prop, accept, tree.divergent, depth >= max_depth and not tree.stop


def _initial_step(integ: _Integrator, x, lp, g, rng) -> float:
    """Stan's heuristic: double or halve ε until one leapfrog step's acceptance crosses 0.5."""
    eps = 1.0
    r = rng.standard_normal(len(x)) / np.sqrt(integ.inv_m)
    H0 = lp - integ.kinetic(r)

    def log_acc(e):
        _, r1, lp1, _ = integ.leapfrog(x, r, g, e)
        return (lp1 - integ.kinetic(r1) - H0) if np.isfinite(lp1) else -np.inf

    la = log_acc(eps)
    direction = 1 if la > math.log(0.5) else -1
    for _ in range(60):
        if direction > 0 and not la > math.log(0.5):
            break
        if direction < 0 and not la < math.log(0.5):
            break
        eps = eps * (2.0 if direction > 0 else 0.5)
        la = log_acc(eps)
    return eps


class _DualAveraging:
    def __init__(self, eps: float, delta: float = 0.8):
        self.mu = math.log(10 * eps)
        self.delta = delta
        self.hbar = 0.0
        self.log_eps_bar = 0.0
        self.t = 0

    def update(self, accept: float) -> float:
        self.t += 1
        t, gamma, t0, kappa = self.t, 0.05, 10.0, 0.75
        self.hbar = (1 - 1 / (t + t0)) * self.hbar + (self.delta - accept) / (t + t0)
        log_eps = self.mu - math.sqrt(t) / gamma * self.hbar
        w = t ** (-kappa)
        self.log_eps_bar = w * log_eps + (1 - w) * self.log_eps_bar
        return math.exp(log_eps)

    @property
    def final(self) -> float:
        return math.exp(self.log_eps_bar)


def _windows(warmup: int) -> list[int]:
    """The iterations after which Stan's slow adaptation windows end (init 15%, term 10%)."""
    if warmup < 20:
        return []
    init, term = int(0.15 * warmup), int(0.1 * warmup)
    ends, start, size = [], init, 25
    while start < warmup - term:
        end = start + size
        if end + 2 * size > warmup - term:
            end = warmup - term
        ends.append(end)
        start, size = end, 2 * size
    return ends


def run_nuts(logp_grad, x0: np.ndarray, warmup: int, draws: int, seed, *, after=None, max_depth: int = 10,
             delta: float = 0.8, thin: int = 1) -> NutsResult:
    """One NUTS chain from ``x0``; ``logp_grad(x) -> (log density, gradient)``. ``after(x, rng)``
    is called on each kept draw (its results are the ``extras``)."""
    rng = np.random.default_rng(seed)
    k = len(x0)
    inv_m = np.ones(k)
    integ = _Integrator(logp_grad, inv_m)
    x = np.asarray(x0, dtype=float).copy()
    lp, g = logp_grad(x)
    if not np.isfinite(lp):
        raise ValueError("the log density is not finite at the starting point")
    eps = _initial_step(integ, x, lp, g, rng)
    da = _DualAveraging(eps, delta)
    ends = set(_windows(warmup))
    window: list[np.ndarray] = []
    init = int(0.15 * warmup)
    store = DrawStore(draws, k, thin, after)
    div = hits = 0
    acc_sum = 0.0
    for it in range(warmup + draws * thin):
        x, lp, g, accept, divergent, hit = _transition(integ, x, lp, g, eps, max_depth, rng)
        if it < warmup:
            eps = da.update(accept)
            if it >= init:
                window.append(x.copy())
            if it + 1 in ends and len(window) > 2:
                W = np.array(window)
                n = len(W)
                var = W.var(axis=0, ddof=1)
                integ.inv_m = inv_m = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
                window = []
                eps = _initial_step(integ, x, lp, g, rng)
                da = _DualAveraging(eps, delta)
            if it + 1 == warmup:
                eps = da.final
            continue
        div += divergent
        hits += hit
        acc_sum += accept
        store.offer(it - warmup, x, lp, rng)
    return NutsResult(store.x, store.logp, int(div), int(hits), float(eps), acc_sum / max(draws * thin, 1),
                      integ.calls, store.extras)
