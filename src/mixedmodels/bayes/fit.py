"""Fully Bayesian LMM fits: :func:`bayes_lmm` samples (θ, σ) on the marginal posterior and draws β
and b from their conditional normals; :class:`BayesFit` holds the draws and summarises them with
lme4's parameter names.

Sampler: our own Metropolis-Hastings mixture over the few unconstrained variance coordinates
(:mod:`mixedmodels.bayes.sampler`); no compiled dependency. Chains run in parallel processes.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from ..exceptions import ConvergenceWarning
from ..models.family import Binomial, NegativeBinomial, Poisson
from ..models.lmm import LinearMixedModel
from ..models.priors import NormalPrior, PointPrior, Prior, TPrior, get_prior
from .diagnostics import ess_bulk, ess_tail, rhat
from .nuts import NutsResult, run_nuts
from .posterior import FixefGaussian, LMMPosterior
from .sampler import find_mode, run_chain

__all__ = ["BayesFit", "bayes_lmm", "bayes_glmm", "rstanarm_fixef_prior"]


def rstanarm_fixef_prior(X: np.ndarray, y: np.ndarray, names: list[str], gaussian: bool = True) -> FixefGaussian:
    """rstanarm's default (autoscaled) priors: for a Gaussian model each coefficient
    N(0, (2.5·sd(y)/sd(x_j))²) and the intercept of the centred predictors N(mean(y), (2.5·sd(y))²);
    for other families sd(y) is replaced by 1 and the intercept's location by 0."""
    p = X.shape[1]
    sy = float(np.std(y, ddof=1)) if gaussian else 1.0
    icpt = [j for j, n in enumerate(names) if n == "(Intercept)"]
    A = np.zeros((p, p))
    b = np.zeros(p)
    means = X.mean(axis=0)
    for j in range(p):
        if j in icpt:
            continue
        # sd(x) for dummies too: rstanarm 2.21.3's prior_summary of the grouseticks NB fit shows
        # 5.13 and 5.33 for the YEAR dummies (2.5 / their sd), though other rstanarm code divides
        # a two-valued predictor by its range
        sx = float(np.std(X[:, j], ddof=1))
        s = 2.5 * sy / sx if sx > 0 else 2.5 * sy
        A[j, j] += 1.0 / s ** 2
    if icpt:
        a = means.copy()
        a[icpt[0]] = 1.0
        s0 = 2.5 * sy
        A += np.outer(a, a) / s0 ** 2
        b += a * (float(np.mean(y)) if gaussian else 0.0) / s0 ** 2
    mu = np.linalg.solve(A, b)
    return FixefGaussian(A, mu, relative=False,
                         label="rstanarm: normal(0, 2.5 sd(y)/sd(x)), intercept normal(mean(y), 2.5 sd(y))")


def _fixef_gaussian(prior, p: int) -> FixefGaussian | None:
    if prior is None:
        return None
    if isinstance(prior, TPrior):
        raise NotImplementedError("mm.bayes_fit integrates β out analytically for LMMs, which needs a flat or normal "
                                  "prior on the fixed effects; a t prior is available in mm.blmer")
    assert isinstance(prior, NormalPrior)
    return FixefGaussian(prior.precision, np.zeros(p), relative=prior.common_scale, label=prior.describe())


def _run(args):
    post, mode, cov, warmup, draws, seed, thin = args

    def after(x, rng):
        return post.conditional_draw(x, rng)

    return run_chain(post.log_density, mode, cov, warmup, draws, seed, after=after, thin=thin)


