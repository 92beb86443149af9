"""The entry points: :func:`lmer` and :func:`glmer`, lme4's pipeline in one call each.

Each is the pipeline, stage by stage: the formula and data to a design
(:func:`~mixedmodels.spec.design.build_design`), the model (:mod:`mixedmodels.models`), its
fit, and the fit checks.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import warnings

import numpy as np
import pandas as pd

from ..exceptions import DataError, MixedModelsWarning
from ..missing.fits import fit_imputations
from ..missing.imputations import Imputations
from ..models.cost import check_exact_fits
from ..models.dispatch import fit_generalized_model, fit_linear_model
from ..models.family import Family, NegativeBinomial, get_family
from ..models.glmm import GeneralizedLinearMixedModel, check_separation
from ..models.lmm import LinearMixedModel
from ..models.nbinom import fit_negative_binomial
from ..models.optim import Control
from ..models.standardize import standardized_lmer
from ..models.streamed import StreamedLMM, streamed_glmer
from ..models.tmb_families import is_tmb_family
from ..models.tmb_model import GlmmTMBModel, fit_glmmtmb
from ..postestimation import streamed as _per_row  # noqa: F401 (registers fitted/residuals on sources)
from ..postestimation.progress import Progress
from ..sources import as_pandas, is_streamed, stream_design
from ..spec.arguments import check_bool
from ..spec.design import build_design
from ..spec.response import Response, response_parser
from .ordinal_api import clmm  # noqa: F401  (ordinal models: their own module)
from .tidy import frame_library

__all__ = ["lmer", "glmer", "clmm"]


# --------------------------------------------------------------------------------------------
# argument checks: wrong types and values, and R's spellings, raise instead of being ignored
# --------------------------------------------------------------------------------------------

# R (lme4) argument names → the Python ones
_R_SPELLINGS = {
    "REML": "reml", "nAGQ": "n_agq", "na.action": "na_action", "naAction": "na_action",
    "na_omit": "na_action", "nagq": "n_agq", "nAgq": "n_agq", "Reml": "reml",
    "weight": "weights", "offsets": "offset", "ctrl": "control", "controls": "control",
    "glmerControl": "control", "lmerControl": "control", "standardise": "standardize",
    "scale": "standardize", "subset": None, "contrasts": None, "start": "control",
    "link": "family",
    "verbose": None, "devFunOnly": None, "mustart": None, "etastart": None,
}
_NA_ACTIONS = {"na.omit": "drop", "na.exclude": "drop", "omit": "drop", "na.fail": "raise",
               "fail": "raise", "exclude": "drop"}


def _unknown_arguments(func: str, kwargs: dict, allowed: list[str]) -> None:
    if not kwargs:
        return
    name = next(iter(kwargs))
    if func == "lmer" and name == "family":
        raise TypeError(f"lmer() got an unexpected keyword argument 'family' "
                        f"(family={kwargs[name]!r}): lmer fits linear (Gaussian) mixed models; "
                        "use mm.glmer for a GLMM, e.g. mm.glmer(formula, data, family='binomial')")
    if func == "lmer" and name in ("n_agq", "nAGQ"):
        raise TypeError(f"lmer() got an unexpected keyword argument {name!r}: n_agq (nAGQ) is an "
                        "argument of mm.glmer; a linear mixed model needs no quadrature")
    if func == "glmer" and name in ("reml", "REML"):
        raise TypeError(f"glmer() got an unexpected keyword argument {name!r}: GLMMs are fit by "
                        "maximum likelihood only (lme4's glmer has no REML either)")
    if func == "glmer" and name in ("standardize",):
        raise TypeError("glmer() got an unexpected keyword argument 'standardize': it is an "
                        "argument of mm.lmer only")
    python = _R_SPELLINGS.get(name, "")
    if name == "start":
        hint = "; give start values as control=mm.Control(start=...)"
    elif name == "link":
        hint = "; give the link inside the family, e.g. family=mm.binomial('probit')"
    elif python:
        hint = f"; the Python spelling is {python}="
    elif name in _R_SPELLINGS:
        hint = f"; lme4's {name!r} has no counterpart in mm.{func}"
    else:
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}=?" if close else ""
    raise TypeError(f"{func}() got an unexpected keyword argument {name!r}{hint} "
                    f"(its arguments: {', '.join(allowed)})")


def _check_na_action(value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"na_action must be 'drop' or 'raise', got {type(value).__name__} {value!r}")
    if value in ("drop", "raise"):
        return value
    python = _NA_ACTIONS.get(value.strip().lower())
    hint = f"; R's {value!r} is na_action={python!r}" if python else ""
    raise ValueError(f"na_action must be 'drop' or 'raise', got {value!r}{hint}")


def _check_vector(name: str, value) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, (np.ndarray, pd.Series, pd.Index, list, tuple)):
        arr = np.asarray(value)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional (one value per row), got shape "
                             f"{arr.shape}")
        return
    raise TypeError(f"{name} must be a column name or an array with one value per row, got "
                    f"{type(value).__name__} {value!r}")


def _check_control(value) -> None:
    if value is not None and not isinstance(value, Control):
        hint = " (a dict? use mm.Control(**options))" if isinstance(value, dict) else ""
        raise TypeError(f"control must be a mm.Control, got {type(value).__name__}{hint}")


def _check_n_agq(value) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"n_agq must be an integer from 0 to 100, got the bool {value!r}")
    if not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"n_agq must be an integer from 0 to 100, got {type(value).__name__} "
                            f"{value!r}")
    value = int(value)
    if not 0 <= value <= 100:
        raise ValueError(f"n_agq must be from 0 to 100 (0: nAGQ=0, 1: Laplace, >1: quadrature "
                         f"nodes), got {value}")
    return value


def _check_family(value) -> None:
    if isinstance(value, (str, Family)) or (isinstance(value, type) and issubclass(value, Family)):
        return
    if callable(value):
        raise TypeError(f"family must be a name or a Family object, got the function "
                        f"{getattr(value, '__name__', value)!r}: call it, e.g. family=mm.binomial(), "
                        "or give the name, family='binomial'")
    raise TypeError(f"family must be a name (e.g. 'binomial') or a Family object, got "
                    f"{type(value).__name__} {value!r}")


_LMER_ARGS = ["formula", "data", "reml", "weights", "offset", "na_action", "control", "standardize",
              "expand_doublebar", "progress"]
_GLMER_ARGS = ["formula", "data", "family", "n_agq", "weights", "offset", "na_action", "control",
               "expand_doublebar", "zi", "disp", "progress"]


def _pass_progress(progress):
    """Progress bars over the rows of a streamed source's passes (``progress=``)."""
    if progress not in (True, False, "auto"):
        raise ValueError(f"progress must be True, False or 'auto', got {progress!r}")
    if progress is False:
        return None
    return lambda total, desc: Progress(total, desc, progress)


