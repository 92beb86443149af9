"""Data where it lives: the one pass over the rows run by DuckDB/Parquet, Dask or Spark.

- :mod:`.frames`: in-memory frames of any library to pandas (narwhals); which inputs stream;
- :mod:`.engines`: the sources (files and DuckDB, polars lazy, Dask, Spark) and their passes;
- :mod:`.template`: pass 1 (counts, levels) and the per-chunk design it fixes;
- :mod:`.partial`: pass 2's partial crossproducts and their sum;
- :mod:`.design`: :func:`stream_design`, the design of a streamed fit, and the ``"streamed"``
  row backend;
- :mod:`.rowcache`: a GLMM's evaluated rows cached where they live (disk chunks, Dask workers'
  memory, a Spark RDD) and the map-reduce passes PIRLS runs over them;
- :mod:`.glmdesign`: :func:`~.glmdesign.stream_glm_design`, pass 1 and the building pass of a GLMM.
"""

from .design import RowsElsewhere, StreamedDesign, StreamedRows, estimate_bytes, stream_design
from .engines import Source, open_source
from .frames import as_pandas, is_streamed, source_kind

__all__ = ["RowsElsewhere", "Source", "StreamedDesign", "StreamedRows", "as_pandas", "estimate_bytes",
           "is_streamed", "open_source", "source_kind", "stream_design"]
