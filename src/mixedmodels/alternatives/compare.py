"""The fixed effects under OLS, cluster-robust OLS, the within estimator, GEE and the LMM, side
by side, with what each estimates (the chapter's "alternatives" comparison)."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.lazy import lazy_import
from ..models.base import printed_by_presentation
from ..models.lmm import LinearMixedModel
from ..spec.design import build_design
from ..spec.formula import parse_formula
from .estimators import AlternativeResult, TextSummary, cluster_robust, fixed_effects, gee

stats = lazy_import("scipy.stats")

__all__ = ["compare_approaches", "ComparisonResult"]


@printed_by_presentation  # its printing: presentation.reprs
class ComparisonResult:
    """Fixed effects under several approaches, side by side (see :func:`compare_approaches`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per fixed effect; columns (approach, ``Estimate``/``Std. Error``).
    results : dict
        The fitted result of each approach.
    footnote : str
        What each approach estimates.
    """

    def __init__(self, results: dict, footnote: str, formula: str):
        self.results = results
        self.footnote = footnote
        self.formula = formula
        terms: list[str] = []
        for r in results.values():
            for t in _params_of(r).index:
                if t not in terms:
                    terms.append(t)
        blocks = {}
        for name, r in results.items():
            tab = _coef_table_of(r)
            blocks[name] = tab[["Estimate", "Std. Error"]].reindex(terms)
        self.table = pd.concat(blocks, axis=1)

    def coef_table(self) -> pd.DataFrame:
        """Long form: index (approach, term); columns ``Estimate``, ``Std. Error``, ``p.value``."""
        parts = []
        for name, r in self.results.items():
            tab = _coef_table_of(r)
            pcol = [c for c in tab.columns if c.startswith("Pr(")]
            p = tab[pcol[0]] if pcol else pd.Series(np.nan, index=tab.index)
            part = pd.DataFrame({"Estimate": tab["Estimate"], "Std. Error": tab["Std. Error"], "p.value": p})
            part.index = pd.MultiIndex.from_product([[name], tab.index], names=["approach", "term"])
            parts.append(part)
        return pd.concat(parts)

    def summary(self) -> TextSummary:
        """The side-by-side table and the footnote."""
        text = self.table.to_string(float_format=lambda v: f"{v:.5g}", na_rep="-")
        return TextSummary(f"Fixed effects of {self.formula} under different approaches\n\n{text}\n\n{self.footnote}")

    def __repr__(self) -> str:
        return str(self.summary())

    def plot(self, level: float = 0.95, terms: Sequence[str] | None = None, ax=None):
        """Estimates with ``level`` Wald intervals, one panel per term; each approach keeps
        one colour in every panel.

        Parameters
        ----------
        level : float
        terms : list of str, optional
        ax : sequence of Axes, optional
            One per term, to draw into instead of a new figure.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        terms = list(terms) if terms is not None else list(self.table.index)
        names = list(self.results)
        own = ax is None
        if own:
            fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 0.45 * len(names) + 1.6),
                                     sharey=True, squeeze=False)
        else:
            given = [ax] if hasattr(ax, "plot") else list(ax)
            if len(given) != len(terms):
                raise ValueError(f"this plot draws {len(terms)} panel(s); ax= has {len(given)} Axes")
            fig, axes = given[0].figure, [given]
        for ax_, term in zip(axes[0], terms):
            ax = ax_
            lo, hi = np.inf, -np.inf
            for pos, name in enumerate(names):
                est = self.table.loc[term, (name, "Estimate")]
                se = self.table.loc[term, (name, "Std. Error")]
                if not np.isfinite(est):
                    ax.text(0.02, pos, "not estimable", va="center", fontsize=8, color="grey",
                            transform=ax.get_yaxis_transform())
                    continue
                q = _quantile_of(self.results[name], level)
                ax.errorbar(est, pos, xerr=q * se, fmt="o", capsize=3, color=f"C{pos % 10}")
                lo, hi = min(lo, est - q * se), max(hi, est + q * se)
            ax.set_title(term)
            ax.set_xlabel(f"estimate ± {100 * level:g}% interval", fontsize=8)
            if lo <= 0.0 <= hi:  # a zero line only where it does not squash the intervals
                ax.axvline(0.0, color="grey", lw=0.5, ls=":")
        axes[0][0].set_yticks(range(len(names)))
        axes[0][0].set_yticklabels(names)
        for a in axes[0]:
            a.set_ylim(len(names) - 0.5, -0.5)   # first approach on top, in every panel
        if own:
            fig.suptitle(f"{self.formula}: estimates with {100 * level:g}% intervals", fontsize=10)
            fig.tight_layout()
        return fig


