"""Tidy tables of a fitted model, as R's broom.mixed: :func:`tidy`, :func:`glance`, :func:`augment`.

Column names are broom.mixed's (``effect, group, level, term, estimate, std.error, statistic,
df, p.value, conf.low, conf.high``; ``nobs, sigma, logLik, AIC, BIC, REMLcrit``/``deviance,
df.residual``; ``.fitted, .resid, .hat, .cooksd, .fixed, .mu, .offset, .sqrtXwt, .sqrtrwt,
.weights, .wtres`` and, for GLMMs, ``.eta``), so code written against broom.mixed reads the same
columns. The results are pandas DataFrames.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp

from ..sources.frames import as_pandas

__all__ = ["tidy", "glance", "augment", "hat_values"]

_EFFECTS = ("fixed", "ran_pars", "ran_vals", "ran_coefs")
_CONF_METHODS = {"wald": "wald", "profile": "profile", "boot": "boot", "bootstrap": "boot"}


def _normal_quantile(level: float) -> float:
    from scipy import stats

    if not 0.0 < level < 1.0:
        raise ValueError(f"conf_level must be between 0 and 1, got {level!r}")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def _as_effects(effects) -> list[str]:
    items = [effects] if isinstance(effects, str) else list(effects)
    bad = [e for e in items if e not in _EFFECTS]
    if bad:
        raise ValueError(f"unknown effects {bad}; choose from {', '.join(_EFFECTS)}")
    # broom.mixed binds fixed, ran_pars, ran_vals, ran_coefs in that order, whatever the order asked
    return [e for e in _EFFECTS if e in items]


def _intervals(model, method: str, level: float, kwargs: dict) -> pd.DataFrame:
    return model.confint(method=method, level=level, **kwargs)


def _fixed(model, conf_int: bool, level: float, method: str, ddf_method: str | None,
           exponentiate: bool, ci_kwargs: dict) -> pd.DataFrame:
    table = model.coef_table(ddf=ddf_method) if ddf_method else model.coef_table()
    stat = [c for c in table.columns if c.endswith(" value")]
    pcol = [c for c in table.columns if c.startswith("Pr(")]
    out = pd.DataFrame({"effect": "fixed", "group": None, "term": list(table.index),
                        "estimate": table["Estimate"].to_numpy(),
                        "std.error": table["Std. Error"].to_numpy()})
    out["statistic"] = table[stat[0]].to_numpy() if stat else out["estimate"] / out["std.error"]
    if "df" in table.columns:
        out["df"] = table["df"].to_numpy()
    if pcol:
        out["p.value"] = table[pcol[0]].to_numpy()
    if conf_int:
        if method == "wald":
            q = _normal_quantile(level)
            lo, hi = out["estimate"] - q * out["std.error"], out["estimate"] + q * out["std.error"]
        else:
            ci = _intervals(model, method, level, ci_kwargs)
            lo, hi = ci.iloc[:, 0].reindex(out["term"]).to_numpy(), ci.iloc[:, 1].reindex(out["term"]).to_numpy()
        out["conf.low"], out["conf.high"] = np.asarray(lo, float), np.asarray(hi, float)
    if exponentiate:  # broom.mixed: exp() of estimate and interval, delta-method standard error
        for c in ("estimate", "conf.low", "conf.high"):
            if c in out:
                out[c] = np.exp(out[c])
        out["std.error"] = out["std.error"] * out["estimate"]
    return out


def _ran_pars(model, scale: str, conf_int: bool, level: float, method: str,
              ci_kwargs: dict) -> pd.DataFrame:
    """One row per sd/cor (or var/cov) parameter in lme4's lower-triangle order, as
    ``as.data.frame(VarCorr(m), order = "lower.tri")``; then the residual row."""
    prefix = ("sd", "cor") if scale == "sdcor" else ("var", "cov")
    rows = []
    param = model.factor.parametrization
    for i, (term, cov) in enumerate(zip(model.design.terms, model.term_covariances())):
        if not param.terms[i].linear:  # cs, ar1, ou: sd__ftime, rho__ar1(ftime + 0), ...
            for var1, var2, vcov, sdcor in param.terms[i].summary_rows(
                    param.term_theta(model.theta, i), np.sqrt(model.residual_variance_scale), term.lhs,
                    term.columns):
                if var2 is None:
                    rows.append((term.name, f"{prefix[0]}__{var1}", sdcor if scale == "sdcor" else vcov))
                else:
                    rows.append((term.name, f"{var2}__{var1}", sdcor))
            continue
        sd = np.sqrt(np.diag(cov))
        cols = list(term.columns)
        for j in range(len(cols)):
            for i in range(j, len(cols)):
                if i == j:
                    value = sd[j] if scale == "sdcor" else cov[j, j]
                    rows.append((term.name, f"{prefix[0]}__{cols[j]}", value))
                else:
                    denom = sd[i] * sd[j]
                    value = (cov[i, j] / denom if denom > 0 else np.nan) if scale == "sdcor" else cov[i, j]
                    rows.append((term.name, f"{prefix[1]}__{cols[j]}.{cols[i]}", value))
    if model.has_scale:
        value = model.sigma if scale == "sdcor" else model.sigma ** 2
        rows.append(("Residual", f"{prefix[0]}__Observation", value))
    out = pd.DataFrame(rows, columns=["group", "term", "estimate"])
    out.insert(0, "effect", "ran_pars")
    if conf_int:
        lo = np.full(len(out), np.nan)
        hi = np.full(len(out), np.nan)
        if method != "wald":  # lme4's Wald intervals have no variance parameters (NA, as broom)
            if scale != "sdcor":
                raise ValueError("intervals for the variance parameters are on the sd/cor scale; "
                                 "use scale='sdcor' with conf_int=True")
            ci = _intervals(model, method, level, ci_kwargs)
            k = len(out)
            lo[:] = ci.iloc[:k, 0].to_numpy()   # confint's first rows: the same parameters, same order
            hi[:] = ci.iloc[:k, 1].to_numpy()
        out["conf.low"], out["conf.high"] = lo, hi
    return out


def _ran_vals(model, conf_int: bool, level: float, method: str) -> pd.DataFrame:
    table = model.ranef_table()
    out = pd.DataFrame({"effect": "ran_vals", "group": table["group"].to_numpy(),
                        "level": table["level"].astype(str).to_numpy(), "term": table["term"].to_numpy(),
                        "estimate": table["condval"].to_numpy(), "std.error": table["condsd"].to_numpy()})
    if conf_int:
        if method != "wald":
            raise ValueError("only Wald intervals are available for the conditional modes "
                             "(conf_method='Wald'), as broom.mixed")
        q = _normal_quantile(level)
        out["conf.low"] = out["estimate"] - q * out["std.error"]
        out["conf.high"] = out["estimate"] + q * out["std.error"]
    return out


def _ran_coefs(model) -> pd.DataFrame:
    """lme4's ``coef(m)``: per grouping factor and level, fixed plus random effects, long."""
    fe = model.fixef
    parts = []
    for group, frame in model.ranef.items():
        cols = [c for c in frame.columns if not c.endswith(".1")]
        for term in list(fe.index) + [c for c in cols if c not in fe.index]:
            value = np.full(len(frame), fe.get(term, 0.0))
            for c in frame.columns:  # split terms (x || g) give a column twice: add both
                if c == term or c == f"{term}.1":
                    value = value + frame[c].to_numpy()
            parts.append(pd.DataFrame({"effect": "ran_coefs", "group": group,
                                       "level": frame.index.astype(str), "term": term, "estimate": value}))
    return pd.concat(parts, ignore_index=True)


