"""How result tables print: R's number formats in text that fits 80 columns, and real HTML tables
for Jupyter.

- :func:`format_column`: a numeric vector with common decimals, as R's ``format(x, digits=)``.
- :func:`format_pvalue`: R's ``format.pval`` (``< 2.2e-16`` below machine precision).
- :func:`format_table`: a data frame printed as R prints one, wrapping columns at ``width``.
- :func:`format_anova`: the likelihood-ratio table as lme4's ``anova`` prints it.
- :func:`html_table`: the same cells as an HTML ``<table>``.

Column naming across tables (one scheme): a p-value column is named after its reference
distribution as R names it (``Pr(>|t|)``, ``Pr(>|z|)``, ``Pr(>F)``, ``Pr(>Chisq)``), next to its
statistic (``t value``, ``z value``, ``F value``, ``Chisq``); a table whose rows have different
reference distributions (``bootstrap_lrt``, ``compare_approaches``) and every tidy table
(:func:`~mixedmodels.presentation.tidy.tidy`) use broom's ``statistic`` and ``p.value``. So a
p-value column is always the one named ``p.value`` or starting with ``Pr(``: :func:`is_pvalue_column`.
"""

from __future__ import annotations

import html
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

__all__ = ["format_column", "format_pvalue", "format_table", "format_anova", "html_table",
           "is_pvalue_column", "signif_stars", "html_block", "text_block", "html_rows", "anova_html"]

_STARS_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"
_CSS = ("<style>.mm-result table{border-collapse:collapse;margin:0.3em 0 0.8em 0}"
        ".mm-result th,.mm-result td{padding:0.1em 0.6em;text-align:right;font-family:monospace}"
        ".mm-result th{border-bottom:1px solid #888}.mm-result td.mm-l,.mm-result th.mm-l{text-align:left}"
        ".mm-result caption{text-align:left;font-weight:bold;padding:0.2em 0}"
        ".mm-result p{margin:0.2em 0;font-family:monospace}</style>")


def is_pvalue_column(name) -> bool:
    """Whether a column holds p-values under the package's naming scheme (``p.value``, ``Pr(...)``)."""
    name = str(name)
    return name == "p.value" or name.startswith("Pr(")


def format_column(values, digits: int = 4, na: str = "NA") -> list[str]:
    """Format numbers with one number of decimals, as R's ``format`` does for a vector: enough
    that the smallest non-zero magnitude keeps ``digits`` significant digits (at most 15);
    scientific notation for magnitudes beyond 1e15 or below 1e-15."""
    vals = np.asarray(values, dtype=float)
    finite = vals[np.isfinite(vals) & (vals != 0)]
    if finite.size == 0:
        return ["0" if v == 0 else (na if np.isnan(v) else ("Inf" if v > 0 else "-Inf")) for v in vals]
    smallest = np.min(np.abs(finite))
    largest = np.max(np.abs(finite))
    if largest >= 1e15 or smallest < 1e-15:
        return [f"{v:.{digits}e}" if np.isfinite(v) else na for v in vals]
    decimals = 0
    for v in finite:   # R: the decimals each value needs for `digits` significant digits, at most
        e = int(np.floor(np.log10(abs(v))))
        target = round(float(v), digits - 1 - e)
        need = digits
        while need > 1 and round(float(v), need - 2 - e) == target:
            need -= 1
        decimals = max(decimals, need - 1 - e)
    decimals = int(min(15, max(0, decimals)))
    return [f"{v:.{decimals}f}" if np.isfinite(v) else (na if np.isnan(v) else ("Inf" if v > 0 else "-Inf"))
            for v in vals]


def format_pvalue(p, digits: int = 4, na: str = "NA") -> str:
    """One p-value as R's ``format.pval``: ``< 2.2e-16`` below double precision, else ``digits``
    significant digits."""
    if p is None or pd.isna(p):
        return na
    p = float(p)
    if p < 2.220446e-16:
        return "< 2.2e-16"
    return f"{p:.{digits}g}"


def signif_stars(p) -> str:
    """R's significance stars (``***`` below 0.001 ... ``.`` below 0.1)."""
    if p is None or pd.isna(p):
        return ""
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return star
    return ""


