"""The numeric core: no pandas, no families, no models.

- :mod:`.parametrization`: θ ↔ Λ per term (layouts, bounds, starts, names, sd/cor maps);
- :mod:`.terms`: the random-effects term matrices;
- :mod:`.crossproducts`: the crossproducts protocol (``from_chunks``, ``reweight``);
- :mod:`.factor`: the blocked Cholesky factor, ``update(θ)``;
- :mod:`.backends`: the ``RowOps`` and ``DenseOps`` interfaces and their registry, with the
  built-in backends :mod:`.lapack` (dense, CPU) and :mod:`.rows` (rows in memory).
"""

from . import lapack, rows  # noqa: F401  (the built-in backends register themselves)
from .backends import DenseOps, RowChunk, RowOps, get_dense, get_rows
from .crossproducts import BlockedCrossproducts
from .factor import BlockedFactor
from .parametrization import ThetaParametrization, theta_layout
from .terms import ReTermMatrix

__all__ = ["BlockedCrossproducts", "BlockedFactor", "DenseOps", "ReTermMatrix", "RowChunk",
           "RowOps", "ThetaParametrization", "get_dense", "get_rows", "theta_layout"]
