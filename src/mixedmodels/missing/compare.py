""":func:`compare_missing`: complete-case, one-off imputation and multiple imputation side by side."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..exceptions import MissingDataWarning
from ..models.lmm import LinearMixedModel
from ..spec.design import build_design
from .fits import fit_imputations
from .impute import impute
from .report import formula_roles

__all__ = ["compare_missing", "MissingComparison"]

_LABELS = {"complete": "complete-case", "forest": "one-off imputation (forest)", "pan": "MI (pan)",
           "fcs": "MI (fcs)"}


def _lmer(formula: str, data: pd.DataFrame, reml: bool = True):
    return LinearMixedModel(build_design(formula, data), reml=reml).fit()


def default_imputation_formula(formula: str, data: pd.DataFrame) -> str:
    """The joint imputation model for an analysis formula: its incomplete variables on the left, its
    complete ones on the right, a random intercept for its (first) grouping factor."""
    lhs, preds, groups = formula_roles(formula, data)
    cols = lhs + preds
    incomplete = [c for c in cols if data[c].isna().any()]
    complete = [c for c in cols if c not in incomplete and pd.api.types.is_numeric_dtype(data[c])]
    if not incomplete:
        raise ValueError("the formula's variables have no missing values: there is nothing to impute")
    if not groups:
        raise ValueError("the formula has no grouping factor for the two-level imputation model")
    return f"{' + '.join(incomplete)} ~ {' + '.join(complete) or '1'} + (1 | {groups[0]})"


@dataclass
class MissingComparison:
    """The fits of one model under each way of handling the missing values.

    Attributes
    ----------
    table : pandas.DataFrame
        Rows: the fixed effects, the variance components (``var: ...``) and ``nobs``; columns
        (method, ``Estimate``/``SE``).
    fits : dict
        Per method, the fitted model (or the pooled :class:`~mixedmodels.missing.fits.MIFits`).
    """

    table: pd.DataFrame
    fits: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        """The table and what changed, in the chapter's terms."""
        return "\n".join([self.table.to_string(float_format=lambda x: f"{x:.4g}"), "", *self.notes])

    def __repr__(self) -> str:
        return self.summary()

    def plot(self, ax=None):
        """The fixed effects ± 1.96 SE per method, one row per coefficient (matplotlib)."""
        import matplotlib.pyplot as plt

        names = [r for r in self.table.index if not r.startswith("var: ") and r != "nobs"]
        methods = list(dict.fromkeys(self.table.columns.get_level_values(0)))
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 1 + 0.6 * len(names) * len(methods) / 2))
        for k, meth in enumerate(methods):
            est = self.table.loc[names, (meth, "Estimate")].to_numpy(float)
            se = self.table.loc[names, (meth, "SE")].to_numpy(float)
            ref = self.table.loc[names, (methods[0], "SE")].to_numpy(float)
            y = np.arange(len(names)) + 0.15 * (k - (len(methods) - 1) / 2)
            # on the complete-case SE scale, so that coefficients of any size share one axis
            base = self.table.loc[names, (methods[0], "Estimate")].to_numpy(float)
            ax.errorbar((est - base) / ref, y, xerr=1.96 * se / ref, fmt="o", label=_LABELS.get(meth, meth))
        ax.set_yticks(np.arange(len(names)), names)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel(f"difference from {_LABELS.get(methods[0], methods[0])} (its SEs); bars: 95% intervals")
        ax.legend(fontsize=8)
        return ax