def frame_library(data) -> str:
    """``"polars"`` or ``"pyarrow"`` for frames of those libraries, else ``"pandas"``: the type
    that :func:`tidy`, :func:`glance` and :func:`augment` give their results back in."""
    top = type(data).__module__.split(".")[0]
    return top if top in ("polars", "pyarrow") else "pandas"


def _check_output(output) -> str | None:
    if output not in (None, "pandas", "polars", "pyarrow"):
        raise ValueError(f"output must be None, 'pandas', 'polars' or 'pyarrow', got {output!r}")
    return output


def _in_library(table: pd.DataFrame, library: str):
    """A pandas result as a frame of ``library`` (through narwhals; the index is dropped, as
    polars and pyarrow frames have none)."""
    if library == "pandas":
        return table
    import narwhals as nw

    frame = nw.from_native(table.reset_index(drop=True), eager_only=True)
    return frame.to_polars() if library == "polars" else frame.to_arrow()


def tidy(model, effects: str | Iterable[str] = ("fixed", "ran_pars"), *, conf_int: bool = False,
         conf_level: float = 0.95, conf_method: str = "Wald", scales: str = "sdcor",
         ddf_method: str | None = None, exponentiate: bool = False, output: str | None = None,
         **ci_kwargs) -> pd.DataFrame:
    """The estimates as one long table, as broom.mixed's ``tidy(m)``.

    Parameters
    ----------
    model : fitted mixed model
    effects : str or list of str, default ("fixed", "ran_pars")
        Any of ``"fixed"`` (fixed effects), ``"ran_pars"`` (sd/cor of the random effects and
        the residual sd), ``"ran_vals"`` (conditional modes with their conditional sds) and
        ``"ran_coefs"`` (fixed plus random effects per level, lme4's ``coef``).
    conf_int : bool, default False
        Add ``conf.low`` and ``conf.high``.
    conf_level : float, default 0.95
    conf_method : {"Wald", "profile", "boot"}
        Wald (normal quantiles; NaN for the variance parameters, as lme4's Wald ``confint``),
        or profile/parametric-bootstrap intervals from :meth:`confint` (extra keyword
        arguments such as ``n``/``seed`` go there). Conditional modes get Wald intervals only.
    scales : {"sdcor", "vcov"}
        The scale of the ``ran_pars`` rows: standard deviations and correlations, or variances
        and covariances.
    ddf_method : {None, "satterthwaite", "kenward-roger"}
        For LMMs, add ``df`` and ``p.value`` from t tests with these denominator df (as broom.mixed
        on an lmerTest fit). GLMMs always have Wald z p-values.
    exponentiate : bool, default False
        Exponentiate the fixed effects and their intervals (odds or rate ratios); the standard
        error becomes ``estimate × std.error`` (the delta method), as broom.mixed.
    output : {None, "pandas", "polars", "pyarrow"}
        The frame type of the result; None: the type of the data the model was fit to (a
        polars or pyarrow frame gives that type back, anything else pandas).

    Returns
    -------
    pandas.DataFrame (or the ``output`` frame type)
        Columns ``effect, group, [level,] term, estimate, std.error, statistic, [df, p.value,]
        [conf.low, conf.high]``: the fixed rows first, then the random-effect parameters.
    """
    library = _check_output(output) or getattr(model, "data_library", "pandas")
    chosen = _as_effects(effects)
    method = _CONF_METHODS.get(str(conf_method).lower())
    if method is None:
        raise ValueError(f"conf_method must be 'Wald', 'profile' or 'boot', got {conf_method!r}")
    if scales not in ("sdcor", "vcov"):
        raise ValueError(f"scales must be 'sdcor' or 'vcov', got {scales!r}")
    parts = []
    for effect in chosen:
        if effect == "fixed":
            parts.append(_fixed(model, conf_int, conf_level, method, ddf_method, exponentiate, ci_kwargs))
        elif effect == "ran_pars":
            parts.append(_ran_pars(model, scales, conf_int, conf_level, method, ci_kwargs))
        elif effect == "ran_vals":
            parts.append(_ran_vals(model, conf_int, conf_level, method))
        else:
            parts.append(_ran_coefs(model))
    out = pd.concat(parts, ignore_index=True)
    if out["group"].isna().all():   # fixed effects alone: broom.mixed has no group column
        out = out.drop(columns="group")
    order = ["effect", "group", "level", "term", "estimate", "std.error", "statistic", "df", "p.value",
             "conf.low", "conf.high"]
    return _in_library(out[[c for c in order if c in out.columns]], library)


