"""Results shared by fitted mixed models: information criteria, variance components, the summary."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

__all__ = ["MixedModelResults"]


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


class MixedModelResults:
    """Mix-in with what every fitted mixed model reports.

    Subclasses provide ``design``, ``loglik``, ``npar``, ``fixef``, ``vcov``, ``sigma``,
    ``theta``, ``factor``, ``_term_covariances()`` and ``_random_effects_b()``.
    """

    # -- parameters ------------------------------------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        """θ in lme4's order and parametrisation (terms sorted by number of levels)."""
        return self._theta.copy()

    @property
    def sigma(self) -> float:
        """Residual standard deviation (LMM) or dispersion; 1 for binomial and Poisson."""
        return self._sigma

    # -- counts and criteria ------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Number of observations used (after dropping missing values)."""
        return self.design.nobs

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.npar

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels of each grouping factor."""
        out: dict[str, int] = {}
        for term in self.design.terms:
            out.setdefault(term.group, term.nlevels)
        return out

    @property
    def is_reml(self) -> bool:
        return bool(getattr(self, "reml", False))

    # -- variance components -------------------------------------------------------------------
    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as a tidy table, like R's ``as.data.frame(VarCorr(m))``."""
        rows = []
        for term, cov in zip(self.design.terms, self._term_covariances()):
            sd = np.sqrt(np.diag(cov))
            for j, col in enumerate(term.columns):
                rows.append((term.name, col, None, cov[j, j], sd[j]))
            for j in range(len(term.columns)):
                for i in range(j + 1, len(term.columns)):
                    denom = sd[i] * sd[j]
                    corr = cov[i, j] / denom if denom > 0 else np.nan
                    rows.append((term.name, term.columns[j], term.columns[i], cov[i, j], corr))
        if self.family is None or getattr(self.family, "has_scale", False):
            rows.append(("Residual", None, None, self.sigma ** 2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "var1", "var2", "vcov", "sdcor"])

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, one DataFrame per grouping factor."""
        out: dict[str, pd.DataFrame] = {}
        for term, b in zip(self.design.terms, self._random_effects_b()):
            frame = pd.DataFrame(b, index=term.levels, columns=term.columns)
            frame.index.name = term.group
            if term.group in out:  # (1 | g) + (0 + x | g), or a split (x || g): one frame per factor
                prev = out[term.group]
                frame.columns = [c if c not in prev.columns else f"{c}.1" for c in frame.columns]
                out[term.group] = pd.concat([prev, frame], axis=1)
            else:
                out[term.group] = frame
        return out

    # -- coefficients -------------------------------------------------------------------------
    def coef_table(self, ddf: str | None = None) -> pd.DataFrame:
        """Estimates, standard errors and t (or z) statistics of the fixed effects.

        Parameters
        ----------
        ddf : {None, "satterthwaite", "kenward-roger", "asymptotic"}
            With a method, adds ``df`` and ``Pr(>|t|)`` columns (see :mod:`mixedmodels.inference`).
        """
        if ddf is not None:
            from ..postestimation.inference import coef_table_ddf

            return coef_table_ddf(self, ddf)
        est = self.fixef
        se = np.sqrt(np.diag(self.vcov.to_numpy()))
        stat = "t value" if self.family is None else "z value"
        return pd.DataFrame({"Estimate": est.to_numpy(), "Std. Error": se,
                             stat: est.to_numpy() / se}, index=est.index)

    # -- inference, prediction and plots (implemented in their own modules) -------------------
    def confint(self, method: str = "profile", level: float = 0.95, **kwargs) -> pd.DataFrame:
        """Confidence intervals: ``"profile"``, ``"wald"`` or ``"boot"`` (see :mod:`mixedmodels.inference`)."""
        from ..postestimation.inference import confint

        return confint(self, method=method, level=level, **kwargs)

    def predict(self, newdata: pd.DataFrame | None = None, **kwargs):
        """Predictions, optionally for new data (see :func:`mixedmodels.predict.predict`)."""
        from ..postestimation.predict import predict

        return predict(self, newdata, **kwargs)

    def simulate(self, n: int = 1, seed=None, **kwargs):
        """Simulated responses from the fitted model (see :func:`mixedmodels.predict.simulate`)."""
        from ..postestimation.predict import simulate

        return simulate(self, n=n, seed=seed, **kwargs)

    def ranef_table(self, **kwargs) -> pd.DataFrame:
        """Conditional modes with their conditional standard deviations (lme4's ``condVar``)."""
        from ..postestimation.inference import ranef_table

        return ranef_table(self, **kwargs)

    def plot_ranef(self, **kwargs):
        """Caterpillar plot of the random effects with intervals; returns the figure."""
        from .plots import plot_ranef

        return plot_ranef(self, **kwargs)

    def plot_residuals(self, **kwargs):
        """Residuals against fitted values and QQ plots; returns the figure."""
        from .plots import plot_residuals

        return plot_residuals(self, **kwargs)

    def plot_trajectories(self, **kwargs):
        """Fitted trajectories per group over the raw data; returns the figure."""
        from .plots import plot_trajectories

        return plot_trajectories(self, **kwargs)

    # -- printing -----------------------------------------------------------------------------
    def _header_lines(self) -> list[str]:
        kind = "lmerMod" if self.family is None else "glmerMod"
        lines = [f"{self.model_label} ['{kind}']"]
        if self.family is not None:
            lines.append(f" Family: {self.family.name}  ( {self.family.link.name} )")
        lines.append(f"Formula: {self.design.formula.text}")
        if getattr(self, "data_name", None):
            lines.append(f"   Data: {self.data_name}")
        if self.design.n_dropped:
            lines.append(f"{self.nobs} observations used, {self.design.n_dropped} dropped for "
                         "missing values")
        lines.append("")
        if self.family is None and self.reml:
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

    def _random_effects_lines(self) -> list[str]:
        rows = []
        for term, cov in zip(self.design.terms, self._term_covariances()):
            sd = np.sqrt(np.diag(cov))
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = cov / np.outer(sd, sd)
            for j, col in enumerate(term.columns):
                cells = [term.name if j == 0 else "", col, cov[j, j], sd[j]]
                cors = [f"{corr[j, i]:.2f}" for i in range(j)]
                rows.append((cells, cors))
        if self.family is None or getattr(self.family, "has_scale", False):
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
        # lme4 prints this table left-aligned (formatVC, print(right = FALSE))
        table = _table(body, header, align_left=set(range(len(header))))
        groups = ", ".join(f"{g}, {n}" for g, n in self.ngroups.items())
        return ["Random effects:", table, f"Number of obs: {self.nobs}, groups:  {groups}"]

    def _fixed_effects_lines(self, table: pd.DataFrame) -> list[str]:
        cols = list(table.columns)
        body = []
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
        for i, name in enumerate(table.index):
            body.append([name] + [formatted[c][i] for c in cols])
        return ["Fixed effects:", _table(body, [""] + cols, align_left={0}, indent="")]

    def _correlation_lines(self) -> list[str]:
        vc = self.vcov.to_numpy()
        p = vc.shape[0]
        if p < 2:
            return []
        sd = np.sqrt(np.diag(vc))
        corr = vc / np.outer(sd, sd)
        names = list(self.vcov.index)
        short = [_abbreviate(n) for n in names]
        body = []
        for i in range(1, p):
            body.append([names[i]] + [f"{round(corr[i, j], 3) + 0.0:.3f}" for j in range(i)] + [""] * (p - 1 - i))
        return ["Correlation of Fixed Effects:", _table(body, [""] + short[:-1], align_left={0}, indent="")]

    def summary(self, **kwargs) -> "Summary":
        """A summary printed like lme4's ``summary(m)``; keyword arguments go to :meth:`coef_table`."""
        table = self.coef_table(**kwargs)
        lines = self._header_lines() + [""]
        resid = self.residuals(scaled=True) if self.family is None else self.residuals(type="pearson")
        q = np.quantile(resid, [0, 0.25, 0.5, 0.75, 1.0])
        lines += ["Scaled residuals: ",
                  _table([[f"{v:.4f}" for v in q]], ["Min", "1Q", "Median", "3Q", "Max"], indent="",
                         equal_widths=True), ""]
        lines += self._random_effects_lines() + [""]
        lines += self._fixed_effects_lines(table)
        corr = self._correlation_lines()
        if corr:
            lines += [""] + corr
        notes = self._summary_notes()
        if notes:
            lines += [""] + notes
        return Summary("\n".join(lines), table)

    def _summary_notes(self) -> list[str]:
        notes = []
        if getattr(self, "is_singular", False):
            notes.append("boundary (singular) fit: see mm.help('singular')")
        for msg in getattr(self, "_check_messages", []):
            notes.append(msg)
        return notes

    def __repr__(self) -> str:
        lines = self._header_lines() + [""] + self._random_effects_lines() + [""]
        fe = self.fixef
        lines += ["Fixed Effects:", _table([[f"{v:.4g}" for v in fe]], list(fe.index))]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()


class Summary(str):
    """The printed summary; also carries the coefficient table as ``.coefficients``."""

    def __new__(cls, text: str, coefficients: pd.DataFrame):
        obj = super().__new__(cls, text)
        obj.coefficients = coefficients
        return obj

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


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
