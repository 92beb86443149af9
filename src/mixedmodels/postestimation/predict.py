"""Predictions from fitted mixed models, with new data, subsets of the random effects,
new levels, standard errors and simulation-based prediction intervals; and simulation of
new responses.

Transforms and factor levels of the training data are re-applied to ``newdata`` through the
formulaic model specs stored on the design, so ``log(x)``, ``C(f)`` or categorical codings
mean the same thing as in the fit.
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..models.base import implements
from ..sources import as_pandas, is_streamed
from ..spec.arguments import check_bool, check_count
from ..spec.design import (
    check_data_frame,
    double_bar_terms,
    factor_codes,
    infinite_column,
    nonfinite_detail,
    r_column_name,
    to_formulaic,
)
from ..spec.formula import FormulaError, expression_names, parse_formula

__all__ = ["predict", "simulate"]


# --------------------------------------------------------------------------------------------
# which random effects: re_form
# --------------------------------------------------------------------------------------------

def _no_random(re_form) -> bool:
    if re_form is None:
        return False
    if re_form is False:
        return True
    if isinstance(re_form, float) and np.isnan(re_form):
        return True
    if isinstance(re_form, str):
        text = re_form.replace(" ", "")
        return text in ("~0", "0", "NA", "~NA", "~-1", "")
    return False


def _term_columns(lhs: str, frame: pd.DataFrame) -> list[str]:
    from formulaic import model_matrix

    mat = model_matrix(to_formulaic(lhs), frame, na_action="ignore")
    return [r_column_name(c) for c in mat.columns]


def _same_group(a: str, b: str) -> bool:
    if a == b:
        return True
    return sorted(p.strip() for p in a.split(":")) == sorted(p.strip() for p in b.split(":"))


def _requested_columns(model, rt, frame: pd.DataFrame) -> list[str]:
    """The random-effects columns an re_form term names: ``(f || g)`` as the model expanded it
    (lme4: ``(1 | g) + (0 + f | g)``, every indicator of a factor f; afex: f's model columns)."""
    if rt.structure != "us":  # a structured term comes whole (an ou term's columns are its times)
        return [c for t in model.design.terms if _same_group(t.group, rt.group) and t.lhs == rt.lhs
                for c in t.columns]
    if rt.correlated or model.design.extra.get("expand_doublebar") == "afex":
        return _term_columns(rt.lhs, frame)
    return [c for piece in double_bar_terms(rt.lhs) for c in _term_columns(piece, frame)]


def _included_columns(model, re_form) -> list[np.ndarray]:
    """Per random-effects term, a boolean mask of its columns that the prediction includes."""
    terms = model.design.terms
    if re_form is None:
        return [np.ones(t.ncols, bool) for t in terms]
    if _no_random(re_form):
        return [np.zeros(t.ncols, bool) for t in terms]
    if not isinstance(re_form, str):
        raise TypeError(f"re_form must be None, '~0' or a formula string such as '~(1 | g)', "
                        f"got {type(re_form).__name__}")
    text = re_form.strip()
    if not text.startswith("~"):
        text = "~" + text
    try:
        spec = parse_formula(text)
    except FormulaError as err:
        raise FormulaError(f"re_form {re_form!r} is not a formula of random-effects terms", text) from err
    if not spec.random:
        raise ValueError(f"re_form {re_form!r} has no random-effects terms; use re_form='~0' for "
                         "fixed effects only or None for all random effects")
    masks = [np.zeros(t.ncols, bool) for t in terms]
    frame = model.design.frame
    for rt in spec.random:
        candidates = [i for i, t in enumerate(terms) if _same_group(t.group, rt.group)]
        if not candidates:
            groups = sorted({t.group for t in terms})
            raise ValueError(f"re_form term {rt} uses grouping factor {rt.group!r}, which is not "
                             f"in the model; its grouping factors are {groups}")
        for col in _requested_columns(model, rt, frame):
            hit = [(i, terms[i].columns.index(col)) for i in candidates if col in terms[i].columns]
            if not hit:
                have = sorted({c for i in candidates for c in terms[i].columns})
                raise ValueError(f"re_form term {rt} asks for {col!r}, which the model has no random "
                                 f"effect for in {rt.group!r} (it has {have})")
            for i, j in hit:
                masks[i][j] = True
    return masks


# --------------------------------------------------------------------------------------------
# the pieces of the linear predictor for new data
# --------------------------------------------------------------------------------------------

@dataclass
class _Parts:
    X: np.ndarray
    offset: np.ndarray
    terms: list                       # (term index, codes with -1 for new, values, labels)
    index: pd.Index


def _needed_columns(model, masks: list[np.ndarray]) -> list[tuple[str, str]]:
    """(name, part of the model) for each variable the prediction evaluates: the fixed effects,
    the offsets and the included random-effects terms (their columns and grouping factors)."""
    spec = model.design.formula
    needed: list[tuple[str, str]] = []
    for expr in [spec.fixed, *spec.offsets]:
        needed += [(n, "fixed effects") for n in expression_names(expr)]
    for term, mask in zip(model.design.terms, masks):
        if mask.any():
            needed += [(n, f"random-effects term ({term.lhs} | {term.group})")
                       for n in expression_names(term.lhs) + expression_names(term.group)]
    known = set(model.design.frame.columns)
    return [(n, part) for n, part in needed if n in known]  # functions and constants are not columns


def _check_columns(model, newdata: pd.DataFrame, masks: list[np.ndarray]) -> list[str]:
    """The newdata columns the prediction uses; a missing one raises, naming the closest."""
    cols = [str(c) for c in newdata.columns]
    used: list[str] = []
    for name, part in _needed_columns(model, masks):
        if name in newdata.columns:
            used.append(name)
            continue
        close = difflib.get_close_matches(name, cols, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise DataError(f"newdata lacks column {name!r}, which the {part} of the model use"
                        f"{'s' if part.startswith('random') else ''}{hint}")
    return list(dict.fromkeys(used))


def _infinite_detail(arr: np.ndarray) -> str:
    """``2 infinite values (1 Inf, 1 -Inf; rows 0, 3)``: NaN in newdata means missing."""
    return nonfinite_detail(arr, count_nan=False, noun="infinite value")


def _check_infinite_columns(newdata: pd.DataFrame, used: list[str]) -> None:
    """±Inf in a numeric column the prediction uses is an error, as in the fit (NaN is missing
    and predicts NaN)."""
    for name in used:
        if isinstance(newdata[name], pd.DataFrame):  # duplicated column name
            raise DataError(f"newdata has more than one column named {name!r}; column names must "
                            "be unique (rename or drop the duplicates)")
    found = infinite_column(newdata, used)
    if found is not None:
        name, arr = found
        raise DataError(f"Inf in newdata column {name!r}: {_infinite_detail(arr)}; NaN is "
                        "treated as missing (a NaN prediction), but an infinite value cannot "
                        "be predicted. Replace or drop those rows.")


def _check_infinite_values(values: np.ndarray, names: list[str], part: str) -> None:
    """Columns computed from newdata (``log(x)`` at 0, a division by zero) must not be ±Inf."""
    for j, name in enumerate(names):
        if np.isinf(values[:, j]).any():
            raise DataError(f"Inf in the {part} column {name!r} for newdata: "
                            f"{_infinite_detail(values[:, j])} after evaluating the formula (e.g. "
                            "log(0) or a division by zero); change those rows of newdata.")


def _group_codes(term, newdata: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Codes of newdata's groups in the fitted levels (-1: new or missing) and their labels."""
    parts = [p.strip() for p in term.group.split(":")]
    missing = newdata[parts].isna().any(axis=1).to_numpy()
    codes = np.full(len(newdata), -1, dtype=np.int64)
    labels = np.full(len(newdata), None, dtype=object)
    if (~missing).any():
        sub = newdata.loc[~missing, parts]
        c, levels = factor_codes(sub, term.group)
        lab = np.asarray(levels, dtype=object)[c]
        codes[~missing] = pd.Index(term.levels).get_indexer(pd.Index(lab.astype(str)))
        labels[~missing] = lab
    return codes, labels


def _categorical_source(key: str, newdata: pd.DataFrame) -> str | None:
    """The newdata column behind a categorical variable of a model spec (``f`` or ``C(f, ...)``)."""
    if key in newdata.columns:
        return key
    match = re.fullmatch(r"\s*C\(\s*([A-Za-z_.][\w.]*)\s*(,.*)?\)\s*", key)
    if match and match.group(1) in newdata.columns:
        return match.group(1)
    return None


def _check_categories(spec, newdata: pd.DataFrame, part: str) -> None:
    """Unseen levels of a categorical predictor raise (formulaic would code them as the
    reference level); missing values are left to give NaN predictions."""
    for key, (kind, state) in getattr(spec, "encoder_state", {}).items():
        if getattr(kind, "value", kind) != "categorical" or "categories" not in state:
            continue
        col = _categorical_source(key, newdata)
        if col is None:
            continue
        known = list(state["categories"])
        seen = {*known, *(str(k) for k in known)}
        values = newdata[col].dropna()
        unseen = [v for v in pd.unique(values) if v not in seen and str(v) not in seen]
        if unseen:
            shown = ", ".join(repr(v) for v in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
            raise DataError(
                f"newdata column {col!r} has level(s) {shown} not in the fitted data; the "
                f"{part} know only the levels {[str(k) for k in known]}. allow_new_levels= "
                "applies to grouping factors only: a new level of a predictor has no estimate")


def _model_matrix(spec, newdata: pd.DataFrame, part: str):
    """``spec.get_model_matrix(newdata)``, with unseen categories an error rather than
    formulaic's silent reference-level coding."""
    _check_categories(spec, newdata, part)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mat = spec.get_model_matrix(newdata)
    for w in caught:
        text = str(w.message)
        if w.category.__name__ == "DataMismatchWarning":
            if "{nan}" in text:
                continue  # missing values: those rows predict NaN
            raise DataError(f"newdata has levels of a categorical variable of the {part} "
                            f"that are not in the fitted data: {text}")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return mat


def _na_rows(newdata: pd.DataFrame, exprs: list[str]) -> np.ndarray:
    """Rows with a missing value in a column the expressions use (lme4's ``na.pass``: NA)."""
    names = [n for e in exprs for n in expression_names(e) if n in newdata.columns]
    if not names:
        return np.zeros(len(newdata), bool)
    return newdata[list(dict.fromkeys(names))].isna().any(axis=1).to_numpy()


def _parts(model, newdata: pd.DataFrame | None, masks: list[np.ndarray]) -> _Parts:
    design = model.design
    if newdata is None:
        offset = design.offset if design.offset is not None else np.zeros(design.nobs)
        terms = [(i, t.matrix.codes, t.matrix.values, np.asarray(t.levels, dtype=object)[t.matrix.codes])
                 for i, t in enumerate(design.terms)]
        return _Parts(design.X, offset, terms, design.frame.index)
    check_data_frame(newdata, "newdata")
    _check_infinite_columns(newdata, _check_columns(model, newdata, masks))
    try:
        mat = _model_matrix(design.fixed_spec, newdata, "fixed effects")
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot build the fixed-effects columns for newdata: {err}") from err
    names = [r_column_name(c) for c in mat.columns]
    missing = [n for n in design.fixef_names if n not in names]
    if missing:
        raise DataError(f"newdata does not give the fixed-effect column(s) {missing}")
    X = np.asarray(mat, dtype=float)[:, [names.index(n) for n in design.fixef_names]]
    _check_infinite_values(X, design.fixef_names, "fixed-effects")
    X[_na_rows(newdata, [design.formula.fixed, *design.formula.offsets])] = np.nan
    offset = np.zeros(len(newdata))
    if design.formula.offsets:
        from formulaic import model_matrix

        for expr in design.formula.offsets:
            offset += np.asarray(model_matrix(f"0 + {to_formulaic(expr)}", newdata, na_action="ignore"),
                                 dtype=float).ravel()
        _check_infinite_values(offset[:, None], ["offset"], "offset")
    terms = []
    for i, (term, mask) in enumerate(zip(design.terms, masks)):
        if not mask.any():
            continue
        part = f"random-effects term ({term.lhs} | {term.group})"
        try:
            vmat = _model_matrix(term.model_spec, newdata, part)
        except DataError:
            raise
        except Exception as err:
            raise DataError(f"cannot build the columns of random-effects term ({term.lhs} | "
                            f"{term.group}) for newdata: {err}") from err
        vnames = [r_column_name(c) for c in vmat.columns]
        values = np.asarray(vmat, dtype=float)[:, [vnames.index(c) for c in term.columns]]
        _check_infinite_values(values, term.columns, part)
        values[_na_rows(newdata, [term.lhs])] = np.nan
        codes, labels = _group_codes(term, newdata)
        terms.append((i, codes, values, labels))
    return _Parts(X, offset, terms, newdata.index)


def _check_new_levels(model, parts: _Parts, allow_new_levels: bool) -> None:
    if allow_new_levels:
        return
    for i, codes, _, labels in parts.terms:
        new = codes < 0
        if new.any():
            term = model.design.terms[i]
            vals = pd.unique(pd.Series(labels[new], dtype=object).fillna("NA").astype(str))
            shown = ", ".join(repr(v) for v in vals[:5]) + (", ..." if len(vals) > 5 else "")
            na = " (NA: a missing grouping value, which lme4 treats as a new level)" \
                if pd.isna(labels[new]).any() else ""
            raise DataError(
                f"newdata has {len(vals)} level(s) of {term.group!r} not in the fitted data "
                f"({shown}){na}; pass allow_new_levels=True to predict them at the population "
                "level (random effects 0), or re_form='~0' for fixed effects only")


def _eta(model, parts: _Parts, masks: list[np.ndarray], beta=None, bs=None) -> np.ndarray:
    beta = model.fixef.to_numpy() if beta is None else beta
    bs = model.random_effects() if bs is None else bs
    eta = parts.X @ beta + parts.offset
    for i, codes, values, _ in parts.terms:
        mask = masks[i]
        b = bs[i]
        known = codes >= 0
        contrib = np.zeros(len(codes))
        contrib[known] = np.einsum("ij,ij->i", values[known][:, mask], b[codes[known]][:, mask])
        eta = eta + contrib
    return eta


def _linkinv(model, eta: np.ndarray, type: str) -> np.ndarray:  # noqa: A002
    if type == "link" or model.family.linear:
        return eta
    return model.family.link.inverse(eta)


# --------------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------------

@implements("predict")
def predict(model, newdata: pd.DataFrame | None = None, re_form: str | None = None,
            allow_new_levels: bool = False, se_fit: bool = False, interval: str | None = None,
            level: float = 0.95, n_sims: int = 1000, seed=None,
            type: str = "link", out=None) -> pd.Series | pd.DataFrame:  # noqa: A002
    """Predictions from a fitted mixed model.

    Parameters
    ----------
    model : fitted mixed model
    newdata : pandas.DataFrame, optional
        Rows to predict; the training data when omitted. The response column is not needed.
    re_form : str or None
        ``None``: all random effects; ``"~0"``: none (population level); a formula such as
        ``"~(1 | Subject)"``: only those terms/columns (each must be in the model).
    allow_new_levels : bool, default False
        Levels of a grouping factor not in the fitted data (and missing grouping values) get
        zero random effects; without it they raise an error naming the factor and the levels.
        It is about grouping factors only: a level of a categorical *predictor* that was not
        in the fitted data always raises :class:`~mixedmodels.exceptions.DataError` naming
        the column, the unseen and the known levels (as lme4).
    se_fit : bool
        Add ``se_fit``, the standard error of the fixed-effects part ``x'β̂``.
    interval : {None, "confidence", "prediction"}
        ``"confidence"``: fit ± z·se_fit (fixed-effects uncertainty only).
        ``"prediction"``: simulation-based intervals as merTools' ``predictInterval``: draws of β
        from N(β̂, V), of the random effects from their conditional distributions (new levels:
        from N(0, Σ)), of σ from its scaled inverse-χ² distribution, and a residual.
    level : float
        Interval coverage.
    n_sims : int
        Simulations for ``interval="prediction"``.
    seed : int or None
        For ``interval="prediction"``.
    type : {"link", "response"}
        For GLMMs: the linear predictor (default, as lme4) or the mean.
    out : str, optional
        With ``newdata`` a path, DuckDB relation or polars LazyFrame: a Parquet file the
        predictions are streamed to (see :mod:`mixedmodels.postestimation.streamed`; a Dask
        DataFrame gives a lazy Series, a Spark DataFrame the frame with a ``fit`` column).

    Returns
    -------
    pandas.Series or pandas.DataFrame
        The predictions (indexed like ``newdata``), or a DataFrame with ``fit`` and
        ``se_fit`` and/or ``lower``, ``upper``.

    Notes
    -----
    Missing values in a column the fixed effects (or an included random-effects term's
    columns) use give NaN predictions for those rows, as lme4's default ``na.pass``; a
    column the prediction needs that is absent from ``newdata``, and ±Inf in one it uses (or
    in a column computed from it, such as ``log(x)`` at 0), raise ``DataError`` naming the
    column and the count, as the fit does.
    """
    if type != "link" and getattr(model, "own_predictions", False):
        # models whose mean is not the inverse link of η (zero inflation, hurdles) transform
        # this function's η themselves
        return model.predict(newdata, re_form=re_form, allow_new_levels=allow_new_levels,
                             se_fit=se_fit, interval=interval, level=level, n_sims=n_sims,
                             seed=seed, type=type)
    if type not in ("link", "response"):
        raise ValueError(f"type must be 'link' or 'response', got {type!r}")
    allow_new_levels = check_bool("allow_new_levels", allow_new_levels)
    se_fit = check_bool("se_fit", se_fit)
    if is_streamed(newdata) or (newdata is None and getattr(model.design, "origin", None) is not None):
        from .streamed import predict_source  # rows that stay in a source: a pass over them

        return predict_source(model, model.design.origin if newdata is None else newdata, out=out,
                             re_form=re_form, allow_new_levels=allow_new_levels, se_fit=se_fit,
                             interval=interval, type=type)
    if newdata is not None:  # polars, pyarrow, a dict of arrays: as pandas, as the fit takes them
        newdata = as_pandas(newdata, "newdata")
    if interval == "prediction":
        n_sims = check_count("n_sims", n_sims)
    if interval not in (None, "confidence", "prediction"):
        raise ValueError(f"interval must be None, 'confidence' or 'prediction', got {interval!r}")
    masks = _included_columns(model, re_form)
    parts = _parts(model, newdata, masks)
    _check_new_levels(model, parts, allow_new_levels)
    eta = _eta(model, parts, masks)
    fit = _linkinv(model, eta, type)
    if not se_fit and interval is None:
        return pd.Series(fit, index=parts.index, name="fit")
    out = pd.DataFrame({"fit": fit}, index=parts.index)
    V = model.vcov.to_numpy()
    se = np.sqrt(np.einsum("ij,jk,ik->i", parts.X, V, parts.X))
    if se_fit or interval == "confidence":
        if type == "response" and not model.family.linear:
            se = se * np.abs(model.family.link.mu_eta(eta))  # delta method
        out["se_fit"] = se
    if interval == "confidence":
        from scipy import stats

        z = stats.norm.ppf(0.5 + level / 2.0)
        if type == "response" and not model.family.linear:
            lo = _linkinv(model, eta - z * np.sqrt(np.einsum("ij,jk,ik->i", parts.X, V, parts.X)), type)
            hi = _linkinv(model, eta + z * np.sqrt(np.einsum("ij,jk,ik->i", parts.X, V, parts.X)), type)
            out["lower"], out["upper"] = np.minimum(lo, hi), np.maximum(lo, hi)
        else:
            out["lower"], out["upper"] = fit - z * se, fit + z * se
    elif interval == "prediction":
        lo, hi = _prediction_interval(model, parts, masks, level, n_sims, seed, type)
        out["lower"], out["upper"] = lo, hi
    return out


def _prediction_interval(model, parts: _Parts, masks, level, n_sims, seed, type):  # noqa: A002
    rng = np.random.default_rng(seed)
    nrow = len(parts.index)
    S = int(n_sims)
    beta = model.fixef.to_numpy()
    V = model.vcov.to_numpy()
    B = rng.multivariate_normal(beta, V, size=S, method="eigh")          # S × p
    sims = parts.X @ B.T + parts.offset[:, None]                          # nrow × S
    blocks = model.conditional_covariance() if parts.terms else []
    bs = model.random_effects()
    covs = model.term_covariances()
    for i, codes, values, labels in parts.terms:
        mask = masks[i]
        if not mask.any():
            continue
        l = values.shape[1]
        known = codes >= 0
        # one draw per level present (known: conditional; new: unconditional), shared by its rows
        keys = np.where(known, codes.astype(object), pd.Series(labels, dtype=object).fillna("NA").astype(str)
                        .radd("new:").to_numpy())
        uniq, inv = np.unique(keys.astype(str), return_inverse=True)
        draws = np.empty((len(uniq), S, l))
        for k, key in enumerate(uniq):
            if key.startswith("new:"):
                mean, cov = np.zeros(l), covs[i]
            else:
                g = int(key)
                mean, cov = bs[i][g], blocks[i][g]
            draws[k] = rng.multivariate_normal(mean, cov, size=S, method="eigh")
        vals = values * mask[None, :]
        sims += np.einsum("rl,rsl->rs", vals, draws[inv])
    if model.has_scale:
        sigma = model.sigma
        df = max(model.nobs - len(beta), 1)
        # σ² drawn from its scaled inverse-χ² distribution, as merTools
        sig = np.sqrt(1.0 / rng.gamma(0.5 * df, 1.0 / (0.5 * df * sigma ** 2), size=S))
        if type == "link" or model.family.linear:
            sims += rng.standard_normal((nrow, S)) * sig[None, :]
    sims = _linkinv(model, sims, type)
    a = (1.0 - level) / 2.0
    return np.quantile(sims, a, axis=1), np.quantile(sims, 1 - a, axis=1)


# --------------------------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------------------------

@implements("simulate")
def simulate(model, n: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
    """Simulate responses from the fitted model (lme4's ``simulate``).

    Parameters
    ----------
    model : fitted mixed model
    n : int
        Number of simulated responses.
    seed : int, numpy Generator/SeedSequence or None
    use_u : bool, default False
        Condition on the fitted random effects (lme4's ``use.u=TRUE``); by default new
        random effects are drawn for every simulation.

    Returns
    -------
    pandas.DataFrame
        ``nobs × n``, columns ``sim_1 … sim_n``. For binomial GLMMs the values are
        proportions (successes / trials), like the fitted response.
    """
    if getattr(model, "own_predictions", False):   # e.g. zero-inflated: the family's own draws
        return model.simulate(n=n, seed=seed, use_u=use_u)
    n = check_count("n", n)
    rng = np.random.default_rng(seed)
    design = model.design
    beta = model.fixef.to_numpy()
    eta = design.X @ beta
    if design.offset is not None:
        eta = eta + design.offset
    eta = np.repeat(eta[:, None], n, axis=1)
    if use_u:
        eta = np.repeat(np.asarray(model.linear_predictor(), dtype=float)[:, None], n, axis=1)
    else:
        for term, cov in zip(design.terms, model.term_covariances()):
            l = term.ncols
            # b_g ~ N(0, Σ) for every level and simulation
            Lc = _psd_root(cov)   # tolerates singular (zero-variance) fits
            z = rng.standard_normal((n, term.nlevels, l))
            b = z @ Lc.T                                           # n × m × l
            m = term.matrix
            eta += np.einsum("il,sil->is", m.values, b[:, m.codes, :])
    fam = model.family
    mu = eta if fam.linear else fam.link.inverse(eta)
    # the prior weights scale the dispersion (the LMM's residual sd is σ/√w); binomial trials
    # are the sizes of the draws
    y = fam.simulate(mu, rng, trials=model.trials, weights=model.prior_weights, sigma=model.sigma)
    return pd.DataFrame(y, index=design.frame.index, columns=[f"sim_{i + 1}" for i in range(n)])


def _psd_root(cov: np.ndarray) -> np.ndarray:
    evals, evecs = np.linalg.eigh(cov)
    return evecs * np.sqrt(np.maximum(evals, 0.0))[None, :]
