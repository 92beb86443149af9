"""Diagnostic plots for fitted mixed models. matplotlib is imported only when a plot is drawn.

Each function returns the matplotlib ``Figure`` and takes ``ax=``: an Axes (or, for plots of
several panels, a sequence of one Axes per panel) to draw into instead of a new figure.
Effect, profile, all_fit and simulated-residual plots are in :mod:`.plots_more`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..models.base import implements
from ..postestimation.ranef import ranef_table
from ..spec.formula import expression_names

__all__ = ["plot_ranef", "plot_residuals", "plot_trajectories", "plot_ranef_qq", "plot_forest",
           "plot_residuals_by_group", "level_order", "axes_for", "response_label"]

#: tallest figure a plot makes by itself (inches); more levels thin their labels instead
MAX_HEIGHT = 10.0
#: most tick labels on one axis
MAX_LABELS = 45


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # an optional extra
        raise ImportError("plots need matplotlib: pip install 'mixedmodels[plots]'") from err
    return plt


def axes_for(ax, n: int, figsize: tuple[float, float], ncols: int | None = None, **kwargs):
    """(figure, list of n Axes): new ones, or those the caller passed as ``ax``."""
    if ax is None:
        plt = _plt()
        ncols = ncols or n
        nrows = int(np.ceil(n / ncols))
        fig, axes = plt.subplots(nrows, ncols, squeeze=False, figsize=figsize, **kwargs)
        flat = list(axes.ravel())
        for extra in flat[n:]:
            extra.set_visible(False)
        return fig, flat[:n]
    axes = [ax] if hasattr(ax, "plot") else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) != n:
        raise ValueError(f"this plot draws {n} panel(s); ax= has {len(axes)} Axes")
    return axes[0].figure, axes


def _finish(fig, own: bool):
    if own:
        fig.tight_layout()
    return fig


def response_label(model) -> str:
    """The response's name for an axis: ``cbind(k, n - k)`` reads as ``k (proportion)``."""
    name = model.design.response_name or "response"
    if name.startswith("cbind(") and "," in name:
        return name[len("cbind("):].split(",")[0].strip() + " (proportion)"
    return name


def _is_integer_like(values) -> bool:
    try:
        arr = np.asarray([float(v) for v in values])
    except (TypeError, ValueError):
        return False
    return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))


def level_order(labels) -> list:
    """Distinct labels in R's order: numerically when they all look like integers (herd 1..15,
    not 1, 10, 11, ...), else as strings."""
    uniq = list(dict.fromkeys(labels))
    if _is_integer_like(uniq):
        return sorted(uniq, key=lambda v: float(v))
    return sorted(uniq, key=str)


def _thin_labels(ax, positions: np.ndarray, labels: list[str], axis: str = "y") -> None:
    n = len(labels)
    step = max(1, int(np.ceil(n / MAX_LABELS)))
    keep = np.arange(0, n, step)
    size = 9 if n <= 25 else 7 if step == 1 else 6
    if axis == "y":
        ax.set_yticks(positions[keep])
        ax.set_yticklabels([labels[i] for i in keep], fontsize=size)
    else:
        ax.set_xticks(positions[keep])
        ax.set_xticklabels([labels[i] for i in keep], fontsize=size, rotation=90 if n > 12 else 0)
    if step > 1:
        ax.annotate(f"every {step}th of {n} labels shown", xy=(1.0, 1.0), xycoords="axes fraction",
                    ha="right", va="bottom", fontsize=6, color="grey")