def bayes_lmm(model: LinearMixedModel, *, cov_priors: list, fixef_prior, resid_prior, chains: int = 4,
              draws: int = 1000, warmup: int = 1000, seed=None, cores: int | None = None, thin: int = 1,
              start: tuple[np.ndarray, float] | None = None, prior_labels: list[str] | None = None) -> "BayesFit":
    """Sample an LMM's posterior (see the module docstring). ``model`` supplies the design and the
    factor; ``start`` (θ, σ) seeds the mode search (e.g. a blme fit's estimates)."""
    design = model.design
    p = design.X.shape[1]
    if isinstance(fixef_prior, FixefGaussian):
        fx = fixef_prior
    else:
        fx = _fixef_gaussian(fixef_prior, p)
    post = LMMPosterior(model, cov_priors, fx, resid_prior)
    if start is None:
        start = (model.factor.theta_start(), float(np.std(design.y)))
    x0 = post.to_x(*start)
    if not np.isfinite(post.log_density(x0)):
        x0 = post.to_x(np.where(model.factor.theta_lower_bounds() == 0, 0.5, 0.0), float(np.std(design.y)))
    results = _run_chains(_run, post, x0, chains, draws, warmup, seed, cores, thin)
    return BayesFit(model, post, results, prior_labels or [])


def _run_chains(run, post, x0: np.ndarray, chains: int, draws: int, warmup: int, seed, cores: int | None,
                thin: int) -> list:
    """From the mode of ``post`` near ``x0``, ``chains`` chains of ``run``, in parallel processes."""
    mode, cov = find_mode(post.log_density, x0)
    seeds = np.random.SeedSequence(seed).spawn(chains)
    return _pool_map(run, [(post, mode, cov, warmup, draws, s, thin) for s in seeds], cores)


def _run_glmm(args):
    post, mode, cov, warmup, draws, seed, thin = args
    post.model.engine.eta = post.model.linear_predictor()

    def after(x, rng):
        return post.conditional_draw(x, rng)

    return run_chain(post.log_density, mode, cov, warmup, draws, seed, after=after, thin=thin)


def _run_nuts(args):
    post, x0, warmup, draws, seed, thin, max_depth, delta = args
    rng = np.random.default_rng(seed)
    # dispersed starts around the Laplace mode, so that R-hat can see chains that disagree
    start = x0 + rng.uniform(-0.5, 0.5, len(x0))
    if not np.isfinite(post.log_density(start)):
        start = x0
    return run_nuts(post.log_density_and_gradient, start, warmup, draws, rng.integers(2 ** 63),
                    after=post.conditional_draw, thin=thin, max_depth=max_depth, delta=delta)


def _pool_map(run, jobs: list, cores: int | None) -> list:
    cores = min(len(jobs), os.cpu_count() or 1) if cores is None else max(1, int(cores))
    if cores > 1 and len(jobs) > 1:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ProcessPoolExecutor(max_workers=cores, mp_context=ctx) as pool:
            return list(pool.map(run, jobs))
    return [run(j) for j in jobs]


def bayes_glmm(model, *, cov_priors: list, fixef_prior, chains: int = 4, draws: int = 1000, warmup: int = 1000,
               seed=None, cores: int | None = None, thin: int = 1, prior_labels: list[str] | None = None,
               method: str = "nuts", max_treedepth: int = 10, adapt_delta: float = 0.8,
               nb_rate: float = 1.0) -> "BayesFit":
    """Sample a fitted GLMM's posterior. ``method="nuts"``: the exact joint posterior of (θ, β, u)
    (and the negative binomial size) by NUTS, non-centred (:mod:`mixedmodels.bayes.glmm_joint`);
    ``"laplace"``: (θ, β) on the Laplace/AGQ marginal (:mod:`mixedmodels.bayes.glmm_posterior`),
    u from its Gaussian approximation."""
    if method == "laplace":
        from .glmm_posterior import GLMMPosterior

        post = GLMMPosterior(model, cov_priors, fixef_prior)
        x0 = post.to_x(np.maximum(model.theta, 0.05), model.beta)
        results = _run_chains(_run_glmm, post, x0, chains, draws, warmup, seed, cores, thin)
        model.restore_fit_state()
        return BayesFit(model, post, results, prior_labels or [])
    from .glmm_joint import GLMMJointPosterior

    post = GLMMJointPosterior(model, cov_priors, fixef_prior, nb_rate=nb_rate)
    theta0 = np.maximum(model.theta, 0.05)
    with np.errstate(all="ignore"):
        _, res = model.evaluate(theta0, model.beta)
    model.restore_fit_state()
    size0 = getattr(model.family, "theta", None) if post.nb else None
    x0 = post.to_x(theta0, model.beta, np.asarray(res.u, dtype=float), size0)
    seeds = np.random.SeedSequence(seed).spawn(chains)
    jobs = [(post, x0, warmup, draws, s, thin, max_treedepth, adapt_delta) for s in seeds]
    return BayesFit(model, post, _pool_map(_run_nuts, jobs, cores), prior_labels or [])


