"""More plots: predicted effects (as ggeffects), ζ profiles, all_fit comparisons and
DHARMa-style simulated residuals. Each returns the matplotlib ``Figure`` and takes ``ax=``."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..models.base import implements
from ..postestimation.emmeans import emmeans
from ..postestimation.profile_zeta import profile_zeta
from .plots import MAX_HEIGHT, axes_for, response_label

__all__ = ["plot_effects", "plot_profile", "plot_all_fit", "plot_simulated_residuals"]


def _finish(fig, own: bool):
    if own:
        fig.tight_layout()
    return fig


@implements("plot_effects")
def plot_effects(model, x: str, by: str | None = None, at: dict | None = None, type: str = "response",  # noqa: A002
                 level: float = 0.95, ddf: str | None = "asymptotic", n_points: int = 40,
                 show_data: bool = False, figsize: tuple[float, float] | None = None, ax=None):
    """Predicted effect of ``x`` with confidence bands (ggeffects' ``ggemmeans`` plot).

    The predictions are estimated marginal means (:func:`mixedmodels.emmeans`) over a grid of
    ``x`` (``n_points`` values over its range, or its levels), one line per level of ``by``;
    other numeric covariates sit at their means and other factors are averaged over with
    equal weights. Population-level (random effects at 0); for GLMMs on the response scale
    by default, with back-transformed bands.

    Parameters
    ----------
    model : fitted mixed model
    x : str
        A numeric or categorical predictor of the fixed effects.
    by : str, optional
        A factor: one line (or set of points) per level.
    at : dict, optional
        Values of other grid variables (as in :func:`mixedmodels.emmeans`).
    type : {"response", "link"}
    level : float
        Band coverage.
    ddf : {"asymptotic", "satterthwaite", "kenward-roger"}
        df of the bands for LMMs (normal by default, as ggeffects).
    n_points : int
    show_data : bool
        Also draw the observed responses.
    ax : Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    frame = model.design.frame
    if x not in frame.columns:
        raise ValueError(f"x {x!r} is not among the model's variables {list(frame.columns)}")
    col = frame[x]
    numeric = pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype)
    at = dict(at or {})
    if numeric and x not in at:
        at[x] = np.linspace(float(col.min()), float(col.max()), int(n_points))
    emm = emmeans(model, x, by=by, at=at, ddf=ddf if model.family.linear else None, type=type, level=level)
    table = emm.to_frame()
    value = table.columns[len(emm.specs) + len(emm.by)]
    fig, axes = axes_for(ax, 1, figsize or (6.5, 4.2))
    a = axes[0]
    groups = [(None, table)] if by is None else list(table.groupby(by, sort=False, observed=True))
    cats = None if numeric else [str(c) for c in emm.grid[x].cat.categories] \
        if isinstance(emm.grid[x].dtype, pd.CategoricalDtype) else list(dict.fromkeys(emm.grid[x].astype(str)))
    width = 0.6
    for k, (lev, sub) in enumerate(groups):
        color = f"C{k % 10}"
        label = None if lev is None else f"{by} = {lev}"
        if numeric:
            xs = sub[x].to_numpy(dtype=float)
            a.plot(xs, sub[value].to_numpy(dtype=float), "-", color=color, lw=1.6, label=label)
            a.fill_between(xs, sub["lower.CL"].to_numpy(dtype=float), sub["upper.CL"].to_numpy(dtype=float),
                           color=color, alpha=0.2, lw=0)
        else:
            shift = 0.0 if len(groups) == 1 else (k - (len(groups) - 1) / 2) * width / len(groups)
            xs = pd.Index(cats).get_indexer(sub[x].astype(str)) + shift
            est = sub[value].to_numpy(dtype=float)
            a.errorbar(xs, est, yerr=[est - sub["lower.CL"].to_numpy(dtype=float),
                                      sub["upper.CL"].to_numpy(dtype=float) - est],
                       fmt="o", color=color, capsize=3, label=label)
    if show_data:
        y = model.response
        xs = col.to_numpy(dtype=float) if numeric else pd.Index(cats).get_indexer(col.astype(str)).astype(float)
        if type == "link" and not model.family.linear:
            pass  # the data have no link-scale values to show
        else:
            a.scatter(xs, y, s=6, color="0.4", alpha=0.35, zorder=0)
    if not numeric:
        a.set_xticks(np.arange(len(cats)))
        a.set_xticklabels(cats)
    a.set_xlabel(x)
    resp = response_label(model)
    what = {"emmean": resp, "prob": "probability", "rate": "rate", "response": resp}[value]
    if type == "link" and not model.family.linear:
        what = f"{resp} ({model.family.link.name} scale)"
    a.set_ylabel(f"predicted {what}")
    a.set_title(f"Predicted {what} by {x}" + ("" if by is None else f" and {by}")
                + f", {100 * level:g}% CI", fontsize=10)
    if by is not None:
        a.legend(fontsize=8, title=None)
    return _finish(fig, ax is None)


