"""The model specification: lme4 formulas (:mod:`.formula`), the design built from a data frame
(:mod:`.design`) and GLMM responses (:mod:`.response`)."""