@implements("plot_ranef")
def plot_ranef(model, level: float = 0.95, group: str | None = None, sort: bool = True,
               figsize: tuple[float, float] | None = None, ax=None):
    """Caterpillar plot: conditional modes with ``level`` intervals from the conditional SDs.

    As lattice's ``dotplot(ranef(m, condVar = TRUE))``: the levels of a grouping factor keep
    one order in all its panels (by the first column's conditional mode when ``sort``). The
    figure's height is capped and, past about 45 levels, only every k-th label is written.
    Works for LMMs and GLMMs (modes on the link scale).

    Parameters
    ----------
    model : fitted mixed model
    level : float
        Interval coverage (normal, ± z·condsd).
    group : str, optional
        Only this grouping factor.
    sort : bool
        Order levels by the conditional mode of the factor's first column.
    figsize : tuple, optional
    ax : Axes or sequence of Axes, optional
        One per panel.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per (grouping factor, column).
    """
    from scipy import stats

    table = ranef_table(model)
    if group is not None:
        if group not in set(table["grpvar"]):
            raise ValueError(f"group {group!r} is not a grouping factor of the model; they are "
                             f"{sorted(set(table['grpvar']))}")
        table = table[table["grpvar"] == group]
    panels = list(dict.fromkeys(zip(table["grpvar"], table["term"])))
    z = stats.norm.ppf(0.5 + level / 2.0)
    nmax = max(int(((table["grpvar"] == g) & (table["term"] == t)).sum()) for g, t in panels)
    height = min(MAX_HEIGHT, max(3.0, 0.16 * nmax + 1.2))
    fig, axes = axes_for(ax, len(panels), figsize or (3.5 * len(panels), height))
    # one order per grouping factor: that of its first panel (lattice's dotplot)
    orders: dict[str, list] = {}
    for g in dict.fromkeys(table["grpvar"]):
        first = table[(table["grpvar"] == g) & (table["term"] == next(t for gg, t in panels if gg == g))]
        labels = first["grp"].astype(str).tolist()
        orders[g] = (first.sort_values("condval", kind="stable")["grp"].astype(str).tolist() if sort
                     else level_order(labels))
    for a, (g, t) in zip(axes, panels):
        sub = table[(table["grpvar"] == g) & (table["term"] == t)].copy()
        sub["grp"] = sub["grp"].astype(str)
        sub = sub.set_index("grp").loc[orders[g]]
        y = np.arange(len(sub))
        many = len(sub) > 60
        a.errorbar(sub["condval"], y, xerr=z * sub["condsd"], fmt="o", ms=1.5 if many else 3,
                   lw=0.5 if many else 1, capsize=0, color="C0", ecolor="C0" if not many else "0.55")
        a.axvline(0.0, color="grey", lw=0.8, ls="--")
        _thin_labels(a, y, list(sub.index))
        a.set_ylim(-1, len(sub))
        a.set_title(f"{g}: {t}", fontsize=10)
        a.set_xlabel(f"conditional mode ± {100 * level:g}% interval", fontsize=9)
    return _finish(fig, ax is None)