@implements("plot_profile")
def plot_profile(model, which: Sequence[str] | None = None, level: float = 0.95, n_points: int = 11,
                 width: float = 3.0, figsize: tuple[float, float] | None = None, ax=None):
    """ζ profile plots of every parameter, as lme4's ``xyplot(profile(m))``: for LMMs the sds,
    correlations and σ too (GLMMs: the fixed effects).

    ζ against each parameter (solid) with the straight line of a quadratic likelihood
    (dashed, the Wald approximation) and the ``level`` cut-offs ±z: where the two part, the
    profile intervals differ from Wald's. See
    :func:`mixedmodels.postestimation.profile_zeta.profile_zeta` for the computation.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from scipy import stats

    table = profile_zeta(model, which=which, n_points=n_points, width=width)
    params = list(dict.fromkeys(table["parameter"]))
    ncols = min(len(params), 4)
    nrows = int(np.ceil(len(params) / ncols))
    fig, axes = axes_for(ax, len(params), figsize or (3.2 * ncols, 3.0 * nrows), ncols=ncols)
    z = stats.norm.ppf(0.5 + level / 2.0)
    for a, p in zip(axes, params):
        sub = table[table["parameter"] == p]
        a.plot(sub["value"], sub["zeta"], "-o", ms=2.5, color="C0", label="ζ (profile)")
        a.plot(sub["value"], sub["wald"], "--", color="grey", lw=0.8, label="Wald")
        for s in (-z, z):
            a.axhline(s, color="C3", lw=0.6, ls=":")
        a.set_title(p, fontsize=10)
        a.set_xlabel("value")
        a.set_ylabel("ζ")
    axes[0].legend(fontsize=7, loc="upper left")
    return _finish(fig, ax is None)


def plot_all_fit(result, figsize: tuple[float, float] | None = None, ax=None):
    """Plot of :func:`mixedmodels.all_fit`: each optimizer's log-likelihood short of the best
    fit, and each parameter's distance from the best fit (relative to its size).

    Parameters
    ----------
    result : AllFitResult
    ax : sequence of two Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fixed_cols = {"optimizer", "ok", "loglik", "seconds", "nevals", "singular", "messages"}
    if not isinstance(result, pd.DataFrame) or "optimizer" not in result.columns:
        raise TypeError("plot_all_fit draws the result of mm.all_fit(model)")
    table = result[np.isfinite(result["loglik"].to_numpy(dtype=float))]
    if table.empty:
        raise ValueError("no optimizer gave a fit to draw")
    params = [c for c in result.columns if c not in fixed_cols]
    best = table.loc[table["loglik"].idxmax()]
    names = list(table["optimizer"])
    fig, axes = axes_for(ax, 2, figsize or (10.0, min(MAX_HEIGHT, max(3.0, 0.3 * len(params) + 1.5))))
    a = axes[0]
    gap = np.maximum(best["loglik"] - table["loglik"].to_numpy(dtype=float), 1e-12)
    y = np.arange(len(names))[::-1]
    colors = ["C0" if ok else "C3" for ok in table["ok"]]
    a.scatter(gap, y, c=colors, s=25, zorder=3)
    a.set_xscale("log")
    a.set_yticks(y)
    a.set_yticklabels(names, fontsize=9)
    a.axvline(1e-3, color="grey", ls=":", lw=0.8)
    a.set_xlabel("log-likelihood below the best fit (log scale)")
    a.set_title("Log-likelihood (red: failed checks)", fontsize=10)
    a = axes[1]
    yp = np.arange(len(params))[::-1]
    for k, (_, row) in enumerate(table.iterrows()):
        vals = row[params].to_numpy(dtype=float)
        ref = best[params].to_numpy(dtype=float)
        rel = (vals - ref) / np.maximum(np.abs(ref), 1e-8)
        a.plot(rel, yp + (k - (len(names) - 1) / 2) * 0.08, "o", ms=4, color=f"C{k % 10}",
               label=row["optimizer"])
    a.axvline(0.0, color="grey", lw=0.8, ls="--")
    a.set_yticks(yp)
    a.set_yticklabels(params, fontsize=8)
    a.set_xlabel("relative difference from the best fit")
    a.set_title("Estimates", fontsize=10)
    a.legend(fontsize=7, loc="best")
    verdict = str(getattr(result, "verdict", ""))
    if verdict and ax is None:
        fig.suptitle(verdict if len(verdict) < 110 else verdict[:107] + "...", fontsize=9)
    return _finish(fig, ax is None)


