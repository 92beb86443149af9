"""Which data a fit was given: an in-memory frame of any library (to pandas, through narwhals),
or a source whose rows stay where they are (Parquet/CSV files, DuckDB, polars lazy, Dask, Spark).

Results always come back in pandas; in-memory frames are converted once, at the entry point.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError

__all__ = ["as_pandas", "is_streamed", "source_kind"]

# the top-level module of a frame's type → the kind of source it is
_LAZY_MODULES = {"duckdb": "duckdb", "dask": "dask", "dask_expr": "dask", "pyspark": "spark"}
_FILE_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz", ".tsv")


def _top_module(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def source_kind(data: Any) -> str | None:
    """``"files"``, ``"duckdb"``, ``"polars-lazy"``, ``"arrow-dataset"``, ``"dask"`` or
    ``"spark"`` for data whose rows are streamed; None for anything else (in-memory frames).

    Parameters
    ----------
    data : object
        What the user passed as ``data``.
    """
    if isinstance(data, (str, os.PathLike)):
        text = os.fspath(data)
        if any(ch in text for ch in "*?[") or text.lower().endswith(_FILE_SUFFIXES) or os.path.isdir(text):
            return "files"
        return None
    if type(data).__module__.startswith("mixedmodels.sources") and hasattr(data, "partial"):
        return data.kind  # a Source opened with its settings (open_source)
    top = _top_module(data)
    name = type(data).__name__
    if top == "polars" and name == "LazyFrame":
        return "polars-lazy"
    if top == "pyarrow" and "Dataset" in name:
        return "arrow-dataset"
    if top in _LAZY_MODULES and name not in ("Series",):
        if top == "pyspark" and name != "DataFrame":
            return None
        return _LAZY_MODULES[top]
    return None


def is_streamed(data: Any) -> bool:
    """Whether ``data`` is fitted out of core / on its engine rather than converted to pandas."""
    return source_kind(data) is not None


def as_pandas(data: Any, what: str = "data") -> Any:
    """An in-memory frame as a pandas DataFrame: polars (eager), pyarrow Tables, any frame that
    narwhals knows, and dicts of equally long arrays. pandas frames and anything unknown come
    back unchanged (the design's checks then name what it is).

    Parameters
    ----------
    data : object
    what : str
        The argument's name, for errors.

    Returns
    -------
    pandas.DataFrame, or ``data`` unchanged
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, dict):
        return _dict_frame(data, what)
    try:
        import narwhals as nw
    except ImportError:  # narwhals comes with the [bigdata] extra
        return data
    try:
        frame = nw.from_native(data, eager_only=True)
    except TypeError:
        return data
    return frame.to_pandas()


def _dict_frame(data: dict, what: str) -> pd.DataFrame:
    lengths = {}
    for key, value in data.items():
        arr = np.asarray(value)
        if arr.ndim != 1:
            raise DataError(f"{what}[{key!r}] must be one-dimensional (one value per row), got shape "
                            f"{arr.shape}")
        lengths[key] = len(arr)
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k!r}: {n}" for k, n in lengths.items())
        raise DataError(f"the arrays of {what} must be equally long (one value per row), got {shown}")
    return pd.DataFrame({k: (v if isinstance(v, pd.Series) else np.asarray(v)) for k, v in data.items()})
