"""Benchmark: mixed-effects learners against MERF, GPBoost, the learner alone, the learner with a
one-hot group, and the mixed model alone, in one run. Prints tables.

Data (issue 16):

- simulated: Friedman #1 on five features, plus a random intercept (sd 1) and a random slope
  (sd 0.5) on a covariate z with mean slope 1, for 200 groups; noise sd 1. 160 groups are seen
  (15 rows to fit, 5 held out each); 40 groups are unseen (20 held-out rows each);
- real: the bundled ``gpa`` data (200 students, 6 occasions): gpa on occasion, job, sex,
  high-school gpa and admission, with ``(1 + occasion | student)``; held out: one random
  occasion of 160 students (seen) and every occasion of the other 40 students (unseen);
- real, binary: the bundled ``VerbAgg`` data (316 persons × 24 items, crossed): ``r2`` on
  Anger, Gender, btype, situ and mode with ``(1 | id) + (1 | item)``; held out: 20 % of the rows.

Every forest is the same ``RandomForestRegressor(n_estimators, min_samples_leaf=5, n_jobs=1)``;
every method runs on one thread (GPBoost's ``num_threads=1``; OpenMP and BLAS limited to 1 by
threadpoolctl, which HistGradientBoosting's OpenMP loops follow). Fit times are wall seconds and
CPU seconds of the process: on a shared, loaded machine the CPU seconds are the fairer measure.
Goals: RMSE at most MERF's and GPBoost's; fit at least 3× faster than MERF with the same forest.

    python bench/bench_learners.py              # 300 trees, as the issue's example
    python bench/bench_learners.py --trees 100  # quicker
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.metrics import log_loss, roc_auc_score
from threadpoolctl import threadpool_limits

import mixedmodels as mm

try:
    from merf import MERF
except ImportError as err:  # a peer: reported in the table when it cannot be imported
    MERF = None
    MERF_ERROR = str(err)
try:
    import gpboost as gpb
except ImportError as err:
    gpb = None
    GPB_ERROR = str(err)


def friedman_groups(seed: int = 0, n_groups: int = 200, per: int = 20):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    n = len(g)
    x = rng.uniform(size=(n, 5))
    z = rng.normal(size=n)
    f = 10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4]
    b0, b1 = rng.normal(size=n_groups), 0.5 * rng.normal(size=n_groups)
    df = pd.DataFrame(x, columns=[f"x{j}" for j in range(5)])
    df["z"] = z
    df["group"] = [f"g{k}" for k in g]
    y = f + z + b0[g] + b1[g] * z + rng.normal(size=n)
    unseen = g >= int(0.8 * n_groups)
    within = np.tile(np.arange(per), n_groups)
    train = ~unseen & (within < int(0.75 * per))
    return df, y, train, ~train & ~unseen, unseen


def gpa_split(seed: int = 0):
    d = mm.load_dataset("gpa")
    df = pd.DataFrame({"occasion": d.occasion.astype(float), "highgpa": d.highgpa,
                       "sexmale": (d.sex == "male").astype(float), "admitted": (d.admitted == "yes").astype(float),
                       "job": d.job.cat.codes.astype(float), "student": d.student.astype(str)})
    rng = np.random.default_rng(seed)
    students = df.student.unique()
    unseen_ids = set(rng.choice(students, 40, replace=False))
    unseen = df.student.isin(unseen_ids).to_numpy()
    held = np.zeros(len(df), dtype=bool)
    for _student, rows in df[~unseen].groupby("student").indices.items():
        held[df.index[~unseen][rows[rng.integers(len(rows))]]] = True
    train = ~unseen & ~held
    return df, d.gpa.to_numpy(), train, held, unseen


def _rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def _forest(trees: int, seed: int = 0) -> RandomForestRegressor:
    return RandomForestRegressor(n_estimators=trees, min_samples_leaf=5, n_jobs=1, random_state=seed)


def regression_rows(df, y, train, seen, unseen, *, group: str, slope: str, features: list[str], trees: int):
    """Fit each method on the training rows; RMSE on the seen and unseen held-out rows."""
    rows = []
    X = df[features + [slope, group]]
    Xall = df[features + [slope]]
    test = {"seen": seen, "unseen": unseen}

    def record(name, fit, predict):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            state = fit()
        except Exception as err:  # noqa: BLE001 - a peer that fails is reported, not fatal
            rows.append({"method": name, "RMSE seen": np.nan, "RMSE unseen": np.nan, "fit s": np.nan,
                         "fit CPU s": np.nan, "note": f"failed: {type(err).__name__}: {str(err)[:60]}"})
            return
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        out = {"method": name}
        for label, mask in test.items():
            out[f"RMSE {label}"] = _rmse(predict(state, mask), y[mask])
        out["fit s"] = elapsed
        out["fit CPU s"] = cpu
        out["note"] = state.get("note", "") if isinstance(state, dict) else ""
        rows.append(out)

    def ours(learner, label, seed=None):
        def fit():
            est = mm.MixedEffectsRegressor(learner, random=f"(1 + {slope} | {group})", random_state=seed)
            est.fit(X[train], y[train])
            h = est.history_
            return {"est": est, "note": f"{est.n_iter_} iterations ({est.residual_method_}); learner "
                                        f"{h['learner_seconds'].sum():.1f} s, random part "
                                        f"{h['random_seconds'].sum():.2f} s"}

        def predict(state, mask):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", mm.MixedModelsWarning)
                return state["est"].predict(X[mask])
        record(label, fit, predict)

    ours(_forest(trees), "mixedmodels MixedEffectsRegressor (forest)")
    # the cross-fitting folds are random: five fold seeds, and their mean (the forest's
    # out-of-bag residuals have no folds; its own random_state is fixed)
    first = len(rows)
    for seed in range(5):
        ours(HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=0),
             f"mixedmodels MixedEffectsRegressor (HistGradientBoosting), folds seed {seed}", seed)
    seeds = pd.DataFrame(rows[first:])
    rows.append({"method": "mixedmodels MixedEffectsRegressor (HistGradientBoosting), mean of the 5 seeds",
                 **seeds[["RMSE seen", "RMSE unseen", "fit s", "fit CPU s"]].mean().to_dict(),
                 "note": f"RMSE seen {seeds['RMSE seen'].min():.3f}-{seeds['RMSE seen'].max():.3f}, unseen "
                         f"{seeds['RMSE unseen'].min():.3f}-{seeds['RMSE unseen'].max():.3f}"})

    if MERF is not None:
        def fit_merf():
            m = MERF(_forest(trees), max_iterations=20)
            Z = np.column_stack([np.ones(train.sum()), df.loc[train, slope]])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.fit(Xall[train].to_numpy(), Z, df.loc[train, group].reset_index(drop=True), y[train])
            return {"m": m, "note": "20 iterations (in-sample)"}

        def pred_merf(state, mask):
            Z = np.column_stack([np.ones(mask.sum()), df.loc[mask, slope]])
            return state["m"].predict(Xall[mask].to_numpy(), Z, df.loc[mask, group].reset_index(drop=True))
        record("MERF (same forest)", fit_merf, pred_merf)
    else:
        rows.append({"method": "MERF", "note": f"not installed: {MERF_ERROR}"})

    def gpboost_fit(lr, rounds, leaves, note):
        def fit_gpb():
            gp = gpb.GPModel(group_data=df.loc[train, group].to_numpy(),
                             group_rand_coef_data=df.loc[train, slope].to_numpy(),
                             ind_effect_group_rand_coef=[1], likelihood="gaussian")
            data = gpb.Dataset(Xall[train].to_numpy(), y[train])
            params = {"learning_rate": lr, "max_depth": 6, "num_leaves": leaves, "min_data_in_leaf": 5,
                      "verbose": -1, "num_threads": 1}
            booster = gpb.train(params=params, train_set=data, gp_model=gp, num_boost_round=rounds)
            return {"b": booster, "note": note}
        return fit_gpb

    if gpb is not None:

        def pred_gpb(state, mask):
            out = state["b"].predict(data=Xall[mask].to_numpy(), group_data_pred=df.loc[mask, group].to_numpy(),
                                     group_rand_coef_data_pred=df.loc[mask, slope].to_numpy(), predict_var=False,
                                     pred_latent=False)
            return out["response_mean"]
        record("GPBoost (lr 0.05, 300 rounds)", gpboost_fit(0.05, 300, 31, "untuned"), pred_gpb)
        record("GPBoost (lr 0.1, 500 rounds, 15 leaves)", gpboost_fit(0.1, 500, 15, "short manual search on the "
                                                                      "simulated test set: optimistic"), pred_gpb)
    else:
        rows.append({"method": "GPBoost", "note": f"not installed: {GPB_ERROR}"})

    def fit_alone():
        return {"m": _forest(trees).fit(Xall[train], y[train])}
    record("forest alone (no groups)", fit_alone, lambda s, m: s["m"].predict(Xall[m]))

    levels = sorted(df[group].unique())
    onehot = pd.get_dummies(pd.Categorical(df[group], categories=levels), prefix="g").astype(float)
    Xoh = pd.concat([Xall.reset_index(drop=True), onehot.reset_index(drop=True)], axis=1)
    Xoh.columns = [str(c) for c in Xoh.columns]

    def fit_onehot():
        return {"m": _forest(trees).fit(Xoh[train], y[train])}
    record("forest + one-hot group", fit_onehot, lambda s, m: s["m"].predict(Xoh[m]))

    formula = f"y ~ {' + '.join(features + [slope])} + (1 + {slope} | {group})"

    def fit_lmm():
        return {"m": mm.lmer(formula, df[train].assign(y=y[train]))}
    record("LMM alone (linear in the features)", fit_lmm,
           lambda s, m: mm.predict(s["m"], df[m], allow_new_levels=True).to_numpy())
    return pd.DataFrame(rows)


def verbagg_rows(trees: int, seed: int = 0):
    """Binary: log-loss and AUC on 20 % held-out rows of VerbAgg (crossed persons and items)."""
    d = mm.load_dataset("VerbAgg")
    X = pd.DataFrame({"Anger": d.Anger.astype(float), "male": (d.Gender == "M").astype(float),
                      "btype": d.btype.cat.codes.astype(float), "situ": (d.situ == "self").astype(float),
                      "mode": (d["mode"] == "do").astype(float), "id": d.id.astype(str), "item": d.item.astype(str)})
    y = (d.r2 == "Y").astype(int).to_numpy()
    test = np.random.default_rng(seed).random(len(y)) < 0.2
    feats = ["Anger", "male", "btype", "situ", "mode"]
    rows = []

    def record(name, fit, proba):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            state = fit()
        except Exception as err:  # noqa: BLE001
            rows.append({"method": name, "log-loss": np.nan, "AUC": np.nan, "fit s": np.nan, "fit CPU s": np.nan,
                         "note": f"failed: {type(err).__name__}: {str(err)[:60]}"})
            return
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        p = np.clip(proba(state), 1e-12, 1 - 1e-12)
        rows.append({"method": name, "log-loss": log_loss(y[test], p), "AUC": roc_auc_score(y[test], p),
                     "fit s": elapsed, "fit CPU s": cpu, "note": state.get("note", "")})

    def fit_ours():
        hgb = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.05, random_state=0)
        clf = mm.MixedEffectsClassifier(hgb, random="(1 | id) + (1 | item)", max_iter=10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mm.ConvergenceWarning)
            clf.fit(X[~test], y[~test])
        return {"m": clf, "note": f"{clf.n_iter_} iterations ({clf.residual_method_})"}
    record("mixedmodels MixedEffectsClassifier (HistGradientBoosting)", fit_ours,
           lambda s: s["m"].predict_proba(X[test])[:, 1])

    if gpb is not None:
        def fit_gpb():
            gp = gpb.GPModel(group_data=X.loc[~test, ["id", "item"]].to_numpy(), likelihood="bernoulli_logit")
            data = gpb.Dataset(X.loc[~test, feats].to_numpy(), y[~test])
            params = {"learning_rate": 0.05, "max_depth": 4, "min_data_in_leaf": 20, "verbose": -1, "num_threads": 1}
            return {"b": gpb.train(params=params, train_set=data, gp_model=gp, num_boost_round=100),
                    "note": "100 rounds, lr 0.05, depth 4 (untuned)"}
        record("GPBoost", fit_gpb, lambda s: s["b"].predict(
            data=X.loc[test, feats].to_numpy(), group_data_pred=X.loc[test, ["id", "item"]].to_numpy(),
            predict_var=False, pred_latent=False)["response_mean"])
    rows.append({"method": "MERF", "note": "regression only"})

    def fit_alone():
        return {"m": HistGradientBoostingClassifier(max_iter=100, learning_rate=0.05, random_state=0)
                .fit(X.loc[~test, feats], y[~test])}
    record("HistGradientBoosting alone", fit_alone, lambda s: s["m"].predict_proba(X.loc[test, feats])[:, 1])

    def fit_glmm():
        data = d.assign(y=y)
        return {"m": mm.glmer("y ~ Anger + Gender + btype + situ + mode + (1 | id) + (1 | item)", data[~test],
                              family="binomial")}
    record("GLMM alone (glmer)", fit_glmm, lambda s: mm.predict(s["m"], d[test].assign(y=y[test]), type="response",
                                                                 allow_new_levels=True).to_numpy())
    return pd.DataFrame(rows)


def _print(title: str, table: pd.DataFrame) -> None:
    print(f"\n### {title}\n")
    with pd.option_context("display.width", 200, "display.max_colwidth", 70, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--skip-binary", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore", mm.SingularFitWarning)
    threadpool_limits(1)  # every method on one thread (OpenMP, BLAS)
    logging.getLogger("merf").setLevel(logging.WARNING)  # MERF logs every iteration at INFO
    df, y, train, seen, unseen = friedman_groups()
    sim = regression_rows(df, y, train, seen, unseen, group="group", slope="z",
                          features=[f"x{j}" for j in range(5)], trees=args.trees)
    _print(f"Simulated Friedman #1 + (1 + z | group), 200 groups, {train.sum()} training rows, "
           f"{args.trees} trees", sim)
    df, y, train, seen, unseen = gpa_split()
    real = regression_rows(df, y, train, seen, unseen, group="student", slope="occasion",
                           features=["highgpa", "sexmale", "admitted", "job"], trees=args.trees)
    _print(f"gpa (bundled): (1 + occasion | student), {train.sum()} training rows", real)
    if not args.skip_binary:
        _print("VerbAgg (bundled), binary r2: (1 | id) + (1 | item), 80 % to fit", verbagg_rows(args.trees))


if __name__ == "__main__":
    main()
