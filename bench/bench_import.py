"""Benchmark: the time of ``import mixedmodels`` in a fresh interpreter, beside numpy, pandas and
numpy + pandas + scipy (what the first fit cannot avoid; the import itself loads none of them),
its peer statsmodels, and the first ``mm.lmer`` on sleepstudy after the import (which loads them
and the registering modules). Target (issue 18): ``import mixedmodels`` at most 0.3 s.

Each row is the median (and the minimum) over fresh processes of the wall-clock seconds, with
the process's CPU seconds beside them, since the machine may be shared; the cases are
interleaved, so a load spike hits all of them. Prints a table.

    python bench/bench_import.py                    # 7 processes each
    python bench/bench_import.py --repeats 11
    python bench/bench_import.py --baseline-src ../main/src   # add another checkout's import
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CASES = {
    "import mixedmodels": "import mixedmodels",
    "import numpy": "import numpy",
    "import pandas": "import pandas",
    "import numpy, pandas, scipy (.linalg, .sparse)": "import numpy, pandas, scipy.linalg, scipy.sparse",
    "peer: import statsmodels.formula.api": "import statsmodels.formula.api",
}
FIRST_FIT = ("import mixedmodels as mm", "mm.lmer('Reaction ~ Days + (Days | Subject)', mm.load_dataset('sleepstudy'))")


def _time(setup: str, stmt: str, src: str | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of ``stmt`` after ``setup`` in a fresh interpreter."""
    code = (f"import time; {setup}; w = time.perf_counter(); c = time.process_time(); {stmt}; "
            "print(time.perf_counter() - w, time.process_time() - c)")
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    wall, cpu = out.split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline-src", help="a src/ directory of another checkout, timed beside this one")
    args = parser.parse_args()
    cases = {label: ("pass", stmt, None) for label, stmt in CASES.items()}
    if args.baseline_src:
        cases[f"import mixedmodels ({args.baseline_src})"] = ("pass", "import mixedmodels", args.baseline_src)
    cases["first mm.lmer(sleepstudy) after the import"] = (*FIRST_FIT, None)
    cases["import mixedmodels + first mm.lmer(sleepstudy)"] = ("pass", "; ".join(FIRST_FIT), None)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in cases}
    try:                                     # statsmodels is optional
        _time("pass", CASES["peer: import statsmodels.formula.api"])
    except subprocess.CalledProcessError:
        del cases["peer: import statsmodels.formula.api"], times["peer: import statsmodels.formula.api"]
    for _ in range(args.repeats):            # interleaved: a load spike hits every case alike
        for label, (setup, stmt, src) in cases.items():
            times[label].append(_time(setup, stmt, src))
    width = max(map(len, times))
    print(f"{'what'.ljust(width)}  wall median  wall min  CPU median   (seconds, {args.repeats} processes each)")
    for label, runs in times.items():
        wall = [w for w, _ in runs]
        cpu = [c for _, c in runs]
        print(f"{label.ljust(width)}  {statistics.median(wall):11.3f}  {min(wall):8.3f}  "
              f"{statistics.median(cpu):10.3f}")
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (cores: {os.cpu_count()})")


if __name__ == "__main__":
    main()
