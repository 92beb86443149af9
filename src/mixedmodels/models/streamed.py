"""Mixed models whose rows stay in their source (Parquet/CSV, DuckDB, polars lazy, Dask, Spark).

- :class:`StreamedLMM`: the LMM fitted from the crossproducts of pass 2; per-row results
  (fitted values, residuals) are passes over the source again.
- :class:`StreamedGLMM`: the GLMM of :class:`~mixedmodels.models.glmm.GeneralizedLinearMixedModel`
  (same stages, optimizers and deviances) with :class:`StreamedPirlsEngine` as its PIRLS engine:
  each PIRLS iteration is one map-reduce pass over the rows cached where they live
  (:mod:`mixedmodels.sources.rowcache`), which returns the deviance at the current linear
  predictor and the weighted crossproducts of ``[Z X z]`` there; the solves are the in-memory
  blocked factor's. The linear predictor is held as its coefficients (:class:`Predictor`), never
  as n numbers. The passes are counted in ``optinfo.passes``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..core.backends import RowChunk
from ..core.crossproducts import BlockedCrossproducts, TermShape
from ..core.factor import BlockedFactor
from ..sources.partial import add_crossproducts
from .base import extension
from .family import NegativeBinomial
from .glmm import GeneralizedLinearMixedModel
from .lmm import LinearMixedModel
from .pirls import PirlsResult

__all__ = ["Predictor", "StreamedGLMM", "StreamedLMM", "StreamedPirlsEngine", "streamed_glmer"]

_STEP_FLOOR = 1e-7  # as the in-memory PIRLS: a tiny step that stops shrinking is rounding


class Predictor:
    """``η = offset + c·g(μ₀) + Xβ + Σ_k Z_k b_k``: a linear predictor by its coefficients (``c``
    weighs PIRLS' start, the link of the family's starting means)."""

    __slots__ = ("c", "beta", "b")

    def __init__(self, c: float, beta: np.ndarray, b: list[np.ndarray]):
        self.c, self.beta, self.b = float(c), beta, b

    def copy(self) -> "Predictor":
        return Predictor(self.c, self.beta.copy(), [x.copy() for x in self.b])

    def mid(self, other: "Predictor") -> "Predictor":
        return Predictor(0.5 * (self.c + other.c), 0.5 * (self.beta + other.beta),
                         [0.5 * (x + y) for x, y in zip(self.b, other.b)])

    def key(self) -> bytes:
        return np.concatenate([[self.c], self.beta] + [x.ravel() for x in self.b]).tobytes()

    def eta(self, chunk, family) -> np.ndarray:
        eta = chunk.offset + chunk.X @ self.beta if len(self.beta) else chunk.offset.copy()
        if self.c:
            eta = eta + self.c * family.link.link(family.pirls_mustart(chunk.y, chunk.wt))
        for codes, values, b in zip(chunk.codes, chunk.values, self.b):
            eta = eta + np.einsum("ij,ij->i", values, b[codes])
        return eta


class PassSums:
    """One pass's sums: the deviance, the weighted crossproducts, the Pearson χ²."""

    __slots__ = ("dev", "cp", "pearson")

    def __init__(self, dev: float, cp: BlockedCrossproducts | None, pearson: float):
        self.dev, self.cp, self.pearson = dev, cp, pearson

    def __add__(self, other: "PassSums") -> "PassSums":
        cp = other.cp if self.cp is None else self.cp if other.cp is None else add_crossproducts(self.cp, other.cp)
        return PassSums(self.dev + other.dev, cp, self.pearson + other.pearson)


