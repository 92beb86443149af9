"""Crossed factors with very many levels (issue 13, section 2): the iterative path.

Each case runs in its own process (its peak RSS is its own), from a seeded generator:

    PYTHONPATH=src python bench/bench_iterative.py --cases 1m          # with the exact fit
    PYTHONPATH=src python bench/bench_iterative.py --cases 4m
    PYTHONPATH=src python bench/bench_iterative.py --cases ml32m       # MovieLens-32M shape
    PYTHONPATH=src python bench/bench_iterative.py --cases ml32m --scale 0.25   # scaled version
    PYTHONPATH=src python bench/bench_iterative.py --cases glmm5m --scale 0.1   # binomial GLMM

- ``1m``: 1M rows, ``y ~ x + (1|g1) + (1|g2)``, 10,000 × 5,000 uniform levels; the exact path
  and the iterative path in the same run (θ, logLik and SE agreement printed).
- ``4m``: 4M rows, 60,000 × 30,000 levels with power-law (Zipf) counts per level.
- ``glmm5m``: binomial ``y ~ x + (1|g1) + (1|g2)``, 5M rows, two crossed 50,000-level factors
  (the exact factor's dense block alone is 20 GB): the iterative GLMM path (PIRLS with PCG solves
  and an SLQ log-determinant, :mod:`mixedmodels.models.iterative_glmm`); ``--scale`` shrinks
  rows and levels alike (``--scale 0.1``: 500k rows, 5,000 × 5,000), ``--exact`` adds the exact
  fit in the same run (small scales only). Printed besides: PIRLS steps (PCG solves) and the
  evaluations of stage 1 + stage 2.
- ``ml32m``: ``rating ~ 1 + (1|user) + (1|movie)``, 32M rows, 200,948 users × 84,432 movies,
  users' counts lognormal with at least 20 and mean ~160 ratings (as MovieLens-32M), movies'
  Zipf (a long tail of movies rated once or twice). ``--scale`` shrinks rows and levels alike.

Printed per case: path and why (``auto``), seconds (data generation excluded; design +
crossproducts + fit) and the process's CPU seconds (on a shared machine the wall time is inflated
by the load; CPU seconds are what an idle machine's wall time would be, single-threaded),
evaluations, CG iterations, peak RSS, and the logLik with its Monte
Carlo SE (exact at the optimum when affordable).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def zipf_codes(rng, n: int, m: int, exponent: float) -> np.ndarray:
    """n level codes in 0..m-1 with P(level r) ∝ (r + 1)^(-exponent), levels shuffled."""
    p = (np.arange(1, m + 1, dtype=float)) ** (-exponent)
    p /= p.sum()
    codes = rng.choice(m, size=n, p=p)
    return rng.permutation(m)[codes]


def user_codes(rng, n: int, m: int, minimum: int = 20) -> np.ndarray:
    """n codes over m users, each with at least ``minimum`` rows, lognormal counts (heavy tail)."""
    extra = rng.lognormal(mean=0.0, sigma=1.3, size=m)
    counts = minimum + np.floor(extra / extra.sum() * (n - minimum * m)).astype(np.int64)
    counts[: n - counts.sum()] += 1
    codes = np.repeat(np.arange(m), counts)
    return rng.permutation(codes)


def generate(case: str, scale: float = 1.0, seed: int = 13):
    """The case's data frame (seeded)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    if case == "1m":
        n, m1, m2 = 1_000_000, 10_000, 5_000
        g1, g2 = rng.integers(0, m1, n), rng.integers(0, m2, n)
    elif case == "4m":
        n, m1, m2 = int(4_000_000 * scale), int(60_000 * scale), int(30_000 * scale)
        g1, g2 = zipf_codes(rng, n, m1, 0.6), zipf_codes(rng, n, m2, 0.8)
    elif case == "ml32m":
        n, m1, m2 = int(32_000_000 * scale), int(200_948 * scale), int(84_432 * scale)
        g1, g2 = user_codes(rng, n, m1), zipf_codes(rng, n, m2, 1.05)
    elif case == "glmm5m":
        n, m1, m2 = int(5_000_000 * scale), int(50_000 * scale), int(50_000 * scale)
        g1, g2 = rng.integers(0, m1, n), rng.integers(0, m2, n)
    else:
        raise ValueError(case)
    x = rng.normal(size=n)
    y = (3.5 + 0.2 * x + rng.normal(0, 0.45, m1)[g1] + rng.normal(0, 0.6, m2)[g2]
         + rng.normal(0, 0.9, n))
    if case == "glmm5m":  # binomial: the same linear predictor on the logit scale
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(y - 3.5)))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2})


