"""Missing data: the report, one-off (forest) imputation, multilevel multiple imputation and pooling."""

from .compare import MissingComparison, compare_missing
from .fits import MIFits, fit_imputations, mi_anova, pool
from .imputations import Imputations
from .impute import impute
from .report import MissingReport, missing_report

__all__ = ["Imputations", "MIFits", "pool", "fit_imputations", "mi_anova", "impute", "missing_report",
           "MissingReport", "compare_missing", "MissingComparison"]
