"""Partially crossed factors (issue 13): pupils who change school, ``y ~ x + (1|pupil) + (1|school)``.

Each pupil attends a home school and 0-2 neighbouring ones (schools on a ring), 1-3 rows per pupil
and school, generated with a fixed seed. The school block fills in only between neighbours, so
the exact path factors it sparse (a fill-reducing order, SuperLU's supernodal factor). Cases:

- ``pc_40k_8k``: 40,000 pupils × 8,000 schools (~145k rows), the sparse factor (auto);
- ``pc_40k_8k_dense``: the same fit with ``Control(schur="dense", method="exact")``: an 8,000 × 8,000
  dense block per evaluation;
- ``pc_40k_8k_auto_dense``: ``Control(schur="dense")``, where the cost model then takes the
  iterative path (what main did before the sparse factor);
- ``pc_300k_30k``: 300,000 pupils × 30,000 schools (~1.1M rows), sparse; a dense 30,000 block
  would need 7 GB and ~15 min per evaluation;
- ``pc3_40k_8k_200``: ``+ (1|district)``, the schools in 200 districts of 40 neighbours: the
  school block is now a *middle* one, factored sparse with the small district block dense below;
- ``pc3_40k_8k_200_auto_dense``: the same with ``Control(schur="dense")`` (main before the middle
  sparse block: a dense 8,000 block, or the iterative path where the cost model prefers it).

Each case runs in its own subprocess (its own peak memory), timed from the DataFrame after a
warm-up fit.

    python bench/bench_partially_crossed.py               # all cases
    python bench/bench_partially_crossed.py pc_40k_8k     # one
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd
from harness import peak_mb, run_cases

CASES = {
    "pc_40k_8k": ((40_000, 8_000), {}),
    "pc_40k_8k_dense": ((40_000, 8_000), {"schur": "dense", "method": "exact"}),
    "pc_40k_8k_auto_dense": ((40_000, 8_000), {"schur": "dense"}),
    "pc_300k_30k": ((300_000, 30_000), {}),
    "pc3_40k_8k_200": ((40_000, 8_000, 200), {}),
    "pc3_40k_8k_200_auto_dense": ((40_000, 8_000, 200), {"schur": "dense"}),
}


def make_data(n_pupils: int, n_schools: int, n_districts: int = 0, seed: int = 20261203) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    home = rng.integers(0, n_schools, n_pupils)
    extra = rng.integers(0, 3, n_pupils)
    # up to three schools per pupil (duplicates collapse), 1-3 rows per pupil and school
    steps = np.where(np.arange(3)[None, :] <= extra[:, None],
                     np.concatenate([np.zeros((n_pupils, 1), int), rng.integers(-3, 4, (n_pupils, 2))], axis=1), 0)
    pairs = np.unique(np.stack([np.repeat(np.arange(n_pupils), 3),
                                ((home[:, None] + steps) % n_schools).ravel()], axis=1), axis=0)
    reps = rng.integers(1, 4, len(pairs))
    pupil, school = np.repeat(pairs[:, 0], reps), np.repeat(pairs[:, 1], reps)
    x = rng.normal(size=len(pupil))
    y = (1.0 + 0.5 * x + rng.normal(0, 0.8, n_pupils)[pupil] + rng.normal(0, 0.5, n_schools)[school]
         + rng.normal(size=len(pupil)))
    data = pd.DataFrame({"y": y, "x": x, "pupil": pd.Categorical(pupil), "school": pd.Categorical(school)})
    if n_districts:  # neighbouring schools share a district; drawn last, the rest is unchanged
        district = school // (n_schools // n_districts)
        data["y"] += rng.normal(0, 0.6, n_districts)[district]
        data["district"] = pd.Categorical(district)
    return data


def run_case(case: str) -> dict:
    import mixedmodels as mm

    warnings.simplefilter("ignore")
    mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
    levels, control = CASES[case]
    data = make_data(*levels)
    formula = "y ~ x + (1 | pupil) + (1 | school)" + (" + (1 | district)" if len(levels) > 2 else "")
    start = time.perf_counter()
    model = mm.lmer(formula, data, control=mm.Control(**control))
    seconds = time.perf_counter() - start
    info = model.optinfo
    factor = getattr(info, "factor", {}) or {}
    return {"case": case, "rows": len(data), "seconds": seconds, "evals": info.nevals,
            "opt_seconds": info.seconds, "loglik": model.loglik, "peak_mb": peak_mb(),
            "path": info.path["method"], "school": factor.get("blocks", {}).get("school", "-"),
            "sparse": factor.get("sparse", {}).get("school", {})}


def main(argv: list[str]) -> None:
    rows = run_cases(argv, __file__, list(CASES), run_case)
    if rows is None:
        return
    print(f"{'case':<26} {'rows':>9} {'time (s)':>9} {'evals':>6} {'s/eval':>7} {'peak MB':>8} "
          f"{'logLik':>16}  path, school block")
    for r in rows:
        print(f"{r['case']:<26} {r['rows']:>9d} {r['seconds']:>9.2f} {r['evals']:>6d} "
              f"{r['opt_seconds'] / r['evals']:>7.3f} {r['peak_mb']:>8.0f} {r['loglik']:>16.4f}  "
              f"{r['path']}, {r['school']}")
    for r in rows:
        if r["sparse"]:
            print(f"  {r['case']}: {r['sparse']}")


if __name__ == "__main__":
    main(sys.argv)
