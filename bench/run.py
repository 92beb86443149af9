"""LMM benchmarks: time and peak memory of ``mm.lmer`` on the cases of the core issue.

Each case runs in its own subprocess so that its peak resident memory is its own. Data are
generated with fixed seeds. Prints a table; timings on shared machines are noisy, so compare
ratios measured side by side.

    python bench/run.py            # all cases
    python bench/run.py insteval   # one case
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from harness import peak_mb, run_cases

CASES = {
    "insteval": "InstEval  y ~ service + (1|s) + (1|d) + (1|dept)  (73k rows)",
    "crossed_1m": "1M rows   y ~ x + (1|g1) + (1|g2), 1,000 x 5,000 levels",
    "slopes_200k": "200k rows y ~ x + (1 + x|g), 5,000 levels",
}
TARGETS = {"insteval": 1.0, "crossed_1m": 5.0, "slopes_200k": 0.1}


def make_data(case: str) -> tuple[str, pd.DataFrame]:
    """The benchmark's data set, generated with a fixed seed."""
    import mixedmodels as mm

    if case == "insteval":
        return "y ~ service + (1 | s) + (1 | d) + (1 | dept)", mm.load_dataset("InstEval")
    rng = np.random.default_rng(20261125)
    if case == "crossed_1m":
        n = 1_000_000
        g1 = rng.integers(0, 1000, n)
        g2 = rng.integers(0, 5000, n)
        x = rng.normal(size=n)
        y = 1.0 + 0.5 * x + rng.normal(0, 0.6, 1000)[g1] + rng.normal(0, 0.8, 5000)[g2] + rng.normal(size=n)
        frame = pd.DataFrame({"y": y, "x": x, "g1": pd.Categorical(g1), "g2": pd.Categorical(g2)})
        return "y ~ x + (1 | g1) + (1 | g2)", frame
    if case == "slopes_200k":
        n, m = 200_000, 5000
        g = rng.integers(0, m, n)
        x = rng.normal(size=n)
        b0 = rng.normal(0, 1.0, m)
        b1 = 0.3 * b0 + rng.normal(0, 0.5, m)
        y = 2.0 + 0.7 * x + b0[g] + b1[g] * x + rng.normal(size=n)
        return "y ~ x + (1 + x | g)", pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    raise ValueError(case)


def run_case(case: str) -> dict:
    """Time repeated fits from the DataFrame (formula to results); report the best."""
    import mixedmodels as mm

    formula, data = make_data(case)
    times = []
    for _ in range(3 if case != "crossed_1m" else 2):
        start = time.perf_counter()
        model = mm.lmer(formula, data)
        times.append(time.perf_counter() - start)
    return {"case": case, "seconds": min(times), "evals": model.optinfo.nevals,
            "loglik": model.loglik, "peak_mb": peak_mb()}


def main(argv: list[str]) -> None:
    rows = run_cases(argv, __file__, list(CASES), run_case)
    if rows is None:
        return
    print(f"{'case':<62} {'time (s)':>9} {'target':>7} {'evals':>6} {'peak MB':>8} {'logLik':>14}")
    for r in rows:
        print(f"{CASES[r['case']]:<62} {r['seconds']:>9.3f} {TARGETS[r['case']]:>7.1f} "
              f"{r['evals']:>6d} {r['peak_mb']:>8.0f} {r['loglik']:>14.3f}")
    print("time: best of repeated lmer() calls from the DataFrame (design, crossproducts, "
          "optimisation, results); peak MB: the process's peak RSS (data included).")


if __name__ == "__main__":
    main(sys.argv)
