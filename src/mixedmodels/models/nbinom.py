"""The negative binomial GLMM with its dispersion θ estimated: lme4's ``glmer.nb``.

An outer one-parameter optimization over log θ (Brent's method, through the optimizer
registry) around GLMM fits with the family's θ fixed, each warm-started from the last.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..spec.design import ModelDesign
from .family import NegativeBinomial, Poisson
from .glmm import GeneralizedLinearMixedModel
from .optim import Control, minimize

__all__ = ["fit_negative_binomial", "theta_ml"]


def theta_ml(y: np.ndarray, mu: np.ndarray, wt: np.ndarray, limit: int = 20,
              eps: float = 1e-4) -> float:
    """Maximum-likelihood negative binomial θ for fixed μ (Newton, as MASS's ``theta.ml``)."""
    from scipy.special import digamma, polygamma

    n = np.sum(wt)
    t0 = n / np.sum(wt * (y / mu - 1.0) ** 2)
    for _ in range(limit):
        t0 = abs(t0)
        score = np.sum(wt * (digamma(t0 + y) - digamma(t0) + np.log(t0) + 1.0
                             - np.log(t0 + mu) - (y + t0) / (mu + t0)))
        info = np.sum(wt * (-polygamma(1, t0 + y) + polygamma(1, t0) - 1.0 / t0
                            + 2.0 / (mu + t0) - (y + t0) / (mu + t0) ** 2))
        delta = score / info
        t0 = t0 + delta
        if abs(delta) <= eps:
            break
    if not np.isfinite(t0) or t0 <= 0:
        t0 = 1.0
    return float(t0)


def fit_negative_binomial(design: ModelDesign, fam: NegativeBinomial, n_agq: int,
                          control: Control | None) -> GeneralizedLinearMixedModel:
    """lme4's ``glmer.nb``: a Poisson fit, θ from ``theta.ml``, then θ by Brent's method on
    the Laplace deviance (through the optimizer registry), each GLMM fit warm-started."""
    pois = GeneralizedLinearMixedModel(design, Poisson(fam.link), n_agq, control)
    y, wt = pois.response, pois.prior_weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pois.fit()
    th0 = theta_ml(y, pois.fitted(), wt)
    fam.theta = th0
    model = GeneralizedLinearMixedModel(design, fam, n_agq, control)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit()
    state = {"theta": model.theta, "beta": model.beta}
    log = []

    def nb_deviance(x: np.ndarray) -> float:
        log_theta = float(np.asarray(x).ravel()[0])
        fam.theta = float(np.exp(log_theta))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(start={"theta": state["theta"], "beta": state["beta"]})
        state["theta"], state["beta"] = model.theta, model.beta
        dev = -2.0 * model.loglik
        log.append((fam.theta, dev))
        return dev

    lo, hi = np.log(th0) - 3.0, np.log(th0) + 3.0
    opt = minimize(nb_deviance, np.array([np.log(th0)]), np.array([lo]), control,
                   np.array([hi]), optimizer="brent", options={"xatol": 5e-5, "maxfun": 500})
    best_theta = float(np.exp(opt.x[0]))
    if fam.theta != best_theta:
        nb_deviance(opt.x)
    model.nb_log = log
    model.optinfo_nb = opt
    model.fit(start={"theta": state["theta"], "beta": state["beta"]})
    return model
