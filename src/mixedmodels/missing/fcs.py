"""Chained equations with two-level models (fully conditional specification), as mice's ``2l.pan``,
``2l.bin``-style latent models and ``2lonly.norm``.

Each incomplete variable in turn gets its own two-level model, with the other variables' current
imputations as predictors, and its parameters and missing values are drawn by a few sweeps of the
Gibbs kernel of :class:`~mixedmodels.missing.sampler.TwoLevelSampler`:

- a continuous level-1 variable: a two-level normal model with the imputation formula's random
  effects on the complete predictors and the other variables (mice's ``2l.pan``);
- a categorical level-1 variable: the same with K − 1 latent normal columns (jomo's latent model,
  one variable at a time);
- a level-2 variable: a cluster-level normal regression on the level-2 predictors, the cluster means
  of the level-1 variables and the other level-2 variables (mice's ``2lonly.norm``).

The m imputations are m chains run side by side (every array carries a chain axis), each ``maxit``
cycles long; convergence is R̂ of the parameters across the chains (second halves), as mice's trace
plots judge it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .imputations import Imputations
from .jointmodel import JointModel, build_joint_model, latent_levels
from .pan import gelman_rubin_chains, rhat_table
from .sampler import LatentFactor, TwoLevelSampler

__all__ = ["fcs_impute"]


class _State:
    """The current imputations of every chain, as predictors: continuous columns, categorical dummies,
    level-2 values (per cluster and expanded to rows)."""

    def __init__(self, jm: JointModel, k: int):
        self.jm, self.k = jm, k
        self.y = np.repeat(jm.Y[None], k, axis=0)                        # (k, n, r): latents for factors
        miss = np.isnan(jm.Y)
        means = np.nanmean(jm.Y, axis=0)
        self.y[:, miss] = np.take(means, np.nonzero(miss)[1])[None]
        for f in jm.factors:                                              # missing categories start at the mode
            mode = np.bincount(f.codes[f.codes >= 0]).argmax()
            start = np.where(np.arange(1, len(f.cols) + 1) == mode, 1.0, -1.0)
            self.y[:, np.flatnonzero(f.codes < 0)[:, None], np.array(f.cols)[None, :]] = start
        self.w = np.repeat(jm.W[None], k, axis=0)
        wm = np.isnan(jm.W)
        self.w[:, wm] = np.take(np.nanmean(jm.W, axis=0), np.nonzero(wm)[1])[None]
        n, J = len(jm.codes), jm.W.shape[0]
        counts = np.bincount(jm.codes, minlength=J)
        self.mean_op = sp.csr_matrix((1.0 / counts[jm.codes], (jm.codes, np.arange(n))), shape=(J, n))

    def level1(self, target: str) -> np.ndarray:
        """(k, n, ·) predictor columns of a level-1 target: values or dummies of its current levels."""
        cols = self.jm.columns[target]
        z = self.y[:, :, cols]
        if target not in self.jm.levels:
            return z
        lv = latent_levels(z.reshape(-1, len(cols))).reshape(self.k, -1)
        return (lv[..., None] == np.arange(1, len(cols) + 1)).astype(float)

    def cluster_means(self, a: np.ndarray) -> np.ndarray:
        """(k, n, c) → (k, J, c)."""
        k, n, c = a.shape
        out = self.mean_op @ a.transpose(1, 0, 2).reshape(n, k * c)
        return out.reshape(-1, k, c).transpose(1, 0, 2)


def _independent(mat: np.ndarray) -> np.ndarray:
    """Columns of ``mat`` (rows × columns) that are linearly independent of the ones before them."""
    _, r = np.linalg.qr(mat)
    d = np.abs(np.diag(r))
    return np.flatnonzero(d > 1e-8 * max(d.max(), 1.0))


def fcs_impute(data: pd.DataFrame, model: dict, *, m: int, seed, maxit: int, inner: int = 2) -> Imputations:
    """Impute the targets of ``model`` m times by chained two-level equations (m chains side by side)."""
    jm = build_joint_model(data, model)
    k = m
    rng = np.random.default_rng(seed)
    st = _State(jm, k)
    n, J = len(jm.codes), jm.W.shape[0]
    X0 = np.broadcast_to(jm.X, (k,) + jm.X.shape)
    x0_means = st.cluster_means(np.ascontiguousarray(X0[..., 1:])) if jm.X.shape[1] > 1 else np.zeros((k, J, 0))
    todo1 = [t for t in jm.targets if jm.mask[t].any()]
    todo2 = [j for j, t in enumerate(jm.level2) if jm.mask[t].any()]
    samplers, keep2, traces = {}, {}, []
    for _cycle in range(maxit):
        for t in todo1:
            others = [st.level1(o) for o in jm.targets if o != t]
            if jm.level2:
                others.append(st.w[:, jm.codes])
            Xt = np.concatenate([X0] + others, axis=2)
            if t not in samplers:
                cols = jm.columns[t]
                factors = [LatentFactor(tuple(range(len(cols))), f.codes) for f in jm.factors if f.cols[0] == cols[0]]
                samplers[t] = TwoLevelSampler(jm.Y[:, cols], Xt, jm.Z, jm.codes, rng, factors=factors, chains=k)
            s = samplers[t]
            s.set_predictors(Xt, sorted_rows=False)
            for _ in range(inner):
                s.sweep()
            st.y[:, :, jm.columns[t]] = s.current_Y()
        for j in todo2:
            parts = [np.broadcast_to(jm.X2, (k,) + jm.X2.shape), x0_means]
            parts += [st.cluster_means(st.level1(o)) for o in jm.targets]
            parts += [st.w[:, :, [i]] for i in range(len(jm.level2)) if i != j]
            X2t = np.concatenate(parts, axis=2)
            if j not in keep2:
                keep2[j] = _independent(X2t[0])
            X2t = X2t[..., keep2[j]]
            key = jm.level2[j]
            if key not in samplers:
                samplers[key] = TwoLevelSampler(np.zeros((n, 0)), np.ones((n, 1)), np.ones((n, 1)), jm.codes, rng,
                                                W=jm.W[:, [j]], X2=X2t, chains=k)
            s = samplers[key]
            s.set_predictors(s.X, X2=X2t)
            for _ in range(inner):
                s.sweep()
            st.w[:, :, j] = s.current_W()[..., 0]
        traces.append(np.concatenate([samplers[t].parameters() for t in todo1 + [jm.level2[j] for j in todo2]],
                                     axis=1))
    names = []
    for t in todo1:
        others = [n_ for o in jm.targets if o != t for n_ in _pred_names(jm, o)] + list(jm.level2)
        names += [f"{t}: {x}" for x in samplers[t].parameter_names(jm.xnames + others, jm.znames,
                                                                    [jm.ynames[c] for c in jm.columns[t]])]
    for j in todo2:
        names += [f"{jm.level2[j]}: {x}" for x in samplers[jm.level2[j]].parameter_names(
            [], [], [], [f"x2[{i}]" for i in keep2[j]], [jm.level2[j]])]
    trace = np.stack(traces, axis=1)                                     # (k, maxit, P)
    diag = rhat_table(gelman_rubin_chains(trace), names)
    sets = [jm.fill(st.y[c], st.w[c]) for c in range(k)]
    return Imputations(sets, data=data, mask=jm.mask, method="fcs", diagnostics=diag,
                       info={"seed": seed, "maxit": maxit, "formula": model["text"], "levels": jm.levels,
                             "level2": jm.level2})


def _pred_names(jm: JointModel, target: str) -> list[str]:
    if target in jm.levels:
        return [f"{target}{x}" for x in jm.levels[target][1:]]
    return [target]
