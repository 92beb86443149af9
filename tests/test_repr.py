"""Every result object prints like R within 80 columns and has an HTML face with real tables;
the statsmodels-style aliases; fitted()/residuals() keep the data's index."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from refs import REF

import mixedmodels as mm
from mixedmodels.presentation.display import format_column, format_pvalue, format_table

TIDY = json.loads((REF / "tidy_reference.json").read_text())


@pytest.fixture(scope="module")
def fits():
    d = mm.load_dataset("sleepstudy")
    m1 = mm.lmer("Reaction ~ Days + (Days | Subject)", d)
    m0 = mm.lmer("Reaction ~ Days + (1 | Subject)", d)
    return d, m0, m1


def _check_faces(obj, *must_contain: str) -> str:
    text = repr(obj)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "..." not in text
    page = obj._repr_html_()
    assert "<table>" in page and "<td" in page
    for piece in must_contain:
        assert piece in text, (piece, text)
    return text


def test_format_column_is_rs_format():
    # values from R: format(c(0.5, 123.456), digits = 4); format(c(-897.04, -875.97), digits = 5)
    assert format_column([0.5, 123.456], 4) == ["0.5", "123.5"]
    assert format_column([-897.0436, -875.9697], 5) == ["-897.04", "-875.97"]
    assert format_column([612.1002, 35.0717, 654.94], 4) == ["612.10", "35.07", "654.94"]
    assert format_pvalue(1e-20) == "< 2.2e-16" and format_pvalue(0.0014311) == "0.001431"


def test_anova_prints_as_lme4(fits):
    _, m0, m1 = fits
    text = _check_faces(mm.anova(m0, m1), "Pr(>Chisq)", "Models:", "Signif. codes")
    # R 4.2 / lme4 1.1-31: anova(m0, m1) prints these columns for m1 (BIC and the p-value row)
    row = [line for line in text.splitlines() if line.startswith("m1 ")][0]
    assert row.split()[1:] == ["6", "1763.9", "1783.1", "-875.97", "1751.9", "42.139", "2", "7.072e-10", "***"]
    assert "m0: Reaction ~ Days + (1 | Subject)" in text
    # still a DataFrame with the numbers
    assert mm.anova(m0, m1)["Chisq"].iloc[1] == pytest.approx(42.139, abs=1e-3)


def test_every_result_object_has_two_faces(fits):
    d, m0, m1 = fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_faces(mm.aic_table({"m0": m0, "m1": m1}), "weight")
        _check_faces(mm.r2(m1), "Conditional R2")
        _check_faces(mm.icc(m0), "Adjusted ICC")
        _check_faces(mm.caic(m1), "Conditional Akaike information criterion:  1711.62")
        _check_faces(mm.rePCA(m1), "Standard deviation")
        _check_faces(mm.bootstrap(m0, n=5, seed=1), "Bootstrap Statistics")
        _check_faces(mm.cross_validate({"m0": m0, "m1": m1}, d, folds=3), "log_score")
        _check_faces(mm.compare_approaches("Reaction ~ Days + (Days | Subject)", d), "LMM")
        af = mm.all_fit(m0, optimizers=("bobyqa", "nelder_mead"), parallel=False)
    text = _check_faces(af)
    assert af.verdict.split()[0] in text and af.verdict.split(":")[0] in af._repr_html_()
    s = m1.summary()
    assert "<caption>Random effects</caption>" in s._repr_html_() and "<caption>Fixed effects" in m1._repr_html_()
    assert max(len(line) for line in str(s).splitlines()) <= 80


def test_result_objects_to_frame(fits):
    _, m0, m1 = fits
    r2 = mm.r2(m1)
    assert r2["marginal"] == r2.to_frame()["marginal"].iloc[0]          # dict access still works
    c = mm.caic(m1)
    assert c.caic == c["caic"] == c.to_frame()["cAIC"].iloc[0]
    assert list(m1.summary().to_frame().columns) == ["Estimate", "Std. Error", "t value"]


def test_format_table_wraps_at_width():
    wide = pd.DataFrame(np.arange(40, dtype=float).reshape(2, 20) + 0.5, columns=[f"column{i}" for i in range(20)])
    text = format_table(wide, width=80)
    assert max(len(line) for line in text.splitlines()) <= 80 and "column19" in text


def test_statsmodels_aliases_match_r(sleep):
    fixed = pd.DataFrame(TIDY["sleep"]["fixed"]).set_index("term")
    np.testing.assert_allclose(sleep.params, fixed["estimate"], rtol=1e-6)
    np.testing.assert_allclose(sleep.bse, fixed["std.error"], rtol=1e-6)
    np.testing.assert_allclose(sleep.tvalues, fixed["statistic"], rtol=1e-6)
    np.testing.assert_allclose(sleep.pvalues, TIDY["sleep"]["lmertest"]["p"], rtol=1e-5)
    ci = sleep.conf_int()
    np.testing.assert_allclose(ci[0], fixed["conf.low"], rtol=1e-6)
    np.testing.assert_allclose(ci[1], fixed["conf.high"], rtol=1e-6)
    g = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.load_dataset("cbpp"),
                 family="binomial")
    ref = pd.DataFrame(TIDY["cbpp"]["fixed"]).set_index("term")
    np.testing.assert_allclose(g.pvalues, ref["p.value"], rtol=1e-3)
    np.testing.assert_allclose(g.params, ref["estimate"], rtol=1e-4)


def test_fitted_and_residuals_keep_the_index():
    d = mm.load_dataset("sleepstudy")
    d.index = d.index + 1000
    d.loc[1003, "Reaction"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.MissingDataWarning)
        m = mm.lmer("Reaction ~ Days + (Days | Subject)", d)
    d["resid"] = m.residuals()            # aligned by index: the dropped row is NaN (na.exclude)
    d["fit"] = m.fitted()
    assert np.isnan(d.loc[1003, "resid"]) and d["resid"].notna().sum() == 179
    np.testing.assert_allclose((d["fit"] + d["resid"]).dropna(), d["Reaction"].dropna(), rtol=1e-12)
    ref = pd.DataFrame(TIDY["sleep"]["augment"])   # no rows dropped there: same as R's residuals
    full = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
    np.testing.assert_allclose(full.residuals(), ref[".resid"], rtol=1e-6, atol=1e-8)


def test_progress_bars(fits, capsys):
    from mixedmodels.postestimation.progress import Progress

    _, m0, _ = fits
    mm.bootstrap(m0, n=4, seed=1, progress=True)
    assert "bootstrap" in capsys.readouterr().err            # tqdm on stderr
    mm.bootstrap(m0, n=4, seed=1)                            # "auto": not interactive here, silent
    mm.caic(m0, progress=True)
    assert "caic" in capsys.readouterr().err
    mm.caic(m0)
    mm.all_fit(m0, optimizers=("bobyqa",), parallel=False, progress=False)
    m0.confint(method="profile", which=["sigma"], progress=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="progress"):
        Progress(3, "x", progress="yes")


def test_row_values_keep_array_style_indexing():
    d = mm.load_dataset("sleepstudy").iloc[::-1]          # a reversed, non-default index
    m = mm.lmer("Reaction ~ Days + (Days | Subject)", d)
    r = m.residuals()
    assert r.index.equals(d.index)
    order = np.array([0, 5, 2])
    np.testing.assert_array_equal(r[order], r.to_numpy()[order])   # positional, as on the old array
    assert r[:, None].shape == (180, 1)
    assert r[d.index[0]] == r.iloc[0]                              # a label is a label
