"""One fit per imputed data set, pooled: :class:`MIFits`, :func:`pool` and :func:`fit_imputations`."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable

import numpy as np
import pandas as pd

from ..core.lazy import lazy_import
from ..exceptions import MissingDataWarning
from ..postestimation.compare import register_anova
from ..spec.design import r_column_name
from .imputations import Imputations
from .pool import check_df_com, rubin
from .tests import d1, d2, d3, results_table

stats = lazy_import("scipy.stats")  # on first use: import mixedmodels stays fast

__all__ = ["MIFits", "pool", "fit_imputations", "mi_anova"]


def _model_signature(fit) -> tuple:
    terms = tuple((t.group, tuple(t.columns)) for t in fit.design.terms)
    return (type(fit).__name__, str(getattr(fit.family, "name", "")), tuple(fit.fixef.index), terms,
            bool(fit.reml), int(fit.nobs))


class MIFits:
    """A model fit to each of m imputed data sets, pooled by Rubin's rules (as mitml's ``testEstimates``).

    Made by :func:`pool` or by ``mm.lmer(formula, imputations)`` / ``mm.glmer``.

    Attributes
    ----------
    fits : list
        The m fitted models.
    df_com : float or None
        Complete-data degrees of freedom for Barnard & Rubin's df (None: the large-sample df).
    imputations : Imputations or None
    """

    def __init__(self, fits: list, df_com: float | None = None, imputations: Imputations | None = None):
        fits = list(fits)
        if len(fits) < 2:
            raise ValueError(f"pooling needs at least 2 fits (got {len(fits)})")
        for i, f in enumerate(fits):
            if not hasattr(f, "fixef") or not hasattr(f, "vcov"):
                raise TypeError(f"fit {i + 1} is a {type(f).__name__}, not a fitted mixed model")
        sig = _model_signature(fits[0])
        for i, f in enumerate(fits[1:], start=2):
            other = _model_signature(f)
            if other != sig:
                what = ["model class", "family", "fixed effects", "random effects", "REML/ML", "number of rows"]
                diff = [w for w, a, b in zip(what, sig, other) if a != b]
                raise ValueError(f"fit {i} is not the same model as fit 1 (they differ in {', '.join(diff)}): "
                                 "Rubin's rules pool one model fit to each imputed data set")
        self.fits = fits
        self.df_com = check_df_com(df_com)
        self.imputations = imputations

    # -- pooled quantities ------------------------------------------------------------------------
    @property
    def m(self) -> int:
        return len(self.fits)

    @property
    def reml(self) -> bool:
        return bool(self.fits[0].reml)

    @property
    def nobs(self) -> int:
        return int(self.fits[0].nobs)

    @property
    def fixef(self) -> pd.Series:
        """The pooled fixed effects (the mean over the fits)."""
        return self.coef_table()["Estimate"]

    def coef_table(self, df_com: float | None = None) -> pd.DataFrame:
        """The pooled fixed effects: Estimate, Std. Error, t value, df (Barnard–Rubin), Pr(>|t|), RIV, FMI.

        Parameters
        ----------
        df_com : float, optional
            Complete-data degrees of freedom (default: this object's ``df_com``); None gives the
            large-sample df ``(m - 1)(1 + 1/RIV)²``.
        """
        table, _ = self._pooled(self.df_com if df_com is None else df_com)
        return table

    def _pooled(self, df_com):
        q = np.array([f.fixef.to_numpy() for f in self.fits])
        u = np.array([f.vcov.to_numpy() for f in self.fits])
        return rubin(q, u, list(self.fits[0].fixef.index), df_com)

    @property
    def vcov(self) -> pd.DataFrame:
        """The total covariance matrix T of the pooled fixed effects."""
        _, total = self._pooled(self.df_com)
        names = list(self.fits[0].fixef.index)
        return pd.DataFrame(total, index=names, columns=names)

    @property
    def varcorr(self) -> pd.DataFrame:
        """Pooled variance components: variances and covariances averaged over the fits (as mitml's
        ``extra.pars``), standard deviations and correlations from the averages."""
        tables = [f.varcorr for f in self.fits]
        out = tables[0][["group", "var1", "var2"]].copy()
        out["vcov"] = np.mean([t["vcov"].to_numpy() for t in tables], axis=0)
        sd = {}
        for _, row in out.iterrows():
            if row["var2"] is None or (isinstance(row["var2"], float) and np.isnan(row["var2"])):
                sd[(row["group"], row["var1"])] = np.sqrt(row["vcov"])
        sdcor = []
        for _, row in out.iterrows():
            if row["var2"] is None or (isinstance(row["var2"], float) and np.isnan(row["var2"])):
                sdcor.append(np.sqrt(row["vcov"]))
            else:
                denom = sd[(row["group"], row["var1"])] * sd[(row["group"], row["var2"])]
                sdcor.append(row["vcov"] / denom if denom > 0 else np.nan)
        out["sdcor"] = sdcor
        return out

    def icc(self) -> float:
        """The pooled intraclass correlation (one random intercept and a residual): each fit's ICC
        averaged, as mitml's ``ICC``."""
        vals = []
        for f in self.fits:
            vc = f.varcorr
            if len(f.design.terms) != 1 or "Residual" not in set(vc["group"]):
                raise ValueError("icc() needs a model with one random-effects term and a residual variance")
            iv = vc[(vc["var1"] == "(Intercept)") & vc["var2"].isna() & (vc["group"] != "Residual")]["vcov"]
            if iv.empty:
                raise ValueError("icc() needs a random intercept")
            rv = float(vc[vc["group"] == "Residual"]["vcov"].iloc[0])
            vals.append(float(iv.iloc[0]) / (float(iv.iloc[0]) + rv))
        return float(np.mean(vals))

    def confint(self, level: float = 0.95, df_com: float | None = None) -> pd.DataFrame:
        """Pooled intervals for the fixed effects: estimate ± t(df)·SE, with the Barnard–Rubin df
        (mitml's ``confint``)."""
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1, got {level!r}")
        tab = self.coef_table(df_com)
        q = stats.t.ppf(0.5 + level / 2, tab["df"].to_numpy())
        half = q * tab["Std. Error"].to_numpy()
        lo, hi = f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"
        return pd.DataFrame({lo: tab["Estimate"] - half, hi: tab["Estimate"] + half}, index=tab.index)

    def predict(self, newdata: pd.DataFrame | None = None, **kwargs) -> np.ndarray:
        """Predictions averaged over the fits (each fit predicts from its own imputed data when
        ``newdata`` is None). Keywords go to each fit's ``predict``."""
        preds = [np.asarray(f.predict(newdata, **kwargs), dtype=float) for f in self.fits]
        return np.mean(preds, axis=0)

    def diagnostics(self) -> pd.DataFrame | None:
        """The imputation model's convergence diagnostics (R̂ per parameter or OOB errors), if known."""
        return None if self.imputations is None else self.imputations.diagnostics

    def summary(self, df_com: float | None = None) -> str:
        """A printable summary: the pooled coefficient table, pooled variance components and the
        imputation's diagnostics."""
        lines = [f"Multiple imputation: {type(self.fits[0]).__name__} fit to m = {self.m} imputed data sets, "
                 f"pooled by Rubin's rules"]
        if self.imputations is not None:
            lines.append(f"Imputation method: {self.imputations.method}")
        d = self.df_com if df_com is None else df_com
        lines.append("Degrees of freedom: " + (f"Barnard-Rubin with df_com = {d:g}" if d is not None
                                               else "large-sample (m - 1)(1 + 1/RIV)^2"))
        lines += [f"Number of obs: {self.nobs}", "", "Fixed effects:",
                  self.coef_table(df_com).to_string(float_format=lambda x: f"{x:.4g}"), "",
                  "Random effects (variances and covariances averaged):",
                  self.varcorr.to_string(index=False, float_format=lambda x: f"{x:.4g}")]
        diag = self.diagnostics()
        if diag is not None and len(diag):
            lines += ["", "Imputation diagnostics:", diag.to_string(float_format=lambda x: f"{x:.4g}")]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def pool(fits: list, df_com: float | None = None) -> MIFits:
    """Pool a list of fits of one model to m imputed data sets by Rubin's rules.

    Parameters
    ----------
    fits : list of fitted models
        One fit of the same model per imputed data set (at least two).
    df_com : float, optional
        Complete-data degrees of freedom for Barnard & Rubin's (1999) small-sample df, e.g.
        ``nobs - p``; without it the large-sample df.

    Returns
    -------
    MIFits
        ``.coef_table()``, ``.varcorr``, ``.confint()``, ``.predict()``, ``.summary()``;
        ``mm.anova(fits_a, fits_b, test="D1"|"D2"|"D3")`` tests them.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> d = mm.load_dataset("sleepstudy")
    >>> fits = [mm.lmer("Reaction ~ Days + (1 | Subject)", d.assign(Reaction=d.Reaction + k)) for k in (0, 1, 3)]
    >>> round(mm.pool(fits).coef_table().loc["(Intercept)", "Estimate"], 2)
    252.74
    """
    if isinstance(fits, MIFits):
        fits = fits.fits
    if not isinstance(fits, (list, tuple)):
        raise TypeError(f"pool needs a list of fitted models, got {type(fits).__name__}")
    return MIFits(fits, df_com=df_com)


def _stacked_designs(design0, frames: list[pd.DataFrame], changed: set[str]) -> list | None:
    """The first imputation's design re-evaluated on the other imputations' rows, all at once: one
    model-matrix evaluation over the stacked frames for the fixed part and for each random-effects term
    whose variables the imputations changed; the parsed formula, grouping codes and term structure are
    kept. None when the response is not a plain column or a value is not finite (then fit in full)."""
    spec = design0.formula
    if spec.response not in frames[0].columns:
        return None
    n = len(frames[0])
    long = pd.concat(frames, ignore_index=True)
    mat = design0.fixed_spec.get_model_matrix(long, na_action="ignore")
    names = [r_column_name(c) for c in mat.columns]
    try:
        idx = [names.index(nm) for nm in design0.fixef_names]
    except ValueError:
        return None
    X = np.asarray(mat, dtype=float)[:, idx]
    y = pd.to_numeric(long[spec.response], errors="coerce").to_numpy(dtype=float)
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        return None
    values = {}
    for t, term in enumerate(design0.terms):
        used = set(getattr(term.model_spec, "required_variables", set()) or set())
        if used & changed:
            values[t] = np.asarray(term.model_spec.get_model_matrix(long, na_action="ignore"), dtype=float)
    out = []
    for i, frame in enumerate(frames):
        sl = slice(i * n, (i + 1) * n)
        terms = [dataclasses.replace(term, matrix=dataclasses.replace(term.matrix, values=values[t][sl]))
                 if t in values else term for t, term in enumerate(design0.terms)]
        out.append(dataclasses.replace(design0, y=y[sl], X=X[sl], terms=terms, frame=frame))
    return out


def _check_levels(imputations: Imputations, cols: list[str]) -> None:
    """Categorical columns must have one set of levels in every imputed data set (else the fits differ
    in their fixed effects and cannot be pooled)."""
    for c in cols:
        first = set(imputations[0][c].dropna().unique())
        for k, d in enumerate(imputations.datasets[1:], start=2):
            other = set(d[c].dropna().unique())
            if other != first:
                new, gone = sorted(map(str, other - first)), sorted(map(str, first - other))
                raise ValueError(f"column {c!r} has other levels in imputed data set {k} than in data set 1 "
                                 f"(new: {new}, absent: {gone}): the fits would have different fixed effects. "
                                 "Impute categorical variables with their observed levels only, or merge rare levels")


def fit_imputations(fit_function: Callable, formula: str, imputations: Imputations, *,
                    df_com: float | None = None, **kwargs) -> MIFits:
    """Fit ``fit_function(formula, data, **kwargs)`` (``mm.lmer``/``mm.glmer``) to each imputed data set.

    The first data set is fit in full; the others reuse its parsed formula, grouping codes and
    random-effects structure and start the optimizer at the first fit's estimates, so m fits cost
    little more than m optimizations. When the imputations changed only the response, each is
    ``first.refit(y)`` (lme4's ``refit``); otherwise the columns they changed are re-evaluated in
    one model-matrix evaluation over all the imputed data sets and each fit gets its own design
    (``first.with_design(...)``).
    """
    if not isinstance(imputations, Imputations):
        raise TypeError(f"expected an Imputations object, got {type(imputations).__name__}")
    if imputations.m < 2:
        raise ValueError(f"pooling needs at least 2 imputed data sets, these are {imputations.m}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MissingDataWarning)
        first = fit_function(formula, imputations[0], **kwargs)
    for w in caught:  # rows still missing (variables not imputed) are the same in every data set
        if issubclass(w.category, MissingDataWarning):
            warnings.warn(f"in every imputed data set: {w.message}", MissingDataWarning, stacklevel=3)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    rows = first.design.frame.index
    base = imputations[0]
    cols = list(first.design.frame.columns)
    _check_levels(imputations, [c for c in cols if not pd.api.types.is_numeric_dtype(base[c])])
    frames = [d.loc[rows, cols] for d in imputations.datasets[1:]]
    b0 = base.loc[rows, cols]
    changed = {c for c in cols if any(not f[c].equals(b0[c]) for f in frames)}
    response = first.design.formula.response
    rest = None
    if not kwargs.get("standardize") and hasattr(first, "refit"):
        if changed <= {response} and response in cols and pd.api.types.is_numeric_dtype(b0[response]) \
                and not pd.api.types.is_bool_dtype(b0[response]) and first.design.trials is None:
            # only the response was imputed: lme4's refit(m, newresp), nothing re-parsed or rebuilt
            rest = [first.refit(f[response].to_numpy(dtype=float)) for f in frames]
        else:
            designs = _stacked_designs(first.design, frames, changed)
            if designs is not None:
                rest = [first.with_design(dz).fit(start=first.warm_start()) for dz in designs]
                for fit in rest:
                    fit.name, fit.data_name = first.name, first.data_name
    if rest is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingDataWarning)
            rest = [fit_function(formula, data, **kwargs) for data in imputations.datasets[1:]]
    fits = [first] + rest
    return MIFits(fits, df_com=df_com, imputations=imputations)


_TESTS = {"D1": d1, "D2": d2, "D3": d3}


def mi_anova(*models, test: str = "D1", df_com: float | None = None, refit: bool = True, **kwargs) -> pd.DataFrame:
    """Multiparameter tests of nested models on multiply imputed data (mitml's ``testModels``).

    Parameters
    ----------
    *models : MIFits
        Two or more pooled fits (``mm.lmer(formula, imputations)``), largest first or in any order.
    test : {"D1", "D2", "D3"}
    df_com : float, optional
        Complete-data df for D1 (ignored, with a warning, by D2 and D3 as mitml does).
    refit : bool, default True
        D3 needs maximum-likelihood fits: REML fits are refit by ML (as mitml); with False they raise.

    Returns
    -------
    pandas.DataFrame
        One row per comparison of consecutive models (by number of parameters): ``F value, df1,
        df2, Pr(>F), RIV``.
    """
    if len(models) == 1 and isinstance(models[0], (list, tuple)):
        models = tuple(models[0])
    if not isinstance(test, str) or test.upper() not in _TESTS:
        raise ValueError(f"test must be 'D1', 'D2' or 'D3' for multiply imputed fits, got {test!r}")
    key = test.upper()
    bad = [k for k in kwargs if k not in ("names", "nsim", "seed", "parallel")]
    if bad:
        raise TypeError(f"anova of multiply imputed fits got unexpected keyword arguments: {', '.join(bad)}")
    if len(models) < 2:
        raise ValueError("anova needs at least two sets of pooled fits to compare")
    for i, x in enumerate(models):
        if not isinstance(x, MIFits):
            raise TypeError(f"model {i + 1} is a {type(x).__name__}: with test={test!r} every model must be a "
                            "set of pooled fits (mm.lmer(formula, imputations) or mm.pool(fits))")
    if len({x.m for x in models}) > 1:
        raise ValueError(f"the sets of fits have different numbers of imputations ({[x.m for x in models]})")
    if len({x.nobs for x in models}) > 1:
        raise ValueError("the sets of fits use different numbers of rows; compare models fit to the same data")
    if df_com is not None and key != "D1":
        warnings.warn(f"df_com is used by D1 only; ignored by {key}", MissingDataWarning, stacklevel=3)
    order = sorted(range(len(models)), key=lambda i: -models[i].fits[0].npar)
    labels = list(kwargs.get("names") or [f"model{i + 1}" for i in range(len(models))])
    rows = {}
    for a, b in zip(order[:-1], order[1:]):
        full, null = models[a].fits, models[b].fits
        if key == "D3":
            if (models[a].reml or models[b].reml) and not refit:
                raise ValueError("D3 needs maximum-likelihood fits and these are REML fits: fit with "
                                 "reml=False, or pass refit=True to refit them by ML")
            full = [f.refit_ml() for f in full]
            null = [f.refit_ml() for f in null]
            rows[f"{labels[a]} vs {labels[b]}"] = d3(full, null)
        elif key == "D1":
            rows[f"{labels[a]} vs {labels[b]}"] = d1(full, null, check_df_com(df_com))
        else:
            rows[f"{labels[a]} vs {labels[b]}"] = d2(full, null)
    return results_table(rows)


register_anova(MIFits, mi_anova)  # mm.anova(fits_a, fits_b, test='D1') on pooled fits
