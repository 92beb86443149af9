"""Estimated marginal means (least-squares means) and their pairwise contrasts, as R's emmeans.

The reference grid is emmeans': every factor of the fixed effects over its levels, every
numeric covariate at its mean over the model's rows (or at the values given in ``at=``). An
estimated marginal mean is ``l'β`` with ``l`` the average, with equal weights, of the grid's
model-matrix rows over the factors that are neither in ``specs`` nor in ``by``. Standard
errors and df come from :func:`mixedmodels.postestimation.ddf.contrast`: Kenward-Roger
(adjusted covariance and df, as pbkrtest, which emmeans uses), Satterthwaite (lmerTest) or
asymptotic (GLMMs always). For GLMMs ``type="response"`` back-transforms the means and their
intervals (SE by the delta method), and :meth:`EMMeans.regrid` puts the means on the response
scale with the delta-method covariance (emmeans' ``regrid``), so that contrasts there are
differences of probabilities or rates.

>>> import mixedmodels as mm
>>> m = mm.lmer("angle ~ recipe * temp + (1 | recipe:replicate)", mm.load_dataset("cake"))
>>> mm.emmeans(m, "recipe").to_frame()["emmean"].round(3).tolist()
[33.122, 31.644, 31.6]
"""

from __future__ import annotations

import functools
import html
import itertools
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.lazy import lazy_import
from ..spec.design import r_column_name
from ..spec.formula import expression_names
from .ddf import contrast

stats = lazy_import("scipy.stats")  # on first use: import mixedmodels stays fast

__all__ = ["emmeans", "EMMeans", "EMMContrasts", "p_adjust"]

_ADJUST = ("tukey", "holm", "bonferroni", "sidak", "none")


# --------------------------------------------------------------------------------------------
# the reference grid
# --------------------------------------------------------------------------------------------

def _as_list(x) -> list[str]:
    if x is None:
        return []
    return [x] if isinstance(x, str) else list(x)


def _categories(model) -> dict[str, list]:
    """Levels of each categorical variable of the fixed effects, in the fit's order."""
    out: dict[str, list] = {}
    for key, (kind, state) in getattr(model.design.fixed_spec, "encoder_state", {}).items():
        if getattr(kind, "value", kind) == "categorical" and "categories" in state:
            out[key] = list(state["categories"])
    return out


def _grid_values(model, at: dict) -> tuple[dict[str, list], set[str]]:
    """The values of every variable of the fixed effects on the reference grid, and which of
    them are factors."""
    design = model.design
    frame = design.frame
    names = [n for n in dict.fromkeys(expression_names(design.formula.fixed)) if n in frame.columns]
    cats = _categories(model)
    values: dict[str, list] = {}
    factors: set[str] = set()
    for name in names:
        col = frame[name]
        if name in cats:
            levels = cats[name]
            factors.add(name)
        elif isinstance(col.dtype, pd.CategoricalDtype):
            levels = list(col.cat.categories)
            factors.add(name)
        elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            levels = [float(col.mean())]
        else:
            levels = sorted(pd.unique(col.dropna()), key=str)
            factors.add(name)
        if name in at:
            given = _as_list(at[name]) if isinstance(at[name], str) else list(np.atleast_1d(at[name]))
            if name in factors:
                unknown = [v for v in given if v not in levels and str(v) not in map(str, levels)]
                if unknown:
                    raise ValueError(f"at[{name!r}] has level(s) {unknown} not in the fitted data; the "
                                     f"levels are {[str(v) for v in levels]}")
                strs = [str(v) for v in given]
                levels = [v for v in levels if str(v) in strs]
            else:
                levels = [float(v) for v in given]
        values[name] = levels
    extra = [k for k in at if k not in values]
    if extra:
        raise ValueError(f"at= names {extra}, which are not variables of the fixed effects {names}")
    return values, factors


