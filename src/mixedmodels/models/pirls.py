"""Penalized iteratively reweighted least squares (PIRLS) and the Laplace / AGQ deviances.

For fixed θ (and β, in the second stage of the fit), PIRLS finds the conditional modes of
the spherical random effects u: each step reweights the crossproducts of ``[Z X z]`` (z the
working response, :meth:`~mixedmodels.core.crossproducts.BlockedCrossproducts.reweight`)
and factors them with the blocked Cholesky. One scalar term has closed-form solves (every
block is diagonal) and, for canonical links, exact gradients of the Laplace deviance.
Tolerances come from :class:`~mixedmodels.models.optim.Control` (``pirls_*``).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from ..core.crossproducts import BlockedCrossproducts
from ..core.factor import BlockedFactor
from ..spec.design import ModelDesign
from .family import Family
from .optim import Control

__all__ = ["PirlsEngine", "PirlsResult", "gh_rule", "history_text"]

_NO_BETA = np.zeros(0)  # the β of a u-only solve (shared, never written)
# below this, a PIRLS step that stops shrinking is rounding (see PirlsEngine.pirls, criterion="step")
_STEP_FLOOR = 1e-7


def gh_rule(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for the standard normal density (lme4's ``GHrule``).

    Parameters
    ----------
    k : int
        Number of nodes, 1 to 100.

    Returns
    -------
    z, w : ndarray
        ``Σ w f(z) ≈ E f(Z)`` for ``Z ~ N(0, 1)``; symmetrised exactly.
    """
    if not 1 <= k <= 100:
        raise ValueError(f"the number of quadrature nodes must be 1 to 100, got {k}")
    z, w = np.polynomial.hermite_e.hermegauss(k)
    w = w / np.sqrt(2.0 * np.pi)
    return (z - z[::-1]) / 2.0, (w + w[::-1]) / 2.0


class PirlsResult:
    """The state PIRLS ends in: β, u, η, μ, log det, penalized deviance, its history."""

    __slots__ = ("beta", "u", "eta", "mu", "logdet", "pdev", "dev_sum", "d", "iterations",
                 "converged", "history", "message", "w", "score", "mu_eta")


