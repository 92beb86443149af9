"""REML, ML, the penalized (blme) fit and the posterior side by side, for few clusters:
:func:`compare_small_sample`."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..exceptions import MixedModelsWarning
from .api import lmer
from .blme import bayes_fit, blmer

__all__ = ["compare_small_sample", "SmallSampleComparison"]

_METHODS = ("REML", "ML", "blme", "Bayes")


class SmallSampleComparison:
    """The comparison's tables (``fixed``, ``variance``: one row per parameter and method with
    ``estimate, lower, upper, interval``), the fits (``fits``), the ``verdict`` and a ``plot()``."""

    def __init__(self, fixed: pd.DataFrame, variance: pd.DataFrame, verdict: str, fits: dict, level: float):
        self.fixed, self.variance, self.verdict, self.fits, self.level = fixed, variance, verdict, fits, level

    def __repr__(self) -> str:
        fmt = {"estimate": "{:.4g}".format, "lower": "{:.4g}".format, "upper": "{:.4g}".format}
        return ("Fixed effects\n" + self.fixed.to_string(formatters=fmt) + "\n\nVariance components\n"
                + self.variance.to_string(formatters=fmt) + "\n\n" + self.verdict)

    def plot(self, parameters: list[str] | None = None):
        """Estimates and intervals per method, one panel per parameter; returns the figure."""
        import matplotlib.pyplot as plt

        table = pd.concat([self.variance, self.fixed])
        names = parameters or list(dict.fromkeys(table.index.get_level_values(0)))
        cols = min(3, len(names))
        rows = int(np.ceil(len(names) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.4 * rows), squeeze=False)
        for ax, name in zip(axes.ravel(), names):
            sub = table.loc[name]
            y = np.arange(len(sub))
            est = sub["estimate"].to_numpy(float)
            lo = sub["lower"].to_numpy(float)
            hi = sub["upper"].to_numpy(float)
            err = np.vstack([np.where(np.isfinite(lo), est - lo, 0), np.where(np.isfinite(hi), hi - est, 0)])
            ax.errorbar(est, y, xerr=np.maximum(err, 0), fmt="o", color="k", capsize=3)
            ax.set_yticks(y)
            ax.set_yticklabels(list(sub.index))
            ax.set_title(name, fontsize=9)
            ax.invert_yaxis()
        for ax in axes.ravel()[len(names):]:
            ax.set_visible(False)
        fig.suptitle(f"{int(self.level * 100)}% intervals: profile (REML), Wald at the mode (blme), "
                     "posterior (Bayes)", fontsize=9)
        fig.tight_layout()
        return fig


def _rows(table: pd.DataFrame, method: str, interval: str) -> list[tuple]:
    return [(name, method, float(r["estimate"]), float(r["lower"]), float(r["upper"]), interval)
            for name, r in table.iterrows()]


def compare_small_sample(formula: str, data: pd.DataFrame, *, level: float = 0.95, chains: int = 4,
                         draws: int = 1000, warmup: int = 1000, seed=None, cores: int | None = None,
                         bayes_priors: str = "default") -> SmallSampleComparison:
    """Fit a linear mixed model four ways and put the estimates and intervals side by side.

    * REML (``mm.lmer``): estimates with profile-likelihood intervals (as lme4's ``confint``);
    * ML: estimates with Wald intervals for the fixed effects;
    * blme (``mm.blmer``, its default Wishart prior, never singular): the mode with Wald intervals
      from the curvature of the penalized criterion (log-SD scale);
    * Bayes (``mm.bayes_fit``): posterior medians and central posterior intervals.

    Returns
    -------
    SmallSampleComparison
        ``fixed`` and ``variance`` tables, the ``verdict`` (a sentence about the group SD across
        the methods), ``fits`` and ``plot()``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reml = lmer(formula, data)
        ml = lmer(formula, data, reml=False)
        bl = blmer(formula, data)
        try:
            prof = reml.confint(method="profile", level=level)
        except (ValueError, np.linalg.LinAlgError, RuntimeError):
            prof = reml.confint(method="wald", level=level)
        ml_ci = ml.confint(method="wald", level=level)
        bl_ci = bl.confint(method="wald", level=level)
        post = bayes_fit(formula, data, chains=chains, draws=draws, warmup=warmup, seed=seed, cores=cores,
                         priors=bayes_priors)
    fixef_names = list(reml.fixef.index)
    param = reml.factor.parametrization
    terms = reml.design.terms
    var_names = param.sdcor_names([t.group for t in terms], [t.columns for t in terms]) + ["sigma"]

    def est_table(model, ci):
        sv = param.to_sdcor(model.theta, model.sigma)
        est = pd.Series(np.concatenate([sv, model.beta]), index=var_names + fixef_names)
        out = pd.DataFrame({"estimate": est, "lower": np.nan, "upper": np.nan})
        if ci is not None:
            common = [n for n in out.index if n in ci.index]
            out.loc[common, "lower"] = ci.loc[common, "lower"].to_numpy()
            out.loc[common, "upper"] = ci.loc[common, "upper"].to_numpy()
        return out

    a = (1 - level) / 2
    d = post.draws()
    bayes_tab = pd.DataFrame({"estimate": d[var_names + fixef_names].median(),
                              "lower": d[var_names + fixef_names].quantile(a),
                              "upper": d[var_names + fixef_names].quantile(1 - a)})
    rows = (_rows(est_table(reml, prof), "REML", "profile") + _rows(est_table(ml, ml_ci), "ML", "Wald")
            + _rows(est_table(bl, bl_ci), "blme", "Wald at the mode")
            + _rows(bayes_tab, "Bayes", "posterior (median)"))
    table = pd.DataFrame(rows, columns=["parameter", "method", "estimate", "lower", "upper", "interval"])
    table["method"] = pd.Categorical(table["method"], _METHODS, ordered=True)
    table = table.set_index(["parameter", "method"])
    order = {n: i for i, n in enumerate(var_names + fixef_names)}
    table = table.sort_index(level=[0, 1], key=lambda idx: idx.map(order) if idx.name == "parameter" else idx)
    fixed = table.loc[[n for n in fixef_names]]
    variance = table.loc[[n for n in var_names]]
    verdict = _verdict(reml, bl, post, var_names, prof, level)
    if reml.ngroups and min(reml.ngroups.values()) < 5:
        warnings.warn("fewer than 5 clusters: every method leans on its assumptions (the priors above all); "
                      "report the sensitivity to the prior", MixedModelsWarning, stacklevel=2)
    return SmallSampleComparison(fixed, variance, verdict,
                                 {"REML": reml, "ML": ml, "blme": bl, "Bayes": post}, level)


def _fmt(x: float) -> str:
    return f"{x:.2g}" if abs(x) < 1 else f"{x:.3g}"


def _term_sd(model, term) -> float:
    r = model.varcorr
    row = r[(r["group"] == term.name) & (r["var1"] == term.columns[0]) & r["var2"].isna()]
    return float(row["sdcor"].iloc[0])


def _verdict(reml, bl, post, var_names, prof, level) -> str:
    parts = []
    a = (1 - level) / 2
    d = post.draws()
    for term in reml.design.terms:
        name = f"sd_{term.columns[0]}|{term.group}"
        if name not in var_names:
            continue
        m = term.nlevels
        sd_reml = _term_sd(reml, term)
        sd_bl = _term_sd(bl, term)
        lo, hi = d[name].quantile(a), d[name].quantile(1 - a)
        if sd_reml < 1e-4 * max(reml.sigma, 1e-12) or reml.is_singular:
            head = (f"{m} clusters of {term.group}: REML puts the SD of {term.columns[0]} at {_fmt(sd_reml)} "
                    "(singular fit)")
        else:
            ci = prof.loc[name] if name in prof.index else None
            tail = (f" (profile {int(level * 100)}% CI [{_fmt(ci['lower'])}, {_fmt(ci['upper'])}])"
                    if ci is not None and np.isfinite(ci["lower"]) else "")
            head = (f"{m} clusters of {term.group}: REML estimates the SD of {term.columns[0]} at "
                    f"{_fmt(sd_reml)}{tail}")
        parts.append(f"{head}; the penalized fit gives {_fmt(sd_bl)}; the posterior {int(level * 100)}% "
                     f"interval is [{_fmt(lo)}, {_fmt(hi)}] (median {_fmt(d[name].median())}).")
        if m < 10:
            parts.append(f"With {m} clusters the REML SD is unreliable (often 0, intervals that reach 0): "
                         "prefer the penalized estimate or the posterior, and report both.")
    return " ".join(parts)
