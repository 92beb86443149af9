"""Data checks and the design: every problem named, nothing dropped silently."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.spec.design import build_design, r_column_name


def test_r_column_names():
    assert r_column_name("Intercept") == "(Intercept)"
    assert r_column_name("sex[T.male]") == "sexmale"
    assert r_column_name("recipe[T.B]:C(temperature, contr.poly)[.L]") == "recipeB:temperature.L"
    assert r_column_name("I(x ** 2)") == "I(x^2)"


def test_unknown_column_names_close_matches(gpa):
    with pytest.raises(mm.DataError, match=r"column 'ocasion' .* did you mean 'occasion'"):
        mm.lmer("gpa ~ ocasion + (1 | student)", gpa)
    with pytest.raises(mm.DataError, match="'studnt'"):
        mm.lmer("gpa ~ occasion + (1 | studnt)", gpa)


def test_non_numeric_response(gpa):
    with pytest.raises(mm.DataError, match=r"response 'sex' is not numeric \(it is categorical\)"):
        mm.lmer("sex ~ occasion + (1 | student)", gpa)


def test_grouping_factor_with_one_level(gpa):
    data = gpa.assign(one="a")
    with pytest.raises(mm.DataError, match="grouping factor 'one' has only 1 level"):
        mm.lmer("gpa ~ occasion + (1 | one)", data)


def test_as_many_levels_as_observations(sleepstudy):
    data = sleepstudy.assign(row=np.arange(len(sleepstudy)))
    with pytest.raises(mm.DataError, match="confounded with the residual"):
        mm.lmer("Reaction ~ Days + (1 | row)", data)


def test_missing_values_counted_warned_and_reported(sleepstudy):
    data = sleepstudy.copy()
    data.loc[[3, 10, 50], "Reaction"] = np.nan
    data.loc[[7], "Days"] = np.nan
    with pytest.warns(mm.MissingDataWarning, match=r"4 of 180 rows dropped .*Days: 1, Reaction: 3"):
        m = mm.lmer("Reaction ~ Days + (Days | Subject)", data)
    assert m.nobs == 176
    assert "176 observations used, 4 dropped for missing values" in str(m.summary())
    complete = mm.lmer("Reaction ~ Days + (Days | Subject)", data.dropna())
    assert m.loglik == pytest.approx(complete.loglik, rel=1e-12)
    with pytest.raises(mm.DataError, match="na_action='raise'"):
        mm.lmer("Reaction ~ Days + (Days | Subject)", data, na_action="raise")


def test_missing_values_in_unused_columns_are_ignored(sleepstudy):
    data = sleepstudy.assign(other=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = mm.lmer("Reaction ~ Days + (1 | Subject)", data)
    assert m.nobs == 180


def test_empty_after_drop(sleepstudy):
    data = sleepstudy.assign(Reaction=np.nan)
    with pytest.warns(mm.MissingDataWarning), pytest.raises(mm.DataError, match="no rows left"):
        mm.lmer("Reaction ~ Days + (1 | Subject)", data)


def test_aliased_columns_dropped_with_a_warning(sleepstudy):
    data = sleepstudy.assign(Days2=2 * sleepstudy["Days"] + 1)
    with pytest.warns(mm.RankDeficiencyWarning, match=r"dropping 1 column\(s\) \(Days2\)"):
        m = mm.lmer("Reaction ~ Days + Days2 + (1 | Subject)", data)
    assert list(m.fixef.index) == ["(Intercept)", "Days"]
    ref = mm.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-10)


def test_ordered_factor_gets_polynomial_contrasts():
    cake = mm.load_dataset("cake")
    d = build_design("angle ~ recipe * temperature + (1 | recipe:replicate)", cake)
    assert d.fixef_names[:8] == ["(Intercept)", "recipeB", "recipeC", "temperature.L", "temperature.Q",
                                 "temperature.C", "temperature^4", "temperature^5"]
    # R: contr.poly(6)[, 1]
    linear = d.X[:6, 3]
    np.testing.assert_allclose(linear, np.array([-5, -3, -1, 1, 3, 5]) / np.sqrt(70), rtol=1e-12)
    assert d.terms[0].nlevels == 45


def test_stateful_transforms_and_powers(sleepstudy):
    d = build_design("Reaction ~ scale(Days) + I(Days^2) + (1 | Subject)", sleepstudy)
    assert d.fixef_names == ["(Intercept)", "scale(Days)", "I(Days^2)"]
    days = sleepstudy["Days"].to_numpy(float)
    np.testing.assert_allclose(d.X[:, 1], (days - days.mean()) / days.std(ddof=1))
    np.testing.assert_allclose(d.X[:, 2], days ** 2)
    # the transform keeps its training mean and sd for new data
    new = pd.DataFrame({"Days": [0.0, 9.0], "Reaction": [0.0, 0.0], "Subject": ["308", "308"]})
    again = d.fixed_spec.get_model_matrix(new)
    np.testing.assert_allclose(np.asarray(again)[:, 1], (new["Days"] - days.mean()) / days.std(ddof=1))


def test_terms_sorted_by_levels_and_uniquely_named(sleepstudy):
    d = build_design("Reaction ~ Days + (Days || Subject)", sleepstudy)
    assert [t.name for t in d.terms] == ["Subject", "Subject.1"]
    assert [t.columns for t in d.terms] == [["(Intercept)"], ["Days"]]
    pen = build_design("diameter ~ 1 + (1 | sample) + (1 | plate)", mm.load_dataset("Penicillin"))
    assert [t.name for t in pen.terms] == ["plate", "sample"]  # 24 levels before 6


def test_numeric_grouping_column_and_interaction_levels():
    data = pd.DataFrame({"y": np.arange(12.0) % 5, "g": np.repeat([3, 1, 2], 4),
                         "h": np.tile(["a", "b"], 6)})
    d = build_design("y ~ 1 + (1 | g:h)", data)
    assert list(d.terms[0].levels) == ["1:a", "1:b", "2:a", "2:b", "3:a", "3:b"]


def test_double_bar_terms_are_lme4s():
    """lme4's expandDoubleVerts: (1 | g) when there is an intercept, then (0 + t | g) per term label."""
    from mixedmodels.spec.design import double_bar_terms
    assert double_bar_terms("Days") == ["1", "0 + Days"]
    assert double_bar_terms("0 + Days") == double_bar_terms("Days - 1") == ["0 + Days"]
    assert double_bar_terms("1") == ["1"]
    assert double_bar_terms("x * f") == ["1", "0 + x", "0 + f", "0 + x:f"]
    assert double_bar_terms("I(x^2) + poly(x, 2)") == ["1", "0 + I(x^2)", "0 + poly(x, 2)"]
    assert double_bar_terms("`a.b`") == ["1", "0 + `a.b`"]


