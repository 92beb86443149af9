"""Adaptive Gauss-Hermite quadrature for a cumulative-link mixed model with one scalar term,
and the exact gradient of its log-likelihood.

Per level g, with ψ_g(u) = Σ ℓ_i(τ, η⁰_i + a_i u) − u²/2 (a_i = v_i σ), mode û_g and
H_g = −ψ_g''(û_g), the nodes are u_k = û + √2 s x_k with s = H^{−1/2}, and

    L_g = log Σ_k w_k exp(x_k²) exp(ψ_g(u_k)) + log(√2 s) − ½ log 2π.

Its derivative in a parameter φ is Σ_k π_k ψ_φ(u_k) + Σ_k π_k ψ'(u_k) du_k/dφ − ½ dlog H/dφ,
π_k the nodes' shares of the sum, du_k/dφ = dû/dφ + √2 x_k ds/dφ, dû/dφ = ∂ψ'/∂φ / H and
dH/dφ = ∂H/∂φ + ∂H/∂u dû/dφ: sums over each level's rows of per-row derivatives at the
nodes (first order) and at the mode (up to third order, as for the Laplace gradient).
"""

from __future__ import annotations

import numpy as np

from .ordinal_links import add_third_order

__all__ = ["agq_loglik_and_gradient"]


def agq_loglik_and_gradient(engine, x: np.ndarray, nodes: np.ndarray, weights: np.ndarray, *,
                            state=None, gradient: bool = True):
    """The AGQ log-likelihood at x = (α, β, σ) and, with ``gradient``, its gradient.

    ``state`` = (u, A's values, H, τ) at the modes, when already computed.
    """
    e = engine
    alpha, beta, theta = e.split(x)
    if state is None:
        u, eta, d_mode, vals, H, _, tau = e.modes(alpha, beta, theta)
    else:
        u, vals, H, tau = state
        d_mode = None
    t = e.terms[0]
    codes, m = t.codes, t.nlevels
    wt = e.wt
    Hg = H[:, 0, 0]
    s = 1.0 / np.sqrt(Hg)
    fixed = e.X @ beta + e.offset
    a = vals[:, 0]
    log_terms, node_d, node_u = [], [], []
    for xk, wk in zip(nodes, weights):
        uk = u + np.sqrt(2.0) * s * xk
        dk = e.derivatives(tau, fixed + a * uk[codes])
        psi = np.bincount(codes, weights=wt * dk.loglik, minlength=m) - 0.5 * uk * uk
        log_terms.append(np.log(wk) + xk * xk + psi)
        node_d.append(dk)
        node_u.append(uk)
    log_terms = np.array(log_terms)
    top = log_terms.max(axis=0)
    total = top + np.log(np.exp(log_terms - top).sum(axis=0))
    ll = float(np.sum(total + np.log(np.sqrt(2.0) * s) - 0.5 * np.log(2.0 * np.pi)))
    if not gradient:
        return ll, None
    if d_mode is None:
        d_mode = e.derivatives(tau, fixed + a * u[codes])
    d = add_third_order(d_mode)
    pi = np.exp(log_terms - total)                      # (nodes, levels)
    v = t.values[:, 0]
    # Σ_k π_k ψ_φ(u_k): per-row weights of x (β), of the cut points (τ) and of v u_k (σ)
    l_eta_pi = np.zeros(e.n)
    l_a_pi = np.zeros(e.n)
    l_c_pi = np.zeros(e.n)
    sig_direct = 0.0
    A = np.zeros(m)
    B = np.zeros(m)
    for k, (dk, uk) in enumerate(zip(node_d, node_u)):
        p = pi[k][codes]
        l_eta_pi += p * dk.l_eta
        l_a_pi += p * dk.l_a
        l_c_pi += p * dk.l_c
        sig_direct += float(np.sum(wt * p * dk.l_eta * v * uk[codes]))
        dpsi = np.bincount(codes, weights=wt * dk.l_eta * a, minlength=m) - uk
        A += pi[k] * dpsi
        B += pi[k] * dpsi * np.sqrt(2.0) * nodes[k]
    C = -0.5 * B * s ** 3 - 0.5 / Hg                    # the weight of dH/dφ
    dH_du = np.bincount(codes, weights=wt * d.w_eta * a ** 3, minlength=m)
    D = (A + C * dH_du) / Hg                            # the weight of ∂ψ'/∂φ
    Dr, Cr = D[codes], C[codes]
    a2 = a * a
    r = wt * (l_eta_pi - Dr * d.w * a + Cr * d.w_eta * a2)
    ga = wt * (l_a_pi + Dr * d.l_eta_a * a + Cr * d.w_a * a2)
    gc = wt * (l_c_pi + Dr * d.l_eta_c * a + Cr * d.w_c * a2)
    g_beta = e.X.T @ r
    g_alpha = e.thr.jacobian.T @ e._tau_gradient(ga, gc)
    ur = u[codes]
    g_sigma = (sig_direct
               + float(np.sum(Dr * wt * (d.l_eta * v - ur * d.w * a * v)))
               + float(np.sum(Cr * wt * (d.w_eta * a2 * v * ur + 2.0 * d.w * a * v))))
    return ll, np.concatenate([g_alpha, g_beta, [g_sigma]])