def formula(case: str) -> str:
    return "y ~ 1 + (1 | g1) + (1 | g2)" if case == "ml32m" else "y ~ x + (1 | g1) + (1 | g2)"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def glmm_worker(method: str, scale: float, probes: int) -> dict:
    """The binomial GLMM case on the path ``method`` asks for (``auto``: the cost model's), or
    its refusal before any work."""
    import warnings

    import mixedmodels as mm

    frame = generate("glmm5m", scale)
    base_mb = _peak_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    ctrl = mm.Control(method=method, options={"probes": probes})
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = mm.glmer(formula("glmm5m"), frame, family="binomial", control=ctrl)
    except mm.ModelSizeError as err:
        return {"case": "glmm5m", "requested": method, "error": [f"refused: {err}"],
                "seconds": time.perf_counter() - t0, "peak_mb": _peak_mb()}
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    path = getattr(m.optinfo, "path", {})
    cp = m.engine.cp if hasattr(m.engine, "cp") else m.engine.cp_full
    stage1 = m.optinfo_stage1.nevals if m.optinfo_stage1 is not None else 0
    return {"case": "glmm5m", "requested": method, "path": path.get("method", "exact"),
            "reason": path.get("reason", ""), "seconds": seconds, "cpu_seconds": cpu,
            "nevals": stage1 + m.optinfo.nevals, "nevals_stages": [stage1, m.optinfo.nevals],
            "pirls_steps": path.get("solves"), "cg_iterations": path.get("cg_iterations", []),
            "logdet_cg_iterations": path.get("logdet_cg_iterations", []),
            "peak_mb": _peak_mb(), "data_mb": base_mb, "loglik": m.loglik,
            "loglik_mc_se": getattr(m, "loglik_se", 0.0),
            "loglik_exact": bool(getattr(m, "loglik_exact", True)), "nobs": m.nobs,
            "cells": int(sum(a.nnz for a in cp.off.values())),
            "levels": [t.nlevels for t in m.design.terms], "theta": m.theta.tolist(),
            "se": m.coef_table()["Std. Error"].tolist(),
            "warnings": sorted({type(w.message).__name__ for w in caught})}


def worker(case: str, method: str, scale: float, probes: int) -> dict:
    import warnings

    import mixedmodels as mm

    if case == "glmm5m":
        return glmm_worker(method, scale, probes)
    from mixedmodels.models.dispatch import fit_linear_model
    from mixedmodels.spec.design import build_design

    frame = generate(case, scale)
    base_mb = _peak_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        design = build_design(formula(case), frame)
        del frame
        m = fit_linear_model(design, reml=True, control=mm.Control(method=method), probes=probes)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    path = getattr(m.optinfo, "path", {})
    cells = sum(a.nnz for a in m.crossproducts.off.values())
    return {"case": case, "requested": method, "path": path.get("method", "exact"),
            "reason": path.get("reason", ""), "seconds": seconds, "cpu_seconds": cpu, "nevals": m.optinfo.nevals,
            "cg_iterations": path.get("cg_iterations", []), "peak_mb": _peak_mb(),
            "data_mb": base_mb, "loglik": m.loglik, "loglik_mc_se": getattr(m, "loglik_se", 0.0),
            "loglik_exact": bool(getattr(m, "loglik_exact", True)), "theta": m.theta.tolist(),
            "se": m.coef_table()["Std. Error"].tolist(), "nobs": m.nobs, "cells": int(cells),
            "levels": [t.nlevels for t in m.design.terms],
            "warnings": sorted({type(w.message).__name__ for w in caught})}


def run(case: str, method: str, scale: float, probes: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", case, method, str(scale),
                          str(probes)], capture_output=True, text=True)
    if out.returncode != 0:
        return {"case": case, "requested": method, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="1m,4m")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--exact", action="store_true", help="also run the exact path on 4m/ml32m")
    args = parser.parse_args()
    rows = []
    for case in args.cases.split(","):
        methods = ["iterative", "exact"] if case == "1m" or args.exact else ["auto"]
        for method in methods:
            res = run(case, method, args.scale, args.probes)
            rows.append(res)
            print(json.dumps(res), flush=True)
    print()
    print("| case | scale | rows | levels | cells | requested | path | seconds | CPU s | evals | CG its (max) "
          "| PIRLS steps | peak RSS MB | logLik | MC SE |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | {args.scale} | | | | {r['requested']} | error: {r['error']} |")
            continue
        its = r["cg_iterations"]
        se = "exact" if r["loglik_exact"] else f"{r['loglik_mc_se']:.2g}"
        print(f"| {r['case']} | {args.scale} | {r['nobs']:,} | {' × '.join(f'{v:,}' for v in r['levels'])} "
              f"| {r['cells']:,} | {r['requested']} | {r['path']} | {r['seconds']:.1f} "
              f"| {r.get('cpu_seconds', float('nan')):.1f} | {r['nevals']} "
              f"| {max(its) if its else '-'} | {r.get('pirls_steps') or '-'} | {r['peak_mb']:.0f} "
              f"| {r['loglik']:.3f} | {se} |")
    exact = {r["case"]: r for r in rows if r.get("path") == "exact" and "error" not in r}
    for r in rows:
        e = exact.get(r["case"])
        if e is not None and r.get("path") == "iterative":
            th = np.max(np.abs(np.array(r["theta"]) / np.array(e["theta"]) - 1))
            se = np.max(np.abs(np.array(r["se"]) / np.array(e["se"]) - 1))
            print(f"{r['case']}: iterative vs exact: θ rel {th:.1e}, logLik rel "
                  f"{abs(r['loglik'] / e['loglik'] - 1):.1e}, SE rel {se:.1e}, "
                  f"speed-up {e['seconds'] / r['seconds']:.1f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))))
    else:
        main()
