"""Ordinal mixed-model benchmark: ``mm.clmm`` against ordinal's ``clmm`` (Rscript), in one run.

Cases:
- ``wine``: ordinal's wine data, ``rating ~ temp + contact + (1 | judge)`` (72 rows), Laplace,
  and the same with AGQ (nAGQ = 10);
- ``sim_50k``: 50,000 rows, ``y ~ x1 + x2 + (1 | g)`` with a 1,000-level factor and 5
  categories (logit), generated with a fixed seed.

R runs when ``Rscript`` with ordinal is installed (its times are measured in the same run);
otherwise its column is empty. Each time is the best of a few fits, formula to results with
standard errors (ordinal computes its Hessian in the fit; ours is computed on demand, so the
timing includes ``coef_table()``). Both wall-clock and CPU seconds (user + system, all threads)
are shown; on a shared, loaded machine the CPU times are the fairer comparison, and the
speed-up is their ratio.

    python bench/bench_ordinal.py

Measured 2026-12-02 (2 shared cores, load ~12; ordinal 2022.11.16)::

                mm.clmm s  ordinal s  mm.clmm cpu s  ordinal cpu s  speed-up (cpu)   logLik  ordinal logLik  logLik diff
    wine         0.122793      0.128      0.0254396          0.032         1.25788 -81.5654        -81.5654 -3.48437e-06
    wine_agq10   0.165322       0.15      0.0457788          0.041        0.895611 -81.5325        -81.5325  1.43686e-10
    sim_50k        4.4408     459.34        1.23551        127.327         103.056 -71823.6        -71823.6  0.000663939

(wine's −3.5e-6: ordinal's reported logLik is off its own Laplace likelihood by that much;
see tests/reference/make_ordinal_reference.R.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

CASES = {
    "wine": ("rating ~ temp + contact + (1 | judge)", 1, 5),
    "wine_agq10": ("rating ~ temp + contact + (1 | judge)", 10, 5),
    "sim_50k": ("y ~ x1 + x2 + (1 | g)", 1, 2),
}


def simulated(n: int = 50_000, m: int = 1_000, seed: int = 20261202) -> pd.DataFrame:
    """Five ordered categories from a logistic latent variable with a random intercept."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, m, n)
    x1, x2 = rng.normal(size=n), rng.binomial(1, 0.4, n).astype(float)
    b = rng.normal(0.0, 0.9, m)
    latent = 0.8 * x1 - 0.5 * x2 + b[g] + rng.logistic(size=n)
    y = np.digitize(latent, [-2.0, -0.5, 0.7, 2.0])
    return pd.DataFrame({"y": pd.Categorical(np.array(list("abcde"))[y], categories=list("abcde"),
                                             ordered=True),
                         "x1": x1, "x2": x2, "g": pd.Categorical(g)})


def data_for(case: str) -> pd.DataFrame:
    import mixedmodels as mm

    return simulated() if case == "sim_50k" else mm.load_dataset("wine")


def time_ours(case: str) -> tuple[float, float, float]:
    import mixedmodels as mm

    formula, n_agq, reps = CASES[case]
    data = data_for(case)
    warnings.simplefilter("ignore")
    best, best_cpu, ll = np.inf, np.inf, np.nan
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        o = mm.clmm(formula, data, n_agq=n_agq)
        o.coef_table()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
        ll = o.loglik
    return best, best_cpu, ll


_R = """
suppressMessages({library(ordinal); library(jsonlite)})
args <- commandArgs(TRUE)
d <- if (args[1] == "sim_50k") read.csv(args[2], stringsAsFactors = TRUE) else {data(wine); wine}
if (args[1] == "sim_50k") { d$y <- factor(d$y, levels = letters[1:5], ordered = TRUE); d$g <- factor(d$g) }
best <- Inf; best_cpu <- Inf
for (i in seq_len(as.integer(args[5]))) {
  t <- system.time(f <- clmm(as.formula(args[3]), data = d, nAGQ = as.integer(args[4])))
  best <- min(best, t[["elapsed"]])
  best_cpu <- min(best_cpu, t[["user.self"]] + t[["sys.self"]])
}
cat(toJSON(list(seconds = best, cpu = best_cpu, logLik = as.numeric(logLik(f))), digits = NA,
           auto_unbox = TRUE))
"""


def time_r(case: str, workdir: Path) -> tuple[float, float, float]:
    if shutil.which("Rscript") is None:
        return np.nan, np.nan, np.nan
    formula, n_agq, reps = CASES[case]
    csv = workdir / "sim.csv"
    if case == "sim_50k" and not csv.exists():
        simulated().to_csv(csv, index=False)
    script = workdir / "bench.R"
    script.write_text(_R)
    out = subprocess.run(["Rscript", str(script), case, str(csv), formula, str(n_agq),
                          str(max(1, reps // 2))], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return np.nan, np.nan, np.nan
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return float(res["seconds"]), float(res["cpu"]), float(res["logLik"])


def main(cases: list[str]) -> pd.DataFrame:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            ours, ours_cpu, ll = time_ours(case)
            r_s, r_cpu, r_ll = time_r(case, Path(tmp))
            rows.append({"case": case, "mm.clmm s": ours, "ordinal s": r_s,
                         "mm.clmm cpu s": ours_cpu, "ordinal cpu s": r_cpu,
                         "speed-up (cpu)": r_cpu / ours_cpu, "logLik": ll,
                         "ordinal logLik": r_ll, "logLik diff": ll - r_ll})
    table = pd.DataFrame(rows).set_index("case")
    print(table.to_string(float_format=lambda v: f"{v:.6g}"))
    return table


if __name__ == "__main__":
    main(sys.argv[1:] or list(CASES))