class RowPass:
    """What one chunk contributes to a pass at a linear predictor (run where the rows are).

    ``want`` is ``"full"`` (crossproducts of ``[Z X z]``), ``"u"`` (of ``[Z z]``, β fixed at
    ``fixed_beta``) or ``None`` (deviance and Pearson χ² only)."""

    def __init__(self, family, shapes: list[TermShape], pred: Predictor, want: str | None,
                 fixed_beta: np.ndarray | None = None, keep: list[int] | None = None):
        self.family, self.shapes, self.pred, self.want, self.fixed_beta = family, shapes, pred, want, fixed_beta
        self.keep = keep  # the fixed-effects columns kept (None: all)

    def __call__(self, chunk) -> PassSums:
        fam = self.family
        if self.keep is not None:  # a copy: cached chunks (Dask's in worker memory) stay as they are
            chunk = dataclasses.replace(chunk, X=chunk.X[:, self.keep])
        eta = self.pred.eta(chunk, fam)
        with np.errstate(all="ignore"):
            mu, mu_eta = fam.link.inverse_and_mu_eta(eta)
            dev = float(fam.deviance_function(chunk.y, chunk.wt)(mu).sum())
            var = fam.variance(mu)
            pearson = float(np.sum(chunk.wt * (chunk.y - mu) ** 2 / var))
            if self.want is None:
                return PassSums(dev, None, pearson)
            w = chunk.wt * mu_eta * mu_eta / var
            fixed = chunk.offset
            if self.want == "u":
                fixed = fixed + chunk.X @ self.fixed_beta if len(self.fixed_beta) else fixed
            z = (eta - fixed) + (chunk.y - mu) / mu_eta
        X = chunk.X if self.want == "full" else chunk.X[:, :0]
        rows = RowChunk(X, z, w, chunk.codes, chunk.values)
        return PassSums(dev, BlockedCrossproducts.from_chunks(self.shapes, X.shape[1], [rows]), pearson)


def _copy_values(holder: BlockedCrossproducts, new: BlockedCrossproducts) -> None:
    """New values into the crossproducts the factor reads (sparsity patterns kept)."""
    holder.n, holder.xyxy, holder.diag, holder.zxy = new.n, new.xyxy, new.diag, new.zxy
    for key, mat in new.off.items():
        old = holder.off[key]
        if old.nnz == mat.nnz and np.array_equal(old.indices, mat.indices) and np.array_equal(old.indptr, mat.indptr):
            old.data[:] = mat.data
        else:
            holder.off[key] = mat


