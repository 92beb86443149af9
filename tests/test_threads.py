"""Fits in threads: the same model fit in 4 threads at once gives bitwise the same estimates as a
sequential fit (no shared mutable state in the fit path), and a fitted model pickles round trip
to the same numbers."""

from __future__ import annotations

import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import mixedmodels as mm

N_THREADS = 4


def _fit_lmm():
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))


def _fit_glmm():
    return mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                    mm.load_dataset("cbpp"), family="binomial")


FITS = {"lmm-sleepstudy": _fit_lmm, "glmm-cbpp": _fit_glmm}


def _numbers(m) -> dict[str, np.ndarray]:
    return {"fixef": np.asarray(m.fixef, dtype=float), "loglik": np.array([m.loglik]),
            "theta": np.asarray(m.theta, dtype=float), "sigma": np.array([m.sigma]),
            "vcov": np.asarray(m.vcov, dtype=float)}


def _assert_bitwise_equal(a, b, what: str) -> None:
    na, nb = _numbers(a), _numbers(b)
    for key in na:
        assert np.array_equal(na[key], nb[key]), f"{what}: {key} differs: {na[key]} vs {nb[key]}"
    assert list(a.fixef.index) == list(b.fixef.index)


@pytest.mark.parametrize("name", list(FITS))
def test_fits_in_threads_equal_a_sequential_fit(name):
    fit = FITS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sequential = fit()
        # warnings.catch_warnings is process-wide, so it is set once, around the pool
        with ThreadPoolExecutor(max_workers=N_THREADS) as pool:
            threaded = list(pool.map(lambda _: fit(), range(N_THREADS)))
    for k, m in enumerate(threaded):
        _assert_bitwise_equal(m, sequential, f"{name}, thread {k}")


@pytest.mark.parametrize("name", list(FITS))
def test_post_estimation_in_threads_equals_sequential(name):
    """Methods on one shared fitted model, called from several threads at once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = FITS[name]()

        def work(_):
            return (m.predict().to_numpy(), m.confint(method="wald").to_numpy(),
                    m.refit(m.response).loglik)

        expected = work(None)
        with ThreadPoolExecutor(max_workers=N_THREADS) as pool:
            results = list(pool.map(work, range(N_THREADS)))
    for got in results:
        assert np.array_equal(got[0], expected[0])
        assert np.array_equal(got[1], expected[1], equal_nan=True)
        assert got[2] == expected[2]


@pytest.mark.parametrize("name", list(FITS))
def test_pickle_round_trip(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = FITS[name]()
    back = pickle.loads(pickle.dumps(m))
    assert type(back) is type(m)
    _assert_bitwise_equal(back, m, f"{name}, unpickled")
    assert np.array_equal(back.predict().to_numpy(), m.predict().to_numpy())
    assert str(back.summary()) == str(m.summary())
