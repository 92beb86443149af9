"""The engines that run the data passes where the rows are.

Each source gives two things:

- :meth:`Source.lazy`: a narwhals LazyFrame for pass 1 (row and missing-value counts, the
  distinct values of the factors), pushed down to the engine (DuckDB, polars, Dask, Spark);
- :meth:`Source.partial`: pass 2, a map-reduce of :class:`~mixedmodels.sources.partial.Partial`
  crossproducts over chunks of rows (Arrow record batches streamed by DuckDB or polars on one
  machine, ``to_delayed`` partitions and a tree reduction on Dask, ``mapInPandas`` on Spark).

A pass's progress bar counts rows for the sources read on this machine (the chunks are read
here), and on the client the partitions done (Dask: :func:`reduce_partitions`) or the tasks done
(Spark: :func:`spark_action`, from the status tracker) for the rows that stay on a cluster.

Only the engine that a source needs is imported.
"""

from __future__ import annotations

import glob
import os
import pickle
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

from ..exceptions import DataError
from .frames import source_kind
from .partial import Partial, add_any

__all__ = ["Source", "open_source", "persist_partitions", "reduce_partitions", "spark_action"]

ChunkFn = Callable[[Iterable[pd.DataFrame]], Partial]


def _need(module: str, extra: str = "bigdata"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"fitting this input needs {module}: pip install 'mixedmodels[{extra}]'") from err


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Source:
    """Rows that stay where they are.

    Attributes
    ----------
    kind : str
        ``"files"``, ``"duckdb"``, ``"polars-lazy"``, ``"arrow-dataset"``, ``"dask"``, ``"spark"``.
    description : str
        What the rows are, for messages (``"3 Parquet files sales/*.parquet"``).
    unit : str
        What a pass's progress bar counts: ``"rows"`` (read on this machine), ``"partitions"``
        (Dask) or ``"tasks"`` (Spark).
    reporter : object or None
        The bar of the pass running, updated on the client as partitions or tasks finish (set
        by :meth:`~mixedmodels.sources.template.Template.reporting`; None between passes).
    """

    kind = "source"
    description = "a data source"
    unit = "rows"
    reporter = None

    def steps(self, rows: int) -> int:
        """The steps of a pass's bar: its ``rows`` here, the partitions on Dask; on Spark 0,
        the tasks being added as the pass's stages start."""
        return rows

    def lazy(self):
        """The rows as a narwhals LazyFrame (pass 1 runs on it)."""
        raise NotImplementedError

    def columns(self) -> dict[str, Any]:
        """Column name → narwhals dtype."""
        return dict(self.lazy().collect_schema())

    def check_columns(self, used: list[str]) -> None:
        """Raise a DataError naming the part of the source that lacks a column (files)."""

    def partial(self, columns: list[str], chunk_fn: ChunkFn, chunk_rows: int) -> Partial:
        """Pass 2: ``chunk_fn`` over the rows' chunks (pandas frames of ``columns``), reduced."""
        raise NotImplementedError


