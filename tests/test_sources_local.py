"""Fits where the data lives, on one machine (issue 12): Parquet/CSV paths streamed by DuckDB, DuckDB
relations, pyarrow Datasets, polars LazyFrames; and in-memory frames of any library (issue 18):
polars, pyarrow Tables, dicts of arrays. Each equals the in-memory pandas fit (which matches lme4,
checked here too on sleepstudy)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from refs import LME4, values

import mixedmodels as mm
from mixedmodels.exceptions import DataError, MissingDataWarning
from mixedmodels.sources import estimate_bytes, stream_design

duckdb = pytest.importorskip("duckdb")
pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")
ds = pytest.importorskip("pyarrow.dataset")

SLEEP = "Reaction ~ Days + (Days | Subject)"
SIM = "y ~ x + region + (1 + x | store) + (1 | item)"
# tight optimizer tolerances: chunked sums differ from one big sum in the last bits, which moves θ
# on a flat optimum by up to the optimizer's tolerance; both fits then stop at the same optimum


def _tight():
    return mm.Control(ftol_abs=1e-13, xtol_abs=1e-11, xtol_rel=1e-11)


def simulated(n: int = 30_000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    store = rng.integers(0, 80, n)
    item = rng.integers(0, 30, n)
    region = rng.choice(["north", "south", "east"], n)
    x = rng.normal(size=n)
    y = (1.0 + 0.5 * x + 0.3 * (region == "south") + rng.normal(size=80)[store]
         + 0.3 * x * rng.normal(size=80)[store] + 0.5 * rng.normal(size=30)[item] + rng.normal(size=n))
    df = pd.DataFrame({"y": y, "x": x, "region": region, "store": [f"s{i:02d}" for i in store], "item": item})
    df.loc[[5, 17], "x"] = np.nan
    df.loc[11, "y"] = np.nan
    return df


def agree(a, b, theta_tol: float = 2e-6, beta_tol: float = 1e-7) -> None:
    """The streamed fit ``b`` equals the in-memory fit ``a``: logLik within 1e-9 relative; θ and β
    within the optimizer's resolution of a flat optimum when the sums were made in chunks (exactly
    when in one chunk: pass tighter tolerances)."""
    assert list(a.fixef.index) == list(b.fixef.index)
    assert a.nobs == b.nobs
    assert abs(b.loglik - a.loglik) <= 1e-9 * abs(a.loglik)
    np.testing.assert_allclose(b.theta, a.theta, rtol=0, atol=theta_tol)
    np.testing.assert_allclose(b.fixef.to_numpy(), a.fixef.to_numpy(), rtol=0, atol=beta_tol)
    np.testing.assert_allclose(np.sqrt(np.diag(b.vcov)), np.sqrt(np.diag(a.vcov)), rtol=1e-5)


@pytest.fixture(scope="module")
def sleep():
    return mm.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def sleep_parquet(tmp_path_factory, sleep):
    path = tmp_path_factory.mktemp("sleep") / "sleepstudy.parquet"
    sleep.to_parquet(path)
    return str(path)


@pytest.fixture(scope="module")
def sim():
    return simulated()


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory, sim):
    folder = tmp_path_factory.mktemp("sim")
    for k in range(3):  # item 29 only in the last file would still be found by pass 1
        sim.iloc[k * 10_000:(k + 1) * 10_000].to_parquet(folder / f"part{k}.parquet")
    return folder


@pytest.fixture(scope="module")
def sim_memory(sim):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        return mm.lmer(SIM, sim, control=_tight())


def test_parquet_sleepstudy_equals_memory_and_lme4(sleep, sleep_parquet):
    ref = LME4["sleepstudy_reml"]
    m0 = mm.lmer(SLEEP, sleep)
    m = mm.lmer(SLEEP, sleep_parquet)
    agree(m0, m, theta_tol=1e-12, beta_tol=1e-10)  # one chunk: the same sums, the same fit
    np.testing.assert_allclose(m.theta, values(ref["theta"]), atol=1e-5)
    assert m.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    np.testing.assert_allclose(m.fixef.to_numpy(), values(ref["fixef"]), rtol=1e-6)
    np.testing.assert_allclose(m.coef_table()["Std. Error"].to_numpy(), values(ref["se"]), rtol=1e-5)
    assert m.design.source.startswith("1 Parquet file")


def test_parquet_glob_in_chunks_equals_memory(sim_files, sim_memory):
    with pytest.warns(MissingDataWarning, match=r"3 of 30000 rows dropped for missing values \(y: 1, x: 2\)|"
                                                r"3 of 30000 rows dropped for missing values \(x: 2, y: 1\)"):
        design = stream_design(SIM, str(sim_files / "*.parquet"), chunk_rows=4096)
    assert design.n_dropped == 3 and design.nobs == 29_997 and design.passes == 2
    with pytest.warns(MissingDataWarning):
        m = mm.lmer(SIM, str(sim_files / "*.parquet"), control=_tight())
    agree(sim_memory, m)
    assert m.design.n_dropped == sim_memory.design.n_dropped
    assert [t.name for t in m.design.terms] == [t.name for t in sim_memory.design.terms]
    assert all((a.levels == b.levels).all() for a, b in zip(m.design.terms, sim_memory.design.terms))


@pytest.mark.parametrize("kind", ["duckdb", "arrow-dataset", "polars-lazy", "directory", "csv"])
def test_other_sources_equal_memory(kind, sim, sim_files, sim_memory, tmp_path):
    if kind == "duckdb":
        data = duckdb.sql(f"select * from read_parquet('{sim_files}/*.parquet')")
    elif kind == "arrow-dataset":
        data = ds.dataset(str(sim_files))
    elif kind == "polars-lazy":
        data = pl.scan_parquet(str(sim_files / "*.parquet"))
    elif kind == "directory":
        data = str(sim_files)
    else:
        sim.to_csv(tmp_path / "sim.csv", index=False)
        data = str(tmp_path / "sim.csv")
    with pytest.warns(MissingDataWarning):
        m = mm.lmer(SIM, data, control=_tight())
    agree(sim_memory, m)


@pytest.mark.parametrize("kind", ["polars", "pyarrow", "dict"])
def test_in_memory_frames_of_any_library(kind, sleep):
    data = {"polars": pl.from_pandas(sleep), "pyarrow": pa.Table.from_pandas(sleep),
            "dict": {c: sleep[c].to_numpy() for c in sleep.columns}}[kind]
    m0 = mm.lmer(SLEEP, sleep)
    m = mm.lmer(SLEEP, data)
    agree(m0, m, theta_tol=1e-12, beta_tol=1e-10)
    assert isinstance(m.design.frame, pd.DataFrame)  # results come back in pandas
    assert isinstance(m.ranef["Subject"], pd.DataFrame)


def test_dict_of_unequal_arrays_is_an_error():
    with pytest.raises(DataError, match="equally long"):
        mm.lmer("y ~ 1 + (1 | g)", {"y": np.arange(5.0), "g": np.arange(4)})


def test_per_row_results_are_passes_over_the_source(sleep_parquet):
    m = mm.lmer(SLEEP, sleep_parquet)
    m0 = mm.lmer(SLEEP, mm.load_dataset("sleepstudy"))
    np.testing.assert_allclose(m.fitted().to_numpy(), m0.fitted().to_numpy(), atol=1e-6)
    np.testing.assert_allclose(m.residuals(scaled=True).to_numpy(), m0.residuals(scaled=True).to_numpy(), atol=1e-6)
    assert m.ranef["Subject"].shape == (18, 2)
    new = mm.load_dataset("sleepstudy").head(3)
    np.testing.assert_allclose(m.predict(new), m0.predict(new))
    with pytest.raises(NotImplementedError, match="live in 1 Parquet file.*needs them in memory"):
        m.linear_predictor()


def test_infinite_values_give_the_in_memory_error(sleep, tmp_path):
    bad = sleep.copy()
    bad["Days"] = bad["Days"].astype(float)
    bad.loc[3, "Days"] = np.inf
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="Inf in 'Days'"):
        mm.lmer(SLEEP, bad)
    with pytest.raises(DataError, match="Inf in 'Days'"):
        mm.lmer(SLEEP, str(tmp_path / "bad.parquet"))


def test_transform_to_non_finite_gives_the_in_memory_error(sleep, tmp_path):
    bad = sleep.copy()
    bad.loc[4, "Reaction"] = 0.0
    bad.to_parquet(tmp_path / "zero.parquet")
    with pytest.raises(DataError, match="NA/NaN/Inf in the response 'log\\(Reaction\\)'"):
        mm.lmer("log(Reaction) ~ Days + (1 | Subject)", bad)
    with pytest.raises(DataError, match="NA/NaN/Inf in the response 'log\\(Reaction\\)'"):
        mm.lmer("log(Reaction) ~ Days + (1 | Subject)", str(tmp_path / "zero.parquet"))


def test_na_action_raise(sim_files):
    with pytest.raises(DataError, match="3 rows have missing values"):
        mm.lmer(SIM, str(sim_files / "*.parquet"), na_action="raise")


def test_bad_paths_and_schemas(sleep, tmp_path):
    with pytest.raises(DataError, match="no files match"):
        mm.lmer(SLEEP, str(tmp_path / "nothing*.parquet"))
    sleep.to_parquet(tmp_path / "a.parquet")
    sleep.drop(columns="Days").to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"file '.*b\.parquet' has no column 'Days'"):
        mm.lmer(SLEEP, str(tmp_path / "*.parquet"))
    other = tmp_path / "other"
    other.mkdir()
    sleep.to_parquet(other / "a.parquet")
    sleep.assign(Days=sleep["Days"].astype(str)).to_parquet(other / "b.parquet")
    with pytest.raises(DataError, match="schemas disagree: column 'Days'"):
        mm.lmer(SLEEP, str(other / "*.parquet"))
    with pytest.raises(DataError, match="column 'Dayz' in the formula is not in the data.*did you mean 'Days'"):
        mm.lmer("Reaction ~ Dayz + (1 | Subject)", str(tmp_path / "a.parquet"))
    with pytest.raises(DataError, match="stateful transform"):
        mm.lmer("Reaction ~ poly(Days, 2) + (1 | Subject)", str(tmp_path / "a.parquet"))


def test_level_only_in_a_later_file(sleep, tmp_path):
    """Pass 1 finds every level first, so a subject first seen in the last file is one level."""
    order = sleep.sort_values("Subject", kind="stable")
    order.iloc[:90].to_parquet(tmp_path / "p1.parquet")
    order.iloc[90:].to_parquet(tmp_path / "p2.parquet")
    m = mm.lmer(SLEEP, str(tmp_path / "p*.parquet"), control=_tight())
    agree(mm.lmer(SLEEP, sleep, control=_tight()), m)
    assert m.design.terms[0].nlevels == 18


def test_rank_deficient_column_dropped_as_in_memory(sleep, tmp_path):
    df = sleep.assign(Days2=2 * sleep["Days"])
    df.to_parquet(tmp_path / "rd.parquet")
    f = "Reaction ~ Days + Days2 + (1 | Subject)"
    with pytest.warns(mm.RankDeficiencyWarning, match="Days2"):
        m0 = mm.lmer(f, df)
    with pytest.warns(mm.RankDeficiencyWarning, match="Days2"):
        m = mm.lmer(f, str(tmp_path / "rd.parquet"))
    agree(m0, m, theta_tol=1e-10, beta_tol=1e-10)


def test_memory_estimate_refuses_a_model_too_large(sim_files):
    with pytest.raises(DataError, match="crossproducts of this model need about"):
        stream_design(SIM, str(sim_files), memory_budget=1000)
    design = stream_design(SIM, str(sim_files), chunk_rows=50_000)
    assert design.X.crossproducts.n == design.nobs


def test_estimate_grows_with_the_levels(sim_files):
    from mixedmodels.sources import open_source
    from mixedmodels.sources.template import build_template, parse, scan

    src = open_source(str(sim_files))
    spec = parse(SIM, list(src.columns()))
    tmpl = build_template(spec, scan(spec, src))
    # store: 80 levels × 2 columns, item: 30; the dense block of item is 30 × 30
    assert estimate_bytes(tmpl, 30_000) >= 8 * (80 * 4 + 30 * 30)


def test_inference_from_the_crossproducts(sleep, sleep_parquet):
    """anova (ML refits from the crossproducts) and Satterthwaite df need no further pass."""
    s1 = mm.lmer(SLEEP, sleep_parquet)
    s0 = mm.lmer("Reaction ~ Days + (1 | Subject)", sleep_parquet)
    m1 = mm.lmer(SLEEP, sleep)
    m0 = mm.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    a, b = mm.anova(s0, s1), mm.anova(m0, m1)
    np.testing.assert_allclose(a["Chisq"].to_numpy()[1], b["Chisq"].to_numpy()[1], rtol=1e-9)
    np.testing.assert_allclose(a["AIC"].to_numpy(), b["AIC"].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(s1.coef_table(ddf="satterthwaite")["df"].to_numpy(),
                               m1.coef_table(ddf="satterthwaite")["df"].to_numpy(), rtol=1e-6)


def test_numeric_column_used_as_a_factor(sim, sim_files):
    f = "y ~ x + factor(item) + (1 | store)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        m0 = mm.lmer(f, sim, control=_tight())
        m = mm.lmer(f, str(sim_files), control=_tight())
    assert len(m.fixef) == 2 + 29
    agree(m0, m)


def test_progress_bars_over_the_rows_of_a_pass(sim_files, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        mm.lmer(SIM, str(sim_files / "*.parquet"), progress=True)
        err = capsys.readouterr().err
        assert "pass 2 (rows)" in err and "30000" in err
        assert "moments pass" not in err  # no scale() or center(): no such pass, no bar
        mm.lmer(SIM, str(sim_files / "*.parquet"), progress=False)
        assert "pass 2" not in capsys.readouterr().err
    with pytest.raises(ValueError, match="progress must be"):
        mm.lmer(SIM, str(sim_files / "*.parquet"), progress="yes")
