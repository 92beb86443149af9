"""The two-level imputation model of ``impute(method="pan" | "fcs")``: its formulas, matrices and the
write-back of draws into data sets.

One formula, mitml's ``panImpute`` spelling: ``"y1 + y2 ~ x1 + x2 + (1 | g)"`` (level-1 variables to
impute on the left). Two formulas, jomo's (mitml's ``jomoImpute``): a list ``[level-1 formula,
level-2 formula]`` where the second names level-2 variables to impute (constant within clusters) and
their cluster-level predictors, e.g. ``["ReadDis ~ ReadAchiev + (1 | ID)", "SchClimate ~ 1"]``.

Categorical level-1 variables (strings, categories, booleans) are imputed through latent normal
variables (jomo's model): K − 1 latent columns for K observed levels, the first level the reference.
Only observed levels are ever imputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..spec.design import design_matrix
from ..spec.formula import parse_formula
from .report import formula_roles
from .sampler import LatentFactor

__all__ = ["JointModel", "build_joint_model", "parse_imputation_formula", "is_categorical"]


def is_categorical(s: pd.Series) -> bool:
    """Imputed through latent normals (strings, categories, booleans), not as a continuous variable."""
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def parse_imputation_formula(formula, data: pd.DataFrame) -> dict:
    """The pieces of the imputation formula(s): level-1 and level-2 targets, predictors, the group."""
    if isinstance(formula, (list, tuple)):
        if len(formula) != 2 or not all(isinstance(f, str) for f in formula):
            raise ValueError("a two-level imputation model is a list of two formulas, [level-1, level-2], e.g. "
                             "['ReadDis ~ ReadAchiev + (1 | ID)', 'SchClimate ~ 1'] (as mitml's jomoImpute)")
        f1, f2 = formula
    elif isinstance(formula, str):
        f1, f2 = formula, None
    else:
        raise TypeError("the imputation formula must be a string or a list of two strings, got "
                        f"{type(formula).__name__}")
    spec = parse_formula(f1)
    lhs, preds, groups = formula_roles(f1, data)
    if not lhs:
        raise ValueError(f"the imputation formula {f1!r} needs the variables to impute on its left, "
                         "e.g. 'ReadDis + SES ~ ReadAchiev + (1 | ID)'")
    if len(spec.random) != 1 or len(groups) != 1:
        raise ValueError(f"the imputation formula {f1!r} needs exactly one random-effects term with one "
                         "grouping factor, e.g. (1 | ID) or (1 + x | ID) (two-level imputation)")
    model = {"spec": spec, "targets": lhs, "predictors": preds, "group": groups[0], "level2": [], "predictors2": [],
             "spec2": None, "text": f1 if f2 is None else [f1, f2]}
    if f2 is not None:
        spec2 = parse_formula(f2)
        lhs2, preds2, groups2 = formula_roles(f2, data)
        if groups2 or spec2.random:
            raise ValueError(f"the level-2 formula {f2!r} has no random effects: its variables are one value per "
                             "cluster, e.g. 'SchClimate ~ 1'")
        if not lhs2:
            raise ValueError(f"the level-2 formula {f2!r} needs the level-2 variables to impute on its left")
        both = set(lhs) & set(lhs2)
        if both:
            raise ValueError(f"{sorted(both)} are on the left of both formulas: a variable is level 1 or level 2")
        model.update(level2=lhs2, predictors2=preds2, spec2=spec2)
    return model


def _complete(data: pd.DataFrame, cols: list[str], where: str) -> None:
    incomplete = [c for c in cols if data[c].isna().any()]
    if incomplete:
        raise DataError(f"the predictors {', '.join(map(repr, incomplete))} of the {where} have missing values; "
                        "put them on the left of '~' to impute them too")


def _per_cluster(data: pd.DataFrame, col: str, codes: np.ndarray, J: int, what: str) -> pd.Series:
    """One value per cluster of a level-2 column (its observed values must agree within each cluster)."""
    s = data[col]
    obs = s.notna().to_numpy()
    frame = pd.DataFrame({"c": codes[obs], "v": s.to_numpy()[obs]})
    nunique = frame.groupby("c")["v"].nunique()
    if (nunique > 1).any():
        bad = int((nunique > 1).sum())
        raise DataError(f"{what} {col!r} varies within {bad} clusters: a level-2 variable has one value per "
                        "cluster; impute it in the level-1 formula instead")
    first = frame.groupby("c")["v"].first()
    return first.reindex(range(J))


@dataclass
class JointModel:
    """The imputation model's arrays and how to write draws back (rows with a missing group removed)."""

    data: pd.DataFrame
    targets: list[str]
    level2: list[str]
    Y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    codes: np.ndarray
    W: np.ndarray
    X2: np.ndarray
    factors: list[LatentFactor]
    levels: dict
    columns: dict                      # target -> its columns of Y
    ynames: list[str]
    xnames: list[str]
    znames: list[str]
    x2names: list[str]
    mask: pd.DataFrame = field(default=None)

    def fill(self, y: np.ndarray, w: np.ndarray) -> pd.DataFrame:
        """A copy of the data with the missing cells set from one draw (level 1 y (n, r), level 2 w (J, s))."""
        d = self.data.copy()
        for c in self.targets:
            rows = self.mask[c].to_numpy()
            if not rows.any():
                continue
            cols = self.columns[c]
            if c in self.levels:
                d.loc[rows, c] = np.asarray(self.levels[c], dtype=object)[latent_levels(y[rows][:, cols])]
            else:
                d.loc[rows, c] = y[rows, cols[0]]
        for j, c in enumerate(self.level2):
            rows = self.mask[c].to_numpy()
            if rows.any():
                d.loc[rows, c] = w[self.codes[rows], j]
        return d


