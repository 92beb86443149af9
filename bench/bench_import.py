"""Benchmark: the time of ``import mixedmodels`` in a fresh interpreter, beside what it cannot
avoid (numpy, pandas, scipy.linalg and scipy.sparse, which it uses at import) and its peers
(statsmodels' mixed models, scipy.stats). Each is the minimum over fresh processes, since the
machine is shared. Target (issue 18): at most 0.3 s. Prints a table.

    python bench/bench_import.py              # 5 processes each
    python bench/bench_import.py --repeats 9
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CASES = {
    "import mixedmodels": "import mixedmodels",
    "floor: numpy, pandas, scipy.linalg, scipy.sparse": "import numpy, pandas, scipy.linalg, scipy.sparse",
    "peer: import statsmodels.formula.api": "import statsmodels.formula.api",
    "scipy.stats (now imported on first use)": "import numpy, pandas, scipy.stats",
}


def _time(stmt: str) -> float:
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for label, stmt in CASES.items():
        rows.append((label, min(_time(stmt) for _ in range(args.repeats))))
    width = max(len(r[0]) for r in rows)
    print(f"{'what'.ljust(width)}  seconds (min of {args.repeats})")
    for label, sec in rows:
        print(f"{label.ljust(width)}  {sec:8.3f}")


if __name__ == "__main__":
    main()