def glance(model, *, output: str | None = None) -> pd.DataFrame:
    """One row of model-level statistics, as broom.mixed's ``glance(m)``.

    Parameters
    ----------
    model : fitted mixed model
    output : {None, "pandas", "polars", "pyarrow"}
        The frame type of the result, as :func:`tidy`.

    Returns
    -------
    pandas.DataFrame
        ``nobs, sigma, logLik, AIC, BIC``, then ``REMLcrit`` (REML fits) or ``deviance``
        (lme4's ``deviance()``: −2 log-likelihood for ML LMMs, the sum of squared deviance
        residuals for GLMMs), and ``df.residual`` (observations minus parameters).
    """
    row = {"nobs": model.nobs, "sigma": float(model.sigma), "logLik": float(model.loglik),
           "AIC": float(model.aic), "BIC": float(model.bic)}
    if model.is_reml:
        row["REMLcrit"] = float(model.reml_criterion)
    else:
        dev = getattr(model, "deviance", None)
        row["deviance"] = float(dev) if dev is not None and not callable(dev) else -2.0 * float(model.loglik)
    row["df.residual"] = model.nobs - model.npar
    return _in_library(pd.DataFrame([row]), _check_output(output) or getattr(model, "data_library", "pandas"))


def _z_lambda(model) -> sp.csr_matrix:
    """ZΛ as a sparse n × q matrix (columns in the engine's term and level order)."""
    blocks = []
    for term, T in zip(model.design.terms, model.factor.split_theta(model.theta)):
        mat = term.matrix
        l = term.ncols
        vals = mat.values @ T                                     # row i of block g: v_i' T
        rows = np.repeat(np.arange(len(mat.codes)), l)
        cols = (mat.codes[:, None] * l + np.arange(l)[None, :]).ravel()
        blocks.append(sp.csr_matrix((vals.ravel(), (rows, cols)), shape=(len(mat.codes), term.nlevels * l)))
    return sp.hstack(blocks, format="csr")