class DuckDBSource(Source):
    """Parquet/CSV files, a DuckDB relation, or a pyarrow Dataset, scanned by DuckDB and streamed
    as Arrow record batches (memory of the order of one batch)."""

    def __init__(self, relation, description: str, kind: str, files: list[str] | None = None,
                 file_format: str | None = None):
        self.relation, self.description, self.kind = relation, description, kind
        self.files, self.file_format = files, file_format

    @classmethod
    def from_files(cls, path: str, threads: int | None = None, memory_limit: str | None = None):
        duckdb = _need("duckdb")
        text = os.fspath(path)
        if os.path.isdir(text):
            files = sorted(glob.glob(os.path.join(text, "**", "*.parquet"), recursive=True)
                           + glob.glob(os.path.join(text, "**", "*.csv"), recursive=True))
        else:
            files = sorted(glob.glob(text, recursive=True))
        if not files:
            raise DataError(f"no files match {text!r} (looked for Parquet or CSV files there); check "
                            "the path and the glob pattern")
        parquet = [f for f in files if not f.lower().endswith((".csv", ".csv.gz", ".tsv"))]
        if parquet and len(parquet) != len(files):
            raise DataError(f"{text!r} matches both Parquet and CSV files; give one kind")
        con = duckdb.connect(config={k: v for k, v in (("threads", threads), ("memory_limit", memory_limit))
                                     if v is not None})
        fmt = "parquet" if parquet else "csv"
        rel = con.read_parquet(files) if parquet else con.read_csv(files)
        shown = text if len(files) > 1 else files[0]
        source = cls(rel, f"{len(files)} {fmt.capitalize() if fmt == 'parquet' else 'CSV'} file"
                     f"{'s' if len(files) != 1 else ''} {shown}", "files", files, fmt)
        source.connection = con
        return source

    def lazy(self):
        import narwhals as nw
        return nw.from_native(self.relation)

    def check_columns(self, used: list[str]) -> None:
        if self.file_format != "parquet" or not self.files or len(self.files) < 2:
            return
        pq = _need("pyarrow.parquet")
        first = pq.read_schema(self.files[0])
        for path in self.files[1:]:
            schema = pq.read_schema(path)
            missing = [c for c in used if c in first.names and c not in schema.names]
            if missing:
                raise DataError(f"file {path!r} has no column {', '.join(map(repr, missing))} (used by "
                                f"the formula; {self.files[0]!r} has it)")
            for c in used:
                if c in first.names and c in schema.names and first.field(c).type != schema.field(c).type:
                    raise DataError(f"the files' schemas disagree: column {c!r} is {first.field(c).type} in "
                                    f"{self.files[0]!r} but {schema.field(c).type} in {path!r}; "
                                    "write the files with one schema")
        # a column the first file lacks but another has is reported by the formula check

    def batches(self, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
        reader = self.relation.project(", ".join(_quote(c) for c in columns)).to_arrow_reader(chunk_rows)
        for batch in reader:
            yield batch.to_pandas()

    def partial(self, columns, chunk_fn, chunk_rows):
        return chunk_fn(self.batches(columns, chunk_rows))


class PolarsLazySource(Source):
    """A polars LazyFrame (``pl.scan_parquet(...)``): pass 1 in polars, pass 2 over its
    ``collect_batches`` (streaming engine)."""

    kind = "polars-lazy"
    description = "a polars LazyFrame"

    def __init__(self, frame):
        self.frame = frame

    def lazy(self):
        import narwhals as nw
        return nw.from_native(self.frame)

    def partial(self, columns, chunk_fn, chunk_rows):
        def batches():
            for batch in self.frame.select(columns).collect_batches(chunk_size=chunk_rows):
                yield batch.to_pandas()
        return chunk_fn(batches())


class DaskSource(Source):
    """A Dask DataFrame: pass 1 through narwhals (computed by the active scheduler: a
    ``distributed.Client`` if one exists), pass 2 per partition and a tree reduction, so only
    crossproducts travel between workers."""

    kind = "dask"
    description = "a Dask DataFrame"

    def __init__(self, frame):
        self.frame = frame
        self.description = f"a Dask DataFrame ({frame.npartitions} partitions)"

    def lazy(self):
        import narwhals as nw
        return nw.from_native(self.frame)

    unit = "partitions"

    def steps(self, rows: int) -> int:
        return self.frame.npartitions

    def partial(self, columns, chunk_fn, chunk_rows):
        dask = _need("dask")
        parts = self.frame[columns].to_delayed()
        fn = dask.delayed(chunk_fn, pure=True)
        nodes = [dask.delayed(_one_partition)(fn, part) for part in parts]
        if not nodes:
            return chunk_fn([])
        return reduce_partitions(nodes, add_any, self.reporter)


def _one_partition(fn, frame: pd.DataFrame) -> Partial:
    return fn([frame])


def _pairs(level: list, add: Callable) -> list:
    """One level of the tree reduction: neighbours added, an odd last one carried up."""
    return [add(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]


def _dask_client():
    """The ``distributed.Client`` that Dask computes on now, or None (a local scheduler, or
    ``dask.config.set(scheduler=...)`` chose another)."""
    if "distributed" not in sys.modules:  # no client can exist without it
        return None
    import dask
    from distributed import Client

    client = getattr(dask.base.get_scheduler(), "__self__", None)
    return client if isinstance(client, Client) else None


@contextmanager
def _counting(keys: set, reporter):
    """``reporter.update(1)`` as each task of ``keys`` finishes on a local Dask scheduler (its
    callbacks run in the thread that computes)."""
    from dask.callbacks import Callback

    def posttask(key, result, dsk, state, worker_id):
        if key in keys:
            reporter.update(1)

    with Callback(posttask=posttask):
        yield


def reduce_partitions(nodes: list, add: Callable, reporter=None):
    """The sum of per-partition results (Dask Delayed objects), added in a tree where they are.

    The tree pairs the same neighbours on every scheduler, so the floating-point sums are the
    same with or without a bar. With a ``reporter``, ``reporter.update(1)`` runs on the client as
    each partition's task finishes: on a ``distributed`` cluster the partitions' tasks and the
    tree are submitted as futures and counted with ``distributed.as_completed`` (only the
    partial sums travel, the partitions' results are released as they are added); on a local
    scheduler through a Dask callback.

    Parameters
    ----------
    nodes : list of Delayed
        One result per partition.
    add : callable
        ``add(a, b)``, picklable.
    reporter : object, optional
        A progress bar (``update(k)``).
    """
    import dask

    client = _dask_client() if reporter is not None else None
    if client is None:
        tree = list(nodes)
        while len(tree) > 1:  # log2(partitions) levels, crossproducts only
            tree = _pairs(tree, dask.delayed(add))
        if reporter is None:
            return tree[0].compute()
        with _counting({n.key for n in nodes}, reporter):
            return tree[0].compute()
    from distributed import as_completed

    level = client.compute(list(nodes))
    done = as_completed(level)
    while len(level) > 1:
        level = _pairs(level, lambda a, b: client.submit(add, a, b))
    root = level[0]
    del level  # as_completed holds each partition's future until it is counted, then lets it go
    for _ in done:
        reporter.update(1)
    return root.result()


def persist_partitions(nodes: list, reporter=None) -> list:
    """``dask.persist`` of per-partition results (kept in the workers' memory), with
    ``reporter.update(1)`` on the client as each partition is done (see
    :func:`reduce_partitions`)."""
    import dask

    if reporter is None:
        return list(dask.persist(*nodes))
    client = _dask_client()
    if client is None:
        with _counting({n.key for n in nodes}, reporter):
            return list(dask.persist(*nodes))
    from distributed import as_completed, futures_of

    parts = list(client.persist(list(nodes)))
    for _ in as_completed(futures_of(parts)):
        reporter.update(1)
    return parts


class SparkSource(Source):
    """A PySpark DataFrame: pass 1 through narwhals (Spark SQL aggregations), pass 2 with
    ``mapInPandas`` (one crossproducts object per partition, summed on the driver)."""

    kind = "spark"
    description = "a Spark DataFrame"
    unit = "tasks"

    def __init__(self, frame):
        self.frame = frame

    def steps(self, rows: int) -> int:
        return 0

    def lazy(self):
        import narwhals as nw
        return nw.from_native(self.frame)

    def partial(self, columns, chunk_fn, chunk_rows):
        def run(batches):
            part = chunk_fn(batches)
            yield pd.DataFrame({"partial": [pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)]})

        sdf = self.frame.select(*[self.frame[c] for c in columns])
        rows = spark_action(self.frame, sdf.mapInPandas(run, schema="partial binary").collect, self.reporter)
        total = chunk_fn([])
        for row in rows:
            total = add_any(total, pickle.loads(row["partial"]))
        return total


#: seconds between two looks at Spark's status tracker while a pass runs
SPARK_POLL_S = 0.25


class _SparkTasks:
    """The tasks done of the stages of one job group (those that ran: a stage skipped because
    its shuffle was already written never starts, so it is not counted)."""

    def __init__(self, tracker, group: str, reporter):
        self.tracker, self.group, self.reporter = tracker, group, reporter
        self.stages: dict[int, tuple[int, int]] = {}  # stage id -> (tasks, tasks done)
        self.total = self.done = 0

    def look(self) -> bool:
        """Update the bar; True when the group's jobs have all ended."""
        tracker = self.tracker
        active = set(tracker.getActiveStageIds())
        jobs = [tracker.getJobInfo(job) for job in tracker.getJobIdsForGroup(self.group)]
        for info in jobs:
            for sid in info.stageIds if info is not None else ():
                stage = tracker.getStageInfo(sid)
                if stage is None:
                    continue
                ran = sid in active or stage.numActiveTasks or stage.numCompletedTasks or sid in self.stages
                if ran:
                    old = self.stages.get(sid, (0, 0))[1]
                    self.stages[sid] = (stage.numTasks, max(old, min(stage.numCompletedTasks, stage.numTasks)))
        self.show(sum(t for t, _ in self.stages.values()), sum(d for _, d in self.stages.values()))
        return bool(jobs) and all(i is not None and i.status not in ("RUNNING", "UNKNOWN") for i in jobs)

    def settle(self, limit_s: float = 1.0) -> None:
        """The last look, once the tracker has heard that the jobs ended (its listener runs
        behind the action; the tasks' ends come before their job's)."""
        end = time.monotonic() + limit_s
        while not self.look() and time.monotonic() < end:
            time.sleep(0.02)

    def show(self, total: int, done: int) -> None:
        if total > self.total and hasattr(self.reporter, "add_total"):
            self.reporter.add_total(total - self.total)
            self.total = total
        if done > self.done:
            self.reporter.update(done - self.done)
            self.done = done


def spark_action(frame, action: Callable[[], Any], reporter=None) -> Any:
    """Run a Spark action (``collect``) of ``frame``'s session, with ``reporter`` counting the
    tasks done of its stages on the driver while it runs.

    The action runs in this thread under a job group of its own (the thread's previous group is
    restored after); a daemon thread reads ``SparkContext.statusTracker()`` every
    :data:`SPARK_POLL_S` seconds. The rows stay on the cluster: only the action's result comes
    back. Without a SparkContext (Spark Connect) the action runs without a bar.
    """
    if reporter is None:
        return action()
    try:
        sc = frame.sparkSession.sparkContext
        tracker = sc.statusTracker()
    except Exception:  # noqa: BLE001 (Spark Connect has no SparkContext: no bar rather than no fit)
        return action()
    group = f"mixedmodels-{uuid.uuid4().hex}"
    keys = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")
    before = {k: sc.getLocalProperty(k) for k in keys}
    tasks = _SparkTasks(tracker, group, reporter)
    stop = threading.Event()

    def poll():
        while not stop.wait(SPARK_POLL_S):
            try:
                tasks.look()
            except Exception:  # noqa: BLE001 (the bar must not break the pass; the session may stop)
                return

    sc.setJobGroup(group, "mixedmodels: a pass over the rows")
    watcher = threading.Thread(target=poll, name="mixedmodels-spark-progress", daemon=True)
    watcher.start()
    try:
        result = action()
    finally:
        stop.set()
        watcher.join()
        for k, v in before.items():
            sc.setLocalProperty(k, v)
    try:
        tasks.settle()
    except Exception:  # noqa: BLE001
        pass
    tasks.show(tasks.total, tasks.total)  # the action succeeded: every task that ran is done
    return result


def open_source(data: Any, *, threads: int | None = None, memory_limit: str | None = None) -> Source:
    """The :class:`Source` of a path/glob, DuckDB relation, pyarrow Dataset, polars LazyFrame,
    Dask or Spark DataFrame.

    Parameters
    ----------
    data : object
    threads, memory_limit : optional
        DuckDB's settings for files (e.g. ``memory_limit="1GB"``).
    """
    kind = source_kind(data)
    if kind == "files":
        return DuckDBSource.from_files(data, threads=threads, memory_limit=memory_limit)
    if kind == "duckdb":
        return DuckDBSource(data, "a DuckDB relation", "duckdb")
    if kind == "arrow-dataset":
        duckdb = _need("duckdb")
        con = duckdb.connect()
        source = DuckDBSource(con.from_arrow(data), "a pyarrow Dataset", "arrow-dataset")
        source.connection = con
        return source
    if kind == "polars-lazy":
        return PolarsLazySource(data)
    if kind == "dask":
        return DaskSource(data)
    if kind == "spark":
        return SparkSource(data)
    raise TypeError(f"cannot stream {type(data).__module__}.{type(data).__qualname__}")
