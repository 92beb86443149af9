"""The alternatives to a mixed model, side by side with it: cluster-robust standard errors, the
within estimator and GEE (:mod:`.estimators`), latent growth curves (:mod:`.growth`) and the
comparison table (:mod:`.compare`)."""
