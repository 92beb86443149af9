"""Bundled datasets that mixed-model users know (copied from lme4 and Hox's gpa data).

Categorical columns come back as pandas categoricals with R's level order: integer-like labels
in numeric order (cbpp's herd 1, 2, ..., 15, as lme4's data and R's ``factor`` of an integer
column), other labels sorted as strings, except where R's dataset fixes another order (cake's
``temperature``, ordered).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

# name -> (file, categorical columns, {column: explicit level order}, ordered columns)
_CATALOGUE: dict[str, tuple[str, tuple[str, ...], dict[str, list[str]], tuple[str, ...]]] = {
    "gpa": ("gpa.csv", ("student", "occas", "job", "sex", "admitted"), {}, ()),
    "sleepstudy": ("sleepstudy.csv", ("Subject",), {}, ()),
    "Penicillin": ("Penicillin.csv", ("plate", "sample"), {}, ()),
    "Pastes": ("Pastes.csv", ("batch", "cask", "sample"), {}, ()),
    "Dyestuff": ("Dyestuff.csv", ("Batch",), {}, ()),
    "Dyestuff2": ("Dyestuff2.csv", ("Batch",), {}, ()),
    "InstEval": ("InstEval.csv", ("s", "d", "studage", "lectage", "service", "dept"), {}, ()),
    "cbpp": ("cbpp.csv", ("herd", "period"), {"period": ["1", "2", "3", "4"]}, ()),
    "grouseticks": ("grouseticks.csv", ("INDEX", "BROOD", "YEAR", "LOCATION"), {}, ()),
    "VerbAgg": (
        "VerbAgg.csv",
        ("Gender", "item", "resp", "id", "btype", "situ", "mode", "r2"),
        {},
        (),
    ),
    # ordinal's wine: rating is ordered 1 < ... < 5; temp (cold, warm), contact (no, yes)
    "wine": ("wine.csv", ("rating", "temp", "contact", "bottle", "judge"), {}, ("rating",)),
    "Salamanders": (
        "Salamanders.csv",
        ("site", "mined", "spp"),
        {"mined": ["yes", "no"], "spp": ["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"]},
        (),
    ),
    "cake": (
        "cake.csv",
        ("replicate", "recipe", "temperature"),
        {"temperature": ["175", "185", "195", "205", "215", "225"]},
        ("temperature",),
    ),
}


def r_level_order(labels) -> list[str]:
    """Level labels in R's order for a factor made from the values: numeric order when every label
    is an integer (R's ``factor`` of an integer column: 1, 2, ..., 10), else sorted as strings."""
    labels = sorted({str(v) for v in labels})
    if labels and all(s.lstrip("-").isdigit() for s in labels):
        return sorted(labels, key=int)
    return labels


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_CATALOGUE, key=str.lower)


def load_dataset(name: str) -> pd.DataFrame:
    """Load a bundled dataset with its categorical columns as pandas categoricals.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets` (case-insensitive).

    Returns
    -------
    pandas.DataFrame
    """
    key = {k.lower(): k for k in _CATALOGUE}.get(name.lower())
    if key is None:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())}")
    filename, categorical, orders, ordered = _CATALOGUE[key]
    path = resources.files(__name__).joinpath(filename)
    with path.open("r") as fh:
        frame = pd.read_csv(fh, dtype={c: str for c in categorical})
    for col in categorical:
        values = frame[col]
        levels = orders.get(col) or r_level_order(values.dropna().unique())
        frame[col] = pd.Categorical(values, categories=levels, ordered=col in ordered)
    return frame