def _working_weights(model) -> tuple[np.ndarray, np.ndarray]:
    """(√prior weights × √(1/V(μ)), √working weights): lme4's ``sqrtrwt`` and ``sqrtXwt``."""
    w = model.prior_weights
    if model.family.linear:
        s = np.sqrt(w)
        return s, s
    mu = model.fitted(type="response")
    eta = model.fitted(type="link")
    sqrtrwt = np.sqrt(w / model.family.variance(np.asarray(mu)))
    return sqrtrwt, sqrtrwt * np.asarray(model.family.link.mu_eta(np.asarray(eta)))


def hat_values(model, max_q: int = 20_000, chunk: int = 4096) -> np.ndarray:
    """The diagonal of the hat matrix, as lme4's ``hatvalues``.

    ``h_i = w_i a_iᵀ M⁻¹ a_i`` with ``a_i = [ΛᵀZ_iᵀ; X_iᵀ]``, ``w_i`` the prior weight and ``M``
    the penalized system ``[ΛᵀZᵀWZΛ + I, ΛᵀZᵀWX; XᵀWZΛ, XᵀWX]`` at the estimates (``W`` the
    working weights: the prior weights for an LMM). For GLMMs lme4 warns that this "may not make
    sense"; the values are lme4's all the same.
    """
    ZL = _z_lambda(model)
    X = np.asarray(model.design.X, dtype=float)
    q, p = ZL.shape[1], X.shape[1]
    if q > max_q:
        raise ValueError(f"hat values need a dense system of order q + p = {q + p}; this model is "
                         f"too large (the limit is max_q={max_q})")
    _, sqrtxwt = _working_weights(model)
    w_prior = model.prior_weights
    A = sp.hstack([ZL, sp.csr_matrix(X)], format="csr")
    WA = sp.diags(sqrtxwt) @ A
    M = (WA.T @ WA).toarray()
    M[np.arange(q), np.arange(q)] += 1.0
    cf = sla.cho_factor(M, lower=True)
    out = np.empty(A.shape[0])
    for start in range(0, A.shape[0], chunk):
        block = A[start:start + chunk].toarray()
        out[start:start + chunk] = np.einsum("ij,ji->i", block, sla.cho_solve(cf, block.T))
    return w_prior * out


