"""The iterative path for generalized linear mixed models: PIRLS with no dense block.

The exact GLMM (:mod:`mixedmodels.models.glmm`) factors ``ΛᵀZᵀWZΛ + I`` by the blocked
Cholesky at every PIRLS step; with two crossed factors of many levels that factor has a
dense block of the second factor's order (50,000 levels: 20 GB). Here, as GPBoost does
(Sigrist 2022; Kündig & Sigrist 2024), the same machinery as the iterative LMM
(:mod:`mixedmodels.models.iterative`) runs inside PIRLS:

- each penalized weighted least-squares step reweights the crossproducts of ``[Z X z]``
  (:meth:`~mixedmodels.core.crossproducts.BlockedCrossproducts.reweight`), eliminates the first
  term exactly and solves the rest by block preconditioned CG (:mod:`mixedmodels.core.reduced`,
  :mod:`mixedmodels.core.krylov`), warm-started from the previous solve;
- the Laplace deviance's ``log det(ΛᵀZᵀWZΛ + I)`` at the mode's weights is
  ``log det A_00 + log det M`` (exact) plus stochastic Lanczos quadrature on the preconditioned
  Schur complement, with Rademacher probes fixed for the whole fit (the optimizer sees a smooth
  function), or exact traces (unit vectors) when the reduced system has at most
  ``EXACT_TRACE_DIM`` unknowns;
- the fit is the exact GLMM's own (:class:`GeneralizedLinearMixedModel`: lme4's two stages,
  θ with β in PIRLS, then (θ, β) on the Laplace deviance): only the engine differs;
- at the optimum the Laplace deviance is evaluated exactly when the exact factor is affordable
  (:mod:`mixedmodels.models.cost`), and the Monte Carlo standard error of the logLik is recorded.

:func:`choose_glmm_path` is the cost model's choice for a GLMM: the LMM's estimates plus the
row arrays PIRLS holds on either path.
"""

from __future__ import annotations

import functools
import time
import warnings

import numpy as np

from ..core.crossproducts import BlockedCrossproducts
from ..core.krylov import block_pcg, rademacher, slq_quadratic_log
from ..core.reduced import ReducedSystem
from ..core.reweighted import ReweightedSystem
from ..exceptions import IterativeConvergenceWarning, ModelSizeError
from ..spec.design import ModelDesign
from . import cost
from .family import Family
from .glmm import GeneralizedLinearMixedModel
from .iterative import EXACT_TRACE_DIM, IterativeFactor, loglik_note
from .optim import Control
from .pirls import PirlsEngine, PirlsResult

__all__ = ["IterativeGLMM", "IterativePirlsEngine", "IterativePirlsResult", "choose_glmm_path",
           "glmm_row_memory"]

#: one exact Laplace evaluation at the optimum is a PIRLS: about this many factorizations
_EXACT_PIRLS_STEPS = 8
#: a GLMM fit's time over the LMM cost model's estimate for the same design (two optimizer
#: stages and a PIRLS per evaluation): measured on the 2-core development machine, binomial
#: crossed designs of 100k and 500k rows (exact 5.5; iterative 2.2 and 4.3)
GLMM_EXACT_FACTOR, GLMM_ITERATIVE_FACTOR = 6.0, 4.0


class IterativePirlsResult(PirlsResult):
    """A PIRLS state of the iterative engine: :class:`PirlsResult` plus θ and the Monte Carlo
    standard error of its log-determinant (computed when the Laplace deviance needs it)."""

    __slots__ = ("theta", "logdet_se")


