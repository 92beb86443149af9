"""θ ↔ Λ: the relative covariance factor of each random-effects term, in one place.

Each term's factor T is ``l × l`` lower triangular (diagonal for uncorrelated terms); θ holds
its free entries column by column, as lme4's ``theta``. This module owns the layout, bounds,
start values and names of θ, and the maps between θ and the sd/cor scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

__all__ = ["theta_layout", "ThetaParametrization", "psd_lower_factor"]


def theta_layout(ncols: int, correlated: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices in T of each θ entry (lower triangle, column by column)."""
    if not correlated:
        idx = np.arange(ncols)
        return idx, idx
    upper_rows, upper_cols = np.triu_indices(ncols)
    return upper_cols, upper_rows


def psd_lower_factor(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor that tolerates semi-definite (zero-variance) matrices."""
    l = cov.shape[0]
    T = np.zeros_like(cov)
    for j in range(l):
        d = cov[j, j] - T[j, :j] @ T[j, :j]
        T[j, j] = np.sqrt(d) if d > 0 else 0.0
        for i in range(j + 1, l):
            s = cov[i, j] - T[i, :j] @ T[j, :j]
            T[i, j] = s / T[j, j] if T[j, j] > 0 else 0.0
    return T


@dataclass(frozen=True)
class ThetaParametrization:
    """The θ layout of a list of terms, given by their column counts and correlation flags."""

    ncols: tuple[int, ...]
    correlated: tuple[bool, ...]

    @classmethod
    def of(cls, terms: Sequence) -> "ThetaParametrization":
        """From objects with ``ncols`` and ``correlated`` (term matrices or design terms)."""
        return cls(tuple(int(t.ncols) for t in terms), tuple(bool(t.correlated) for t in terms))

    # computed once: split() runs at every objective evaluation
    @cached_property
    def layouts(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [theta_layout(l, c) for l, c in zip(self.ncols, self.correlated)]

    @cached_property
    def sizes(self) -> list[int]:
        return [len(rows) for rows, _ in self.layouts]

    @cached_property
    def n_theta(self) -> int:
        return sum(self.sizes)

    def lower_bounds(self) -> np.ndarray:
        """0 for diagonal entries of T, -inf for the others."""
        if not self.ncols:
            return np.zeros(0)
        return np.concatenate([np.where(r == c, 0.0, -np.inf) for r, c in self.layouts])

    def start(self) -> np.ndarray:
        """lme4's start: every T the identity."""
        if not self.ncols:
            return np.zeros(0)
        return np.concatenate([np.where(r == c, 1.0, 0.0) for r, c in self.layouts])

    def split(self, theta: np.ndarray) -> list[np.ndarray]:
        """θ to the list of per-term factors T."""
        out, pos = [], 0
        for l, (rows, cols), size in zip(self.ncols, self.layouts, self.sizes):
            T = np.zeros((l, l))
            T[rows, cols] = theta[pos:pos + size]
            out.append(T)
            pos += size
        return out

    def names(self, term_names: Sequence[str], columns: Sequence[Sequence[str]]) -> list[str]:
        """lme4-style names: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``."""
        out = []
        for name, cols, (rows, cs) in zip(term_names, columns, self.layouts):
            for r, c in zip(rows, cs):
                out.append(f"{name}.{cols[r]}" if r == c else f"{name}.{cols[r]}.{cols[c]}")
        return out

    def sdcor_names(self, term_names: Sequence[str], columns: Sequence[Sequence[str]]) -> list[str]:
        """lme4's ``oldNames = FALSE`` names of the sd/cor parameters, in θ order."""
        out = []
        for name, cols, (rows, cs) in zip(term_names, columns, self.layouts):
            for a, b in zip(rows, cs):
                out.append(f"sd_{cols[a]}|{name}" if a == b else f"cor_{cols[a]}.{cols[b]}|{name}")
        return out

    def to_sdcor(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """θ and σ to the sd/cor values (in θ order), then σ."""
        out = []
        for T, (rows, cols) in zip(self.split(theta), self.layouts):
            cov = sigma ** 2 * (T @ T.T)
            sd = np.sqrt(np.diag(cov))
            for a, b in zip(rows, cols):
                if a == b:
                    out.append(sd[a])
                else:
                    den = sd[a] * sd[b]
                    out.append(cov[a, b] / den if den > 0 else 0.0)
        return np.array(out + [sigma])

    def from_sdcor(self, sv: np.ndarray) -> tuple[np.ndarray | None, float]:
        """(θ, σ) from sd/cor values then σ; θ is None when the correlations are not positive
        semi-definite."""
        sigma = sv[-1]
        theta: list[float] = []
        pos = 0
        for l, (rows, cols), size in zip(self.ncols, self.layouts, self.sizes):
            vals = sv[pos:pos + size]
            pos += size
            if l == 1:
                theta.append(vals[0] / sigma)
                continue
            sd = np.zeros(l)
            corr = np.eye(l)
            for v, a, b in zip(vals, rows, cols):
                if a == b:
                    sd[a] = v
                else:
                    corr[a, b] = corr[b, a] = v
            # a 2 x 2 correlation is valid when |r| <= 1: no eigen-decomposition per evaluation
            invalid = abs(corr[0, 1]) > 1.0 + 1e-10 if l == 2 else np.linalg.eigvalsh(corr)[0] < -1e-10
            if invalid:
                return None, sigma
            T = psd_lower_factor(corr * np.outer(sd, sd)) / sigma
            theta.extend(T[rows, cols])
        return np.array(theta), sigma
