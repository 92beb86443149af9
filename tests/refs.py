"""The R reference values the tests compare with (``tests/reference/``, with the R scripts that
made them), loaded once, and a helper to read a named R vector as an array."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REF = Path(__file__).resolve().parent / "reference"
LME4 = json.loads((REF / "lme4_reference.json").read_text())
MORE = json.loads((REF / "more_reference.json").read_text())
# glmmTMB's exact Laplace fits (make_glmmtmb_reference.R) where lme4 stops short of the optimum: its
# PIRLS tolerance leaves its logLik up to ~1e-3 low on small binomial fits (cbpp: 2.8e-4)
TMB = json.loads((REF / "glmmtmb_reference.json").read_text())


def values(x) -> np.ndarray:
    """An R vector from the JSON (a dict of named values, a list or a scalar) as a 1-d array."""
    return np.atleast_1d(np.asarray(list(x.values()) if isinstance(x, dict) else x, dtype=float))
