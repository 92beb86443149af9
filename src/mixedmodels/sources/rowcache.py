"""The evaluated rows of a model kept where the data lives, for the repeated passes of a GLMM.

PIRLS reweights the rows at every iteration, so a GLMM needs a pass per iteration. Building the
design of a chunk (formula, contrasts, level codes) costs far more than the weighted sums of a
pass, so the first pass evaluates every chunk once into a :class:`GlmChunk` (X, y, weights,
trials, offset, level codes and term values) and keeps it:

- :class:`DiskCache` (Parquet/CSV files, DuckDB, pyarrow Datasets, polars lazy): one ``.npz``
  per chunk in a temporary folder, read back one chunk at a time (memory of one chunk);
- :class:`DaskCache`: one chunk per partition, persisted in the workers' memory; a pass is a
  task per partition and a tree reduction, so only the sums travel;
- :class:`SparkCache`: the chunks as a cached RDD in the executors' memory; a pass is a
  ``mapPartitions`` job, one sum per partition, added on the driver.

:meth:`RowCache.map_reduce` runs one pass: ``fn(chunk)`` on every chunk and the sum of the
results (any object with ``+``), and counts the passes.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from ..exceptions import DataError
from .engines import DaskSource, Source, SparkSource, persist_partitions, spark_action

__all__ = ["GlmChunk", "RowCache", "build_cache"]


@dataclass
class GlmChunk:
    """A chunk's evaluated rows (complete rows only) and what they are in the source."""

    X: np.ndarray
    y: np.ndarray
    wt: np.ndarray        # total prior weights (weights × trials)
    nsize: np.ndarray     # binomial trials (1 otherwise)
    offset: np.ndarray
    codes: list[np.ndarray]
    values: list[np.ndarray]

    @property
    def n(self) -> int:
        return len(self.y)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"X": self.X, "y": self.y, "wt": self.wt, "nsize": self.nsize, "offset": self.offset}
        for k, (c, v) in enumerate(zip(self.codes, self.values)):
            out[f"codes{k}"], out[f"values{k}"] = c, v
        return out

    @classmethod
    def from_arrays(cls, arrays, k: int) -> "GlmChunk":
        return cls(arrays["X"], arrays["y"], arrays["wt"], arrays["nsize"], arrays["offset"],
                   [arrays[f"codes{i}"] for i in range(k)], [arrays[f"values{i}"] for i in range(k)])


# builder(frames) -> list of (GlmChunk or None, rows read, rows dropped, summary)
Builder = Callable[[Iterable[pd.DataFrame]], list]


class RowCache:
    """The chunks of a model's rows, evaluated once, where the data lives.

    Attributes
    ----------
    passes : int
        Passes run over the cached chunks (:meth:`map_reduce` calls).
    rows_seen, rows_dropped : int
        Rows read by the building pass, and dropped for missing values.
    summary : object
        The sum of the builder's per-chunk summaries (moments, constants).
    """

    passes = 0

    def map_reduce(self, fn: Callable[[GlmChunk], Any]) -> Any:
        """One pass: ``fn`` on every chunk, the results added."""
        self.passes += 1
        return self._map_reduce(fn)

    def _map_reduce(self, fn):
        raise NotImplementedError

    def close(self) -> None:
        """Free what the cache holds (files, workers' memory)."""

    def __getstate__(self):  # a model that is pickled does not take its rows with it
        raise TypeError("the cached rows of a streamed fit stay where they are and are not pickled")


def _sum(results: Iterable[Any]) -> Any:
    total = None
    for r in results:
        if r is not None:
            total = r if total is None else total + r
    return total


def _built(items: list) -> tuple[int, int, Any]:
    return sum(i[1] for i in items), sum(i[2] for i in items), _sum(i[3] for i in items)


class DiskCache(RowCache):
    """Chunks as ``.npz`` files in a temporary folder (removed with the cache)."""

    def __init__(self, source: Source, columns: list[str], builder: Builder, chunk_rows: int, k: int):
        self.k = k
        self.folder = tempfile.mkdtemp(prefix="mixedmodels-rows-")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.folder, True)
        self.files: list[str] = []
        items = []
        for frame in source.batches(columns, chunk_rows) if hasattr(source, "batches") else \
                _polars_batches(source, columns, chunk_rows):
            for item in builder([frame]):
                items.append(item[1:])
                if item[0] is not None:
                    path = os.path.join(self.folder, f"chunk{len(self.files):06d}.npz")
                    np.savez(path, **item[0].arrays())
                    self.files.append(path)
        self.rows_seen, self.rows_dropped, self.summary = _built([(None,) + i for i in items])

    def _map_reduce(self, fn):
        def results():
            for path in self.files:
                with np.load(path) as arrays:
                    yield fn(GlmChunk.from_arrays(arrays, self.k))
        return _sum(results())

    def close(self) -> None:
        self._finalizer()