class PirlsEngine:
    """PIRLS at fixed θ (β inside, or fixed), and the Laplace / AGQ deviances built on it."""

    #: the class of :meth:`pirls`' results (engines that carry more state extend it)
    result_class = PirlsResult

    def __init__(self, design: ModelDesign, family: Family, y: np.ndarray, wt: np.ndarray,
                 nsize: np.ndarray, offset: np.ndarray, control: Control):
        self.family = family
        self.control = control
        self.y, self.wt, self.nsize, self.offset = y, wt, nsize, offset
        self.X = design.X
        self.n, self.p = self.X.shape
        self.terms = [t.matrix for t in design.terms]
        self.k = len(self.terms)
        self.qs = [t.q for t in self.terms]
        self._xcols = [np.ascontiguousarray(self.X[:, j]) for j in range(self.p)]
        # X's crossproducts as matrix products for many columns, or for few rows (p² einsum dots
        # cost 3 µs of call overhead each, most of a small fit's PIRLS step); else long vectors
        # keep numpy's own loops (see _xbeta)
        self._x_products = self.p > 8 or self.n * self.p <= _FEW_ROWS_CELLS
        self.cp_full = BlockedCrossproducts.reweightable(self.terms, self.X)
        self.factor = BlockedFactor(self.cp_full, dense=control.dense_backend,
                                     schur=control.schur)
        # one scalar term: every block is diagonal, so the solves are closed-form bincounts
        self.scalar = self.k == 1 and self.terms[0].ncols == 1
        if self.scalar:
            t = self.terms[0]
            self._codes, self._v, self._m = t.codes, t.values[:, 0], t.nlevels
            self._v_one = bool(np.all(self._v == 1.0))
            # columns of ones (the intercept): their level sums are those of d
            self._x_one = [bool(np.all(xj == 1.0)) for xj in self._xcols]
        else:
            self.cp_u = BlockedCrossproducts.reweightable(self.terms, self.X[:, :0])
            self.factor_u = BlockedFactor(self.cp_u, dense=control.dense_backend,
                                     schur=control.schur)
        mu0 = family.pirls_mustart(y, wt)
        self.eta = family.link.link(mu0) + offset  # where PIRLS starts (lme4's lp0 + offset)
        self.prepare()
        self.failures: list[str] = []

    # -- pieces ----------------------------------------------------------------------------------
    # Long-vector products avoid BLAS: threaded level-1/2 calls on n-vectors are slower than
    # numpy's own loops when the cores are shared.
    def _xbeta(self, beta: np.ndarray) -> np.ndarray:
        if self.p > 8:
            return self.X @ beta
        out = np.zeros(self.n)
        for xj, bj in zip(self._xcols, beta):
            out += bj * xj
        return out

    def _xtv(self, v: np.ndarray) -> np.ndarray:
        """Xᵀ v."""
        if self._x_products:
            return self.X.T @ v
        return np.array([_dot(v, xj) for xj in self._xcols])

    def _xtwx(self, w: np.ndarray) -> np.ndarray:
        if self._x_products:
            return self.X.T @ (self.X * w[:, None])
        out = np.empty((self.p, self.p))
        for j, xj in enumerate(self._xcols):
            wx = w * xj
            for k in range(j + 1):
                out[j, k] = out[k, j] = _dot(wx, self._xcols[k])
        return out


    def zb(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Z Λ(θ) u for the concatenated spherical random effects u."""
        if self.scalar:
            if self._v_one:
                return (theta[0] * u)[self._codes]
            return (theta[0] * self._v) * u[self._codes]
        out = np.zeros(self.n)
        pos = 0
        for t, T, q in zip(self.terms, self.factor.split_theta(theta), self.qs):
            b = u[pos:pos + q].reshape(t.nlevels, t.ncols) @ T.T
            out += np.einsum("ij,ij->i", t.values, b[t.codes]) if t.ncols > 1 else \
                t.values[:, 0] * b[t.codes, 0]
            pos += q
        return out

    def prepare(self) -> None:
        """Precompute the response's constant parts (again when the family's θ changes)."""
        fam = self.family
        # a fit calls this again: recompute only when the family's parameters changed
        # (glmer.nb sets its θ between fits); on 100k rows this is a tenth of a fit
        key = _family_key(fam)
        if getattr(self, "_prepared_for", None) == key:
            return
        self._dev = fam.deviance_function(self.y, self.wt)
        self._aic_const = fam.aic_minus_deviance(self.y, self.nsize, self.wt)
        self._prepared_for = key

    def dev_resid(self, mu: np.ndarray) -> np.ndarray:
        return self._dev(mu)

    @property
    def aic_is_deviance_plus_constant(self) -> bool:
        """Whether aic(μ) = Σ dev_resid(μ) + C for every μ (after :meth:`prepare`): the exact
        gradients differentiate the deviance, so they need it."""
        return self._aic_const is not None

    def dev_total(self, mu: np.ndarray) -> float:
        """The deviance Σ dev_resid(μ) (the family's fast route where it has one)."""
        total = getattr(self._dev, "total", None)
        return float(self._dev(mu).sum()) if total is None else total(mu)

    def aic(self, mu: np.ndarray, dev_sum: float) -> float:
        if self._aic_const is not None:
            return dev_sum + self._aic_const
        return self.family.aic(self.y, self.nsize, mu, self.wt, dev_sum)

    def _level_sums_x(self, wv: np.ndarray, swv2: np.ndarray | None = None) -> np.ndarray:
        """Zᵀ W X / θ for one scalar term, by column: per-level sums of w·v·x (bincounts, ~5×
        faster than the sparse product on 100k rows); ``swv2`` (Σ w v² per level) stands in
        for the columns of ones when v = 1."""
        out = np.empty((self._m, self.p))
        for j, xj in enumerate(self._xcols):
            if self._x_one[j] and swv2 is not None and self._v_one:
                out[:, j] = swv2
            else:
                out[:, j] = np.bincount(self._codes, wv if self._x_one[j] else wv * xj,
                                        minlength=self._m)
        return out

    def _solve(self, theta, w, z, u_only):
        """One penalized weighted least-squares solve: (β, u, log det L_Z², d)."""
        if self.scalar:
            th = float(theta[0])  # a Python float: cheaper than a NumPy scalar in the products
            v, codes, m = self._v, self._codes, self._m
            wv = w if self._v_one else w * v  # (1 | g): skip the n-vector products with v = 1
            swv2 = np.bincount(codes, wv if self._v_one else wv * v, minlength=m)
            d = th * th * swv2 + 1.0
            wz = w * z
            cu = th * np.bincount(codes, wz if self._v_one else wz * v, minlength=m)
            logdet = None  # log det = Σ log d: computed once, for the state PIRLS ends in
            if u_only:
                return _NO_BETA, cu / d, logdet, d
            B = th * self._level_sums_x(wv, swv2)
            Bd = B / d[:, None]
            S = self._xtwx(w) - B.T @ Bd
            r = self._xtv(wz) - Bd.T @ cu
            if not self.p:  # no fixed effects
                return r, cu / d, logdet, d
            R = np.linalg.cholesky(S)
            # LAPACK's potrs itself: scipy's cho_solve wrapper costs ~10 µs per call, dpotrs 1 µs
            beta, info = lapack.dpotrs(R, r, lower=1)
            if info != 0:
                raise np.linalg.LinAlgError(f"dpotrs failed (info={info})")
            return beta, (cu - B @ beta) / d, logdet, d
        cp, f = (self.cp_u, self.factor_u) if u_only else (self.cp_full, self.factor)
        cp.reweight(w, z)
        f.update(theta)
        beta, u = f.solve()
        return beta, np.concatenate(u), f.logdet_z, None

    # -- PIRLS -----------------------------------------------------------------------------------
    def pirls(self, theta: np.ndarray, beta: np.ndarray | None = None,
              eta_start: np.ndarray | None = None, tol: float | None = None, *,
              criterion: str = "deviance") -> PirlsResult:
        """Conditional modes at θ: with ``beta`` given, u only (β fixed); else β and u jointly.

        Follows lme4's ``pwrssUpdate``: from the linear predictor ``eta_start`` (default: the
        last one used, a warm start), Fisher-scoring steps on the penalized deviance; a step
        that raises it is halved (up to ``Control.pirls_max_halvings`` times). It stops

        - ``criterion="deviance"`` (lme4's): when the relative change of the penalized deviance
          is below ``tol`` (default ``Control.pirls_tol``); log det(L_Z)² comes from the last
          factorisation, as in lme4;
        - ``criterion="step"``: when the next step moves no mode by more than ``tol`` (default
          ``Control.pirls_step_tol``), keeping the modes where it was measured, with log det,
          the weights and the score at them: what the exact gradients need.
        """
        fam, link = self.family, self.family.link
        y, wt = self.y, self.wt
        ctrl = self.control
        by_step = criterion == "step"
        if not by_step and criterion != "deviance":
            raise ValueError(f"criterion must be 'deviance' or 'step', got {criterion!r}")
        tol = (ctrl.pirls_step_tol if by_step else ctrl.pirls_tol) if tol is None else tol
        u_only = beta is not None
        fixed = self.offset + self._xbeta(beta) if u_only else self.offset
        warm = eta_start is None
        eta = (self.eta if warm else eta_start).copy()
        mu, mu_eta = link.inverse_and_mu_eta(eta)
        pdev_old = np.inf
        u_old = beta_old = None
        last_step = np.inf
        history = []
        res = self.result_class()
        res.converged, res.message = False, ""
        for it in range(ctrl.pirls_maxit):
            var = fam.variance(mu)
            w = wt * mu_eta * mu_eta / var
            z = (eta - fixed) + (y - mu) / mu_eta
            b_new, u_new, logdet, d = self._solve(theta, w, z, u_only)
            if u_only:
                b_new = beta
            if by_step:  # the state the gradient is taken at: the current modes
                top = (logdet, d, w, mu, mu_eta, var)
                if u_old is not None:
                    step = float(np.abs(u_new - u_old).max())
                    if not u_only and len(b_new):
                        step = max(step, float(np.abs(b_new - beta_old).max()) / max(1.0, np.abs(b_new).max()))
                    # Newton's steps shrink quadratically until the solve's rounding floor (which can
                    # sit above an absolute tolerance when the system is ill-conditioned); a tiny
                    # step that no longer shrinks is that floor: the modes are as exact as they get
                    if step < tol or (step < _STEP_FLOOR and step > 0.5 * last_step):
                        res.converged = True
                        break
                    last_step = step
            eta_new = fixed + self.zb(theta, u_new)
            if not u_only:
                eta_new = eta_new + self._xbeta(b_new)
            mu_new, mu_eta_new = link.inverse_and_mu_eta(eta_new)
            dev_sum = self.dev_total(mu_new)
            pdev = dev_sum + float(u_new @ u_new)
            if not by_step:
                res.logdet, res.d = logdet, d
                if abs((pdev_old - pdev) / pdev) < tol:
                    history.append((it + 1, pdev, 0))
                    u_old, beta_old, eta, mu, mu_eta = u_new, b_new, eta_new, mu_new, mu_eta_new
                    res.dev_sum, pdev_old = dev_sum, pdev
                    res.converged = True
                    break
            halvings = 0
            if u_old is None and not np.isfinite(pdev):
                # the first step left the family's range: step back toward the start, read as
                # u = 0 and β its least-squares fit
                beta_old = beta if u_only else np.linalg.lstsq(self.X, eta - fixed, rcond=None)[0]
                u_old = np.zeros_like(u_new)
                eta = fixed + (0.0 if u_only else self._xbeta(beta_old))
                mu, mu_eta = link.inverse_and_mu_eta(eta)
                pdev_old = self.dev_total(mu)
                res.dev_sum = pdev_old
                if not np.isfinite(pdev_old):
                    u_old = None
            while (not np.isfinite(pdev) or pdev > pdev_old) and u_old is not None \
                    and halvings < ctrl.pirls_max_halvings:
                u_new = 0.5 * (u_old + u_new)
                b_new = 0.5 * (beta_old + b_new)
                eta_new = 0.5 * (eta + eta_new)
                mu_new, mu_eta_new = link.inverse_and_mu_eta(eta_new)
                dev_sum = self.dev_total(mu_new)
                pdev = dev_sum + float(u_new @ u_new)
                halvings += 1
            history.append((it + 1, pdev, halvings))
            # by step the deviance may rise by rounding only; by deviance, by the tolerance
            slack = 1e-10 * abs(pdev) if by_step else tol
            if not np.isfinite(pdev) or pdev - pdev_old > slack:
                res.message = ("step-halving failed to reduce the penalized deviance"
                               if np.isfinite(pdev) else "the penalized deviance is not finite")
                break
            u_old, beta_old, eta, mu, mu_eta = u_new, b_new, eta_new, mu_new, mu_eta_new
            res.dev_sum, pdev_old = dev_sum, pdev
        else:
            res.message = f"no convergence in {ctrl.pirls_maxit} iterations"
        if u_old is None:  # failed on the first step: nothing usable
            raise FloatingPointError("PIRLS failed at its first step: " + res.message)
        if by_step:
            res.logdet, res.d, res.w, mu_top, res.mu_eta, var = top
            res.score = wt * (y - mu_top) * res.mu_eta / var  # −½ d dev / dη
        else:
            res.mu_eta = mu_eta  # dμ/dη at the final μ (the Laplace gradient reuses it)
        if res.logdet is None and res.d is not None:  # one scalar term: each block of L_Z is its d
            res.logdet = float(np.log(res.d).sum())
        res.beta, res.u, res.eta, res.mu = beta_old, u_old, eta, mu
        res.pdev = pdev_old
        res.iterations = len(history)
        res.history = history
        if warm and res.converged:
            self.eta = eta
        return res

    # -- one scalar term, canonical link: exact gradients ---------------------------------------
    def _weights(self, mu, mu_eta):
        var = self.family.variance(mu)
        w = self.wt * mu_eta * mu_eta / var
        score = self.wt * (self.y - mu) * mu_eta / var  # −½ d dev / dη
        return w, score

    def _per_level(self, values):
        return np.bincount(self._codes, values, minlength=self._m)

    def gradient_scalar(self, theta: np.ndarray, res: PirlsResult) -> np.ndarray:
        """Gradient of the Laplace deviance in (θ, β) at the mode, for one scalar term and a
        canonical link (binomial-logit, Poisson-log), where Fisher and Newton weights agree.

        With F the penalized deviance (stationary in u at û) and G = Σ log d_g, d_g = 1 +
        θ² Σ w v²: dL/dp = ∂F/∂p + ∂G/∂p + ∂G/∂u · dû/dp, dû/dp = −(∂²F/∂u∂p) / (2 d).
        """
        th = float(theta[0])
        v = self._v
        u, d, w, score = res.u, res.d, res.w, res.score
        mu = res.mu
        # dw/dη for the canonical links: w = wt·V(μ), V' · dμ/dη = V'(μ)·V(μ)
        dw = self.family.weight_eta_derivative(mu, w)
        ucode = u[self._codes]
        v2 = np.ones(self.n) if self._v_one else v * v
        # ∂G/∂η_i per row (through w), and the pieces per level
        gw = th * th * dw * v2 / d[self._codes]          # ∂G/∂η_i
        dG_du = th * self._per_level(gw * v)              # η_i depends on u_g by θ v_i
        # β
        grad_beta = np.empty(self.p)
        wv = w * v
        for j, xj in enumerate(self._xcols):
            dF = -2.0 * _dot(score, xj)
            dG = _dot(gw, xj)
            du = -th * self._per_level(wv * xj) / d        # dû/dβ_j
            grad_beta[j] = dF + dG + float(dG_du @ du)
        # θ
        vu = v * ucode
        dF_th = -2.0 * _dot(score, vu)
        dG_th = float(np.sum(2.0 * th * self._per_level(w * v2) / d)) + _dot(gw, vu)
        d2F = -2.0 * self._per_level(score * v) + 2.0 * th * u * self._per_level(w * v2)
        du_th = -d2F / (2.0 * d)
        grad_theta = dF_th + dG_th + float(dG_du @ du_th)
        return np.concatenate([[grad_theta], grad_beta])

    def laplace_stage1_scalar(self, theta: np.ndarray) -> tuple[float, float]:
        """lme4's nAGQ = 0 deviance (β inside PIRLS) and its derivative in θ, for one scalar
        term and a canonical link; log det at the weights of the mode."""
        th = float(theta[0])
        res = self.pirls(theta, None, tol=self.control.pirls_tol_smooth)
        if not res.converged:
            raise FloatingPointError(res.message)
        v = self._v
        mu, mu_eta = res.mu, res.mu_eta  # the link's values at res.eta, from PIRLS' last step
        w, score = self._weights(mu, mu_eta)
        v2 = 1.0 if self._v_one else v * v
        d = th * th * self._per_level(w * v2) + 1.0
        value = float(np.log(d).sum()) + float(res.u @ res.u) + self.aic(res.mu, res.dev_sum)
        u = res.u
        ucode = u[self._codes]
        vu = ucode if self._v_one else v * ucode
        dw = self.family.weight_eta_derivative(mu, w)
        gw = th * th * dw * v2 / d[self._codes]
        # gradient of G = Σ log d in (u, β), and the mixed second derivatives ½ ∂²F/∂(u,β)∂θ
        gG_u = th * self._per_level(gw if self._v_one else gw * v)
        gG_b = np.array([_dot(gw, xj) for xj in self._xcols])
        wv = w if self._v_one else w * v
        c_u = -self._per_level(score if self._v_one else score * v) + th * u * self._per_level(w * v2)
        c_b = np.array([_dot(wv * ucode, xj) for xj in self._xcols])
        # solve ½H [a_u; a_b] = [c_u; c_b] with ½H = [[D, B], [Bᵀ, XᵀWX]] by the Schur complement
        B = th * np.column_stack([self._per_level(wv * xj) for xj in self._xcols])
        Bd = B / d[:, None]
        S = self._xtwx(w) - B.T @ Bd
        a_b = np.linalg.solve(S, c_b - Bd.T @ c_u)
        a_u = (c_u - B @ a_b) / d
        dF = -2.0 * _dot(score, vu)
        dG = float(np.sum(2.0 * th * self._per_level(w * v2) / d)) + _dot(gw, vu)
        grad = dF + dG - float(gG_u @ a_u) - float(gG_b @ a_b)
        return value, grad

    # -- deviances -------------------------------------------------------------------------------
    def laplace(self, res: PirlsResult) -> float:
        """lme4's Laplace deviance: log det(L_Z)² + ‖u‖² + aic(μ)."""
        return res.logdet + float(res.u @ res.u) + self.aic(res.mu, res.dev_sum)

    def agq(self, theta: np.ndarray, beta: np.ndarray, res: PirlsResult, nodes, weights) -> float:
        """lme4's adaptive Gauss-Hermite deviance for one scalar term at the PIRLS mode."""
        codes, m = self._codes, self._m
        u0 = res.u
        fixed = self.offset + self._xbeta(beta)
        devc0 = u0 * u0 + np.bincount(codes, self.dev_resid(res.mu), minlength=m)
        sd = 1.0 / np.sqrt(res.d)
        tv = theta[0] * self._v
        mult = np.zeros(m)
        link = self.family.link
        for z, w in zip(nodes, weights):
            if z == 0.0:
                mult += w
                continue
            uu = u0 + z * sd
            mu = link.inverse(fixed + tv * uu[codes])
            devc = uu * uu + np.bincount(codes, self.dev_resid(mu), minlength=m)
            mult += w * np.exp(-0.5 * (devc - devc0) + 0.5 * z * z)
        return float(devc0.sum() + res.logdet - 2.0 * np.log(mult).sum())

    def rx(self, theta: np.ndarray, res: PirlsResult) -> np.ndarray:
        """R_X, the Cholesky factor of the fixed-effects Schur complement at the mode's weights."""
        link = self.family.link
        mu_eta = link.mu_eta(res.eta)
        w = self.wt * mu_eta * mu_eta / self.family.variance(res.mu)
        if self.scalar:
            th = theta[0]
            d = th * th * np.bincount(self._codes, w * self._v * self._v, minlength=self._m) + 1.0
            B = th * self._level_sums_x(w if self._v_one else w * self._v)
            S = self._xtwx(w) - B.T @ (B / d[:, None])
            return np.linalg.cholesky(S)
        # any z outside the span of X will do: only the X block of the factor is used
        self.cp_full.reweight(w, (res.eta - self.offset) + (self.y - res.mu) / mu_eta)
        self.factor.update(theta)
        return self.factor.R_xy[:self.p, :self.p].copy()



def _family_key(fam: Family) -> tuple:
    """The family's scalar parameters (the link aside): what the response's constants use."""
    return (type(fam),) + tuple(sorted((k, v) for k, v in vars(fam).items()
                                      if v is None or isinstance(v, (bool, int, float, str))))


#: at most this many cells in X: its crossproducts as one matrix product (see PirlsEngine)
_FEW_ROWS_CELLS = 20_000


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.einsum("i,i->", a, b))


def history_text(res: PirlsResult) -> str:
    """The last PIRLS iterations, for messages."""
    steps = "; ".join(f"iteration {it}: penalized deviance {pdev:.6g}"
                      + (f" after {h} step-halvings" if h else "") for it, pdev, h in res.history[-8:])
    return f"PIRLS history: {steps}"
