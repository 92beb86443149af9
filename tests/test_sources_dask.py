"""Fits on Dask (issue 12): a real ``distributed.LocalCluster`` (a scheduler and two worker
processes), started once for the module as a user starts it; pass 1 through narwhals, pass 2 per
partition with a tree reduction of the crossproducts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_sources_local import SIM, SLEEP, agree, simulated
from test_sources_progress import Bars, last_states

import mixedmodels as mm
from mixedmodels.exceptions import DataError, MissingDataWarning
from mixedmodels.sources import stream_design

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_sleepstudy_equals_memory(client):
    ss = mm.load_dataset("sleepstudy")
    m0 = mm.lmer(SLEEP, ss, control=mm.Control(ftol_abs=1e-13, xtol_abs=1e-11, xtol_rel=1e-11))
    ddf = dd.from_pandas(ss, npartitions=3)
    m = mm.lmer(SLEEP, ddf, control=mm.Control(ftol_abs=1e-13, xtol_abs=1e-11, xtol_rel=1e-11))
    agree(m0, m)
    assert m.design.source == "a Dask DataFrame (3 partitions)"
    assert len(client.scheduler_info()["workers"]) == 2


def test_dask_parquet_crossed_equals_memory(client, tmp_path):
    sim = simulated(n=20_000, seed=3)
    for k in range(4):
        sim.iloc[k * 5000:(k + 1) * 5000].to_parquet(tmp_path / f"part{k}.parquet")
    tight = mm.Control(ftol_abs=1e-13, xtol_abs=1e-11, xtol_rel=1e-11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        m0 = mm.lmer(SIM, sim, control=tight)
    with pytest.warns(MissingDataWarning, match="3 of 20000 rows dropped"):
        m = mm.lmer(SIM, dd.read_parquet(str(tmp_path / "*.parquet")), control=tight)
    agree(m0, m)
    assert m.design.n_dropped == 3


def test_dask_infinite_value(client):
    ss = mm.load_dataset("sleepstudy")
    ss["Days"] = ss["Days"].astype(float)
    ss.loc[100, "Days"] = -np.inf
    with pytest.raises(DataError, match="Inf in 'Days'"):
        mm.lmer(SLEEP, dd.from_pandas(ss, npartitions=2))


def test_dask_progress_counts_the_partitions_of_every_pass(client, capsys):
    ss = mm.load_dataset("sleepstudy")
    formula = "Reaction ~ scale(Days) + (Days | Subject)"  # two passes: scale()'s moments, then pass 2
    tight = mm.Control(ftol_abs=1e-13, xtol_abs=1e-11, xtol_rel=1e-11)
    m0 = mm.lmer(formula, ss, control=tight)
    ddf = dd.from_pandas(ss, npartitions=3)
    capsys.readouterr()
    m = mm.lmer(formula, ddf, control=tight, progress=True)
    assert last_states(capsys.readouterr().err) == {"moments pass (partitions)": "3/3",
                                                    "pass 2 (partitions)": "3/3"}
    agree(m0, m, beta_tol=1e-8)
    mm.lmer(formula, ddf, control=tight, progress=False)
    assert "partitions" not in capsys.readouterr().err


def test_dask_bars_keep_the_reduction_tree(client):
    """With a bar, the partitions' tasks and the tree of sums run as futures counted with
    ``as_completed`` (a local scheduler: a Dask callback); the sums are the same pairs in the same
    order, so the crossproducts are bitwise those of the fit without a bar."""
    sim = simulated(n=6000, seed=3)
    ddf = dd.from_pandas(sim, npartitions=5)
    bars = Bars()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        quiet = stream_design(SIM, ddf).X.crossproducts
        shown = stream_design(SIM, ddf, progress=bars).X.crossproducts
        # the client stays, Dask's threads compute (pass 1's unique() shuffles in tasks, not p2p)
        with dask.config.set({"scheduler": "threads", "dataframe.shuffle.method": "tasks"}):
            local = stream_design(SIM, ddf, progress=bars).X.crossproducts
    assert bars.seen == [("pass 2 (partitions)", 5, 5, True)] * 2
    for cp in (shown, local):
        np.testing.assert_array_equal(cp.xyxy, quiet.xyxy)
        for a, b in zip(cp.diag + cp.zxy, quiet.diag + quiet.zxy):
            np.testing.assert_array_equal(a, b)
        for key, block in quiet.off.items():
            np.testing.assert_array_equal(cp.off[key].toarray(), block.toarray())


def test_dask_glmm_equals_memory_and_predicts_lazily(client, capsys):
    from test_sources_glmm import agree, fit_quiet, glmm_data

    data = glmm_data(n=12_000, seed=5)
    ddf = dd.from_pandas(data, npartitions=4)
    m0 = fit_quiet(mm.glmer, "c ~ x + (1 | g)", data, family="poisson")
    capsys.readouterr()
    m = fit_quiet(mm.glmer, "c ~ x + (1 | g)", ddf, family="poisson", progress=True)
    assert last_states(capsys.readouterr().err) == {"building pass (partitions)": "4/4"}
    agree(m0, m)
    assert m.optinfo.passes > 20
    pred = m.predict(ddf, type="response")
    assert isinstance(pred, dd.Series)  # lazy: computed on the cluster when asked
    keep = data["x"].notna().to_numpy()
    values = pred.compute().to_numpy()
    np.testing.assert_allclose(values[keep], m0.predict(data[keep], type="response").to_numpy(), atol=1e-6)
    resid = m.residuals(type="pearson")
    assert isinstance(resid, dd.Series)
    np.testing.assert_allclose(resid.compute().to_numpy()[keep], m0.residuals(type="pearson").to_numpy(), atol=1e-5)
    q = m.residual_quantiles([0.0, 0.5, 1.0], type="pearson")  # Dask's approximate quantiles
    exact = np.quantile(m0.residuals(type="pearson"), [0.0, 0.4, 0.6, 1.0])
    np.testing.assert_allclose(q[[0, 2]], exact[[0, 3]], atol=1e-5)
    assert exact[1] <= q[1] <= exact[2]
    assert "Scaled residuals" in str(m.summary())