class BayesFit:
    """Posterior draws of an LMM, named as lme4 names the parameters.

    Attributes
    ----------
    beta : ndarray (chains, draws, p)
    theta, sigma : ndarrays (chains, draws, n_theta) and (chains, draws)
    u : ndarray (chains, draws, q)
        The spherical random effects (``b = Λ u``).
    """

    def __init__(self, model: LinearMixedModel, posterior: LMMPosterior, results: list, prior_labels: list[str]):
        self.model = model
        self.posterior = posterior
        self.prior_labels = prior_labels
        self.chains = len(results)
        self.n_draws = len(results[0].x)
        xs = np.stack([r.x for r in results])
        th_sig = [[posterior.theta_sigma(x) for x in chain] for chain in xs]
        self.theta = np.array([[t for t, _ in chain] for chain in th_sig])
        self.sigma = np.array([[s for _, s in chain] for chain in th_sig])
        self.beta = np.array([[e[0] for e in r.extras] for r in results])
        self.u = np.array([[e[1] for e in r.extras] for r in results])
        self.logp = np.stack([r.logp for r in results])
        self.nuts = isinstance(results[0], NutsResult)
        if self.nuts:
            self.acceptance = pd.DataFrame({"accept_stat": [r.mean_accept for r in results],
                                            "step_size": [r.step_size for r in results],
                                            "divergences": [r.divergences for r in results],
                                            "max_treedepth_hits": [r.max_treedepth_hits for r in results],
                                            "leapfrog_steps": [r.n_leapfrog for r in results]})
        else:
            self.acceptance = pd.DataFrame({"independence": [r.accept_independence for r in results],
                                            "random_walk": [r.accept_walk for r in results]})
        # the negative binomial's size: one more sampled parameter, after the variance components
        self.extra_names = ["size"] if getattr(posterior, "nb", False) else []
        self.extra = (np.exp(xs[:, :, -1:]) if self.extra_names else np.zeros(xs.shape[:2] + (0,)))
        param = model.factor.parametrization
        terms = model.design.terms
        self.var_names = param.sdcor_names([t.group for t in terms], [t.columns for t in terms])
        self.has_sigma = getattr(posterior, "has_sigma", True)
        sv = np.array([[param.to_sdcor(t, s) for t, s in zip(tc, sc)] for tc, sc in zip(self.theta, self.sigma)])
        self._sdcor = sv if self.has_sigma else sv[:, :, :-1]
        self._summary = None
        self._warn()

    # -- draws -----------------------------------------------------------------------------------
    @property
    def parameter_names(self) -> list[str]:
        return (list(self.model.design.fixef_names) + self.var_names + (["sigma"] if self.has_sigma else [])
                + self.extra_names)

    def _matrix(self) -> np.ndarray:
        """(chains, draws, parameters) in :attr:`parameter_names` order."""
        return np.concatenate([self.beta, self._sdcor, self.extra], axis=2)

    def draws(self, ranef: bool = False) -> pd.DataFrame:
        """A tidy frame: one row per draw (``chain``, ``draw``), one column per parameter; with
        ``ranef=True`` also the random effects ``b[<column>|<group>:<level>]``."""
        M = self._matrix()
        c, d, k = M.shape
        frame = pd.DataFrame(M.reshape(c * d, k), columns=self.parameter_names)
        frame.insert(0, "draw", np.tile(np.arange(d), c))
        frame.insert(0, "chain", np.repeat(np.arange(c), d))
        if ranef:
            cols = {}
            b = self.ranef_draws()
            for term, arr in zip(self.model.design.terms, b):
                for j, col in enumerate(term.columns):
                    for g, lev in enumerate(term.levels):
                        cols[f"b[{col}|{term.group}:{lev}]"] = arr[:, :, g, j].reshape(-1)
            frame = pd.concat([frame, pd.DataFrame(cols)], axis=1)
        return frame

    def ranef_draws(self) -> list[np.ndarray]:
        """Per term, the random-effects draws as (chains, draws, levels, columns)."""
        out, pos = [], 0
        for i, term in enumerate(self.model.design.terms):
            q = term.nlevels * term.ncols
            u = self.u[:, :, pos:pos + q].reshape(self.chains, self.n_draws, term.nlevels, term.ncols)
            pos += q
            T = np.array([[self.model.factor.split_theta(t)[i] for t in tc] for tc in self.theta])
            out.append(np.einsum("cdgl,cdml->cdgm", u, T))
        return out

    # -- summaries -------------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """Mean, SD, 2.5% and 97.5% quantiles, R-hat, bulk and tail ESS per parameter."""
        if self._summary is None:
            M = self._matrix()
            rows = []
            for j, name in enumerate(self.parameter_names):
                x = M[:, :, j]
                flat = x.reshape(-1)
                rows.append((name, flat.mean(), flat.std(ddof=1), np.quantile(flat, 0.025),
                             np.quantile(flat, 0.975), rhat(x), ess_bulk(x), ess_tail(x)))
            self._summary = pd.DataFrame(rows, columns=["parameter", "mean", "sd", "2.5%", "97.5%", "rhat",
                                                        "ess_bulk", "ess_tail"]).set_index("parameter")
        return self._summary.copy()

    def _warn(self) -> None:
        s = self.summary()
        bad_rhat = s.index[s["rhat"] > 1.01].tolist()
        low_ess = s.index[(s["ess_bulk"] < 100 * self.chains) | (s["ess_tail"] < 100 * self.chains)].tolist()
        self.diagnostic_messages = []
        if bad_rhat:
            self.diagnostic_messages.append(
                f"R-hat above 1.01 for {', '.join(bad_rhat)}: the chains disagree. Run more warm-up and draws "
                "(warmup=, draws=), or use stronger priors on the variance parameters (e.g. "
                "cov_prior=mm.priors.decov(shape=2)) when the posterior of a group SD is flat.")
        if low_ess:
            self.diagnostic_messages.append(
                f"effective sample size below {100 * self.chains} (100 per chain) for {', '.join(low_ess)}: "
                "quantiles and intervals are imprecise. Run more draws (draws=), or thin less.")
        if self.nuts:
            div = int(self.acceptance["divergences"].sum())
            if div:
                self.diagnostic_messages.append(
                    f"{div} divergent transitions after warm-up: the sampler could not follow the posterior's "
                    "curvature (typically a funnel of a group SD near 0), so the draws may be biased. Raise "
                    "adapt_delta (e.g. 0.95, smaller steps), use stronger priors on the group SDs (e.g. "
                    "cov_prior=mm.priors.decov(shape=2)), or method='laplace' (the marginal of θ and β).")
            hits = int(self.acceptance["max_treedepth_hits"].sum())
            if hits:
                self.diagnostic_messages.append(
                    f"{hits} transitions hit the maximum tree depth: the sampler is inefficient (not biased). "
                    "Raise max_treedepth, or centre and scale the predictors.")
        acc = self.acceptance.to_numpy()
        if not self.nuts and np.any(acc[:, 0] < 0.05) and np.any(acc[:, 1] < 0.05):
            self.diagnostic_messages.append(
                "the sampler rarely accepted a move in some chain: the posterior is far from the normal "
                "approximation at its mode (in log-SD coordinates); try stronger priors or a "
                "reparametrised model.")
        for msg in self.diagnostic_messages:
            warnings.warn(msg, ConvergenceWarning, stacklevel=3)

    def __repr__(self) -> str:
        if self.has_sigma:
            kind, how = "linear", "β and b drawn given (θ, σ)"
        elif self.nuts:
            kind, how = "generalized linear", "NUTS on the joint posterior of (θ, β, b)"
        else:
            kind, how = "generalized linear (AGQ/Laplace marginal)", "b from its Gaussian approximation"
        head = (f"Bayesian {kind} mixed model: {self.model.design.formula.text}\n"
                f"{self.chains} chains × {self.n_draws} draws; {how}\n")
        if self.prior_labels:
            head += "Priors: " + "; ".join(self.prior_labels) + "\n"
        return head + self.summary().to_string(float_format=lambda v: f"{v:.4g}")

    # -- arviz, prediction, plots ----------------------------------------------------------------
    def to_arviz(self):
        """An ArviZ ``InferenceData`` (needs ``pip install arviz``, the ``bayes`` extra)."""
        try:
            import arviz as az
        except ImportError:
            raise ImportError("to_arviz needs arviz: pip install 'mixedmodels[bayes]' (or arviz)") from None
        M = self._matrix()
        post = {name: M[:, :, j] for j, name in enumerate(self.parameter_names)}
        return az.from_dict(posterior=post)

    def predictive_draws(self, newdata: pd.DataFrame | None = None, re_form: str | None = None,
                         allow_new_levels: bool = False, kind: str = "mean", n_draws: int | None = 400,
                         seed=None, trials=None) -> np.ndarray:
        """Posterior draws (draws × rows of ``newdata``, the fitted rows when None) of

        * ``kind="link"``: the linear predictor η = Xβ + Zb (rstanarm's ``posterior_linpred``);
        * ``"mean"``: the expected response g⁻¹(η) (``posterior_epred``; for a binomial model the
          probability);
        * ``"predictive"``: a new response (``posterior_predict``): η plus a N(0, σ²) residual for
          an LMM, binomial counts out of ``trials`` (a column of ``newdata``, an array, or 1;
          the fitted trials when ``newdata`` is None), Poisson or negative binomial counts.

        Levels not in the fit (with ``allow_new_levels``) get random effects drawn from N(0, Σ)
        of each draw, one per new level and draw, as rstanarm does. ``n_draws`` posterior draws are
        used (all when None), chosen at random with ``seed``."""
        if kind not in ("link", "mean", "predictive"):
            raise ValueError(f"kind must be 'link', 'mean' or 'predictive', got {kind!r}")
        rng = np.random.default_rng(seed)
        idx = [(c, d) for c in range(self.chains) for d in range(self.n_draws)]
        if n_draws is not None and n_draws < len(idx):
            idx = [idx[i] for i in np.sort(rng.choice(len(idx), size=n_draws, replace=False))]
        offset, X, cols = self._linear_pieces(newdata, re_form, allow_new_levels)
        ci = np.array([c for c, _ in idx])
        di = np.array([d for _, d in idx])
        eta = offset[None, :] + self.beta[ci, di] @ X.T
        if cols:
            B = self.ranef_draws()
            for t, j, v, codes in cols:
                known = codes >= 0
                eta[:, known] += v[known][None, :] * B[t][ci, di][:, codes[known], j]
        out = []
        for k, (c, d) in enumerate(idx):
            e = eta[k]
            if allow_new_levels and newdata is not None and re_form is None:
                e = e + _new_level_effects(self.model, newdata, self.theta[c, d], self.sigma[c, d], rng)
            out.append(self._response_draw(e, kind, c, d, rng, newdata, trials))
        return np.array(out)

    def _linear_pieces(self, newdata, re_form, allow_new_levels):
        """η on ``newdata`` is affine in (β, b): probe the point prediction (which builds the new
        model matrices, masks and level codes) at unit β and at two settings of each random-effects
        column, instead of once per draw. Returns the offset, X, and per (term, column) the
        values and the level codes (−1: a level not in the fit)."""
        from ..postestimation.predict import predict as point_predict

        m = self.model
        glmm = not self.has_sigma
        names = ("_theta", "_beta", "_u_all") if glmm else ("_theta", "_beta", "_u", "_sigma")
        saved = {a: getattr(m, a, None) for a in names}
        terms = m.design.terms
        p = len(m.design.fixef_names)

        def eta(beta, bs):
            m._beta = beta
            flat = [b.reshape(-1) for b in bs]
            if glmm:
                m._u_all = np.concatenate(flat) if flat else np.zeros(0)
            else:
                m._u = flat
            return np.asarray(point_predict(m, newdata, re_form=re_form, allow_new_levels=allow_new_levels),
                              dtype=float)

        try:
            m._theta = m.factor.parametrization.start()   # T = I: b = u
            zero_b = [np.zeros((t.nlevels, t.ncols)) for t in terms]
            offset = eta(np.zeros(p), zero_b)
            X = np.column_stack([eta(e, zero_b) - offset for e in np.eye(p)]) if p else np.zeros((len(offset), 0))
            cols = []
            for i, t in enumerate(terms):
                for j in range(t.ncols):
                    bs = [b.copy() for b in zero_b]
                    bs[i][:, j] = 1.0
                    v = eta(np.zeros(p), bs) - offset
                    bs[i][:, j] = np.arange(1, t.nlevels + 1)
                    w = eta(np.zeros(p), bs) - offset
                    with np.errstate(all="ignore"):
                        ok = np.isfinite(v) & np.isfinite(w) & (v != 0)
                        codes = np.where(ok, np.rint(w / np.where(ok, v, 1.0)) - 1, -1).astype(np.int64)
                    if np.any(codes >= 0):
                        cols.append((i, j, v, codes))
        finally:
            for a, val in saved.items():
                setattr(m, a, val)
        return offset, X, cols

    def _response_draw(self, eta: np.ndarray, kind: str, c: int, d: int, rng, newdata, trials) -> np.ndarray:
        if kind == "link":
            return eta
        if self.has_sigma:
            return eta + self.sigma[c, d] * rng.standard_normal(len(eta)) if kind == "predictive" else eta
        fam = self.model.family
        mu = fam.link.inverse(eta)
        if kind == "mean":
            return mu
        if isinstance(fam, Binomial):
            n = _trials(self.model, newdata, trials, len(mu))
            return rng.binomial(n, np.clip(mu, 0.0, 1.0)).astype(float)
        if isinstance(fam, Poisson):
            return rng.poisson(mu).astype(float)
        if isinstance(fam, NegativeBinomial):
            k = float(self.extra[c, d, 0])
            return rng.negative_binomial(k, k / (k + mu)).astype(float)
        raise NotImplementedError(f"posterior predictive draws for the {fam.name} family")

    def predict(self, newdata: pd.DataFrame | None = None, re_form: str | None = None,
                allow_new_levels: bool = False, kind: str = "mean", level: float = 0.95,
                n_draws: int | None = 400, seed=None, trials=None) -> pd.DataFrame:
        """Posterior summaries of :meth:`predictive_draws` (see there for ``kind``): the mean, SD
        and the central ``level`` interval per row of ``newdata`` (the fitted rows when None)."""
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1, got {level!r}")
        P = self.predictive_draws(newdata, re_form=re_form, allow_new_levels=allow_new_levels, kind=kind,
                                  n_draws=n_draws, seed=seed, trials=trials)
        a = (1 - level) / 2
        return pd.DataFrame({"mean": P.mean(axis=0), "sd": P.std(axis=0, ddof=1),
                             "lower": np.quantile(P, a, axis=0), "upper": np.quantile(P, 1 - a, axis=0)})

    def fitted(self, kind: str = "mean", level: float = 0.95, n_draws: int | None = None, seed=None) -> pd.DataFrame:
        """Posterior summaries of the fitted values (the expected response of each fitted row,
        rstanarm's ``posterior_epred`` without new data); ``kind="link"`` for η."""
        return self.predict(None, kind=kind, level=level, n_draws=n_draws, seed=seed)

    def plot_trace(self, parameters: list[str] | None = None):
        """Trace plots (one line per chain) and densities; returns the figure."""
        import matplotlib.pyplot as plt

        names = parameters or self.parameter_names
        M = self._matrix()
        fig, axes = plt.subplots(len(names), 2, figsize=(9, 1.8 * len(names)), squeeze=False)
        for i, name in enumerate(names):
            j = self.parameter_names.index(name)
            for c in range(self.chains):
                axes[i, 0].plot(M[c, :, j], lw=0.5)
                axes[i, 1].hist(M[c, :, j], bins=40, histtype="step", density=True)
            axes[i, 0].set_ylabel(name, fontsize=8)
        fig.tight_layout()
        return fig

    def plot_posterior(self, parameters: list[str] | None = None, level: float = 0.95):
        """Posterior densities with the mean and the central ``level`` interval; returns the figure."""
        import matplotlib.pyplot as plt

        names = parameters or self.parameter_names
        s = self.summary()
        M = self._matrix()
        cols = min(3, len(names))
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
        a = (1 - level) / 2
        for ax, name in zip(axes.ravel(), names):
            x = M[:, :, self.parameter_names.index(name)].ravel()
            ax.hist(x, bins=60, density=True, color="0.7")
            lo, hi = np.quantile(x, [a, 1 - a])
            ax.axvline(s.loc[name, "mean"], color="k")
            ax.axvline(lo, color="k", ls="--")
            ax.axvline(hi, color="k", ls="--")
            ax.set_title(name, fontsize=9)
        for ax in axes.ravel()[len(names):]:
            ax.set_visible(False)
        fig.tight_layout()
        return fig