def _cells(frame: pd.DataFrame, digits: int, na: str, digits_by: Mapping[str, int] | None,
           formats: Mapping[str, str] | None = None) -> dict:
    """Column name → list of formatted cells."""
    out = {}
    for col in frame.columns:
        s = frame[col]
        d = (digits_by or {}).get(str(col), digits)
        fmt = (formats or {}).get(str(col))
        if fmt is not None:
            out[col] = [na if pd.isna(v) else format(v, fmt) for v in s]
        elif is_pvalue_column(col):
            out[col] = [format_pvalue(v, na=na) for v in s]
        elif pd.api.types.is_bool_dtype(s):
            out[col] = [na if pd.isna(v) else str(bool(v)) for v in s]
        elif pd.api.types.is_integer_dtype(s):
            out[col] = [na if pd.isna(v) else str(int(v)) for v in s]
        elif pd.api.types.is_numeric_dtype(s):
            out[col] = format_column(s.to_numpy(dtype=float, na_value=np.nan), d, na=na)
        else:
            out[col] = [na if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in s]
    return out


def format_table(frame: pd.DataFrame, digits: int = 5, width: int = 80, index: bool = True,
                 na: str = "NA", digits_by: Mapping[str, int] | None = None,
                 left: Iterable[str] = (), formats: Mapping[str, str] | None = None) -> str:
    """A data frame as R prints one: numbers right-aligned with common decimals per column,
    p-values as ``format.pval``, and columns wrapped into blocks that fit ``width``.

    Parameters
    ----------
    frame : pandas.DataFrame
    digits : int, default 5
        Significant digits of each numeric column's smallest value.
    width : int, default 80
    index : bool, default True
        Print the row labels.
    na : str, default "NA"
        How missing values print.
    digits_by : dict, optional
        Digits for particular columns.
    left : iterable of str
        Columns aligned left (text).
    formats : dict, optional
        A format specification (``".4f"``) for particular columns.
    """
    cells = _cells(frame, digits, na, digits_by, formats)
    left = set(left) | {c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])
                        and not is_pvalue_column(c)}
    labels = [str(i) for i in frame.index] if index else []
    lab_w = max((len(s) for s in labels), default=0)
    cols = list(frame.columns)
    widths = {c: max([len(str(c))] + [len(v) for v in cells[c]]) for c in cols}
    blocks, current, used = [], [], lab_w
    for c in cols:
        if current and used + 1 + widths[c] > width:
            blocks.append(current)
            current, used = [], lab_w
        current.append(c)
        used += 1 + widths[c]
    if current or not cols:
        blocks.append(current)
    out = []
    for block in blocks:
        def cell(text, c):
            return text.ljust(widths[c]) if c in left else text.rjust(widths[c])
        head = ([" " * lab_w] if index else []) + [cell(str(c), c) for c in block]
        lines = [" ".join(head).rstrip()]
        for i in range(len(frame)):
            row = ([labels[i].ljust(lab_w)] if index else []) + [cell(cells[c][i], c) for c in block]
            lines.append(" ".join(row).rstrip())
        out.append("\n".join(lines))
    return "\n\n".join(out)


