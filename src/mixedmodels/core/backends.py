"""The two engine seams and their registry.

- :class:`DenseOps`: the dense kernels of the blocked factor (Cholesky, syrk, triangular
  solves, log-determinant). ``"lapack"`` (CPU, :mod:`mixedmodels.core.lapack`) is the default.
- :class:`RowOps`: everything that touches the n rows: the crossproducts of ``[Z X y]`` in
  chunks, linear predictors and weighted sums. ``"memory"`` (NumPy arrays,
  :mod:`mixedmodels.core.rows`) is the default.

A backend registers itself with :func:`register_dense` or :func:`register_rows`; adding one
touches its own file only (the built-in ones are imported by ``mixedmodels.core``).
:func:`get_dense` and :func:`get_rows` pick one by name.
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol, runtime_checkable

import numpy as np

__all__ = ["DenseOps", "RowOps", "RowChunk", "register_dense", "register_rows", "get_dense",
           "get_rows", "dense_backends", "row_backends"]


@runtime_checkable
class DenseOps(Protocol):
    """Dense kernels. Every matrix is float64; "lower" means the lower triangle is read/written."""

    name: str

    def cholesky_lower(self, a: np.ndarray, clean: bool = False) -> np.ndarray:
        """The lower Cholesky factor of the symmetric positive definite ``a``, of which only the
        lower triangle is read. May overwrite ``a``. Only the returned array's lower triangle
        is meaningful unless ``clean``, when its strict upper triangle is zero. Raises
        ``numpy.linalg.LinAlgError`` when ``a`` is not positive definite."""

    def syrk_lower(self, a: np.ndarray) -> np.ndarray:
        """``a aᵀ`` (at least its lower triangle)."""

    def trsm(self, lower: np.ndarray, rhs: np.ndarray, trans: bool = False) -> np.ndarray:
        """``L⁻¹ rhs`` (or ``L⁻ᵀ rhs``) for the lower triangle L of ``lower``; vector or matrix."""

    def logdet_chol(self, lower: np.ndarray) -> float:
        """``log det(L Lᵀ)`` for the lower triangle L of ``lower``."""


class RowChunk:
    """A block of rows: ``X`` (r × p), ``y`` (r,), optional ``weights``, and per random-effects
    term its level ``codes`` (r,) and ``values`` (r × l)."""

    __slots__ = ("X", "y", "weights", "codes", "values")

    def __init__(self, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None,
                 codes: list[np.ndarray], values: list[np.ndarray]):
        self.X, self.y, self.weights, self.codes, self.values = X, y, weights, codes, values


@runtime_checkable
class RowOps(Protocol):
    """The rows of a model, wherever they live."""

    name: str
    n: int
    p: int

    def chunks(self) -> Iterator[RowChunk]:
        """The rows in chunks (one pass over the data)."""

    def crossproducts(self):
        """The :class:`~mixedmodels.core.crossproducts.BlockedCrossproducts` of ``[Z X y]``."""

    def linear_predictor(self, beta: np.ndarray, b: list[np.ndarray],
                         offset: np.ndarray | None = None) -> np.ndarray:
        """``X β + Σ_k Z_k b_k (+ offset)`` per row, ``b_k`` as (levels × columns) arrays."""

    def weighted_sum(self, values: np.ndarray, weights: np.ndarray | None = None) -> float:
        """``Σ wᵢ vᵢ`` over the rows."""


_DENSE: dict[str, Callable[[], DenseOps]] = {}
_ROWS: dict[str, Callable[..., RowOps]] = {}


def register_dense(name: str) -> Callable:
    """Class decorator: make a :class:`DenseOps` implementation available as ``name``."""
    def deco(cls):
        _DENSE[name] = cls
        cls.name = name
        return cls
    return deco


def register_rows(name: str) -> Callable:
    """Class decorator: make a :class:`RowOps` implementation available as ``name``."""
    def deco(cls):
        _ROWS[name] = cls
        cls.name = name
        return cls
    return deco


def dense_backends() -> list[str]:
    """Names of the registered dense backends."""
    return sorted(_DENSE)


def row_backends() -> list[str]:
    """Names of the registered row backends."""
    return sorted(_ROWS)


def get_dense(name: str | DenseOps = "lapack") -> DenseOps:
    """A dense backend by name (or the object itself)."""
    if not isinstance(name, str):
        return name
    try:
        return _DENSE[name]()
    except KeyError:
        raise ValueError(f"unknown dense backend {name!r}; registered: {', '.join(sorted(_DENSE))}") from None


def get_rows(name: str = "memory") -> Callable[..., RowOps]:
    """The constructor of a row backend by name."""
    try:
        return _ROWS[name]
    except KeyError:
        raise ValueError(f"unknown row backend {name!r}; registered: {', '.join(sorted(_ROWS))}") from None
