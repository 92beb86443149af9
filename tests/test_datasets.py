"""Bundled datasets: shapes, categorical columns and R's level orders (shared/data/README.md)."""

from __future__ import annotations

import pandas as pd
import pytest

import mixedmodels as mm

ROWS = {"gpa": 1200, "sleepstudy": 180, "Penicillin": 144, "Pastes": 60, "Dyestuff": 30,
        "Dyestuff2": 30, "InstEval": 73421, "cbpp": 56, "grouseticks": 403, "VerbAgg": 7584, "cake": 270}


@pytest.mark.parametrize("name, rows", list(ROWS.items()))
def test_rows(name, rows):
    assert len(mm.load_dataset(name)) == rows


def test_categorical_columns_and_level_order():
    gpa = mm.load_dataset("gpa")
    for col in ("student", "occas", "job", "sex", "admitted"):
        assert isinstance(gpa[col].dtype, pd.CategoricalDtype)
    assert list(gpa["sex"].cat.categories) == ["female", "male"]
    assert gpa["student"].nunique() == 200
    cake = mm.load_dataset("cake")
    assert cake["temperature"].cat.ordered
    assert list(cake["temperature"].cat.categories) == ["175", "185", "195", "205", "215", "225"]
    assert list(mm.load_dataset("cbpp")["period"].cat.categories) == ["1", "2", "3", "4"]
    inst = mm.load_dataset("InstEval")
    assert inst["s"].nunique() == 2972 and inst["d"].nunique() == 1128 and inst["dept"].nunique() == 14
    assert list(inst["service"].cat.categories) == ["0", "1"]


def test_unknown_name_lists_the_datasets():
    with pytest.raises(ValueError, match="available: .*sleepstudy"):
        mm.load_dataset("sleepstudyy")
    assert mm.load_dataset("SLEEPSTUDY").shape == (180, 3)
