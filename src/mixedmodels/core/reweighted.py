"""The reduced system of crossproducts whose values change in place (PIRLS' reweighting).

:class:`~mixedmodels.core.reduced.ReducedSystem` keeps its own row-split copies of the sparse
blocks between terms and of their transposes. Under PIRLS the crossproducts are reweighted at
every step with their sparsity fixed
(:meth:`~mixedmodels.core.crossproducts.BlockedCrossproducts.reweight`), so instead of a new
system per step (a transpose and a copy of every block: about the work of a CG solve on
millions of cells), :meth:`ReweightedSystem.refresh` copies the new values into the same
structures through permutations computed once.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .crossproducts import BlockedCrossproducts
from .reduced import ReducedSystem

__all__ = ["ReweightedSystem"]


class ReweightedSystem(ReducedSystem):
    """A :class:`~mixedmodels.core.reduced.ReducedSystem` whose values follow its
    crossproducts' after each reweight: call :meth:`refresh`, then ``set_theta``."""

    def __init__(self, cp: BlockedCrossproducts):
        super().__init__(cp)
        # per block: the transpose's value order as positions in the block's values
        self._perm: dict = {}
        for key, m in cp.off.items():
            tagged = sp.csr_matrix((np.arange(1, m.nnz + 1, dtype=float), m.indices, m.indptr),
                                   shape=m.shape)
            t = tagged.T.tocsr()
            self._perm[key] = (t.data.astype(np.int64) - 1, t.indptr)

    def refresh(self) -> "ReweightedSystem":
        """Take the crossproducts' current values (the sparsity patterns are unchanged)."""
        cp = self.cp
        for key, m in cp.off.items():
            perm, t_indptr = self._perm[key]
            for split, data, indptr in ((self.off[key], m.data, m.indptr),
                                        (self.off_t[key], m.data[perm], t_indptr)):
                for chunk, a, b in zip(split.chunks, split.bounds[:-1], split.bounds[1:]):
                    chunk.data[:] = data[indptr[a]:indptr[b]]
            if key[0] in self._sq and key[1] == 0:
                self._sq[key[0]].data[:] = m.data ** 2
        return self
