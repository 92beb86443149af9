"""One-off imputation by missForest's algorithm (Stekhoven & Bühlmann 2012) with scikit-learn's forests.

Start from mean (mode) imputation; then, variable by variable in increasing order of missingness,
grow a random forest on the rows where the variable is observed, with every other variable as a
predictor, and predict its missing values. Repeat until the imputations stop changing: as
missForest, stop at the first sweep whose change (ΔN = Σ(Xᵢ − Xᵢ₋₁)²/ΣXᵢ² over the imputed numeric
cells, ΔF = the share of imputed categorical cells that changed) grows, and return the sweep before.
The grouping factor is information, not a variable to impute: the cluster means of the other
numeric variables (recomputed each sweep) are extra predictors. Observed values are never written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["forest_impute"]


def _is_categorical(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def _features(work: pd.DataFrame, target: str, codes: dict[str, np.ndarray], cats: set[str]) -> np.ndarray:
    """The predictors of ``target``: the other variables (categoricals as codes) and their cluster means."""
    cols = []
    for c in work.columns:
        if c == target:
            continue
        s = work[c]
        cols.append(pd.Categorical(s).codes.astype(float) if c in cats else s.to_numpy(dtype=float))
    for g in codes.values():
        for c in work.columns:
            if c != target and c not in cats:
                cols.append(_cluster_mean(work[c].to_numpy(float), g))
    return np.column_stack(cols) if cols else np.zeros((len(work), 0))


def _cluster_mean(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    sums = np.bincount(codes, weights=x)
    counts = np.bincount(codes)
    return (sums / counts)[codes]


def forest_impute(data: pd.DataFrame, columns: list[str], groups: list[str], *, seed=None,
                  max_iter: int = 10, n_estimators: int = 100, max_features: str | float = "sqrt",
                  min_samples_leaf: int | None = None, n_jobs: int | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """missForest on ``columns`` of ``data`` (complete grouping factors ``groups``).

    Returns
    -------
    (DataFrame, DataFrame, dict)
        The completed data (observed cells untouched), the out-of-bag error per imputed variable
        (``oob_mse`` and ``oob_nrmse`` for numeric, ``oob_pfc`` for categorical variables, from
        the last sweep used), and the convergence record (sweeps, changes, converged).
    """
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    rng = np.random.default_rng(seed)
    out = data.copy()
    work = data[columns].copy()
    cats = {c for c in columns if _is_categorical(work[c])}
    miss = work.isna()
    targets = [c for c in miss.sum().sort_values(kind="stable").index if miss[c].any()]
    for c in columns:  # start: mean / most frequent value
        if miss[c].any():
            work.loc[miss[c], c] = work[c].mode().iloc[0] if c in cats else work[c].mean()
    codes = {g: pd.factorize(data[g])[0] for g in groups}
    num_targets = [c for c in targets if c not in cats]
    cat_targets = [c for c in targets if c in cats]
    changes: list[tuple[float, float]] = []
    prev = work.copy()
    prev_oob: dict = {}
    oob: dict = {}
    converged = False
    sweeps = 0
    for sweep in range(max_iter):
        old = work.copy()
        oob = {}
        for c in targets:
            X = _features(work, c, codes, cats)
            obs = ~miss[c].to_numpy()
            rs = int(rng.integers(2 ** 31 - 1))
            kw = dict(n_estimators=n_estimators, max_features=max_features, oob_score=True, random_state=rs,
                      n_jobs=n_jobs, bootstrap=True)
            if min_samples_leaf is not None:
                kw["min_samples_leaf"] = min_samples_leaf
            if c in cats:
                y = work.loc[obs, c].astype(str).to_numpy()
                model = RandomForestClassifier(**kw).fit(X[obs], y)
                pred = model.predict(X[~obs])
                oob_pred = model.classes_[np.argmax(np.nan_to_num(model.oob_decision_function_), axis=1)]
                oob[c] = {"oob_pfc": float(np.mean(oob_pred != y))}
                labels = {str(v): v for v in work.loc[obs, c].unique()}
                work.loc[~obs, c] = [labels[p] for p in pred]
            else:
                y = work.loc[obs, c].to_numpy(dtype=float)
                model = RandomForestRegressor(**kw).fit(X[obs], y)
                work.loc[~obs, c] = model.predict(X[~obs])
                mse = float(np.mean((model.oob_prediction_ - y) ** 2))
                oob[c] = {"oob_mse": mse, "oob_nrmse": float(np.sqrt(mse / np.var(y)))}
        sweeps = sweep + 1
        dn = 0.0
        if num_targets:
            new_v = np.concatenate([work.loc[miss[c], c].to_numpy(float) for c in num_targets])
            old_v = np.concatenate([old.loc[miss[c], c].to_numpy(float) for c in num_targets])
            dn = float(np.sum((new_v - old_v) ** 2) / max(np.sum(new_v ** 2), 1e-300))
        df_ = 0.0
        if cat_targets:
            changed = sum(int((work.loc[miss[c], c] != old.loc[miss[c], c]).sum()) for c in cat_targets)
            df_ = changed / max(int(sum(miss[c].sum() for c in cat_targets)), 1)
        changes.append((dn, df_))
        if len(changes) > 1 and ((num_targets and dn > changes[-2][0]) or (cat_targets and df_ > changes[-2][1])):
            work, oob = prev, prev_oob  # missForest: the change grew, keep the previous sweep
            converged = True
            break
        if (not num_targets or dn == 0) and (not cat_targets or df_ == 0):
            converged = True
            break
        prev, prev_oob = work.copy(), oob
    for c in targets:  # write the imputed cells only: observed values stay bit for bit
        rows = miss[c].to_numpy()
        col = out[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            vals = work.loc[rows, c]
            unseen = set(vals.dropna().unique()) - set(col.cat.categories)
            if unseen:
                raise ValueError(f"imputed values {sorted(map(str, unseen))} of {c!r} are not levels of the "
                                 "categorical column")
        out.loc[rows, c] = work.loc[rows, c].to_numpy()
    oob_table = pd.DataFrame.from_dict(oob, orient="index")
    oob_table.index.name = "variable"
    record = {"sweeps": sweeps, "changes": changes, "converged": converged}
    return out, oob_table, record
