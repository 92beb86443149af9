"""GLMMs where the data lives (issue 12): PIRLS as passes over the rows cached where they are,
against the in-memory fit on the same rows; per-row results (predict, fitted, residuals) as
passes; LMM weights and offsets on a source."""

from __future__ import annotations

import glob
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.exceptions import MissingDataWarning

duckdb = pytest.importorskip("duckdb")
pl = pytest.importorskip("polars")
ds = pytest.importorskip("pyarrow.dataset")


def glmm_data(n: int = 20_000, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, 120, n), rng.integers(0, 25, n)
    x = rng.normal(size=n)
    eta = -0.4 + 0.8 * x + 0.7 * rng.normal(size=120)[g] + 0.4 * rng.normal(size=25)[h]
    df = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))),
                       "c": rng.poisson(np.exp(0.2 + 0.5 * x + 0.5 * rng.normal(size=120)[g])),
                       "x": x, "g": [f"g{i:03d}" for i in g], "h": h,
                       "w": rng.uniform(0.5, 2.0, n), "expo": rng.uniform(0.5, 3.0, n)})
    df.loc[[3, 40], "x"] = np.nan
    return df


@pytest.fixture(scope="module")
def data():
    return glmm_data()


@pytest.fixture(scope="module")
def files(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("glmm")
    for k in range(3):
        data.iloc[k * 7000:(k + 1) * 7000].to_parquet(folder / f"part{k}.parquet")
    return str(folder / "*.parquet")


def fit_quiet(fun, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        return fun(*args, **kwargs)


def agree(a, b, tol: float = 1e-7, se_rtol: float = 1e-6) -> None:
    """The streamed fit equals the in-memory one: its deviance function is the same to rounding, so
    logLik agrees to 1e-9 relative; θ and β to the resolution the in-memory fit locates the
    optimum with (~1e-8 with one scalar term and its exact gradients, ~5e-7 with BOBYQA on
    crossed terms)."""
    assert list(a.fixef.index) == list(b.fixef.index)
    assert a.nobs == b.nobs
    assert abs(b.loglik - a.loglik) <= 1e-9 * abs(a.loglik)
    np.testing.assert_allclose(b.fixef.to_numpy(), a.fixef.to_numpy(), rtol=0, atol=tol)
    np.testing.assert_allclose(b.theta, a.theta, rtol=0, atol=tol)
    np.testing.assert_allclose(np.sqrt(np.diag(b.vcov)), np.sqrt(np.diag(a.vcov)), rtol=se_rtol)


@pytest.mark.parametrize("formula, family, tol", [("y ~ x + (1 | g)", "binomial", 1e-7),
                                                  ("c ~ x + (1 | g)", "poisson", 1e-7),
                                                  ("y ~ x + (1 | g) + (1 | h)", "binomial", 3e-6)])
def test_parquet_glmm_equals_memory(formula, family, tol, data, files):
    m0 = fit_quiet(mm.glmer, formula, data, family=family)
    with pytest.warns(MissingDataWarning, match="2 of 20000 rows dropped"):
        m = mm.glmer(formula, files, family=family)
    agree(m0, m, tol, se_rtol=max(1e-6, 3 * tol))   # SEs at estimates that differ by tol
    # the same deviance function, to rounding
    th, b = m0.theta, m0.fixef.to_numpy()
    assert abs(m.smooth_objective(th, b) - m0.smooth_objective(th, b)) < 1e-9 * abs(m0.smooth_objective(th, b))
    assert 20 < m.optinfo.passes < 1000
    assert m.design.per_column == {"x": 2}


def test_other_sources_glmm(data, files):
    formula = "c ~ x + (1 | g)"
    m0 = fit_quiet(mm.glmer, formula, data, family="poisson")
    rel = duckdb.sql(f"select * from read_parquet('{files}')")
    agree(m0, fit_quiet(mm.glmer, formula, rel, family="poisson"))
    agree(m0, fit_quiet(mm.glmer, formula, pl.scan_parquet(files), family="poisson"))
    agree(m0, fit_quiet(mm.glmer, formula, ds.dataset(sorted(glob.glob(files))), family="poisson"))


def test_glmm_offset_and_weights_on_a_source(data, files):
    formula = "c ~ x + offset(np.log(expo)) + (1 | g)"
    m0 = fit_quiet(mm.glmer, formula, data, family="poisson")
    agree(m0, fit_quiet(mm.glmer, formula, files, family="poisson"))
    m0 = fit_quiet(mm.glmer, "c ~ x + (1 | g)", data, family="poisson", offset="expo")
    agree(m0, fit_quiet(mm.glmer, "c ~ x + (1 | g)", files, family="poisson", offset="expo"))


def test_cbind_response_on_a_source(tmp_path):
    cbpp = mm.load_dataset("cbpp")
    path = tmp_path / "cbpp.parquet"
    cbpp.to_parquet(path)
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    m0 = mm.glmer(formula, cbpp, family="binomial")
    m = mm.glmer(formula, str(path), family="binomial")
    agree(m0, m, 5e-6, 2e-5)  # 56 rows: a flat optimum, located to ~1e-6 in memory; SEs by differences


def test_predict_fitted_residuals_of_a_streamed_glmm(data, files, tmp_path):
    m0 = fit_quiet(mm.glmer, "y ~ x + (1 | g)", data, family="binomial")
    m = fit_quiet(mm.glmer, "y ~ x + (1 | g)", files, family="binomial")
    keep = data["x"].notna().to_numpy()
    p = m.predict(files, type="response")
    assert len(p) == len(data) and np.isnan(p.to_numpy()[~keep]).all()
    np.testing.assert_allclose(p.to_numpy()[keep], m0.predict(data[keep], type="response").to_numpy(), atol=1e-5)
    out = tmp_path / "pred.parquet"
    assert m.predict(files, type="response", out=str(out)) == str(out)
    np.testing.assert_allclose(pd.read_parquet(out)["fit"].to_numpy(), p.to_numpy(), equal_nan=True)
    fitted, resid = m.fitted(), m.residuals()
    np.testing.assert_allclose(fitted.to_numpy()[keep], m0.fitted().to_numpy(), atol=1e-5)
    np.testing.assert_allclose(resid.to_numpy()[keep], m0.residuals().to_numpy(), atol=1e-4)
    assert np.isnan(resid.to_numpy()[~keep]).all()
    np.testing.assert_allclose(m.overdispersion["chisq"], m0.overdispersion["chisq"], rtol=1e-5)
    np.testing.assert_allclose(m.deviance, m0.deviance, rtol=1e-7)
    text = str(m.summary())
    assert "Scaled residuals" in text and "x " in text


def test_lmm_weights_offset_and_per_row_results(data, files):
    formula = "x ~ w + (1 | g)"
    m0 = fit_quiet(mm.lmer, formula, data, weights="w", offset="expo")
    m = fit_quiet(mm.lmer, formula, files, weights="w", offset="expo")
    assert abs(m.loglik - m0.loglik) <= 1e-9 * abs(m0.loglik)
    np.testing.assert_allclose(m.fixef.to_numpy(), m0.fixef.to_numpy(), atol=1e-6)
    keep = data["x"].notna().to_numpy()
    np.testing.assert_allclose(m.residuals().to_numpy()[keep], m0.residuals().to_numpy(), atol=1e-5)
    assert "Scaled residuals" in str(m.summary())


def test_streamed_glmm_limits_are_named(files):
    with pytest.raises(NotImplementedError, match="families without an estimated dispersion"):
        fit_quiet(mm.glmer, "c ~ x + (1 | g)", files, family="negative_binomial")
    with pytest.raises(NotImplementedError, match="must name a column"):
        fit_quiet(mm.glmer, "y ~ x + (1 | g)", files, family="binomial", weights=np.ones(3))


def test_scale_and_center_take_the_moments_of_all_rows(data, tmp_path):
    shifted = data.assign(x=data["x"] * 3 + 100)
    for k in range(2):  # two files with different means: one chunk's moments would be wrong
        shifted.iloc[k * 10_000:(k + 1) * 10_000].sort_values("x").to_parquet(tmp_path / f"s{k}.parquet")
    files = str(tmp_path / "s*.parquet")
    tight = mm.Control(ftol_abs=1e-13, xtol_abs=1e-11, xtol_rel=1e-11)
    formula = "x ~ scale(c) + center(h) + (scale(c) | g)"
    m0 = fit_quiet(mm.lmer, formula, shifted, control=tight)
    m = fit_quiet(mm.lmer, formula, files, control=tight)
    # the transforms' state is the in-memory one exactly; the fits agree to the flat optimum's resolution
    assert m.design.fixed_spec.transform_state == m0.design.fixed_spec.transform_state
    assert abs(m.loglik - m0.loglik) <= 1e-9 * abs(m0.loglik)
    np.testing.assert_allclose(m.fixef.to_numpy(), m0.fixef.to_numpy(), rtol=0, atol=1e-6)
    assert m.design.passes == 3  # counts and levels, the transforms' moments, the crossproducts
    g0 = fit_quiet(mm.glmer, "y ~ scale(x) + (1 | g)", shifted, family="binomial")
    g = fit_quiet(mm.glmer, "y ~ scale(x) + (1 | g)", files, family="binomial")
    agree(g0, g)
    keep = shifted["x"].notna().to_numpy()
    np.testing.assert_allclose(g.predict(shifted[keep]).to_numpy(), g0.predict(shifted[keep]).to_numpy(), atol=1e-6)
    with pytest.raises(mm.DataError, match="only scale\\(\\) and center\\(\\)"):
        fit_quiet(mm.lmer, "x ~ poly(c, 2) + (1 | g)", files)


def test_what_needs_the_rows_in_memory_says_so(data, files):
    m = fit_quiet(mm.glmer, "y ~ x + (1 | g)", files, family="binomial")
    with pytest.raises(NotImplementedError, match="cross_validate.*not implemented for data that stays"):
        mm.cross_validate([m], files)
    with pytest.raises(NotImplementedError, match="live in 3 Parquet files.*needs them in memory"):
        mm.bootstrap(m, n=2)
    bigger = fit_quiet(mm.glmer, "y ~ x + (1 | g) + (1 | h)", files, family="binomial")
    assert mm.anova(m, bigger).shape[0] == 2  # from the fits alone


def test_aliased_column_dropped_as_in_memory(data, tmp_path):
    dup = data.assign(x2=2 * data["x"])
    path = tmp_path / "dup.parquet"
    dup.to_parquet(path)
    with pytest.warns(mm.RankDeficiencyWarning, match="dropping 1 column.*x2"):
        m0 = fit_quiet(mm.glmer, "c ~ x + x2 + (1 | g)", dup, family="poisson")
    with pytest.warns(mm.RankDeficiencyWarning, match="dropping 1 column.*x2"):
        m = fit_quiet(mm.glmer, "c ~ x + x2 + (1 | g)", str(path), family="poisson")
    agree(m0, m)
    keep = dup["x"].notna().to_numpy()
    np.testing.assert_allclose(m.predict(dup[keep]).to_numpy(), m0.predict(dup[keep]).to_numpy(), atol=1e-6)