def html_table(frame: pd.DataFrame, digits: int = 5, caption: str | None = None, index: bool = True,
               na: str = "", digits_by: Mapping[str, int] | None = None,
               formats: Mapping[str, str] | None = None) -> str:
    """The cells :func:`format_table` prints, as an HTML ``<table>`` (text columns left-aligned)."""
    cells = _cells(frame, digits, na, digits_by, formats)
    esc = html.escape
    text_cols = {c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c]) and not is_pvalue_column(c)}

    def cls(c):
        return ' class="mm-l"' if c in text_cols else ""
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{esc(caption)}</caption>")
    head = ("<th></th>" if index else "") + "".join(f"<th{cls(c)}>{esc(str(c))}</th>" for c in frame.columns)
    parts.append(f"<thead><tr>{head}</tr></thead><tbody>")
    for i, label in enumerate(frame.index):
        row = (f'<th class="mm-l">{esc(str(label))}</th>' if index else "")
        row += "".join(f"<td{cls(c)}>{esc(cells[c][i])}</td>" for c in frame.columns)
        parts.append(f"<tr>{row}</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def html_rows(header: list[str], body: list[list[str]], caption: str | None = None,
              left: Iterable[int] = (0,)) -> str:
    """Rows of already formatted cells as an HTML ``<table>`` (columns ``left`` left-aligned)."""
    esc = html.escape
    left = set(left)

    def cls(j):
        return ' class="mm-l"' if j in left else ""
    parts = ["<table>"] + ([f"<caption>{esc(caption)}</caption>"] if caption else [])
    parts.append("<thead><tr>" + "".join(f"<th{cls(j)}>{esc(str(h))}</th>" for j, h in enumerate(header))
                 + "</tr></thead><tbody>")
    for row in body:
        parts.append("<tr>" + "".join(f"<td{cls(j)}>{esc(str(c))}</td>" for j, c in enumerate(row)) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def html_block(*pieces: str, title: str | None = None) -> str:
    """HTML pieces (tables, paragraphs) in one styled ``<div>``."""
    head = f"<p><b>{html.escape(title)}</b></p>" if title else ""
    return f'<div class="mm-result">{_CSS}{head}{"".join(pieces)}</div>'


def text_block(*lines: str) -> str:
    """Lines of text as HTML paragraphs (escaped)."""
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines if line is not None)


# -- the anova table ---------------------------------------------------------------------------------
def _anova_shown(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The anova columns as lme4 prints them (``Df`` as integers) and per-column digits."""
    shown = pd.DataFrame(table).copy()
    for c in ("npar", "Df"):
        if c in shown.columns:
            shown[c] = shown[c].astype("Int64")
    return shown, {}


def format_anova(table: pd.DataFrame, width: int = 80, stars: bool = True) -> str:
    """The likelihood-ratio table of :func:`~mixedmodels.postestimation.compare.anova` as lme4
    prints it: the models' formulas, 5 significant digits, blank cells for the first model,
    ``format.pval`` p-values and significance stars.

    Parameters
    ----------
    table : pandas.DataFrame
        The result of ``mm.anova(...)`` (its ``attrs`` carry the formulas).
    width : int, default 80
    stars : bool, default True
        Append R's significance stars and their legend.
    """
    shown, _ = _anova_shown(table)
    lines = []
    attrs = getattr(table, "attrs", {}) or {}
    if attrs.get("data_name"):
        lines.append(f"Data: {attrs['data_name']}")
    formulas = attrs.get("formulas") or {}
    if formulas:
        lines.append("Models:")
        lines += [f"{name}: {formulas[name]}" for name in shown.index if name in formulas]
    if attrs.get("refit"):
        lines.insert(0, "refitting model(s) with ML (instead of REML)")
    pcols = [c for c in shown.columns if is_pvalue_column(c)]
    with_stars = stars and pcols and shown[pcols[-1]].notna().any()
    if with_stars:
        shown[" "] = [signif_stars(p) for p in shown[pcols[-1]]]
    text = format_table(shown, digits=5, width=width, na="", left=[" "] if with_stars else [])
    lines.append(text)
    if with_stars:
        lines += ["---", _STARS_LEGEND]
    return "\n".join(lines)


def anova_html(table: pd.DataFrame) -> str:
    """The anova table as HTML (formulas above the table, stars in their own column)."""
    shown, _ = _anova_shown(table)
    attrs = getattr(table, "attrs", {}) or {}
    formulas = attrs.get("formulas") or {}
    pcols = [c for c in shown.columns if is_pvalue_column(c)]
    if pcols and shown[pcols[-1]].notna().any():
        shown[" "] = [signif_stars(p) for p in shown[pcols[-1]]]
    lines = [f"{name}: {formulas[name]}" for name in shown.index if name in formulas]
    if attrs.get("refit"):
        lines.append("(REML fits refit with ML)")
    return html_block(text_block(*lines), html_table(shown, digits=5), title="Likelihood-ratio tests")
