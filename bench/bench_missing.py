"""Benchmark: multilevel multiple imputation and pooling, against R (mitml, jomo, mice), timed in the
same run.

1. ``pan`` with m = 20 on mitml's 750-row studentratings data (burn-in 1000, 100 sweeps between
   imputations) against mitml's ``panImpute`` with the same iterations.
2. ``pan`` with a categorical (latent normal) and a level-2 variable against mitml's ``jomoImpute``
   (the same model and iterations), on tests/reference/missing_l2cat_data.csv.
3. ``fcs`` with m = 20, 20 cycles against mice (``2l.pan``), on the studentratings variables.
4. 20 fits and pooling on sleepstudy-size data (180 rows): ``mm.lmer(formula, imputations)``
   (imputed response: ``refit``; imputed predictor: one stacked model-matrix evaluation) against 20
   separate ``mm.lmer`` calls and ``mm.pool``, and against R's ``with(imps, lmer(...))`` +
   ``testEstimates``. Target: under 1 s.

R is called through ``Rscript`` (its times are measured inside R, without R's start-up). Each case
is run twice, ours and R's alternately, and the faster of the two runs is shown (the machine is
shared). Prints a table.

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
L2 = ROOT / "tests" / "reference" / "missing_l2cat_data.csv"

R_PAN = """
suppressPackageStartupMessages({library(mitml)})
sr <- read.csv("%s")
t0 <- proc.time()[["elapsed"]]
imp <- panImpute(sr, formula = ReadDis + SES ~ ReadAchiev + (1 | ID), n.burn = 1000, n.iter = 100, m = 20,
                 seed = 1, silent = TRUE)
cat(proc.time()[["elapsed"]] - t0, "\\n")
"""

R_JOMO = """
suppressPackageStartupMessages({library(mitml)})
d <- read.csv("%s")
d$SexNA <- factor(d$SexNA, levels = c("Boy", "Girl"))
t0 <- proc.time()[["elapsed"]]
imp <- jomoImpute(d[, c("ID", "ReadAchiev", "ReadDis", "SES", "SexNA", "SchQual")],
                  formula = list(ReadDis + SES + SexNA ~ ReadAchiev + (1 | ID), SchQual ~ 1),
                  n.burn = 1000, n.iter = 100, m = 20, seed = 1, silent = TRUE)
cat(proc.time()[["elapsed"]] - t0, "\\n")
"""

R_MICE = """
suppressPackageStartupMessages({library(mice)})
sr <- read.csv("%s")
d <- sr[, c("ID", "ReadAchiev", "ReadDis", "SES")]
d$ID <- as.integer(factor(d$ID))
meth <- make.method(d); meth[c("ReadDis", "SES")] <- "2l.pan"
pred <- make.predictorMatrix(d); pred[, "ID"] <- -2; diag(pred) <- 0; pred["ID", ] <- 0
t0 <- proc.time()[["elapsed"]]
imp <- mice(d, m = 20, method = meth, predictorMatrix = pred, maxit = 20, seed = 1, printFlag = FALSE)
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


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _best(ours, theirs, runs: int = 2) -> tuple[float, float | None]:
    a, b = [], []
    for _ in range(runs):
        a.append(_timed(ours))
        if theirs is not None:
            b.append(theirs())
    b = [x for x in b if x is not None]
    return min(a), (min(b) if b else None)


def main() -> None:
    warnings.simplefilter("ignore")
    rows = []
    sr = pd.read_csv(SR)
    imp = "ReadDis + SES ~ ReadAchiev + (1 | ID)"
    mm.impute(sr, imp, method="pan", m=2, seed=1, n_burn=10, n_iter=1)  # warm
    ours, theirs = _best(lambda: mm.impute(sr, imp, method="pan", m=20, seed=1, n_burn=1000, n_iter=100),
                         lambda: _r(R_PAN % SR))
    rows.append(("pan m=20, 750 rows, 1000 + 19×100 sweeps", "mm.impute(method='pan')", ours,
                 "mitml panImpute", theirs))

    d2 = pd.read_csv(L2)
    f2 = ["ReadDis + SES + SexNA ~ ReadAchiev + (1 | ID)", "SchQual ~ 1"]
    ours, theirs = _best(lambda: mm.impute(d2, f2, method="pan", m=20, seed=1, n_burn=1000, n_iter=100),
                         lambda: _r(R_JOMO % L2))
    rows.append(("pan + categorical + level-2, m=20, 1000 + 19×100 sweeps", "mm.impute(method='pan', [f1, f2])",
                 ours, "mitml jomoImpute", theirs))

    ours, theirs = _best(lambda: mm.impute(sr, imp, method="fcs", m=20, seed=1, maxit=20),
                         lambda: _r(R_MICE % SR))
    rows.append(("fcs m=20, 20 cycles", "mm.impute(method='fcs')", ours, "mice 2l.pan", theirs))

    d = mm.load_dataset("sleepstudy")
    rng = np.random.default_rng(1)
    holes = d.assign(Reaction=d["Reaction"].where(rng.random(len(d)) > 0.2))
    imps = mm.impute(holes, "Reaction ~ Days + (1 + Days | Subject)", method="pan", m=20, seed=2, n_burn=200,
                     n_iter=10)
    formula = "Reaction ~ Days + (Days | Subject)"
    mm.lmer(formula, imps[0])  # warm
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
        imps.to_long()[[".imp", "Subject", "Days", "Reaction"]].to_csv(fh.name, index=False)
    ours, theirs = _best(lambda: mm.lmer(formula, imps).coef_table(), lambda: _r(R_POOL % fh.name))
    rows.append(("20 fits + pooling, sleepstudy (180 rows), imputed response", "mm.lmer(formula, imps)", ours,
                 "lme4 with() + testEstimates", theirs))
    separate, _ = _best(lambda: mm.pool([mm.lmer(formula, x) for x in imps]).coef_table(), None)
    rows.append(("the same", "20 × mm.lmer + mm.pool", separate, "", None))
    # an imputed predictor: every fit has its own fixed-effects matrix
    dz = d.assign(x=d["Days"] + rng.normal(size=len(d)))
    dz["x"] = dz["x"].where(rng.random(len(d)) > 0.2)
    impx = mm.impute(dz, "x ~ Reaction + (1 | Subject)", method="pan", m=20, seed=3, n_burn=200, n_iter=10)
    fx = "Reaction ~ x + (Days | Subject)"
    ours, _ = _best(lambda: mm.lmer(fx, impx).coef_table(), None)
    separate, _ = _best(lambda: mm.pool([mm.lmer(fx, x) for x in impx]).coef_table(), None)
    rows.append(("20 fits + pooling, sleepstudy, imputed predictor", "mm.lmer(formula, imps)", ours, "", None))
    rows.append(("the same", "20 × mm.lmer + mm.pool", separate, "", None))

    print("| case | ours | seconds | peer | seconds | ratio |\n|---|---|---|---|---|---|")
    for case, a, ta, b, tb in rows:
        ratio = "" if tb is None else f"{ta / tb:.2f}"
        print(f"| {case} | {a} | {ta:.2f} | {b} | {'' if tb is None else f'{tb:.2f}'} | {ratio} |")
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
