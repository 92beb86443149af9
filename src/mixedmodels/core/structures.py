"""Covariance structures of random-effects terms: each term's θ → its relative factor T.

Every term's covariance is ``σ² T Tᵀ`` with T ``l × l`` lower triangular (``σ`` the residual
scale, 1 for families without one); the blocked factor only ever sees T. A structure says how
its slice of θ makes T, the bounds and start of that slice, its Jacobian ``dT/dθ``, and the
parameters shown to the user (sd, ρ, rate) with their inverse map.

- :class:`Unstructured` (``us``, lme4's ``(x | g)``) and :class:`Diagonal` (``diag``): θ holds
  T's free entries column by column, exactly lme4's ``theta``; T is linear in θ.
- :class:`CompoundSymmetry` (glmmTMB's ``cs``): θ = (s₁ … s_l, φ), a relative sd per column
  and one common correlation ``ρ = −a + (1 + a)·logistic(φ)``, ``a = 1/(l − 1)``, which keeps
  ρ inside the positive-definite range (−1/(l−1), 1).
- :class:`AR1` (``ar1``): θ = (s, φ), one relative sd and ``ρ = φ/√(1 + φ²)`` (glmmTMB's
  map); ``cor(i, j) = ρ^|i−j|`` over the l equally spaced levels.
- :class:`OU` (``ou``, an AR(1) in continuous time): θ = (s, κ), ``cor(i, j) =
  exp(−e^κ |tᵢ − tⱼ|)`` over the sorted distinct times tᵢ.

The relative sds are bounded below by 0 (as lme4's diagonal θ), so a variance can reach zero
and the usual singular-fit checks apply; the correlation-type parameters are unbounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, Sequence

import numpy as np

__all__ = ["CovStructure", "Unstructured", "Diagonal", "CompoundSymmetry", "AR1", "OU",
           "standard_structure", "psd_lower_factor", "theta_layout"]


@lru_cache(maxsize=64)
def theta_layout(ncols: int, correlated: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices in T of each θ entry (lower triangle, column by column).
    Read-only arrays, made once per shape (a fit asks for them a dozen times)."""
    if not correlated:
        idx = np.arange(ncols)
        idx.flags.writeable = False
        return idx, idx
    upper_rows, upper_cols = np.triu_indices(ncols)
    upper_rows.flags.writeable = False
    upper_cols.flags.writeable = False
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
class CovStructure:
    """The θ → T map of one term with ``ncols`` columns (subclasses fill it in).

    ``layout`` gives, per θ entry, a (row, column) position: on the diagonal for the sd-type
    entries (bounded below by 0), below it for the others. For the linear structures these are
    T's entries; for the others they only mark the kind of each entry.
    """

    ncols: int
    kind: ClassVar[str] = ""
    #: T is linear in θ (its entries are θ's): the Jacobian is constant
    linear: ClassVar[bool] = False

    @property
    def layout(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    @property
    def n_theta(self) -> int:
        return len(self.layout[0])

    def lower_bounds(self) -> np.ndarray:
        rows, cols = self.layout
        return np.where(rows == cols, 0.0, -np.inf)

    def start(self) -> np.ndarray:
        raise NotImplementedError

    def factor(self, theta: np.ndarray) -> np.ndarray:
        """The relative covariance factor T (``l × l`` lower triangular) at this term's θ."""
        raise NotImplementedError

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """``dT/dθ``: an ``(n_theta, l, l)`` array, entry k the derivative of T by θ_k."""
        raise NotImplementedError

    # -- the user's parameters --------------------------------------------------------------
    def param_kinds(self) -> list[str]:
        """``"sd"``, ``"cor"`` or ``"rate"`` for each displayed parameter (θ order)."""
        rows, cols = self.layout
        return ["sd" if r == c else "cor" for r, c in zip(rows, cols)]

    def param_names(self, name: str, columns: Sequence[str]) -> list[str]:
        """lme4-style (``oldNames = FALSE``) names of the displayed parameters, θ order."""
        raise NotImplementedError

    def theta_names(self, name: str, columns: Sequence[str]) -> list[str]:
        """Names of the θ entries themselves."""
        raise NotImplementedError

    def to_params(self, theta: np.ndarray, scale: float) -> np.ndarray:
        """θ to the displayed parameters (sds on the response scale, times ``scale`` = σ)."""
        raise NotImplementedError

    def from_params(self, values: np.ndarray, scale: float) -> np.ndarray | None:
        """The inverse of :meth:`to_params`; None where the values are out of range."""
        raise NotImplementedError

    def summary_rows(self, theta: np.ndarray, scale: float, lhs: str,
                     columns: Sequence[str]) -> list[tuple[str, str | None, float, float]]:
        """The rows that show a structured term in ``varcorr``, ``summary`` and ``tidy``:
        ``(var1, var2, vcov, sdcor)``; an sd-type parameter has ``var2`` None, the others name
        themselves (``"rho"``, ``"rate"``) with ``vcov`` NaN. A common sd is shown once, on a
        row named ``kind(lhs)``."""
        values = self.to_params(theta, scale)
        label = f"{self.kind}({lhs})"
        kinds = self.param_kinds()
        sds = [v for v, k in zip(values, kinds) if k == "sd"]
        names = list(columns) if len(sds) == len(columns) > 1 else [label]
        rows: list[tuple[str, str | None, float, float]] = [(n, None, v * v, v) for n, v in zip(names, sds)]
        rows += [(label, "rho" if k == "cor" else k, np.nan, v) for v, k in zip(values, kinds) if k != "sd"]
        return rows


# --- lme4's structures: θ is T's free entries -------------------------------------------------

@dataclass(frozen=True)
class Unstructured(CovStructure):
    """A full covariance (``us``, the default ``(x | g)``): lme4's θ layout."""

    kind: ClassVar[str] = "us"
    linear: ClassVar[bool] = True

    @property
    def layout(self) -> tuple[np.ndarray, np.ndarray]:
        return theta_layout(self.ncols, True)

    def start(self) -> np.ndarray:
        rows, cols = self.layout
        return np.where(rows == cols, 1.0, 0.0)

    def factor(self, theta: np.ndarray) -> np.ndarray:
        T = np.zeros((self.ncols, self.ncols))
        rows, cols = self.layout
        T[rows, cols] = theta
        return T

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        rows, cols = self.layout
        out = np.zeros((len(rows), self.ncols, self.ncols))
        out[np.arange(len(rows)), rows, cols] = 1.0
        return out

    def param_names(self, name: str, columns: Sequence[str]) -> list[str]:
        rows, cols = self.layout
        return [f"sd_{columns[a]}|{name}" if a == b else f"cor_{columns[a]}.{columns[b]}|{name}"
                for a, b in zip(rows, cols)]

    def theta_names(self, name: str, columns: Sequence[str]) -> list[str]:
        rows, cols = self.layout
        return [f"{name}.{columns[r]}" if r == c else f"{name}.{columns[r]}.{columns[c]}"
                for r, c in zip(rows, cols)]

    def to_params(self, theta: np.ndarray, scale: float) -> np.ndarray:
        T = self.factor(theta)
        cov = scale ** 2 * (T @ T.T)
        sd = np.sqrt(np.diag(cov))
        out = []
        for a, b in zip(*self.layout):
            if a == b:
                out.append(sd[a])
            else:
                den = sd[a] * sd[b]
                out.append(cov[a, b] / den if den > 0 else 0.0)
        return np.array(out)

    def from_params(self, values: np.ndarray, scale: float) -> np.ndarray | None:
        l = self.ncols
        if l == 1:
            return np.array([values[0] / scale])
        rows, cols = self.layout
        sd = np.zeros(l)
        corr = np.eye(l)
        for v, a, b in zip(values, rows, cols):
            if a == b:
                sd[a] = v
            else:
                corr[a, b] = corr[b, a] = v
        # a 2 x 2 correlation is valid when |r| <= 1: no eigen-decomposition per evaluation
        invalid = abs(corr[0, 1]) > 1.0 + 1e-10 if l == 2 else np.linalg.eigvalsh(corr)[0] < -1e-10
        if invalid:
            return None
        T = psd_lower_factor(corr * np.outer(sd, sd)) / scale
        return T[rows, cols]


@dataclass(frozen=True)
class Diagonal(Unstructured):
    """Independent columns (``diag``, and the pieces of afex's ``||``): T diagonal."""

    kind: ClassVar[str] = "diag"

    @property
    def layout(self) -> tuple[np.ndarray, np.ndarray]:
        return theta_layout(self.ncols, False)

    def from_params(self, values: np.ndarray, scale: float) -> np.ndarray | None:
        return np.asarray(values, dtype=float) / scale


def standard_structure(ncols: int, correlated: bool) -> Unstructured:
    """lme4's structure of a term: full (``correlated``) or diagonal."""
    return Unstructured(ncols) if correlated else Diagonal(ncols)


# --- glmmTMB's structured covariances -----------------------------------------------------------

def _cholesky_derivative(C: np.ndarray, dR: np.ndarray) -> np.ndarray:
    """d chol(R) for a change dR of R = C Cᵀ (C invertible): C Φ(C⁻¹ dR C⁻ᵀ), Φ the lower
    triangle with the diagonal halved."""
    inner = np.linalg.solve(C, np.linalg.solve(C, dR).T).T
    phi = np.tril(inner)
    phi[np.diag_indices_from(phi)] *= 0.5
    return C @ phi


def _logistic(x: float) -> float:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class CompoundSymmetry(CovStructure):
    """glmmTMB's ``cs``: a variance per column and one common correlation ρ."""

    kind: ClassVar[str] = "cs"

    @property
    def layout(self) -> tuple[np.ndarray, np.ndarray]:
        idx = np.arange(self.ncols)
        return np.append(idx, 1), np.append(idx, 0)

    @property
    def _a(self) -> float:
        return 1.0 / (self.ncols - 1)

    def rho(self, phi: float) -> float:
        return -self._a + (1.0 + self._a) * _logistic(phi)

    def _corr_factor(self, rho: float) -> np.ndarray:
        l = self.ncols
        return np.linalg.cholesky((1.0 - rho) * np.eye(l) + rho * np.ones((l, l)))

    def start(self) -> np.ndarray:
        return np.append(np.ones(self.ncols), -np.log(self.ncols - 1.0))  # ρ = 0

    def factor(self, theta: np.ndarray) -> np.ndarray:
        s = np.asarray(theta[:self.ncols], dtype=float)
        return s[:, None] * self._corr_factor(self.rho(theta[-1]))

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        l = self.ncols
        s = np.asarray(theta[:l], dtype=float)
        p = _logistic(theta[-1])
        rho = -self._a + (1.0 + self._a) * p
        C = self._corr_factor(rho)
        out = np.zeros((l + 1, l, l))
        for j in range(l):
            out[j, j, :] = C[j, :]
        d_rho = (1.0 + self._a) * p * (1.0 - p)
        out[l] = s[:, None] * _cholesky_derivative(C, np.ones((l, l)) - np.eye(l)) * d_rho
        return out

    def param_kinds(self) -> list[str]:
        return ["sd"] * self.ncols + ["cor"]

    def param_names(self, name: str, columns: Sequence[str]) -> list[str]:
        return [f"sd_{c}|{name}" for c in columns] + [f"rho_cs|{name}"]

    def theta_names(self, name: str, columns: Sequence[str]) -> list[str]:
        return [f"{name}.{c}" for c in columns] + [f"{name}.cs.phi"]

    def to_params(self, theta: np.ndarray, scale: float) -> np.ndarray:
        return np.append(scale * np.asarray(theta[:self.ncols], dtype=float), self.rho(theta[-1]))

    def from_params(self, values: np.ndarray, scale: float) -> np.ndarray | None:
        rho = float(values[-1])
        a = self._a
        if not -a < rho < 1.0:
            return None
        p = (rho + a) / (1.0 + a)
        return np.append(np.asarray(values[:-1], dtype=float) / scale, np.log(p / (1.0 - p)))


@dataclass(frozen=True)
class _SdAndOne(CovStructure):
    """A common sd and one more parameter (``ar1``'s ρ, ``ou``'s rate): θ = (s, u), T = s C(v)
    with v = ``value(u)`` and C the Cholesky factor of the correlation."""

    #: the second parameter's display name, and that of its θ entry
    second: ClassVar[str] = ""
    theta_second: ClassVar[str] = ""

    @property
    def layout(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([0, 1]), np.array([0, 0])

    def value(self, u: float) -> float:
        """The second parameter from its θ entry."""
        raise NotImplementedError

    def value_derivative(self, u: float) -> float:
        raise NotImplementedError

    def unconstrained(self, v: float) -> float | None:
        """The θ entry of a second parameter ``v``; None out of range."""
        raise NotImplementedError

    def _corr_factor(self, v: float) -> tuple[np.ndarray, np.ndarray]:
        """C(v) and dC/dv."""
        raise NotImplementedError

    def factor(self, theta: np.ndarray) -> np.ndarray:
        return theta[0] * self._corr_factor(self.value(theta[1]))[0]

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        C, dC = self._corr_factor(self.value(theta[1]))
        return np.stack([C, theta[0] * dC * self.value_derivative(theta[1])])

    def param_kinds(self) -> list[str]:
        return ["sd", "cor" if self.second == "rho" else self.second]

    def param_names(self, name: str, columns: Sequence[str]) -> list[str]:
        return [f"sd_{self.kind}|{name}", f"{self.second}_{self.kind}|{name}"]

    def theta_names(self, name: str, columns: Sequence[str]) -> list[str]:
        return [f"{name}.{self.kind}.sd", f"{name}.{self.kind}.{self.theta_second}"]

    def to_params(self, theta: np.ndarray, scale: float) -> np.ndarray:
        return np.array([scale * theta[0], self.value(theta[1])])

    def from_params(self, values: np.ndarray, scale: float) -> np.ndarray | None:
        u = self.unconstrained(float(values[1]))
        return None if u is None else np.array([values[0] / scale, u])


@dataclass(frozen=True)
class AR1(_SdAndOne):
    """``ar1``: one variance, ``cor(i, j) = ρ^|i−j|`` over equally spaced levels."""

    kind: ClassVar[str] = "ar1"
    second: ClassVar[str] = "rho"
    theta_second: ClassVar[str] = "phi"

    @staticmethod
    def rho(phi: float) -> float:
        return phi / np.sqrt(1.0 + phi * phi)

    def value(self, u: float) -> float:
        return self.rho(u)

    def value_derivative(self, u: float) -> float:
        return (1.0 + u * u) ** -1.5

    def unconstrained(self, v: float) -> float | None:
        return v / np.sqrt(1.0 - v * v) if -1.0 < v < 1.0 else None

    def _corr_factor(self, v: float) -> tuple[np.ndarray, np.ndarray]:
        """The closed-form Cholesky factor of the AR(1) correlation and its derivative by ρ:
        C[i, 0] = ρ^i, C[i, j] = ρ^(i−j) √(1 − ρ²) for 1 ≤ j ≤ i."""
        rho = v
        l = self.ncols
        lag = np.subtract.outer(np.arange(l), np.arange(l))
        lower = lag >= 0
        k = np.where(lower, lag, 0)
        power = np.where(lower, rho ** k, 0.0)
        d_power = np.where(lower & (k > 0), k * rho ** np.maximum(k - 1, 0), 0.0)
        c = np.sqrt(max(1.0 - rho * rho, 0.0))
        scale = np.full(l, c)
        scale[0] = 1.0
        d_scale = np.full(l, -rho / c if c > 0 else 0.0)
        d_scale[0] = 0.0
        return power * scale[None, :], d_power * scale[None, :] + power * d_scale[None, :]

    def start(self) -> np.ndarray:
        return np.array([1.0, 0.0])


@dataclass(frozen=True)
class OU(_SdAndOne):
    """``ou``: one variance, ``cor(i, j) = exp(−rate·|tᵢ − tⱼ|)`` over sorted distinct times."""

    times: tuple[float, ...] = ()
    kind: ClassVar[str] = "ou"
    second: ClassVar[str] = "rate"
    theta_second: ClassVar[str] = "log_rate"

    def value(self, u: float) -> float:
        return float(np.exp(u))

    def value_derivative(self, u: float) -> float:
        return float(np.exp(u))

    def unconstrained(self, v: float) -> float | None:
        return float(np.log(v)) if v > 0 else None

    def _corr_factor(self, v: float) -> tuple[np.ndarray, np.ndarray]:
        """The closed-form Cholesky factor (the process is Markov) and its derivative by the
        rate: C[i, j] = c_j exp(−rate (tᵢ − tⱼ)), c₀ = 1, c_j = √(1 − exp(−2 rate (tⱼ − tⱼ₋₁)))."""
        rate = v
        t = np.asarray(self.times, dtype=float)
        gap = np.subtract.outer(t, t)
        lower = gap >= 0
        decay = np.where(lower, np.exp(-rate * np.where(lower, gap, 0.0)), 0.0)
        step = np.diff(t)
        e2 = np.exp(-2.0 * rate * step)
        c = np.append(1.0, np.sqrt(1.0 - e2))
        dc = np.append(0.0, np.where(c[1:] > 0, step * e2 / np.where(c[1:] > 0, c[1:], 1.0), 0.0))
        C = decay * c[None, :]
        dC = decay * dc[None, :] - np.where(lower, gap, 0.0) * C
        return C, dC

    def start(self) -> np.ndarray:
        # a correlation of exp(-1) at the median spacing: the start is unit-free
        return np.array([1.0, -np.log(float(np.median(np.diff(self.times))))])
