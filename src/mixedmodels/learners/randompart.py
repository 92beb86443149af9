"""The random part of a mixed-effects learner, fit by the package's own LMM and GLMM engines.

The design of ``r ~ 1 + x1 + (1 + x1 | school)`` is built once per fit of the estimator;
each EM iteration then only changes the response (the learner's residuals, through
:meth:`~mixedmodels.models.base.MixedModel.refit`: the design, the grouping structure and
the terms are kept, nothing is re-parsed, and the optimizer starts at the previous θ) or the
offset (the classifier's learner logits, through ``with_design``). On thousands of rows an
update takes milliseconds (LMM) to tenths of a second (the binomial GLMM's Laplace fit).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from ..exceptions import MixedModelsWarning
from ..models.family import binomial
from ..models.glmm import GeneralizedLinearMixedModel
from ..models.lmm import LinearMixedModel
from ..models.optim import Control
from ..postestimation.predict import predict as mm_predict
from ..spec.design import build_design, factor_codes, r_column_name, split_top
from ..spec.formula import unquote
from .columns import RESPONSE, RandomSpec

__all__ = ["RandomPart", "QUIET"]

# inside the loop every refit would warn (a singular fit is common while the learner still
# holds group structure); the estimator reports the last fit's state instead
QUIET = Control(check_conv="ignore", check_singular="ignore", check_scale="ignore")


class RandomPart:
    """``r ~ <intercept and random-effect columns> + (random terms)``, refit per EM iteration.

    Parameters
    ----------
    spec : RandomSpec
    frame : DataFrame
        The random part's columns of the training rows.
    classifier : bool
        A binomial GLMM (Laplace) with the learner's logits as offset instead of an LMM.
    weights : ndarray, optional
        Prior weights (the estimator's ``sample_weight``): precision weights of the LMM, as
        lmer's ``weights=``; the GLMM's binomial prior weights.
    """

    def __init__(self, spec: RandomSpec, frame: pd.DataFrame, *, classifier: bool = False,
                 weights: np.ndarray | None = None):
        self.spec = spec
        self.weights = weights
        self.frame = frame.reset_index(drop=True)
        self.classifier = classifier
        self.model = None

    def fit(self, response: np.ndarray, offset: np.ndarray | None = None):
        """Fit to ``response`` (LMM: the learner's residuals; GLMM: the 0/1 labels with
        ``offset`` the learner's logits), reusing the previous fit's design and estimates."""
        if self.model is None:
            data = self.frame.assign(**{RESPONSE: response})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MixedModelsWarning)
                design = build_design(self.spec.formula, data, na_action="raise", weights=self.weights,
                                      offset=None if offset is None else np.asarray(offset, float),
                                      check_levels=not self.classifier)
            if self.classifier:
                model = GeneralizedLinearMixedModel(design, binomial(), 1, QUIET)
            else:
                model = LinearMixedModel(design, reml=False, control=QUIET)
            self.model = model.fit()
        elif self.classifier:
            design = dataclasses.replace(self.model.design, offset=np.asarray(offset, dtype=float))
            self.model = self.model.with_design(design).fit(start=self.model.warm_start())
        else:
            self.model = self.model.refit(response)
        return self.model

    # -- the fitted part on the training rows --------------------------------------------------
    def fitted(self) -> np.ndarray:
        """The random part's fitted values: fixed (intercept, mean slopes) plus group effects,
        without the offset."""
        eta = self.model.linear_predictor()
        off = self.model.design.offset
        return eta if off is None else eta - off

    # -- new data ------------------------------------------------------------------------------
    def components(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row of ``frame``: the fixed part (intercept and mean slopes), the group part
        (Zb, zero for new or missing groups) and whether every group of the row is new."""
        model = self.model
        frame = frame.reset_index(drop=True)
        # (predict adds no offset for newdata: the learner's logits are an array, not a formula term)
        fixed = np.asarray(mm_predict(model, frame, re_form="~0"), dtype=float)
        total = np.asarray(mm_predict(model, frame, allow_new_levels=True), dtype=float)
        known = np.zeros(len(frame), dtype=bool)
        for term in model.design.terms:
            known |= self.codes(term, frame) >= 0
        return fixed, total - fixed, ~known

    def codes(self, term, frame: pd.DataFrame) -> np.ndarray:
        """Codes of the rows' groups among the term's fitted levels (-1: new or missing)."""
        parts = [unquote(p.strip()) for p in split_top(term.group, ":")]
        missing = frame[parts].isna().any(axis=1).to_numpy()
        codes = np.full(len(frame), -1, dtype=np.int64)
        if (~missing).any():
            c, levels = factor_codes(frame.loc[~missing, parts], term.group)
            labels = np.asarray(levels, dtype=object)[c].astype(str)
            codes[~missing] = pd.Index(term.levels).get_indexer(pd.Index(labels))
        return codes

    def random_variance(self, frame: pd.DataFrame) -> np.ndarray:
        """Per row, the variance of its random part given the data: zᵀ Var(b_g | y) z for a
        known group, zᵀ Σ z for a new one (summed over terms)."""
        model = self.model
        frame = frame.reset_index(drop=True)
        out = np.zeros(len(frame))
        covs = model.term_covariances()
        cond = model.conditional_covariance()
        for term, cov, cvar in zip(model.design.terms, covs, cond):
            mat = term.model_spec.get_model_matrix(frame, na_action="ignore")
            names = [r_column_name(c) for c in mat.columns]
            z = np.asarray(mat, dtype=float)[:, [names.index(c) for c in term.columns]]
            codes = self.codes(term, frame)
            var = np.einsum("ij,jk,ik->i", z, cov, z)
            known = codes >= 0
            if known.any():
                var[known] = np.einsum("ij,ijk,ik->i", z[known], cvar[codes[known]], z[known])
            out += np.nan_to_num(var)
        return out