def _trials(model, newdata, trials, n: int) -> np.ndarray:
    if trials is None:
        return model.trials.astype(np.int64) if newdata is None else np.ones(n, dtype=np.int64)
    if isinstance(trials, str):
        if newdata is None or trials not in newdata.columns:
            raise ValueError(f"trials names the column {trials!r}, which newdata does not have")
        trials = newdata[trials].to_numpy()
    t = np.asarray(trials, dtype=float)
    if t.shape != (n,) or np.any(t < 0) or np.any(t != np.round(t)):
        raise ValueError(f"trials must be {n} non-negative whole numbers (one per row)")
    return t.astype(np.int64)


def _new_level_effects(model, newdata: pd.DataFrame, theta, sigma, rng) -> np.ndarray:
    """Random effects for levels not in the fit, drawn from N(0, σ² T Tᵀ) (zero in the point
    prediction, as lme4's ``allow.new.levels``)."""
    add = np.zeros(len(newdata))
    for term, T in zip(model.design.terms, model.factor.split_theta(theta)):
        if term.group not in newdata.columns:
            continue
        known = set(map(str, term.levels))
        keys = newdata[term.group].astype(str).to_numpy()
        new = np.array([k not in known for k in keys])
        if not new.any():
            continue
        draws = {k: sigma * (T @ rng.standard_normal(term.ncols)) for k in set(keys[new])}
        for i in np.flatnonzero(new):
            row = np.ones(term.ncols)
            for j, col in enumerate(term.columns):
                if col != "(Intercept)" and col in newdata.columns:
                    row[j] = float(newdata[col].iloc[i])
            add[i] += row @ draws[keys[i]]
    return add


def resolve_resid(value, y: np.ndarray):
    """The σ prior: None → exponential(1/sd(y)); ``mm.priors.exponential``; a blme resid prior."""
    if value is None:
        return ("exponential", 1.0 / float(np.std(y, ddof=1)))
    if value == "flat":
        return None
    pr = get_prior(value, "resid")
    if isinstance(pr, Prior) and pr.name == "exponential":
        rate = pr.args.get("rate")
        return ("exponential", 1.0 / float(np.std(y, ddof=1)) if rate is None else float(rate))
    bound = pr.bind("resid")
    if isinstance(bound, PointPrior):
        raise NotImplementedError("a point prior on σ is not available in mm.bayes_fit")
    return bound
