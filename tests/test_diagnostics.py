"""all_fit, rePCA, standardized fits and the troubleshooting guide."""

from __future__ import annotations

import dataclasses
import io
import warnings
from pathlib import Path

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels import lmer
from mixedmodels.exceptions import ScalingWarning
from mixedmodels.models.standardize import standardize_design, standardized_lmer
from mixedmodels.postestimation.diagnostics import all_fit, rePCA
from mixedmodels.presentation import guide

ROOT = Path(__file__).resolve().parents[1]


def _ref_cov(ref: dict, group: str, names: list[str]) -> np.ndarray:
    """A term's random-effects covariance matrix from lme4's VarCorr table."""
    k = len(names)
    cov = np.zeros((k, k))
    for row in ref["varcorr"]:
        if row["grp"] != group:
            continue
        i = names.index(row["var1"])
        j = i if row["var2"] is None else names.index(row["var2"])
        cov[i, j] = cov[j, i] = row["vcov"]
    return cov


# -- all_fit ------------------------------------------------------------------------------------

def test_all_fit_sleepstudy_agrees_across_optimizers(sleepstudy, lme4_ref):
    ref = lme4_ref["sleepstudy_reml"]
    m = lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    table = all_fit(m)
    assert list(table["optimizer"]) == ["bobyqa", "newuoa", "nelder_mead", "lbfgsb", "powell", "cobyqa"]
    for col in ("optimizer", "ok", "loglik", "seconds", "messages", "(Intercept)", "Days",
                "Subject.(Intercept)", "Subject.Days.(Intercept)", "Subject.Days"):
        assert col in table.columns
    ok = table[table["ok"]]
    assert len(ok) >= 4
    np.testing.assert_allclose(ok["loglik"], ref["loglik"], atol=1e-4)
    np.testing.assert_allclose(ok["Days"], ref["fixef"]["Days"], atol=1e-4)
    np.testing.assert_allclose(ok[["Subject.(Intercept)", "Subject.Days.(Intercept)", "Subject.Days"]],
                               np.tile(ref["theta"], (len(ok), 1)), atol=2e-3)
    assert table.verdict.startswith(f"All {len(table)} optimizers agree")
    assert "verdict" not in table.columns and "agree" in repr(table)
    # the original fit is untouched
    assert m.optinfo.optimizer == "bobyqa"
    assert m.loglik == pytest.approx(ref["loglik"], abs=1e-6)


def test_all_fit_reports_disagreement(sleepstudy):
    m = lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    # a 5-evaluation limit cannot converge: the refits must say so, not claim agreement
    m.control = mm.Control(maxfun=5)
    table = all_fit(m, optimizers=("bobyqa", "nelder_mead"))
    assert not table["ok"].any()
    assert table.verdict.startswith("No optimizer converged")
    assert all("evaluation limit" in msg for msg in table["messages"])


def test_all_fit_from_the_estimates(sleepstudy, lme4_ref):
    """start_from_fit=True refits from the estimates (model.refit): every optimizer stays there."""
    ref = lme4_ref["sleepstudy_reml"]
    m = lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    table = all_fit(m, optimizers=("bobyqa", "nelder_mead", "lbfgsb"), start_from_fit=True)
    assert table["ok"].all()
    np.testing.assert_allclose(table["loglik"], ref["loglik"], atol=1e-4)
    # started at the optimum, a 5-evaluation limit is no obstacle
    m.control = mm.Control(maxfun=5)
    assert all_fit(m, optimizers=("bobyqa",), start_from_fit=True)["loglik"].iloc[0] == \
        pytest.approx(ref["loglik"], abs=1e-4)


