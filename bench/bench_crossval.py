"""Benchmark: 5-fold grouped cross-validation on InstEval against the time of one fit.

Target (issue 6): ``cross_validate`` with 5 folds in under 5× the time of one ``lmer`` fit.
Both are timed warm (after one untimed fit), alternately, and the medians compared, since the
machine is shared and single timings are noisy. Prints a table.

    python bench/bench_crossval.py            # by s and by d, 3 repeats
    python bench/bench_crossval.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import mixedmodels as mm
from mixedmodels import cross_validate, lmer

FORMULA = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"
TARGET = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    data = mm.load_dataset("InstEval")
    model = lmer(FORMULA, data)  # warm-up: first-call costs stay out of the timings
    rows = []
    for by in ("s", "d"):
        fit_times, cv_times, nevals = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model = lmer(FORMULA, data)
            fit_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = cross_validate({"m": model}, data, folds=args.folds, by=by)
            cv_times.append(time.perf_counter() - t0)
            nevals.append(int(res.folds["nevals"].sum()))
        fit_t, cv_t = statistics.median(fit_times), statistics.median(cv_times)
        rows.append((by, fit_t, model.optinfo.nevals, cv_t, nevals[-1], cv_t / fit_t,
                     res.summary["rmse"].iloc[0]))
    print(f"InstEval ({len(data)} rows): {FORMULA}; {args.folds} folds, "
          f"median of {args.repeats}")
    header = (f"{'by':>3} {'1 fit (s)':>10} {'evals':>6} {'CV (s)':>8} {'evals':>6} {'CV/fit':>7} "
              f"{'target':>7} {'RMSE':>7}")
    print(header)
    print("-" * len(header))
    for by, fit_t, ev1, cv_t, ev5, ratio, rmse in rows:
        flag = "ok" if ratio < TARGET else "SLOW"
        print(f"{by:>3} {fit_t:10.3f} {ev1:6d} {cv_t:8.3f} {ev5:6d} {ratio:7.2f} "
              f"{'<' + str(TARGET):>6}{'' if flag == 'ok' else '!'} {rmse:7.4f}")


if __name__ == "__main__":
    main()
