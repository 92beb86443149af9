"""Bayesian LMM fits: mm.bayes_fit against rstanarm's stan_lmer, timed in the same run.

Sleepstudy, ``Reaction ~ Days + (Days | Subject)``, rstanarm's default priors on both sides
(``priors="rstanarm"``), 4 chains × 1000 draws after 1000 warm-up, chains in parallel processes
(stan_lmer: ``cores = 4``). Prints a table of wall times, the speed-up, and the posterior means
and SDs side by side.

Run: ``python bench/bench_bayes.py`` (needs Rscript with rstanarm and jsonlite for the peer).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings

import mixedmodels as mm

R_SCRIPT = r"""
suppressMessages({library(rstanarm); library(jsonlite)})
d <- read.csv(Sys.getenv("SLEEP_CSV")); d$Subject <- factor(d$Subject)
t0 <- proc.time()[["elapsed"]]
fit <- stan_lmer(Reaction ~ Days + (Days | Subject), data = d, chains = 4, iter = 2000, warmup = 1000,
                 seed = 1, refresh = 0, cores = as.integer(Sys.getenv("CORES")))
secs <- proc.time()[["elapsed"]] - t0
m <- as.matrix(fit)
out <- list(seconds = secs, mean = as.list(colMeans(m[, c("(Intercept)", "Days", "sigma")])),
            sd = as.list(apply(m[, c("(Intercept)", "Days", "sigma")], 2, sd)),
            sd_int = mean(sqrt(m[, "Sigma[Subject:(Intercept),(Intercept)]"])),
            sd_days = mean(sqrt(m[, "Sigma[Subject:Days,Days]"])))
write_json(out, Sys.getenv("OUT_JSON"), auto_unbox = TRUE, digits = NA)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cores", type=int, default=4)
    ap.add_argument("--skip-stan", action="store_true")
    args = ap.parse_args()
    data = mm.load_dataset("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mm.bayes_fit(f, data, chains=2, draws=20, warmup=20, seed=0, cores=1)  # imports, first-call costs
        t0 = time.perf_counter()
        b = mm.bayes_fit(f, data, chains=4, draws=1000, warmup=1000, seed=1, priors="rstanarm", cores=args.cores)
        ours = time.perf_counter() - t0
    s = b.summary()
    stan = None
    if not args.skip_stan:
        with tempfile.TemporaryDirectory() as tmp:
            csv = os.path.join(tmp, "sleep.csv")
            data.to_csv(csv, index=False)
            script = os.path.join(tmp, "stan.R")
            with open(script, "w") as fh:
                fh.write(R_SCRIPT)
            out = os.path.join(tmp, "out.json")
            env = dict(os.environ, SLEEP_CSV=csv, OUT_JSON=out, CORES=str(args.cores))
            t0 = time.perf_counter()
            subprocess.run(["Rscript", script], env=env, check=True, capture_output=True)
            stan_wall = time.perf_counter() - t0
            stan = json.loads(open(out).read())
            stan["wall"] = stan_wall
    print(f"sleepstudy, 4 chains x 1000 draws after 1000 warm-up, {args.cores} processes, "
          f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f})")
    print(f"{'method':<28}{'seconds':>10}")
    print(f"{'mm.bayes_fit':<28}{ours:>10.2f}")
    if stan:
        print(f"{'stan_lmer (sampling)':<28}{stan['seconds']:>10.2f}")
        print(f"{'stan_lmer (Rscript wall)':<28}{stan['wall']:>10.2f}")
        print(f"speed-up (sampling): {stan['seconds'] / ours:.1f}x")
        print()
        print(f"{'parameter':<26}{'mm mean':>10}{'stan mean':>11}{'mm sd':>9}{'stan sd':>9}")
        for p in ("(Intercept)", "Days", "sigma"):
            print(f"{p:<26}{s.loc[p, 'mean']:>10.3f}{stan['mean'][p]:>11.3f}{s.loc[p, 'sd']:>9.3f}"
                  f"{stan['sd'][p]:>9.3f}")
        print(f"{'sd_(Intercept)|Subject':<26}{s.loc['sd_(Intercept)|Subject', 'mean']:>10.3f}{stan['sd_int']:>11.3f}")
        print(f"{'sd_Days|Subject':<26}{s.loc['sd_Days|Subject', 'mean']:>10.3f}{stan['sd_days']:>11.3f}")
    print()
    print(s.round(3).to_string())


if __name__ == "__main__":
    main()
