"""The iterative path for linear mixed models: no dense block, no Cholesky factor of Z'Z.

The profiled (RE)ML deviance at θ needs three things of ``A = ΛᵀZᵀZΛ + I``: solves with
``Λᵀ Zᵀ[X y]`` (for β, the penalized residual sum of squares and, under REML, ``log det``
of the fixed effects' Schur complement), ``log det A`` and, for a gradient optimizer, the
θ-derivatives of both. Here (Sigrist 2022; Kündig & Sigrist 2024, GPBoost's iterative methods):

- the first term is eliminated exactly and the rest is solved by block preconditioned CG
  (:mod:`mixedmodels.core.reduced`, :mod:`mixedmodels.core.krylov`), the preconditioner
  being the Schur complement's exact diagonal blocks per term;
- ``log det A = log det A_00 + log det M + log det(M^{-1/2} S M^{-1/2})``, the last by
  stochastic Lanczos quadrature from the *same* CG iterations, with Rademacher probes that are
  fixed for the whole fit (common random numbers: the optimizer sees a smooth function);
- its gradient by Hutchinson's estimator with the same probes and solves; the other parts of
  the gradient are exact (given the solves);
- a backfitting moment start (Gao & Owen 2017; Ghosh, Hastie & Owen 2022) and L-BFGS-B.

When the reduced system has at most ``EXACT_TRACE_DIM`` (200) unknowns, or no more than the
probes, the probes are the unit vectors and every estimate is exact (small models). The fit
reports the Monte Carlo standard error of the logLik, and evaluates the logLik exactly at the
optimum when the exact factor is affordable (:mod:`mixedmodels.models.cost`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from ..core.backends import get_rows
from ..core.krylov import block_pcg, rademacher, slq_quadratic_log
from ..core.parametrization import ThetaParametrization
from ..core.reduced import ReducedSystem
from ..exceptions import IterativeConvergenceWarning
from ..spec.design import ModelDesign
from .checks import check_fit
from .lmm import LinearMixedModel
from .optim import Control, OptimizerOutput, is_default_optimizer, minimize, register_optimizer, value_and_gradient

__all__ = ["IterativeLinearMixedModel", "IterativeFactor", "IterativeEvaluation", "loglik_note"]

_LOG_2PI = np.log(2.0 * np.pi)
#: reduced systems up to this order use the unit vectors as probes: exact traces
EXACT_TRACE_DIM = 200


class IterativeFactor:
    """What the iterative model offers in place of the blocked factor: θ's layout, bounds and
    split (post-estimation needs those). ``update`` needs the exact factor and is refused."""

    def __init__(self, cp):
        self.cp = cp
        self.k = len(cp.terms)
        self.parametrization = ThetaParametrization.of(cp.terms)
        self.layouts = self.parametrization.layouts
        self.theta_sizes = self.parametrization.sizes
        self.diag_is_bd = [True] + [False] * (self.k - 1)
        # θ's layout, bounds, start and split are the parametrization's
        self.n_theta = self.parametrization.n_theta
        self.theta_lower_bounds = self.parametrization.lower_bounds
        self.theta_start = self.parametrization.start
        self.split_theta = self.parametrization.split

    def update(self, theta):
        raise NotImplementedError(
            "this model was fit on the iterative path, which has no Cholesky factor; what you "
            "called needs one (profiles, Satterthwaite/Kenward-Roger df). Fit with "
            "mm.Control(method='exact') if the exact factor fits in memory.")


@dataclass
class IterativeEvaluation:
    """One evaluation of the profiled deviance on the iterative path."""

    deviance: float
    gradient: np.ndarray
    logdet_se: float
    beta: np.ndarray
    u: list
    pwrss: float
    vcov_unscaled: np.ndarray
    cg_iterations: int
    cg_converged: bool
    residual_norms: np.ndarray
    #: Monte Carlo standard error of each gradient entry (0 with exact traces)
    gradient_se: np.ndarray | None = None


class IterativeLinearMixedModel(LinearMixedModel):
    """A linear mixed model fit on the iterative path (PCG + stochastic log-determinant).

    Parameters
    ----------
    design : ModelDesign
    reml : bool
    control : Control, optional
    probes : int
        Rademacher probes for the log-determinant and its gradient (more: smaller Monte Carlo
        error, proportionally more work per CG iteration).
    cg_tol : float
        Relative residual at which each CG column stops.
    cg_maxiter : int
    seed : int
        Seed of the probes (fixed for the whole fit).
    exact_loglik : {"auto", "always", "never"}
        Evaluate the logLik exactly at the optimum ("auto": when the cost model says the exact
        factor is affordable).
    """

    def __init__(self, design: ModelDesign, reml: bool = True, control: Control | None = None,
                 data_name: str | None = None, *, probes: int = 40, cg_tol: float = 1e-8,
                 cg_maxiter: int = 2000, seed: int = 20240601, exact_loglik: str = "auto",
                 choice: dict | None = None):
        from .family import gaussian

        self.design, self.family, self.reml = design, gaussian(), bool(reml)
        self.control, self.data_name, self.name = control or Control(), data_name, None
        if exact_loglik not in ("auto", "always", "never"):
            raise ValueError(f"exact_loglik must be 'auto', 'always' or 'never', got {exact_loglik!r}")
        self.settings = {"probes": int(probes), "cg_tol": float(cg_tol),
                         "cg_maxiter": int(cg_maxiter), "seed": int(seed),
                         "exact_loglik": exact_loglik}
        self.choice = dict(choice or {"method": "iterative", "reason": "requested"})
        self.crossproducts = _crossproducts(design, self.control.row_backend)
        self.factor = IterativeFactor(self.crossproducts)  # type: ignore[assignment]
        self.system = ReducedSystem(self.crossproducts)
        w = design.weights
        self._log_weights = 0.0 if w is None else float(np.log(w[w > 0]).sum())
        dim = self.system.dim
        # few unknowns (or as many probes as unknowns): the unit vectors as probes, and the
        # estimates are exact at a cost of at most EXACT_TRACE_DIM solves per CG column
        self.exact_trace = dim <= max(self.settings["probes"], EXACT_TRACE_DIM)
        self._w = (np.eye(dim) if self.exact_trace
                   else rademacher(dim, self.settings["probes"], self.settings["seed"]))
        self.optinfo = None
        self._theta = None
        self.evaluations: list[tuple[np.ndarray, float, int]] = []

    # -- one evaluation -----------------------------------------------------------------------
    def evaluate(self, theta: np.ndarray, reml: bool | None = None,
                 gradient: bool = True) -> IterativeEvaluation:
        """The deviance, its θ-gradient and the estimates at θ, from one block PCG run."""
        reml = self.reml if reml is None else reml
        cp, sysm = self.crossproducts, self.system
        k, p, n = sysm.k, cp.p, cp.n
        Ts = self.factor.split_theta(np.asarray(theta, dtype=float))
        sysm.set_theta(Ts)
        zxy = [np.asarray(z).T for z in cp.zxy]  # q_i × (p+1): Zᵀ[X y]
        c = [sysm.lam(i, zxy[i], transpose=True) for i in range(k)]
        s = self._w.shape[1] if k > 1 else 0
        if k > 1:
            elim = sysm.a_r0(sysm.solve_00(c[0]))
            rhs = np.concatenate([ci - ei for ci, ei in zip(c[1:], elim)], axis=0)
            probes = sysm.m_half(self._w)
            res = block_pcg(sysm.apply_s, np.concatenate([rhs, probes], axis=1), sysm.apply_minv,
                            tol=self.settings["cg_tol"], maxiter=self.settings["cg_maxiter"])
            W_rest = res.x[:, :p + 1]
            W = sysm.extend(W_rest)
            W[0] = W[0] + sysm.solve_00(c[0])
            norm2 = np.sum(self._w ** 2, axis=0)
            quad = np.array([slq_quadratic_log(res.alphas[p + 1 + j], res.betas[p + 1 + j],
                                               float(norm2[j])) for j in range(s)])
            # control variate: w'(Ŝ − I)w = ‖w‖²(T₁₁ − 1) has expectation tr(Ŝ) − dim = 0
            # (M holds S's diagonal blocks exactly), and cancels the first-order part of log Ŝ
            quad = quad - norm2 * np.array([1.0 / res.alphas[p + 1 + j][0] - 1.0
                                            if len(res.alphas[p + 1 + j]) else 0.0
                                            for j in range(s)])
            if self.exact_trace:
                logdet_s, se = float(quad.sum()), 0.0
            else:
                logdet_s = float(quad.mean())
                se = float(quad.std(ddof=1) / np.sqrt(s)) if s > 1 else np.nan
            iters, conv, norms = res.iterations, bool(res.converged.all()), res.residual_norms
        else:
            W = [sysm.solve_00(c[0])]
            logdet_s, se, iters, conv, norms = 0.0, 0.0, 0, True, np.zeros(0)
        logdet_z = sysm.logdet_00 + sysm.logdet_m + logdet_s
        sxy = cp.xyxy - sum(ci.T @ wi for ci, wi in zip(c, W))
        sxy = 0.5 * (sxy + sxy.T)
        mx, mxy = sxy[:p, :p], sxy[:p, p]
        if p:
            Lx = np.linalg.cholesky(mx)
            beta = np.linalg.solve(mx, mxy)
            logdet_x = 2.0 * float(np.log(np.diag(Lx)).sum())
            mx_inv = np.linalg.inv(mx)
        else:
            beta, logdet_x, mx_inv = np.zeros(0), 0.0, np.zeros((0, 0))
        pwrss = float(sxy[p, p] - mxy @ beta)
        u = [wi[:, p] - wi[:, :p] @ beta for wi in W]
        if reml:
            dof = n - p
            dev = logdet_z + logdet_x + dof * (1.0 + _LOG_2PI + np.log(pwrss / dof))
        else:
            dof = n
            dev = logdet_z + n * (1.0 + _LOG_2PI + np.log(pwrss / n))
        dev -= self._log_weights
        grad, grad_se = np.zeros(self.factor.n_theta), np.zeros(self.factor.n_theta)
        if gradient and len(grad):
            grad, grad_se = self._gradient(Ts, W, u, beta, pwrss, mx_inv,
                                           res if k > 1 else None, reml, dof)
        return IterativeEvaluation(float(dev), grad, float(se), beta, u, pwrss, mx_inv,
                                   iters, conv, norms, grad_se)

    def _gradient(self, Ts, W, u, beta, pwrss, mx_inv, res, reml, dof) -> np.ndarray:
        """∂deviance/∂θ: exact given the solves, except tr(S⁻¹ ∂S) (Hutchinson, same probes)."""
        cp, sysm = self.crossproducts, self.system
        k, p = sysm.k, cp.p
        zxy = [np.asarray(z).T for z in cp.zxy]
        cols = [wi[:, :p] for wi in W] if p else [np.zeros((wi.shape[0], 0)) for wi in W]
        blocks = [np.column_stack([cols[i], u[i]]) for i in range(k)]
        s = 0
        if res is not None:
            s = self._w.shape[1]
            xt = sysm.extend(res.x[:, p + 1:])
            vt = sysm.extend(sysm.m_half(self._w, inverse_transpose=True))
            blocks = [np.column_stack([blocks[i], xt[i], vt[i]]) for i in range(k)]
        g_lam = sysm.apply_g([sysm.lam(i, blocks[i]) for i in range(k)])
        z_r = [zxy[i][:, p] - zxy[i][:, :p] @ beta - g_lam[i][:, p] for i in range(k)]
        grad, grad_se = np.zeros(self.factor.n_theta), np.zeros(self.factor.n_theta)
        d_logdet_m = self._logdet_m_gradient(Ts) if s else None
        j = 0
        for i, (rows, cs) in enumerate(self.factor.layouts):
            l = cp.terms[i].ncols
            m = cp.terms[i].nlevels

            def pick(v, a, i=i, l=l, m=m):
                return v.reshape(m, l, -1)[:, a, :]

            for a, b in zip(rows, cs):
                d_pwrss = -2.0 * float(pick(z_r[i][:, None], a).ravel() @ pick(u[i][:, None], b).ravel())
                d_ldx = 0.0
                if p:
                    Q = pick(zxy[i][:, :p], a).T @ pick(cols[i], b)
                    P = pick(g_lam[i][:, :p], a).T @ pick(cols[i], b)
                    d_mx = -(Q + Q.T - P - P.T)
                    d_ldx = float(np.sum(mx_inv * d_mx))
                d_ldz = 0.0
                if i == 0:
                    # exact tr(A_00⁻¹ ∂A_00) = 2 Σ_g (C_g⁻¹ T_0ᵀ D_g)[b, a]
                    prod = np.einsum("gab,cb,gcd->gad", sysm.c00_inv, Ts[0], cp.diag[0])
                    d_ldz += 2.0 * float(prod[:, b, a].sum())
                if s:
                    x_i, v_i = pick(blocks[i][:, p + 1:p + 1 + s], b), pick(blocks[i][:, p + 1 + s:], b)
                    gx, gv = pick(g_lam[i][:, p + 1:p + 1 + s], a), pick(g_lam[i][:, p + 1 + s:], a)
                    # x'∂S v − v'∂S v: the control variate v = M⁻¹(L_M w) has expectation
                    # tr(M⁻¹ ∂S) = ∂ log det M, which is added exactly
                    per_probe = (np.sum(gv * x_i, axis=0) + np.sum(gx * v_i, axis=0)
                                 - 2.0 * np.sum(gv * v_i, axis=0))
                    d_ldz += float(per_probe.sum() if self.exact_trace else per_probe.mean())
                    if not self.exact_trace and s > 1:
                        grad_se[j] = float(per_probe.std(ddof=1) / np.sqrt(s))
                    d_ldz += d_logdet_m[j]
                grad[j] = d_ldz + (d_ldx if reml else 0.0) + dof / pwrss * d_pwrss
                j += 1
        return grad, grad_se

    def _logdet_m_gradient(self, Ts) -> np.ndarray:
        """∂ log det M / ∂θ by central differences (M is exact and cheap: O(nnz) per point)."""
        theta = np.concatenate([T[r, c] for T, (r, c) in zip(Ts, self.factor.layouts)])
        out = np.empty(len(theta))
        for j in range(len(theta)):
            h = 1e-6 * max(1.0, abs(theta[j]))
            vals = []
            for step in (h, -h):
                t = theta.copy()
                t[j] += step
                vals.append(self.system.logdet_preconditioner(self.factor.split_theta(t)))
            out[j] = (vals[0] - vals[1]) / (2.0 * h)
        return out

    def objective(self, theta: np.ndarray, reml: bool | None = None) -> float:
        """The (estimated) profiled deviance at θ."""
        return self.evaluate(theta, reml=reml, gradient=False).deviance

    # -- the fit ------------------------------------------------------------------------------
    def default_start(self) -> np.ndarray:
        """A backfitting moment start for the scalar terms (lme4's start for vector terms)."""
        return backfitting_start(self.crossproducts, self.system, self.factor)

    def fit(self, start: np.ndarray | None = None) -> "IterativeLinearMixedModel":
        ctrl = self.control
        if start is None:
            start = ctrl.start if ctrl.start is not None else self.default_start()
        x0 = np.asarray(start, dtype=float)
        if len(x0) != self.factor.n_theta:
            raise ValueError(f"start has {len(x0)} values; this model has {self.factor.n_theta} "
                             "θ parameters")
        self._failed: list[IterativeEvaluation] = []
        best: dict = {}  # the best evaluation: set_theta reuses it instead of evaluating again

        def fg(theta):
            try:
                ev = self.evaluate(theta)
            except np.linalg.LinAlgError:
                return np.inf, np.zeros_like(theta)
            self.evaluations.append((theta.copy(), ev.deviance, ev.cg_iterations))
            if ev.deviance < best.get("deviance", np.inf):
                best.update(deviance=ev.deviance, key=np.asarray(theta, float).tobytes(), ev=ev)
            if not ev.cg_converged:
                self._failed.append(ev)
            return ev.deviance, ev.gradient

        fun, grad = value_and_gradient(fg)
        optimizer = "lbfgsb_mc" if is_default_optimizer(ctrl.optimizer) else ctrl.optimizer
        t0 = time.perf_counter()
        # a Monte Carlo objective: relative changes below 1e-10 of the deviance are noise
        opts = {"ftol": 1e-10, "gtol": 1e-6, **ctrl.options}
        self.optinfo = minimize(fun, x0, self.factor.theta_lower_bounds(), ctrl, grad=grad,
                                optimizer=optimizer, options=opts)
        self._best = best
        self._judge_stop(best.get("ev"))
        self.set_theta(self.optinfo.x)
        self._best = {}
        self._record(time.perf_counter() - t0)
        if self._failed:
            worst = max(float(np.max(ev.residual_norms)) for ev in self._failed)
            warnings.warn(
                f"the iterative fit's conjugate gradients did not converge in "
                f"{len(self._failed)} of {len(self.evaluations)} evaluations (largest relative "
                f"residual {worst:.2e}, tolerance {self.settings['cg_tol']:.0e}, "
                f"{self.settings['cg_maxiter']} iterations); the estimates may be off. Raise "
                "cg_maxiter, loosen cg_tol, or fit with mm.Control(method='exact') if it fits "
                "in memory.", IterativeConvergenceWarning, stacklevel=2)
        check_fit(self)
        return self

    def _judge_stop(self, ev: IterativeEvaluation | None) -> None:
        """A line search that fails where the gradient is within its Monte Carlo noise has
        reached the resolution of the estimate: converged, and said so."""
        info = self.optinfo
        if info.converged or ev is None or ev.gradient_se is None or "ABNORMAL" not in info.message:
            return
        lower = self.factor.theta_lower_bounds()
        free = ~((lower == 0) & (info.x <= 1e-8) & (ev.gradient > 0))  # not held at a bound
        if np.all(np.abs(ev.gradient[free]) <= 3.0 * ev.gradient_se[free] + 1e-6):
            info.converged = True
            info.message += ("; the gradient is within 3 Monte Carlo standard errors of zero: "
                             "stopped at the resolution of the stochastic estimate")

    def set_theta(self, theta: np.ndarray) -> None:
        theta = np.asarray(theta, dtype=float).copy()
        lower = self.factor.theta_lower_bounds()
        theta[(lower == 0) & (theta < 0)] = 0.0
        self._theta = theta
        best = getattr(self, "_best", {})
        ev = (best["ev"] if best.get("key") == theta.tobytes()
              else self.evaluate(theta, gradient=False))
        self._last = ev
        self._objective_value = ev.deviance
        self.loglik_se = 0.5 * ev.logdet_se
        self._beta, self._u = ev.beta, ev.u
        n, p = self.crossproducts.n, self.crossproducts.p
        self._sigma = float(np.sqrt(ev.pwrss / (n - p if self.reml else n)))
        self._vcov_unscaled = ev.vcov_unscaled
        self.loglik_exact = self.exact_trace

    def _record(self, seconds: float) -> None:
        """The path's record in optinfo, and the exact logLik at the optimum when affordable."""
        from .cost import exact_cost

        info = self.optinfo
        est = exact_cost(self.crossproducts)
        want = self.settings["exact_loglik"]
        stochastic_dev = self._objective_value
        if not self.exact_trace and (want == "always" or (want == "auto" and est.affordable_once)):
            twin = LinearMixedModel(self.design, reml=self.reml, control=self.control)
            self._objective_value = float(twin.objective(self._theta))
            self.loglik_exact = True
        info.method = "iterative"
        info.path = {
            **self.choice, "probes": 0 if self.exact_trace else self._w.shape[1],
            "exact_trace": self.exact_trace, "cg_tol": self.settings["cg_tol"],
            "cg_iterations": [it for _, _, it in self.evaluations],
            "loglik_estimate": -0.5 * stochastic_dev, "loglik_mc_se": self.loglik_se,
            "loglik_exact": self.loglik_exact, "seconds": seconds,
        }

    # -- results ------------------------------------------------------------------------------
    def summary_notes(self) -> list[str]:
        path = getattr(self.optinfo, "path", {})
        its = path.get("cg_iterations", [])
        note = (f"iterative path ({path.get('reason', 'requested')}): preconditioned CG, "
                f"{len(its)} evaluations, {max(its) if its else 0} CG iterations at most")
        if self.exact_trace:
            note += "; probes span the system, so logLik and gradient are exact"
        else:
            note += loglik_note(path, self.loglik_exact, self.loglik_se)
        return [note, *super().summary_notes()]

    def conditional_covariance(self, max_q: int = 20_000) -> list[np.ndarray]:
        """Conditional variances of the random effects, from the exact factor at θ̂ (needs it)."""
        from .cost import exact_cost

        est = exact_cost(self.crossproducts)
        if not est.affordable_once:
            raise NotImplementedError(
                "conditional variances need the exact factor, which is too large here (about "
                f"{est.memory / 1e9:.1f} GB, {est.seconds_per_evaluation:.0f} s); the conditional "
                "modes (m.ranef) come from the iterative solve")
        return self._exact_twin().conditional_covariance(max_q)

    def _exact_twin(self) -> LinearMixedModel:
        twin = LinearMixedModel(self.design, reml=self.reml, control=self.control)
        twin.set_theta(self._theta)
        return twin

    def with_design(self, design: ModelDesign, *, control: Control | None = None):
        return IterativeLinearMixedModel(design, reml=self.reml, control=control or self.control,
                                         data_name=self.data_name, **self.settings)

    def refit_ml(self) -> "IterativeLinearMixedModel":
        """The same model fit by maximum likelihood on the iterative path, from this θ."""
        if not self.reml:
            return self
        other = self.with_design(self.design)
        other.reml, other.name = False, self.name
        with warnings.catch_warnings(action="ignore"):
            return other.fit(start=self._theta)

    def convergence_objective(self):
        return None  # finite differences of a stochastic objective would give false alarms


def _crossproducts(design: ModelDesign, row_backend: str):
    """The crossproducts of [Z X y − offset] from the row backend (one pass over the rows)."""
    y = design.y if design.offset is None else design.y - design.offset
    terms = [t.matrix for t in design.terms]
    return get_rows(row_backend)(terms, design.X, y, design.weights).crossproducts()


def loglik_note(path: dict, loglik_exact: bool, loglik_se: float) -> str:
    """The summary's words on an iterative fit's logLik: exact at the optimum, or a stochastic
    estimate with its Monte Carlo standard error (``path``: the fit's ``optinfo.path``)."""
    if loglik_exact:
        return (f"; logLik evaluated exactly at the optimum (stochastic estimate "
                f"{path.get('loglik_estimate', np.nan):.4f}, MC SE {loglik_se:.2g})")
    return (f"; logLik is a stochastic estimate ({path.get('probes')} probes), "
            f"Monte Carlo SE {loglik_se:.2g}")


def backfitting_start(cp, system: ReducedSystem, factor: IterativeFactor,
                      sweeps: int = 3) -> np.ndarray:
    """θ from moment estimates with backfitting (Gao & Owen 2017): per scalar term, the
    between-level variance of the partial residuals' level sums, the effects of the other
    terms removed by shrunken level means; a few sweeps."""
    theta, gram, p, n, k = factor.theta_start(), cp.xyxy, cp.p, cp.n, len(cp.terms)
    # OLS from the crossproducts (least squares: a singular X'X cannot stop the start)
    beta = np.linalg.lstsq(gram[:p, :p], gram[:p, p], rcond=None)[0]
    scalar = [t.ncols == 1 for t in cp.terms]
    zr = [np.asarray(z[p] - z[:p].T @ beta) for z in cp.zxy]  # Z_iᵀ r, r the OLS residuals
    rr = float(gram[p, p] - gram[:p, p] @ beta)
    b = [np.zeros(t.q) for t in cp.terms]
    tau2 = np.zeros(k)
    sigma2 = rr / max(n - p, 1)
    for _ in range(sweeps):
        for i in range(k):
            if not scalar[i]:
                continue
            counts = cp.diag[i][:, 0, 0]
            sums = zr[i] - sum(system.g_block(i, j, b[j][:, None])[:, 0]
                               for j in range(k) if j != i and scalar[j])
            used = counts > 0
            m = int(used.sum())
            between = float(np.sum(sums[used] ** 2 / counts[used]))
            tau2[i] = max((between - m * sigma2) / counts.sum(), 0.0)
            shrink = sigma2 / tau2[i] if tau2[i] > 0 else np.inf
            b[i] = np.where(used, sums / (counts + shrink), 0.0)
        # residual variance of the current fit: ‖r − Σ Z_j b_j‖² / (n − p − df of the effects)
        fitted = sum(float(b[i] @ zr[i]) for i in range(k))
        quad = sum(float(b[i] @ system.g_block(i, j, b[j][:, None])[:, 0])
                   for i in range(k) for j in range(k))
        df = sum(float(np.sum(cp.diag[i][:, 0, 0] / (cp.diag[i][:, 0, 0] + sigma2 / tau2[i])))
                 for i in range(k) if scalar[i] and tau2[i] > 0)
        sigma2 = max((rr - 2.0 * fitted + quad) / max(n - p - df, 1.0), 1e-12 * max(rr, 1e-300))
    pos = 0
    for i, size in enumerate(factor.theta_sizes):
        if scalar[i]:
            theta[pos] = min(max(np.sqrt(tau2[i] / sigma2), 0.05), 10.0)
        pos += size
    return theta


@register_optimizer("lbfgsb_mc", uses_gradient=True)
def _lbfgsb_monte_carlo(fun, x0, bounds, *, grad=None, options):
    """L-BFGS-B for a Monte Carlo objective: few line-search steps (value and gradient are two
    estimates that differ at the noise level, where longer line searches only waste solves)."""
    from scipy.optimize import Bounds
    from scipy.optimize import minimize as sp_minimize

    lower, upper = bounds
    res = sp_minimize(fun, np.clip(x0, lower, upper), jac=grad, method="L-BFGS-B",
                      bounds=Bounds(lower, upper),
                      options={"maxfun": int(options["maxfun"]), "ftol": options.get("ftol", 1e-10),
                               "gtol": options.get("gtol", 1e-6), "maxls": options.get("maxls", 5)})
    return OptimizerOutput(res.x, float(res.fun), bool(res.success),
                           f"scipy L-BFGS-B: {res.message}", res.status == 1)
