"""Fits on Spark (issue 12): a local SparkSession started once for the module, as a user starts
one; pass 1 as Spark SQL aggregations through narwhals, pass 2 with ``mapInPandas`` (one
crossproducts object per partition). Small data: Spark's start dominates."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest
from test_sources_local import SLEEP, agree
from test_sources_progress import last_states

import mixedmodels as mm
from mixedmodels.exceptions import DataError

pytest.importorskip("pyspark")
if shutil.which("java") is None:  # .ci/run installs a Java runtime; without one Spark cannot start
    pytest.fail("Spark needs a Java runtime (java on PATH); .ci/run installs default-jre-headless",
                pytrace=False)


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter
    session = (SparkSession.builder.master("local[2]").appName("mixedmodels-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_sleepstudy_equals_memory_and_bad_values(spark):
    ss = mm.load_dataset("sleepstudy")
    tight = mm.Control(ftol_abs=1e-13, xtol_abs=1e-11, xtol_rel=1e-11)
    m0 = mm.lmer(SLEEP, ss, control=tight)
    sdf = spark.createDataFrame(ss).repartition(2)
    m = mm.lmer(SLEEP, sdf, control=tight)
    agree(m0, m)
    assert m.design.source == "a Spark DataFrame"
    bad = ss.assign(Days=ss["Days"].astype(float))
    bad.loc[7, "Days"] = np.inf
    with pytest.raises(DataError, match="Inf in 'Days'"):
        mm.lmer(SLEEP, spark.createDataFrame(bad))


def test_spark_progress_counts_the_tasks_of_every_pass(spark, capsys):
    ss = mm.load_dataset("sleepstudy")
    formula = "Reaction ~ scale(Days) + (Days | Subject)"  # two passes: scale()'s moments, then pass 2
    tight = mm.Control(ftol_abs=1e-13, xtol_abs=1e-11, xtol_rel=1e-11)
    m0 = mm.lmer(formula, ss, control=tight)
    sdf = spark.createDataFrame(ss).repartition(3).cache()
    sdf.count()  # cached: a pass is one stage, a task per partition
    parts = sdf.rdd.getNumPartitions()
    assert parts == 3
    group = spark.sparkContext.getLocalProperty("spark.jobGroup.id")
    capsys.readouterr()
    m = mm.lmer(formula, sdf, control=tight, progress=True)
    assert last_states(capsys.readouterr().err) == {"moments pass (tasks)": "3/3", "pass 2 (tasks)": "3/3"}
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") == group  # the thread's group restored
    agree(m0, m, beta_tol=1e-8)
    mm.lmer(formula, sdf, control=tight, progress=False)
    assert "tasks" not in capsys.readouterr().err
    sdf.unpersist()


def test_spark_glmm_equals_memory_and_predicts_a_column(spark, capsys):
    from test_sources_glmm import agree, fit_quiet, glmm_data

    data = glmm_data(n=3000, seed=9).drop(columns=["h"])
    sdf = spark.createDataFrame(data).repartition(2).cache()
    m0 = fit_quiet(mm.glmer, "y ~ x + (1 | g)", data, family="binomial")
    capsys.readouterr()
    m = fit_quiet(mm.glmer, "y ~ x + (1 | g)", sdf, family="binomial", progress=True)
    # pass 1's queries filled the cache: the building pass is one stage, a task per partition
    assert last_states(capsys.readouterr().err) == {"building pass (tasks)": "2/2"}
    agree(m0, m, 1e-6)
    assert m.optinfo.passes > 20
    out = m.predict(sdf, type="response")
    assert "fit" in out.columns  # a Spark DataFrame with the predictions as a column
    got = out.toPandas().sort_values("x").dropna(subset=["x"])
    expect = data.dropna(subset=["x"]).assign(fit=lambda d: m0.predict(d, type="response").to_numpy())
    np.testing.assert_allclose(got["fit"].to_numpy(), expect.sort_values("x")["fit"].to_numpy(), atol=1e-6)
