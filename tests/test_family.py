"""GLM families and links against scipy's distributions and numerical derivatives."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import mixedmodels as mm
from mixedmodels.exceptions import DataError
from mixedmodels.models.family import (
    Gamma,
    binomial,
    get_family,
    inverse_gaussian,
    make_link,
    negative_binomial,
    poisson,
)

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("name", ["logit", "probit", "cloglog", "cauchit", "log", "inverse",
                                  "identity", "sqrt", "1/mu^2"])
def test_links_invert_and_differentiate(name):
    link = make_link(name)
    eta = {"log": RNG.normal(size=20), "inverse": RNG.uniform(0.5, 2, 20),
           "sqrt": RNG.uniform(0.5, 2, 20), "1/mu^2": RNG.uniform(0.5, 2, 20)}.get(
        name, RNG.uniform(-3, 3, 20))
    mu = link.inverse(eta)
    assert np.allclose(link.link(mu), eta, rtol=1e-8, atol=1e-8)
    h = 1e-6
    numeric = (link.inverse(eta + h) - link.inverse(eta - h)) / (2 * h)
    assert np.allclose(link.mu_eta(eta), numeric, rtol=1e-5, atol=1e-9)
    both = link.inverse_and_mu_eta(eta)
    assert np.allclose(both[0], mu) and np.allclose(both[1], link.mu_eta(eta))


def test_binomial_aic_is_minus_twice_binomial_loglik():
    n = RNG.integers(1, 20, 30).astype(float)
    k = np.floor(RNG.random(30) * (n + 1))
    mu = RNG.uniform(0.05, 0.95, 30)
    fam = binomial()
    y = k / n
    expected = -2 * np.sum(stats.binom.logpmf(k, n, mu))
    assert fam.aic(y, n, mu, n, 0.0) == pytest.approx(expected, rel=1e-12)
    dev = fam.dev_resid(y, mu, n)
    sat = -2 * np.sum(stats.binom.logpmf(k, n, y))
    assert np.sum(dev) == pytest.approx(expected - sat, rel=1e-10)
    assert fam.aic_minus_deviance(y, n, n) == pytest.approx(sat, rel=1e-10)
    assert np.allclose(fam.deviance_function(y, n)(mu), dev)


def test_bernoulli_fast_deviance_matches_formula():
    y = (RNG.random(50) < 0.4).astype(float)
    mu = RNG.uniform(0.01, 0.99, 50)
    wt = np.ones(50)
    fam = binomial()
    assert np.allclose(fam.deviance_function(y, wt)(mu), -2 * stats.bernoulli.logpmf(y, mu))
    assert fam.aic(y, wt, mu, wt, 0.0) == pytest.approx(-2 * stats.bernoulli.logpmf(y, mu).sum())


def test_poisson_and_negative_binomial_aic():
    y = RNG.poisson(3.0, 40).astype(float)
    mu = RNG.uniform(0.5, 6, 40)
    wt = np.ones(40)
    fam = poisson()
    assert fam.aic(y, wt, mu, wt, 0.0) == pytest.approx(-2 * stats.poisson.logpmf(y, mu).sum())
    const = fam.aic_minus_deviance(y, wt, wt)
    assert fam.deviance_function(y, wt)(mu).sum() + const == pytest.approx(
        fam.aic(y, wt, mu, wt, 0.0), rel=1e-12)
    nb = negative_binomial(theta=2.5)
    # scipy's nbinom(n, p) has mean n(1-p)/p: n = θ, p = θ / (θ + μ)
    expected = -2 * stats.nbinom.logpmf(y, 2.5, 2.5 / (2.5 + mu)).sum()
    assert nb.aic(y, wt, mu, wt, 0.0) == pytest.approx(expected, rel=1e-10)
    dev = nb.dev_resid(y, mu, wt).sum()
    assert dev + nb.aic_minus_deviance(y, wt, wt) == pytest.approx(expected, rel=1e-10)
    assert np.allclose(nb.variance(mu), mu + mu ** 2 / 2.5)


def test_gamma_and_inverse_gaussian_aic():
    y = RNG.gamma(3.0, 1.0, 30)
    mu = RNG.uniform(1, 5, 30)
    wt = np.ones(30)
    fam = Gamma("log")
    dev = fam.dev_resid(y, mu, wt).sum()
    disp = dev / 30
    expected = -2 * stats.gamma.logpdf(y, 1 / disp, scale=mu * disp).sum() + 2
    assert fam.aic(y, wt, mu, wt, dev) == pytest.approx(expected, rel=1e-12)
    ig = inverse_gaussian()
    dev = ig.dev_resid(y, mu, wt).sum()
    assert dev == pytest.approx(np.sum((y - mu) ** 2 / (y * mu ** 2)))
    # R's inverse.gaussian()$aic with the dispersion profiled: dev / n
    disp = dev / 30
    loglik = stats.invgauss.logpdf(y, mu * disp, scale=1 / disp).sum()
    assert ig.aic(y, wt, mu, wt, dev) == pytest.approx(-2 * loglik + 2, rel=1e-10)


def test_response_checks_name_the_column():
    with pytest.raises(DataError, match="'ticks'.*negative"):
        poisson().check_response(np.array([1.0, -2.0]), "ticks")
    with pytest.raises(DataError, match="'ticks'.*non-integer"):
        negative_binomial().check_response(np.array([1.0, 2.5]), "ticks")
    with pytest.raises(DataError, match="'p'"):
        binomial().check_response(np.array([0.2, 1.5]), "p")
    with pytest.raises(DataError, match="'w'.*positive"):
        Gamma().check_response(np.array([0.0, 1.5]), "w")


def test_get_family():
    assert get_family("binomial").link.name == "logit"
    assert get_family("Gamma", link="log").link.name == "log"
    assert get_family("inverse_gaussian").link.name == "1/mu^2"
    assert get_family("negative_binomial").theta is None
    fam = binomial("probit")
    assert get_family(fam) is fam
    # gaussian with the identity link is the LMM's family; glmer sends it to lmer
    assert get_family("gaussian").linear
    with pytest.raises(ValueError, match="lmer"):
        mm.glmer("Reaction ~ Days + (1 | Subject)", mm.load_dataset("sleepstudy"), family="gaussian")
    with pytest.raises(ValueError, match="unknown link"):
        make_link("logarithm")
    with pytest.raises(ValueError, match="not available"):
        Gamma("logit")
