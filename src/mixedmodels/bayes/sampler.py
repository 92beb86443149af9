"""A Metropolis-Hastings sampler for low-dimensional, smooth posteriors (an LMM's (θ, σ)).

Each iteration uses, at random, one of two kernels (a mixture of valid MH kernels is valid):

* an *independence* proposal, a multivariate t (4 df) around the posterior mode with the
  inverse-Hessian covariance (inflated), re-estimated during warm-up from the chain's own draws;
* a *random-walk* proposal with that covariance, its scale tuned during warm-up towards an
  acceptance rate of 0.3.

For the near-normal posteriors of variance parameters in the unconstrained coordinates this mixes
in a few iterations (ESS per draw typically 0.3-0.8), needs no gradients, and after warm-up the
kernel is fixed, so the chain is a proper Markov chain. The mode and the Hessian come from
:func:`find_mode`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.lazy import lazy_import
from ..models.checks import finite_difference_derivatives

stats = lazy_import("scipy.stats")  # on first use: import mixedmodels stays fast
optimize = lazy_import("scipy.optimize")

__all__ = ["find_mode", "run_chain", "ChainResult", "DrawStore"]

_T_DF = 6.0


def find_mode(logp, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mode of ``logp`` (in unconstrained coordinates) and the inverse negative Hessian there
    (a positive-definite fallback when it is not)."""
    def neg(x):
        v = logp(x)
        return -v if np.isfinite(v) else 1e300

    res = optimize.minimize(neg, x0, method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000 * len(x0)})
    res = optimize.minimize(neg, res.x, method="BFGS", options={"gtol": 1e-6})
    mode = res.x
    H = finite_difference_derivatives(neg, mode, rel_step=1e-4)[1]
    try:
        w, v = np.linalg.eigh(0.5 * (H + H.T))
        w = np.maximum(w, 1e-3 * max(w.max(), 1e-6))
        cov = (v / w) @ v.T
    except np.linalg.LinAlgError:
        cov = np.eye(len(mode))
    return mode, cov


@dataclass
class ChainResult:
    x: np.ndarray            # (draws, k) unconstrained draws after warm-up
    logp: np.ndarray
    accept_independence: float
    accept_walk: float
    extras: list             # per draw: what ``after`` returned


class DrawStore:
    """One chain's kept draws (every ``thin``-th after warm-up), their log densities, and what
    ``after(x, rng)`` returns for each (e.g. the conditional draws of β and b)."""

    def __init__(self, draws: int, k: int, thin: int, after=None):
        self.x = np.empty((draws, k))
        self.logp = np.empty(draws)
        self.extras: list = []
        self.thin, self.after, self.kept = thin, after, 0

    def offer(self, i: int, x: np.ndarray, lp: float, rng) -> None:
        """Iteration ``i`` after warm-up, at ``x``."""
        if i % self.thin == self.thin - 1:
            self.x[self.kept] = x
            self.logp[self.kept] = lp
            if self.after is not None:
                self.extras.append(self.after(x, rng))
            self.kept += 1


def _t_logpdf(z: np.ndarray, chol: np.ndarray, logdet: float) -> float:
    k = len(z)
    y = np.linalg.solve(chol, z)
    return float(-0.5 * (_T_DF + k) * math.log1p(y @ y / _T_DF) - logdet)


def _t_draw(rng, mean, chol):
    k = len(mean)
    g = rng.chisquare(_T_DF) / _T_DF
    return mean + chol @ rng.standard_normal(k) / math.sqrt(g)


def run_chain(logp, mode: np.ndarray, cov: np.ndarray, warmup: int, draws: int, seed, after=None,
              thin: int = 1) -> ChainResult:
    """One chain: warm-up (adaptation) then ``draws`` kept iterations; ``after(x, rng)`` is called
    on each kept draw (e.g. the conditional draws of β and b)."""
    rng = np.random.default_rng(seed)
    k = len(mode)
    inflate = 1.2
    mean = mode.copy()
    C = cov * inflate ** 2
    chol = np.linalg.cholesky(C)
    logdet = float(np.sum(np.log(np.diag(chol))))
    rw_scale = 2.38 / math.sqrt(k)
    rw_chol = np.linalg.cholesky(cov)
    # a dispersed start: one draw from the (inflated) proposal
    x = _t_draw(rng, mean, chol * 1.5)
    lx = logp(x)
    for _ in range(50):
        if np.isfinite(lx):
            break
        x = _t_draw(rng, mean, chol)
        lx = logp(x)
    if not np.isfinite(lx):
        x, lx = mode.copy(), logp(mode)
    store = DrawStore(draws, k, thin, after)
    n_ind = a_ind = n_rw = a_rw = 0
    history = []
    total = warmup + draws * thin
    for it in range(total):
        warm = it < warmup
        if rng.random() < 0.7:
            y = _t_draw(rng, mean, chol)
            ly = logp(y)
            log_ratio = ly - lx + _t_logpdf(x - mean, chol, logdet) - _t_logpdf(y - mean, chol, logdet)
            accepted = np.isfinite(ly) and math.log(rng.random()) < log_ratio
            if not warm:
                n_ind += 1
                a_ind += accepted
        else:
            y = x + rw_scale * (rw_chol @ rng.standard_normal(k))
            ly = logp(y)
            accepted = np.isfinite(ly) and math.log(rng.random()) < ly - lx
            if warm:
                rw_scale *= math.exp((float(accepted) - 0.3) / math.sqrt(it + 1.0) * 0.5)
            else:
                n_rw += 1
                a_rw += accepted
        if accepted:
            x, lx = y, ly
        if warm:
            history.append(x.copy())
            # re-estimate the proposal from the second half of the warm-up so far
            if it + 1 in (warmup // 2, (3 * warmup) // 4, warmup) and len(history) > 20 * k:
                h = np.array(history[len(history) // 2:])
                m_new = h.mean(axis=0)
                c_new = np.cov(h, rowvar=False) if k > 1 else np.atleast_2d(h.var(ddof=1))
                try:
                    c_new = 0.5 * c_new + 0.5 * cov  # shrink toward the Laplace covariance
                    chol = np.linalg.cholesky(c_new * inflate ** 2)
                    rw_chol = np.linalg.cholesky(c_new)
                    mean = m_new
                    logdet = float(np.sum(np.log(np.diag(chol))))
                except np.linalg.LinAlgError:
                    pass
        else:
            store.offer(it - warmup, x, lx, rng)
    return ChainResult(store.x, store.logp, a_ind / max(n_ind, 1), a_rw / max(n_rw, 1), store.extras)


def chi2_quantile(p: float, df: float) -> float:
    return float(stats.chi2.ppf(p, df))