def latent_levels(z: np.ndarray) -> np.ndarray:
    """Level codes from latent columns: 0 (reference) when all are negative, else 1 + the largest."""
    return np.where(z.max(axis=1) > 0, z.argmax(axis=1) + 1, 0)


def build_joint_model(data: pd.DataFrame, model: dict) -> JointModel:
    """The arrays of the imputation model (see :class:`JointModel`)."""
    group = model["group"]
    _complete(data, model["predictors"], "imputation model")
    _complete(data, model["predictors2"], "level-2 imputation model")
    spec = model["spec"]
    fixed = design_matrix(spec.fixed, data, "imputation model")
    zmat = design_matrix(spec.random[0].lhs, data, "imputation model's random effects")
    codes = pd.factorize(data[group])[0]
    J = int(codes.max()) + 1
    cols, levels, factors, ynames, blocks = {}, {}, [], [], []
    pos = 0
    for c in model["targets"]:
        s = data[c]
        if is_categorical(s):
            lv = sorted(pd.unique(s.dropna()), key=str) if not isinstance(s.dtype, pd.CategoricalDtype) else \
                [x for x in s.cat.categories if (s == x).any()]
            if len(lv) < 2:
                raise DataError(f"categorical column {c!r} has {len(lv)} observed level(s): nothing to impute "
                                "from; drop it from the imputation model")
            code = np.full(len(s), -1)
            obs = s.notna().to_numpy()
            code[obs] = pd.Categorical(s[obs], categories=lv).codes
            latent = np.where(code[:, None] == np.arange(1, len(lv))[None, :], 1.0, -1.0)
            latent[~obs] = np.nan
            idx = tuple(range(pos, pos + len(lv) - 1))
            factors.append(LatentFactor(idx, code))
            levels[c] = list(lv)
            ynames += [f"{c}.{x}" for x in lv[1:]]
            blocks.append(latent)
        else:
            idx = (pos,)
            ynames.append(c)
            blocks.append(s.to_numpy(dtype=float)[:, None])
        cols[c] = list(idx)
        pos += len(idx)
    W = np.zeros((J, 0))
    X2 = np.ones((J, 1))
    x2names = ["(Intercept)"]
    if model["level2"]:
        for c in model["level2"]:
            if is_categorical(data[c]):
                raise DataError(f"level-2 column {c!r} is categorical: level-2 variables are imputed as continuous "
                                "here; code it as numbers (0/1 for two levels) or impute it with method='forest'")
        W = np.column_stack([_per_cluster(data, c, codes, J, "level-2 variable").to_numpy(dtype=float)
                             for c in model["level2"]])
        first = np.unique(codes, return_index=True)[1]
        for c in model["predictors2"]:
            _per_cluster(data, c, codes, J, "level-2 predictor")
        f2 = design_matrix(model["spec2"].fixed, data.iloc[first], "level-2 imputation model")
        X2, x2names = np.asarray(f2, dtype=float), [str(c) for c in f2.columns]
    allt = model["targets"] + model["level2"]
    return JointModel(data=data, targets=model["targets"], level2=model["level2"], Y=np.column_stack(blocks),
                      X=np.asarray(fixed, dtype=float), Z=np.asarray(zmat, dtype=float), codes=codes, W=W, X2=X2,
                      factors=factors, levels=levels, columns=cols, ynames=ynames,
                      xnames=[str(c) for c in fixed.columns], znames=[str(c) for c in zmat.columns],
                      x2names=x2names, mask=data[allt].isna())
