"""Shared fixtures: the R reference values and the bundled datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mixedmodels as mm

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"


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


EXTRA_REFERENCE = Path(__file__).resolve().parent / "reference" / "extra_reference.json"


@pytest.fixture(scope="session")
def extra_ref() -> dict:
    """More R values (tests/reference/make_extra_reference.R, same R package versions)."""
    with open(EXTRA_REFERENCE) as fh:
        return json.load(fh)
