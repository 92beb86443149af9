"""mixedmodels: linear and generalized linear mixed-effects models with lme4's formulas and numbers.

>>> import mixedmodels as mm
>>> m = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
>>> print(m.summary())                                  # doctest: +SKIP
"""

# the layers, bottom up (docs/architecture.md); importing them registers the post-estimation
# and presentation methods on MixedModel (m.confint(), m.predict(), m.summary(), plots)
from .core import DenseOps, RowOps
from .exceptions import (ConvergenceWarning, DataError, MissingDataWarning, MixedModelsWarning,
                         ModelComparisonWarning, OrdinalResponseWarning, RankDeficiencyWarning,
                         ScalingWarning, SingularFitWarning)
from .exceptions import IterativeConvergenceWarning, ModelSizeError
from .spec.design import build_design
from .spec.formula import FormulaError, parse_formula
from .models.base import MixedModel
from .models.family import (Family, Gamma, binomial, gaussian, get_family, inverse_gaussian,
                            negative_binomial, poisson)
from .models.glmm import GeneralizedLinearMixedModel
from .models.lmm import LinearMixedModel
from .models.optim import Control, OptSummary, optimizers, register_optimizer
from .models.standardize import standardized_lmer
from .postestimation.averaging import model_average, predict_newdata
from .postestimation.bootstrap import BootstrapResult, bootstrap, bootstrap_lrt
from .postestimation.caic import caic
from .postestimation.compare import aic_table, anova
from .postestimation.crossval import cross_validate, grouped_folds
from .postestimation.ddf import contrast, kenward_roger, satterthwaite_df
from .postestimation.diagnostics import all_fit, rePCA
from .postestimation.emmeans import EMMeans, emmeans
from .postestimation.predict import predict, simulate
from .postestimation.profile import confint
from .postestimation.ranef import ranef_table
from .postestimation.simulated_residuals import SimulatedResiduals, simulate_residuals
from .postestimation.variance import icc, r2, r2_beta, variance_components
from .alternatives.compare import compare_approaches
from .alternatives.estimators import cluster_robust, fixed_effects, gee
from .alternatives.growth import growth_curve
from .missing import Imputations, MIFits, compare_missing, impute, missing_report, pool
from .presentation import plots as _plots  # noqa: F401  (registers the plot methods)
from .presentation.plots_more import plot_all_fit
from .presentation import results as _results  # noqa: F401  (registers summary and repr)
from .presentation import reprs as _reprs  # noqa: F401  (registers the result objects' printing)
from .presentation import aliases as _aliases  # noqa: F401  (statsmodels-style .params, .bse, ...)
from .presentation.api import clmm, glmer, lmer
from .presentation.datasets import list_datasets, load_dataset
from .presentation.guide import help
from .presentation.tidy import augment, glance, tidy
from .presentation.tables import ModelTable, table
from .presentation.display import format_anova, format_table
from .models import priors
from .presentation.blme import bayes_fit, bglmer, blmer
from .presentation.small_sample import compare_small_sample

__version__ = "0.1.0"

__all__ = [
    "lmer", "LinearMixedModel", "anova", "aic_table", "load_dataset", "list_datasets",
    "parse_formula", "build_design", "Control", "FormulaError", "DataError",
    "MixedModelsWarning", "MissingDataWarning", "RankDeficiencyWarning", "ConvergenceWarning",
    "SingularFitWarning", "ScalingWarning", "ModelComparisonWarning", "__version__",
    "IterativeConvergenceWarning", "ModelSizeError",
    "cluster_robust", "fixed_effects", "gee", "compare_approaches", "growth_curve",
    "bootstrap", "bootstrap_lrt", "contrast", "confint", "ranef_table", "satterthwaite_df",
    "kenward_roger", "BootstrapResult", "predict", "simulate",
    "all_fit", "rePCA", "standardized_lmer", "help",
    "r2", "icc", "r2_beta", "variance_components", "caic", "model_average", "predict_newdata",
    "cross_validate", "grouped_folds",
    "glmer", "GeneralizedLinearMixedModel", "Family", "get_family", "binomial", "poisson", "Gamma",
    "inverse_gaussian", "negative_binomial", "gaussian", "MixedModel", "OptSummary", "optimizers",
    "register_optimizer", "DenseOps", "RowOps",
    "emmeans", "EMMeans", "simulate_residuals", "SimulatedResiduals", "plot_all_fit",
    "missing_report", "impute", "pool", "compare_missing", "Imputations", "MIFits",
    "tidy", "glance", "augment", "table", "ModelTable", "format_anova", "format_table",
    "priors", "blmer", "bglmer", "bayes_fit", "compare_small_sample",
    "MixedEffectsRegressor", "MixedEffectsClassifier",
    "clmm", "OrdinalResponseWarning",
]


def __getattr__(name: str):
    """The scikit-learn estimators load scikit-learn, so they are imported on first use."""
    if name in ("MixedEffectsRegressor", "MixedEffectsClassifier"):
        from . import learners

        return getattr(learners, name)
    raise AttributeError(f"module 'mixedmodels' has no attribute {name!r}")
