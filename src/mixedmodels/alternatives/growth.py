"""Latent growth curves (structural-equation form of the random-slope model), by maximum likelihood.

With y_i the vector of a subject's T repeated measures, loadings Λ = [1, t] (ones for the
intercept factor, the time scores for the slope factor), factor means μ (+ Γ x_i for a
time-invariant covariate x), factor covariance Ψ and residual variances Θ (diagonal):

    y_i ~ N(Λ(μ + Γ x_i), Λ Ψ Λᵀ + Θ).

With equal residual variances (Θ = θI) this is exactly the linear mixed model
``lmer(y ~ time + (1 + time | id), REML = FALSE)``: μ are its fixed effects, Ψ its random-effect
covariance and θ its residual variance, and the two log-likelihoods agree. Free residual
variances (one per time point) are the usual LGC default and have no lmer counterpart.

Subjects that miss some of the common time points are handled by full-information ML (each
subject contributes the density of the time points it has).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import linalg

from ..core.lazy import lazy_import
from ..exceptions import ConvergenceWarning, MissingDataWarning
from ..models.lmm import LinearMixedModel
from ..spec.design import build_design
from .estimators import r_style_name

stats = lazy_import("scipy.stats")
optimize = lazy_import("scipy.optimize")

__all__ = ["growth_curve", "GrowthCurveResult"]

_LOG2PI = np.log(2 * np.pi)


class TextSummary(str):
    """Text of a summary; shows as plain text at the prompt."""

    def __repr__(self) -> str:
        return str(self)


class _Model:
    """Log-likelihood and its gradient for the LGC, grouped by pattern of observed time points.

    Each pattern keeps the cross-products of its (centred) outcomes and of the subject design
    z = [1, x], so an evaluation costs O(patterns · T³), independent of the number of subjects.
    """

    def __init__(self, Y: np.ndarray, Xc: np.ndarray, times: np.ndarray, equal: bool):
        self.T = Y.shape[1]
        self.q = Xc.shape[1]
        self.equal = equal
        self.Lam = np.column_stack([np.ones(self.T), times])
        Z = np.column_stack([np.ones(len(Y)), Xc])
        observed = ~np.isnan(Y)
        keys, inverse = np.unique(observed, axis=0, return_inverse=True)
        self.patterns = []
        for j, mask in enumerate(keys):
            rows = np.flatnonzero(inverse.ravel() == j)
            Yp, Zp = Y[np.ix_(rows, mask)], Z[rows]
            # centre the outcomes so that the cross-products keep their precision
            c = Yp.mean(axis=0)
            Yc = Yp - c
            self.patterns.append((mask, len(rows), c, Yc.T @ Yc, Zp.T @ Yc, Zp.T @ Zp))
        self.n_theta = 1 if equal else self.T
        self.n_nat = 2 + 2 * self.q + 3 + self.n_theta

    # natural parameters: mu(2), Gamma(2 x q, row-major), psi11, psi21, psi22, theta(1 or T)
    def split(self, nat: np.ndarray):
        q = self.q
        mu = nat[:2]
        gam = nat[2 : 2 + 2 * q].reshape(2, q)
        p11, p21, p22 = nat[2 + 2 * q : 5 + 2 * q]
        psi = np.array([[p11, p21], [p21, p22]])
        th = nat[5 + 2 * q :]
        theta = np.full(self.T, th[0]) if self.equal else th
        return mu, gam, psi, theta

    def loglik(self, nat: np.ndarray, grad: bool = False):
        mu, gam, psi, theta = self.split(nat)
        Lam = self.Lam
        sigma = Lam @ psi @ Lam.T + np.diag(theta)
        B = np.column_stack([mu, gam])  # factor means: mu + gam x = B z
        ll = 0.0
        G = np.zeros((self.T, self.T))
        dB = np.zeros_like(B)
        for mask, n_p, c, YY, ZY, ZZ in self.patterns:
            L = Lam[mask]
            S = sigma[np.ix_(mask, mask)]
            try:
                cf = linalg.cho_factor(S, lower=True)
            except linalg.LinAlgError:
                return (-np.inf, None) if grad else -np.inf
            # residuals r_i = (y_i - c) - M z_i with M = L B - c e1ᵀ; RR = Σ r_i r_iᵀ, RZ = Σ r_i z_iᵀ
            M = L @ B
            M[:, 0] -= c
            RZ = ZY.T - M @ ZZ
            RR = YY - ZY.T @ M.T - M @ ZY + M @ ZZ @ M.T
            Sinv = linalg.cho_solve(cf, np.eye(len(c)))
            logdet = 2 * np.sum(np.log(np.diag(cf[0])))
            ll -= 0.5 * (n_p * (len(c) * _LOG2PI + logdet) + np.sum(Sinv * RR))
            if grad:
                G[np.ix_(mask, mask)] += -0.5 * (n_p * Sinv - Sinv @ RR @ Sinv)
                dB += L.T @ Sinv @ RZ
        if not grad:
            return ll
        dmu, dgam = dB[:, 0], dB[:, 1:]
        D = Lam.T @ G @ Lam
        dth = np.diag(G)
        g = np.concatenate([dmu, dgam.ravel(), [D[0, 0], 2 * D[1, 0], D[1, 1]],
                            [dth.sum()] if self.equal else dth])
        return ll, g

    # optimisation parameters: Ψ through its Cholesky factor (log diagonal), Θ on the log scale
    def to_nat(self, x: np.ndarray) -> np.ndarray:
        k = 2 + 2 * self.q
        l11, l21, l22 = np.exp(x[k]), x[k + 1], np.exp(x[k + 2])
        psi = [l11 * l11, l21 * l11, l21 * l21 + l22 * l22]
        return np.concatenate([x[:k], psi, np.exp(x[k + 3 :])])

    def objective(self, x: np.ndarray):
        nat = self.to_nat(x)
        ll, g = self.loglik(nat, grad=True)
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(x)
        k = 2 + 2 * self.q
        l11, l21, l22 = np.exp(x[k]), x[k + 1], np.exp(x[k + 2])
        d11, d21, d22 = g[k], g[k + 1], g[k + 2]  # d ll / d(psi11, psi21, psi22)
        gx = g.copy()
        gx[k] = (2 * l11 * d11 + l21 * d21) * l11
        gx[k + 1] = l11 * d21 + 2 * l21 * d22
        gx[k + 2] = 2 * l22 * d22 * l22
        gx[k + 3 :] = g[k + 3 :] * nat[k + 3 :]
        return -ll, -gx


class GrowthCurveResult:
    """A fitted latent growth curve (see :func:`growth_curve`).

    Attributes
    ----------
    loglik : float
        Maximised log-likelihood (of the outcomes given the covariates).
    params : pandas.Series
        Estimates with lavaan-style names: ``i~1``, ``s~1`` (factor means), ``i~x``, ``s~x``
        (covariate effects), ``i~~i``, ``i~~s``, ``s~~s`` (factor covariance) and the residual
        variance(s) ``y.t~~y.t``.
    vcov : pandas.DataFrame
        Inverse observed information of ``params``.
    wide : pandas.DataFrame
        The data in wide form, one row per subject and one column per time point.
    residual : str
        ``"equal"`` or ``"free"``.
    n_subjects, n_incomplete : int
        Subjects used, and how many of them miss some time points (fitted by FIML).
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def npar(self) -> int:
        """Number of free parameters."""
        return len(self.params)

    @property
    def aic(self) -> float:
        """-2 logLik + 2 npar."""
        return -2 * self.loglik + 2 * self.npar

    @property
    def bic(self) -> float:
        """-2 logLik + log(subjects) npar: lavaan counts subjects (rows of the wide data), not observations."""
        return -2 * self.loglik + np.log(self.n_subjects) * self.npar

    @property
    def bse(self) -> pd.Series:
        """Standard errors from the observed information."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.params.index)

    def coef_table(self) -> pd.DataFrame:
        """Estimates, standard errors (observed information), z values and p-values.

        Returns
        -------
        pandas.DataFrame
            Columns ``Estimate``, ``Std. Error``, ``z value``, ``Pr(>|z|)``.
        """
        se = self.bse.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            z = self.params.to_numpy() / se
        return pd.DataFrame({"Estimate": self.params.to_numpy(), "Std. Error": se, "z value": z,
                             "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))}, index=self.params.index)

    @property
    def lmm_formula(self) -> str:
        """The linear mixed model that equals this growth curve when residual variances are equal."""
        cov = self.covariate_columns
        fixed = self.time if not cov else f"{self.time} * " + (cov[0] if len(cov) == 1 else f"({' + '.join(cov)})")
        return f"{self.y} ~ {fixed} + (1 + {self.time} | {self.id})"

    def _lmm_names(self) -> dict[str, str]:
        names = {"i~1": "(Intercept)", "s~1": self.time}
        for c in self.covariate_names:
            names[f"i~{c}"] = c
            names[f"s~{c}"] = f"{self.time}:{c}"
        return names

    def compare_lmm(self, lmm=None, verbose: bool = True) -> pd.DataFrame:
        """Set the growth curve beside the ML linear mixed model it equals, and say how they map.

        Parameters
        ----------
        lmm : fitted LMM, optional
            ``lmer(self.lmm_formula, data, reml=False)``; fitted here
            when not given.
        verbose : bool, default True
            Print the explanation of the equivalence.

        Returns
        -------
        pandas.DataFrame
            Rows: log-likelihood and the fixed effects; columns ``growth curve``, ``LMM (ML)``,
            ``difference``.
        """
        if lmm is None:
            lmm = LinearMixedModel(build_design(self.lmm_formula, self.data), reml=False).fit()
        names = self._lmm_names()
        rows = {"log-likelihood": (self.loglik, getattr(lmm, "loglik", np.nan))}
        fixef = getattr(lmm, "fixef", None)
        for lgc_name, lmm_name in names.items():
            other = float(fixef[lmm_name]) if fixef is not None and lmm_name in fixef.index else np.nan
            rows[f"{lgc_name} = {lmm_name}"] = (float(self.params[lgc_name]), other)
        table = pd.DataFrame(rows, index=["growth curve", "LMM (ML)"]).T
        table["difference"] = table["growth curve"] - table["LMM (ML)"]
        if verbose:
            print(self._equivalence_text(table))
        return table

    def _equivalence_text(self, table: pd.DataFrame) -> str:
        th = [p for p in self.params.index if p.startswith(f"{self.y}.")]
        lines = [f"Latent growth curve of {self.y!r} over {self.time!r} ({self.n_subjects} subjects, "
                 f"{len(self.times)} time points), ML."]
        if self.residual == "equal":
            lines += [
                "With equal residual variances it is the linear mixed model",
                f"  lmer({self.lmm_formula!r}, REML=FALSE):",
                f"  factor means i~1, s~1 = fixed effects (Intercept), {self.time}; i~~i, s~~s, i~~s = the",
                f"  random-effect variances and covariance of {self.id!r}; {th[0]} = the residual variance σ².",
            ]
            if self.covariate_names:
                lines.append(f"  Covariate effects i~x, s~x = fixed effects x and {self.time}:x.")
            diff = table.loc["log-likelihood", "difference"]
            if np.isfinite(diff):
                lines.append(f"  log-likelihoods: growth curve {self.loglik:.6f}, LMM {self.loglik - diff:.6f} "
                             f"(difference {diff:.2g}).")
            else:
                lines.append(f"  log-likelihood {self.loglik:.6f} (fit the LMM above to see the same number).")
        else:
            lines += [
                "With free residual variances (one per time point) it is NOT an lmer model: lmer assumes one",
                "residual variance. Refit with residual='equal' for the model that equals",
                f"  lmer({self.lmm_formula!r}, REML=FALSE);",
                "the likelihood-ratio test of equal against free variances compares the two growth curves.",
            ]
        return "\n".join(lines)

    def summary(self) -> TextSummary:
        """Fit information and the parameter table."""
        lines = [
            f"Latent growth curve (ML{', FIML for missing time points' if self.n_incomplete else ''}): "
            f"{self.y} over {self.time} by {self.id}",
            f"Subjects: {self.n_subjects} ({self.n_incomplete} with missing time points); "
            f"time scores: {', '.join(f'{t:g}' for t in self.times)}",
            f"Residual variances: {self.residual}",
            f"logLik: {self.loglik:.4f}   AIC: {self.aic:.4f}   BIC: {self.bic:.4f}   parameters: {self.npar}",
            "",
            self.coef_table().to_string(float_format=lambda v: f"{v:.6g}"),
        ]
        if self.residual == "equal":
            lines.append(f"\nEquals lmer({self.lmm_formula!r}, REML=FALSE); see compare_lmm().")
        return TextSummary("\n".join(lines))

    def __repr__(self) -> str:
        return str(self.summary())


def _reshape(data: pd.DataFrame, id: str, time: str, y: str, covariates: list[str]):
    for role, col in (("id", id), ("time", time), ("y", y), *(("covariate", c) for c in covariates)):
        if col not in data.columns:
            raise ValueError(f"{role} column {col!r} not found in data")
    clash = [c for c in covariates if c in (id, time, y)]
    if clash:
        raise ValueError(f"covariate column {clash[0]!r} is also the id, time or outcome column")
    if not pd.api.types.is_numeric_dtype(data[time]) or isinstance(data[time].dtype, pd.CategoricalDtype):
        raise ValueError(f"time column {time!r} must be numeric: its values are the slope factor's loadings")
    for col in (id, time):
        if data[col].isna().any():
            raise ValueError(f"column {col!r} has {int(data[col].isna().sum())} missing value(s)")
    frame = data[[id, time, y, *covariates]].copy()
    frame[id] = frame[id].astype(str) if not isinstance(frame[id].dtype, pd.CategoricalDtype) else frame[id]
    dup = frame.duplicated([id, time])
    if dup.any():
        first = frame.loc[dup].iloc[0]
        raise ValueError(f"subject {first[id]!r} has more than one row at {time} = {first[time]!r}; "
                         "a growth curve needs at most one measurement per subject and time point")
    frame = frame.loc[frame[y].notna()]
    counts = frame.groupby(time)[y].size()
    sparse = counts[counts < 2]
    if len(sparse):
        shown = ", ".join(f"{t:g}" for t in sparse.index[:8]) + (" ..." if len(sparse) > 8 else "")
        raise ValueError(
            f"time points differ between subjects: {len(sparse)} value(s) of {time!r} ({shown}) are observed "
            "for fewer than 2 subjects. Supported: subjects measured at (a subset of) one common set of time "
            "points; a subject that misses some of them is fitted by FIML. Individually varying times are "
            f"not: round {time!r} to common occasions, or fit lmer('{y} ~ {time} + (1 + {time} | {id})') "
            "(which equals this growth curve with equal residual variances)."
        )
    times = np.sort(counts.index.to_numpy(dtype=float))
    if len(times) < 3:
        raise ValueError(f"a linear growth curve needs at least 3 time points; {time!r} has {len(times)}")
    wide = frame.pivot(index=id, columns=time, values=y).reindex(columns=times)
    wide.columns = [f"{y}.{t:g}" for t in times]
    subj = None
    if covariates:
        per = frame.groupby(id, observed=True)
        varying = [c for c in covariates if (per[c].nunique(dropna=False) > 1).any()]
        if varying:
            raise ValueError(f"covariate column(s) {', '.join(map(repr, varying))} vary within {id!r}; "
                             "the growth curve takes time-invariant covariates only")
        subj = per[covariates].first().reindex(wide.index)
    return wide, times, subj


def growth_curve(data: pd.DataFrame, id: str, time: str, y: str, *,
                 covariates: str | Sequence[str] | None = None,
                 residual: str = "equal") -> GrowthCurveResult:
    """Fit a linear latent growth curve by maximum likelihood from long-form data.

    Parameters
    ----------
    data : pandas.DataFrame
        Long form: one row per subject and time point.
    id : str
        Subject column.
    time : str
        Numeric time column; its distinct values are the time points and the slope loadings.
    y : str
        Outcome column.
    covariates : str or list of str, optional
        Time-invariant covariates that predict the intercept and slope factors (dummy coded with
        R's treatment contrasts when categorical).
    residual : {"equal", "free"}, default "equal"
        Equal residual variances across time points (the model then equals the ML LMM
        ``lmer(y ~ time + (1 + time | id), REML=FALSE)``), or one per time point (lavaan's
        ``growth()`` default).

    Returns
    -------
    GrowthCurveResult
        ``.loglik``, ``.params``, ``.coef_table()``, ``.summary()``, ``.compare_lmm()``.

    Raises
    ------
    ValueError
        Missing columns, a non-numeric time, repeated (subject, time) rows, time-varying
        covariates, fewer than 3 time points, or time points that differ between subjects so
        much that a wide layout cannot hold them (individually varying times).

    Notes
    -----
    Subjects missing some time points (or with a missing outcome) are kept: full-information ML,
    valid when the values are missing at random; a warning says how many.
    """
    if residual not in ("equal", "free"):
        raise ValueError(f"residual must be 'equal' or 'free', got {residual!r}")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates or [])
    wide, times, subj = _reshape(data, id, time, y, covariates)
    if subj is not None:
        from formulaic import model_matrix


        complete = subj.notna().all(axis=1)
        if not complete.all():
            warnings.warn(f"{int((~complete).sum())} subject(s) with a missing covariate dropped (see "
                          "mm.missing_report)", MissingDataWarning, stacklevel=2)
            wide, subj = wide.loc[complete], subj.loc[complete]
        X = model_matrix("~ " + " + ".join(covariates), subj)
        cov_names = [r_style_name(c) for c in X.columns if c != "Intercept"]
        Xc = np.asarray(X, dtype=float)[:, [c != "Intercept" for c in X.columns]]
    else:
        cov_names, Xc = [], np.zeros((len(wide), 0))
    Y = wide.to_numpy(dtype=float)
    n_incomplete = int(np.isnan(Y).any(axis=1).sum())
    if n_incomplete:
        warnings.warn(f"{n_incomplete} of {len(Y)} subjects miss some of the {len(times)} time points of "
                      f"{time!r}; fitted by full-information ML (assumes missing at random)",
                      MissingDataWarning, stacklevel=2)

    model = _Model(Y, Xc, times, residual == "equal")
    x0 = _start(Y, Xc, times, model)
    fit = optimize.minimize(model.objective, x0, jac=True, method="BFGS",
                            options={"gtol": 1e-9, "maxiter": 2000})
    nat = model.to_nat(fit.x)
    nat = _newton_polish(model, nat)
    ll, grad = model.loglik(nat, grad=True)
    H = _hessian(model, nat)
    # Converged when the Newton decrement (the predicted gain of one more step) is negligible.
    try:
        decrement = float(grad @ linalg.solve(-H, grad, assume_a="sym"))
    except (linalg.LinAlgError, ValueError):
        decrement = np.inf
    converged = bool(np.isfinite(ll) and abs(decrement) < 1e-8)
    if not converged:
        warnings.warn("the growth curve's likelihood maximisation may not have converged "
                      f"(Newton decrement {decrement:.2g}); a variance may be near zero: simplify the model "
                      "(fewer covariates, residual='equal')", ConvergenceWarning, stacklevel=2)
    try:
        V = linalg.inv(-H)
    except linalg.LinAlgError:
        V = np.full_like(H, np.nan)

    names = ["i~1", "s~1"] + [f"{f}~{c}" for f in ("i", "s") for c in cov_names] + ["i~~i", "i~~s", "s~~s"]
    names += [f"{y}.t~~{y}.t (all t)"] if residual == "equal" else [f"{y}.{t:g}~~{y}.{t:g}" for t in times]
    params = pd.Series(nat, index=names)
    return GrowthCurveResult(
        loglik=float(ll), params=params, vcov=pd.DataFrame(V, index=names, columns=names), wide=wide,
        residual=residual, n_subjects=len(Y), n_incomplete=n_incomplete, times=times, id=id, time=time, y=y,
        covariate_columns=covariates, covariate_names=cov_names, data=data, converged=converged,
    )


def _start(Y: np.ndarray, Xc: np.ndarray, times: np.ndarray, model: _Model) -> np.ndarray:
    """Start values from per-subject least-squares lines."""
    coefs, rss, dfs = [], 0.0, 0
    for row in Y:
        ok = ~np.isnan(row)
        if ok.sum() >= 3:
            A = model.Lam[ok]
            b, res, *_ = linalg.lstsq(A, row[ok])
            coefs.append(b)
            rss += float(np.sum((row[ok] - A @ b) ** 2))
            dfs += int(ok.sum()) - 2
    B = np.array(coefs) if coefs else np.array([[np.nanmean(Y), 0.0]])
    theta = rss / dfs if dfs > 0 else np.nanvar(Y) / 2
    theta = max(theta, 1e-6 * np.nanvar(Y) + 1e-12)
    mu = B.mean(axis=0)
    psi = np.cov(B.T) if len(B) > 2 else np.diag([np.nanvar(Y), 1.0])
    psi = psi + np.diag(np.abs(np.diag(psi)) * 0.05 + 1e-6)
    try:
        L = linalg.cholesky(psi, lower=True)
    except linalg.LinAlgError:
        L = np.diag(np.sqrt(np.abs(np.diag(psi)) + 1e-6))
    th = [np.log(theta)] * model.n_theta
    return np.concatenate([mu, np.zeros(2 * model.q), [np.log(L[0, 0]), L[1, 0], np.log(L[1, 1])], th])


def _hessian(model: _Model, nat: np.ndarray) -> np.ndarray:
    """Hessian of the log-likelihood in the natural parameters, by central differences of the gradient."""
    k = len(nat)
    H = np.zeros((k, k))
    for j in range(k):
        h = 1e-5 * max(1.0, abs(nat[j]))
        e = np.zeros(k)
        e[j] = h
        H[:, j] = (model.loglik(nat + e, grad=True)[1] - model.loglik(nat - e, grad=True)[1]) / (2 * h)
    return (H + H.T) / 2


def _newton_polish(model: _Model, nat: np.ndarray, steps: int = 5) -> np.ndarray:
    """A few Newton steps in the natural parameters, so the optimum is met to rounding error."""
    ll = model.loglik(nat)
    for _ in range(steps):
        _, g = model.loglik(nat, grad=True)
        H = _hessian(model, nat)
        try:
            step = linalg.solve(-H, g, assume_a="sym")
        except (linalg.LinAlgError, ValueError):
            break
        new = nat + step
        new_ll = model.loglik(new)
        if not np.isfinite(new_ll) or new_ll < ll - 1e-10:
            break
        nat, ll = new, new_ll
        if np.max(np.abs(step)) < 1e-10:
            break
    return nat
