"""mixedmodels: linear and generalized linear mixed-effects models with lme4's formulas and numbers.

>>> import mixedmodels as mm
>>> m = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
>>> print(m.summary())                                  # doctest: +SKIP
"""

from .alternatives import cluster_robust, compare_approaches, fixed_effects, gee
from .averaging import model_average, predict_newdata
from .caic import caic
from .compare import aic_table, anova
from .crossval import cross_validate, grouped_folds
from .datasets import list_datasets, load_dataset
from .design import build_design
from .diagnostics import all_fit, rePCA, standardized_lmer
from .exceptions import (ConvergenceWarning, DataError, MissingDataWarning, MixedModelsWarning,
                         ModelComparisonWarning, RankDeficiencyWarning, ScalingWarning,
                         SingularFitWarning)
from .family import Family, Gamma, binomial, get_family, inverse_gaussian, negative_binomial, poisson
from .formula import FormulaError, parse_formula
from .glmm import GeneralizedLinearMixedModel, glmer
from .growth import growth_curve
from .guide import help
from .inference import (BootstrapResult, bootstrap, bootstrap_lrt, confint, contrast, kenward_roger,
                        ranef_table, satterthwaite_df)
from .lmm import LinearMixedModel, lmer
from .optimize import Control
from .predict import predict, simulate
from .variance import icc, r2, r2_beta, variance_components

__version__ = "0.1.0"

__all__ = [
    "lmer", "LinearMixedModel", "anova", "aic_table", "load_dataset", "list_datasets",
    "parse_formula", "build_design", "Control", "FormulaError", "DataError",
    "MixedModelsWarning", "MissingDataWarning", "RankDeficiencyWarning", "ConvergenceWarning",
    "SingularFitWarning", "ScalingWarning", "ModelComparisonWarning", "__version__",
    "cluster_robust", "fixed_effects", "gee", "compare_approaches", "growth_curve",
    "bootstrap", "bootstrap_lrt", "contrast", "confint", "ranef_table", "satterthwaite_df",
    "kenward_roger", "BootstrapResult", "predict", "simulate",
    "all_fit", "rePCA", "standardized_lmer", "help",
    "r2", "icc", "r2_beta", "variance_components", "caic", "model_average", "predict_newdata",
    "cross_validate", "grouped_folds",
    "glmer", "GeneralizedLinearMixedModel", "Family", "get_family", "binomial", "poisson", "Gamma",
    "inverse_gaussian", "negative_binomial",
]
