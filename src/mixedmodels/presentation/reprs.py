"""The two faces of every result object: a text ``__repr__`` that reads like R's print and fits
80 columns, and a ``_repr_html_`` with HTML tables for Jupyter.

The result classes live in the layers below (post-estimation, alternatives), which know nothing
of presentation; importing this module registers their printing on them, as
:mod:`mixedmodels.presentation.results` registers the model's summary (their first print
imports it: :func:`mixedmodels.models.base.printed_by_presentation`).
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from ..alternatives.compare import ComparisonResult
from ..postestimation.bootstrap import BootstrapResult
from ..postestimation.caic import CAICResult
from ..postestimation.compare import AICTable, AnovaTable
from ..postestimation.crossval import CrossValidationResult
from ..postestimation.diagnostics import AllFitResult, RePCA
from ..postestimation.variance import VarianceResult
from .display import anova_html, format_anova, format_table, html_block, html_table, text_block

__all__ = ["register"]

_WIDTH = 80


def _wrap(text: str | None) -> list[str]:
    return textwrap.wrap(text, _WIDTH) if text else []


def _frame(obj) -> pd.DataFrame:
    """A plain DataFrame copy of a DataFrame subclass (so its own repr does not recurse)."""
    return pd.DataFrame(obj)


# -- anova and aic_table ------------------------------------------------------------------------
def _anova_repr(self) -> str:
    try:
        return format_anova(self, width=_WIDTH)
    except (KeyError, TypeError, ValueError):   # a reshaped table: print it as a frame
        return format_table(_frame(self), width=_WIDTH, na="")


def _anova_html(self) -> str:
    try:
        return anova_html(self)
    except (KeyError, TypeError, ValueError):
        return html_block(html_table(_frame(self)))


_AIC_FORMATS = {"weight": ".4f", "dAIC": ".2f", "dAICc": ".2f", "dBIC": ".2f", "dcAIC": ".2f"}


def _aic_repr(self) -> str:
    return format_table(_frame(self), width=_WIDTH, formats=_AIC_FORMATS)


def _aic_html(self) -> str:
    return html_block(html_table(_frame(self), formats=_AIC_FORMATS), title="Information criteria")


# -- r2 / icc / caic --------------------------------------------------------------------------------
_LABELS = {"marginal": "Marginal R2", "conditional": "Conditional R2", "adjusted": "Adjusted ICC",
           "unadjusted": "Unadjusted ICC"}


def _variance_lines(self) -> list[str]:
    labels = {k: _LABELS.get(k, k) for k in self}
    w = max(len(v) for v in labels.values()) if labels else 0
    lines = [f"# {self.title}" if self.title else "# Variance-based statistics", ""]
    for k, v in self.items():
        lines.append(f"  {labels[k].rjust(w)}: {v:.3f}" if isinstance(v, float) and np.isfinite(v)
                     else f"  {labels[k].rjust(w)}: {v}")
    if self.note:
        lines += [""] + _wrap(f"Note: {self.note}")
    return lines


def _variance_repr(self) -> str:
    return "\n".join(_variance_lines(self))


def _variance_html(self) -> str:
    table = pd.DataFrame({"value": [float(v) for v in self.values()]},
                         index=[_LABELS.get(k, k) for k in self])
    comp = pd.DataFrame({"variance": [float(v) for v in self.components.values()]},
                        index=list(self.components))
    return html_block(html_table(table, digits=3), html_table(comp, digits=4, caption="Variance components"),
                      text_block(f"Note: {self.note}" if self.note else None), title=self.title)


def _caic_lines(self) -> list[str]:
    lines = [f"Conditional log-likelihood:  {self['conditional_loglik']:.2f}",
             f"Degrees of freedom:  {self['df']:.2f}",
             f"Conditional Akaike information criterion:  {self['caic']:.2f}"]
    if self.get("new"):
        lines.append("(computed on the model refit without its zero-variance random effects: .reduced_model)")
    return lines


def _caic_repr(self) -> str:
    return "\n".join(_caic_lines(self))


def _caic_html(self) -> str:
    return html_block(html_table(self.to_frame(), index=False), title="Conditional AIC")


# -- all_fit / rePCA ---------------------------------------------------------------------------------
def _allfit_shown(self) -> pd.DataFrame:
    frame = _frame(self)
    # the messages column is long text: printed after the table, not in it
    return frame.drop(columns=[c for c in ("messages",) if c in frame.columns])


def _allfit_repr(self) -> str:
    lines = [format_table(_allfit_shown(self), width=_WIDTH, digits=6, formats={"seconds": ".2f"})]
    if "messages" in self.columns:
        for opt, msg in zip(self.get("optimizer", self.index), self["messages"]):
            if isinstance(msg, str) and msg:
                lines += _wrap(f"{opt}: {msg}")
    lines += [""] + _wrap(str(getattr(self, "verdict", "") or ""))
    return "\n".join(lines).rstrip()


def _allfit_html(self) -> str:
    verdict = str(getattr(self, "verdict", "") or "")
    return html_block(html_table(_frame(self), digits=6, formats={"seconds": ".2f"}), text_block(verdict),
                      title="all_fit: every optimizer")


def _repca_repr(self) -> str:
    out = []
    for name, table in self.items():
        out.append(f"${name}: {self.dims[name]} of {self.ncols[name]} dimensions used\n"
                   + format_table(table.T.rename(index={"sdev": "Standard deviation",
                                                        "proportion": "Proportion of Variance",
                                                        "cumulative": "Cumulative Proportion"}),
                                  digits=4, width=_WIDTH))
    return "\n\n".join(out)


def _repca_html(self) -> str:
    return html_block(*[html_table(t, digits=4, caption=f"{n}: {self.dims[n]} of {self.ncols[n]} dimensions used")
                        for n, t in self.items()], title="rePCA")


# -- bootstrap / cross_validate / compare_approaches ---------------------------------------------------
def _boot_table(self) -> pd.DataFrame:
    return pd.DataFrame({"original": self.observed, "bias": self.replicates.mean() - self.observed,
                         "std. error": self.std_error})


def _boot_header(self) -> str:
    return (f"Parametric bootstrap: {len(self.replicates)} replicates"
            + (f", {self.n_failed} failed" if self.n_failed else "")
            + (f" (seed {self.seed})" if self.seed is not None else ""))


def _boot_repr(self) -> str:
    return "\n".join([_boot_header(self), "", "Bootstrap Statistics :",
                      format_table(_boot_table(self), digits=5, width=_WIDTH)])


def _boot_html(self) -> str:
    return html_block(text_block(_boot_header(self)), html_table(_boot_table(self), caption="Bootstrap statistics"),
                      title="BootstrapResult")


def _cv_header(self) -> str:
    return f"Cross-validation by {self.by!r}: {self.folds['fold'].nunique()} folds (held-out clusters)"


def _cv_repr(self) -> str:
    return "\n".join([_cv_header(self), "", format_table(self.summary, digits=4, width=_WIDTH)])


def _cv_html(self) -> str:
    return html_block(text_block(_cv_header(self)), html_table(self.summary, digits=4), title="cross_validate")


def _side_by_side(self) -> pd.DataFrame:
    """One row per approach, one column per term: ``estimate (std. error)``."""
    table = self.table
    approaches = list(dict.fromkeys(table.columns.get_level_values(0)))
    out = {}
    for term in table.index:
        cells = []
        for a in approaches:
            est, se = table.loc[term, (a, "Estimate")], table.loc[term, (a, "Std. Error")]
            cells.append("-" if not np.isfinite(est) else f"{est:.4g} ({se:.2g})")
        out[term] = cells
    return pd.DataFrame(out, index=approaches)


def _comparison_repr(self) -> str:
    body = format_table(_side_by_side(self), width=_WIDTH, left=())
    paras: list[str] = []
    for line in self.footnote.splitlines():   # continuation lines (indented) join their bullet
        if line.startswith("  ") and paras:
            paras[-1] += " " + line.strip()
        else:
            paras.append(line)
    foot = [w for para in paras for w in (textwrap.wrap(para, _WIDTH, subsequent_indent="  ") or [""])]
    return "\n".join(_wrap(f"Fixed effects of {self.formula} under different approaches: estimate (std. error)")
                     + ["", body, ""] + foot)


def _comparison_html(self) -> str:
    return html_block(html_table(self.table, digits=4), text_block(*self.footnote.splitlines()),
                      title=f"Fixed effects of {self.formula} under different approaches")


_REGISTRY = {
    AnovaTable: (_anova_repr, _anova_html),
    AICTable: (_aic_repr, _aic_html),
    VarianceResult: (_variance_repr, _variance_html),
    CAICResult: (_caic_repr, _caic_html),
    AllFitResult: (_allfit_repr, _allfit_html),
    RePCA: (_repca_repr, _repca_html),
    BootstrapResult: (_boot_repr, _boot_html),
    CrossValidationResult: (_cv_repr, _cv_html),
    ComparisonResult: (_comparison_repr, _comparison_html),
}


def register(cls: type, text, html) -> None:
    """Give ``cls`` a text ``__repr__`` and an HTML ``_repr_html_`` (functions of the object)."""
    cls.__repr__ = text
    cls._repr_html_ = html
    _REGISTRY[cls] = (text, html)


for _cls, (_text, _html) in list(_REGISTRY.items()):
    register(_cls, _text, _html)