def _params_of(r) -> pd.Series:
    return r.fixef if hasattr(r, "fixef") else r.params


def _coef_table_of(r) -> pd.DataFrame:
    tab = r.coef_table()
    if not any(c.startswith("Pr(") for c in tab.columns):
        # lmer's table has no p-value: use the normal approximation to its t value.
        tcol = [c for c in tab.columns if c.endswith("value")]
        tv = tab[tcol[0]] if tcol else tab["Estimate"] / tab["Std. Error"]
        tab = tab.assign(**{"Pr(>|z|)": 2 * stats.norm.sf(np.abs(tv))})
    return tab


def _quantile_of(r, level: float) -> float:
    df = getattr(r, "df", None)
    if isinstance(df, (int, float)) and np.isfinite(df):
        return float(stats.t.ppf(0.5 + level / 2, df))
    return float(stats.norm.ppf(0.5 + level / 2))


def compare_approaches(formula: str, data: pd.DataFrame, *, cr_type: str = "CR2",
                       reml: bool = True) -> ComparisonResult:
    """Fit OLS, cluster-robust OLS, the within estimator, GEE (exchangeable) and the LMM; tabulate.

    Parameters
    ----------
    formula : str
        A mixed-model formula, e.g. ``"gpa ~ occasion + sex + (1 + occasion | student)"``. The
        fixed part is used by every approach; the grouping factor of the first random-effects
        term is the cluster (OLS CR SEs), the entity (within) and the group (GEE).
    data : pandas.DataFrame
    cr_type : str, default "CR2"
        Sandwich type of the cluster-robust OLS column.
    reml : bool, default True
        REML (True) or ML for the LMM.

    Returns
    -------
    ComparisonResult
        ``.table`` (estimates and SEs side by side), ``.plot()``, ``.footnote``.
    """
    parsed = parse_formula(formula)
    if not parsed.random:
        raise ValueError(f"{formula!r} has no random-effects term; compare_approaches needs one to define the clusters")
    if parsed.response is None:
        raise ValueError(f"formula {formula!r} needs a response")
    group = parsed.random[0].group
    fixed = f"{parsed.response} ~ {parsed.fixed}"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the within estimator's dropped terms go in the footnote
        robust = cluster_robust(fixed, data, cluster=group, type=cr_type)
        ols = AlternativeResult(robust.params, robust.vcov_classical, method=f"OLS: {fixed}",
                                nobs=robust.nobs, df=float(robust.nobs - len(robust.params)))
        within = fixed_effects(fixed, data, entity=group, cluster=group)
        gee_fit = gee(fixed, data, groups=group, cov_struct="exchangeable")
    lmm = LinearMixedModel(build_design(formula, data), reml=reml).fit()
    results = {
        "OLS": ols,
        f"OLS, cluster-robust ({robust.type})": robust,
        "Within (fixed effects)": within,
        "GEE (exchangeable)": gee_fit,
        "LMM": lmm,
    }
    not_within = [t for t in within.dropped if t != "(Intercept)"]
    footnote = "\n".join([
        "What each column estimates:",
        "- OLS, cluster-robust OLS and GEE: marginal (population-averaged) effects. OLS standard errors",
        f"  ignore the clustering by {group!r}; the cluster-robust and GEE (sandwich) ones allow for it.",
        f"- LMM: conditional (subject-specific) effects, given the random effects of {group!r}. With an identity",
        "  link and Gaussian errors the marginal and conditional fixed effects are the same quantity, so",
        "  differences between columns come from weighting and efficiency, not from different targets;",
        "  with logit or log links (GLMMs) the conditional effects are larger in magnitude than the marginal ones.",
        "  A large gap between the LMM and the marginal columns hints at misspecification (e.g. a cluster-level",
        "  term correlated with the random effects).",
        f"- Within: the effect of change within a {group!r} only (between-cluster variation removed, robust to",
        "  confounding by stable cluster characteristics). It cannot estimate the intercept or cluster-level",
        "  (time-invariant) terms" + (f": {', '.join(not_within)} (shown as missing)." if not_within else "."),
        "- p-values: t tests for OLS and within, t on G-1 df for cluster-robust OLS, Wald z for GEE,"
        " normal approximation for the LMM.",
    ])
    return ComparisonResult(results, footnote, formula)
