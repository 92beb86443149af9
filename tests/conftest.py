"""Shared fixtures: the R reference values and the bundled datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

# copies of ../shared/reference (with the R scripts that made them): a clone alone passes
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"


@pytest.fixture(scope="session")
def lme4_ref() -> dict:
    with open(REFERENCE_DIR / "lme4_reference.json") as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def more_ref() -> dict:
    with open(REFERENCE_DIR / "more_reference.json") as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def gpa():
    return mm.load_dataset("gpa")


@pytest.fixture(scope="session")
def sleepstudy():
    return mm.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def sleep():
    """The sleepstudy LMM with correlated random slopes (REML), fit once per test module."""
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))


EXTRA_REFERENCE = Path(__file__).resolve().parent / "reference" / "extra_reference.json"


@pytest.fixture(scope="session")
def extra_ref() -> dict:
    """More R values (tests/reference/make_extra_reference.R, same R package versions)."""
    with open(EXTRA_REFERENCE) as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def year_data() -> pd.DataFrame:
    """Simulated panel with a calendar-year trend (2004-2015) and income on a large scale: the
    chapter's scaling problem, for the scaling check and the standardized fit."""
    rng = np.random.default_rng(1)
    G, per = 30, 12
    g = np.repeat(np.arange(G), per)
    year = np.tile(np.arange(2004, 2016), G).astype(float)
    income = rng.normal(50_000, 15_000, G * per)
    b0 = rng.normal(0, 2, G)
    b1 = rng.normal(0, 0.3, G)
    y = (5 + 0.4 * (year - 2010) + 5e-5 * income + b0[g] + b1[g] * (year - 2010)
         + rng.normal(0, 1, G * per))
    return pd.DataFrame({"y": y, "year": year, "income": income, "g": g.astype(str)})
