"""Convergence diagnostics of MCMC draws: rank-normalized split-R̂ and bulk/tail effective sample
sizes (Vehtari, Gelman, Simpson, Carpenter and Bürkner 2021, *Bayesian Analysis* 16, 667-718),
the definitions Stan, posterior and ArviZ use.

Each function takes an array of shape ``(chains, draws)``.
"""

from __future__ import annotations

import numpy as np

from ..core.lazy import lazy_import

stats = lazy_import("scipy.stats")  # on first use: import mixedmodels stays fast

__all__ = ["rhat", "ess_bulk", "ess_tail", "ess_basic", "split_chains", "rank_normalize"]


def split_chains(x: np.ndarray) -> np.ndarray:
    """Each chain cut in two halves (the middle draw dropped for an odd length)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    n = x.shape[1]
    half = n // 2
    return np.concatenate([x[:, :half], x[:, n - half:]], axis=0)


def rank_normalize(x: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks (average ranks for ties): Φ⁻¹((r − 3/8)/(S + 1/4))."""
    x = np.asarray(x, dtype=float)
    r = stats.rankdata(x, method="average").reshape(x.shape)
    return stats.norm.ppf((r - 0.375) / (x.size + 0.25))


def _rhat_basic(x: np.ndarray) -> float:
    m, n = x.shape
    if n < 2:
        return np.nan
    means = x.mean(axis=1)
    w = x.var(axis=1, ddof=1).mean()
    b = n * means.var(ddof=1) if m > 1 else 0.0
    if w == 0:
        return np.nan
    var_plus = (n - 1) / n * w + b / n
    return float(np.sqrt(var_plus / w))


def rhat(x: np.ndarray) -> float:
    """Rank-normalized split-R̂: the larger of the bulk (ranks) and tail (folded ranks) values."""
    s = split_chains(x)
    if not np.all(np.isfinite(s)) or np.ptp(s) == 0:
        return np.nan
    bulk = _rhat_basic(rank_normalize(s))
    folded = np.abs(s - np.median(s))
    tail = _rhat_basic(rank_normalize(folded))
    return float(max(bulk, tail))


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariances per chain (biased, divided by n), by FFT."""
    m, n = x.shape
    size = 1 << int(np.ceil(np.log2(2 * n)))
    c = x - x.mean(axis=1, keepdims=True)
    f = np.fft.rfft(c, n=size, axis=1)
    acov = np.fft.irfft(f * np.conjugate(f), n=size, axis=1)[:, :n]
    return acov / n


def ess_basic(x: np.ndarray) -> float:
    """Effective sample size by Geyer's initial monotone sequence over chains (no splitting)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    m, n = x.shape
    if n < 4 or not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        return np.nan
    acov = _autocov(x)
    mean_var = acov[:, 0].mean() * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus += x.mean(axis=1).var(ddof=1)
    rho = np.zeros(n)
    even, odd = 1.0, 1.0 - (mean_var - acov[:, 1].mean()) / var_plus
    rho[0], rho[1] = even, odd
    t = 1
    while t < n - 3 and even + odd > 0.0:
        even = 1.0 - (mean_var - acov[:, t + 1].mean()) / var_plus
        odd = 1.0 - (mean_var - acov[:, t + 2].mean()) / var_plus
        if even + odd >= 0:
            rho[t + 1], rho[t + 2] = even, odd
        t += 2
    max_t = t - 2
    if even > 0:
        rho[max_t + 1] = even
    t = 1
    while t <= max_t - 2:  # monotone
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2.0
        t += 2
    total = m * n
    tau = -1.0 + 2.0 * rho[:max_t + 1].sum() + rho[max_t + 1:max_t + 2].sum()
    tau = max(tau, 1.0 / np.log10(total))
    return float(total / tau)


def ess_bulk(x: np.ndarray) -> float:
    """Bulk ESS: of the rank-normalized split chains."""
    s = split_chains(x)
    if not np.all(np.isfinite(s)) or np.ptp(s) == 0:
        return np.nan
    return ess_basic(rank_normalize(s))


def ess_tail(x: np.ndarray) -> float:
    """Tail ESS: the smaller ESS of the indicators of the 5% and 95% quantiles (split chains)."""
    s = split_chains(x)
    if not np.all(np.isfinite(s)) or np.ptp(s) == 0:
        return np.nan
    lo, hi = np.quantile(s, [0.05, 0.95])
    return float(min(ess_basic((s <= lo).astype(float)), ess_basic((s <= hi).astype(float))))
