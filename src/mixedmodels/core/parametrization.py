"""θ ↔ Λ: the relative covariance factor of each random-effects term, in one place.

Each term's factor T is ``l × l`` lower triangular; θ holds each term's parameters in turn.
For lme4's structures (a full or a diagonal T) those are T's free entries column by column, as
lme4's ``theta``; a structured term (``cs``, ``ar1``, ``ou``, see
:mod:`mixedmodels.core.structures`) maps its few parameters to T nonlinearly. This module owns
the layout, bounds, start values and names of θ, the maps between θ and the sd/cor scale, and
``dT/dθ``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from .structures import CovStructure, psd_lower_factor, standard_structure, theta_layout

__all__ = ["theta_layout", "ThetaParametrization", "psd_lower_factor"]


@dataclass(frozen=True)
class ThetaParametrization:
    """The θ layout of a list of terms, given by their column counts and correlation flags, and
    per term an optional :class:`~mixedmodels.core.structures.CovStructure` (None: lme4's)."""

    ncols: tuple[int, ...]
    correlated: tuple[bool, ...]
    structures: tuple[CovStructure | None, ...] = ()

    @classmethod
    def of(cls, terms: Sequence) -> "ThetaParametrization":
        """From objects with ``ncols``, ``correlated`` and optionally ``structure`` (term
        matrices or design terms)."""
        structures = tuple(getattr(t, "structure", None) for t in terms)
        # lme4's structures only: the same object as one built from the flags alone
        return cls(tuple(int(t.ncols) for t in terms), tuple(bool(t.correlated) for t in terms),
                   structures if any(s is not None for s in structures) else ())

    # computed once: split() runs at every objective evaluation
    @cached_property
    def terms(self) -> list[CovStructure]:
        """Each term's structure (lme4's full or diagonal one where none was given)."""
        given = self.structures or (None,) * len(self.ncols)
        return [s if s is not None else standard_structure(l, c)
                for s, l, c in zip(given, self.ncols, self.correlated)]

    @cached_property
    def layouts(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per term, the (row, column) in T of each θ entry; for a structured term, a diagonal
        position marks an sd-type entry and an off-diagonal one the others."""
        return [s.layout for s in self.terms]

    @cached_property
    def sizes(self) -> list[int]:
        return [len(rows) for rows, _ in self.layouts]

    @cached_property
    def n_theta(self) -> int:
        return sum(self.sizes)

    @cached_property
    def is_linear(self) -> bool:
        """Every T is linear in θ (lme4's structures only)."""
        return all(s.linear for s in self.terms)

    @cached_property
    def _offsets(self) -> list[int]:
        return [int(v) for v in np.cumsum([0] + self.sizes)]

    def term_theta(self, theta: np.ndarray, i: int) -> np.ndarray:
        """Term i's slice of θ."""
        return theta[self._offsets[i]:self._offsets[i + 1]]

    def lower_bounds(self) -> np.ndarray:
        """0 for sd-type entries (T's diagonal for lme4's structures), -inf for the others."""
        if not self.ncols:
            return np.zeros(0)
        return np.concatenate([s.lower_bounds() for s in self.terms])

    def start(self) -> np.ndarray:
        """lme4's start (every T the identity); each structure's own start otherwise."""
        if not self.ncols:
            return np.zeros(0)
        return np.concatenate([s.start() for s in self.terms])

    def split(self, theta: np.ndarray) -> list[np.ndarray]:
        """θ to the list of per-term factors T."""
        out, pos = [], 0
        for l, (rows, cols), size, s in zip(self.ncols, self.layouts, self.sizes, self.terms):
            if s.linear:
                T = np.zeros((l, l))
                T[rows, cols] = theta[pos:pos + size]
            else:
                T = s.factor(theta[pos:pos + size])
            out.append(T)
            pos += size
        return out

    def jacobian(self, theta: np.ndarray) -> list[np.ndarray]:
        """``dT/dθ`` per term: an ``(n_theta_i, l_i, l_i)`` array whose entry k is the
        derivative of term i's T by the k-th entry of term i's slice of θ (T depends on no
        other term's θ). Constant for lme4's structures (a 1 at each θ entry's position)."""
        theta = np.asarray(theta, dtype=float)
        return [s.jacobian(self.term_theta(theta, i)) for i, s in enumerate(self.terms)]

    def names(self, term_names: Sequence[str], columns: Sequence[Sequence[str]]) -> list[str]:
        """lme4-style names: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``."""
        return [n for s, name, cols in zip(self.terms, term_names, columns) for n in s.theta_names(name, cols)]

    def sdcor_names(self, term_names: Sequence[str], columns: Sequence[Sequence[str]]) -> list[str]:
        """lme4's ``oldNames = FALSE`` names of the sd/cor parameters, in θ order (``sd_ar1|id``,
        ``rho_ar1|id``, ``rate_ou|id`` for structured terms)."""
        return [n for s, name, cols in zip(self.terms, term_names, columns) for n in s.param_names(name, cols)]

    def param_kinds(self) -> list[str]:
        """``"sd"``, ``"cor"`` or ``"rate"`` for each sd/cor parameter, in θ order."""
        return [k for s in self.terms for k in s.param_kinds()]

    def to_sdcor(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """θ and σ to the sd/cor values (in θ order), then σ."""
        theta = np.asarray(theta, dtype=float)
        parts = [s.to_params(self.term_theta(theta, i), sigma) for i, s in enumerate(self.terms)]
        return np.concatenate(parts + [np.array([sigma])])

    def from_sdcor(self, sv: np.ndarray) -> tuple[np.ndarray | None, float]:
        """(θ, σ) from sd/cor values then σ; θ is None when the correlations are not positive
        semi-definite (or out of a structure's range)."""
        sigma = sv[-1]
        theta: list[np.ndarray] = []
        pos = 0
        for s, size in zip(self.terms, self.sizes):
            part = s.from_params(sv[pos:pos + size], sigma)
            if part is None:
                return None, sigma
            theta.append(np.asarray(part, dtype=float))
            pos += size
        return (np.concatenate(theta) if theta else np.zeros(0)), sigma
