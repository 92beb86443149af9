"""Models without fixed effects, ``y ~ 0 + (1 | g)``, which lme4 fits (found by bench/fuzz_formulas.py,
which crashed on them in a zero-size triangular solve). R values: make_no_fixef_reference.R."""

from __future__ import annotations

import json

import pytest
from refs import REF

import mixedmodels as mm

NOFIX = json.loads((REF / "no_fixef_reference.json").read_text())


def test_lmm_without_fixed_effects_matches_lme4():
    m = mm.lmer("Reaction ~ 0 + (1 | Subject)", mm.load_dataset("sleepstudy"))
    ref = NOFIX["lmm"]
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-9)
    assert m.theta[0] == pytest.approx(ref["theta"], rel=1e-5)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-6)
    assert len(m.fixef) == 0 and m.coef_table().empty
    assert "Fixed effects" in str(m.summary())
    assert len(m.predict(mm.load_dataset("sleepstudy").head())) == 5


def test_glmm_without_fixed_effects_matches_lme4():
    g = mm.glmer("cbind(incidence, size - incidence) ~ 0 + (1 | herd)", mm.load_dataset("cbpp"),
                 family="binomial")
    ref = NOFIX["glmm"]
    assert g.loglik == pytest.approx(ref["loglik"], rel=1e-9)
    assert g.theta[0] == pytest.approx(ref["theta"], rel=1e-5)
    assert g.vcov.shape == (0, 0)
    assert "Fixed effects" in str(g.summary())