def augment(model, data: pd.DataFrame | None = None) -> pd.DataFrame:
    """The data with per-row fit statistics, as broom.mixed's ``augment(m)``.

    Parameters
    ----------
    model : fitted mixed model
    data : pandas, polars or pyarrow DataFrame, optional
        The data the model was fit to. Its rows come back in its order with its index; rows the
        fit dropped (missing values, zero weights) get NaN in the new columns, as R's
        ``na.exclude``. Default: the model frame (the variables the model uses, rows used).
        A polars or pyarrow frame gives a frame of its library back.

    Returns
    -------
    pandas.DataFrame (or the type of ``data``)
        The data, then ``.fitted`` (link scale, as lme4's ``predict``), ``.resid`` (lme4's default
        residuals: response for LMMs, deviance for GLMMs), ``.hat``, ``.cooksd``, ``.fixed`` (the
        fixed-effects part), ``.mu``, ``.offset``, ``.sqrtXwt``, ``.sqrtrwt``, ``.weights``,
        ``.wtres`` (the Pearson residuals) and, for GLMMs, ``.eta``.
    """
    frame = model.design.frame
    eta = np.asarray(model.fitted(type="link"), dtype=float)
    mu = np.asarray(model.fitted(type="response"), dtype=float)
    resid = np.asarray(model.residuals(), dtype=float)
    sqrtrwt, sqrtxwt = _working_weights(model)
    wtres = sqrtrwt * (np.asarray(model.response, dtype=float) - mu)
    try:
        hat = hat_values(model)
    except ValueError:
        hat = np.full(model.nobs, np.nan)   # too large for the dense system: no hat values
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = model.sigma ** 2 if model.has_scale else 1.0
        cooks = (wtres / (1.0 - hat)) ** 2 * hat / (dispersion * model.design.X.shape[1])
    cooks[np.isinf(cooks)] = np.nan
    cols = {".fitted": eta, ".resid": resid, ".hat": hat, ".cooksd": cooks,
            ".fixed": np.asarray(model.design.X, float) @ model.beta + model.offset,
            ".mu": mu, ".offset": model.offset, ".sqrtXwt": sqrtxwt, ".sqrtrwt": sqrtrwt,
            ".weights": model.prior_weights, ".wtres": wtres}
    if not model.family.linear:
        cols[".eta"] = eta
    stats = pd.DataFrame(cols, index=frame.index)
    if data is None:
        return pd.concat([frame.copy(), stats], axis=1)
    library = frame_library(data)
    if library != "pandas":   # polars/pyarrow: rows in order, as the fit converted them
        data = as_pandas(data, "data")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"augment: data must be a pandas, polars or pyarrow DataFrame, got "
                        f"{type(data).__name__}")
    missing = frame.index.difference(data.index)
    if len(missing) or len(data) < len(frame):
        raise ValueError("augment: data is not the data the model was fit to (its index lacks "
                         f"{len(missing)} of the fit's rows); pass that data frame, or none")
    clash = [c for c in stats.columns if c in data.columns]
    out = data.drop(columns=clash).copy()
    return _in_library(pd.concat([out, stats.reindex(data.index)], axis=1), library)
