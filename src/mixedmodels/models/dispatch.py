"""Which engine fits a linear (or generalized linear) mixed model: the exact factor or the
iterative path.

:func:`linear_model` asks the cost model (:func:`~mixedmodels.models.cost.choose_path`) unless
``Control(method=...)`` says, and returns the unfitted model with the choice recorded;
``mm.lmer`` calls :func:`fit_linear_model`. :func:`generalized_model` does the same for GLMMs
(:func:`~mixedmodels.models.iterative_glmm.choose_glmm_path`), for ``mm.glmer``.
"""

from __future__ import annotations

from .cost import choose_path
from .glmm import GeneralizedLinearMixedModel
from .iterative import IterativeLinearMixedModel
from .iterative_glmm import IterativeGLMM, choose_glmm_path
from .lmm import LinearMixedModel
from .optim import Control

__all__ = ["linear_model", "fit_linear_model", "generalized_model", "fit_generalized_model",
           "ITERATIVE_OPTIONS"]

#: keys of ``Control.options`` that set the iterative path (see IterativeLinearMixedModel)
ITERATIVE_OPTIONS = ("probes", "cg_tol", "cg_maxiter", "seed", "exact_loglik")


def linear_model(design, reml: bool = True, control=None, data_name: str | None = None,
                 exact_class: type = LinearMixedModel, **settings):
    """An unfitted LMM on the path :func:`choose_path` picks (``control.method``), with the
    choice recorded (``model.choice``; after the fit also ``optinfo.path``). ``exact_class`` is
    the exact path's model (the streamed LMM for data that stays where it is)."""
    control = control or Control()
    # the iterative path's settings may come in Control(options={"probes": 80, ...})
    settings = {**{k: control.options[k] for k in ITERATIVE_OPTIONS if k in control.options},
                **settings}
    choice = choose_path(design, getattr(control, "method", "auto"),
                         settings.get("probes", 40), schur=getattr(control, "schur", "auto"))
    if choice["method"] == "iterative":
        return IterativeLinearMixedModel(design, reml=reml, control=control, data_name=data_name,
                                         choice=choice, **settings)
    model = exact_class(design, reml=reml, control=control, data_name=data_name)
    model.choice = choice
    return model


def fit_linear_model(design, reml: bool = True, control=None, exact_class: type = LinearMixedModel,
                     **settings):
    """:func:`linear_model` fitted; the exact path's ``optinfo.path`` records the choice too."""
    model = linear_model(design, reml=reml, control=control, exact_class=exact_class, **settings).fit()
    if model.optinfo is not None and not hasattr(model.optinfo, "path"):
        model.optinfo.path = {**model.choice}
    return model


def generalized_model(design, family, n_agq: int = 1, control=None, data_name: str | None = None,
                      **settings):
    """An unfitted GLMM on the path :func:`choose_glmm_path` picks (``control.method``; adaptive
    quadrature, ``n_agq > 1``, is exact only), with the choice in ``model.choice`` and, after
    the fit, in ``optinfo.path``. Raises ModelSizeError before any work when nothing fits."""
    control = control or Control()
    settings = {**{k: control.options[k] for k in ITERATIVE_OPTIONS if k in control.options},
                **settings}
    method = getattr(control, "method", "auto")
    choice = choose_glmm_path(design, "exact" if n_agq > 1 and method == "auto" else method,
                              settings.get("probes", 40), schur=getattr(control, "schur", "auto"))
    if choice["method"] == "iterative":
        return IterativeGLMM(design, family, n_agq, control, data_name, choice=choice, **settings)
    model = GeneralizedLinearMixedModel(design, family, n_agq, control, data_name)
    model.choice = choice
    return model


def fit_generalized_model(design, family, n_agq: int = 1, control=None, *,
                          separation_warned: bool = False):
    """:func:`generalized_model` fitted; the exact path's ``optinfo.path`` records the choice."""
    model = generalized_model(design, family, n_agq, control)
    model.separation_warned = separation_warned
    model.fit()
    if model.optinfo is not None and not hasattr(model.optinfo, "path"):
        model.optinfo.path = {**model.choice}
    return model
