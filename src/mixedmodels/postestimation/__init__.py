"""What is done with a fitted model, through the :class:`~mixedmodels.models.base.MixedModel`
contract and ``refit()`` only: small-sample df (:mod:`.ddf`), profile and Wald intervals
(:mod:`.profile`), the parametric bootstrap (:mod:`.bootstrap`), conditional modes with their
variances (:mod:`.ranef`), prediction and simulation (:mod:`.predict`), model comparison
(:mod:`.compare`, :mod:`.averaging`, :mod:`.crossval`, :mod:`.caic`), variance accounted for
(:mod:`.variance`) and diagnostics (:mod:`.diagnostics`)."""
