"""The :class:`Imputations` object: m completed copies of one data set, with what was imputed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Imputations"]


@dataclass
class Imputations:
    """m imputed (completed) data sets of one data set.

    Attributes
    ----------
    datasets : list of pandas.DataFrame
        The completed data sets, all with the same rows and columns.
    data : pandas.DataFrame or None
        The incomplete data they complete (rows with a missing grouping factor removed).
    mask : pandas.DataFrame or None
        True where a value was imputed.
    method : str
        ``"pan"``, ``"fcs"``, ``"forest"`` or ``"external"`` (made elsewhere, e.g. in R).
    diagnostics : pandas.DataFrame or None
        Convergence diagnostics: for ``pan``/``fcs`` the potential scale reduction R̂ per
        parameter (as mitml's ``summary``), for ``forest`` the out-of-bag error per variable.
    info : dict
        Settings and decisions (seed, iterations, rows dropped, formula).

    Examples
    --------
    >>> import pandas as pd, mixedmodels as mm
    >>> long = pd.DataFrame({".imp": [1, 1, 2, 2], "g": [1, 2, 1, 2], "y": [1.0, 2.0, 1.5, 2.0]})
    >>> len(mm.Imputations.from_long(long))
    2
    """

    datasets: list[pd.DataFrame]
    data: pd.DataFrame | None = None
    mask: pd.DataFrame | None = None
    method: str = "external"
    diagnostics: pd.DataFrame | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.datasets, pd.DataFrame) or not isinstance(self.datasets, (list, tuple)):
            raise TypeError("Imputations needs a list of DataFrames (one per imputation); for one long "
                            "DataFrame with an imputation column use Imputations.from_long")
        self.datasets = list(self.datasets)
        if len(self.datasets) < 1:
            raise ValueError("Imputations needs at least one imputed data set")
        for i, d in enumerate(self.datasets):
            if not isinstance(d, pd.DataFrame):
                raise TypeError(f"imputation {i + 1} is a {type(d).__name__}, not a pandas DataFrame")
        rows = [len(d) for d in self.datasets]
        if len(set(rows)) > 1:
            raise ValueError(f"the imputed data sets have different numbers of rows ({rows}): imputations "
                             "of one data set must have the same rows")
        cols = [tuple(d.columns) for d in self.datasets]
        if len(set(cols)) > 1:
            raise ValueError("the imputed data sets have different columns: imputations of one data set "
                             "must have the same columns")

    @classmethod
    def from_long(cls, long: pd.DataFrame, imp: str = ".imp", **kwargs) -> "Imputations":
        """From one stacked DataFrame with an imputation-number column (mice's ``complete(x, "long")``,
        mitml's exported lists).

        Parameters
        ----------
        long : pandas.DataFrame
        imp : str, default ".imp"
            The column holding the imputation number; data sets are taken in its sorted order.
        """
        if imp not in long.columns:
            raise ValueError(f"column {imp!r} (the imputation number) is not in the data; its columns: "
                             f"{', '.join(map(str, long.columns))}")
        sets = [g.drop(columns=imp).reset_index(drop=True) for _, g in long.groupby(imp, sort=True)]
        return cls(sets, **kwargs)

    def __len__(self) -> int:
        return len(self.datasets)

    def __getitem__(self, i: int) -> pd.DataFrame:
        return self.datasets[i]

    def __iter__(self):
        return iter(self.datasets)

    @property
    def m(self) -> int:
        """The number of imputed data sets."""
        return len(self.datasets)

    def to_long(self) -> pd.DataFrame:
        """All data sets stacked, with an ``.imp`` column (1..m)."""
        return pd.concat([d.assign(**{".imp": i + 1}) for i, d in enumerate(self.datasets)],
                         ignore_index=True)

    def imputed_values(self, column: str) -> pd.DataFrame:
        """The values imputed for ``column``: one row per missing cell, one column per imputation."""
        if self.mask is None or column not in self.mask.columns:
            raise ValueError(f"no imputation record for column {column!r}")
        rows = np.flatnonzero(self.mask[column].to_numpy())
        return pd.DataFrame({f"imp{i + 1}": d[column].to_numpy()[rows] for i, d in enumerate(self.datasets)},
                            index=self.datasets[0].index[rows])

    def __repr__(self) -> str:
        n, p = self.datasets[0].shape
        cells = "" if self.mask is None else f", {int(self.mask.to_numpy().sum())} cells imputed"
        return f"<Imputations: m={self.m} data sets of {n} rows × {p} columns, method={self.method!r}{cells}>"
