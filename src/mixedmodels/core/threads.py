"""BLAS threads for small systems.

OpenBLAS runs a small fit's many tiny products and factorizations on all cores, and its worker
threads then spin between calls: on a 2-core machine a sleepstudy fit took twice the CPU time
(16 ms instead of 8 ms), and 1.5x the wall time when the other core was busy, with no gain. A
user fitting thousands of small models in parallel processes pays that on every core. So the
optimization of a small system runs with one BLAS thread (:func:`serial_blas`), as lme4 does
with R's reference BLAS; large Schur blocks keep every thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

__all__ = ["SERIAL_FLOPS", "serial_blas"]

#: Below this many floating-point operations per evaluation (dense Cholesky and updates), a
#: system is small. Measured on a 2-core machine: LAPACK's dpotrf ran no faster on two threads
#: than on one up to n = 600 (7e7 flop; 8.4 ms against 5.6 ms), and 1.36x faster at n = 1000
SERIAL_FLOPS = 1e8

_controller: Any = None
# fits may run in several Python threads at once, and the BLAS thread count is the process's:
# the first serial section limits it and the last one out restores it (threadpoolctl's own
# nested limits, exited out of order, would leave the process on one thread)
_lock = threading.Lock()
_depth = 0
_limiter: Any = None


def _blas_controller() -> Any:
    """threadpoolctl's controller of the BLAS libraries loaded now (found once: a few ms)."""
    global _controller
    if _controller is None:
        import scipy.linalg  # noqa: F401  (scipy's own OpenBLAS is loaded by then)
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextmanager
def _serial() -> Iterator[None]:
    global _depth, _limiter
    with _lock:
        if _depth == 0:
            _limiter = _blas_controller().limit(limits=1, user_api="blas")
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None


def serial_blas(small: bool) -> AbstractContextManager:
    """A context in which BLAS runs on one thread when ``small`` (restored when the last such
    context in the process exits); a null context otherwise."""
    return _serial() if small else nullcontext()
