"""Missing data: the report, one-off (forest) imputation, multilevel multiple imputation and pooling."""
