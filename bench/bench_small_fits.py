"""Small fits: the per-fit cost, ours against lme4 in the same run (issue 13, section 4).

Users fit small models thousands of times (bootstrap, ``all_fit``, profiles, cross-validation,
imputations, simulation studies), so the fixed cost of a fit matters there: formula, design,
factor set-up, optimizer start-up. Each model is fit once to warm up, then timed as the mean of
30 fits from the data frame (formula to results); lme4 the same way, in one Rscript run started
by this script, between two passes of ours (averaged: the load of a shared machine drifts).
Times are CPU seconds of the process (user + system), which a loaded shared machine inflates
far less than wall-clock time. BLAS keeps its default threads: our small fits optimize on one
BLAS thread by themselves (``core/threads.py``; before, OpenBLAS's spinning second thread
doubled their CPU time), and R runs Debian's reference BLAS, single-threaded.
``refit`` is the mean of 30 ``m.refit(y_new)`` calls with simulated responses.

    python bench/bench_small_fits.py            # the table
    python bench/bench_small_fits.py --no-r     # ours only
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
PIXEL = ROOT / "tests" / "reference" / "Pixel.csv"
N_FITS = 30

# name: (function, formula, dataset, family)
MODELS = {
    "sleepstudy (Days | Subject)": ("lmer", "Reaction ~ Days + (Days | Subject)", "sleepstudy", None),
    "Penicillin, crossed": ("lmer", "diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", None),
    "Pastes, nested": ("lmer", "strength ~ 1 + (1 | batch/cask)", "Pastes", None),
    "Dyestuff": ("lmer", "Yield ~ 1 + (1 | Batch)", "Dyestuff", None),
    "gpa (1 + occasion | student)": ("lmer", "gpa ~ occasion + (1 + occasion | student)", "gpa", None),
    "cbpp binomial GLMM": ("glmer", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                           "cbpp", "binomial"),
    "Pixel (day | Dog) + (1 | Side:Dog)": ("lmer", "pixel ~ day + I(day^2) + (day | Dog) + (1 | Side:Dog)",
                                           "Pixel", None),
}

R_SCRIPT = r"""
suppressMessages({library(lme4); library(jsonlite)})
pix <- read.csv("%s"); pix$Dog <- factor(pix$Dog); pix$Side <- factor(pix$Side)
data <- list(sleepstudy = sleepstudy, Penicillin = Penicillin, Pastes = Pastes, Dyestuff = Dyestuff,
             cbpp = cbpp, Pixel = pix, gpa = read.csv("%s"))
models <- fromJSON('%s', simplifyVector = FALSE)
out <- list()
for (name in names(models)) {
  m <- models[[name]]; d <- data[[m[[3]]]]; f <- as.formula(m[[2]])
  fit <- if (m[[1]] == "glmer") function() glmer(f, d, family = binomial) else function() lmer(f, d)
  suppressWarnings(suppressMessages(fit()))
  st <- system.time(for (i in seq_len(%d)) suppressWarnings(suppressMessages(fit())))
  t <- st[["user.self"]] + st[["sys.self"]]
  out[[name]] <- t / %d
}
cat(toJSON(out, auto_unbox = TRUE, digits = NA))
"""


def load(name: str) -> pd.DataFrame:
    import mixedmodels as mm

    if name == "Pixel":
        frame = pd.read_csv(PIXEL, dtype={"Dog": str, "Side": str})
        frame["Dog"] = pd.Categorical(frame["Dog"])
        frame["Side"] = pd.Categorical(frame["Side"])
        return frame
    return mm.load_dataset(name)


def lme4_times() -> dict[str, float]:
    """Mean seconds per fit for each model, from one Rscript run."""
    import mixedmodels.presentation.datasets as ds

    gpa_csv = Path(ds.__file__).parent / "gpa.csv"
    spec = json.dumps({k: [v[0], v[1], v[2]] for k, v in MODELS.items()})
    script = R_SCRIPT % (PIXEL, gpa_csv, spec, N_FITS, N_FITS)
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ours(name: str) -> tuple[float, float, int]:
    """(mean seconds per fit, mean seconds per refit with a new response, evaluations)."""
    import mixedmodels as mm

    fun, formula, dataset, family = MODELS[name]
    data = load(dataset)
    kwargs = {"family": family} if family else {}
    fit = getattr(mm, fun)
    model = fit(formula, data, **kwargs)
    start = time.process_time()
    for _ in range(N_FITS):
        model = fit(formula, data, **kwargs)
    per_fit = (time.process_time() - start) / N_FITS
    responses = model.simulate(N_FITS + 1, seed=1)
    responses = [np.asarray(responses.iloc[:, j], dtype=float) for j in range(N_FITS + 1)]
    model.refit(responses[0])
    start = time.process_time()
    for y in responses[1:]:
        model.refit(y)
    per_refit = (time.process_time() - start) / N_FITS
    return per_fit, per_refit, model.optinfo.nevals


def main(argv: list[str]) -> None:
    warnings.simplefilter("ignore")
    # ours, lme4, ours again: on a shared machine the load drifts, so ours is the mean of the
    # two passes around lme4's
    first = {name: ours(name) for name in MODELS}
    r = {} if "--no-r" in argv else lme4_times()
    second = {name: ours(name) for name in MODELS}
    rows = {name: (0.5 * (first[name][0] + second[name][0]), 0.5 * (first[name][1] + second[name][1]),
                   first[name][2]) for name in MODELS}
    print("| model | ours | lme4 | ratio | refit | fit/refit | evals |")
    print("|---|---|---|---|---|---|---|")
    for name, (fit_s, refit_s, evals) in rows.items():
        lme4 = r.get(name, float("nan"))
        shown = name.replace("|", "\\|")
        print(f"| {shown} | {fit_s * 1e3:.1f} ms | {lme4 * 1e3:.1f} ms | {lme4 / fit_s:.1f}x | "
              f"{refit_s * 1e3:.2f} ms | {fit_s / refit_s:.1f}x | {evals} |")
    print(f"CPU time, mean of {N_FITS} fits after a warm-up, formula and data frame to results; lme4 "
          "in one Rscript run between two passes of ours; refit: m.refit(y) with simulated responses")


if __name__ == "__main__":
    main(sys.argv)
