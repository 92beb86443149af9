"""Data where it lives: the one pass over the rows run by DuckDB/Parquet, Dask or Spark."""
