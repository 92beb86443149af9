"""Simulation-based scaled (quantile) residuals, as R's DHARMa.

For each observation the scaled residual is where the observed response falls in the
distribution of responses simulated from the fitted model: ``P(y* < y) + U · P(y* = y)`` with
``U ~ Uniform(0, 1)``, the randomized probability integral transform that DHARMa uses for
integer responses (for a continuous response it is DHARMa's ``ecdf(y*)(y)``, ties having
probability zero). Under a correct model they are uniform on (0, 1) whatever the family, so
that binary or count data, whose raw residuals say little, can be checked. The simulations
draw new random effects (lme4's ``simulate(use.u = FALSE)``, DHARMa's default), or condition
on the fitted ones with ``use_u=True``.

The tests follow DHARMa's definitions:

- ``test_uniformity``: a Kolmogorov-Smirnov test of the scaled residuals against U(0, 1)
  (``testUniformity``).
- ``test_dispersion``: DHARMa's default (``type = "DHARMa"``) non-parametric test, the
  variance of the observed raw residuals ``var(y − ŷ)`` against the variances
  ``var(y*ₛ − ŷ)`` of the simulations, ŷ the fitted (conditional) mean; the statistic is the
  ratio of the observed to the mean simulated variance (> 1: over-dispersion) and the p-value
  the two-sided simulation p-value of ``testGeneric``. By default it compares with
  simulations conditional on the fitted random effects, as DHARMa's help advises for mixed
  models (``conditional=False``: the residuals' own simulations).
- ``test_zero_inflation``: the observed number of zeros against the simulated ones
  (``testZeroInflation``), ratio observed / mean simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.lazy import lazy_import
from ..models.base import extension

stats = lazy_import("scipy.stats")  # on first use: import mixedmodels stays fast

__all__ = ["simulate_residuals", "SimulatedResiduals", "SimulationTest"]

_ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class SimulationTest:
    """The result of one residual test: statistic, p-value, what was tested."""

    method: str
    statistic_name: str
    statistic: float
    p_value: float
    alternative: str

    def __repr__(self) -> str:
        return (f"{self.method}\n{self.statistic_name} = {self.statistic:.4g}, "
                f"p-value = {self.p_value:.4g}\nalternative hypothesis: {self.alternative}")


def _alternative(alternative: str) -> str:
    alt = str(alternative).replace(".", "-").replace("_", "-").lower()
    if alt not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    return alt


def _simulation_p(simulated: np.ndarray, observed: float, alternative: str) -> float:
    """DHARMa's ``getP``: the share of simulated summaries at least as extreme as the observed."""
    if alternative == "greater":
        return float(np.mean(simulated >= observed))
    if alternative == "less":
        return float(np.mean(simulated <= observed))
    return float(min(1.0, 2.0 * min(np.mean(simulated <= observed), np.mean(simulated >= observed))))


