"""Threshold structures of cumulative-link models: τ = J α, with ordinal's parameters and names.

``"flexible"``: one free threshold per cut point (``"1|2"``, ``"2|3"``, ...). ``"equidistant"``:
the first threshold and a common spacing. ``"symmetric"``: thresholds symmetric about a
central one (an odd number of cut points) or about the two central ones (an even number), as
ordinal's ``makeThresholds``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["THRESHOLDS", "Thresholds", "make_thresholds"]

THRESHOLDS = ("flexible", "equidistant", "symmetric")


@dataclass(frozen=True)
class Thresholds:
    """The map from the threshold parameters α to the cut points τ = J α."""

    kind: str
    jacobian: np.ndarray          # (K − 1, n_alpha)
    names: list[str]              # of the parameters α
    cut_names: list[str]          # of the cut points τ: "1|2", ...

    @property
    def n_alpha(self) -> int:
        return self.jacobian.shape[1]

    def tau(self, alpha: np.ndarray) -> np.ndarray:
        return self.jacobian @ np.asarray(alpha, float)

    def alpha_from_tau(self, tau: np.ndarray) -> np.ndarray:
        """The α whose τ is closest (least squares) to the given cut points: start values."""
        return np.linalg.lstsq(self.jacobian, np.asarray(tau, float), rcond=None)[0]


def make_thresholds(levels: list[str], kind: str) -> Thresholds:
    """The threshold structure for a response with these (ordered) levels.

    Raises
    ------
    ValueError
        For an unknown ``kind``, or equidistant/symmetric thresholds with fewer than three
        response levels (there is nothing to constrain).
    """
    if not isinstance(kind, str) or kind.lower() not in THRESHOLDS:
        raise ValueError(f"unknown threshold {kind!r}; choose one of "
                         f"{', '.join(repr(k) for k in THRESHOLDS)}")
    kind = kind.lower()
    levels = [str(v) for v in levels]
    nt = len(levels) - 1
    cut_names = [f"{a}|{b}" for a, b in zip(levels[:-1], levels[1:])]
    if kind == "flexible":
        return Thresholds(kind, np.eye(nt), list(cut_names), cut_names)
    if nt < 2:
        raise ValueError(f"{kind} thresholds need a response with at least 3 levels (2 cut "
                         f"points to constrain); the response has {len(levels)} "
                         f"({', '.join(levels)}): use threshold='flexible'")
    if kind == "equidistant":
        J = np.column_stack([np.ones(nt), np.arange(nt, dtype=float)])
        return Thresholds(kind, J, ["threshold.1", "spacing"], cut_names)
    if nt % 2:
        # an odd number of cut points: the central one and spacings out from it
        half = (nt - 1) // 2
        J = np.zeros((nt, half + 1))
        J[:, 0] = 1.0
        for s in range(half):
            J[half - 1 - s, 1 + s] = -1.0
            J[half + 1 + s, 1 + s] = 1.0
        names = ["central"] + [f"spacing.{s + 1}" for s in range(half)]
        return Thresholds(kind, J, names, cut_names)
    # an even number: two central cut points, spacings out from each of them
    half = nt // 2
    J = np.zeros((nt, half + 1))
    J[:half, 0] = 1.0
    J[half:, 1] = 1.0
    for s in range(1, half):
        J[half - 1 - s, 1 + s] = -1.0
        J[half + s, 1 + s] = 1.0
    names = ["central.1", "central.2"] + [f"spacing.{s}" for s in range(1, half)]
    return Thresholds(kind, J, names, cut_names)