@implements("plot_simulated_residuals")
def plot_simulated_residuals(sim, figsize: tuple[float, float] = (10.0, 4.2), ax=None):
    """DHARMa's residual plot: a uniform QQ plot of the scaled residuals with the
    uniformity, dispersion and outlier tests, and the scaled residuals against the
    rank-transformed fitted values with the 0.25, 0.5 and 0.75 lines and a running median.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = axes_for(ax, 2, figsize)
    u = np.sort(sim.scaled)
    n = len(u)
    expected = (np.arange(1, n + 1) - 0.5) / n
    a = axes[0]
    a.plot(expected, u, "o", ms=2.5, color="C0")
    a.plot([0, 1], [0, 1], color="C3", lw=1)
    ks, disp = sim.test_uniformity(), sim.test_dispersion()
    outliers = int(np.sum((sim.scaled == 0) | (sim.scaled == 1)))
    a.text(0.03, 0.97, f"KS test: p = {ks.p_value:.3g}\nDispersion test: p = {disp.p_value:.3g}\n"
                       f"Outliers (outside all simulations): {outliers}", transform=a.transAxes,
           va="top", fontsize=8, color="C3" if min(ks.p_value, disp.p_value) < 0.05 else "black")
    a.set_xlabel("expected")
    a.set_ylabel("observed (scaled residual)")
    a.set_title("QQ plot of scaled residuals", fontsize=10)
    a = axes[1]
    rank = pd.Series(sim.predicted).rank(method="average").to_numpy()
    rank = (rank - 1) / max(n - 1, 1)
    a.scatter(rank, sim.scaled, s=6, alpha=0.5, color="C0")
    for q in (0.25, 0.5, 0.75):
        a.axhline(q, color="grey", ls="--", lw=0.8)
    order = np.argsort(rank, kind="stable")
    k = max(5, n // 6)
    if n >= 2 * k:
        med = pd.Series(sim.scaled[order]).rolling(k, center=True).median().to_numpy()
        a.plot(rank[order], med, color="C3", lw=1.2, label="running median")
        a.legend(fontsize=7, loc="lower right")
    a.set_ylim(-0.02, 1.02)
    a.set_xlabel("model predictions (rank transformed)" + ("" if sim.use_u else ", population level"))
    a.set_ylabel("scaled residual")
    a.set_title("Scaled residuals vs predicted", fontsize=10)
    return _finish(fig, ax is None)
