"""The troubleshooting guide: ``mm.help("convergence")`` prints ``docs/convergence.md``.

The guide ships inside the package (``mixedmodels/docs/convergence.md``); the copy at the
repository root, ``docs/convergence.md``, is identical (a test keeps them so).
"""

from __future__ import annotations

import re
import sys
from importlib import resources
from pathlib import Path

__all__ = ["help", "topics", "text"]

# topics that name a section; other spellings users may type map onto them
_ALIASES = {
    "convergence": "convergence", "converge": "convergence", "gradient": "convergence",
    "hessian": "convergence", "maxfun": "convergence", "warnings": None, "guide": None,
    "all": None, "scaling": "scaling", "scale": "scaling", "standardize": "scaling",
    "singular": "singular", "boundary": "singular", "optimizers": "optimizers",
    "optimizer": "optimizers", "all_fit": "all_fit", "allfit": "all_fit", "repca": "repca",
    "simplify": "simplify", "regularized": "regularized", "bayesian": "regularized",
    "control": "control", "missing": "missing", "rank": "missing", "checklist": "checklist",
    "bayes": "regularized",
}


# guides of their own file (the package copy of docs/<file>), by topic
_GUIDES = {"missing_data": "missing-data.md", "imputation": "missing-data.md", "impute": "missing-data.md",
           "multiple_imputation": "missing-data.md", "mi": "missing-data.md",
           "machine_learning": "machine-learning.md", "learners": "machine-learning.md",
           "ml": "machine-learning.md", "random_forest": "machine-learning.md", "merf": "machine-learning.md",
           "big_data": "big-data.md", "bigdata": "big-data.md", "parquet": "big-data.md", "dask": "big-data.md",
           "spark": "big-data.md", "duckdb": "big-data.md",
           "small_samples": "small-samples.md", "few_clusters": "small-samples.md", "blme": "small-samples.md",
           "tables": "tables.md", "tidy": "tables.md", "alternatives": "alternatives.md",
           "model_comparison": "model-comparison.md", "anova": "model-comparison.md",
           "errors": "errors.md",
           "r2_icc": "r2-icc.md", "r2": "r2-icc.md", "icc": "r2-icc.md", "r_squared": "r2-icc.md",
           "growth_curves": "growth-curves.md", "growth": "growth-curves.md",
           "longitudinal": "growth-curves.md",
           "beyond_glm": "beyond-glm.md", "covariance_structures": "beyond-glm.md",
           "ar1": "beyond-glm.md", "glmmtmb": "beyond-glm.md",
           "ordinal": "beyond-glm.md", "clmm": "beyond-glm.md", "zero_inflation": "beyond-glm.md"}


def _read(name: str = "convergence.md") -> str:
    try:
        return resources.files("mixedmodels").joinpath("docs", name).read_text("utf-8")
    except (FileNotFoundError, OSError):
        # an installation without the package data: the repository copy, if there is one
        root = Path(__file__).resolve().parents[3] / "docs" / name
        if root.exists():
            return root.read_text("utf-8")
        raise FileNotFoundError(
            f"the guide mixedmodels/docs/{name} is not installed; "
            f"read it at docs/{name} in the source repository") from None


def _sections(doc: str) -> dict[str, str]:
    """Level-2 sections keyed by their lower-cased heading."""
    parts = re.split(r"(?m)^## ", doc)
    out = {}
    for part in parts[1:]:
        heading = part.split("\n", 1)[0].strip()
        out[heading.lower()] = "## " + part.rstrip() + "\n"
    return out


def topics() -> list[str]:
    """The section names :func:`help` accepts (plus ``"convergence"`` for the whole guide)."""
    return list(_sections(_read()))


def text(topic: str | None = "convergence") -> str:
    """The guide (``topic`` None, ``"convergence"``-as-guide aliases) or one section, as text.

    ``"convergence"`` gives the whole guide, since that is the command users are told to run;
    the convergence section alone is ``"convergence-section"``.

    Raises
    ------
    ValueError
        For an unknown topic; the message lists the topics.
    """
    if topic is not None and topic.strip().lower().replace(" ", "_").replace("-", "_") in _GUIDES:
        return _read(_GUIDES[topic.strip().lower().replace(" ", "_").replace("-", "_")])
    doc = _read()
    if topic is None:
        return doc
    key = topic.strip().lower().replace(" ", "_").replace("-", "_")
    if key in ("convergence", "converge", "warnings", "guide", "all"):
        return doc
    if key == "convergence_section":
        key = "convergence"
    sections = _sections(doc)
    name = _ALIASES.get(key, key)
    if name not in sections:
        names = ['convergence'] + [s for s in sections if s != 'convergence'] + ['missing-data']
        raise ValueError(f"no help topic {topic!r}; choose one of: {', '.join(names)}")
    return sections[name]


def help(topic: str | None = "convergence", file=None) -> None:  # noqa: A001 (mm.help by design)
    """Print the troubleshooting guide, or one of its sections.

    Parameters
    ----------
    topic : str, default "convergence"
        ``"convergence"`` (the whole guide), or a section: ``"scaling"``, ``"singular"``,
        ``"optimizers"``, ``"all_fit"``, ``"repca"``, ``"simplify"``, ``"regularized"``,
        ``"control"``, ``"missing"``, ``"checklist"``. Warning messages name the section to read.
        ``"missing-data"`` prints the guide to missing data and multiple imputation;
        ``"machine_learning"`` the guide to random effects in machine learning
        (``docs/machine-learning.md``); likewise ``"big_data"``, ``"small_samples"``,
        ``"tables"``, ``"alternatives"``, ``"model_comparison"``, ``"r2_icc"`` (or ``"r2"``,
        ``"icc"``), ``"growth_curves"``, ``"errors"`` and ``"beyond_glm"`` (covariance
        structures: also ``"covariance_structures"``, ``"ar1"``; ordinal models: ``"ordinal"``,
        ``"clmm"``) print those guides of ``docs/``.
    file : file-like, optional
        Where to print (default ``sys.stdout``).

    Examples
    --------
    >>> import mixedmodels as mm
    >>> mm.help("singular")                                     # doctest: +SKIP
    """
    print(text(topic), file=file or sys.stdout)
