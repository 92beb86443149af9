"""The printed summary of a fitted model, as lme4's ``summary(m)`` and ``print(m)``; registered as
``MixedModel.summary`` and ``repr``."""

from __future__ import annotations

import html as _html

import numpy as np
import pandas as pd

from ..models.base import implements
from .display import html_block, html_rows, text_block

__all__ = ["summary", "model_repr", "Summary"]


def _format_column(values, digits: int = 4) -> list[str]:
    """Format a column with a common number of decimals, as R's ``format`` does for a vector."""
    vals = np.asarray(values, dtype=float)
    finite = vals[np.isfinite(vals) & (vals != 0)]
    if finite.size == 0:
        return ["0" if v == 0 else "NA" for v in vals]
    # decimals so that the smallest magnitude keeps `digits` significant digits (capped like R)
    smallest = np.min(np.abs(finite))
    decimals = int(max(0, min(15, digits - 1 - np.floor(np.log10(smallest)))))
    largest = np.max(np.abs(finite))
    if largest >= 1e15 or smallest < 1e-15:
        return [f"{v:.{digits}e}" for v in vals]
    return [f"{v:.{decimals}f}" if np.isfinite(v) else "NA" for v in vals]


def _table(rows: list[list[str]], header: list[str], align_left: set[int] | frozenset = frozenset(),
           indent: str = " ", equal_widths: bool = False) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    if equal_widths:
        widths = [max(widths)] * len(widths)
    lines = []
    for r in [header] + rows:
        cells = [str(c).ljust(w) if i in align_left else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        lines.append(indent + " ".join(cells).rstrip())
    return "\n".join(lines)


# -- printing --------------------------------------------------------------------------------
def _header_lines(self) -> list[str]:
    lines = [f"{self.model_label} ['{self.r_class}']"]
    if not self.family.linear:
        lines.append(f" Family: {self.family.label}  ( {self.family.link.name} )")
    lines.append(f"Formula: {self.design.formula.text}")
    if getattr(self, "data_name", None):
        lines.append(f"   Data: {self.data_name}")
    if self.design.n_dropped:
        zero = int(self.design.extra.get("zero_weight_rows", 0))
        why = "missing values" if not zero else (
            f"missing values or zero weights ({zero} with prior weight 0)"
            if zero < self.design.n_dropped else "zero prior weights")
        lines.append(f"{self.nobs} observations used, {self.design.n_dropped} dropped for {why}")
    lines.append("")
    if self.family.linear and self.reml:
        lines.append(f"REML criterion at convergence: {self.reml_criterion:.1f}")
    else:
        header = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        dev = -2.0 * self.loglik
        vals = [f"{self.aic:.1f}", f"{self.bic:.1f}", f"{self.loglik:.1f}", f"{dev:.1f}",
                f"{self.nobs - self.npar}"]
        widths = [max(len(h), len(v)) for h, v in zip(header, vals)]
        lines.append(" ".join(h.rjust(w) for h, w in zip(header, widths)))
        lines.append(" ".join(v.rjust(w) for v, w in zip(vals, widths)))
    return lines

def _random_effects_rows(self) -> tuple[list[str], list[list[str]]]:
    """The header and formatted rows of lme4's random-effects table (``formatVC``)."""
    rows = []
    param = self.factor.parametrization
    for i, (term, cov) in enumerate(zip(self.design.terms, self.term_covariances())):
        if not param.terms[i].linear:  # cs, ar1, ou: the sds, then "rho 0.72" or "rate 0.70"
            shown = param.terms[i].summary_rows(param.term_theta(self.theta, i),
                                                np.sqrt(self.residual_variance_scale), term.lhs, term.columns)
            sds = [r for r in shown if r[1] is None]
            extra = [f"{r[1]} {r[3]:.2f}" for r in shown if r[1] is not None]
            for j, r in enumerate(sds):
                rows.append(([term.name if j == 0 else "", r[0], r[2], r[3]], extra if j == 0 else []))
            continue
        sd = np.sqrt(np.diag(cov))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / np.outer(sd, sd)
        for j, col in enumerate(term.columns):
            cells = [term.name if j == 0 else "", col, cov[j, j], sd[j]]
            cors = [f"{corr[j, i]:.2f}" for i in range(j)]
            rows.append((cells, cors))
    if self.has_scale:
        rows.append((["Residual", "", self.sigma ** 2, self.sigma], []))
    var_txt = _format_column([r[0][2] for r in rows])
    sd_txt = _format_column([r[0][3] for r in rows])
    ncor = max((len(r[1]) for r in rows), default=0)
    header = ["Groups", "Name", "Variance", "Std.Dev."]
    if ncor:
        header += ["Corr"] + [""] * (ncor - 1)
    body = []
    for (cells, cors), v, s in zip(rows, var_txt, sd_txt):
        line = [cells[0], cells[1], v, s]
        if ncor:
            line += cors + [""] * (ncor - len(cors))
        body.append(line)
    return header, body


def _groups_line(self) -> str:
    groups = ", ".join(f"{g}, {n}" for g, n in self.ngroups.items())
    return f"Number of obs: {self.nobs}, groups:  {groups}"


def _random_effects_lines(self) -> list[str]:
    header, body = _random_effects_rows(self)
    # lme4 prints this table left-aligned (formatVC, print(right = FALSE))
    table = _table(body, header, align_left=set(range(len(header))))
    return ["Random effects:", table, _groups_line(self)]


def _fixed_effects_rows(self, table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The header and formatted rows of the coefficient table (R's ``printCoefmat``)."""
    cols = list(table.columns)
    formatted = {}
    # R's printCoefmat gives the estimate and its standard error the same decimals
    joint = [c for c in ("Estimate", "Std. Error") if c in cols]
    if joint:
        both = _format_column(np.concatenate([table[c].to_numpy() for c in joint]))
        for k, c in enumerate(joint):
            formatted[c] = both[k * len(table):(k + 1) * len(table)]
    for c in cols:
        if c in formatted:
            continue
        if c.startswith("Pr("):
            formatted[c] = [_format_p(v) for v in table[c]]
        elif c == "df":
            formatted[c] = [f"{v:.2f}" for v in table[c]]
        elif c in ("t value", "z value"):
            formatted[c] = [f"{v:.3f}" for v in table[c]]
        else:
            formatted[c] = _format_column(table[c].to_numpy())
    body = [[name] + [formatted[c][i] for c in cols] for i, name in enumerate(table.index)]
    return [""] + cols, body


def _fixed_effects_lines(self, table: pd.DataFrame) -> list[str]:
    header, body = _fixed_effects_rows(self, table)
    return ["Fixed effects:", _table(body, header, align_left={0}, indent="")]


def _correlation_rows(self) -> tuple[list[str], list[list[str]]] | None:
    vc = self.vcov.to_numpy()
    p = vc.shape[0]
    if p < 2:
        return None
    sd = np.sqrt(np.diag(vc))
    corr = vc / np.outer(sd, sd)
    names = list(self.vcov.index)
    short = [_abbreviate(n) for n in names]
    body = []
    for i in range(1, p):
        body.append([names[i]] + [f"{round(corr[i, j], 3) + 0.0:.3f}" for j in range(i)] + [""] * (p - 1 - i))
    return [""] + short[:-1], body


_MAX_CORRELATION_P = 12   # lme4 prints the correlations for at most 12 fixed effects


def _wrapped_table(rows: list[list[str]], header: list[str], label_columns: int = 1, width: int = 80,
                   **kwargs) -> str:
    """:func:`_table` split into blocks of columns that fit ``width``, each block repeating the
    first ``label_columns`` columns, as R wraps a wide matrix."""
    cols = list(range(label_columns, len(header)))
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lab = sum(widths[:label_columns]) + label_columns + len(kwargs.get("indent", " "))
    blocks, current, used = [], [], lab
    for j in cols:
        if current and used + widths[j] + 1 > width:
            blocks.append(current)
            current, used = [], lab
        current.append(j)
        used += widths[j] + 1
    blocks.append(current)
    keep = list(range(label_columns))
    return "\n".join(_table([[r[i] for i in keep + b] for r in rows], [header[i] for i in keep + b], **kwargs)
                     for b in blocks)


def _correlation_lines(self) -> list[str]:
    p = len(self.fixef)
    if p > _MAX_CORRELATION_P:
        return [f"Correlation matrix not shown by default, as p = {p} > {_MAX_CORRELATION_P}.",
                "Use m.vcov (or its correlations) if you need it"]
    rows = _correlation_rows(self)
    if rows is None:
        return []
    return ["Correlation of Fixed Effects:", _wrapped_table(rows[1], rows[0], align_left={0}, indent="")]

@implements("summary")
def summary(self, **kwargs) -> "Summary":
    """A summary printed like lme4's ``summary(m)``; keyword arguments go to :meth:`coef_table`."""
    table = self.coef_table(**kwargs)
    lines = _header_lines(self) + [""]
    probs = [0, 0.25, 0.5, 0.75, 1.0]
    quantiles_of = getattr(self, "residual_quantiles", None)  # streamed fits: a pass where the rows are
    if quantiles_of is not None:
        q = quantiles_of(probs, type="pearson", scaled=self.family.linear)
    else:
        resid = np.asarray(self.residuals(type="pearson", scaled=self.family.linear), dtype=float)
        q = np.quantile(resid[np.isfinite(resid)], probs)
    quantiles = [[f"{v:.4f}" for v in q]], ["Min", "1Q", "Median", "3Q", "Max"]
    lines += ["Scaled residuals: ", _table(*quantiles, indent="", equal_widths=True), ""]
    lines += _random_effects_lines(self) + [""]
    lines += _fixed_effects_lines(self, table)
    corr = _correlation_lines(self)
    if corr:
        lines += [""] + corr
    notes = self.summary_notes()
    if notes:
        lines += [""] + notes
    return Summary("\n".join(lines), table, html=_summary_html(self, table, quantiles, notes))


def _header_html(self) -> str:
    return text_block(*[line for line in _header_lines(self) if line])


def _summary_html(self, table: pd.DataFrame, quantiles, notes: list[str]) -> str:
    re_head, re_body = _random_effects_rows(self)
    fe_head, fe_body = _fixed_effects_rows(self, table)
    pieces = [_header_html(self),
              html_rows(quantiles[1], quantiles[0], caption="Scaled residuals", left=()),
              html_rows(re_head, re_body, caption="Random effects", left={0, 1}),
              text_block(_groups_line(self)),
              html_rows(fe_head, fe_body, caption="Fixed effects")]
    corr = _correlation_rows(self) if len(self.fixef) <= _MAX_CORRELATION_P else None
    if corr is not None:
        pieces.append(html_rows(corr[0], corr[1], caption="Correlation of fixed effects"))
    if notes:
        pieces.append(text_block(*notes))
    return html_block(*pieces)

@implements("repr")
def model_repr(self) -> str:
    lines = _header_lines(self) + [""] + _random_effects_lines(self) + [""]
    fe = self.fixef
    lines += ["Fixed Effects:", _wrapped_table([[f"{v:.4g}" for v in fe]], list(fe.index), label_columns=0)]
    return "\n".join(lines)


class Summary(str):
    """The printed summary; also carries the coefficient table as ``.coefficients``, and its
    HTML tables for Jupyter."""

    def __new__(cls, text: str, coefficients: pd.DataFrame, html: str | None = None):
        obj = super().__new__(cls, text)
        obj.coefficients = coefficients
        obj.html = html
        return obj

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return self.html if self.html else f"<pre>{_html.escape(str(self))}</pre>"

    def to_frame(self) -> pd.DataFrame:
        """The coefficient table."""
        return self.coefficients


def _format_p(p: float) -> str:
    if not np.isfinite(p):
        return "NA"
    if p < 2e-16:
        return "<2e-16"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}"


def _abbreviate(name: str, width: int = 6) -> str:
    """Short column labels like R's ``abbreviate``: drop lower-case vowels, then lower-case
    letters, from the right (never the first character), then truncate."""
    chars = list(name)
    for droppable in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > width and i > 0:
            if chars[i] in droppable:
                del chars[i]
            i -= 1
    return "".join(chars[:width])