class IterativePirlsEngine(PirlsEngine):
    """The PIRLS engine of :class:`IterativeGLMM`: the interface of
    :class:`~mixedmodels.models.pirls.PirlsEngine` the GLMM uses, each solve by PCG and the
    log-determinant by SLQ (no Cholesky factor of ``ZᵀWZ``, hence no dense block).

    Parameters
    ----------
    design, family, y, wt, nsize, offset, control
        As :class:`~mixedmodels.models.pirls.PirlsEngine`.
    probes : int
        Rademacher probes for the log-determinant (fixed for the fit).
    cg_tol : float
        Relative residual at which each CG column stops.
    cg_maxiter : int
    seed : int
        The probes' seed.
    """

    result_class = IterativePirlsResult
    scalar = False  # the optimizers without the exact engine's closed-form one-term gradients

    def __init__(self, design: ModelDesign, family: Family, y: np.ndarray, wt: np.ndarray,
                 nsize: np.ndarray, offset: np.ndarray, control: Control, *, probes: int = 40,
                 cg_tol: float = 1e-10, cg_maxiter: int = 2000, seed: int = 20240601):
        self.family, self.control = family, control
        self.y, self.wt, self.nsize, self.offset = y, wt, nsize, offset
        self.X = design.X
        self.n, self.p = self.X.shape
        self.terms = [t.matrix for t in design.terms]
        self.k = len(self.terms)
        self.qs = [t.q for t in self.terms]
        self._xcols = [np.ascontiguousarray(self.X[:, j]) for j in range(self.p)]
        # the crossproducts of [Z X z] with PIRLS' weights: sparse blocks only
        self.cp = BlockedCrossproducts.reweightable(self.terms, self.X)
        self.factor = IterativeFactor(self.cp)
        self.cg_tol, self.cg_maxiter = float(cg_tol), int(cg_maxiter)
        self.dim = int(sum(self.qs[1:]))
        self.exact_trace = self.dim <= max(int(probes), EXACT_TRACE_DIM)
        self.probes = 0 if self.exact_trace else int(probes)
        self._w = None if self.exact_trace else rademacher(self.dim, self.probes, seed)
        mu0 = family.pirls_mustart(y, wt)
        self.eta = family.link.link(mu0) + offset
        self.prepare()
        self.failures: list[str] = []
        #: per CG run: (what, iterations, converged, largest relative residual)
        self.cg_runs: list[tuple[str, int, bool, float]] = []
        self.solves = 0
        self._x0: dict[str, np.ndarray] = {}
        self._reduced = ReweightedSystem(self.cp)
        self._system: ReducedSystem | None = None
        self._system_at: tuple | None = None  # (θ, the weights array) the system was built at

    # -- the Λ-scaled system at the current weights ----------------------------------------------
    def _at(self, theta: np.ndarray, w: np.ndarray, z: np.ndarray) -> ReducedSystem:
        """Reweight the crossproducts (weights w, working response z) and scale them by Λ(θ)."""
        self.cp.reweight(w, z)
        # the reduced system's copies of the sparse blocks take the new values in place
        sysm = self._reduced.refresh()
        sysm.set_theta(self.factor.split_theta(np.asarray(theta, dtype=float)))
        self._system, self._system_at = sysm, (np.asarray(theta, float).copy(), w)
        return sysm

    def _pcg(self, sysm: ReducedSystem, rhs: np.ndarray, what: str, warm: bool) -> np.ndarray:
        x0 = self._x0.get(what) if warm else None
        if x0 is not None and x0.shape != rhs.shape:
            x0 = None
        res = block_pcg(sysm.apply_s, rhs, sysm.apply_minv, tol=self.cg_tol,
                        maxiter=self.cg_maxiter, x0=x0)
        self._record_cg(what, res)
        if warm:
            self._x0[what] = res.x
        return res

    def _record_cg(self, what, res) -> None:
        worst = float(np.max(res.residual_norms)) if len(res.residual_norms) else 0.0
        self.cg_runs.append((what, int(res.iterations), bool(res.converged.all()), worst))

    def solve_a(self, sysm: ReducedSystem, c: list[np.ndarray], what: str) -> list[np.ndarray]:
        """``A⁻¹ c`` per term (c on all terms, ``q_i × cols``): the first term eliminated, the rest
        by PCG warm-started from the last solve of the same kind."""
        self.solves += 1
        first = sysm.solve_00(c[0])
        if self.k == 1:
            return [first]
        elim = sysm.a_r0(first)
        rhs = np.concatenate([ci - ei for ci, ei in zip(c[1:], elim)], axis=0)
        res = self._pcg(sysm, rhs, what, warm=True)
        W = sysm.extend(res.x)
        W[0] = W[0] + first
        return W

    def _schur(self, sysm: ReducedSystem, u_only: bool):
        """β, u and the fixed effects' Schur complement from the current crossproducts."""
        cp, p = self.cp, self.p
        cols = [p] if u_only else list(range(p + 1))
        zxy = [np.asarray(z).T[:, cols] for z in cp.zxy]  # q_i × cols: Zᵀ W [X z]
        c = [sysm.lam(i, zxy[i], transpose=True) for i in range(self.k)]
        W = self.solve_a(sysm, c, "u" if u_only else "full")
        if u_only:
            return None, np.concatenate([wi[:, 0] for wi in W]), None
        sxy = cp.xyxy - sum(ci.T @ wi for ci, wi in zip(c, W))
        sxy = 0.5 * (sxy + sxy.T)
        mx = sxy[:p, :p]
        beta = np.linalg.solve(mx, sxy[:p, p]) if p else np.zeros(0)
        u = np.concatenate([wi[:, p] - wi[:, :p] @ beta for wi in W])
        return beta, u, mx

    def logdet(self, sysm: ReducedSystem) -> tuple[float, float]:
        """``log det A`` at the system's weights and θ, and its Monte Carlo standard error."""
        value = sysm.logdet_00 + sysm.logdet_m
        if self.k == 1:
            return float(value), 0.0
        if self.exact_trace:
            # few unknowns: S itself (one product with the identity) and its Cholesky factor, a
            # fraction of the work of CG on as many unit-vector probes
            S = sysm.apply_s(np.eye(self.dim))
            L = np.linalg.cholesky(0.5 * (S + S.T))
            return float(sysm.logdet_00 + 2.0 * np.log(np.diag(L)).sum()), 0.0
        w = self._w
        res = block_pcg(sysm.apply_s, sysm.m_half(w), sysm.apply_minv, tol=self.cg_tol,
                        maxiter=self.cg_maxiter)
        self._record_cg("logdet", res)
        norm2 = np.sum(w ** 2, axis=0)
        s = w.shape[1]
        quad = np.array([slq_quadratic_log(res.alphas[j], res.betas[j], float(norm2[j]))
                         for j in range(s)])
        # control variate (as the LMM path): w'(Ŝ − I)w has expectation 0, M holding S's
        # diagonal blocks exactly
        quad = quad - norm2 * np.array([1.0 / res.alphas[j][0] - 1.0 if len(res.alphas[j]) else 0.0
                                        for j in range(s)])
        se = float(quad.std(ddof=1) / np.sqrt(s)) if s > 1 else np.nan
        return float(value + quad.mean()), se

    # -- PIRLS -----------------------------------------------------------------------------------
    def _solve(self, theta, w, z, u_only):
        """One penalized weighted least-squares step for :meth:`PirlsEngine.pirls`: β and u by
        PCG; no log-determinant (left to :meth:`laplace`, a probe solve)."""
        beta, u, _ = self._schur(self._at(theta, w, z), u_only)
        return beta, u, None, None

    def pirls(self, theta: np.ndarray, beta: np.ndarray | None = None,
              eta_start: np.ndarray | None = None, tol: float | None = None, *,
              criterion: str = "deviance") -> IterativePirlsResult:
        """Conditional modes at θ: the exact engine's PIRLS (:meth:`PirlsEngine.pirls
        <mixedmodels.models.pirls.PirlsEngine.pirls>`) with each step solved by PCG; the result
        also holds θ and the weights at the modes, which the Laplace deviance's log-determinant
        is taken at."""
        theta = np.asarray(theta, dtype=float)
        res = super().pirls(theta, beta, eta_start, tol, criterion=criterion)
        if criterion != "step":  # by step, the weights of the last solve are already there
            res.w = self.wt * res.mu_eta * res.mu_eta / self.family.variance(res.mu)
        res.theta, res.logdet_se = theta.copy(), None
        return res

    def system_at(self, res: IterativePirlsResult) -> ReducedSystem:
        """The Λ-scaled system at the weights of a PIRLS state (reweighted only if needed)."""
        at = self._system_at
        if at is not None and at[1] is res.w and np.array_equal(at[0], res.theta):
            return self._system
        z = (res.eta - self.offset) + (self.y - res.mu) / res.mu_eta
        return self._at(res.theta, res.w, z)

    # -- deviances -------------------------------------------------------------------------------
    def laplace(self, res: IterativePirlsResult) -> float:
        """The Laplace deviance ``log det A + ‖u‖² + aic(μ)``, ``log det`` at the mode's weights
        (SLQ, or exact traces on small reduced systems)."""
        if res.logdet is None:
            res.logdet, res.logdet_se = self.logdet(self.system_at(res))
        return res.logdet + float(res.u @ res.u) + self.aic(res.mu, res.dev_sum)

    def agq(self, *args, **kwargs):
        raise NotImplementedError("adaptive Gauss-Hermite quadrature (n_agq > 1) is fit on the exact "
                                  "path (one scalar term, whose factor is always small)")

    def rx(self, theta: np.ndarray, res: IterativePirlsResult) -> np.ndarray:
        """R_X, the Cholesky factor of the fixed effects' Schur complement at the mode's weights
        (``XᵀWX − XᵀWZΛ A⁻¹ ΛᵀZᵀWX``, by PCG)."""
        res.theta = np.asarray(theta, dtype=float).copy()
        _, _, mx = self._schur(self.system_at(res), u_only=False)
        return np.linalg.cholesky(mx)

    def cg_failures(self) -> list[tuple[str, int, bool, float]]:
        return [r for r in self.cg_runs if not r[2]]


