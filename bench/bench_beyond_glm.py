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
t0 <- proc.time()
for (i in 1:%d) m <- glmmTMB(%s, data = d, family = nbinom2, ziformula = %s)
t1 <- proc.time() - t0
cat(sprintf("%%.6f", logLik(m)), t1[["elapsed"]] / %d, (t1[["user.self"]] + t1[["sys.self"]]) / %d, "\\n")
"""


def _glmmtmb(path: str, prep: str, formula: str, zi: str, reps: int) -> tuple | None:
    """glmmTMB's (logLik, wall seconds, CPU seconds) per fit, or None without R."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_FIT % (path, prep, reps, formula, zi, reps, reps))
    out = subprocess.run(["Rscript", fh.name], capture_output=True, text=True)
    try:
        ll, sec, cpu = out.stdout.strip().split()[-3:]
        return float(ll), float(sec), float(cpu)
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


def _ours(formula: str, data: pd.DataFrame, zi: str, reps: int) -> tuple:
    """(logLik, wall seconds, CPU seconds) per fit (the mean of reps)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(reps):
        m = mm.glmer(formula, data, family="nbinom2", zi=zi)
        m.coef_table()
        m.coef_table(component="zi")
    return m.loglik, (time.perf_counter() - t0) / reps, (time.process_time() - c0) / reps


def main() -> None:
    warnings.simplefilter("ignore")
    rows = []
    sal = mm.load_dataset("Salamanders")
    f, zi = "count ~ spp + mined + (1 | site)", "~ spp + mined"
    mm.glmer(f, sal, family="nbinom2", zi=zi)   # warm: imports, formulaic
    ours = _ours(f, sal, zi, 20)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "sal.csv")
        sal.to_csv(path, index=False)
        prep = ('d$spp <- factor(d$spp, levels = c("GP","PR","DM","EC-A","EC-L","DES-L","DF")); '
                'd$mined <- factor(d$mined, levels = c("yes","no")); d$site <- factor(d$site)')
        theirs = _glmmtmb(path, prep, "count ~ spp + mined + (1 | site)", "~ spp + mined", 20)
        rows.append(("Salamanders ZINB2 (644 rows, 18 par.)", ours, theirs))
        d = simulated_zinb()
        ours = _ours("y ~ x1 + x2 + (1 | g)", d, "~ x1", 1)
        path = str(Path(tmp) / "zinb.csv")
        d.to_csv(path, index=False)
        theirs = _glmmtmb(path, "d$g <- factor(d$g)", "y ~ x1 + x2 + (1 | g)", "~ x1", 1)
        rows.append(("simulated ZINB2 (100k rows, 2,000 levels)", ours, theirs))
    # wall and CPU seconds: on a shared machine the CPU time is the steadier comparison
    print(f"{'case':<44}{'logLik ours':>13}{'glmmTMB':>13}{'ours s':>8}{'TMB s':>8}{'ratio':>7}"
          f"{'ours cpu':>9}{'TMB cpu':>9}{'ratio':>7}")
    for name, (ll, sec, cpu), theirs in rows:
        tll, tsec, tcpu = theirs if theirs else (np.nan, np.nan, np.nan)
        print(f"{name:<44}{ll:>13.3f}{tll:>13.3f}{sec:>8.2f}{tsec:>8.2f}{tsec / sec:>6.1f}x"
              f"{cpu:>9.2f}{tcpu:>9.2f}{tcpu / cpu:>6.1f}x")


if __name__ == "__main__":
    main()
