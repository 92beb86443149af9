"""The models: the contract every fitted model offers (:mod:`.base`), the LMM (:mod:`.lmm`), the
GLMM with its PIRLS (:mod:`.glmm`, :mod:`.pirls`) and the negative binomial outer loop
(:mod:`.nbinom`), the families (:mod:`.family`), the optimizer registry (:mod:`.optim`), the
fit checks (:mod:`.checks`) and standardized fits (:mod:`.standardize`)."""
