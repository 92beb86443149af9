"""The NumPy model matrix of spec/fastdesign.py against formulaic's (the exact alternative it
replaces): the same values, column names, terms and specs, on the bundled datasets' formulas the
test suite fits, and a fall-back to formulaic for everything outside its vocabulary."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.spec import design as design_module
from mixedmodels.spec.design import build_design
from mixedmodels.spec.fastdesign import LazyModelSpec, fast_model_matrix

# (dataset, formula): the formulas of the reference tests on the bundled data, plus the
# vocabulary's corners
CASES = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject)"),
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)"),
    ("sleepstudy", "Reaction ~ 1 + (0 + Days | Subject)"),
    ("sleepstudy", "Reaction ~ 0 + Days + (1 | Subject)"),
    ("sleepstudy", "Reaction ~ Days + I(Days^2) + (1 | Subject)"),
    ("sleepstudy", "log(Reaction) ~ Days + (1 | Subject)"),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"),
    ("cbpp", "incidence ~ period + (1 | herd)"),  # glmer's cbpp model, its fixed part
    ("cbpp", "incidence ~ period + size + (1 | herd)"),
    ("cbpp", "incidence ~ size + period + (1 | herd)"),
    ("gpa", "gpa ~ occasion + (1 + occasion | student)"),
    ("gpa", "gpa ~ occasion + sex + (1 + occasion | student)"),
    ("gpa", "gpa ~ occasion + highgpa + sex + job + (1 + occasion | student)"),
    ("gpa", "gpa ~ occasion:highgpa + occasion + (1 | student)"),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)"),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    ("Dyestuff", "Yield ~ 1 + (1 | Batch)"),
    ("grouseticks", "TICKS ~ YEAR + (1 | BROOD)"),
    ("grouseticks", "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"),
    ("cake", "angle ~ recipe + temp + (1 | recipe:replicate)"),
]


def _synthetic() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 60
    return pd.DataFrame({
        "y": rng.normal(size=n), "x": rng.normal(size=n), "k": rng.integers(0, 5, n),
        "g": pd.Categorical(np.repeat([f"g{i}" for i in range(10)], 6)),
        # strings sort as text ("10" before "2"), and an unused category keeps its column
        "s": rng.choice(["u", "v", "10", "2"], n).astype(object),
        "f": pd.Categorical(rng.choice(["b", "a"], n), categories=["b", "a", "c"]),
        "o": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["lo", "mid", "hi"], ordered=True),
        "flag": rng.random(n) > 0.5,
    })


SYNTHETIC = [
    "y ~ x + k + (1 | g)", "y ~ s + x + (1 | g)", "y ~ f + (x | g)", "y ~ x:k + I(x^3) + (1 | g)",
    "y ~ 0 + x + (0 + x | g)", "y ~ x + 1 + (1 + k | g)",
    # outside the vocabulary: formulaic builds them
    "y ~ o + (1 | g)", "y ~ flag + (1 | g)", "y ~ x * k + (1 | g)", "y ~ 0 + s + (1 | g)",
    "y ~ x - 1 + (1 | g)", "y ~ log(k + 1) + (1 | g)", "y ~ x + x + (1 | g)", "y ~ f:x + (1 | g)",
]


def _both(formula: str, data: pd.DataFrame, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = build_design(formula, data)
        with monkeypatch.context() as m:
            m.setattr(design_module, "fast_model_matrix", lambda expr, frame: None)
            slow = build_design(formula, data)
    return fast, slow


def _assert_same(fast, slow):
    assert fast.fixef_names == slow.fixef_names
    assert fast.dropped_columns == slow.dropped_columns
    np.testing.assert_array_equal(fast.X, slow.X)
    np.testing.assert_array_equal(fast.y, slow.y)
    assert len(fast.terms) == len(slow.terms)
    for a, b in zip(fast.terms, slow.terms):
        assert (a.name, a.group, a.lhs, a.columns) == (b.name, b.group, b.lhs, b.columns)
        assert list(a.levels) == list(b.levels)
        np.testing.assert_array_equal(a.matrix.values, b.matrix.values)
        np.testing.assert_array_equal(a.matrix.codes, b.matrix.codes)
    # the lazily made spec is formulaic's: same columns on the data
    frame = slow.frame
    assert list(fast.fixed_spec.get_model_matrix(frame, na_action="ignore").columns) == \
        list(slow.fixed_spec.get_model_matrix(frame, na_action="ignore").columns)


@pytest.mark.parametrize("dataset, formula", CASES)
def test_fast_design_matches_formulaic_on_datasets(dataset, formula, monkeypatch):
    data = mm.load_dataset(dataset)
    fast, slow = _both(formula, data, monkeypatch)
    assert isinstance(fast.fixed_spec, LazyModelSpec)  # the fast path built it
    _assert_same(fast, slow)


@pytest.mark.parametrize("formula", SYNTHETIC)
def test_fast_design_matches_formulaic_synthetic(formula, monkeypatch):
    fast, slow = _both(formula, _synthetic(), monkeypatch)
    _assert_same(fast, slow)


def test_fast_path_is_taken_and_falls_back():
    frame = _synthetic()
    assert fast_model_matrix("x + k", frame) is not None
    assert fast_model_matrix("s + x", frame)[1] == ["Intercept", "s[T.2]", "s[T.u]", "s[T.v]", "x"]
    assert fast_model_matrix("f", frame)[1] == ["Intercept", "f[T.a]", "f[T.c]"]
    assert fast_model_matrix("x:k + x", frame)[1] == ["Intercept", "x", "x:k"]
    for expr in ("o", "flag", "x * k", "0 + s", "x - 1", "log(k + 1)", "x + x", "f:x", "`x`"):
        assert fast_model_matrix(expr, frame) is None, expr


def test_fast_design_with_missing_rows(monkeypatch):
    data = _synthetic()
    data.loc[[2, 7], "x"] = np.nan
    data["s"] = data["s"].astype(object)
    data.loc[11, "s"] = None
    fast, slow = _both("y ~ x + s + (1 | g)", data, monkeypatch)
    assert fast.n_dropped == slow.n_dropped == 3
    _assert_same(fast, slow)


def test_lazy_spec_pickles_as_formulaic_spec():
    data = mm.load_dataset("sleepstudy")
    design = build_design("Reaction ~ Days + (Days | Subject)", data)
    assert isinstance(design.fixed_spec, LazyModelSpec)
    back = pickle.loads(pickle.dumps(design.fixed_spec))
    assert type(back).__name__ == "ModelSpec"
    assert list(back.get_model_matrix(data).columns) == ["Intercept", "Days"]


@pytest.mark.parametrize("expr", ["size - incidence", "size + incidence", "size * incidence",
                                  "incidence / size", "size - 1", "log(size)"])
def test_numeric_response_expressions_match_formulaic(expr):
    import formulaic

    from mixedmodels.spec.response import eval_numeric

    data = mm.load_dataset("cbpp")
    expected = np.asarray(formulaic.model_matrix(f"I({expr}) ~ 1", data).lhs, dtype=float).ravel()
    np.testing.assert_array_equal(eval_numeric(expr, data, "response"), expected)
