"""DHARMa-style scaled residuals: uniform under a correct model, and the dispersion and
zero-inflation tests reject where the data break the model."""

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm


def _poisson_data(seed: int, extra_sd: float = 0.0, zero_share: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_g, n_per = 50, 10
    grp = np.repeat(np.arange(n_g), n_per)
    x = rng.normal(size=n_g * n_per)
    eta = 0.5 + 0.4 * x + rng.normal(0.0, 0.5, n_g)[grp] + rng.normal(0.0, extra_sd, n_g * n_per)
    y = rng.poisson(np.exp(eta))
    y[rng.uniform(size=len(y)) < zero_share] = 0
    return pd.DataFrame({"y": y, "x": x, "g": grp.astype(str)})


@pytest.fixture(scope="module")
def correct():
    return mm.glmer("y ~ x + (1 | g)", _poisson_data(5), family="poisson")


def test_uniform_under_the_model(correct):
    sim = mm.simulate_residuals(correct, n_sim=250, seed=3)
    u = sim.scaled
    n = len(u)
    assert u.shape == (500,) and np.all((u >= 0) & (u <= 1))
    # under the model the p-value is uniform; 0.01 is a fixed-seed check, not a calibration
    assert sim.test_uniformity().p_value > 0.01
    # mean and variance of n uniforms: SE 1/sqrt(12 n) and sqrt(1/180 n) (4 SE each)
    assert abs(u.mean() - 0.5) < 4 / np.sqrt(12 * n)
    assert abs(u.var() - 1 / 12) < 4 * np.sqrt(1 / (180 * n))
    d = sim.test_dispersion()
    assert d.p_value > 0.01 and 0.8 < d.statistic < 1.25
    assert sim.test_zero_inflation().p_value > 0.01
    # the same seed, the same residuals (the simulations and the randomization of ties)
    np.testing.assert_array_equal(mm.simulate_residuals(correct, n_sim=250, seed=3).scaled, u)


def test_randomized_pit_between_the_ecdf_limits(correct):
    sim = mm.simulate_residuals(correct, n_sim=100, seed=1)
    y = sim.observed[:, None]
    lo = np.mean(sim.simulated < y, axis=1)
    hi = np.mean(sim.simulated <= y, axis=1)
    assert np.all(sim.scaled >= lo - 1e-12) and np.all(sim.scaled <= hi + 1e-12)
    assert np.any(hi > lo)          # a count response has ties: those are randomized


def test_dispersion_statistic_is_dharmas(correct):
    # DHARMa (testDispersion, type "DHARMa"): var(y - fitted) against var(y* - fitted), ratio to
    # the mean simulated value, two-sided p = 2 min(P(sim <= obs), P(sim >= obs))
    sim = mm.simulate_residuals(correct, n_sim=200, seed=2)
    res = sim.test_dispersion(conditional=False)
    obs = np.var(sim.observed - sim.fitted, ddof=1)
    sims = np.var(sim.simulated - sim.fitted[:, None], axis=0, ddof=1)
    assert res.statistic == pytest.approx(obs / sims.mean())
    assert res.p_value == pytest.approx(min(1.0, 2 * min(np.mean(sims <= obs), np.mean(sims >= obs))))
    np.testing.assert_allclose(sim.fitted, correct.fitted(type="response"))


def test_overdispersion_and_zero_inflation_are_detected():
    over = mm.glmer("y ~ x + (1 | g)", _poisson_data(6, extra_sd=0.5), family="poisson")
    d = mm.simulate_residuals(over, n_sim=250, seed=3).test_dispersion()
    assert d.statistic > 1.3 and d.p_value < 0.01
    assert d.alternative == "two-sided"
    assert mm.simulate_residuals(over, n_sim=250, seed=3).test_dispersion(alternative="greater").p_value < 0.01
    zi = mm.glmer("y ~ x + (1 | g)", _poisson_data(7, zero_share=0.3), family="poisson")
    z = mm.simulate_residuals(zi, n_sim=250, seed=3).test_zero_inflation()
    assert z.statistic > 1.1 and z.p_value < 0.01


def test_lmm_and_binomial(sleep):
    s = mm.simulate_residuals(sleep, n_sim=200, seed=4)
    assert s.test_uniformity().p_value > 0.01
    assert "dispersion" in repr(s)
    cbpp = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.load_dataset("cbpp"),
                    family="binomial")
    b = mm.simulate_residuals(cbpp, n_sim=200, seed=4)
    assert b.simulated.shape == (56, 200) and np.all((b.scaled >= 0) & (b.scaled <= 1))
    assert b.test_uniformity().p_value > 0.01
    with pytest.raises(ValueError, match="n_sim"):
        mm.simulate_residuals(cbpp, n_sim=1)
    with pytest.raises(ValueError, match="alternative"):
        b.test_dispersion(alternative="bigger")
