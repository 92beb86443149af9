"""Joint multilevel imputation by Gibbs sampling (``impute(method="pan")``): the model of Schafer &
Yucel (2002) as R's pan (mitml's ``panImpute``) fits it, with jomo's level-2 variables and latent
normal categorical variables (mitml's ``jomoImpute``).

The sampler is :class:`~mixedmodels.missing.sampler.TwoLevelSampler`. Imputations are taken from one
chain after ``n_burn`` sweeps and every ``n_iter`` sweeps after that, as panImpute. Convergence: the
potential scale reduction R̂ of every parameter over the burn-in, split into three pieces (mitml's
``summary``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .imputations import Imputations
from .jointmodel import build_joint_model
from .sampler import TwoLevelSampler

__all__ = ["pan_impute", "gelman_rubin", "gelman_rubin_chains", "rhat_table"]


def gelman_rubin(chain: np.ndarray, pieces: int = 3) -> np.ndarray:
    """R̂ per column of ``chain`` (iterations × parameters), the chain split into ``pieces``."""
    n = chain.shape[0] // pieces
    if n < 2:
        return np.full(chain.shape[1], np.nan)
    parts = chain[: n * pieces].reshape(pieces, n, -1)
    means = parts.mean(axis=1)
    w = parts.var(axis=1, ddof=1).mean(axis=0)
    b = n * means.var(axis=0, ddof=1)
    vhat = (n - 1) / n * w + (pieces + 1) / (pieces * n) * b
    with np.errstate(divide="ignore", invalid="ignore"):
        rhat = np.sqrt(vhat / w)
    rhat[(w == 0) & (b == 0)] = 1.0
    return rhat


def gelman_rubin_chains(traces: np.ndarray) -> np.ndarray:
    """R̂ per parameter from independent chains (chains × iterations × parameters), second halves."""
    t = traces.shape[1]
    return gelman_rubin(traces[:, t // 2:].reshape(-1, traces.shape[2]), pieces=traces.shape[0]) \
        if traces.shape[0] > 1 else gelman_rubin(traces[0])


def rhat_table(rhat: np.ndarray, names: list[str]) -> pd.DataFrame:
    """R̂ per parameter, as a table (mitml's ``summary`` convergence section)."""
    return pd.DataFrame({"Rhat": rhat}, index=pd.Index(names, name="parameter"))


def pan_impute(data: pd.DataFrame, model: dict, *, m: int, seed, n_burn: int, n_iter: int) -> Imputations:
    """Impute the targets of ``model`` (see :func:`~mixedmodels.missing.jointmodel.parse_imputation_formula`)
    m times from one Gibbs chain."""
    jm = build_joint_model(data, model)
    rng = np.random.default_rng(seed)
    sampler = TwoLevelSampler(jm.Y, jm.X, jm.Z, jm.codes, rng, W=jm.W, X2=jm.X2, factors=jm.factors)
    draws, trace = sampler.run(m, n_burn, n_iter)
    names = sampler.parameter_names(jm.xnames, jm.znames, jm.ynames, jm.x2names, jm.level2)
    diag = rhat_table(gelman_rubin(trace[0]), names)
    sets = [jm.fill(y, w) for y, w in draws]
    info = {"formula": model["text"], "seed": seed, "n_burn": n_burn, "n_iter": n_iter,
            "levels": jm.levels, "level2": jm.level2}
    return Imputations(sets, data=data, mask=jm.mask, method="pan", diagnostics=diag, info=info)
