"""mixedmodels: linear and generalized linear mixed-effects models with lme4's formulas and numbers."""

from .datasets import list_datasets, load_dataset

__version__ = "0.1.0"

__all__ = ["load_dataset", "list_datasets", "__version__"]