def lmer(formula: str, data: pd.DataFrame, *, reml: bool = True,
         weights: np.ndarray | str | None = None, offset: np.ndarray | str | None = None,
         na_action: str = "drop", control: Control | None = None,
         standardize: bool = False, expand_doublebar: str = "lme4", progress: bool | str = "auto",
         **kwargs) -> LinearMixedModel:
    """Fit a linear mixed model with an lme4 formula.

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"y ~ x + (1 + x | g)"``, ``"y ~ 1 + (1 | a) + (1 | b)"``,
        ``"y ~ 1 + (1 | a/b)"``, ``"y ~ x + (x || g)"``.
    data : DataFrame, path, lazy frame or Imputations
        pandas; polars, pyarrow or a dict of arrays (converted to pandas); or data fitted where
        it lives, in two passes: a path or glob of Parquet/CSV files (streamed by DuckDB), a
        DuckDB relation, a pyarrow Dataset, a polars LazyFrame, a Dask or a Spark DataFrame
        (see ``docs/big-data.md``).
        With :class:`~mixedmodels.missing.imputations.Imputations` (``mm.impute``), one fit per
        imputed data set, returned pooled as :class:`~mixedmodels.missing.fits.MIFits`
        (``df_com=`` gives Barnard–Rubin's df).
    reml : bool, default True
        REML estimates (as lme4's default); False for maximum likelihood.
    weights : array-like or column name, optional
        Prior weights: the residual variance of row i is σ²/wᵢ.
    offset : array-like or column name, optional
    na_action : {"drop", "raise"}
        Rows with missing values in the model's variables are dropped (and counted) or raise.
    control : Control, optional
        Optimizer, tolerances, start values and check levels.
    standardize : bool, default False
        Fit on centred and scaled numeric predictors (the cure for scaling warnings) and
        report the coefficients on both scales (``m.standardized_coefficients``); the
        returned model is on the original scale.
    expand_doublebar : {"lme4", "afex"}, default "lme4"
        How ``(f || g)`` is expanded: as lme4, ``(1 | g) + (0 + f | g)`` (a factor ``f`` keeps a
        full covariance over its indicators), or afex-style, one uncorrelated term per model
        matrix column.
    progress : {"auto", True, False}, default "auto"
        Streamed data only: a progress bar per pass (over its rows on one machine, the partitions
        done on Dask, the tasks done on Spark), shown when the output is interactive and the pass
        will take more than about 2 s.

    Returns
    -------
    LinearMixedModel
        The fitted model.

    Notes
    -----
    Every argument is checked: a wrong type or value raises ``TypeError``/``ValueError``, and
    an unknown keyword (such as R's ``REML=``, or ``family=``, which is for :func:`glmer`)
    raises ``TypeError`` naming the Python spelling.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> m = mm.lmer("Reaction ~ Days + (Days | Subject)", mm.load_dataset("sleepstudy"))
    >>> round(m.loglik, 3)
    -871.814
    """
    if isinstance(data, Imputations):  # one fit per imputed data set, pooled (mixedmodels.missing)
        return fit_imputations(lmer, formula, data, reml=reml, weights=weights, offset=offset,
                               na_action=na_action, control=control, standardize=standardize,
                               expand_doublebar=expand_doublebar, **kwargs)
    _unknown_arguments("lmer", kwargs, _LMER_ARGS)
    reml = check_bool("reml", reml)
    standardize = check_bool("standardize", standardize)
    na_action = _check_na_action(na_action)
    _check_vector("weights", weights)
    _check_vector("offset", offset)
    _check_control(control)
    if is_streamed(data):  # a path, DuckDB, polars lazy, Dask or Spark: the rows stay there
        if standardize:
            raise NotImplementedError("standardize=True is not supported for streamed data yet")
        design = stream_design(formula, data, weights=weights, offset=offset, na_action=na_action,
                               expand_doublebar=expand_doublebar, progress=_pass_progress(progress))
        ctrl = dataclasses.replace(control or Control(), row_backend="streamed")
        return fit_linear_model(design, reml=reml, control=ctrl, exact_class=StreamedLMM)
    library = frame_library(data)   # tidy/glance give results back in the data's frame type
    data = as_pandas(data)
    if standardize:
        model = standardized_lmer(formula, data, reml=reml, weights=weights, offset=offset,
                                  na_action=na_action, control=control,
                                  expand_doublebar=expand_doublebar)
    else:
        design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action,
                              expand_doublebar=expand_doublebar)
        # the exact factor or the iterative path (Control(method=...), a cost model for "auto")
        model = fit_linear_model(design, reml=reml, control=control)
    model.data_library = library
    return model