class SimulatedResiduals:
    """DHARMa-style scaled residuals of a fitted model (see :func:`simulate_residuals`).

    Attributes
    ----------
    scaled : numpy.ndarray
        The scaled residuals in (0, 1), one per observation.
    observed : numpy.ndarray
        The response on the fit's scale (proportions for binomial trials).
    simulated : numpy.ndarray
        ``nobs × n_sim`` simulated responses.
    fitted : numpy.ndarray
        The fitted (conditional) means.
    predicted : numpy.ndarray
        The predictions the residuals are plotted against: population-level means (random
        effects at 0) for unconditional simulations, whose residuals include the random
        effects, the conditional means with ``use_u=True``.
    """

    def __init__(self, model, scaled, observed, simulated, fitted, n_sim, seed, use_u, rng):
        self.model = model
        self.use_u = use_u
        self._rng = rng
        self.predicted = fitted if use_u else np.asarray(
            model.predict(re_form="~0", type="response"), dtype=float)
        self.scaled = scaled
        self.observed = observed
        self.simulated = simulated
        self.fitted = fitted
        self.n_sim = n_sim
        self.seed = seed

    def test_uniformity(self, alternative: str = "two-sided") -> SimulationTest:
        """Kolmogorov-Smirnov test of the scaled residuals against U(0, 1) (DHARMa's
        ``testUniformity``)."""
        alt = _alternative(alternative)
        res = stats.kstest(self.scaled, "uniform", alternative=alt.replace("-", "-"))
        return SimulationTest("Kolmogorov-Smirnov test of the scaled residuals against U(0, 1)", "D",
                              float(res.statistic), float(res.pvalue), alt)

    def test_dispersion(self, alternative: str = "two-sided", conditional: bool = True) -> SimulationTest:
        """DHARMa's simulation test of dispersion: ``var(y − ŷ)`` against ``var(y* − ŷ)``.

        The statistic is ``var(y − ŷ) / mean_s var(y*_s − ŷ)``; > 1 means more spread than the
        model expects (over-dispersion), < 1 less.

        Parameters
        ----------
        alternative : {"two-sided", "greater", "less"}
        conditional : bool, default True
            Compare with simulations conditional on the fitted random effects (DHARMa's
            ``re.form = NULL``), drawn here if the residuals were simulated unconditionally.
            DHARMa's help recommends them for mixed models: against the conditional ŷ,
            unconditional simulations carry the random-effects variance as well, which makes
            the test blind to over-dispersion. ``False`` uses the residuals' own simulations
            (DHARMa's ``testDispersion`` on them, exactly).
        """
        alt = _alternative(alternative)
        sim = self.simulated
        if conditional and not self.use_u:
            sim = self.model.simulate(n=self.n_sim, seed=self._rng, use_u=True).to_numpy(dtype=float)
        obs = float(np.var(self.observed - self.fitted, ddof=1))
        sims = np.var(sim - self.fitted[:, None], axis=0, ddof=1)
        return SimulationTest("DHARMa nonparametric dispersion test via sd of residuals fitted vs. simulated",
                              "dispersion", obs / float(np.mean(sims)), _simulation_p(sims, obs, alt), alt)

    def test_zero_inflation(self, alternative: str = "two-sided") -> SimulationTest:
        """Observed against simulated numbers of zeros (DHARMa's ``testZeroInflation``);
        the statistic is their ratio (> 1: more zeros than the model expects)."""
        alt = _alternative(alternative)
        obs = float(np.sum(self.observed == 0))
        sims = np.sum(self.simulated == 0, axis=0).astype(float)
        mean = float(np.mean(sims))
        ratio = obs / mean if mean > 0 else (np.inf if obs > 0 else np.nan)
        return SimulationTest("DHARMa zero-inflation test via comparison to expected zeros with simulation "
                              "under H0 = fitted model", "ratioObsSim", ratio, _simulation_p(sims, obs, alt), alt)

    def plot(self, **kwargs):
        """DHARMa's residual plot: a uniform QQ plot with the KS, dispersion and outlier
        summary, and the scaled residuals against the rank-transformed fitted values with
        their 0.25, 0.5 and 0.75 quantile lines. Returns the figure."""
        return extension("plot_simulated_residuals")(self, **kwargs)

    def __repr__(self) -> str:
        u = self.test_uniformity()
        d = self.test_dispersion()
        return (f"Scaled residuals from {self.n_sim} simulations ({len(self.scaled)} observations)\n"
                f"  uniformity (KS): D = {u.statistic:.4g}, p = {u.p_value:.4g}\n"
                f"  dispersion: ratio = {d.statistic:.4g}, p = {d.p_value:.4g}\n"
                f"  scaled residuals: {np.array2string(self.scaled[:6], precision=3)}"
                f"{' ...' if len(self.scaled) > 6 else ''}")


def simulate_residuals(model, n_sim: int = 250, seed=None, use_u: bool = False) -> SimulatedResiduals:
    """Scaled quantile residuals from simulations of the fitted model (DHARMa's
    ``simulateResiduals``).

    Parameters
    ----------
    model : fitted mixed model
    n_sim : int
        Number of simulated responses (DHARMa's default 250).
    seed : int, numpy Generator or None
        For the simulations and the randomization of ties.
    use_u : bool, default False
        Simulate conditionally on the fitted random effects (DHARMa's ``re.form = NULL``);
        by default new random effects are drawn (DHARMa's default for lme4).

    Returns
    -------
    SimulatedResiduals
        ``.scaled``, ``test_uniformity()``, ``test_dispersion()``, ``test_zero_inflation()``
        and ``plot()``.
    """
    n_sim = int(n_sim)
    if n_sim < 2:
        raise ValueError(f"n_sim must be at least 2, got {n_sim}")
    rng = np.random.default_rng(seed)
    sims = model.simulate(n=n_sim, seed=rng, use_u=use_u).to_numpy(dtype=float)
    y = np.asarray(model.response, dtype=float)
    fitted = np.asarray(model.fitted(type="response") if not model.family.linear else model.fitted(),
                        dtype=float)
    below = np.mean(sims < y[:, None], axis=1)
    ties = np.mean(sims == y[:, None], axis=1)
    # randomized PIT: uniform within the probability mass at y (no mass, no noise)
    scaled = below + rng.uniform(size=len(y)) * ties
    return SimulatedResiduals(model, scaled, y, sims, fitted, n_sim, seed, use_u, rng)
