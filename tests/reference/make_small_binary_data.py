"""Simulate the 30 small binary data sets of issue 17 item 7 (20 groups x 10 rows, a random-intercept
logistic model): y ~ x + (1 | g), beta = (-0.5, 0.8), group SD drawn from 0.2-1.2 so that some fits are
near the boundary and the likelihood is flat. Written to tests/reference/small_binary/sim_XX.csv; the R
script make_small_binary_reference.R fits each with lme4 and records its results."""

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent / "small_binary"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rng = np.random.default_rng(20261201)
    for k in range(30):
        sd = rng.uniform(0.2, 1.2)
        g = np.repeat(np.arange(1, 21), 10)
        x = np.round(rng.normal(size=200), 4)
        b = rng.normal(scale=sd, size=20)[g - 1]
        eta = -0.5 + 0.8 * x + b
        y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
        pd.DataFrame({"y": y, "x": x, "g": [f"g{v:02d}" for v in g]}).to_csv(OUT / f"sim_{k:02d}.csv", index=False)


if __name__ == "__main__":
    main()
