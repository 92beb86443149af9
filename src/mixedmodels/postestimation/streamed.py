"""Per-row results on sources whose rows stay where they are: predictions, fitted values and
residuals as a pass over the source, computed chunk by chunk with the in-memory
:func:`~mixedmodels.postestimation.predict.predict`.

What comes back never collects a large result silently:

- a Dask DataFrame gives a lazy Dask Series (computed on the cluster when asked);
- a Spark DataFrame gives the Spark DataFrame with the result as a new column;
- files, DuckDB relations, pyarrow Datasets and polars LazyFrames give a pandas Series of one
  value per row (NaN for rows the fit dropped) up to :data:`COLLECT_LIMIT` rows; ``out=`` a
  Parquet path streams them to that file instead (and returns the path).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..models.base import implements
from ..sources import Source, open_source, source_kind
from ..spec.response import Response, response_parser

__all__ = ["COLLECT_LIMIT", "predict_source"]

#: the most rows a per-row result on files/DuckDB/polars returns in memory without ``out=``
COLLECT_LIMIT = 20_000_000


class _ChunkResult:
    """The per-chunk function (picklable: it runs on Dask workers and Spark executors)."""

    def __init__(self, model, what: str, kwargs: dict):
        self.model, self.what, self.kwargs = model, what, kwargs

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        frame = frame.reset_index(drop=True)
        if self.what == "predict":  # a pandas frame: the in-memory predict
            return np.asarray(self.model.predict(frame, **self.kwargs), dtype=float)
        template = self.model.design.template
        complete, _ = template.complete_rows(frame)
        out = np.full(len(frame), np.nan)
        if len(complete) == 0:
            return out
        kind = self.kwargs["type"]
        if self.what == "fitted":
            out[complete.index.to_numpy()] = _mean(self.model, template, complete, kind)
            return out
        out[complete.index.to_numpy()] = _residuals(self.model, template, complete, kind, self.kwargs["scaled"])
        return out


def _mean(model, template, frame: pd.DataFrame, kind: str) -> np.ndarray:
    """The fit's linear predictor or mean at complete rows, with the ``offset=`` column (which
    new data need not have, so predict leaves it out)."""
    eta = np.asarray(model.predict(frame, type="link"), dtype=float)
    if template.offset_column is not None:
        eta = eta + frame[template.offset_column].to_numpy(dtype=float)
    return eta if kind == "link" else model.family.link.inverse(eta)


def _residuals(model, template, frame: pd.DataFrame, kind: str | None, scaled: bool) -> np.ndarray:
    fam = model.family
    mu = _mean(model, template, frame, "response")
    prior = template.weight_values(frame)
    if fam.linear:
        y = _response(template, fam, frame)[0]
        r = y - mu
        if kind == "pearson" and prior is not None:
            r = r * np.sqrt(prior)
        return r / model.sigma if scaled else r
    y, trials = _response(template, fam, frame)
    wt = (np.ones(len(y)) if prior is None else prior) * (np.ones(len(y)) if trials is None else trials)
    kind = kind or "deviance"
    if kind == "deviance":
        r = np.sign(y - mu) * np.sqrt(np.maximum(fam.dev_resid(y, mu, wt), 0.0))
    elif kind == "pearson":
        r = (y - mu) * np.sqrt(wt / fam.variance(mu))
    elif kind == "response":
        r = y - mu
    elif kind == "working":
        eta = _mean(model, template, frame, "link")
        r = (y - mu) / fam.link.mu_eta(eta)
    else:
        raise ValueError(f"type must be 'deviance', 'pearson', 'response' or 'working', got {kind!r}")
    return r / model.sigma if scaled and fam.has_scale else r


def _response(template, family, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    store = Response()
    y = np.asarray(response_parser(family, store)(template.spec.response, frame), dtype=float)
    return y, (None if store.trials is None else np.asarray(store.trials, dtype=float))


def _batches(source: Source, rows: int = 1 << 17):
    """All the columns of a one-machine source in record batches, as pandas frames."""
    columns = [str(c) for c in source.lazy().collect_schema()]
    if hasattr(source, "batches"):
        return source.batches(columns, rows)
    return (b.to_pandas() for b in source.frame.collect_batches(chunk_size=rows))


def _run(model, data: Any, fn: _ChunkResult, name: str, out):
    kind = source_kind(data)
    if kind == "dask":
        frame = data

        def part(df: pd.DataFrame, fn=fn) -> pd.Series:
            return pd.Series(fn(df), index=df.index, name=name)

        if out is not None:
            raise ValueError("out= is for files, DuckDB and polars sources; a Dask result is a lazy Series: "
                             "write it with its own to_parquet or .to_frame().to_parquet(...)")
        return frame.map_partitions(part, meta=pd.Series(dtype=float, name=name))
    if kind == "spark":
        if out is not None:
            raise ValueError("out= is for files, DuckDB and polars sources; the Spark result is a DataFrame "
                             "with the column: write it with .write.parquet(...)")
        sdf = data

        def batches(frames, fn=fn):
            for frame in frames:
                yield frame.assign(**{name: fn(frame)})

        from pyspark.sql.types import DoubleType, StructField, StructType

        schema = StructType(list(sdf.schema.fields) + [StructField(name, DoubleType(), True)])
        return sdf.mapInPandas(batches, schema=schema)
    source = data if isinstance(data, Source) else open_source(data)
    stream = _batches(source)
    if out is None:
        import narwhals as nw

        n = int(source.lazy().select(nw.len()).collect().to_pandas().iloc[0, 0])
        if n > COLLECT_LIMIT:
            raise DataError(f"{source.description} has {n} rows: more than {COLLECT_LIMIT} values are not "
                            "collected in memory; give out='result.parquet' to stream them to a file")
        values = [fn(frame) for frame in stream]
        return pd.Series(np.concatenate(values) if values else np.zeros(0), name=name)
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for frame in stream:
            table = pa.table({name: fn(frame)})
            if writer is None:
                writer = pq.ParquetWriter(str(out), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return str(out)


def predict_source(model, newdata: Any, *, out=None, **kwargs):
    """:func:`~mixedmodels.postestimation.predict.predict` on a source (see the module)."""
    for key in ("se_fit", "interval"):
        if kwargs.get(key):
            raise NotImplementedError(f"{key}= on a streamed source is not supported; predict on a pandas frame "
                                      "of the rows you need")
    return _run(model, newdata, _ChunkResult(model, "predict", kwargs), "fit", out)


def _origin(model):
    source = getattr(model.design, "origin", None)
    if source is None:
        raise DataError("this streamed fit no longer knows its source (it was pickled): give the data again, "
                        "m.predict(data)")
    return source.frame if hasattr(source, "frame") and source.kind in ("dask", "spark") else source


@implements("fitted_source")
def fitted_source(model, type: str = "response", out=None):  # noqa: A002 (R's argument name)
    """Fitted values of a streamed fit, one per row of its source (NaN where a row was dropped)."""
    if type not in ("response", "link"):
        raise ValueError(f"type must be 'response' or 'link', got {type!r}")
    return _run(model, _origin(model), _ChunkResult(model, "fitted", {"type": type}), "fitted", out)


@implements("residuals_source")
def residuals_source(model, type: str | None = None, scaled: bool = False, out=None):  # noqa: A002
    """Residuals of a streamed fit, one per row of its source (NaN where a row was dropped)."""
    kind = type or ("response" if model.family.linear else "deviance")
    return _run(model, _origin(model), _ChunkResult(model, "residuals", {"type": kind, "scaled": scaled}),
                "residuals", out)


@implements("residual_quantiles_source")
def residual_quantiles_source(model, probs, type: str | None = None, scaled: bool = False) -> np.ndarray:  # noqa: A002
    """Quantiles of a streamed fit's residuals without collecting them: Dask's ``quantile`` and
    Spark's ``approxQuantile`` (relative error 1e-4) on a cluster; on one machine the exact
    quantiles (one value per row in memory up to :data:`COLLECT_LIMIT` rows), beyond that
    those of every k-th row, a sample of about 10M."""
    origin = getattr(model.design, "origin", None)
    kind = getattr(origin, "kind", None)
    resid = residuals_source(model, type=type, scaled=scaled) if kind in ("dask", "spark") else None
    if kind == "dask":
        return resid.dropna().quantile(list(probs)).compute().to_numpy()
    if kind == "spark":
        return np.array(resid.approxQuantile("residuals", [float(p) for p in probs], 1e-4))
    step = max(1, -(-model.design.nobs // COLLECT_LIMIT))
    fn = _ChunkResult(model, "residuals", {"type": type or ("response" if model.family.linear else "deviance"),
                                           "scaled": scaled})
    values = []
    for frame in _batches(_origin(model)):
        r = fn(frame)
        r = r[np.isfinite(r)]
        values.append(r[::step])
    return np.quantile(np.concatenate(values), probs)
