"""Simulation for docs/missing-data.md: complete-case, one-off forest imputation, pan MI and fcs MI on a
two-level design with MCAR and MAR missingness in a predictor and in the outcome.

Design: J = 30 clusters of 10; x = cluster part + noise; an auxiliary w = y + noise (complete, in the
imputation models, not in the analysis model); y = 1 + 0.5 x + u + e with ICC about 0.2. Analysis
model ``y ~ x + (1 | g)``; the target is the slope 0.5 and the intercept 1. Missingness:

- MCAR: 30% of x and 20% of y missing, independently of everything;
- MAR: x and y missing with a probability increasing with w (logistic), on average about the same
  shares; the complete cases over-represent low w, hence low y, so complete-case estimates are biased.

Per replication and method: the estimate of the slope and intercept, its 95% interval (t with the
Barnard–Rubin df for MI, Wald z otherwise), the run time. Prints a markdown table and writes JSON.

    python bench/sim_missing.py --reps 100            # ~ 15-30 min on a shared 2-core machine
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats

import mixedmodels as mm

TRUE = {"(Intercept)": 1.0, "x": 0.5}


def simulate(rng: np.random.Generator, scenario: str, J: int = 30, n: int = 10) -> pd.DataFrame:
    g = np.repeat(np.arange(J), n)
    x = rng.normal(scale=0.6, size=J)[g] + rng.normal(size=J * n)
    y = 1 + 0.5 * x + rng.normal(scale=0.55, size=J)[g] + rng.normal(size=J * n)
    w = y + rng.normal(scale=0.6, size=J * n)
    if scenario == "MCAR":
        mx = rng.random(J * n) < 0.3
        my = rng.random(J * n) < 0.2
    else:
        z = (w - w.mean()) / w.std()
        mx = rng.random(J * n) < 1 / (1 + np.exp(-(-1.0 + 1.5 * z)))
        my = rng.random(J * n) < 1 / (1 + np.exp(-(-1.6 + 1.5 * z)))
    return pd.DataFrame({"y": np.where(my, np.nan, y), "x": np.where(mx, np.nan, x), "w": w, "g": g})


def one_rep(rng: np.random.Generator, scenario: str, m: int) -> list[dict]:
    d = simulate(rng, scenario)
    rows = []
    formula = "y ~ x + (1 | g)"
    for method in ("complete", "forest", "pan", "fcs"):
        t0 = time.perf_counter()
        if method == "complete":
            fit = mm.lmer(formula, d)
            tab = fit.coef_table()
            q = stats.norm.ppf(0.975) * np.ones(len(tab))
        else:
            if method == "forest":
                done = mm.impute(d, columns=["y", "x", "w"], group="g", method="forest", seed=rng,
                                 n_estimators=25, max_iter=5)
                fit = mm.lmer(formula, done)
                tab = fit.coef_table()
                q = stats.norm.ppf(0.975) * np.ones(len(tab))
            else:
                opts = {"n_burn": 200, "n_iter": 20} if method == "pan" else {"maxit": 10}
                imps = mm.impute(d, "y + x ~ w + (1 | g)", method=method, m=m, seed=rng, **opts)
                tab = mm.lmer(formula, imps).coef_table()
                q = stats.t.ppf(0.975, tab["df"].to_numpy())
        secs = time.perf_counter() - t0
        for name, truth in TRUE.items():
            est, se = tab.loc[name, "Estimate"], tab.loc[name, "Std. Error"]
            rows.append({"scenario": scenario, "method": method, "parameter": name, "estimate": est, "se": se,
                         "covered": bool(abs(est - truth) <= q[list(tab.index).index(name)] * se),
                         "seconds": secs})
    return rows


def markdown(df: pd.DataFrame) -> str:
    """A markdown table (floats to 3 decimals)."""
    cell = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cell])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--m", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", default="bench/sim_missing.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    rows = []
    for rep in range(args.reps):
        for scenario in ("MCAR", "MAR"):
            rows.extend(one_rep(rng, scenario, args.m))
        if (rep + 1) % 10 == 0 or rep + 1 == args.reps:
            report(rows, rep + 1, args, time.perf_counter() - t0, final=rep + 1 == args.reps)


def report(rows: list[dict], reps: int, args, total: float, final: bool) -> None:
    """Summarize the replications so far; print and write them (partial results survive an interruption)."""
    df = pd.DataFrame(rows)
    df["truth"] = df["parameter"].map(TRUE)
    df["error"] = df["estimate"] - df["truth"]
    summary = df.groupby(["scenario", "parameter", "method"], sort=False).agg(
        bias=("error", "mean"), rmse=("error", lambda e: float(np.sqrt(np.mean(e ** 2)))),
        mean_se=("se", "mean"), sd_est=("estimate", "std"), coverage=("covered", "mean"),
        seconds=("seconds", "mean")).reset_index()
    print(f"{reps} replications, {total:.0f} s", flush=True)
    if final:
        print(f"\n{reps} replications per scenario, m = {args.m}, total run time {total:.0f} s\n")
        print(markdown(summary))
    with open(args.out, "w") as fh:
        json.dump({"reps": reps, "m": args.m, "seed": args.seed, "seconds": total, "complete": final,
                   "summary": summary.to_dict(orient="records")}, fh, indent=1)


if __name__ == "__main__":
    main()
