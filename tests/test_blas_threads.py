"""BLAS threads for small systems (core/threads.py): a small fit's evaluations run on one BLAS
thread, a large Schur block keeps every thread, and the process's thread count is restored,
also when fits in several Python threads overlap."""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info

import mixedmodels as mm
from mixedmodels.core import threads
from mixedmodels.models import glmm, lmm


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def two_threads():
    """Two BLAS threads to start from (the test machine's count, whatever it is, comes back)."""
    controller = threads._blas_controller()
    with controller.limit(limits=2, user_api="blas"):
        yield


def test_serial_blas_limits_and_restores(two_threads):
    assert set(_blas_threads()) == {2}
    with threads.serial_blas(True):
        assert set(_blas_threads()) == {1}
        with threads.serial_blas(True):
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {1}
    assert set(_blas_threads()) == {2}
    with threads.serial_blas(False):
        assert set(_blas_threads()) == {2}


def test_overlapping_sections_in_threads_restore_the_count(two_threads):
    # A enters, B enters, A leaves, B leaves (out of order): threadpoolctl's own limits, nested
    # this way, would leave the process on one thread. (What a worker thread itself sees is
    # OpenBLAS's business: after the main thread has set a count, a worker's setting is not
    # visible to it in OpenBLAS 0.3.31.)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with threads.serial_blas(True):
            a_in.set()
            assert b_in.wait(5)
        a_out.set()

    def second():
        assert a_in.wait(5)
        with threads.serial_blas(True):
            b_in.set()
            assert a_out.wait(5)
        seen["B left"] = True

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(first), pool.submit(second)]:
            f.result(timeout=10)
    assert seen == {"B left": True}
    assert set(_blas_threads()) == {2}
    assert threads._depth == 0


def _threads_inside_minimize(module, monkeypatch, name: str = "minimize") -> list[set[int]]:
    """The BLAS thread counts seen on entering ``module.name`` (default: its minimize)."""
    seen = []
    original = getattr(module, name)

    def recording(*args, **kwargs):
        seen.append(set(_blas_threads()))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, recording)
    return seen


def test_small_lmm_optimizes_on_one_thread(two_threads, monkeypatch, sleepstudy):
    seen = _threads_inside_minimize(lmm, monkeypatch)
    m = mm.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    assert seen == [{1}]
    assert set(_blas_threads()) == {2}
    assert m.loglik == pytest.approx(-871.8141, abs=1e-4)  # lme4's REML criterion / -2


def test_small_glmm_optimizes_on_one_thread(two_threads, monkeypatch):
    seen = _threads_inside_minimize(glmm, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.load_dataset("cbpp"),
                 family="binomial")
    assert seen and all(s == {1} for s in seen)
    assert set(_blas_threads()) == {2}


def test_large_schur_block_keeps_the_threads(two_threads, monkeypatch):
    # 1,000 x 700 crossed levels: a dense 700 Schur block, 6e8 flop per evaluation
    rng = np.random.default_rng(3)
    n = 20_000
    g1, g2 = rng.integers(0, 1000, n), rng.integers(0, 700, n)
    data = pd.DataFrame({"y": rng.normal(size=n) + rng.normal(size=1000)[g1] + rng.normal(size=700)[g2],
                         "g1": g1.astype(str), "g2": g2.astype(str)})
    seen = _threads_inside_minimize(lmm, monkeypatch)
    model = mm.lmer("y ~ 1 + (1 | g1) + (1 | g2)", data, control=mm.Control(method="exact"))
    assert model.evaluation_flops() > threads.SERIAL_FLOPS
    assert seen == [{2}]


def test_profile_intervals_of_a_small_fit_run_on_one_thread(two_threads, monkeypatch, sleepstudy):
    from mixedmodels.postestimation import profile

    m = mm.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    seen = _threads_inside_minimize(profile, monkeypatch, "_profile_ci")
    ci = mm.confint(m, which=["(Intercept)"])
    assert seen == [{1}]
    assert set(_blas_threads()) == {2}
    # lme4 1.1-31's confint(m, parm = "(Intercept)"): 237.6807, 265.1295
    assert ci.loc["(Intercept)"].to_numpy() == pytest.approx([237.6807, 265.1295], abs=1e-3)
