"""Big data (issue 12): the same crossed LMM fitted from pandas in memory, streamed from Parquet by
DuckDB, on a Dask LocalCluster and on local Spark, with statsmodels' MixedLM where it fits, all in
one run. Each engine runs in its own process, so its peak RSS is its own.

    PYTHONPATH=src python bench/bench_bigdata.py                 # 1M and 4M rows
    PYTHONPATH=src python bench/bench_bigdata.py --rows 10000000 --engines pandas,duckdb
    PYTHONPATH=src python bench/bench_bigdata.py --model glmm --rows 1000000 --engines pandas,duckdb,dask,spark

Model: ``y ~ x + (1|g1) + (1|g2)`` with 1,000 × 5,000 levels (the issue's benchmark design). The
table prints rows, engine, seconds (read + both passes + fit), peak RSS of the fitting process
(MB; Dask: the largest worker too; Spark: the JVM, a child process), and |ΔlogLik| against the
pandas fit (statsmodels: against ours on the same one-factor model, row pandas-1f,
as MixedLM has no crossed terms). ``--model glmm`` fits the binomial GLMM ``z ~ x + (1|g1) +
(1|g2)`` instead (z Bernoulli on the same design), ``--model glmm1`` ``z ~ x + (1|g1)``, and the
table adds the passes over the rows that PIRLS made where they live (``optinfo.passes``).
The DuckDB run is given a 256 MB DuckDB memory limit and 131,072-row chunks: its peak RSS
stays flat as the file grows past the size of the data in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FORMULA = "y ~ x + (1 | g1) + (1 | g2)"
GLMM_FORMULAS = {"glmm": "z ~ x + (1 | g1) + (1 | g2)", "glmm1": "z ~ x + (1 | g1)"}
HERE = Path(__file__).resolve().parent


def write_parquet(path: Path, n: int, seed: int = 1, part_rows: int = 1_000_000) -> None:
    """Simulated rows in row groups of ``part_rows`` (written piecewise: never all in memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    b1, b2 = rng.normal(0, 1.0, 1000), rng.normal(0, 0.5, 5000)
    writer = None
    for start in range(0, n, part_rows):
        k = min(part_rows, n - start)
        g1 = rng.integers(0, 1000, k)
        g2 = rng.integers(0, 5000, k)
        x = rng.normal(size=k)
        y = 2.0 + 0.5 * x + b1[g1] + b2[g2] + rng.normal(size=k)
        z = rng.random(k) < 1.0 / (1.0 + np.exp(-(-0.5 + 0.5 * x + b1[g1] + b2[g2])))
        table = pa.table({"y": y, "x": x, "g1": g1, "g2": g2, "z": z.astype(np.int8)})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(engine: str, path: str, model: str = "lmm") -> dict:
    """One engine's fit in this process: seconds, peak RSS, logLik (and a GLMM's passes)."""
    import warnings

    warnings.simplefilter("ignore")
    import mixedmodels as mm

    if model in GLMM_FORMULAS:
        real_lmer = mm.lmer

        def lmer(formula, data, reml=False):  # the same engines, the binomial GLMM
            if formula != FORMULA:
                return real_lmer(formula, data, reml=reml)
            return mm.glmer(GLMM_FORMULAS[model], data, family="binomial")
    else:
        lmer = mm.lmer

    out = {}
    t0 = time.perf_counter()
    if engine == "pandas":
        import pandas as pd

        df = pd.read_parquet(path)
        m = lmer(FORMULA, df, reml=False)
    elif engine == "duckdb":
        from mixedmodels.sources import open_source

        m = lmer(FORMULA, open_source(path, memory_limit="256MB", threads=2), reml=False)
    elif engine == "polars-lazy":
        import polars as pl

        m = lmer(FORMULA, pl.scan_parquet(path), reml=False)
    elif engine == "dask":
        import dask.dataframe as dd
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=40) as cluster, \
                Client(cluster) as client:
            t0 = time.perf_counter()  # cluster start excluded (a user's cluster is already up)
            m = lmer(FORMULA, dd.read_parquet(path, split_row_groups=True), reml=False)
            out["seconds"] = time.perf_counter() - t0
            peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            out["worker_mb"] = max(peaks.values())
    elif engine == "spark":
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
                 .config("spark.driver.memory", "2g").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        t0 = time.perf_counter()  # session start excluded
        m = lmer(FORMULA, spark.read.parquet(path), reml=False)
        out["seconds"] = time.perf_counter() - t0
        spark.stop()
        jvm = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if jvm > 0:  # the JVM is counted only once it has been reaped
            out["worker_mb"] = jvm
    elif engine in ("statsmodels", "pandas-1f"):
        # statsmodels' MixedLM has no crossed terms (as variance components in one all-rows group
        # its fit is dense in the 6,000 levels: >3 GB and minutes at 20,000 rows), so both fit
        # the one-factor model y ~ x + (1 | g1) here
        import pandas as pd

        df = pd.read_parquet(path)
        if engine == "pandas-1f":
            m = lmer("y ~ x + (1 | g1)", df, reml=False)
            out.update(seconds=time.perf_counter() - t0, peak_mb=_peak_mb(), loglik=float(m.loglik))
            return out
        import statsmodels.formula.api as smf

        res = smf.mixedlm("y ~ x", df, groups="g1").fit(reml=False)
        out.update(seconds=time.perf_counter() - t0, peak_mb=_peak_mb(), loglik=float(res.llf))
        return out
    else:
        raise SystemExit(f"unknown engine {engine}")
    out.setdefault("seconds", time.perf_counter() - t0)
    out.update(peak_mb=_peak_mb(), loglik=float(m.loglik), theta=list(map(float, m.theta)))
    passes = getattr(m.optinfo, "passes", None)
    if passes is not None:
        out["passes"] = passes
    return out


