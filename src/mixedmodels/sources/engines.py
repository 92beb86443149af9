"""The engines that run the data passes where the rows are.

Each source gives two things:

- :meth:`Source.lazy`: a narwhals LazyFrame for pass 1 (row and missing-value counts, the
  distinct values of the factors), pushed down to the engine (DuckDB, polars, Dask, Spark);
- :meth:`Source.partial`: pass 2, a map-reduce of :class:`~mixedmodels.sources.partial.Partial`
  crossproducts over chunks of rows (Arrow record batches streamed by DuckDB or polars on one
  machine, ``to_delayed`` partitions and a tree reduction on Dask, ``mapInPandas`` on Spark).

Only the engine that a source needs is imported.
"""

from __future__ import annotations

import glob
import os
import pickle
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

from ..exceptions import DataError
from .frames import source_kind
from .partial import Partial, add_any

__all__ = ["Source", "open_source"]

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
    """

    kind = "source"
    description = "a data source"

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

    def partial(self, columns, chunk_fn, chunk_rows):
        dask = _need("dask")
        parts = self.frame[columns].to_delayed()
        fn = dask.delayed(chunk_fn, pure=True)
        nodes = [dask.delayed(_one_partition)(fn, part) for part in parts]
        if not nodes:
            return chunk_fn([])
        while len(nodes) > 1:  # tree reduction: log2(partitions) levels, crossproducts only
            nodes = [dask.delayed(add_any)(nodes[i], nodes[i + 1]) if i + 1 < len(nodes) else nodes[i]
                     for i in range(0, len(nodes), 2)]
        return nodes[0].compute()


def _one_partition(fn, frame: pd.DataFrame) -> Partial:
    return fn([frame])


class SparkSource(Source):
    """A PySpark DataFrame: pass 1 through narwhals (Spark SQL aggregations), pass 2 with
    ``mapInPandas`` (one crossproducts object per partition, summed on the driver)."""

    kind = "spark"
    description = "a Spark DataFrame"

    def __init__(self, frame):
        self.frame = frame

    def lazy(self):
        import narwhals as nw
        return nw.from_native(self.frame)

    def partial(self, columns, chunk_fn, chunk_rows):
        def run(batches):
            part = chunk_fn(batches)
            yield pd.DataFrame({"partial": [pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)]})

        sdf = self.frame.select(*[self.frame[c] for c in columns])
        rows = sdf.mapInPandas(run, schema="partial binary").collect()
        total = chunk_fn([])
        for row in rows:
            total = add_any(total, pickle.loads(row["partial"]))
        return total


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
