"""Cost of the fit-health checks and of all_fit: prints a table (not a test).

Run: .venv/bin/python bench/bench_fit_health.py [--all-fit-insteval]

"checks s" is the time of all post-fit checks on the fitted model (scaling, finite-difference
gradient and Hessian in θ, singular-fit rule), best of a few repeats; "share" is that over the
fit's optimizer time.
"""

from __future__ import annotations

import sys
import time
import warnings

import mixedmodels as mm
from mixedmodels import all_fit
from mixedmodels.models.checks import check_fit

CASES = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ("gpa", "gpa ~ occasion + (1 + occasion | student)"),
    ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
    ("InstEval", "y ~ service + (1|s) + (1|d) + (1|dept)"),
]


def best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    warnings.simplefilter("ignore")
    print(f"{'data':12s} {'optimizer s':>11s} {'checks s':>9s} {'share':>6s} {'fit evals':>9s} "
          f"{'check evals':>11s} {'rel.grad (SE)':>13s}")
    for name, formula in CASES:
        data = mm.load_dataset(name)
        m = mm.lmer(formula, data)
        rep = 2 if name == "InstEval" else 20
        refit_time = best_of(lambda f=formula, d=data: mm.lmer(f, d), 1) if rep > 2 else m.optinfo.seconds
        t_opt = min(m.optinfo.seconds, refit_time)
        check_fit(m)  # warm-up: first calls load LAPACK routines
        t_chk = best_of(lambda model=m: check_fit(model), rep)
        c = m.convergence
        print(f"{name:12s} {t_opt:11.4f} {t_chk:9.4f} {t_chk / t_opt:6.1%} {c.nevals:9d} "
              f"{c.derivative_evals + 1:11d} {c.relative_gradient:13.2e}")
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
