"""Chained equations with two-level models (fully conditional specification), as mice's ``2l.pan``.

Each incomplete variable in turn gets a two-level normal model on the complete predictors and the
other incomplete variables (their current imputations), with the imputation formula's random
effects; its parameters and missing values are drawn by the Gibbs kernel of the joint sampler
(:class:`~mixedmodels.missing.pan.PanSampler` with one variable, which is what ``2l.pan`` runs).
Each imputation is its own chain of ``maxit`` cycles; convergence is R̂ of the parameters across
the chains (second halves), as mice's trace plots judge it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DataError
from .imputations import Imputations
from .pan import PanSampler, gelman_rubin_chains, imputation_matrices, rhat_table

__all__ = ["fcs_impute"]


def fcs_impute(data: pd.DataFrame, model: dict, *, m: int, seed, maxit: int, inner: int = 2) -> Imputations:
    """Impute ``model["targets"]`` of ``data`` m times by chained two-level equations."""
    targets, spec = model["targets"], model["spec"]
    for c in targets:
        if not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c]):
            raise DataError(f"column {c!r} is {data[c].dtype}: the two-level normal models of fcs impute numeric "
                            "variables; impute categorical ones with method='forest'")
    fixed, zmat, codes = imputation_matrices(data, model)
    X0, Z = np.asarray(fixed, dtype=float), np.asarray(zmat, dtype=float)
    Y = data[targets].to_numpy(dtype=float)
    mask = np.isnan(Y)
    todo = [j for j in range(len(targets)) if mask[:, j].any()]
    rng = np.random.default_rng(seed)
    sets, traces = [], []
    for _ in range(m):
        cur = Y.copy()
        cur[mask] = np.take(np.nanmean(Y, axis=0), np.nonzero(mask)[1])
        samplers = {}
        trace = []
        for _cycle in range(maxit):
            row = []
            for j in todo:
                others = np.delete(cur, j, axis=1)
                Xj = np.column_stack([X0, others])
                if j not in samplers:
                    samplers[j] = PanSampler(Y[:, [j]], Xj, Z, codes, rng)
                s = samplers[j]
                s.set_predictors(Xj)
                for _ in range(inner):
                    s.sweep()
                cur[:, j] = s.Y[:, 0]
                row.append(s.parameters())
            trace.append(np.concatenate(row))
        d = data.copy()
        for j, c in enumerate(targets):
            rows = mask[:, j]
            d.loc[rows, c] = cur[rows, j]
        sets.append(d)
        traces.append(np.array(trace))
    xnames = [str(c) for c in fixed.columns]
    names = []
    for j in todo:
        others = [t for k, t in enumerate(targets) if k != j]
        names += [f"{targets[j]}: {n}" for n in
                  PanSampler.parameter_names(samplers[j], xnames + others, [str(c) for c in zmat.columns],
                                             [targets[j]])]
    diag = rhat_table_from(np.array(traces), names)
    return Imputations(sets, data=data, mask=pd.DataFrame(mask, columns=targets, index=data.index), method="fcs",
                       diagnostics=diag, info={"seed": seed, "maxit": maxit, "formula": spec.text})


def rhat_table_from(traces: np.ndarray, names: list[str]) -> pd.DataFrame:
    """R̂ across the chains, as a table."""
    table = rhat_table(traces[0], names)
    table["Rhat"] = gelman_rubin_chains(traces)
    return table
