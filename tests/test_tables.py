"""mm.table: models side by side (modelsummary/texreg-like), its numbers from broom.mixed's."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from refs import REF

import mixedmodels as mm

TIDY = json.loads((REF / "tidy_reference.json").read_text())


@pytest.fixture(scope="module")
def two():
    d = mm.load_dataset("sleepstudy")
    return (mm.lmer("Reaction ~ Days + (1 | Subject)", d), mm.lmer("Reaction ~ Days + (Days | Subject)", d))


def test_table_cells_are_rs_numbers(two):
    m0, m1 = two
    t = mm.table({"m0": m0, "m1": m1})
    cells = t.to_frame()
    fixed = pd.DataFrame(TIDY["sleep"]["fixed"]).set_index("term")      # broom.mixed on m1
    assert cells.loc["(Intercept)", "m1"] == f"{fixed.loc['(Intercept)', 'estimate']:.3f}"
    assert cells.loc["Days", "m1"] == f"{fixed.loc['Days', 'estimate']:.3f}"
    below = cells.iloc[list(cells.index).index("Days") + 1]
    assert below["m1"] == f"({fixed.loc['Days', 'std.error']:.3f})"
    rp = pd.DataFrame(TIDY["sleep"]["ran_pars"]).set_index("term")
    assert cells.loc["SD (Days Subject)", "m1"] == f"{rp.loc['sd__Days', 'estimate']:.3f}"
    assert cells.loc["SD (Days Subject)", "m0"] == ""           # not in m0
    assert list(cells.index).index("SD (Observations)") > list(cells.index).index("SD (Days Subject)")
    gl = TIDY["sleep"]["glance"][0]
    assert cells.loc["AIC", "m1"] == f"{gl['AIC']:.1f}" and cells.loc["Num.Obs.", "m1"] == "180"
    assert t.gof.loc["BIC", "m1"] == pytest.approx(gl["BIC"], rel=1e-6)


def test_table_renderings(two):
    m0, m1 = two
    t = mm.table([m0, m1], stars=True, statistic="conf.int", gof=("nobs", "AIC", "r2"))
    text = repr(t)
    assert "(1)" in text and "***" in text and "Wald intervals" in text and "R2 Cond." in text
    md = t.to_markdown()
    assert md.splitlines()[1].startswith("|:---|") and md.count("\n|") >= 8
    tex = t.to_latex(caption="Sleep study", label="tab:sleep")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "\\caption{Sleep study}" in tex
    assert "\\_" not in tex.split("\\caption")[0]
    page = t.to_html()
    assert page.startswith("<table>") and "<th>(2)</th>" in page and "R2 Marg." in page
    assert "<table>" in t._repr_html_()
    only = mm.table({"a": m1}, statistic=None, ran_pars=False, gof=(),
                    coef_rename={"Days": "Days of sleep deprivation"}, coef_omit=["(Intercept)"])
    assert list(only.to_frame().index) == ["Days of sleep deprivation"]
    with pytest.raises(ValueError, match="statistic"):
        mm.table([m1], statistic="se")
    with pytest.raises(ValueError, match="gof"):
        mm.table([m1], gof=("R2",))


def test_table_to_great_tables(two):
    pytest.importorskip("great_tables")
    gt = mm.table({"m0": two[0], "m1": two[1]}).to_great_tables()
    assert "Num.Obs." in gt.as_raw_html()
