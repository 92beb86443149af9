"""The printed summary of a cumulative-link mixed model, laid out as ordinal's ``summary(clmm)``."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

__all__ = ["OrdinalSummary"]


class OrdinalSummary:
    """What ``summary()`` of a clmm returns: ``str()`` is ordinal's layout; the tables are
    attributes (``coefficients``, ``thresholds``, ``random_effects``, ``fit``)."""

    def __init__(self, model):
        tab = model.coef_table()
        na = len(model.thresholds_spec.names)
        self.thresholds: pd.DataFrame = tab.iloc[:na]
        self.coefficients: pd.DataFrame = tab.iloc[na:]
        vc = model.varcorr
        vc = vc[vc["var2"].isna()]
        self.random_effects = pd.DataFrame({"Groups": vc["group"].to_numpy(), "Name": vc["var1"].to_numpy(),
                                            "Variance": vc["vcov"].to_numpy(),
                                            "Std.Dev.": vc["sdcor"].to_numpy()})
        self.fit = pd.DataFrame({"link": [model.link.name], "threshold": [model.threshold],
                                 "nobs": [model.nobs], "logLik": [model.loglik], "AIC": [model.aic],
                                 "niter": [model.optinfo.nevals if model.optinfo else np.nan]})
        self.header = model.model_label
        self.formula = model.design.formula.text
        self.ngroups = model.ngroups
        self.notes = model.summary_notes()

    def __str__(self) -> str:
        lines = [self.header, "", f"formula: {self.formula}", "",
                 self.fit.to_string(index=False), "", "Random effects:",
                 self.random_effects.to_string(index=False),
                 "Number of groups: " + ", ".join(f"{g} {n}" for g, n in self.ngroups.items()), "",
                 "Coefficients:", self.coefficients.to_string(float_format=lambda v: f"{v:.5g}")
                 if len(self.coefficients) else "(none)", "",
                 "Threshold coefficients:",
                 self.thresholds.drop(columns="Pr(>|z|)").to_string(float_format=lambda v: f"{v:.5g}")]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"
