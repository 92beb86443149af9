"""The entry points for few clusters: :func:`blmer` and :func:`bglmer` (blme's penalized fits),
:func:`bayes` (posterior sampling) and :func:`compare_small_sample` (REML, ML, blme and Bayes
side by side)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..bayes import register_fit
from ..bayes.fit import BayesFit, bayes_glmm, bayes_lmm, resolve_resid, rstanarm_fixef_prior
from ..exceptions import DataError
from ..models.family import NegativeBinomial, get_family
from ..models.optim import Control
from ..models.penalized import PenalizedGeneralizedLinearMixedModel, PenalizedLinearMixedModel, bind_priors
from ..spec.arguments import check_bool, check_count
from ..spec.design import build_design
from ..spec.response import Response, response_parser


def _check_common(na_action, weights, offset, control) -> None:
    if na_action not in ("drop", "raise"):
        raise ValueError(f"na_action must be 'drop' or 'raise', got {na_action!r}")
    for name, v in (("weights", weights), ("offset", offset)):
        if v is not None and not isinstance(v, (str, np.ndarray, pd.Series, list, tuple)):
            raise TypeError(f"{name} must be a column name or an array with one value per row, got "
                            f"{type(v).__name__}")
    if control is not None and not isinstance(control, Control):
        raise TypeError(f"control must be a mm.Control, got {type(control).__name__}")

__all__ = ["blmer", "bglmer", "bayes_fit", "BayesFit"]


def blmer(formula: str, data: pd.DataFrame, *, reml: bool = True, cov_prior="wishart", fixef_prior=None,
          resid_prior=None, weights=None, offset=None, na_action: str = "drop",
          control: Control | None = None, expand_doublebar: str = "lme4") -> PenalizedLinearMixedModel:
    """Fit a linear mixed model by maximising the posterior, as blme's ``blmer``.

    Parameters
    ----------
    formula, data, reml, weights, offset, na_action, control, expand_doublebar
        As :func:`mixedmodels.lmer`.
    cov_prior : prior, name, None or dict, default "wishart"
        The prior on each term's covariance: blme's default ``wishart`` (df = dimension + 2.5,
        scale = inf), ``invwishart``, ``gamma`` or ``invgamma`` (scalar terms), None, or per
        grouping factor ``{"g": mm.priors.gamma(), "h": None}`` (``"*"`` for the others).
        A name means blme's defaults for it.
    fixef_prior : prior, name or None
        ``mm.priors.normal(sd=...)`` or ``mm.priors.t(...)`` (the t needs ``reml=False``).
    resid_prior : prior, name or None
        ``mm.priors.point(value)``, ``gamma`` or ``invgamma`` on σ².

    Returns
    -------
    PenalizedLinearMixedModel
        A fitted model like :func:`~mixedmodels.lmer`'s; ``loglik`` is the likelihood at the mode,
        ``penalty`` the prior's deviance, ``penalized_objective`` their sum.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> m = mm.blmer("Yield ~ 1 + (1 | Batch)", mm.load_dataset("Dyestuff2"))
    >>> round(float(m.theta[0]), 4)
    0.4106
    """
    reml = check_bool("reml", reml)
    _check_common(na_action, weights, offset, control)
    design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action,
                          expand_doublebar=expand_doublebar)
    if not design.terms:
        raise DataError("the formula has no random-effects term such as (1 | g)")
    priors = bind_priors(design, cov_prior, fixef_prior, resid_prior)
    model = PenalizedLinearMixedModel(design, reml=reml, control=control, priors=priors)
    return model.fit()


def bglmer(formula: str, data: pd.DataFrame, *, family="binomial", cov_prior="wishart", fixef_prior=None,
           n_agq: int = 1, weights=None, offset=None, na_action: str = "drop", control: Control | None = None,
           expand_doublebar: str = "lme4") -> PenalizedGeneralizedLinearMixedModel:
    """Fit a GLMM by maximising the Laplace-approximate posterior, as blme's ``bglmer``.

    Parameters
    ----------
    formula, data, family, n_agq, weights, offset, na_action, control, expand_doublebar
        As :func:`mixedmodels.glmer`.
    cov_prior : prior, name, None or dict, default "wishart"
        As :func:`blmer` (GLMM defaults of blme for ``invwishart`` and ``invgamma``).
    fixef_prior : prior, name or None
        ``normal`` (β ~ N(0, diag(sd²)), default sd = (10, 2.5)) or ``t`` (multivariate t, df 3,
        scale (10², 2.5²)).

    Returns
    -------
    PenalizedGeneralizedLinearMixedModel
    """
    _check_common(na_action, weights, offset, control)
    if isinstance(n_agq, (bool, np.bool_)) or int(n_agq) != n_agq or not 0 <= n_agq <= 100:
        raise ValueError(f"n_agq must be an integer from 0 to 100, got {n_agq!r}")
    fam = get_family(family)
    if fam.linear:
        raise ValueError("family 'gaussian' with the identity link is a linear mixed model: use mm.blmer")
    store = Response()
    design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action,
                          response=response_parser(fam, store), check_levels=False,
                          expand_doublebar=expand_doublebar)
    if store.trials is not None:
        import dataclasses

        design = dataclasses.replace(design, trials=store.trials)
    if not design.terms:
        raise DataError("the formula has no random-effects term such as (1 | g)")
    priors = bind_priors(design, cov_prior, fixef_prior, None, glmm=True)
    model = PenalizedGeneralizedLinearMixedModel(design, fam, n_agq, control, priors=priors)
    return model.fit()


def _bayes_cov_priors(design, cov_prior) -> tuple[list, list[str]]:
    from ..models.priors import Prior, decov, get_prior

    terms = design.terms
    groups = [t.group for t in terms]
    if isinstance(cov_prior, dict):
        unknown = [g for g in cov_prior if g != "*" and g not in groups]
        if unknown:
            raise ValueError(f"cov_prior names grouping factor(s) {unknown} that are not in the model")
        chosen = [cov_prior.get(g, cov_prior.get("*", "decov")) for g in groups]
    else:
        chosen = [cov_prior] * len(terms)
    out, labels = [], []
    for value, t in zip(chosen, terms):
        pr = decov() if value is None else get_prior(value, "cov")
        if pr is None or pr.name == "flat":
            out.append(None)
            labels.append(f"{t.group} ~ flat on θ")
        elif isinstance(pr, Prior) and pr.name == "decov":
            out.append(pr)
            labels.append(f"{t.group} ~ {pr!r}")
        else:
            bound = pr.bind("cov", level_dim=t.ncols, group=t.group)
            out.append(bound)
            labels.append(f"{t.group} ~ {bound.describe()}" if bound is not None else f"{t.group} ~ flat")
    return out, labels


def bayes_fit(formula: str, data: pd.DataFrame, *, chains: int = 4, draws: int = 1000, warmup: int = 1000,
              seed=None, priors: str = "default", cov_prior=None, fixef_prior=None, resid_prior=None,
              family=None, weights=None, na_action: str = "drop", cores: int | None = None, thin: int = 1,
              method: str = "nuts", max_treedepth: int = 10, adapt_delta: float = 0.8, nb_rate: float = 1.0):
    """Fully Bayesian fit of a linear or generalized linear mixed model with an lme4 formula
    (rstanarm's ``stan_lmer`` / ``stan_glmer`` / ``stan_glmer.nb``).

    LMMs: only the variance parameters (θ, σ) are sampled, on their marginal posterior: the fixed
    and random effects integrate out analytically through the same blocked Cholesky factor the
    fit uses, and are drawn from their conditional normal distributions afterwards. The sampler is
    our own Metropolis-Hastings mixture (an independence t proposal at the posterior mode and an
    adaptive random walk, see :mod:`mixedmodels.bayes.sampler`). GLMMs: our own NUTS on the exact
    joint posterior (:mod:`mixedmodels.bayes.nuts`, :mod:`mixedmodels.bayes.glmm_joint`). Chains
    run in parallel processes.

    Parameters
    ----------
    formula : str
        lme4 syntax; at least one random-effects term.
    data : pandas.DataFrame
    chains, draws, warmup : int
        Chains, kept draws per chain, warm-up iterations per chain.
    seed : int, optional
    priors : {"default", "rstanarm"}
        ``"default"``: rstanarm's ``decov(1, 1, 1, 1)`` on each term's covariance (relative to σ²),
        a flat prior on β and σ ~ exponential(1/sd(y)). ``"rstanarm"``: rstanarm's defaults,
        which add its autoscaled normal priors on β (the intercept's on the centred predictors).
    cov_prior : prior, name, dict or None
        Overrides the covariance prior: ``mm.priors.decov(...)``, or one of blme's (``wishart``,
        ``invwishart``, ``gamma``, ``invgamma``, relative to σ²), so that the MAP of
        :func:`blmer` and this posterior use the same prior; per group as in :func:`blmer`.
    fixef_prior : prior, name or None
        ``mm.priors.normal(...)`` (blme's semantics); None keeps the ``priors`` choice.
    resid_prior : prior, name or None
        ``mm.priors.exponential(rate)``, blme's ``gamma``/``invgamma`` on σ², or ``"flat"``.
    family : None, "gaussian", "binomial", "poisson" or "negative_binomial"
        A GLMM family (or a family object with its link). GLMMs are sampled by NUTS on the exact
        joint posterior of (θ, β, b), non-centred as rstanarm's programs; the negative binomial's
        size k (variance μ + μ²/k) is sampled too, with the prior k ~ exponential(``nb_rate``)
        (rstanarm's ``stan_glmer.nb`` default).
    cores : int, optional
        Processes for the chains (default: one per chain, up to the CPUs).
    method : {"nuts", "laplace"}
        GLMMs only. ``"laplace"``: sample (θ, β) on the Laplace marginal (adaptive Gauss-Hermite
        quadrature with 9 nodes for one scalar term) with our Metropolis sampler, and b from its
        Gaussian approximation: faster, approximate where the Laplace approximation is.
    max_treedepth, adapt_delta : int, float
        NUTS settings (Stan's names and defaults): raise ``adapt_delta`` after divergences.
    nb_rate : float
        The rate of the exponential prior on the negative binomial size.

    Returns
    -------
    BayesFit
        ``summary()``, ``draws()``, ``to_arviz()``, ``predict()``, ``plot_trace()``,
        ``plot_posterior()``.
    """
    from ..models.lmm import LinearMixedModel
    from ..models.priors import get_prior

    if priors not in ("default", "rstanarm"):
        raise ValueError(f"priors must be 'default' or 'rstanarm', got {priors!r}")
    for name, v in (("chains", chains), ("draws", draws), ("warmup", warmup), ("thin", thin)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "warmup" else 1):
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    _check_common(na_action, weights, None, None)
    if method not in ("nuts", "laplace"):
        raise ValueError(f"method must be 'nuts' or 'laplace', got {method!r}")
    max_treedepth = check_count("max_treedepth", max_treedepth)
    for name, v, hi in (("adapt_delta", adapt_delta, 1.0), ("nb_rate", nb_rate, np.inf)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not 0 < v < hi:
            raise ValueError(f"{name} must be a number in (0, {hi}), got {v!r}")
    fam = None if family is None else get_family(family)
    if fam is not None and not fam.linear:
        return _bayes_glmm(formula, data, fam, chains=chains, draws=draws, warmup=warmup, seed=seed,
                           priors=priors, cov_prior=cov_prior, fixef_prior=fixef_prior, weights=weights,
                           na_action=na_action, cores=cores, thin=thin, method=method,
                           max_treedepth=max_treedepth, adapt_delta=adapt_delta, nb_rate=nb_rate)
    design = build_design(formula, data, weights=weights, na_action=na_action)
    if not design.terms:
        raise DataError("mm.bayes_fit needs a model with random effects, such as (1 | g); this formula has "
                        "none (for a linear model without random effects, use a Bayesian regression)")
    cov, labels = _bayes_cov_priors(design, cov_prior)
    y = np.asarray(design.y, dtype=float)
    if fixef_prior is not None:
        fp = get_prior(fixef_prior, "fixef")
        fx = None if fp is None else fp.bind("fixef", p=design.X.shape[1])
        labels.append(f"fixef ~ {fx.describe()}" if fx is not None else "fixef ~ flat")
    elif priors == "rstanarm":
        fx = rstanarm_fixef_prior(design.X, y, list(design.fixef_names))
        labels.append("fixef ~ " + fx.label)
    else:
        fx = None
        labels.append("fixef ~ flat")
    resid = resolve_resid(resid_prior, y)
    labels.append(f"sigma ~ exponential(rate = {resid[1]:.4g})" if isinstance(resid, tuple)
                  else ("sigma ~ flat" if resid is None else f"sigma² ~ {resid.describe()}"))
    model = LinearMixedModel(design, reml=False)
    # the mode search starts at blme's default penalized fit (never on the boundary)
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start_fit = PenalizedLinearMixedModel(design, reml=True, priors=bind_priors(design)).fit()
        start = (start_fit.theta, start_fit.sigma)
    except (np.linalg.LinAlgError, ValueError):
        start = None
    return bayes_lmm(model, cov_priors=cov, fixef_prior=fx, resid_prior=resid, chains=chains, draws=draws,
                     warmup=warmup, seed=seed, cores=cores, thin=thin, start=start, prior_labels=labels)


def _bayes_glmm(formula, data, fam, *, chains, draws, warmup, seed, priors, cov_prior, fixef_prior, weights,
                na_action, cores, thin, method, max_treedepth, adapt_delta, nb_rate):
    """GLMMs: NUTS on the joint posterior, or (θ, β) on the Laplace marginal (method="laplace")."""
    import warnings

    from ..models.glmm import GeneralizedLinearMixedModel
    from ..models.priors import get_prior

    nb = isinstance(fam, NegativeBinomial)
    if fam.has_scale:
        raise NotImplementedError("mm.bayes_fit samples binomial, Poisson and negative binomial GLMMs; "
                                  f"the {fam.name} family (with a scale parameter) is not available")
    if nb and method == "laplace":
        raise NotImplementedError("the negative binomial's size is sampled by NUTS only: use method='nuts'")
    store = Response()
    design = build_design(formula, data, weights=weights, na_action=na_action,
                          response=response_parser(fam, store), check_levels=False)
    if not design.terms:
        raise DataError("mm.bayes_fit needs a model with random effects, such as (1 | g); this formula has none")
    if store.trials is not None:
        import dataclasses

        design = dataclasses.replace(design, trials=store.trials)
    cov, labels = _bayes_cov_priors(design, cov_prior)
    p = design.X.shape[1]
    if fixef_prior is not None:
        fp = get_prior(fixef_prior, "fixef")
        bound = None if fp is None else fp.bind("fixef", p=p, glmm=True)
        if bound is not None and bound.name != "normal":
            raise NotImplementedError("mm.bayes_fit takes a flat or normal prior on the fixed effects")
        from ..bayes.posterior import FixefGaussian

        fx = None if bound is None else FixefGaussian(bound.precision, np.zeros(p), False, bound.describe())
    elif priors == "rstanarm":
        fx = rstanarm_fixef_prior(design.X, np.asarray(design.y, float), list(design.fixef_names), gaussian=False)
    else:
        fx = None
    labels.append("fixef ~ " + ("flat" if fx is None else fx.label))
    if nb:
        labels.append(f"size ~ exponential(rate = {nb_rate:.4g})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # laplace: for one scalar term the marginal by adaptive Gauss-Hermite quadrature (9 nodes),
        # nearly exact (the Laplace approximation understates a binomial group SD; cbpp: by 0.1
        # posterior SD). nuts: the fit is only the chains' start.
        scalar = len(design.terms) == 1 and design.terms[0].ncols == 1
        if nb:
            from ..models.nbinom import fit_negative_binomial

            model = fit_negative_binomial(design, NegativeBinomial(link=fam.link), 1, None)
        else:
            model = GeneralizedLinearMixedModel(design, fam, 9 if scalar and method == "laplace" else 1)
            model.fit()
    return bayes_glmm(model, cov_priors=cov, fixef_prior=fx, chains=chains, draws=draws, warmup=warmup,
                      seed=seed, cores=cores, thin=thin, prior_labels=labels, method=method,
                      max_treedepth=max_treedepth, adapt_delta=adapt_delta, nb_rate=nb_rate)


# mm.bayes(formula, data, ...), the spelling: the subpackage mixedmodels.bayes is callable
register_fit(bayes_fit)