def compare_missing(formula: str, data: pd.DataFrame, methods=("complete", "forest", "pan"), *, m: int = 20,
                    seed=None, impute_formula: str | None = None, reml: bool = True, **impute_options
                    ) -> MissingComparison:
    """Fit one linear mixed model by complete cases, after a one-off imputation, and with multiple imputation.

    Parameters
    ----------
    formula : str
        The analysis model (lme4 syntax).
    data : pandas.DataFrame
    methods : sequence of {"complete", "forest", "pan", "fcs"}
    m : int, default 20
        Imputations for pan and fcs.
    seed : int, optional
    impute_formula : str, optional
        The imputation model of pan/fcs; by default the formula's incomplete variables on the complete
        ones with a random intercept (:func:`default_imputation_formula`).
    reml : bool, default True
    **impute_options
        Passed to :func:`~mixedmodels.missing.impute.impute` (``n_burn``, ``n_iter``, ``maxit``,
        ``n_estimators``...).

    Returns
    -------
    MissingComparison
        ``.table``, ``.summary()`` (with sentences such as "one-off imputation (forest) moved SES by 0.4
        SE of the complete-case fit and shrank its SE by 12%"), ``.plot()``.
    """
    methods = list(methods)
    bad = [x for x in methods if x not in _LABELS]
    if bad or not methods:
        raise ValueError(f"methods must be among {', '.join(map(repr, _LABELS))}, got {methods!r}")
    lhs, preds, groups = formula_roles(formula, data)
    rng = np.random.default_rng(seed)
    fits: dict = {}
    cols = {}
    for meth in methods:
        if meth == "complete":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MissingDataWarning)
                fit = _lmer(formula, data, reml)
            tab, vc, nobs = fit.coef_table(), fit.varcorr, fit.nobs
            est, se = tab["Estimate"], tab["Std. Error"]
        elif meth == "forest":
            opts = {k: v for k, v in impute_options.items() if k in ("n_estimators", "max_iter", "max_features",
                                                                        "min_samples_leaf", "n_jobs")}
            done = impute(data, formula, method="forest", seed=rng, **opts)
            fit = _lmer(formula, done, reml)
            tab, vc, nobs = fit.coef_table(), fit.varcorr, fit.nobs
            est, se = tab["Estimate"], tab["Std. Error"]
        else:
            opts = {k: v for k, v in impute_options.items() if k in ("n_burn", "n_iter", "maxit")}
            imps = impute(data, impute_formula or default_imputation_formula(formula, data), method=meth, m=m,
                          seed=rng, **opts)
            fit = fit_imputations(lambda f, d, **kw: _lmer(f, d, reml), formula, imps)
            tab, vc, nobs = fit.coef_table(), fit.varcorr, fit.nobs
            est, se = tab["Estimate"], tab["Std. Error"]
        fits[meth] = fit
        names = [f"var: {g} {v1}" if v2 is None or (isinstance(v2, float) and np.isnan(v2)) else
                 f"cov: {g} {v1},{v2}" for g, v1, v2 in zip(vc["group"], vc["var1"].fillna(""), vc["var2"])]
        est = pd.concat([est, pd.Series(vc["vcov"].to_numpy(), index=names), pd.Series({"nobs": float(nobs)})])
        se = se.reindex(est.index)
        cols[(meth, "Estimate")] = est
        cols[(meth, "SE")] = se
    table = pd.DataFrame(cols)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    notes = _notes(table, methods)
    return MissingComparison(table=table, fits=fits, notes=notes)


def _notes(table: pd.DataFrame, methods: list[str]) -> list[str]:
    base = methods[0]
    fixed = [r for r in table.index if not r.startswith(("var: ", "cov: ")) and r not in ("nobs", "(Intercept)")]
    notes = []
    n0 = table.loc["nobs", (base, "Estimate")]
    for meth in methods[1:]:
        n1 = table.loc["nobs", (meth, "Estimate")]
        parts = []
        for name in fixed:
            e0, s0 = table.loc[name, (base, "Estimate")], table.loc[name, (base, "SE")]
            e1, s1 = table.loc[name, (meth, "Estimate")], table.loc[name, (meth, "SE")]
            change = 100 * (s1 / s0 - 1)
            verb = "widened" if change >= 0 else "shrank"
            parts.append(f"moved {name} by {(e1 - e0) / s0:+.2f} SE and {verb} its SE by {abs(change):.0f}%")
        notes.append(f"{_LABELS[meth]} (nobs {n1:.0f} vs {n0:.0f}) " + "; ".join(parts)
                     + f", relative to {_LABELS[base]}.")
    if "forest" in methods:
        for meth in [x for x in methods if x in ("pan", "fcs")]:
            parts = [f"{100 * (table.loc[n, (meth, 'SE')] / table.loc[n, ('forest', 'SE')] - 1):+.0f}% on {n}"
                     for n in fixed]
            notes.append(f"{_LABELS[meth]} changed the SEs of the one-off imputation by " + ", ".join(parts) + ".")
    if "forest" in methods and any(x in methods for x in ("pan", "fcs")):
        notes.append("A one-off imputation treats imputed values as observed, so its SEs are too small; "
                     "multiple imputation adds the between-imputation variance (RIV, FMI in the MI fit's "
                     "coef_table()).")
    return notes