class IterativeGLMM(GeneralizedLinearMixedModel):
    """A GLMM (Laplace, or lme4's ``nAGQ = 0``) fit on the iterative path: the exact GLMM's fit
    with :class:`IterativePirlsEngine` as its engine.

    Parameters
    ----------
    design, family, n_agq, control, data_name
        As :class:`~mixedmodels.models.glmm.GeneralizedLinearMixedModel` (``n_agq`` 0 or 1).
    probes, cg_tol, cg_maxiter, seed
        As :class:`IterativePirlsEngine`.
    exact_loglik : {"auto", "always", "never"}
        Evaluate the Laplace deviance exactly at the optimum ("auto": when the cost model says
        the exact factor is affordable).
    choice : dict, optional
        The path choice to record (:func:`choose_glmm_path`).
    """

    # The iterative path serves many levels, where θ's first step (5% of θ) is several of its
    # standard errors: β's step of 0.05 SE left BOBYQA growing its trust region in β for
    # dozens of evaluations. One SE, measured on bench_iterative's glmm5m: stage 2 in 32
    # evaluations instead of 55 at 100k rows, 35 instead of 125 at 500k (CPU 105 s -> 53 s),
    # the same logLik to 1e-6. (Not on the exact path: on VerbAgg, with six fixed effects,
    # BOBYQA took 355 evaluations instead of 182.)
    stage2_beta_step = 1.0

    def __init__(self, design: ModelDesign, family: Family, n_agq: int = 1,
                 control: Control | None = None, data_name: str | None = None, *,
                 probes: int = 40, cg_tol: float = 1e-10, cg_maxiter: int = 2000,
                 seed: int = 20240601, exact_loglik: str = "auto", choice: dict | None = None):
        if int(n_agq) > 1:
            raise ValueError("n_agq > 1 (adaptive Gauss-Hermite quadrature) is fit on the exact path "
                             "only (one scalar term, whose factor is always small): use "
                             "mm.Control(method='exact') or n_agq=1")
        if exact_loglik not in ("auto", "always", "never"):
            raise ValueError(f"exact_loglik must be 'auto', 'always' or 'never', got {exact_loglik!r}")
        self.settings = {"probes": int(probes), "cg_tol": float(cg_tol),
                         "cg_maxiter": int(cg_maxiter), "seed": int(seed), "exact_loglik": exact_loglik}
        self.choice = dict(choice or {"method": "iterative", "reason": "requested"})
        # the engine gets the path's settings (the model constructs it with the exact signature)
        self.engine_class = functools.partial(  # type: ignore[misc]
            IterativePirlsEngine, **{k: v for k, v in self.settings.items() if k != "exact_loglik"})
        super().__init__(design, family, n_agq, control, data_name)
        self.loglik_se = np.nan
        self.loglik_exact = False

    @property
    def loglik(self) -> float:
        """−½ × the Laplace deviance at the estimates: exact when it was evaluated exactly at the
        optimum (``loglik_exact``), else the stochastic estimate (its Monte Carlo SE:
        ``loglik_se``)."""
        exact = getattr(self, "_exact_deviance", None)
        return -0.5 * (self._objective_value if exact is None else exact)

    @property
    def exact_trace(self) -> bool:
        """Whether the log-determinant was computed with exact traces (small reduced system)."""
        return self.engine.exact_trace

    def fit(self, start=None) -> "IterativeGLMM":
        t0 = time.perf_counter()
        super().fit(start)
        self._record(time.perf_counter() - t0)
        failed = self.engine.cg_failures()
        if failed:
            worst = max(r[3] for r in failed)
            warnings.warn(
                f"the iterative GLMM's conjugate gradients did not converge in {len(failed)} of "
                f"{len(self.engine.cg_runs)} solves (largest relative residual {worst:.2e}, "
                f"tolerance {self.settings['cg_tol']:.0e}, {self.settings['cg_maxiter']} "
                "iterations); the estimates may be off. Raise cg_maxiter or loosen cg_tol "
                "(mm.Control(options={'cg_maxiter': ...})), simplify the model, or fit with "
                "mm.Control(method='exact') if the exact factor fits in memory.",
                IterativeConvergenceWarning, stacklevel=2)
        return self

    def _record(self, seconds: float) -> None:
        """The path's record in optinfo, and the exact Laplace deviance at the optimum when
        the exact factor is affordable."""
        res = self._pirls
        self.loglik_se = 0.5 * float(res.logdet_se or 0.0)
        self.loglik_exact = self.exact_trace
        self._exact_deviance = None
        stochastic = self._objective_value
        want = self.settings["exact_loglik"]
        if not self.exact_trace and (want == "always" or (want == "auto" and exact_affordable(self.engine.cp))):
            twin = GeneralizedLinearMixedModel(self.design, self.family, self.n_agq, self.control)
            with np.errstate(all="ignore"):
                value = twin.evaluate(self._theta, self._beta if self.n_agq else None, smooth=True)[0]
            if np.isfinite(value):
                # the logLik's; the optimizer's (stochastic) deviance stays the objective's value,
                # which the finite-difference Hessian differences against
                self._exact_deviance = float(value)
                self.loglik_exact = True
        runs = self.engine.cg_runs
        path = {**self.choice, "probes": self.engine.probes, "exact_trace": self.exact_trace,
                "cg_tol": self.settings["cg_tol"], "solves": self.engine.solves,
                "cg_iterations": [it for what, it, _, _ in runs if what != "logdet"],
                "logdet_cg_iterations": [it for what, it, _, _ in runs if what == "logdet"],
                "loglik_estimate": -0.5 * stochastic, "loglik_mc_se": self.loglik_se,
                "loglik_exact": self.loglik_exact, "seconds": seconds}
        for opt in (self.optinfo, self.optinfo_stage1):
            if opt is not None:
                opt.method = "iterative"
                opt.path = path

    def restore_fit_state(self) -> None:
        """PIRLS' warm start back at the fitted linear predictor (no factor to restore)."""
        self.engine.eta = self._eta.copy()

    def conditional_covariance(self, max_q: int = 20_000) -> list[np.ndarray]:
        """Conditional variances of the random effects (lme4's ``condVar``), from the exact
        factor at the estimates' weights: only when that factor is affordable."""
        if not exact_affordable(self.engine.cp):
            raise NotImplementedError(
                "conditional variances need the exact factor, which is too large here; the "
                "conditional modes (m.ranef) come from the iterative solves")
        twin = GeneralizedLinearMixedModel(self.design, self.family, self.n_agq, self.control)
        # the fitted state the exact factor is built at: θ̂ and the mode's linear predictor
        twin._theta, twin._eta, twin._mu, twin._sigma = self._theta, self._eta, self._mu, self._sigma
        return twin.conditional_covariance(max_q)

    def convergence_objective(self):
        # finite differences of a Monte Carlo objective would give false alarms
        return super().convergence_objective() if self.exact_trace else None

    def summary_notes(self) -> list[str]:
        path = getattr(self.optinfo, "path", {})
        its = path.get("cg_iterations", [])
        note = (f"iterative path ({path.get('reason', 'requested')}): PIRLS with preconditioned CG, "
                f"{self.optinfo.nevals if self.optinfo else 0} evaluations, {len(its)} solves, "
                f"{max(its) if its else 0} CG iterations at most")
        if self.exact_trace:
            note += "; probes span the system, so the log-determinant is exact"
        else:
            note += loglik_note(path, self.loglik_exact, self.loglik_se)
        return [note, *super().summary_notes()]

    def with_design(self, design: ModelDesign, *, control: Control | None = None) -> "IterativeGLMM":
        return IterativeGLMM(design, self.family, self.n_agq, control or self.control,
                             self.data_name, choice=self.choice, **self.settings)


