"""Diagnostic plots for fitted mixed models. matplotlib is imported only when a plot is drawn.

Each function returns the matplotlib ``Figure`` so it can be saved or adjusted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..models.base import implements
from ..postestimation.ranef import ranef_table
from ..spec.formula import expression_names

__all__ = ["plot_ranef", "plot_residuals", "plot_trajectories"]


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # an optional extra
        raise ImportError("plots need matplotlib: pip install 'mixedmodels[plots]'") from err
    return plt


@implements("plot_ranef")
def plot_ranef(model, level: float = 0.95, group: str | None = None, sort: bool = True,
               figsize: tuple[float, float] | None = None):
    """Caterpillar plot: conditional modes with ``level`` intervals from the conditional SDs.

    Parameters
    ----------
    model : fitted mixed model
    level : float
        Interval coverage (normal, ± z·condsd).
    group : str, optional
        Only this grouping factor.
    sort : bool
        Sort levels by their conditional mode (per panel).
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
        One panel per (grouping factor, column).
    """
    from scipy import stats

    plt = _plt()
    table = ranef_table(model)
    if group is not None:
        if group not in set(table["grpvar"]):
            raise ValueError(f"group {group!r} is not a grouping factor of the model; they are "
                             f"{sorted(set(table['grpvar']))}")
        table = table[table["grpvar"] == group]
    panels = list(dict.fromkeys(zip(table["grpvar"], table["term"])))
    z = stats.norm.ppf(0.5 + level / 2.0)
    nmax = max(int(((table["grpvar"] == g) & (table["term"] == t)).sum()) for g, t in panels)
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=figsize or (3.5 * len(panels), max(3.0, 0.18 * nmax + 1)))
    for ax, (g, t) in zip(axes[0], panels):
        sub = table[(table["grpvar"] == g) & (table["term"] == t)]
        if sort:
            sub = sub.sort_values("condval")
        y = np.arange(len(sub))
        ax.errorbar(sub["condval"], y, xerr=z * sub["condsd"], fmt="o", ms=3, lw=1, capsize=0)
        ax.axvline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_yticks(y)
        ax.set_yticklabels(sub["grp"].astype(str), fontsize=7 if len(sub) > 30 else 9)
        ax.set_title(f"{g}: {t}")
        ax.set_xlabel("conditional mode")
    fig.tight_layout()
    return fig


@implements("plot_residuals")
def plot_residuals(model, figsize: tuple[float, float] = (12.0, 3.8)):
    """Residuals against fitted values, a normal QQ plot of the residuals, and normal QQ plots
    of the random effects (one line per grouping-factor column).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from scipy import stats

    plt = _plt()
    if model.family is None:
        resid = model.residuals(scaled=True)
        fitted = model.fitted()
        rlabel = "scaled residuals"
    else:
        resid = model.residuals(type="pearson")
        fitted = model.fitted(type="link")
        rlabel = "Pearson residuals"
    fig, axes = plt.subplots(1, 3, figsize=figsize)
    ax = axes[0]
    ax.scatter(fitted, resid, s=8, alpha=0.6)
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("fitted" if model.family is None else "linear predictor")
    ax.set_ylabel(rlabel)
    ax.set_title("Residuals vs fitted")
    ax = axes[1]
    osm, osr = stats.probplot(resid, dist="norm", fit=False)
    ax.scatter(osm, osr, s=8, alpha=0.6)
    lim = [np.min(osm), np.max(osm)]
    ax.plot(lim, lim, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("normal quantiles")
    ax.set_ylabel(rlabel)
    ax.set_title("QQ plot of residuals")
    ax = axes[2]
    for term, b, cov in zip(model.design.terms, model.random_effects(), model.term_covariances()):
        sd = np.sqrt(np.diag(cov))
        for j, col in enumerate(term.columns):
            vals = b[:, j] / sd[j] if sd[j] > 0 else b[:, j]
            osm, osr = stats.probplot(vals, dist="norm", fit=False)
            ax.plot(osm, osr, "o", ms=3, label=f"{term.name}: {col}")
    ax.axline((0, 0), slope=1, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("normal quantiles")
    ax.set_ylabel("standardized conditional modes")
    ax.set_title("QQ plot of random effects")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _default_x(model) -> str:
    """The first numeric predictor in a random-effects slope, else in the fixed effects."""
    frame = model.design.frame
    names = []
    for term in model.design.terms:
        names += expression_names(term.lhs)
    names += expression_names(model.design.formula.fixed)
    for name in names:
        if name in frame.columns and pd.api.types.is_numeric_dtype(frame[name]):
            return name
    raise NotImplementedError("plot_trajectories draws each group's fitted curve over a numeric "
                              "predictor (time, dose, ...); this model has none. Pass x='column' "
                              "naming a numeric column of the data, or use plot_ranef()")


@implements("plot_trajectories")
def plot_trajectories(model, x: str | None = None, group: str | None = None,
                      max_groups: int | None = 30, ncols: int | None = None,
                      figsize: tuple[float, float] | None = None):
    """Fitted trajectories per group over the raw data (a spaghetti plot).

    Parameters
    ----------
    model : fitted mixed model
    x : str, optional
        Column for the x axis (default: the first numeric random slope or fixed predictor).
    group : str, optional
        Grouping factor (default: that of the first random-effects term).
    max_groups : int or None
        Draw at most this many groups (the first ones in level order); None for all.
    ncols : int, optional
        With it, one small panel per group in a grid of this many columns; without it all
        groups share one panel.
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    frame = model.design.frame
    x = x or _default_x(model)
    group = group or model.design.terms[0].group
    for name, what in ((x, "x"), *[(p.strip(), "group") for p in group.split(":")]):
        if name not in frame.columns:
            raise ValueError(f"{what} column {name!r} is not among the model's variables "
                             f"{list(frame.columns)}")
    y = model.design.y
    fitted = model.fitted() if model.family is None else model.fitted(type="response")
    parts = [p.strip() for p in group.split(":")]
    labels = frame[parts].astype(str).agg(":".join, axis=1).to_numpy()
    levels = list(dict.fromkeys(pd.Series(labels).sort_values(kind="stable")))
    if max_groups is not None:
        levels = levels[:max_groups]
    xv = frame[x].to_numpy(dtype=float)
    if ncols:
        nrows = int(np.ceil(len(levels) / ncols))
        fig, axes = plt.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True,
                                 figsize=figsize or (2.2 * ncols, 1.9 * nrows))
        flat = axes.ravel()
        for ax in flat[len(levels):]:
            ax.set_visible(False)
    else:
        fig, ax = plt.subplots(figsize=figsize or (7.0, 4.5))
        flat = [ax] * len(levels)
    cmap = plt.get_cmap("tab20")
    for k, (lev, ax) in enumerate(zip(levels, flat)):
        rows = np.flatnonzero(labels == lev)
        order = rows[np.argsort(xv[rows], kind="stable")]
        color = cmap(k % 20)
        ax.plot(xv[order], y[order], "o", ms=3, color=color, alpha=0.6)
        ax.plot(xv[order], fitted[order], "-", lw=1.2, color=color)
        if ncols:
            ax.set_title(str(lev), fontsize=8)
    axis = flat[0] if not ncols else fig
    if ncols:
        fig.supxlabel(x)
        fig.supylabel(model.design.response_name)
    else:
        axis.set_xlabel(x)
        axis.set_ylabel(model.design.response_name)
        axis.set_title(f"Fitted trajectories by {group}")
    fig.tight_layout()
    return fig
