"""statsmodels-style names on fitted models, for pandas users: ``.params``, ``.bse``,
``.tvalues``, ``.pvalues`` and ``.conf_int()``.

They are views of :meth:`~mixedmodels.models.base.MixedModel.coef_table`; importing this module
adds them to :class:`~mixedmodels.models.base.MixedModel`, as :mod:`mixedmodels.presentation.results`
adds the summary (the first use of a public name or of the aliases imports it:
:func:`mixedmodels.models.base.load_extensions`).
"""

from __future__ import annotations

import pandas as pd

from ..models.base import MixedModel

__all__ = ["params", "bse", "tvalues", "pvalues", "conf_int"]


def params(self) -> pd.Series:
    """The fixed-effect estimates (``fixef``), as statsmodels' ``params``."""
    return self.fixef.rename("params")


def bse(self) -> pd.Series:
    """Standard errors of the fixed effects, as statsmodels' ``bse``."""
    return self.coef_table()["Std. Error"].rename("bse")


def tvalues(self) -> pd.Series:
    """The Wald statistics (t for LMMs, z for GLMMs), as statsmodels' ``tvalues``."""
    table = self.coef_table()
    return table[self.family.coef_statistic].rename("tvalues")


def pvalues(self) -> pd.Series:
    """Two-sided p-values of the fixed effects: Satterthwaite t tests for LMMs (lmerTest's
    default ``summary``; lme4 prints none), Wald z tests for GLMMs (lme4's ``summary``)."""
    table = self.coef_table(ddf="satterthwaite") if self.family.linear else self.coef_table()
    pcol = [c for c in table.columns if c.startswith("Pr(")][0]
    return table[pcol].rename("pvalues")


def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
    """Wald intervals for the fixed effects at level ``1 - alpha``, as statsmodels'
    ``conf_int`` (columns ``0`` and ``1``); :meth:`confint` has profile and bootstrap ones."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    ci = self.confint(method="wald", level=1.0 - alpha).loc[list(self.fixef.index)]
    return pd.DataFrame({0: ci.iloc[:, 0].to_numpy(), 1: ci.iloc[:, 1].to_numpy()}, index=ci.index)


for _name in ("params", "bse", "tvalues", "pvalues"):
    setattr(MixedModel, _name, property(globals()[_name]))
MixedModel.conf_int = conf_int