@implements("plot_residuals")
def plot_residuals(model, figsize: tuple[float, float] = (12.0, 3.8), ax=None):
    """Residuals against fitted values, a normal QQ plot of the residuals, and normal QQ plots
    of the random effects (one line per grouping-factor column).

    For GLMMs the residuals are Pearson residuals against the linear predictor; for binary
    data prefer :func:`mixedmodels.simulate_residuals` and its plot.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from scipy import stats

    if model.family.linear:
        resid = model.residuals(scaled=True)
        fitted = model.fitted()
        rlabel = "scaled residuals"
    else:
        resid = model.residuals(type="pearson")
        fitted = model.fitted(type="link")
        rlabel = "Pearson residuals"
    fig, axes = axes_for(ax, 3, figsize)
    a = axes[0]
    a.scatter(fitted, resid, s=8, alpha=0.6)
    a.axhline(0.0, color="grey", lw=0.8, ls="--")
    a.set_xlabel("fitted" if model.family.linear else "linear predictor")
    a.set_ylabel(rlabel)
    a.set_title("Residuals vs fitted")
    a = axes[1]
    osm, osr = stats.probplot(resid, dist="norm", fit=False)
    a.scatter(osm, osr, s=8, alpha=0.6)
    lim = [np.min(osm), np.max(osm)]
    a.plot(lim, lim, color="grey", lw=0.8, ls="--")
    a.set_xlabel("normal quantiles")
    a.set_ylabel(rlabel)
    a.set_title("QQ plot of residuals")
    a = axes[2]
    for term, b, cov in zip(model.design.terms, model.random_effects(), model.term_covariances()):
        sd = np.sqrt(np.diag(cov))
        for j, col in enumerate(term.columns):
            vals = b[:, j] / sd[j] if sd[j] > 0 else b[:, j]
            osm, osr = stats.probplot(vals, dist="norm", fit=False)
            a.plot(osm, osr, "o", ms=3, label=f"{term.group}: {col}")
    a.axline((0, 0), slope=1, color="grey", lw=0.8, ls="--")
    a.set_xlabel("normal quantiles")
    a.set_ylabel("standardized conditional modes")
    a.set_title("QQ plot of random effects")
    a.legend(fontsize=7)
    return _finish(fig, ax is None)


@implements("plot_ranef_qq")
def plot_ranef_qq(model, level: float = 0.95, group: str | None = None,
                  figsize: tuple[float, float] | None = None, ax=None):
    """Normal QQ plot of the standardized conditional modes with pointwise ``level`` bands.

    Each column of each random-effects term is standardized by its estimated SD; under the
    model the sorted values are normal order statistics, whose pointwise bands come from the
    Beta(i, n − i + 1) distribution of the i-th of n uniform order statistics (exact, no
    simulation). Conditional modes are shrunken, so points inside the bands but flatter than
    the line are expected; points outside say that the normal assumption fails.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per grouping factor and column.
    """
    from scipy import stats

    panels = []
    for term, b, cov in zip(model.design.terms, model.random_effects(), model.term_covariances()):
        if group is not None and term.group != group:
            continue
        sd = np.sqrt(np.diag(cov))
        for j, col in enumerate(term.columns):
            panels.append((term.group, col, b[:, j] / sd[j] if sd[j] > 0 else b[:, j]))
    if not panels:
        raise ValueError(f"group {group!r} is not a grouping factor of the model; they are "
                         f"{[t.group for t in model.design.terms]}")
    fig, axes = axes_for(ax, len(panels), figsize or (3.6 * len(panels), 3.6))
    a_lo, a_hi = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    for a, (g, col, vals) in zip(axes, panels):
        n = len(vals)
        i = np.arange(1, n + 1)
        theo = stats.norm.ppf((i - 0.5) / n)
        lo = stats.norm.ppf(stats.beta.ppf(a_lo, i, n - i + 1))
        hi = stats.norm.ppf(stats.beta.ppf(a_hi, i, n - i + 1))
        a.fill_between(theo, lo, hi, color="0.85", label=f"{100 * level:g}% band")
        a.plot(theo, np.sort(vals), "o", ms=3, color="C0")
        a.axline((0, 0), slope=1, color="grey", lw=0.8, ls="--")
        a.set_title(f"{g}: {col}", fontsize=10)
        a.set_xlabel("normal quantiles")
        a.set_ylabel("standardized conditional modes")
        a.legend(fontsize=7, loc="upper left")
    return _finish(fig, ax is None)


@implements("plot_forest")
def plot_forest(model, level: float = 0.95, ddf: str | None = None, intercept: bool = False,
                terms: Sequence[str] | None = None, figsize: tuple[float, float] | None = None, ax=None):
    """Forest plot of the fixed effects: estimates with ``level`` Wald intervals.

    Parameters
    ----------
    model : fitted mixed model
    level : float
    ddf : {None, "satterthwaite", "kenward-roger"}
        With a method (LMMs), t intervals with its df (and Kenward-Roger's adjusted SEs);
        default normal intervals.
    intercept : bool
        Include ``(Intercept)``.
    terms : list of str, optional
        Only these fixed effects (in this order).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from scipy import stats

    table = model.coef_table(ddf=ddf)
    if terms is not None:
        unknown = [t for t in terms if t not in table.index]
        if unknown:
            raise ValueError(f"terms {unknown} are not fixed effects; they are {list(table.index)}")
        table = table.loc[list(terms)]
    elif not intercept:
        table = table.drop(index=[i for i in table.index if i == "(Intercept)"])
    if table.empty:
        raise ValueError("no fixed effects to draw (pass intercept=True for an intercept-only model)")
    est = table["Estimate"].to_numpy()
    se = table["Std. Error"].to_numpy()
    if "df" in table.columns:
        q = stats.t.ppf(0.5 + level / 2.0, table["df"].to_numpy())
        kind = f"t ({ddf})"
    else:
        q = np.full(len(est), stats.norm.ppf(0.5 + level / 2.0))
        kind = "Wald"
    fig, axes = axes_for(ax, 1, figsize or (6.0, min(MAX_HEIGHT, 0.35 * len(est) + 1.5)))
    a = axes[0]
    y = np.arange(len(est))[::-1]
    excludes = (est - q * se > 0) | (est + q * se < 0)
    colors = np.where(excludes, "C3", "C0")
    for yi, e, h, c in zip(y, est, q * se, colors):
        a.errorbar(e, yi, xerr=h, fmt="o", ms=4, capsize=2, color=c)
    a.axvline(0.0, color="grey", lw=0.8, ls="--")
    a.set_yticks(y)
    a.set_yticklabels(list(table.index), fontsize=9)
    a.set_xlabel(f"estimate ± {100 * level:g}% {kind} interval")
    a.set_title(f"Fixed effects: {model.design.formula.fixed}", fontsize=10)
    return _finish(fig, ax is None)


@implements("plot_residuals_by_group")
def plot_residuals_by_group(model, group: str | None = None, figsize: tuple[float, float] | None = None,
                            ax=None):
    """Box plots of the residuals per level of a grouping factor, ordered by their median
    (lme4's ``plot(m, group ~ resid(.))``): groups whose residuals sit away from zero, or
    spread more than the others, show up at the ends.

    Returns
    -------
    matplotlib.figure.Figure
    """
    group = group or model.design.terms[0].group
    frame = model.design.frame
    parts = [p.strip() for p in group.split(":")]
    missing = [p for p in parts if p not in frame.columns]
    if missing:
        raise ValueError(f"group column(s) {missing} are not among the model's variables {list(frame.columns)}")
    resid = model.residuals(scaled=True) if model.family.linear else model.residuals(type="pearson")
    labels = frame[parts].astype(str).agg(":".join, axis=1).to_numpy()
    levels = level_order(labels)
    data = [resid[labels == lev] for lev in levels]
    order = np.argsort([np.median(d) for d in data], kind="stable")
    n = len(levels)
    fig, axes = axes_for(ax, 1, figsize or (6.0, min(MAX_HEIGHT, max(3.0, 0.16 * n + 1.2))))
    a = axes[0]
    import matplotlib

    # matplotlib 3.10 renamed vert= to orientation=
    horizontal = {"orientation": "horizontal"} if tuple(int(v) for v in matplotlib.__version__.split(".")[:2]) \
        >= (3, 10) else {"vert": False}
    if n <= 60:
        a.boxplot([data[i] for i in order], widths=0.6, medianprops={"color": "C3"},
                  flierprops={"markersize": 2}, **horizontal)
    else:
        # too many groups for boxes: median with the interquartile range and the extremes
        q = np.array([np.percentile(data[i], [0, 25, 50, 75, 100]) for i in order])
        pos = np.arange(1, n + 1)
        a.hlines(pos, q[:, 0], q[:, 4], color="0.8", lw=0.5)
        a.hlines(pos, q[:, 1], q[:, 3], color="C0", lw=1.2)
        a.plot(q[:, 2], pos, "o", ms=1.5, color="C3")
        a.set_ylim(0, n + 1)
        a.annotate("median, IQR (blue) and range (grey)", xy=(0.0, 1.0), xycoords="axes fraction",
                   ha="left", va="bottom", fontsize=6, color="grey")
    a.axvline(0.0, color="grey", lw=0.8, ls="--")
    _thin_labels(a, np.arange(1, n + 1), [levels[i] for i in order])
    a.set_xlabel("scaled residuals" if model.family.linear else "Pearson residuals")
    a.set_ylabel(group)
    a.set_title(f"Residuals by {group}", fontsize=10)
    return _finish(fig, ax is None)


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


def _x_positions(col: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Numeric x as it is; a categorical x as positions 0..k-1 in its level order."""
    if pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype):
        return col.to_numpy(dtype=float), None
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = [str(c) for c in col.cat.categories]
    else:
        cats = [str(c) for c in level_order(col.dropna().astype(str))]
    pos = pd.Index(cats).get_indexer(col.astype(str))
    return pos.astype(float), cats


@implements("plot_trajectories")
def plot_trajectories(model, x: str | None = None, group: str | None = None,
                      max_groups: int | None = 30, ncols: int | None = None,
                      figsize: tuple[float, float] | None = None, ax=None):
    """Fitted trajectories per group over the raw data (a spaghetti plot).

    Parameters
    ----------
    model : fitted mixed model
    x : str, optional
        Column for the x axis (default: the first numeric random slope or fixed predictor). A
        categorical column is drawn at its categories, in level order.
    group : str, optional
        Grouping factor (default: that of the first random-effects term). Integer-like
        labels are ordered numerically.
    max_groups : int or None
        Draw at most this many groups (the first ones in level order); None for all. A subset
        says so in the title.
    ncols : int, optional
        With it, one small panel per group in a grid of this many columns; without it all
        groups share one panel.
    figsize : tuple, optional
    ax : Axes, optional
        For the single-panel form (no ``ncols``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    frame = model.design.frame
    x = x or _default_x(model)
    group = group or model.design.terms[0].group
    for name, what in ((x, "x"), *[(p.strip(), "group") for p in group.split(":")]):
        if name not in frame.columns:
            raise ValueError(f"{what} column {name!r} is not among the model's variables "
                             f"{list(frame.columns)}")
    if ncols and ax is not None:
        raise ValueError("ax= draws one panel; leave out ncols= (one panel per group) to use it")
    y = model.response
    fitted = model.fitted() if model.family.linear else model.fitted(type="response")
    parts = [p.strip() for p in group.split(":")]
    labels = frame[parts].astype(str).agg(":".join, axis=1).to_numpy()
    levels = level_order(labels)
    total = len(levels)
    if max_groups is not None:
        levels = levels[:max_groups]
    subset = f" (first {len(levels)} of {total})" if len(levels) < total else ""
    xv, cats = _x_positions(frame[x])
    if ncols:
        nrows = int(np.ceil(len(levels) / ncols))
        fig, flat = axes_for(None, len(levels), figsize or (2.2 * ncols, 1.9 * nrows), ncols=ncols,
                             sharex=True, sharey=True)
    else:
        fig, axes = axes_for(ax, 1, figsize or (7.0, 4.5))
        flat = axes * len(levels)
    plt = _plt()
    cmap = plt.get_cmap("tab20")
    for k, (lev, a) in enumerate(zip(levels, flat)):
        rows = np.flatnonzero(labels == lev)
        order = rows[np.argsort(xv[rows], kind="stable")]
        color = cmap(k % 20)
        a.plot(xv[order], y[order], "o", ms=3, color=color, alpha=0.6)
        a.plot(xv[order], fitted[order], "-", lw=1.2, color=color)
        if ncols:
            a.set_title(str(lev), fontsize=8)
    if cats is not None:
        for a in (flat if ncols else flat[:1]):
            a.set_xticks(np.arange(len(cats)))
            a.set_xticklabels(cats, rotation=45 if len(cats) > 6 else 0, fontsize=8)
    title = f"Fitted trajectories by {group}{subset}"
    if ncols:
        fig.supxlabel(x)
        fig.supylabel(response_label(model))
        fig.suptitle(title, fontsize=10)
    else:
        flat[0].set_xlabel(x)
        flat[0].set_ylabel(response_label(model))
        flat[0].set_title(title, fontsize=10)
    return _finish(fig, ax is None)
