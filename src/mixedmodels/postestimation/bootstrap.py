"""Parametric bootstrap: simulate from the fitted model, refit, collect a statistic.

- :func:`bootstrap`: replicates of any statistic (by default the sd/cor parameters, σ and the
  fixed effects, named as :func:`~mixedmodels.postestimation.profile.confint` rows), in a
  :class:`BootstrapResult` with percentile, basic and normal intervals (as ``bootMer``).
- :func:`bootstrap_lrt`: the bootstrap likelihood-ratio test of a nested pair (pbkrtest's
  ``PBmodcomp``).

Every response is simulated up front from the seed
(:func:`~mixedmodels.postestimation.predict.simulate`), so the results do not depend on the
number of worker processes; each replicate is :meth:`~mixedmodels.models.base.MixedModel.refit`
to it, started at the fitted estimates, with the convergence, singularity and scaling checks off.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd

from ..core.lazy import lazy_import
from ..exceptions import ConvergenceWarning
from ..models.base import printed_by_presentation
from ..spec.arguments import check_count
from .progress import Progress
from .ranef import variance_parameters

stats = lazy_import("scipy.stats")

__all__ = ["bootstrap", "BootstrapResult", "bootstrap_lrt", "default_statistic", "quiet_refit"]


def default_statistic(model) -> pd.Series:
    """The sd/cor parameters, σ (for families with a scale) and the fixed effects, named as the
    rows of :func:`~mixedmodels.postestimation.profile.confint`."""
    return pd.concat([variance_parameters(model), model.fixef])


def quiet_refit(model, y: np.ndarray):
    """The same model refit to a new response (:meth:`~MixedModel.refit`, started at the fitted
    estimates), with the convergence, singularity and scaling checks and all warnings off."""
    ctrl = replace(model.control, check_conv="ignore", check_singular="ignore", check_scale="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.refit(np.asarray(y, dtype=float), control=ctrl)


def _boot_one(args):
    model, y, statistic = args
    try:
        fitted = quiet_refit(model, y)
        return np.asarray(statistic(fitted), dtype=float)
    except Exception:  # a failed refit counts as failed, as bootMer does
        return None


@printed_by_presentation  # its printing: presentation.reprs
@dataclass
class BootstrapResult:
    """Parametric bootstrap replicates.

    Attributes
    ----------
    observed : pandas.Series
        The statistic on the fitted model.
    replicates : pandas.DataFrame
        One row per successful replicate.
    n_failed : int
        Replicates whose refit failed (left out).
    seed : int or None
    """

    observed: pd.Series
    replicates: pd.DataFrame
    n_failed: int = 0
    seed: object = None

    def confint(self, level: float = 0.95, type: str = "perc") -> pd.DataFrame:
        """Percentile (``"perc"``), basic or normal intervals, as ``boot.ci``."""
        a = (1.0 - level) / 2.0
        reps = self.replicates
        if type == "perc":
            lo, hi = reps.quantile(a), reps.quantile(1 - a)
        elif type == "basic":
            lo, hi = 2 * self.observed - reps.quantile(1 - a), 2 * self.observed - reps.quantile(a)
        elif type == "norm":
            z = stats.norm.ppf(1 - a)
            bias = reps.mean() - self.observed
            sd = reps.std(ddof=1)
            lo, hi = self.observed - bias - z * sd, self.observed - bias + z * sd
        else:
            raise ValueError(f"type must be 'perc', 'basic' or 'norm', got {type!r}")
        return pd.DataFrame({"lower": lo.to_numpy(), "upper": hi.to_numpy()}, index=reps.columns)

    @property
    def std_error(self) -> pd.Series:
        return self.replicates.std(ddof=1)

    def __repr__(self) -> str:
        return (f"BootstrapResult({len(self.replicates)} replicates, {self.n_failed} failed)\n"
                + pd.DataFrame({"original": self.observed, "bias": self.replicates.mean() - self.observed,
                                "std. error": self.std_error}).to_string())


def bootstrap(model, n: int = 500, seed=None, statistic: Callable | None = None,
              parallel: int | None = None, progress: bool | str = "auto") -> BootstrapResult:
    """Parametric bootstrap: simulate from the fitted model, refit, and collect a statistic.

    Parameters
    ----------
    model : fitted mixed model
    n : int
        Number of replicates.
    seed : int, numpy SeedSequence or None
        All responses are simulated up front from this seed, so the results do not depend on
        ``parallel``.
    statistic : callable, optional
        ``statistic(fitted_model) -> float, array or pandas.Series``; by default the sd/cor
        parameters, σ and the fixed effects (named as :func:`confint` rows).
    parallel : int, optional
        Worker processes (default 1: none). The statistic must then be picklable (a
        module-level function).
    progress : {"auto", True, False}, default "auto"
        A progress bar (tqdm): ``"auto"`` shows it when the output is interactive and the
        replicates will take more than about 2 s (:mod:`~mixedmodels.postestimation.progress`).

    Returns
    -------
    BootstrapResult
    """
    n = check_count("n", n)
    stat = statistic or default_statistic
    observed = stat(model)
    if isinstance(observed, pd.Series):
        names = list(observed.index)
    else:
        arr = np.atleast_1d(np.asarray(observed, dtype=float))
        names = [f"t{i + 1}" for i in range(arr.size)] if arr.size > 1 else ["t1"]
        observed = pd.Series(arr, index=names)
    ys = model.simulate(n=n, seed=seed)
    ys = ys.to_numpy() if isinstance(ys, pd.DataFrame) else np.asarray(ys)
    work = [(model, ys[:, i], stat) for i in range(n)]
    results = _map_with_progress(_boot_one, work, parallel, progress)
    ok = [r for r in results if r is not None and np.all(np.isfinite(r))]
    failed = n - len(ok)
    if failed:
        warnings.warn(f"{failed} of {n} bootstrap refits failed and were left out",
                      ConvergenceWarning, stacklevel=2)
    reps = pd.DataFrame(np.vstack(ok) if ok else np.empty((0, len(names))), columns=names)
    return BootstrapResult(observed=observed.astype(float), replicates=reps, n_failed=failed, seed=seed)


def _lrt_stat(small, large) -> float:
    return max(0.0, 2.0 * (large.loglik - small.loglik))


def bootstrap_lrt(small_model, large_model, n: int = 500, seed=None, parallel: int | None = None,
                  progress: bool | str = "auto") -> pd.DataFrame:
    """Parametric bootstrap likelihood-ratio test of a nested pair (pbkrtest's ``PBmodcomp``).

    Both models are compared by maximum likelihood (REML fits are refit). Responses are
    simulated from the small model; each is refit by both models. The p-value is
    ``(1 + #{LRT* > LRT}) / (1 + n)``. Near a variance boundary the χ² reference is
    conservative; this test is not.

    Parameters
    ----------
    small_model, large_model : fitted models, the first nested in the second
    n : int
    seed : int or None
    parallel : int, optional
    progress : {"auto", True, False}, default "auto"
        As :func:`bootstrap`.

    Returns
    -------
    pandas.DataFrame
        Rows ``LRT`` (χ² reference) and ``PBtest`` (bootstrap), columns ``stat, df, p.value``.
    """
    if small_model.npar > large_model.npar:
        small_model, large_model = large_model, small_model
    if small_model.nobs != large_model.nobs:
        raise ValueError("the two models must be fit to the same data (their numbers of "
                         f"observations differ: {small_model.nobs} and {large_model.nobs})")
    s_ml, l_ml = small_model.refit_ml(), large_model.refit_ml()
    obs = _lrt_stat(s_ml, l_ml)
    df = l_ml.npar - s_ml.npar

    ys = s_ml.simulate(n=n, seed=seed)
    ys = ys.to_numpy() if isinstance(ys, pd.DataFrame) else np.asarray(ys)
    work = [((s_ml, l_ml), ys[:, i]) for i in range(n)]
    ref = _map_with_progress(_lrt_one, work, parallel, progress, desc="bootstrap LRT")
    ref = np.array([r for r in ref if r is not None and np.isfinite(r)])
    n_ok = len(ref)
    if n_ok < n:
        warnings.warn(f"{n - n_ok} of {n} bootstrap refits failed and were left out",
                      ConvergenceWarning, stacklevel=2)
    p_boot = (1.0 + np.sum(ref > obs)) / (1.0 + n_ok)
    table = pd.DataFrame({"stat": [obs, obs], "df": [float(df), np.nan],
                          "p.value": [float(stats.chi2.sf(obs, df)) if df > 0 else np.nan, p_boot]},
                         index=["LRT", "PBtest"])
    table.attrs["n_sim"] = n_ok
    table.attrs["reference"] = ref
    return table


def _map_with_progress(func, work: list, parallel: int | None, progress: bool | str,
                       desc: str = "bootstrap") -> list:
    """``[func(item) for item in work]``, in worker processes when ``parallel`` > 1, with a
    progress bar. Each item carries its own simulated response, so results do not depend on
    the number of workers."""
    bar = Progress(len(work), desc, progress)
    results: list = []
    workers = int(parallel or 1)
    try:
        if workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=workers) as pool:
                chunk = max(1, len(work) // (4 * workers))
                for res in pool.map(func, work, chunksize=chunk):
                    results.append(res)
                    bar.update()
        else:
            for item in work:
                results.append(func(item))
                bar.update()
    finally:
        bar.close()
    return results


def _lrt_one(args):
    (small, large), y = args
    try:
        return _lrt_stat(quiet_refit(small, y), quiet_refit(large, y))
    except Exception:
        return None
