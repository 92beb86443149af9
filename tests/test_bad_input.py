"""Bad input, table-driven: every case raises (or warns) with its class and a message that
names the problem. Each case runs on real small data: the bundled datasets or tiny frames."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.spec.design import build_design
from mixedmodels.spec.formula import FormulaError, parse_formula

SS = mm.load_dataset("sleepstudy")
CBPP = mm.load_dataset("cbpp")
RNG = np.random.default_rng(1)
TINY = pd.DataFrame({
    "y": RNG.normal(size=24), "x": RNG.normal(size=24) + 2.0, "k": RNG.poisson(3.0, size=24),
    "g": np.repeat(list("abcdef"), 4), "h": np.tile(list("pqrs"), 6),
})


def _with(frame: pd.DataFrame, column: str, rows, value, dtype=float) -> pd.DataFrame:
    out = frame.copy()
    out[column] = out[column].astype(dtype)
    out.loc[rows, column] = value
    return out


def _dates(frame: pd.DataFrame, **cols) -> pd.DataFrame:
    return frame.assign(**{k: v(frame) for k, v in cols.items()})


def _dup(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return pd.concat([frame, frame[[column]]], axis=1)


def _weights(rows, value, n: int | None = None) -> np.ndarray:
    w = np.ones(len(SS) if n is None else n)
    w[rows] = value
    return w


class FakeFrame:
    """Stands in for a polars/pyarrow table: something with .to_pandas()."""

    def __init__(self, frame):
        self.frame = frame

    def to_pandas(self):
        return self.frame


def lmer(formula, data=SS, **kw):
    return lambda: mm.lmer(formula, data, **kw)


def glmer(formula, data, family, **kw):
    return lambda: mm.glmer(formula, data, family=family, **kw)


def design(formula, data=SS, **kw):
    return lambda: build_design(formula, data, **kw)


def parse(formula):
    return lambda: parse_formula(formula)


RXN = "Reaction ~ Days + (1 | Subject)"

ERRORS = [
    # --- 3: non-finite values (±Inf is an error naming the column and the count) ----------------
    ("inf-response", lmer(RXN, _with(SS, "Reaction", [0], np.inf)), mm.DataError,
     "Inf in 'Reaction': 1 non-finite value"),
    ("neginf-response", lmer(RXN, _with(SS, "Reaction", [0, 5], -np.inf)), mm.DataError,
     "2 non-finite values (2 -Inf"),
    ("inf-predictor", lmer(RXN, _with(SS, "Days", [3, 4, 9], np.inf)), mm.DataError,
     "Inf in 'Days': 3 non-finite values"),
    ("inf-and-nan-predictor", lmer(RXN, _with(_with(SS, "Days", [3], np.inf), "Days", [7], np.nan)),
     mm.DataError, "Inf in 'Days': 1 non-finite value"),
    ("log0-predictor", lmer("Reaction ~ log(Days) + (1 | Subject)"), mm.DataError,
     "NA/NaN/Inf in the fixed-effects column 'log(Days)': 18 non-finite values"),
    ("log0-response", lmer("log(Days) ~ Reaction + (1 | Subject)"), mm.DataError,
     "NA/NaN/Inf in the response 'log(Days)'"),
    ("divide-by-zero", lmer("Reaction ~ I(1 / Days) + (1 | Subject)"), mm.DataError,
     "'I(1 / Days)': 18 non-finite values (18 Inf"),
    ("log-negative-nan", lmer("Reaction ~ log(Days - 1) + (1 | Subject)"), mm.DataError,
     "NA/NaN/Inf in the fixed-effects column"),
    ("log0-random-slope", lmer("Reaction ~ Days + (log(Days) | Subject)"), mm.DataError,
     "of the random-effects term"),
    ("inf-weights-array", lmer(RXN, weights=_weights([2], np.inf)), mm.DataError,
     "Inf in the weights: 1 non-finite value"),
    ("inf-weights-column", lmer(RXN, SS.assign(w=_weights([2, 3], np.inf)), weights="w"), mm.DataError,
     "Inf in the weights: 2 non-finite values"),
    ("neginf-weights", lmer(RXN, weights=_weights([0], -np.inf)), mm.DataError, "Inf in the weights"),
    ("inf-offset-array", lmer(RXN, offset=_weights([1], np.inf)), mm.DataError,
     "Inf in the offset: 1 non-finite value"),
    ("log0-offset-term", lmer("Reaction ~ Days + offset(log(Days)) + (1 | Subject)"), mm.DataError,
     "NA/NaN/Inf in the offset: 18 non-finite values"),
    ("inf-poisson-response", glmer("k ~ x + (1 | g)", _with(TINY, "k", [0], np.inf), "poisson"),
     mm.DataError, "Inf in 'k'"),
    ("inf-cbind-column", glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                               _with(CBPP, "incidence", [0], np.inf), "binomial"),
     mm.DataError, "Inf in 'incidence'"),
    ("inf-design-direct", design("y ~ x + (1 | g)", _with(TINY, "x", [1], np.inf)), mm.DataError,
     "Inf in 'x'"),
    # --- 4: no random-effects term ---------------------------------------------------------------
    ("no-re-lmer", lmer("Reaction ~ Days"), mm.DataError, "no random effects terms specified"),
    ("no-re-hint", lmer("Reaction ~ Days"), mm.DataError, "mm.fixed_effects"),
    ("no-re-intercept-only", lmer("Reaction ~ 1"), mm.DataError, "no random effects terms"),
    ("paren-without-bar", lmer("Reaction ~ Days + (Subject)"), mm.DataError,
     "written (1 | Subject)"),
    ("no-re-glmer", glmer("cbind(incidence, size - incidence) ~ period", CBPP, "binomial"),
     mm.DataError, "no random effects terms specified"),
    ("no-re-glmer-paren", glmer("k ~ x + (g)", TINY, "poisson"), mm.DataError, "(1 | g)"),
    ("no-re-design", design("y ~ x", TINY), mm.DataError, "statsmodels"),
    # --- 6: weights ------------------------------------------------------------------------------
    ("negative-weight", lmer(RXN, weights=_weights([4], -1.0)), mm.DataError,
     "weights must be non-negative: 1 negative value"),
    ("negative-weights-count", lmer(RXN, weights=_weights([1, 2, 3], -0.5)), mm.DataError,
     "3 negative values"),
    ("negative-weight-column", lmer(RXN, SS.assign(w=_weights([0], -2.0)), weights="w"),
     mm.DataError, "e.g. -2"),
    ("all-zero-weights", lmer(RXN, weights=np.zeros(len(SS))), mm.DataError, "no rows left"),
    ("weights-wrong-length", lmer(RXN, weights=np.ones(10)), mm.DataError, "weights has 10 values"),
    ("weights-text-column", lmer(RXN, SS.assign(w="a"), weights="w"), mm.DataError,
     "weights column 'w' must be numeric"),
    ("weights-nan-raise", lmer(RXN, weights=_weights([0], np.nan), na_action="raise"), mm.DataError,
     "weights: 1"),
    # --- 10: the data frame itself ----------------------------------------------------------------
    ("duplicate-predictor", lmer(RXN, _dup(SS, "Days")), mm.DataError,
     "more than one column named 'Days'"),
    ("duplicate-response", lmer(RXN, _dup(SS, "Reaction")), mm.DataError, "'Reaction'"),
    ("duplicate-group", design("y ~ x + (1 | g)", _dup(TINY, "g")), mm.DataError,
     "column names must be unique"),
    ("datetime-predictor", lmer("Reaction ~ date + (1 | Subject)", _dates(
        SS, date=lambda d: pd.Timestamp("2020-01-01") + pd.to_timedelta(d.Days, unit="D"))),
     mm.DataError, "(d - d.min()).dt.days"),
    ("timedelta-predictor", lmer("Reaction ~ span + (1 | Subject)", _dates(
        SS, span=lambda d: pd.to_timedelta(d.Days, unit="D"))), mm.DataError, "date/time column"),
    ("tz-datetime-predictor", design("y ~ t + (1 | g)", _dates(
        TINY, t=lambda d: pd.date_range("2021-01-01", periods=len(d), tz="UTC"))), mm.DataError,
     "'t' is a date/time column"),
    ("datetime-response", design("t ~ x + (1 | g)", _dates(
        TINY, t=lambda d: pd.date_range("2021-01-01", periods=len(d)))), mm.DataError, "date/time"),
    ("datetime-random-slope", design("y ~ x + (t | g)", _dates(
        TINY, t=lambda d: pd.date_range("2021-01-01", periods=len(d)))), mm.DataError, "date/time"),
    ("dict-data", lmer(RXN, {"Reaction": [1.0, 2.0], "Days": [1]}), mm.DataError, "equally long"),  # dicts: issue 18
    ("ndarray-data", lmer(RXN, SS[["Reaction", "Days"]].to_numpy()), TypeError, "numpy.ndarray"),
    ("list-data", design("y ~ x + (1 | g)", [1, 2, 3]), TypeError, "builtins.list"),
    ("none-data", design("y ~ x + (1 | g)", None), TypeError, "builtins.NoneType"),
    ("series-data", lmer(RXN, SS["Reaction"]), TypeError, "pandas DataFrame"),
    ("polars-like-data", lmer(RXN, FakeFrame(SS)), TypeError, "FakeFrame; convert it with .to_pandas()"),
    # --- 9: malformed formulas: FormulaError with a position, never an internal error -------------
    ("dot", lmer("Reaction ~ . + (1 | Subject)"), FormulaError, "'.' (all other columns) is not supported"),
    ("dot-lists-columns", lmer("Reaction ~ . + (1 | Subject)"), FormulaError,
     "the data has Reaction, Days, Subject"),
    ("dot-parse", parse("y ~ . - x"), FormulaError, "at position 4"),
    ("empty-parens", parse("y ~ x + ()"), FormulaError, "empty parentheses"),
    ("two-bars", parse("y ~ (1 | g | h)"), FormulaError, "has one '|'"),
    ("triple-bar", parse("y ~ (1 ||| g)"), FormulaError, "at position"),
    ("empty-offset", parse("y ~ x + offset()"), FormulaError, "offset() needs an expression"),
    ("group-is-call", parse("y ~ (1 | log(g))"), FormulaError, "must be a column name"),
    ("group-is-number", parse("y ~ (1 | 1)"), FormulaError, "grouping factor '1'"),
    ("group-is-product", parse("y ~ (1 | g * h)"), FormulaError, "at position"),
    ("unclosed", parse("y ~ x + (1 | g"), FormulaError, "unclosed '(' at position 8"),
    ("unmatched", parse("y ~ x) + (1 | g)"), FormulaError, "unmatched ')' at position 5"),
    ("no-tilde", parse("y x + (1 | g)"), FormulaError, "needs a '~'"),
    ("two-tildes", parse("y ~ x ~ z"), FormulaError, "more than one '~' at position"),
    ("nothing-after-tilde", parse("y ~ "), FormulaError, "nothing after '~'"),
    ("double-operator", parse("y ~ x * * z + (1 | g)"), FormulaError, "syntax error in 'x * * z'"),
    ("trailing-plus", parse("y ~ x +"), FormulaError, "missing term at position 7"),
    ("nothing-before-bar", parse("y ~ (| g)"), FormulaError, "nothing before '|'"),
    ("nothing-after-bar", parse("y ~ (1 |)"), FormulaError, "no grouping factor after '|'"),
    ("subtracted-term", parse("y ~ x - (1 | g)"), FormulaError, "cannot be subtracted"),
    ("bare-bar", parse("y ~ x | g"), FormulaError, "must sit inside parentheses"),
    ("empty-nested", parse("y ~ (1 | g/)"), FormulaError, "empty factor in nested grouping"),
    ("no-response", lmer("~ Days + (1 | Subject)"), FormulaError, "needs a response"),
    ("formula-not-string", parse(["y ~ x"]), TypeError, "formula must be a string"),
    ("unknown-column", design("y ~ z + (1 | g)", TINY), mm.DataError, "column 'z' in the formula"),
]


@pytest.mark.parametrize(("case", "call", "error", "fragment"), ERRORS, ids=[c[0] for c in ERRORS])
def test_bad_input_raises(case, call, error, fragment):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error) as info:
            call()
    assert fragment in str(info.value), str(info.value)


WARNINGS = [
    ("nan-response-dropped", lmer(RXN, _with(SS, "Reaction", [0, 1], np.nan)), mm.MissingDataWarning,
     "2 of 180 rows dropped for missing values (Reaction: 2)"),
    ("nan-weights-named", lmer(RXN, weights=_weights([0, 9], np.nan)), mm.MissingDataWarning,
     "(weights: 2)"),
    ("nan-offset-named", lmer(RXN, offset=_weights([3], np.nan)), mm.MissingDataWarning, "(offset: 1)"),
    ("zero-weights-dropped", lmer(RXN, weights=_weights([0, 1, 2], 0.0)), mm.MissingDataWarning,
     "3 of 180 rows have prior weight 0"),
    ("zero-weights-glmer", glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", CBPP,
                                 "binomial", weights=_weights([0], 0.0, len(CBPP))),
     mm.MissingDataWarning, "1 of 56 rows have prior weight 0"),
]


@pytest.mark.parametrize(("case", "call", "warning", "fragment"), WARNINGS, ids=[c[0] for c in WARNINGS])
def test_bad_input_warns(case, call, warning, fragment):
    with pytest.warns(warning) as record:
        call()
    messages = [str(w.message) for w in record if issubclass(w.category, warning)]
    assert any(fragment in m for m in messages), messages
    assert not any("()" in m for m in messages), messages  # never an empty list of columns


def test_zero_weights_fit_as_if_the_rows_were_absent():
    w = RNG.uniform(0.5, 2.0, size=len(SS))
    w[[0, 17, 40, 41, 99]] = 0.0
    with pytest.warns(mm.MissingDataWarning, match="5 of 180 rows have prior weight 0"):
        m = mm.lmer("Reaction ~ Days + (Days | Subject)", SS, weights=w)
    keep = w > 0
    ref = mm.lmer("Reaction ~ Days + (Days | Subject)", SS[keep].reset_index(drop=True), weights=w[keep])
    assert m.nobs == ref.nobs == 175
    assert m.loglik == pytest.approx(ref.loglik, abs=1e-8)
    assert m.sigma == pytest.approx(ref.sigma, abs=1e-8)
    np.testing.assert_allclose(np.asarray(m.fixef), np.asarray(ref.fixef), atol=1e-8)
    with pytest.warns(mm.MissingDataWarning):
        a = mm.lmer("Reaction ~ Days + (1 | Subject)", SS, weights=w, reml=False)
    b = mm.lmer("Reaction ~ Days + (1 | Subject)", SS[keep], weights=w[keep], reml=False)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-8) and a.nobs == b.nobs


def test_redundant_parentheses_and_factor_fit_like_r():
    a = mm.lmer("Reaction ~ Days + ((1 | Subject))", SS)
    b = mm.lmer("Reaction ~ Days + (1 | Subject)", SS)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-10)
    f = mm.lmer("Reaction ~ factor(Days) + (1 | Subject)", SS)
    c = mm.lmer("Reaction ~ C(Days) + (1 | Subject)", SS)
    assert len(f.fixef) == 10 and f.loglik == pytest.approx(c.loglik, abs=1e-10)


def test_dates_as_grouping_factor_and_fixed_only_designs_on_request():
    data = SS.assign(day=pd.Timestamp("2020-01-01") + pd.to_timedelta(SS.Days, unit="D"))
    d = build_design("Reaction ~ Days + (1 | day)", data)
    assert d.terms[0].nlevels == 10
    fixed = build_design("Reaction ~ Days", SS, require_random=False)
    assert fixed.terms == [] and fixed.fixef_names == ["(Intercept)", "Days"]


def test_case_count():
    assert len(ERRORS) + len(WARNINGS) >= 50


ODD = SS.rename(columns={"Days": "Day.s", "Subject": "Sub ject"}).assign(
    **{"class": SS.Days, "lambda": SS.Subject, "Tâge": SS.Days})


@pytest.mark.parametrize("formula", [
    "Reaction ~ Day.s + (Day.s | `Sub ject`)",
    "Reaction ~ `Day.s` + (`Day.s` | `Sub ject`)",
    "Reaction ~ class + (class | lambda)",
    "Reaction ~ `class` + (`class` | `lambda`)",
    "Reaction ~ Tâge + (Tâge | lambda)",
])
def test_non_identifier_column_names_keep_their_names(formula):
    m = mm.lmer(formula, ODD)
    ref = mm.lmer("Reaction ~ Days + (Days | Subject)", SS)
    assert m.loglik == pytest.approx(ref.loglik, abs=1e-8)
    slope = [n for n in m.fixef.index if n != "(Intercept)"][0]
    assert slope in ODD.columns
    (group, table), = m.ranef.items()
    assert group in ODD.columns and list(table.columns) == ["(Intercept)", slope]
    np.testing.assert_allclose(np.asarray(m.predict(ODD.iloc[:3])), np.asarray(ref.predict(SS.iloc[:3])),
                               atol=1e-6)