def run(engine: str, path: Path, timeout: float, model: str = "lmm") -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", engine, str(path), model], capture_output=True,
                              text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:60]}
    return json.loads(lines[-1])


def duckdb_groupby_seconds(path: Path) -> float:
    """DuckDB's own aggregation of what the crossproducts of ``[Z X y]`` need (counts and sums of
    x, y and their products per (g1, g2) cell): the rate no pass over these files can beat."""
    import duckdb

    con = duckdb.connect()
    start = time.perf_counter()
    con.sql(f"select g1, g2, count(*), sum(x), sum(y), sum(x*x), sum(x*y), sum(y*y) "
            f"from read_parquet('{path}') group by g1, g2").fetchall()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 4_000_000])
    ap.add_argument("--engines", default="pandas,duckdb,polars-lazy,dask,spark,pandas-1f,statsmodels")
    ap.add_argument("--statsmodels-max", type=int, default=1_000_000,
                    help="largest n for the one-factor statsmodels comparison")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--model", choices=["lmm", "glmm", "glmm1"], default="lmm")
    ap.add_argument("--worker", nargs=3, metavar=("ENGINE", "PATH", "MODEL"))
    ap.add_argument("--groupby", action="store_true",
                    help="also time DuckDB's own GROUP BY sums over the same file (the physical limit)")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    engines = args.engines.split(",")
    rows, limits = [], []
    with tempfile.TemporaryDirectory() as tmp:
        sizes = sorted(set(args.rows))
        for n in sizes:
            path = Path(tmp) / f"sim_{n}.parquet"
            write_parquet(path, n)
            disk = path.stat().st_size / 2 ** 20
            ref = None
            for engine in engines:
                if engine in ("statsmodels", "pandas-1f") and n > args.statsmodels_max:
                    continue
                if engine not in ("statsmodels", "pandas-1f") and n not in args.rows:
                    continue
                res = run(engine, path, args.timeout, args.model)
                if engine in ("pandas", "pandas-1f") and "loglik" in res:
                    ref = res["loglik"]
                rows.append((n, engine, disk, res, ref if engine != "pandas-1f" else None))
                print(f"  done {n:>10,} {engine}", file=sys.stderr, flush=True)
            if args.groupby:
                limits.append((n, duckdb_groupby_seconds(path)))
    formula = GLMM_FORMULAS[args.model] + " (binomial, Laplace)" if args.model != "lmm" else FORMULA
    print(f"\n{formula}, 1000 x 5000 levels, ML; data in memory = {4 * 8 + 1} bytes/row "
          f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})\n")
    print(f"{'rows':>11} {'engine':<12} {'file MB':>8} {'frame MB':>9} {'seconds':>8} {'peak MB':>8} "
          f"{'worker MB':>10} {'|dlogLik|':>10} {'passes':>7}")
    for n, engine, disk, res, ref in rows:
        if "error" in res:
            print(f"{n:>11,} {engine:<12} {disk:>8.0f} {33 * n / 2**20:>9.0f} {'-':>8} {'-':>8} {'-':>10}  "
                  f"{res['error']}")
            continue
        worker_mb = f"{res['worker_mb']:.0f}" if "worker_mb" in res else "-"
        dl = f"{abs(res['loglik'] - ref):.1e}" if ref is not None else "-"
        passes = str(res.get("passes", "-"))
        print(f"{n:>11,} {engine:<12} {disk:>8.0f} {33 * n / 2**20:>9.0f} {res['seconds']:>8.1f} "
              f"{res['peak_mb']:>8.0f} {worker_mb:>10} {dl:>10} {passes:>7}")
    for n, secs in limits:
        fits = [res["seconds"] for m, e, _, res, _ in rows if m == n and e == "duckdb" and "seconds" in res]
        ours = f"; our DuckDB fit (two passes and the fit) {n / fits[0] / 1e6:.2f} M rows/s" if fits else ""
        print(f"\n{n:,} rows: DuckDB's GROUP BY g1, g2 of the sums the crossproducts need takes "
              f"{secs:.1f} s ({n / secs / 1e6:.2f} M rows/s){ours}")


if __name__ == "__main__":
    main()