def _factor_data() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    g = np.repeat([f"g{i}" for i in range(8)], 9)
    f = np.tile(["a", "b", "c"], 24)
    x = rng.normal(size=72)
    return pd.DataFrame({"y": rng.normal(size=72) + x, "x": x, "f": f, "g": g})


def test_double_bar_factor_keeps_a_full_covariance():
    data = _factor_data()
    d = build_design("y ~ f + (f || g)", data)
    assert [(t.name, t.lhs, t.columns, t.matrix.correlated) for t in d.terms] == [
        ("g", "1", ["(Intercept)"], True), ("g.1", "0 + f", ["fa", "fb", "fc"], True)]
    assert "expand_doublebar" not in d.extra
    # without an intercept it is the correlated term itself
    a, b = build_design("y ~ f + (0 + f || g)", data), build_design("y ~ f + (0 + f | g)", data)
    assert [t.columns for t in a.terms] == [t.columns for t in b.terms] == [["fa", "fb", "fc"]]
    np.testing.assert_array_equal(a.terms[0].matrix.values, b.terms[0].matrix.values)
    assert a.terms[0].matrix.correlated
    # numeric and factor terms mixed: one term per term label
    mixed = build_design("y ~ x + (x + f || g)", data)
    assert [t.columns for t in mixed.terms] == [["(Intercept)"], ["x"], ["fa", "fb", "fc"]]
    assert [t.name for t in mixed.terms] == ["g", "g.1", "g.2"]


def test_double_bar_afex_expansion_is_opt_in():
    data = _factor_data()
    d = build_design("y ~ f + (f || g)", data, expand_doublebar="afex")
    assert [t.columns for t in d.terms] == [["(Intercept)"], ["fb"], ["fc"]]
    assert not any(t.matrix.correlated for t in d.terms)
    assert d.extra["expand_doublebar"] == "afex"
    # a single-bar term is not split by either
    one = build_design("y ~ f + (f | g)", data, expand_doublebar="afex")
    assert [t.columns for t in one.terms] == [["(Intercept)", "fb", "fc"]]
    with pytest.raises(ValueError, match="expand_doublebar"):
        build_design("y ~ f + (f || g)", data, expand_doublebar="split")


def test_double_bar_factor_predicts_new_data():
    data = _factor_data()
    m = mm.lmer("y ~ f + (f || g)", data, control=mm.Control(check_singular="ignore", check_conv="ignore"))
    new = data.iloc[[0, 1, 2, 40]].reset_index(drop=True)
    np.testing.assert_allclose(m.predict(new).to_numpy(), np.asarray(m.fitted())[[0, 1, 2, 40]], rtol=1e-10)