def _polars_batches(source, columns, chunk_rows):
    for batch in source.frame.select(columns).collect_batches(chunk_size=chunk_rows):
        yield batch.to_pandas()


def _build_partition(builder: Builder, frame: pd.DataFrame) -> list:
    return builder([frame])


def _apply(fn, items: list):
    return _sum(fn(item[0]) for item in items if item[0] is not None)


def _add(a, b):
    return b if a is None else a if b is None else a + b


class DaskCache(RowCache):
    """One list of chunks per partition, persisted in the workers' memory."""

    def __init__(self, source: DaskSource, columns: list[str], builder: Builder):
        import dask

        parts = source.frame[columns].to_delayed()
        build = dask.delayed(builder, pure=True)
        nodes = [dask.delayed(_build_partition)(build, p) for p in parts]
        self.parts = persist_partitions(nodes, source.reporter)  # the building pass's bar, if any
        counts = dask.compute(*[dask.delayed(_counts)(p) for p in self.parts])
        self.rows_seen = sum(c[0] for c in counts)
        self.rows_dropped = sum(c[1] for c in counts)
        self.summary = _sum(c[2] for c in counts)

    def _map_reduce(self, fn):
        import dask

        f = dask.delayed(fn, pure=True)
        nodes = [dask.delayed(_apply)(f, p) for p in self.parts]
        while len(nodes) > 1:  # tree reduction: only sums travel between workers
            nodes = [dask.delayed(_add)(nodes[i], nodes[i + 1]) if i + 1 < len(nodes) else nodes[i]
                     for i in range(0, len(nodes), 2)]
        return nodes[0].compute() if nodes else None

    def close(self) -> None:
        self.parts = []


def _counts(items: list):
    return _built(items)


class SparkCache(RowCache):
    """The chunks as a cached RDD of Python objects in the executors' memory (built once by
    ``mapInPandas``); a pass is one ``mapPartitions`` job returning one sum per partition."""

    def __init__(self, source: SparkSource, columns: list[str], builder: Builder):
        frame = source.frame

        def build(frames):
            for item in builder(frames):
                yield pd.DataFrame({"chunk": [pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)]})

        blobs = frame.select(*[frame[c] for c in columns]).mapInPandas(build, schema="chunk binary")
        self.rdd = blobs.rdd.map(_unpickle_chunk).cache()
        self._finalizer = weakref.finalize(self, _unpersist, self.rdd)  # freed with the model
        counts = spark_action(frame, self.rdd.map(_chunk_counts).collect, source.reporter)
        self.rows_seen = sum(c[0] for c in counts)
        self.rows_dropped = sum(c[1] for c in counts)
        self.summary = _sum(c[2] for c in counts)

    def _map_reduce(self, fn):
        def run(items, fn=fn):
            yield _apply(fn, list(items))

        return _sum(self.rdd.mapPartitions(run).collect())

    def close(self) -> None:
        self._finalizer()


def _unpersist(rdd) -> None:
    try:
        rdd.unpersist()
    except Exception:  # noqa: BLE001 (the session may have stopped first)
        pass


def _unpickle_chunk(row):
    return pickle.loads(row["chunk"])


def _chunk_counts(item):
    return item[1], item[2], item[3]


def build_cache(source: Source, columns: list[str], builder: Builder, chunk_rows: int, k: int) -> RowCache:
    """Evaluate the rows of ``source`` (its ``columns``) into a :class:`RowCache`.

    ``builder(frames)`` returns, per chunk, ``(GlmChunk or None, rows read, rows dropped, summary)``.
    """
    if isinstance(source, DaskSource):
        return DaskCache(source, columns, builder)
    if isinstance(source, SparkSource):
        return SparkCache(source, columns, builder)
    if hasattr(source, "batches") or hasattr(source, "frame"):
        return DiskCache(source, columns, builder, chunk_rows, k)
    raise DataError(f"cannot cache the rows of {source.description}")