class StreamedPirlsEngine:
    """The PIRLS engine of a GLMM whose rows are cached where they live: the interface of
    :class:`~mixedmodels.models.pirls.PirlsEngine` that the model uses, every row operation a
    pass of :meth:`~mixedmodels.sources.rowcache.RowCache.map_reduce`."""

    scalar = False  # the optimizers without the closed-form gradients of one scalar term

    def __init__(self, design, family, y, wt, nsize, offset, control):
        self.family, self.control = family, control
        self.cache = design.cache
        self.shapes = [TermShape(t.nlevels, len(t.columns), t.matrix.correlated) for t in design.terms]
        self.k = len(self.shapes)
        self.qs = [s.q for s in self.shapes]
        self.n, self.p = design.nobs, len(design.fixef_names)
        self.terms = [t.matrix for t in design.terms]
        self._aic_const = design.glm_summary.aic_const
        full = design.glm_summary.xtx.shape[0]
        self._keep = None if len(design.keep) == full else list(design.keep)
        self.eta = Predictor(1.0, np.zeros(self.p), [np.zeros((s.nlevels, s.ncols)) for s in self.shapes])
        self._memo: tuple | None = None
        self.cp_full = self._pass(self.eta, "full").cp
        self.cp_full.values_fixed = False
        self.factor = BlockedFactor(self.cp_full, dense=control.dense_backend,
                                     schur=control.schur)
        self.cp_u = self._pass(self.eta, "u", np.zeros(self.p)).cp
        self.cp_u.values_fixed = False
        self.factor_u = BlockedFactor(self.cp_u, dense=control.dense_backend,
                                     schur=control.schur)
        self.failures: list[str] = []

    @property
    def passes(self) -> int:
        return self.cache.passes

    def _pass(self, pred: Predictor, want: str | None, fixed_beta: np.ndarray | None = None) -> PassSums:
        key = (want, pred.key(), None if fixed_beta is None else fixed_beta.tobytes())
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        sums = self.cache.map_reduce(RowPass(self.family, self.shapes, pred, want, fixed_beta, self._keep))
        if sums.cp is not None and sums.cp.n != self.n:
            raise RuntimeError(f"a pass read {sums.cp.n} rows of the {self.n} the fit has: a partition was "
                               "lost or the source changed; the fit is refused rather than made from part of "
                               "the rows")
        self._memo = (key, sums)
        return sums

    def predictor(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray) -> Predictor:
        b, pos = [], 0
        for s, T, q in zip(self.shapes, self.factor.split_theta(theta), self.qs):
            b.append(u[pos:pos + q].reshape(s.nlevels, s.ncols) @ T.T)
            pos += q
        return Predictor(0.0, np.asarray(beta, dtype=float).copy(), b)

    def prepare(self) -> None:
        """Nothing to precompute: the response's constants came from the building pass."""

    def dev_resid(self, mu: Predictor) -> np.ndarray:
        """The deviance at the linear predictor ``mu`` stands for (its sum, as one value)."""
        return np.array([self._pass(mu, None).dev])

    def pearson(self, mu: Predictor) -> float:
        return self._pass(mu, None).pearson

    def aic(self, mu, dev_sum: float) -> float:
        return dev_sum + self._aic_const

    def _solve(self, theta, sums: PassSums, u_only: bool):
        cp, f = (self.cp_u, self.factor_u) if u_only else (self.cp_full, self.factor)
        _copy_values(cp, sums.cp)
        f.update(theta)
        beta, u = f.solve()
        return beta, np.concatenate(u), f.logdet_z

    def pirls(self, theta: np.ndarray, beta: np.ndarray | None = None, eta_start: Predictor | None = None,
              tol: float | None = None, *, criterion: str = "deviance") -> PirlsResult:
        """PIRLS at θ as the in-memory engine's (lme4's ``pwrssUpdate``: Fisher scoring with step
        halving, stopped on the deviance's relative change or on the modes' step), one pass per
        iteration and per halving."""
        ctrl = self.control
        by_step = criterion == "step"
        if not by_step and criterion != "deviance":
            raise ValueError(f"criterion must be 'deviance' or 'step', got {criterion!r}")
        tol = (ctrl.pirls_step_tol if by_step else ctrl.pirls_tol) if tol is None else tol
        u_only = beta is not None
        want, fixed = ("u", np.asarray(beta, dtype=float)) if u_only else ("full", None)
        warm = eta_start is None
        cur = self.eta if warm else eta_start
        sums = self._pass(cur, want, fixed)
        pdev_old, u_old, beta_old, last_step = np.inf, None, None, np.inf
        history: list = []
        res = PirlsResult()
        res.converged, res.message, res.logdet, res.d = False, "", None, None
        res.w = res.score = res.mu_eta = None
        top = None
        for it in range(ctrl.pirls_maxit):
            b_new, u_new, logdet = self._solve(theta, sums, u_only)
            if u_only:
                b_new = fixed
            if by_step:
                top = logdet
                if u_old is not None:
                    step = float(np.abs(u_new - u_old).max()) if len(u_new) else 0.0
                    if not u_only and len(b_new):
                        step = max(step, float(np.abs(b_new - beta_old).max()) / max(1.0, np.abs(b_new).max()))
                    if step < tol or (step < _STEP_FLOOR and step > 0.5 * last_step):
                        res.converged = True
                        break
                    last_step = step
            new = self.predictor(theta, b_new, u_new)
            new_sums = self._pass(new, want, fixed)
            pdev = new_sums.dev + float(u_new @ u_new)
            if not by_step:
                res.logdet = logdet
                if abs((pdev_old - pdev) / pdev) < tol:
                    history.append((it + 1, pdev, 0))
                    u_old, beta_old, cur, sums, pdev_old = u_new, b_new, new, new_sums, pdev
                    res.dev_sum, res.converged = new_sums.dev, True
                    break
            if u_old is None and not np.isfinite(pdev):
                res.message = "the penalized deviance is not finite"
                break
            halvings = 0
            while (not np.isfinite(pdev) or pdev > pdev_old) and u_old is not None \
                    and halvings < ctrl.pirls_max_halvings:
                u_new, b_new, new = 0.5 * (u_old + u_new), 0.5 * (beta_old + b_new), cur.mid(new)
                new_sums = self._pass(new, want, fixed)
                pdev = new_sums.dev + float(u_new @ u_new)
                halvings += 1
            history.append((it + 1, pdev, halvings))
            slack = 1e-10 * abs(pdev) if by_step else tol
            if not np.isfinite(pdev) or pdev - pdev_old > slack:
                res.message = ("step-halving failed to reduce the penalized deviance"
                               if np.isfinite(pdev) else "the penalized deviance is not finite")
                break
            u_old, beta_old, cur, sums, pdev_old = u_new, b_new, new, new_sums, pdev
            res.dev_sum = new_sums.dev
        else:
            res.message = f"no convergence in {ctrl.pirls_maxit} iterations"
        if u_old is None:
            raise FloatingPointError("PIRLS failed at its first step: " + res.message)
        if by_step:
            res.logdet = top
        res.beta, res.u, res.eta, res.mu = beta_old, u_old, cur, cur
        res.pdev, res.iterations, res.history = pdev_old, len(history), history
        if warm and res.converged:
            self.eta = cur
        return res

    def laplace(self, res: PirlsResult) -> float:
        """lme4's Laplace deviance: log det(L_Z)² + ‖u‖² + aic(μ)."""
        return res.logdet + float(res.u @ res.u) + self.aic(res.mu, res.dev_sum)

    def rx(self, theta: np.ndarray, res: PirlsResult) -> np.ndarray:
        """R_X at the mode's weights (one pass, or none when the last one was there)."""
        self.factor_at(theta, res.eta)
        return self.factor.R_xy[:self.p, :self.p].copy()

    def factor_at(self, theta: np.ndarray, pred: Predictor) -> BlockedFactor:
        """The factor at θ and the weights of the linear predictor ``pred``."""
        _copy_values(self.cp_full, self._pass(pred, "full").cp)
        return self.factor.update(theta)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["cache"], state["_memo"] = None, None  # the rows stay where they are
        return state