def _grid_matrix(model, grid: pd.DataFrame, values: dict, factors: set) -> np.ndarray:
    design = model.design
    frame = grid.copy()
    for name in factors:
        frame[name] = pd.Categorical(frame[name], categories=values[name] if name not in _categories(model)
                                     else _categories(model)[name])
    mat = design.fixed_spec.get_model_matrix(frame)
    cols = [r_column_name(c) for c in mat.columns]
    missing = [n for n in design.fixef_names if n not in cols]
    if missing:
        raise ValueError(f"the reference grid does not give the fixed-effect column(s) {missing}")
    return np.asarray(mat, dtype=float)[:, [cols.index(n) for n in design.fixef_names]]


def _check_names(model, specs: list[str], by: list[str], values: dict) -> None:
    for name in [*specs, *by]:
        if name not in values:
            raise ValueError(f"{name!r} is not a variable of the fixed effects; they are {list(values)}")
    twice = set(specs) & set(by)
    if twice:
        raise ValueError(f"{sorted(twice)} named in both specs and by")


# --------------------------------------------------------------------------------------------
# multiplicity adjustments
# --------------------------------------------------------------------------------------------

def p_adjust(p: np.ndarray, method: str) -> np.ndarray:
    """Holm, Bonferroni, Šidák or no adjustment of one family of p-values (R's ``p.adjust``)."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    if method == "none" or m == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(1.0, p * m)
    if method == "sidak":
        return 1.0 - (1.0 - p) ** m
    if method == "holm":
        order = np.argsort(p, kind="stable")
        adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
        out = np.empty(m)
        out[order] = np.minimum(1.0, adj)
        return out
    raise ValueError(f"adjust must be one of {_ADJUST}, got {method!r}")


def _tukey_p(t: np.ndarray, df: np.ndarray, k: int) -> np.ndarray:
    # studentized range of k means: P(Q > |t|·√2), as emmeans' ptukey
    return np.array([float(stats.studentized_range.sf(abs(ti) * np.sqrt(2.0), k, di))
                     for ti, di in zip(t, df)])


@functools.lru_cache(maxsize=256)
def _qtukey(level: float, k: int, df: float) -> float:
    # scipy's quantile takes ~1 s; the df of one family agree to 7 digits, which moves the
    # quantile by ~1e-9
    return float(stats.studentized_range.ppf(level, k, df))


def _critical(adjust: str, level: float, df: np.ndarray, k: int, m: int) -> np.ndarray:
    """Critical values for simultaneous intervals (emmeans: Tukey's; Holm's fall back to
    Bonferroni's)."""
    if adjust == "tukey":
        return np.array([_qtukey(level, k, float(f"{d:.7g}")) / np.sqrt(2.0) for d in df])
    if adjust in ("holm", "bonferroni"):
        a = (1.0 - level) / m
    elif adjust == "sidak":
        a = 1.0 - level ** (1.0 / m)
    else:
        a = 1.0 - level
    return np.where(np.isinf(df), stats.norm.ppf(1 - a / 2), stats.t.ppf(1 - a / 2, np.minimum(df, 1e300)))


# --------------------------------------------------------------------------------------------
# text and HTML
# --------------------------------------------------------------------------------------------

def _fmt_col(values: pd.Series) -> list[str]:
    if not pd.api.types.is_numeric_dtype(values):
        return [str(v) for v in values]
    out = []
    for v in values.to_numpy(dtype=float):
        if np.isinf(v):
            out.append("Inf")
        elif np.isnan(v):
            out.append("NA")
        elif v != 0 and abs(v) < 1e-4:
            out.append(f"{v:.3g}")
        else:
            out.append(f"{v:.4g}")
    return out


def _fmt_p(p: np.ndarray) -> list[str]:
    return ["<.0001" if v < 1e-4 else f"{v:.4f}" for v in p]


def _text_table(frame: pd.DataFrame, pcol: str | None = None) -> str:
    cols = {c: (_fmt_p(frame[c].to_numpy()) if c == pcol else _fmt_col(frame[c])) for c in frame.columns}
    widths = {c: max(len(c), *(len(s) for s in v)) for c, v in cols.items()}
    text_cols = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    head = " " + " ".join(c.ljust(widths[c]) if c in text_cols else c.rjust(widths[c]) for c in frame.columns)
    lines = [head]
    for i in range(len(frame)):
        lines.append(" " + " ".join(cols[c][i].ljust(widths[c]) if c in text_cols else cols[c][i].rjust(widths[c])
                                    for c in frame.columns))
    return "\n".join(lines)


def _by_blocks(frame: pd.DataFrame, by: list[str], pcol: str | None) -> str:
    if not by:
        return _text_table(frame, pcol)
    out = []
    for key, sub in frame.groupby(by, sort=False, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        out.append(", ".join(f"{b} = {k}" for b, k in zip(by, key)) + ":")
        out.append(_text_table(sub.drop(columns=by).reset_index(drop=True), pcol))
        out.append("")
    return "\n".join(out).rstrip()


def _html(frame: pd.DataFrame, notes: list[str], title: str) -> str:
    body = frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
    foot = "".join(f"<br><small>{html.escape(n)}</small>" for n in notes)
    return f"<div><strong>{html.escape(title)}</strong>{body}{foot}</div>"


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------

def _response_name(model) -> str:
    link = model.family.link.name
    if link in ("logit", "probit", "cloglog", "cauchit"):
        return "prob"
    if link == "log":
        return "rate"
    return "response"


class EMMeans:
    """Estimated marginal means (emmeans' ``emmGrid`` summary).

    Attributes
    ----------
    grid : pandas.DataFrame
        The levels of ``specs`` and ``by``, one row per mean.
    L : numpy.ndarray
        The linear functions of β, one row per mean.
    estimate, se, df : numpy.ndarray
        On the link scale (the response scale after :meth:`regrid`).
    """

    def __init__(self, model, specs, by, grid, L, estimate, se, df, vcov, method, level, type,  # noqa: A002
                 regridded: bool = False, at_note: str = ""):
        self.model = model
        self.specs, self.by = specs, by
        self.grid, self.L = grid, L
        self.estimate, self.se, self.df = estimate, se, df
        self.vcov = vcov            # of the estimates (asymptotic; used by regrid and its contrasts)
        self.method, self.level, self.type = method, level, type
        self.regridded = regridded
        self.at_note = at_note

    # -- scale -------------------------------------------------------------------------------
    @property
    def _transformed(self) -> bool:
        return self.type == "response" and not self.model.family.linear and not self.regridded

    def regrid(self) -> "EMMeans":
        """The means on the response scale with the delta-method covariance (emmeans' ``regrid``);
        its :meth:`pairs` are differences on the response scale. Identity for a linear model."""
        if self.model.family.linear or self.regridded:
            return self
        link = self.model.family.link
        mu = link.inverse(self.estimate)
        d = np.abs(link.mu_eta(self.estimate))
        V = self.vcov * np.outer(d, d)
        return EMMeans(self.model, self.specs, self.by, self.grid, self.L, mu, np.sqrt(np.diag(V)), self.df,
                       V, self.method, self.level, "response", regridded=True, at_note=self.at_note)

    # -- tables ------------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """One row per mean: the grid columns, the mean (``emmean``, or ``prob``/``rate``/
        ``response`` on the response scale), ``SE``, ``df``, ``lower.CL``, ``upper.CL``."""
        crit = np.where(np.isinf(self.df), stats.norm.ppf(0.5 + self.level / 2),
                        stats.t.ppf(0.5 + self.level / 2, np.minimum(self.df, 1e300)))
        lo, hi = self.estimate - crit * self.se, self.estimate + crit * self.se
        est, se, name = self.estimate, self.se, "emmean"
        if self._transformed:
            link = self.model.family.link
            est = link.inverse(self.estimate)
            se = self.se * np.abs(link.mu_eta(self.estimate))
            lo, hi = link.inverse(lo), link.inverse(hi)
            lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        if self.type == "response" and not self.model.family.linear:
            name = _response_name(self.model)
        out = self.grid.reset_index(drop=True).copy()
        out[name] = est
        out["SE"] = se
        out["df"] = self.df
        out["lower.CL"] = lo
        out["upper.CL"] = hi
        return out

    def pairs(self, adjust: str = "tukey", reverse: bool = False) -> "EMMContrasts":
        """All pairwise differences of the means within each ``by`` group (emmeans' ``pairs``).

        Parameters
        ----------
        adjust : {"tukey", "holm", "bonferroni", "sidak", "none"}
            Multiplicity adjustment of the p-values (and of the intervals) per ``by`` group.
        reverse : bool
            ``later - earlier`` instead of emmeans' default ``earlier - later``.

        Returns
        -------
        EMMContrasts
        """
        adjust = str(adjust).lower()
        if adjust not in _ADJUST:
            raise ValueError(f"adjust must be one of {_ADJUST}, got {adjust!r}")
        return _pairs(self, adjust, reverse)

    def _notes(self) -> list[str]:
        notes = [f"Confidence level used: {self.level:g}"]
        if self._transformed:
            notes.append(f"Intervals are back-transformed from the {self.model.family.link.name} scale")
        if self.regridded:
            notes.insert(0, "Means regridded to the response scale (delta-method SE)")
        notes.insert(0, f"Degrees-of-freedom method: {self.method}")
        if self.at_note:
            notes.insert(0, self.at_note)
        return notes

    def _display_frame(self) -> pd.DataFrame:
        frame = self.to_frame()
        if np.all(np.isinf(self.df)):
            frame = frame.rename(columns={"lower.CL": "asymp.LCL", "upper.CL": "asymp.UCL"})
        for c in [*self.specs, *self.by]:
            frame[c] = frame[c].astype(str)
        return frame

    def __repr__(self) -> str:
        return _by_blocks(self._display_frame(), self.by, None) + "\n\n" + "\n".join(self._notes())

    def _repr_html_(self) -> str:
        return _html(self._display_frame(), self._notes(), "Estimated marginal means")


class EMMContrasts:
    """Pairwise contrasts of estimated marginal means (emmeans' ``pairs`` summary)."""

    def __init__(self, frame: pd.DataFrame, by: list[str], notes: list[str], stat: str, estimate_name: str):
        self._frame = frame
        self.by = by
        self.notes = notes
        self.stat = stat
        self.estimate_name = estimate_name

    def to_frame(self) -> pd.DataFrame:
        """``contrast``, the ``by`` columns, the estimate (``estimate``, or ``odds.ratio`` /
        ``ratio`` on the response scale of a logit / log link), ``SE``, ``df``, ``lower.CL``,
        ``upper.CL`` (adjusted as the p-values), ``t.ratio`` (``z.ratio`` with infinite df) and
        ``p.value``."""
        return self._frame.copy()

    def _display(self) -> pd.DataFrame:
        return self._frame.drop(columns=["lower.CL", "upper.CL"])

    def __repr__(self) -> str:
        return _by_blocks(self._display(), self.by, "p.value") + "\n\n" + "\n".join(self.notes)

    def _repr_html_(self) -> str:
        return _html(self._display(), self.notes, "Pairwise contrasts")


def _label(value, var: str, numeric_like: bool) -> str:
    return f"{var}{value}" if numeric_like else str(value)


def _pairs(emm: EMMeans, adjust: str, reverse: bool) -> EMMContrasts:
    model = emm.model
    grid = emm.grid.reset_index(drop=True)
    groups = [np.arange(len(grid))] if not emm.by else \
        [np.asarray(ix) for ix in grid.groupby(emm.by, sort=False, observed=True).indices.values()]
    if emm.by:
        groups.sort(key=lambda ix: ix[0])
    # emmeans labels levels that look like numbers with their variable's name (period1 - period2)
    labels = []
    for i in range(len(grid)):
        parts = []
        for s in emm.specs:
            v = grid.loc[i, s]
            numeric_like = all(_is_number(str(x)) for x in grid[s])
            parts.append(_label(v, s, numeric_like))
        labels.append(" ".join(parts))
    link = model.family.link
    ratio = emm._transformed and link.name in ("logit", "log")
    rows = []
    for ix in groups:
        k = len(ix)
        pairs = [(a, b) for a, b in itertools.combinations(ix, 2)]
        if reverse:
            pairs = [(b, a) for a, b in pairs]
        est, se, df = [], [], []
        for a, b in pairs:
            if emm.regridded:
                c = np.zeros(len(grid))
                c[a], c[b] = 1.0, -1.0
                est.append(float(c @ emm.estimate))
                se.append(float(np.sqrt(c @ emm.vcov @ c)))
                df.append(np.inf)
            else:
                res = contrast(model, emm.L[a] - emm.L[b], ddf=emm.method).iloc[0]
                est.append(float(res["Estimate"]))
                se.append(float(res["Std. Error"]))
                df.append(float(res["DenDF"]) if "DenDF" in res.index else np.inf)
        est, se, df = np.array(est), np.array(se), np.array(df)
        t = est / se
        if adjust == "tukey":
            p = _tukey_p(t, df, k) if k > 1 else np.array([])
        else:
            raw = 2.0 * np.where(np.isinf(df), stats.norm.sf(np.abs(t)), stats.t.sf(np.abs(t), np.minimum(df, 1e300)))
            p = p_adjust(raw, adjust)
        crit = _critical(adjust, emm.level, df, k, len(pairs)) if pairs else np.array([])
        lo, hi = est - crit * se, est + crit * se
        for j, (a, b) in enumerate(pairs):
            row = {"contrast": f"{labels[a]} {'/' if ratio else '-'} {labels[b]}"}
            for name in emm.by:
                row[name] = grid.loc[a, name]
            e, s, low, high = est[j], se[j], lo[j], hi[j]
            if ratio:
                e, s, low, high = np.exp(e), np.exp(e) * s, np.exp(low), np.exp(high)
            row.update({"estimate": e, "SE": s, "df": df[j], "lower.CL": low, "upper.CL": high,
                        "t.ratio": t[j], "p.value": p[j]})
            rows.append(row)
    frame = pd.DataFrame(rows, columns=["contrast", *emm.by, "estimate", "SE", "df", "lower.CL", "upper.CL",
                                        "t.ratio", "p.value"])
    estimate_name = "estimate"
    if ratio:
        estimate_name = "odds.ratio" if link.name == "logit" else "ratio"
        frame = frame.rename(columns={"estimate": estimate_name})
    stat = "t.ratio"
    if len(frame) and np.all(np.isinf(frame["df"].to_numpy(dtype=float))):
        stat = "z.ratio"
        frame = frame.rename(columns={"t.ratio": "z.ratio"})
    sizes = sorted({len(ix) for ix in groups})
    notes = [f"Degrees-of-freedom method: {emm.method}"]
    if emm.at_note:
        notes.insert(0, emm.at_note)
    if ratio:
        notes.append(f"Tests are performed on the log {'odds ratio' if link.name == 'logit' else ''} scale"
                     .replace("  ", " "))
    elif emm._transformed:
        notes.append(f"Note: contrasts are still on the {link.name} scale")
    if adjust == "none":
        notes.append("P values are not adjusted for multiplicity")
    else:
        fam = " or ".join(str(s) for s in sizes)
        what = "a family of" if adjust == "tukey" else "a family of"
        unit = "estimates" if adjust == "tukey" else "tests"
        count = fam if adjust == "tukey" else " or ".join(str(s * (s - 1) // 2) for s in sizes)
        notes.append(f"P value adjustment: {adjust} method for {what} {count} {unit}")
    return EMMContrasts(frame, emm.by, notes, stat, estimate_name)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# the function
# --------------------------------------------------------------------------------------------

def emmeans(model, specs: str | Sequence[str], by: str | Sequence[str] | None = None, at: dict | None = None,
            ddf: str | None = None, type: str = "link", level: float = 0.95) -> EMMeans:  # noqa: A002
    """Estimated marginal means of a fitted mixed model (R's ``emmeans``).

    Parameters
    ----------
    model : fitted mixed model
    specs : str or list of str
        The factor(s) whose levels get a mean.
    by : str or list of str, optional
        Factor(s) to condition on: one set of means (and of contrasts) per level.
    at : dict, optional
        Values for variables of the grid: a numeric covariate at a value (or several, averaged
        over) instead of its mean, or a factor restricted to some levels.
    ddf : {"kenward-roger", "satterthwaite", "asymptotic"}, optional
        Degrees-of-freedom method; default Kenward-Roger for linear mixed models (emmeans'
        default, through pbkrtest) and asymptotic for GLMMs (the only one there).
    type : {"link", "response"}
        For GLMMs: the means on the link scale, or back-transformed (with back-transformed
        intervals and delta-method SEs, as emmeans' ``type="response"``).
    level : float
        Confidence level of the intervals.

    Returns
    -------
    EMMeans
        ``to_frame()``, ``pairs(adjust=...)``, ``regrid()``, and text and HTML displays.

    Notes
    -----
    Numeric covariates sit at their means over the model's rows; factors not in ``specs`` or
    ``by`` are averaged over with equal weights (emmeans' default ``weights = "equal"``).
    """
    specs_l, by_l = _as_list(specs), _as_list(by)
    if not specs_l:
        raise ValueError("specs must name at least one factor")
    if type not in ("link", "response"):
        raise ValueError(f"type must be 'link' or 'response', got {type!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if model.design.formula.offsets:
        raise NotImplementedError("emmeans of a model with an offset term is not implemented; refit "
                                  "without offset() or predict at chosen values with m.predict(newdata)")
    at = dict(at or {})
    values, factors = _grid_values(model, at)
    _check_names(model, specs_l, by_l, values)
    linear = model.family.linear
    if ddf is None:
        method = "kenward-roger" if linear else "asymptotic"
    else:
        method = str(ddf).strip().lower().replace("_", "-")
        method = {"kr": "kenward-roger", "satt": "satterthwaite", "z": "asymptotic"}.get(method, method)
        if method not in ("kenward-roger", "satterthwaite", "asymptotic"):
            raise ValueError(f"ddf must be 'kenward-roger', 'satterthwaite' or 'asymptotic', got {ddf!r}")
    names = list(values)
    grid = pd.DataFrame(list(itertools.product(*[values[n] for n in reversed(names)])),
                        columns=list(reversed(names)))[names]
    X = _grid_matrix(model, grid, values, factors)
    keys = [*specs_l, *by_l]
    cells = list(itertools.product(*[values[n] for n in reversed(keys)]))
    rows, L = [], []
    for cell in cells:
        cell = dict(zip(reversed(keys), cell))
        mask = np.ones(len(grid), bool)
        for n, v in cell.items():
            mask &= (grid[n] == v).to_numpy()
        rows.append({n: cell[n] for n in keys})
        L.append(X[mask].mean(axis=0))
    L = np.array(L)
    # emmeans sorts by the by groups, the spec levels varying fastest within each
    out = pd.DataFrame(rows, columns=keys)
    est, se, df = [], [], []
    for row in L:
        res = contrast(model, row, ddf=method).iloc[0]
        est.append(float(res["Estimate"]))
        se.append(float(res["Std. Error"]))
        df.append(float(res["DenDF"]) if "DenDF" in res.index else np.inf)
    V = L @ model.vcov.to_numpy() @ L.T
    covs = [n for n in names if n not in factors and n not in keys]
    at_note = ""
    if covs:
        at_note = "Covariates at: " + ", ".join(
            f"{n} = {', '.join(f'{v:.4g}' for v in values[n])}" for n in covs)
    for n in keys:
        if n in factors:
            out[n] = pd.Categorical(out[n], categories=values[n])
    return EMMeans(model, specs_l, by_l, out, L, np.array(est), np.array(se), np.array(df), V, method,
                   float(level), type, at_note=at_note)
