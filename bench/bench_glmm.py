"""GLMM benchmarks: time and peak memory of ``glmer`` (prints a table; not a test).

Cases:
- ``binomial_100k``: 100,000 rows, ``y ~ x + (1 | g)`` with 2,000 groups, binomial (logit),
  generated with a fixed seed (lme4 6.4 s, mixedlm 1.3 s, target ≤ 0.5 s on this machine);
- ``verbagg``: VerbAgg, ``r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)`` (7,584 rows,
  crossed), binomial.

Each case runs in its own subprocess so that its peak resident memory is its own. Timings on
a shared machine are noisy: compare ratios measured side by side. With ``--peers``, the same data
(written to a temporary CSV) is fitted in the same run by mixedlm (a side environment,
``MIXEDLM_PYTHON``, default ``/work/side-mixedlm/bin/python``: ``python3 -m venv
/work/side-mixedlm && /work/side-mixedlm/bin/pip install mixedlm``) and by lme4 (Rscript), best
of 3 each, and the ratios printed.

    python bench/bench_glmm.py                  # both cases
    python bench/bench_glmm.py binomial_100k    # one case
    python bench/bench_glmm.py --peers binomial_100k
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
from harness import peak_mb, run_cases

CASES = {
    "binomial_100k": "binomial, 100k rows  y ~ x + (1 | g), 2,000 groups",
    "verbagg": "VerbAgg  r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)",
}
TARGETS = {"binomial_100k": 0.5, "verbagg": float("nan")}


def make_data(case: str) -> tuple[str, pd.DataFrame]:
    """The benchmark's formula and data, generated with a fixed seed."""
    import mixedmodels as mm

    if case == "verbagg":
        return ("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
                mm.load_dataset("VerbAgg"))
    if case == "binomial_100k":
        rng = np.random.default_rng(20261203)
        n, m = 100_000, 2_000
        g = rng.integers(0, m, n)
        x = rng.normal(size=n)
        b = rng.normal(0.0, 0.8, m)
        eta = -0.5 + 0.7 * x + b[g]
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
        return "y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    raise ValueError(f"unknown case {case!r}; choose one of {', '.join(CASES)}")


def run_case(case: str) -> dict:
    """Fit once to warm imports, then time fits from the DataFrame (formula to results)."""
    from mixedmodels import glmer

    formula, data = make_data(case)
    warnings.simplefilter("ignore")
    glmer(formula, data, family="binomial")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model = glmer(formula, data, family="binomial")
        times.append(time.perf_counter() - start)
    return {"case": case, "seconds": min(times),
            "evals": model.optinfo_stage1.nevals + model.optinfo.nevals,
            "loglik": model.loglik, "peak_mb": peak_mb(),
            "fixef": [round(v, 6) for v in model.fixef], "theta": [round(v, 6) for v in model.theta]}


MIXEDLM_SCRIPT = """
import sys, time, warnings, json
import pandas as pd
import mixedlm
from mixedlm.families import Binomial
warnings.simplefilter("ignore")
formula, path = sys.argv[1], sys.argv[2]
data = pd.read_csv(path)
for col in ("g", "id", "item"):
    if col in data:
        data[col] = data[col].astype(str).astype("category")
mixedlm.glmer(formula, data, family=Binomial())
times = []
for _ in range(3):
    start = time.perf_counter()
    m = mixedlm.glmer(formula, data, family=Binomial())
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": min(times), "loglik": float(m.logLik().value)}))
"""

LME4_SCRIPT = """
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
d <- read.csv(args[2]); for (col in c("g", "id", "item")) if (col %in% names(d)) d[[col]] <- factor(d[[col]])
f <- as.formula(args[1])
fit <- function() glmer(f, d, family = binomial)
m <- fit()
t <- min(sapply(1:3, function(i) system.time(m <<- fit())[["elapsed"]]))
cat(toJSON(list(seconds = t, loglik = as.numeric(logLik(m))), auto_unbox = TRUE, digits = NA))
"""


def peers(case: str) -> dict:
    """mixedlm's and lme4's best of 3 on the same data, in this run."""
    formula, data = make_data(case)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.csv")
        data.to_csv(path, index=False)
        python = os.environ.get("MIXEDLM_PYTHON", "/work/side-mixedlm/bin/python")
        for name, cmd in (("mixedlm", [python, "-c", MIXEDLM_SCRIPT, formula, path]),
                          ("lme4", ["Rscript", "-e", LME4_SCRIPT, formula, path])):
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                out[name] = json.loads(res.stdout.strip().splitlines()[-1])
            except (OSError, subprocess.CalledProcessError, ValueError) as err:
                print(f"{name} failed: {getattr(err, 'stderr', err)}", file=sys.stderr)
    return out


def main(argv: list[str]) -> None:
    with_peers = "--peers" in argv
    argv = [a for a in argv if a != "--peers"]
    rows = run_cases(argv, __file__, list(CASES), run_case)
    if rows is None:
        return
    print(f"{'case':<66} {'time (s)':>9} {'target':>7} {'evals':>6} {'peak MB':>8} {'logLik':>13}")
    for r in rows:
        print(f"{CASES[r['case']]:<66} {r['seconds']:>9.3f} {TARGETS[r['case']]:>7.1f} "
              f"{r['evals']:>6d} {r['peak_mb']:>8.0f} {r['loglik']:>13.3f}")
    for r in rows:
        print(f"  {r['case']}: theta {r['theta']}, fixef {r['fixef']}")
    if with_peers:
        print(f"{'case':<16} {'ours (s)':>9} {'mixedlm':>9} {'ratio':>6} {'lme4':>8} {'ratio':>6}  "
              "logLik ours / mixedlm / lme4")
        for r in rows:
            p = peers(r["case"])
            ml, l4 = p.get("mixedlm", {}), p.get("lme4", {})
            t_ml, t_l4 = ml.get("seconds", float("nan")), l4.get("seconds", float("nan"))
            print(f"{r['case']:<16} {r['seconds']:>9.3f} {t_ml:>9.3f} {t_ml / r['seconds']:>5.1f}x "
                  f"{t_l4:>8.3f} {t_l4 / r['seconds']:>5.1f}x  {r['loglik']:.3f} / "
                  f"{ml.get('loglik', float('nan')):.3f} / {l4.get('loglik', float('nan')):.3f}")
    print("time: best of 3 glmer() calls from the DataFrame (design, both optimisation stages, "
          "results; the Hessian-based vcov is computed on first use, not here); evals: stage 1 + "
          "stage 2 deviance evaluations; peak MB: the process's peak RSS (data included).")


if __name__ == "__main__":
    main(sys.argv)