def glmer(formula: str, data: pd.DataFrame, *, family: str | Family = "binomial", n_agq: int = 1,
          weights: np.ndarray | str | None = None, offset: np.ndarray | str | None = None,
          na_action: str = "drop", control: Control | None = None,
          expand_doublebar: str = "lme4", zi: str | None = None, disp: str | None = None,
          progress: bool | str = "auto", **kwargs) -> GeneralizedLinearMixedModel | GlmmTMBModel:
    """Fit a generalized linear mixed model with an lme4 formula, by maximum likelihood.

    Parameters
    ----------
    formula : str
        lme4 syntax. Binomial responses may be 0/1, a two-level factor (the second level is
        a success, as R), ``cbind(successes, failures)``, or proportions with ``weights`` giving
        the trials. Offsets: ``offset(log(exposure))`` in the formula or ``offset=``.
    data : DataFrame, path or lazy frame
        pandas; polars, pyarrow or a dict of arrays (converted to pandas); or data fitted where it
        lives (a Parquet/CSV path or glob, DuckDB relation, pyarrow Dataset, polars LazyFrame,
        Dask or Spark DataFrame): the rows are evaluated once into a cache where they are and
        every PIRLS iteration is a pass over it (``m.optinfo.passes``; binomial and Poisson,
        ``n_agq`` 0 or 1; ``weights=``/``offset=`` as column names; see ``docs/big-data.md``).
    family : str or Family
        ``"binomial"``, ``"poisson"``, ``"negative_binomial"`` (dispersion estimated, as lme4's
        ``glmer.nb``), ``"Gamma"``, ``"inverse_gaussian"``, or a family object with its link,
        e.g. ``mixedmodels.binomial("probit")``. glmmTMB's families: ``"nbinom1"``,
        ``"nbinom2"``, ``"truncated_poisson"``, ``"truncated_nbinom1"``,
        ``"truncated_nbinom2"`` (hurdle models with ``zi=``), ``"beta"``, ``"tweedie"``; these,
        and any family with ``zi=`` or ``disp=``, are fit as glmmTMB does (see
        :class:`~mixedmodels.models.tmb_model.GlmmTMBModel`, ``mm.help("beyond-glm")``).
    n_agq : int, default 1
        1: Laplace approximation. >1: adaptive Gauss-Hermite quadrature with that many nodes
        (one scalar random-effects term only). 0: lme4's ``nAGQ = 0`` (faster, β from PIRLS).
    weights : array-like or column name, optional
        Prior weights (the number of trials for proportions).
    offset : array-like or column name, optional
        Added to the linear predictor (and to any ``offset()`` in the formula).
    na_action : {"drop", "raise"}
    control : Control, optional
    expand_doublebar : {"lme4", "afex"}, default "lme4"
        How ``(f || g)`` is expanded (see :func:`lmer`).
    zi : str, optional
        glmmTMB's ``ziformula``, e.g. ``"~ spp + mined"``: zero inflation for poisson/nbinom1/
        nbinom2, the zero part of a hurdle model for the truncated families (counts only).
    disp : str, optional
        glmmTMB's ``dispformula`` (log link), e.g. ``"~ z"``, for families with a dispersion.
    progress : {"auto", True, False}, default "auto"
        Streamed data only: progress bars over the passes that read the source (rows, Dask
        partitions or Spark tasks done), as :func:`lmer`.

    Returns
    -------
    GeneralizedLinearMixedModel

    Notes
    -----
    Arguments are checked as in :func:`lmer`; R's ``nAGQ=`` raises ``TypeError`` naming
    ``n_agq=``.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> m = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              mm.load_dataset("cbpp"), family="binomial")
    >>> round(m.loglik, 2)
    -92.03
    """
    if isinstance(data, Imputations):  # one fit per imputed data set, pooled (mixedmodels.missing)
        return fit_imputations(glmer, formula, data, family=family, n_agq=n_agq, weights=weights,
                               offset=offset, na_action=na_action, control=control,
                               expand_doublebar=expand_doublebar, **kwargs)
    _unknown_arguments("glmer", kwargs, _GLMER_ARGS)
    _check_family(family)
    if zi is not None or disp is not None or is_tmb_family(family):
        if is_streamed(data):
            raise NotImplementedError(
                "glmmTMB's families (and zi=/disp=) are fit in memory: collect the model's columns "
                "of the source into a data frame first (mm.glmer on a source takes binomial and "
                "Poisson GLMMs, whose passes run where the rows are)")
        if n_agq != 1:
            raise ValueError("glmmTMB's families (and zi=/disp=) use the Laplace approximation: "
                             "n_agq must be 1")
        _check_control(control)
        model = fit_glmmtmb(formula, as_pandas(data), family, zi=zi, disp=disp, weights=weights,
                            offset=offset, na_action=_check_na_action(na_action), control=control,
                            expand_doublebar=expand_doublebar)
        model.data_library = frame_library(data)
        return model
    n_agq = _check_n_agq(n_agq)
    na_action = _check_na_action(na_action)
    _check_vector("weights", weights)
    _check_vector("offset", offset)
    _check_control(control)
    fam = get_family(family)
    if is_streamed(data):  # PIRLS' passes run where the rows are (mixedmodels.models.streamed)
        return streamed_glmer(formula, data, fam, n_agq=n_agq, weights=weights, offset=offset,
                              na_action=na_action, control=control, expand_doublebar=expand_doublebar,
                              progress=_pass_progress(progress))
    library = frame_library(data)
    data = as_pandas(data)
    if fam.linear:
        raise ValueError("family 'gaussian' with the identity link is a linear mixed model: "
                         "use mm.lmer")
    store = Response()
    design = build_design(formula, data, weights=weights, offset=offset, na_action=na_action,
                          response=response_parser(fam, store), check_levels=False,
                          expand_doublebar=expand_doublebar)
    y = np.asarray(design.y, dtype=float)
    n = len(y)
    prior = np.ones(n) if design.weights is None else np.asarray(design.weights, dtype=float)
    nsize = np.ones(n)
    wt = prior
    if fam.accepts_trials:
        if store.trials is not None:
            nsize = store.trials
            wt = prior * nsize
            design = dataclasses.replace(design, trials=nsize)
        elif design.weights is not None:
            succ = prior * y
            if np.any(np.abs(succ - np.rint(succ)) > 1e-3):
                warnings.warn("non-integer numbers of successes (weights × proportion) in the "
                              "binomial response: give weights= the number of trials.",
                              MixedModelsWarning, stacklevel=2)
        elif np.any((y != 0) & (y != 1)):
            warnings.warn(f"binomial response {store.name!r} has proportions but no "
                          "weights: each row counts as one trial. Give weights= the number of "
                          "trials, or cbind(successes, failures).", MixedModelsWarning,
                          stacklevel=2)
        separated = check_separation(design, y, nsize, wt)
    else:
        separated = False
    if np.all(y == y[0]) and fam.constant_response_is_error:
        raise DataError(f"response {store.name or design.response_name!r} is constant "
                        f"({y[0]:g}); there is nothing to model")
    if isinstance(fam, NegativeBinomial) and fam.theta is None:
        check_exact_fits(design)  # glmer.nb has the exact path only: refuse, before work
        model = fit_negative_binomial(design, fam, n_agq, control)
    else:  # exact or iterative (the cost model, or Control(method=...)); refused if neither fits
        model = fit_generalized_model(design, fam, n_agq, control, separation_warned=separated)
    model.data_library = library
    return model