class _PerRow:
    """Per-row results of a streamed fit: passes over its source (:mod:`mixedmodels.postestimation.streamed`)."""

    def fitted(self, type: str = "response", out=None):  # noqa: A002 (R's argument name)
        """Fitted values for every row of the source (NaN where a row was dropped): a lazy Dask
        Series, a Spark DataFrame with a ``fitted`` column, or for files, DuckDB and polars a
        pandas Series (``out=`` a Parquet path writes them there instead)."""
        return extension("fitted_source")(self, type=type, out=out)

    def residuals(self, type: str | None = None, scaled: bool = False, out=None):  # noqa: A002
        """Residuals for every row of the source, returned as :meth:`fitted`."""
        return extension("residuals_source")(self, type=type, scaled=scaled, out=out)

    def residual_quantiles(self, probs, type: str | None = None, scaled: bool = False) -> np.ndarray:  # noqa: A002
        """Quantiles of the residuals, computed where the rows are (the summary's): exact up to
        20M rows on one machine, Dask's and Spark's approximate quantiles on a cluster."""
        return extension("residual_quantiles_source")(self, probs, type=type, scaled=scaled)


class StreamedLMM(_PerRow, LinearMixedModel):
    """A :class:`~mixedmodels.models.lmm.LinearMixedModel` fitted where its rows live."""


class StreamedGLMM(_PerRow, GeneralizedLinearMixedModel):
    """A :class:`~mixedmodels.models.glmm.GeneralizedLinearMixedModel` fitted where its rows live."""

    engine_class = StreamedPirlsEngine

    def fit(self, start=None) -> "StreamedGLMM":
        super().fit(start)
        if self.n_agq == 1:
            self._newton_polish()
        for opt in (self.optinfo, self.optinfo_stage1):
            if opt is not None:
                opt.passes = self.engine.passes
        return self

    def _newton_polish(self, h: float = 1e-4) -> None:
        """One Newton step on the exact Laplace deviance over (θ, β) from the optimizer's end,
        with a finite-difference gradient and Hessian (θ on a bound held there): BOBYQA stops
        where the deviance changes by its ftol (β ~1e-5 off); the in-memory fit's exact
        gradients stop ~1e-8 off, which this step reaches too. Kept only if the deviance does
        not rise."""
        nth = self.factor.n_theta
        lower = self.factor.theta_lower_bounds()
        x0 = np.concatenate([self._theta, self._beta])
        free = np.concatenate([self._theta - lower > 10 * h, np.ones(len(self._beta), dtype=bool)])
        idx = np.flatnonzero(free)

        def fun(x):
            return self._objective_smooth(x[:nth], x[nth:])

        with np.errstate(all="ignore"):
            try:
                f0 = fun(x0)
                k = len(idx)
                g, H = np.zeros(k), np.zeros((k, k))
                steps = [np.eye(len(x0))[i] * h for i in idx]
                for a in range(k):
                    fp, fm = fun(x0 + steps[a]), fun(x0 - steps[a])
                    g[a], H[a, a] = (fp - fm) / (2 * h), (fp - 2 * f0 + fm) / h ** 2
                    for b in range(a):
                        e, d = steps[a], steps[b]
                        H[a, b] = H[b, a] = (fun(x0 + e + d) - fun(x0 + e - d) - fun(x0 - e + d)
                                             + fun(x0 - e - d)) / (4 * h * h)
                step = np.linalg.solve(H, g)
            except (np.linalg.LinAlgError, FloatingPointError):
                self.restore_fit_state()
                return
            x1 = x0.copy()
            x1[idx] -= step
            if not np.all(np.isfinite(x1)) or np.any(x1[:nth] < lower) or np.abs(step).max() > 1e-2:
                self.restore_fit_state()
                return
            f1 = fun(x1)
        if not np.isfinite(f1) or f1 > f0 + 1e-10 * abs(f0):
            self.restore_fit_state()
            return
        self.engine.eta = self._eta.copy()
        self._finish(x1[:nth], x1[nth:])
        self.optinfo.x = x1
        self.optinfo.fun = self._objective_value
        self.optinfo.message += "; polished by one Newton step on the exact deviance"

    def restore_fit_state(self) -> None:
        self.engine.eta = self._eta.copy()
        self.engine.factor_at(self._theta, self._eta)

    def linear_predictor(self):
        raise NotImplementedError("the linear predictor of a streamed fit is one value per row of its source: "
                                  "use m.fitted(type='link') (a pass over the source)")

    @property
    def overdispersion(self) -> dict:
        """Pearson χ² (one pass), residual df, their ratio and the χ² upper-tail p-value."""
        from scipy import stats

        chisq = self.engine.pearson(self._mu)
        df = self.nobs - self.npar
        ratio = chisq / df if df > 0 else np.nan
        return {"chisq": chisq, "df": df, "ratio": ratio, "p_value": float(stats.chi2.sf(chisq, df)) if df > 0
                else np.nan}

    def with_design(self, design, *, control=None):
        raise NotImplementedError("refitting a streamed GLMM on a new design (bootstrap, simulate-and-refit, "
                                  "profiles over the rows) is not supported: its rows stay in the source")



