"""Benchmark: multilevel multiple imputation and pooling, against R's mitml, timed in the same run.

1. ``pan`` with m = 20 on mitml's 750-row studentratings data (burn-in 1000, 100 sweeps between
   imputations) against mitml's ``panImpute`` with the same iterations.
2. 20 fits and pooling on sleepstudy-size data (180 rows): ``mm.lmer(formula, imputations)``
   (the design's parse and grouping structure reused, warm starts) and ``coef_table()``, against
   20 separate ``mm.lmer`` calls and ``mm.pool``, and against R's ``with(imps, lmer(...))`` +
   ``testEstimates``. Target: under 1 s.

R is called through ``Rscript`` (its times are measured inside R, without R's start-up). Prints a table.

    python bench/bench_missing.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mixedmodels as mm

ROOT = Path(__file__).resolve().parents[1]
SR = ROOT / "tests" / "reference" / "studentratings.csv"

R_PAN = """
suppressPackageStartupMessages({library(mitml)})
sr <- read.csv("%s")
t0 <- proc.time()[["elapsed"]]
imp <- panImpute(sr, formula = ReadDis + SES ~ ReadAchiev + (1 | ID), n.burn = 1000, n.iter = 100, m = 20,
                 seed = 1, silent = TRUE)
cat(proc.time()[["elapsed"]] - t0, "\\n")
"""

R_POOL = """
suppressPackageStartupMessages({library(mitml); library(lme4)})
long <- read.csv("%s")
impl <- as.mitml.list(split(long[, -1], long$.imp))
t0 <- proc.time()[["elapsed"]]
fits <- with(impl, lmer(Reaction ~ Days + (Days | Subject)))
te <- testEstimates(fits, extra.pars = TRUE)
cat(proc.time()[["elapsed"]] - t0, "\\n")
"""


def _r(script: str) -> float | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(script)
    out = subprocess.run(["Rscript", fh.name], capture_output=True, text=True)
    try:
        return float(out.stdout.strip().split()[-1])
    except (ValueError, IndexError):
        print(out.stderr)
        return None


def main() -> None:
    warnings.simplefilter("ignore")
    rows = []
    sr = pd.read_csv(SR)
    mm.impute(sr, "ReadDis + SES ~ ReadAchiev + (1 | ID)", method="pan", m=1, seed=1, n_burn=10, n_iter=1)  # warm
    t0 = time.perf_counter()
    mm.impute(sr, "ReadDis + SES ~ ReadAchiev + (1 | ID)", method="pan", m=20, seed=1, n_burn=1000, n_iter=100)
    ours = time.perf_counter() - t0
    theirs = _r(R_PAN % SR)
    rows.append(("pan m=20, 750 rows, 1000 + 19×100 sweeps", "mm.impute(method='pan')", ours,
                 "mitml panImpute", theirs))

    d = mm.load_dataset("sleepstudy")
    rng = np.random.default_rng(1)
    holes = d.assign(Reaction=d["Reaction"].where(rng.random(len(d)) > 0.2))
    imps = mm.impute(holes, "Reaction ~ Days + (1 + Days | Subject)", method="pan", m=20, seed=2, n_burn=200,
                     n_iter=10)
    formula = "Reaction ~ Days + (Days | Subject)"
    mm.lmer(formula, imps[0])  # warm
    t0 = time.perf_counter()
    mm.lmer(formula, imps).coef_table()
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    mm.pool([mm.lmer(formula, x) for x in imps]).coef_table()
    separate = time.perf_counter() - t0
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
        imps.to_long()[[".imp", "Subject", "Days", "Reaction"]].to_csv(fh.name, index=False)
    theirs = _r(R_POOL % fh.name)
    rows.append(("20 fits + pooling, sleepstudy (180 rows)", "mm.lmer(formula, imps)", ours,
                 "lme4 with() + testEstimates", theirs))
    rows.append(("20 fits + pooling, sleepstudy (180 rows)", "20 × mm.lmer + mm.pool", separate, "", None))

    print("| case | ours | seconds | peer | seconds |\n|---|---|---|---|---|")
    for case, a, ta, b, tb in rows:
        print(f"| {case} | {a} | {ta:.2f} | {b} | {'' if tb is None else f'{tb:.2f}'} |")
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
