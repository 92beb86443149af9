"""mixedmodels: linear and generalized linear mixed-effects models with lme4's formulas and numbers.

>>> import mixedmodels as mm
>>> m = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
>>> print(m.summary())                                  # doctest: +SKIP
"""

# Only the exceptions are imported here (plain Python). Every other public name is imported on
# first use (PEP 562 ``__getattr__`` below), so ``import mixedmodels`` loads none of numpy, pandas,
# scipy, formulaic (issue 18: at most 0.3 s). Its first use also imports the modules that
# register the model's post-estimation and presentation methods (m.confint(), m.summary(), the
# plots, m.params: mixedmodels.models.base.load_extensions), which the methods themselves also do
# on first use, so a model made or unpickled without this package has them too.
from .exceptions import (ConvergenceWarning, DataError, MissingDataWarning, MixedModelsWarning,
                         ModelComparisonWarning, OrdinalResponseWarning, RankDeficiencyWarning,
                         ScalingWarning, SingularFitWarning)
from .exceptions import IterativeConvergenceWarning, ModelSizeError

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


# where each public name lives: module (relative to this package) -> names; "" is the module itself
_LAZY_MODULES = {
    "core": ("DenseOps", "RowOps"),
    "spec.design": ("build_design",),
    "spec.formula": ("FormulaError", "parse_formula"),
    "models.base": ("MixedModel",),
    "models.family": ("Family", "Gamma", "binomial", "gaussian", "get_family", "inverse_gaussian",
                      "negative_binomial", "poisson"),
    "models.glmm": ("GeneralizedLinearMixedModel",),
    "models.lmm": ("LinearMixedModel",),
    "models.optim": ("Control", "OptSummary", "optimizers", "register_optimizer"),
    "models.standardize": ("standardized_lmer",),
    "models.priors": ("",),
    "postestimation.averaging": ("model_average", "predict_newdata"),
    "postestimation.bootstrap": ("BootstrapResult", "bootstrap", "bootstrap_lrt"),
    "postestimation.caic": ("caic",),
    "postestimation.compare": ("aic_table", "anova"),
    "postestimation.crossval": ("cross_validate", "grouped_folds"),
    "postestimation.ddf": ("contrast", "kenward_roger", "satterthwaite_df"),
    "postestimation.diagnostics": ("all_fit", "rePCA"),
    "postestimation.emmeans": ("EMMeans", "emmeans"),
    "postestimation.predict": ("predict", "simulate"),
    "postestimation.profile": ("confint",),
    "postestimation.ranef": ("ranef_table",),
    "postestimation.simulated_residuals": ("SimulatedResiduals", "simulate_residuals"),
    "postestimation.variance": ("icc", "r2", "r2_beta", "variance_components"),
    "alternatives.compare": ("compare_approaches",),
    "alternatives.estimators": ("cluster_robust", "fixed_effects", "gee"),
    "alternatives.growth": ("growth_curve",),
    "missing": ("Imputations", "MIFits", "compare_missing", "impute", "missing_report", "pool"),
    "presentation.plots_more": ("plot_all_fit",),
    "presentation.api": ("clmm", "glmer", "lmer"),
    "presentation.datasets": ("list_datasets", "load_dataset"),
    "presentation.guide": ("help",),
    "presentation.tidy": ("augment", "glance", "tidy"),
    "presentation.tables": ("ModelTable", "table"),
    "presentation.display": ("format_anova", "format_table"),
    "presentation.blme": ("bayes_fit", "bglmer", "blmer"),
    "presentation.small_sample": ("compare_small_sample",),
    # scikit-learn's estimators (importing them loads scikit-learn)
    "learners": ("MixedEffectsRegressor", "MixedEffectsClassifier"),
}
_LAZY = {name or module.rpartition(".")[2]: (module, name)
         for module, names in _LAZY_MODULES.items() for name in names}
# the subpackages, as attributes (mm.bayes(...) is a fit; mm.models.lmm, ...)
_SUBPACKAGES = ("core", "spec", "models", "sources", "postestimation", "alternatives", "bayes", "missing",
                "learners", "presentation")


def __getattr__(name: str):
    """Import a public name (or a subpackage) on first use and keep it here."""
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
    elif name in _SUBPACKAGES:
        module, attr = name, ""
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(".models.base", __name__).load_extensions()
    value = importlib.import_module(f".{module}", __name__)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBPACKAGES))