def exact_affordable(cp) -> bool:
    """Whether one exact Laplace evaluation (a PIRLS of ~8 factorizations) is affordable."""
    est = cost.exact_cost(cp)
    return (_EXACT_PIRLS_STEPS * est.seconds_per_evaluation <= cost.EXACT_ONCE_SECONDS
            and est.memory <= 0.5 * cost.available_memory())


def glmm_row_memory(design) -> float:
    """Bytes PIRLS holds per row on either path: the reweightable ``[X z]`` and its weighted copy,
    the terms' transposes and the positions of the cells between terms, and ~12 n-vectors."""
    n, p, k = int(design.nobs), int(design.X.shape[1]), len(design.terms)
    return float(n * (16.0 * (p + 1) + 12.0 * k + 8.0 * k * (k - 1) / 2 + 8.0 * 12))


def choose_glmm_path(design, method: str = "auto", probes: int = 40, schur: str = "auto") -> dict:
    """The cost model's path for a GLMM: :func:`~mixedmodels.models.cost.choose_path` with the
    row arrays of PIRLS added to both memory estimates and the times scaled to a GLMM fit
    (``GLMM_EXACT_FACTOR``, ``GLMM_ITERATIVE_FACTOR``); ``schur`` as there (``Control.schur``).

    Raises
    ------
    ModelSizeError
        Before any work, when neither path fits in the available memory, or the path forced
        by ``method`` does not.
    """
    choice = cost.choose_path(design, method, probes, schur=schur)
    for key, factor in (("exact_estimate", GLMM_EXACT_FACTOR), ("iterative_estimate", GLMM_ITERATIVE_FACTOR)):
        choice[key] = {**choice[key], "seconds": factor * choice[key]["seconds"]}
    exact_s, iter_s = choice["exact_estimate"]["seconds"], choice["iterative_estimate"]["seconds"]
    if method == "auto" and choice["reason"].startswith("auto: exact ~"):
        # the LMM's time rule on the GLMM's times (the memory rule is unchanged)
        slow = exact_s > cost.EXACT_SECONDS_LIMIT and 2.0 * iter_s < exact_s
        choice["method"] = "iterative" if slow else "exact"
        choice["reason"] = (f"auto: exact ~{exact_s:.0f} s, iterative ~{iter_s:.0f} s" if slow else
                            f"auto: exact ~{exact_s:.1f} s fits in "
                            f"{choice['exact_estimate']['memory_gb']:.2f} GB")
    rows = glmm_row_memory(design)
    mem = cost.available_memory()
    exact_gb = choice["exact_estimate"]["memory_gb"] + rows / 1e9
    iter_gb = choice["iterative_estimate"]["memory_gb"] + rows / 1e9
    choice["glmm_row_memory_gb"] = rows / 1e9
    exact_fits, iter_fits = exact_gb * 1e9 <= 0.8 * mem, iter_gb * 1e9 <= 0.8 * mem
    both = (f"the exact factor needs about {exact_gb:.1f} GB, the iterative path about "
            f"{iter_gb:.1f} GB (with PIRLS' row arrays), and {mem / 1e9:.1f} GB are available")
    if not exact_fits and not iter_fits:
        raise ModelSizeError(f"this GLMM fits in neither path's memory: {both}. Use fewer levels "
                             "(pool rare ones), fewer rows, or a machine with more memory.")
    if choice["method"] == "exact" and not exact_fits:
        if method == "exact":
            raise ModelSizeError(f"Control(method='exact') was asked for, but {both}: use "
                                 "mm.Control(method='iterative') (or 'auto').")
        choice = {**choice, "method": "iterative",
                  "reason": f"auto: the exact factor needs ~{exact_gb:.1f} GB, {mem / 1e9:.1f} GB available"}
    if choice["method"] == "iterative" and not iter_fits:
        raise ModelSizeError(f"the iterative GLMM path does not fit here: {both}. Use "
                             "mm.Control(method='exact') or fewer rows.")
    return choice
