"""Several models side by side in one table, as R's modelsummary and texreg: :func:`table`.

Each model is a column; each fixed effect a row with its estimate and, below it, its standard
error (or interval, statistic or p-value) in parentheses; then the random-effect parameters and
the goodness-of-fit rows. The result prints as text and renders as Markdown, LaTeX (booktabs),
HTML and, when the ``great_tables`` package is installed, a ``great_tables.GT``.
"""

from __future__ import annotations

import html as _html
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .display import html_block, signif_stars
from .tidy import glance, tidy

__all__ = ["table", "ModelTable"]

_GOF = {"nobs": "Num.Obs.", "groups": "Num.Groups", "AIC": "AIC", "BIC": "BIC", "logLik": "Log.Lik.",
        "REMLcrit": "REMLcrit", "sigma": "Sigma", "r2": ("R2 Marg.", "R2 Cond."), "icc": "ICC"}
_STATISTICS = ("std.error", "conf.int", "statistic", "p.value", None)


class ModelTable:
    """The table :func:`table` returns.

    Attributes
    ----------
    cells : pandas.DataFrame
        The formatted cells (strings): one column per model, index the row labels.
    estimates : pandas.DataFrame
        The numbers: ``tidy`` rows of every model, with a ``model`` column.
    gof : pandas.DataFrame
        The goodness-of-fit numbers, one column per model.
    notes : list of str
        Footnotes (the statistic in parentheses, the stars' legend).
    """

    def __init__(self, cells: pd.DataFrame, estimates: pd.DataFrame, gof: pd.DataFrame, notes: list[str],
                 n_coef_rows: int):
        self.cells = cells
        self.estimates = estimates
        self.gof = gof
        self.notes = notes
        self._n_coef_rows = n_coef_rows

    # -- renderings ----------------------------------------------------------------------------
    def _labels(self) -> list[str]:
        # the statistic rows below an estimate have an empty label
        return [("" if str(i).startswith("\u200b") else str(i)) for i in self.cells.index]

    def __repr__(self) -> str:
        labels = self._labels()
        cols = list(self.cells.columns)
        wl = max([len(s) for s in labels] + [0])
        widths = [max([len(str(c))] + [len(v) for v in self.cells[c]]) for c in cols]
        rule = "-" * (wl + sum(w + 2 for w in widths))
        lines = [" " * wl + "".join("  " + str(c).center(w) for c, w in zip(cols, widths)), rule]
        for k, label in enumerate(labels):
            if k == self._n_coef_rows:
                lines.append(rule)
            row = self.cells.iloc[k]
            lines.append(label.ljust(wl) + "".join("  " + str(v).rjust(w) for v, w in zip(row, widths)))
        lines.append(rule)
        return "\n".join(lines + self.notes)

    def to_markdown(self) -> str:
        """A pipe table (GitHub/pandoc Markdown)."""
        cols = list(self.cells.columns)
        lines = ["| " + " | ".join([" "] + [str(c) for c in cols]) + " |",
                 "|:" + "---|" + "".join("---:|" for _ in cols)]
        for label, (_, row) in zip(self._labels(), self.cells.iterrows()):
            cells = [label.replace("|", "\\|")] + [str(v).replace("|", "\\|") for v in row]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines + ([""] + self.notes if self.notes else []))

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        """A LaTeX ``table`` with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
        cols = list(self.cells.columns)
        out = ["\\begin{table}", "\\centering"]
        if caption:
            out.append(f"\\caption{{{_latex(caption)}}}")
        if label:
            out.append(f"\\label{{{label}}}")
        out += [f"\\begin{{tabular}}{{l{'c' * len(cols)}}}", "\\toprule",
                " & ".join([""] + [_latex(str(c)) for c in cols]) + " \\\\", "\\midrule"]
        for k, (label_, (_, row)) in enumerate(zip(self._labels(), self.cells.iterrows())):
            if k == self._n_coef_rows:
                out.append("\\midrule")
            out.append(" & ".join([_latex(label_)] + [_latex(str(v)) for v in row]) + " \\\\")
        out.append("\\bottomrule")
        out.append("\\end{tabular}")
        for note in self.notes:
            out.append(f"\\par\\footnotesize {_latex(note)}")
        out.append("\\end{table}")
        return "\n".join(out)

    def to_html(self) -> str:
        """An HTML ``<table>`` (the coefficient block, a rule, the goodness-of-fit block)."""
        esc = _html.escape
        cols = list(self.cells.columns)
        parts = ["<table><thead><tr><th></th>" + "".join(f"<th>{esc(str(c))}</th>" for c in cols)
                 + "</tr></thead><tbody>"]
        for k, (label, (_, row)) in enumerate(zip(self._labels(), self.cells.iterrows())):
            style = ' style="border-top:1px solid #888"' if k == self._n_coef_rows else ""
            parts.append(f"<tr{style}><th class=\"mm-l\">{esc(label)}</th>"
                         + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>")
        parts.append("</tbody></table>")
        notes = "".join(f"<p>{esc(n)}</p>" for n in self.notes)
        return "".join(parts) + notes

    def _repr_html_(self) -> str:
        return html_block(self.to_html())

    def to_great_tables(self):
        """The table as a ``great_tables.GT`` (``pip install great_tables``)."""
        try:
            from great_tables import GT
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("to_great_tables needs the great_tables package: pip install great_tables "
                              "(or mixedmodels[tables])") from err
        frame = self.cells.copy()
        frame.insert(0, " ", self._labels())
        gt = GT(frame.reset_index(drop=True))
        if self.notes:
            gt = gt.tab_source_note(" ".join(self.notes))
        return gt

    def to_frame(self) -> pd.DataFrame:
        """The formatted cells (strings), one column per model."""
        out = self.cells.copy()
        out.index = self._labels()
        return out


def _latex(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("$", "\\$"), ("#", "\\#"),
                 ("_", "\\_"), ("{", "\\{"), ("}", "\\}"), ("~", "\\textasciitilde{}"), ("^", "\\^{}")):
        text = text.replace(a, b)
    return text


def _ran_label(group: str, term: str) -> str:
    """``sd__(Intercept)`` of ``Subject`` → ``SD (Intercept Subject)``, as modelsummary."""
    kind, _, name = term.partition("__")
    prefix = {"sd": "SD", "cor": "Cor", "var": "Var", "cov": "Cov"}.get(kind, kind)
    name = name.replace("(Intercept)", "Intercept")
    return f"{prefix} ({name} {group})" if group != "Residual" else f"{prefix} (Observations)"


def _named(models) -> tuple[list[str], list]:
    if isinstance(models, Mapping):
        return [str(k) for k in models], list(models.values())
    items = list(models)
    return [f"({i + 1})" for i in range(len(items))], items


def table(models: Mapping | Iterable, *, statistic: str | None = "std.error", stars: bool = False,
          digits: int = 3, conf_level: float = 0.95, ddf_method: str | None = None,
          ran_pars: bool = True, gof: Iterable[str] = ("nobs", "groups", "AIC", "BIC", "logLik"),
          coef_rename: Mapping[str, str] | None = None, coef_omit: Iterable[str] = ()) -> ModelTable:
    """Models side by side, as R's ``modelsummary(list(...))`` or ``texreg``.

    Parameters
    ----------
    models : dict or list of fitted models
        A dict names the columns; a list gives ``(1)``, ``(2)``, ...
    statistic : {"std.error", "conf.int", "statistic", "p.value", None}
        What goes in parentheses below each estimate (None: nothing).
    stars : bool, default False
        Append significance stars (``*`` p < 0.05, ``**`` 0.01, ``***`` 0.001).
    digits : int, default 3
        Decimals of the estimates and their statistics.
    conf_level : float, default 0.95
        For ``statistic="conf.int"`` (Wald intervals).
    ddf_method : {None, "satterthwaite", "kenward-roger"}
        The t tests of LMMs for p-values (stars, ``statistic="p.value"``); when p-values are
        needed and this is None, Satterthwaite's (lmerTest's default). GLMMs use Wald z tests.
    ran_pars : bool, default True
        Include the random-effect standard deviations and correlations.
    gof : iterable of str
        Goodness-of-fit rows: any of ``nobs``, ``groups`` (levels per grouping factor), ``AIC``,
        ``BIC``, ``logLik``, ``REMLcrit``, ``sigma``, ``r2`` (marginal and conditional,
        :func:`~mixedmodels.postestimation.variance.r2`) and ``icc``.
    coef_rename : dict, optional
        New labels for fixed-effect names.
    coef_omit : iterable of str
        Fixed-effect names to leave out.

    Returns
    -------
    ModelTable
        Prints as text; ``.to_markdown()``, ``.to_latex()``, ``.to_html()``,
        ``.to_great_tables()``, ``.to_frame()``; the numbers in ``.estimates`` and ``.gof``.
    """
    if statistic not in _STATISTICS:
        raise ValueError(f"statistic must be one of {_STATISTICS}, got {statistic!r}")
    names, items = _named(models)
    if not items:
        raise ValueError("table needs at least one model")
    unknown = [g for g in gof if g not in _GOF]
    if unknown:
        raise ValueError(f"unknown gof rows {unknown}; choose from {', '.join(_GOF)}")
    need_p = stars or statistic == "p.value"
    omit = set(coef_omit)
    rename = dict(coef_rename or {})
    tidies = []
    for name, m in zip(names, items):
        ddf = ddf_method or ("satterthwaite" if need_p and m.family.linear else None)
        t = tidy(m, effects=("fixed", "ran_pars") if ran_pars else "fixed", conf_int=statistic == "conf.int",
                 conf_level=conf_level, ddf_method=ddf if m.family.linear else None)
        t.insert(0, "model", name)
        tidies.append(t)
    est = pd.concat(tidies, ignore_index=True)
    if "group" not in est.columns:
        est["group"] = None
    fixed = est[est["effect"] == "fixed"]
    terms = [t for t in dict.fromkeys(fixed["term"]) if t not in omit]
    rows: dict[str, list[str]] = {}
    fmt = f"{{:.{digits}f}}"
    for term in terms:
        top, below = [], []
        for name in names:
            r = fixed[(fixed["model"] == name) & (fixed["term"] == term)]
            if r.empty:
                top.append("")
                below.append("")
                continue
            r = r.iloc[0]
            p = r.get("p.value", np.nan)
            top.append(fmt.format(r["estimate"]) + (signif_stars(p).replace(".", "") if stars else ""))
            if statistic == "std.error":
                below.append(f"({fmt.format(r['std.error'])})")
            elif statistic == "statistic":
                below.append(f"({fmt.format(r['statistic'])})")
            elif statistic == "p.value":
                below.append(f"({p:.3f})" if np.isfinite(p) and p >= 0.001 else "(<0.001)")
            elif statistic == "conf.int":
                below.append(f"[{fmt.format(r['conf.low'])}, {fmt.format(r['conf.high'])}]")
        label = rename.get(term, term)
        rows[label] = top
        if statistic is not None:
            rows["\u200b" + label] = below     # the row below the estimate (label not shown)
    if ran_pars:
        rp = est[est["effect"] == "ran_pars"]
        keys = list(dict.fromkeys(zip(rp["group"], rp["term"])))
        keys = [k for k in keys if k[0] != "Residual"] + [k for k in keys if k[0] == "Residual"]
        for key in keys:
            cells = []
            for name in names:
                r = rp[(rp["model"] == name) & (rp["group"] == key[0]) & (rp["term"] == key[1])]
                cells.append("" if r.empty else fmt.format(r["estimate"].iloc[0]))
            rows[_ran_label(*key)] = cells
    n_coef = len(rows)
    gof_rows: dict[str, list] = {}
    for g in gof:
        if g == "groups":
            groups = list(dict.fromkeys(k for m in items for k in m.ngroups))
            for grp in groups:
                gof_rows[f"N {grp}"] = [m.ngroups.get(grp, np.nan) for m in items]
        elif g == "r2":
            vals = [_quiet_r2(m) for m in items]
            gof_rows["R2 Marg."] = [v[0] for v in vals]
            gof_rows["R2 Cond."] = [v[1] for v in vals]
        elif g == "icc":
            gof_rows["ICC"] = [_quiet_icc(m) for m in items]
        else:
            vals = []
            for m in items:
                gl = glance(m)
                vals.append(float(gl[g].iloc[0]) if g in gl.columns else np.nan)
            gof_rows[_GOF[g]] = vals
    gof_frame = pd.DataFrame(gof_rows, index=names).T
    for label, vals in gof_rows.items():
        integer = label.startswith("N ") or label == "Num.Obs."
        rows[label] = ["" if not np.isfinite(v) else (f"{int(v)}" if integer else
                       (f"{v:.3f}" if label.startswith(("R2", "ICC", "Sigma")) else f"{v:.1f}"))
                       for v in np.asarray(vals, dtype=float)]
    cells = pd.DataFrame(rows, index=names).T
    notes = []
    if statistic is not None:
        what = {"std.error": "Standard errors", "statistic": "t (LMM) or z (GLMM) statistics",
                "p.value": "p-values", "conf.int": f"{100 * conf_level:g}% Wald intervals"}[statistic]
        notes.append(f"{what} in {'brackets' if statistic == 'conf.int' else 'parentheses'}.")
    if stars:
        notes.append("* p < 0.05, ** p < 0.01, *** p < 0.001"
                     + (" (LMMs: Satterthwaite t tests)" if ddf_method is None and any(m.family.linear for m in items)
                        else ""))
    return ModelTable(cells, est, gof_frame, notes, n_coef)


def _quiet_r2(model) -> tuple[float, float]:
    import warnings

    from ..postestimation.variance import r2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = r2(model)
    return float(out["marginal"]), float(out["conditional"])


def _quiet_icc(model) -> float:
    import warnings

    from ..postestimation.variance import icc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(icc(model)["adjusted"])
