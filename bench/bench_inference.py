"""Inference timings: Satterthwaite df on InstEval against the fit time, and profile CIs for
sleepstudy and the cbpp GLMM (targets: df ≤ fit time; profile < 2 s). Prints a table.

Run: .venv/bin/python bench/bench_inference.py
"""

from __future__ import annotations

import time
import warnings

from mixedmodels import glmer, lmer, load_dataset
from mixedmodels.postestimation.ddf import clear_cache, coef_table_ddf
from mixedmodels.postestimation.profile import profile_ci


def timed(fun, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fun()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    rows = []
    warnings.simplefilter("ignore")
    inst = load_dataset("InstEval")
    fit_s, m = timed(lambda: lmer("y ~ service + (1 | s) + (1 | d) + (1 | dept)", inst), repeat=3)

    def satt():
        clear_cache(m)  # time the computation, not the cached result
        return coef_table_ddf(m, "satterthwaite")

    satt_s, tab = timed(satt, repeat=3)
    rows.append(("InstEval fit (73,421 rows)", fit_s, ""))
    rows.append(("InstEval Satterthwaite df", satt_s,
                 f"{satt_s / fit_s:.2f} x fit; df = {', '.join(f'{v:.1f}' for v in tab['df'])}"))
    sleep = load_dataset("sleepstudy")
    ms = lmer("Reaction ~ Days + (Days | Subject)", sleep)
    prof_s, _ = timed(lambda: profile_ci(ms), repeat=3)
    rows.append(("sleepstudy profile CIs (6 rows)", prof_s, "target < 2 s"))
    kr_s, _ = timed(lambda: (clear_cache(ms), coef_table_ddf(ms, "kenward-roger")), repeat=3)
    rows.append(("sleepstudy Kenward-Roger", kr_s, ""))
    cbpp = load_dataset("cbpp")
    mg = glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    gprof_s, gci = timed(lambda: profile_ci(mg), repeat=3)
    rows.append(("cbpp GLMM profile CIs (5 rows)", gprof_s,
                 f"{gci.attrs['deviance_evaluations']} deviance evaluations; lme4 3.3 s"))
    width = max(len(r[0]) for r in rows)
    print(f"{'task'.ljust(width)}  {'seconds':>8}  note")
    for name, sec, note in rows:
        print(f"{name.ljust(width)}  {sec:8.3f}  {note}")


if __name__ == "__main__":
    main()
