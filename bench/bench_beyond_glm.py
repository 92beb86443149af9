"""Zero-inflated negative binomial GLMMs: mm.glmer(family="nbinom2", zi=...) against glmmTMB.

1. glmmTMB's Salamanders, ``count ~ spp + mined + (1 | site)``, ``zi = ~ spp + mined``
   (644 rows, 18 parameters).
2. A seeded simulated ZINB with 100,000 rows and a 2,000-level grouping factor,
   ``y ~ x1 + x2 + (1 | g)``, ``zi = ~ x1``.

Both sides are timed for the fit with its standard errors (glmmTMB's ``glmmTMB()`` runs
``sdreport``; ours computes the Hessian in ``fit``), glmmTMB inside R (``Rscript``, without R's
start-up), in the same run; the log-likelihoods are printed to show the same optimum. Target:
at least 5x glmmTMB on both. Prints a table.

    python bench/bench_beyond_glm.py
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mixedmodels as mm

R_FIT = """
suppressPackageStartupMessages(library(glmmTMB))
d <- read.csv("%s")
%s
t0 <- proc.time()[["elapsed"]]
for (i in 1:%d) m <- glmmTMB(%s, data = d, family = nbinom2, ziformula = %s)
cat(logLik(m), (proc.time()[["elapsed"]] - t0) / %d, "\\n")
"""


def _glmmtmb(path: str, prep: str, formula: str, zi: str, reps: int) -> tuple[float, float] | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_FIT % (path, prep, reps, formula, zi, reps))
    out = subprocess.run(["Rscript", fh.name], capture_output=True, text=True)
    try:
        ll, sec = out.stdout.strip().split()[-2:]
        return float(ll), float(sec)
    except ValueError:
        print(out.stderr)
        return None


def simulated_zinb(n: int = 100_000, levels: int = 2_000, seed: int = 19) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(levels, size=n)
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    b = rng.normal(0.0, 0.6, levels)[g]
    mu = np.exp(0.5 + 0.4 * x1 - 0.3 * x2 + b)
    k = 1.5
    y = rng.poisson(rng.gamma(k, mu / k))
    y[rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-(-1.0 + 0.5 * x1)))] = 0
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": [f"g{i}" for i in g]})


def _ours(formula: str, data: pd.DataFrame, zi: str, reps: int) -> tuple[float, float]:
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        m = mm.glmer(formula, data, family="nbinom2", zi=zi)
        m.coef_table()
        m.coef_table(component="zi")
        best = min(best, time.perf_counter() - t0)
    return m.loglik, best


def main() -> None:
    warnings.simplefilter("ignore")
    rows = []
    sal = mm.load_dataset("Salamanders")
    f, zi = "count ~ spp + mined + (1 | site)", "~ spp + mined"
    mm.glmer(f, sal, family="nbinom2", zi=zi)   # warm: imports, formulaic
    ll, ours = _ours(f, sal, zi, 5)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "sal.csv")
        sal.to_csv(path, index=False)
        prep = ('d$spp <- factor(d$spp, levels = c("GP","PR","DM","EC-A","EC-L","DES-L","DF")); '
                'd$mined <- factor(d$mined, levels = c("yes","no")); d$site <- factor(d$site)')
        theirs = _glmmtmb(path, prep, "count ~ spp + mined + (1 | site)", "~ spp + mined", 5)
        rows.append(("Salamanders ZINB2 (644 rows, 18 par.)", ll, ours, theirs))
        d = simulated_zinb()
        ll, ours = _ours("y ~ x1 + x2 + (1 | g)", d, "~ x1", 1)
        path = str(Path(tmp) / "zinb.csv")
        d.to_csv(path, index=False)
        theirs = _glmmtmb(path, "d$g <- factor(d$g)", "y ~ x1 + x2 + (1 | g)", "~ x1", 1)
        rows.append(("simulated ZINB2 (100k rows, 2,000 levels)", ll, ours, theirs))
    print(f"{'case':<44}{'logLik ours':>14}{'glmmTMB':>14}{'ours s':>9}{'glmmTMB s':>11}{'ratio':>8}")
    for name, ll, ours, theirs in rows:
        tll, tsec = theirs if theirs else (np.nan, np.nan)
        print(f"{name:<44}{ll:>14.4f}{tll:>14.4f}{ours:>9.3f}{tsec:>11.3f}{tsec / ours:>7.1f}x")


if __name__ == "__main__":
    main()