@pytest.mark.parametrize("parallel", [False, True])
def test_all_fit_glmm(lme4_ref, parallel):
    ref = lme4_ref["cbpp_laplace"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mm.glmer(ref["formula"], mm.load_dataset("cbpp"), family="binomial")
    if parallel:  # the threads run when one fit takes long enough: say it does
        m.optinfo = dataclasses.replace(m.optinfo, seconds=1.0)
    before = (m.optinfo.optimizer, m.loglik, m.theta)
    table = all_fit(m, optimizers=("bobyqa", "nelder_mead", "powell"), parallel=parallel)
    ok = table[table["ok"]]
    assert len(ok) >= 2
    np.testing.assert_allclose(ok["loglik"], ref["loglik"], atol=1e-3)
    np.testing.assert_allclose(ok["period2"], ref["fixef"]["period2"], atol=2e-3)
    assert "agree" in table.verdict
    assert (m.optinfo.optimizer, m.loglik) == before[:2]  # the original fit is untouched
    np.testing.assert_array_equal(m.theta, before[2])


# -- rePCA --------------------------------------------------------------------------------------

def test_repca_matches_lme4_covariance(sleepstudy, lme4_ref):
    ref = lme4_ref["sleepstudy_reml"]
    m = lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    pca = rePCA(m)
    cov = _ref_cov(ref, "Subject", ["(Intercept)", "Days"])
    sdev = np.sqrt(np.sort(np.linalg.eigvalsh(cov))[::-1])
    np.testing.assert_allclose(pca["Subject"]["sdev"], sdev, rtol=1e-4)
    np.testing.assert_allclose(pca["Subject"]["proportion"], sdev ** 2 / np.sum(sdev ** 2), rtol=1e-4)
    assert pca.dims == {"Subject": 2}
    assert pca.summary().loc["Subject", "dims_used"] == 2


def test_repca_counts_a_lost_dimension():
    m = lmer("Yield ~ 1 + (1 | Batch)", mm.load_dataset("Dyestuff2"),
             control=mm.Control(check_singular="ignore"))
    assert rePCA(m).dims == {"Batch": 0}


# -- standardized fits ----------------------------------------------------------------------------

@pytest.mark.parametrize("reml", [True, False])
def test_standardize_fixes_the_year_trend_with_the_same_loglik(year_data, reml):
    d = year_data.copy()
    formula = "y ~ year + income + (1 | g)"
    with pytest.warns(ScalingWarning, match="year"):
        raw = lmer(formula, d, reml=reml)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        std = standardized_lmer(formula, d, reml=reml)
    assert std.loglik == pytest.approx(raw.loglik, abs=1e-6)
    np.testing.assert_allclose(std.fixef, raw.fixef, rtol=1e-5)
    np.testing.assert_allclose(std.vcov, raw.vcov, rtol=1e-4)
    assert std.convergence.ok and not std.is_singular
    table = std.standardized_coefficients
    sd_year = d["year"].std(ddof=0)
    assert table.loc["year", "Estimate (std)"] == pytest.approx(table.loc["year", "Estimate"] * sd_year)
    assert table.loc["year", "Std. Error (std)"] == pytest.approx(table.loc["year", "Std. Error"] * sd_year)
    assert set(std.standardization.table["column"]) == {"year", "income"}


def test_standardize_rescues_a_random_slope_on_calendar_year(year_data):
    d = year_data.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        std = standardized_lmer("y ~ year + (1 + year | g)", d)
        d["yc"] = d["year"] - 2010
        centred = lmer("y ~ yc + (1 + yc | g)", d)  # what a user would do by hand
    # centring is an exact reparametrization: same likelihood and slope, intercept moved to 0
    assert std.loglik == pytest.approx(centred.loglik, abs=1e-5)
    assert std.fixef["year"] == pytest.approx(centred.fixef["yc"], rel=1e-5)
    assert std.fixef["(Intercept)"] == pytest.approx(
        centred.fixef["(Intercept)"] - 2010 * centred.fixef["yc"], rel=1e-5)
    vc_std = std.varcorr.set_index(["var1", "var2"], drop=False)
    vc_c = centred.varcorr
    slope_sd = vc_c[(vc_c["var1"] == "yc") & vc_c["var2"].isna()]["sdcor"].iloc[0]
    assert vc_std[(vc_std["var1"] == "year") & vc_std["var2"].isna()]["sdcor"].iloc[0] == \
        pytest.approx(slope_sd, rel=1e-3)


@pytest.mark.parametrize("key, formula", [
    ("sleepstudy_reml", "Reaction ~ Days + (Days | Subject)"),
    ("sleepstudy_ml", "Reaction ~ Days + (Days | Subject)"),
    ("sleepstudy_zerocorr", "Reaction ~ Days + (Days || Subject)"),
])
def test_standardized_fit_reproduces_lme4(sleepstudy, lme4_ref, key, formula):
    ref = lme4_ref[key]
    std = standardized_lmer(formula, sleepstudy, reml=ref["reml"])
    assert std.loglik == pytest.approx(ref["loglik"], abs=1e-5)
    np.testing.assert_allclose(std.theta, ref["theta"], atol=5e-4)
    np.testing.assert_allclose(std.fixef, list(ref["fixef"].values()), rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(std.vcov)), list(ref["se"].values()), rtol=1e-4)


def test_uncorrelated_terms_are_scaled_not_centred(sleepstudy):
    design = mm.build_design("Reaction ~ Days + (Days || Subject)", sleepstudy)
    _, info = standardize_design(design)
    fixed = info.table[info.table["where"] == "fixed"]
    random = info.table[info.table["where"] != "fixed"]
    sd = sleepstudy["Days"].std(ddof=0)
    assert fixed["center"].tolist() == [pytest.approx(4.5)]
    assert random["center"].tolist() == [0.0] and random["scale"].tolist() == [pytest.approx(sd)]


# -- the guide ------------------------------------------------------------------------------------

def test_guide_is_shipped_and_identical_to_the_repository_copy():
    root_copy = (ROOT / "docs" / "convergence.md").read_text("utf-8")
    assert guide.text(None) == root_copy


def test_help_prints_sections_and_rejects_unknown_topics():
    out = io.StringIO()
    guide.help("singular", file=out)
    assert out.getvalue().startswith("## Singular") and "GEE" in out.getvalue()
    out = io.StringIO()
    guide.help("convergence", file=out)
    assert "## Scaling" in out.getvalue() and "## all_fit" in out.getvalue()
    with pytest.raises(ValueError, match="scaling"):
        guide.text("no-such-topic")


def test_every_topic_named_in_a_message_exists():
    import re

    import mixedmodels.models.checks as checks
    import mixedmodels.postestimation.diagnostics as diagnostics

    source = Path(checks.__file__).read_text() + Path(diagnostics.__file__).read_text()
    named = set(re.findall(r"mm\.help\('([a-z_]+)'\)", source))
    assert {"scaling", "convergence", "singular", "all_fit"} <= named
    for topic in named:
        assert guide.text(topic)


def test_standardized_fit_takes_a_start_on_the_original_scale(sleepstudy, lme4_ref):
    ref = lme4_ref["sleepstudy_reml"]
    std = standardized_lmer("Reaction ~ Days + (Days | Subject)", sleepstudy,
                            control=mm.Control(start=np.array(ref["theta"])))
    # started at lme4's optimum, the standardized fit stays there
    assert std.standardized.optinfo.log_f[0] == pytest.approx(std.standardized.optinfo.fun, abs=1e-6)
    assert std.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    # all_fit refits a standardized model on its standardized scale
    table = all_fit(std, optimizers=("bobyqa", "nelder_mead"))
    assert table["ok"].all()
    np.testing.assert_allclose(table["Days"], std.standardized.fixef["Days"], rtol=1e-6)
