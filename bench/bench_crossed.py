"""Crossed factors with many levels (issue 13): 1M rows, ``y ~ x + (1|g1) + (1|g2)``.

Cases, generated with a fixed seed (uniform level assignment):
- ``crossed_1k_5k``: g1 1,000 levels, g2 5,000 levels (the dense block is 1,000 × 1,000);
- ``crossed_10k_5k``: g1 10,000 levels, g2 5,000 levels (the dense block is 5,000 × 5,000).

The target: the second within 2.5× the first, measured in the same run. Each case runs in its
own subprocess (its own peak memory); the time is one ``lmer()`` call from the DataFrame after a
warm-up fit of a small model (imports). Also printed: the evaluations, the time per evaluation,
the factor's choices (``optinfo``-style: dense or sparse blocks, product maps) and the optimizer.

    python bench/bench_crossed.py                  # both cases
    python bench/bench_crossed.py crossed_1k_5k    # one
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd
from harness import peak_mb, run_cases

CASES = {
    "crossed_1k_5k": (1_000, 5_000),
    "crossed_10k_5k": (10_000, 5_000),
}


def make_data(case: str) -> pd.DataFrame:
    m1, m2 = CASES[case]
    rng = np.random.default_rng(20261313)
    n = 1_000_000
    g1 = rng.integers(0, m1, n)
    g2 = rng.integers(0, m2, n)
    x = rng.normal(size=n)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.6, m1)[g1] + rng.normal(0, 0.8, m2)[g2] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g1": pd.Categorical(g1), "g2": pd.Categorical(g2)})


def run_case(case: str) -> dict:
    import mixedmodels as mm

    warnings.simplefilter("ignore")
    mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
    data = make_data(case)
    start = time.perf_counter()
    model = mm.lmer("y ~ x + (1 | g1) + (1 | g2)", data)
    seconds = time.perf_counter() - start
    info = model.optinfo
    return {"case": case, "seconds": seconds, "evals": info.nevals, "opt_seconds": info.seconds,
            "loglik": model.loglik, "peak_mb": peak_mb(), "optimizer": info.optimizer,
            "blocks": str(getattr(info, "factor", {})), "theta": [round(v, 6) for v in model.theta]}


def main(argv: list[str]) -> None:
    rows = run_cases(argv, __file__, list(CASES), run_case)
    if rows is None:
        return
    print(f"{'case':<16} {'time (s)':>9} {'evals':>6} {'s/eval':>7} {'peak MB':>8} {'logLik':>15}  optimizer")
    for r in rows:
        print(f"{r['case']:<16} {r['seconds']:>9.2f} {r['evals']:>6d} {r['opt_seconds'] / r['evals']:>7.3f} "
              f"{r['peak_mb']:>8.0f} {r['loglik']:>15.3f}  {r['optimizer']}")
    for r in rows:
        print(f"  {r['case']}: theta {r['theta']}; factor {r['blocks']}")
    if len(rows) == 2:
        print(f"ratio 10k x 5k / 1k x 5k: {rows[1]['seconds'] / rows[0]['seconds']:.1f}x (target <= 2.5x)")


if __name__ == "__main__":
    main(sys.argv)
