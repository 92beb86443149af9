"""Simulate a partially crossed design (tests/reference/partially_crossed.csv): 2,400 pupils, each
at a home school and up to two neighbouring schools (of 600, on a ring), 1-3 scores per pupil and
school. The schools' Schur block fills in only between neighbours, so it stays sparse: the design
that BlockedFactor factors with a sparse, fill-reducing Cholesky. The R script
make_partially_crossed_reference.R fits it with lme4.

The schools sit in 30 districts of 20 neighbouring schools (``district``); pupils near a boundary
meet two, so ``(1 | pupil) + (1 | school) + (1 | district)`` has a sparse *middle* Schur block
(schools) with a small dense one below it. ``y3`` is ``y`` plus a district effect (drawn after
everything else, so the other columns are those of the two-term data set)."""

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent / "partially_crossed.csv"


def simulate(n_pupils: int = 2400, n_schools: int = 600, n_districts: int = 30,
             seed: int = 20261203) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    home = rng.integers(0, n_schools, n_pupils)
    pupil, school = [], []
    for p in range(n_pupils):
        others = {(home[p] + step) % n_schools for step in rng.integers(-3, 4, rng.integers(0, 3))}
        for s in sorted({home[p]} | others):
            k = int(rng.integers(1, 4))
            pupil += [p] * k
            school += [s] * k
    pupil, school = np.array(pupil), np.array(school)
    n = len(pupil)
    x = np.round(rng.standard_normal(n), 4)
    u = rng.normal(0.0, 0.8, n_pupils)
    v = rng.normal(0.0, 0.5, n_schools)
    slope = rng.normal(0.0, 0.3, n_schools)
    eta = 1.0 + 0.5 * x + u[pupil] + v[school] + slope[school] * x
    y = np.round(eta + rng.standard_normal(n), 4)
    passed = rng.binomial(1, 1.0 / (1.0 + np.exp(-(eta - 1.0))))
    district = school // (n_schools // n_districts)
    y3 = np.round(y + rng.normal(0.0, 0.6, n_districts)[district], 4)
    return pd.DataFrame({"y": y, "passed": passed, "x": x,
                         "pupil": [f"p{i:04d}" for i in pupil], "school": [f"s{i:03d}" for i in school],
                         "district": [f"d{i:02d}" for i in district], "y3": y3})


if __name__ == "__main__":
    simulate().to_csv(OUT, index=False)