def streamed_glmer(formula: str, data, family, *, n_agq: int = 1, weights=None, offset=None,
                   na_action: str = "drop", control=None, expand_doublebar: str = "lme4",
                   progress=None) -> StreamedGLMM:
    """:func:`~mixedmodels.glmer` on a source (path, DuckDB, pyarrow Dataset, polars lazy, Dask,
    Spark): pass 1, one pass that evaluates the rows into a cache where they live, then the
    in-memory fit's stages with every PIRLS iteration a pass over that cache.

    Families without an estimated dispersion (binomial, Poisson, negative binomial with a given
    θ) and the Laplace approximation (or ``n_agq=0``) are supported; the rest raises
    ``NotImplementedError`` naming what works.
    """
    from ..exceptions import DataError
    from ..sources.glmdesign import stream_glm_design
    from .optim import Control

    if family.linear:
        raise ValueError("family 'gaussian' with the identity link is a linear mixed model: use mm.lmer")
    if family.has_scale or n_agq > 1 or (isinstance(family, NegativeBinomial) and family.theta is None):
        raise NotImplementedError(
            "glmer on a streamed source fits families without an estimated dispersion (binomial, Poisson, "
            "negative binomial with a given theta) by Laplace (n_agq=1) or n_agq=0; "
            f"family={family.label!r} with n_agq={n_agq} needs the rows in memory (collect the needed columns)")
    design = stream_glm_design(formula, data, family, weights=weights, offset=offset, na_action=na_action,
                               expand_doublebar=expand_doublebar, progress=progress)
    s = design.glm_summary
    if s.aic_const is None:
        raise NotImplementedError("binomial responses with non-whole numbers of successes (weights × "
                                  "proportion) are not supported on a streamed source; give cbind(successes, "
                                  "failures)")
    if s.y_min == s.y_max and family.constant_response_is_error:
        raise DataError(f"response {design.response_name!r} is constant ({s.y_min:g}); there is nothing to model")
    if s.proportions and family.accepts_trials:
        import warnings

        from ..exceptions import MixedModelsWarning
        warnings.warn(f"binomial response {design.response_name!r} has proportions but no weights: each row "
                      "counts as one trial. Give weights= the number of trials, or cbind(successes, failures).",
                      MixedModelsWarning, stacklevel=3)
    # stand-ins for the n-vectors the model reads only for its checks (0/1-ness, trials, weights)
    y = np.array([s.y_min, 0.5 if s.proportions else s.y_min, s.y_max])
    nsize = np.array([1.0, 1.0, 2.0 if s.trials else 1.0])
    wt = np.array([1.0, 1.0, 2.0 if (s.trials or weights is not None) else 1.0])
    if design.weights is None:
        design.weights = np.ones(1)  # no n-long vector of ones
    design.offset = np.zeros(0)
    model = StreamedGLMM(design, family, n_agq, control or Control(), y=y, wt=wt, nsize=nsize)
    return model.fit()
