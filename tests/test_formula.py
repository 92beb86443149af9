"""lme4 formula syntax: the parse and its error messages."""

from __future__ import annotations

import pytest

from mixedmodels.spec.formula import FormulaError, RandomTerm, parse_formula


def test_fixed_and_random_parts():
    f = parse_formula("gpa ~ occasion + sex + (1 + occasion | student)")
    assert f.response == "gpa"
    assert f.fixed == "occasion + sex"
    assert f.random == [RandomTerm("1 + occasion", "student", True)]


def test_uncorrelated_nested_and_interaction_groups():
    f = parse_formula("y ~ x + (x || g) + (1 | a/b) + (1 | c:d)")
    assert f.random == [RandomTerm("x", "g", False), RandomTerm("1", "a", True),
                        RandomTerm("1", "b:a", True), RandomTerm("1", "c:d", True)]


def test_three_level_nesting_follows_lme4_names():
    f = parse_formula("y ~ 1 + (1 | a/b/c)")
    assert [t.group for t in f.random] == ["a", "b:a", "c:b:a"]


def test_intercept_removal_and_offset():
    f = parse_formula("y ~ 0 + x + offset(log(e)) + (1 | g)")
    assert f.fixed == "0 + x"
    assert f.offsets == ["log(e)"]
    assert parse_formula("y ~ x - 1").fixed == "x - 1"
    assert parse_formula("y ~ (1 | g)").fixed == "1"


def test_variables_exclude_functions():
    f = parse_formula("log(y) ~ scale(x) + I(z^2) + (1 + w | g)")
    assert set(f.variables) == {"x", "z", "y", "w", "g"}
    assert "scale" not in f.variables and "I" not in f.variables


@pytest.mark.parametrize("text, position, message", [
    ("y ~ x + (1 | g", 8, "unclosed '('"),
    ("y ~ x + 1 | g", 10, "inside parentheses"),
    ("y ~ x + (1 | )", 12, "no grouping factor"),
    ("y ~ x + * z", 8, "syntax error"),
    ("y ~ x)", 5, "unmatched ')'"),
    ("y ~ x + ( | g)", 9, "nothing before '|'"),
])
def test_syntax_errors_show_the_position(text, position, message):
    with pytest.raises(FormulaError) as err:
        parse_formula(text)
    assert err.value.position == position
    assert message in str(err.value)
    assert "^" in str(err.value)  # a caret under the problem


def test_missing_tilde():
    with pytest.raises(FormulaError, match="needs a '~'"):
        parse_formula("y x")


def test_redundant_parentheses_around_a_bar_term():
    f = parse_formula("y ~ x + ((1 | g))")
    assert f.random == [RandomTerm("1", "g")] and f.fixed == "x"
    assert parse_formula("y ~ (((x | g)))").random == [RandomTerm("x", "g")]


def test_dot_is_not_supported():
    with pytest.raises(FormulaError, match=r"'\.' .*not supported.* at position 4"):
        parse_formula("y ~ . + (1 | g)")
    assert parse_formula("y ~ Sepal.Length + 1.5 * x + (1 | g)").fixed  # dots inside names are fine


_TOKENS = ["y", "x", "g", "h", "~", "+", "-", "*", "/", ":", "|", "||", "(", ")", "1", "0", " ",
           "log(", "I(", "factor(", "offset(", "^2", "`a b`", ".", ",", "%in%", "Sepal.Length",
           "[", "]", "**", "=", "'", '"', "@", "!", "#", "\\", "é"]


def test_malformed_formulas_parse_or_raise_formula_error():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=300, deadline=None, database=None)
    @hypothesis.given(st.lists(st.sampled_from(_TOKENS), max_size=14))
    def check(tokens):
        text = "".join(tokens)
        try:
            parse_formula(text)
        except FormulaError as err:
            assert err.formula == text

    check()
    for prefix in ("y ~ ", "y ~ x + ("):  # formula-like starts reach the deeper checks
        check_prefixed(prefix, hypothesis, st)


def check_prefixed(prefix, hypothesis, st):
    @hypothesis.settings(max_examples=150, deadline=None, database=None)
    @hypothesis.given(st.lists(st.sampled_from(_TOKENS), max_size=10))
    def check(tokens):
        try:
            parse_formula(prefix + "".join(tokens))
        except FormulaError:
            pass

    check()
