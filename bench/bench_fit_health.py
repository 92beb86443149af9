"""Cost of the fit-health checks and of all_fit: prints a table (not a test).

Run: .venv/bin/python bench/bench_fit_health.py [--all-fit-insteval]
"""

from __future__ import annotations

import sys
import time
import warnings

import mixedmodels as mm
from mixedmodels.diagnostics import all_fit
from mixedmodels.optimize import Control

CASES = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ("gpa", "gpa ~ occasion + (1 + occasion | student)"),
    ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
    ("InstEval", "y ~ service + (1|s) + (1|d) + (1|dept)"),
]


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    warnings.simplefilter("ignore")
    print(f"{'data':12s} {'fit+checks s':>12s} {'fit, no deriv s':>15s} {'check share':>11s} "
          f"{'fit evals':>9s} {'deriv evals':>11s} {'rel.grad (SE)':>13s}")
    for name, formula in CASES:
        data = mm.load_dataset(name)
        rep = 1 if name == "InstEval" else 5
        t_on, m = timed(lambda: mm.lmer(formula, data), rep)
        t_off, _ = timed(lambda: mm.lmer(formula, data, control=Control(check_hessian="never")), rep)
        c = m.convergence
        print(f"{name:12s} {t_on:12.4f} {t_off:15.4f} {(t_on - t_off) / t_on:11.1%} "
              f"{c.nevals:9d} {c.derivative_evals:11d} {c.relative_gradient:13.2e}")
    if "--all-fit-insteval" in sys.argv:
        data = mm.load_dataset("InstEval")
        m = mm.lmer(CASES[-1][1], data)
        for parallel in (False, True):
            t = time.perf_counter()
            res = all_fit(m, parallel=parallel)
            print(f"\nall_fit(InstEval, parallel={parallel}): {time.perf_counter() - t:.2f} s")
        print(res[["optimizer", "ok", "loglik", "seconds", "nevals"]].to_string())
        print(res.verdict)


if __name__ == "__main__":
    main()
