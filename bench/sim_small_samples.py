"""Few clusters: coverage, bias and singular fits of REML, blme and Bayes (docs/small-samples.md).

Model: y_ij = 1 + 0.5 x_ij + b_i + e_ij, b_i ~ N(0, 0.5²), e_ij ~ N(0, 1), 6 observations per
cluster, x uniform on (−1, 1) within clusters; 5, 10, 20 and 50 clusters. Per replicate:

* REML (mm.lmer): the SD estimate, singular or not, profile 95% intervals for the SD and the slope;
* blme (mm.blmer, default Wishart prior): the mode, Wald 95% intervals at the mode;
* Bayes (mm.bayes_fit, default priors: decov(1,1,1,1), flat β, σ ~ exponential(1/sd(y))): posterior
  median and central 95% interval (2 chains × 500 draws after 500 warm-up).

Run: ``python bench/sim_small_samples.py --reps 200`` (writes bench/sim_small_samples.json).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

import mixedmodels as mm

SD_B, SIGMA, SLOPE = 0.5, 1.0, 0.5
F = "y ~ x + (1 | g)"


def one(args):
    m, rep = args
    rng = np.random.default_rng([m, rep])
    g = np.repeat(np.arange(m), 6)
    x = rng.uniform(-1, 1, len(g))
    y = 1 + SLOPE * x + rng.normal(0, SD_B, m)[g] + rng.normal(0, SIGMA, len(g))
    d = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    out = {"m": m, "rep": rep}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = mm.lmer(F, d)
        out["reml_sd"] = float(r.theta[0] * r.sigma)
        out["reml_singular"] = bool(r.is_singular)
        ci = r.confint(method="profile", which=["sd_(Intercept)|g", "x"])
        out["reml_sd_ci"] = ci.loc["sd_(Intercept)|g"].tolist()
        out["reml_x_ci"] = ci.loc["x"].tolist()
        b = mm.blmer(F, d)
        out["blme_sd"] = float(b.theta[0] * b.sigma)
        w = b.confint()
        out["blme_sd_ci"] = w.loc["sd_(Intercept)|g", ["lower", "upper"]].tolist()
        out["blme_x_ci"] = w.loc["x", ["lower", "upper"]].tolist()
        p = mm.bayes_fit(F, d, chains=2, draws=500, warmup=500, seed=rep, cores=1)
        dr = p.draws()
        out["bayes_sd"] = float(dr["sd_(Intercept)|g"].median())
        out["bayes_sd_ci"] = dr["sd_(Intercept)|g"].quantile([0.025, 0.975]).tolist()
        out["bayes_x_ci"] = dr["x"].quantile([0.025, 0.975]).tolist()
    return out


def table(rows: list[dict]) -> pd.DataFrame:
    res = []
    for m in sorted({r["m"] for r in rows}):
        rs = [r for r in rows if r["m"] == m]
        for meth in ("reml", "blme", "bayes"):
            sd = np.array([r[f"{meth}_sd"] for r in rs])
            sd_cov = np.mean([lo <= SD_B <= hi for lo, hi in (r[f"{meth}_sd_ci"] for r in rs)])
            x_cov = np.mean([lo <= SLOPE <= hi for lo, hi in (r[f"{meth}_x_ci"] for r in rs)])
            res.append({"clusters": m, "method": {"reml": "REML", "blme": "blme", "bayes": "Bayes"}[meth],
                        "SD bias": sd.mean() - SD_B, "SD RMSE": np.sqrt(np.mean((sd - SD_B) ** 2)),
                        "SD = 0 (singular)": np.mean(sd < 1e-4), "SD coverage": sd_cov, "slope coverage": x_cov})
    return pd.DataFrame(res)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    a = ap.parse_args()
    t0 = time.perf_counter()
    jobs = [(m, rep) for m in (5, 10, 20, 50) for rep in range(a.reps)]
    with ProcessPoolExecutor(a.workers) as pool:
        rows = list(pool.map(one, jobs))
    secs = time.perf_counter() - t0
    t = table(rows)
    Path(a.out).write_text(json.dumps({"reps": a.reps, "seconds": secs, "rows": rows}, separators=(",", ":")))
    print(f"{a.reps} replicates per size, {secs:.0f} s with {a.workers} workers")
    print(t.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
