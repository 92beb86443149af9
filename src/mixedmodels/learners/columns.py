"""The random-effects formula of a mixed-effects learner, and which columns of X go where.

``random="(1 + x1 | school)"`` names the grouping column (``school``) and the random-effect
columns (``x1``). They are taken from X for the random part, and kept out of the learner's
features unless ``learner_features=`` lists them. The random part's fixed effects are the
intercept and the population slopes of the random-effect columns (``1 + x1``), so a column
the learner does not see still gets its mean slope.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..exceptions import DataError
from ..spec.design import split_top
from ..spec.formula import expression_names, parse_formula, unquote

__all__ = ["RandomSpec", "parse_random", "split_columns", "check_frame", "RESPONSE"]

#: the name the working response takes in the random part's formula
RESPONSE = "mm_learner_residual__"


@dataclass(frozen=True)
class RandomSpec:
    """A parsed ``random=`` formula.

    Attributes
    ----------
    text : str
        The formula as given, e.g. ``"(1 + x1 | school)"``.
    formula : str
        The random part's full formula, ``"<response> ~ 1 + x1 + (1 + x1 | school)"``.
    groups : tuple of str
        The grouping columns.
    columns : tuple of str
        Every column of X the random part uses (grouping and random-effect columns).
    """

    text: str
    formula: str
    groups: tuple[str, ...]
    columns: tuple[str, ...]


def parse_random(random: str) -> RandomSpec:
    """Parse ``random`` (random-effects terms only, lme4 syntax) into a :class:`RandomSpec`.

    Raises
    ------
    TypeError
        ``random`` is not a string.
    ValueError
        It has something other than random-effects terms (a fixed part belongs to the learner).
    """
    if not isinstance(random, str):
        raise TypeError(f"random must be a string of random-effects terms such as '(1 | group)', "
                        f"got {type(random).__name__} {random!r}")
    text = random.strip()
    if text.startswith("~"):
        text = text[1:].strip()
    spec = parse_formula(f"{RESPONSE} ~ {text}")
    if not spec.random:
        raise ValueError(f"random={random!r} has no random-effects term; write one such as "
                         "'(1 | group)' or '(1 + x | group)'")
    if spec.fixed.replace(" ", "") not in ("1", "") or spec.offsets:
        raise ValueError(f"random={random!r} may hold only random-effects terms such as "
                         f"'(1 + x | group)'; the fixed part ({spec.fixed}) is the learner's: "
                         "give its columns in X")
    fixed, groups, columns = ["1"], [], []
    for term in spec.random:
        for piece in split_top(term.lhs, "+"):
            piece = piece.strip()
            if piece and piece not in ("0", "1", "-1") and piece not in fixed:
                fixed.append(piece)
        for name in expression_names(term.group):
            name = unquote(name)
            if name not in groups:
                groups.append(name)
        for name in expression_names(term.lhs):
            name = unquote(name)
            if name not in columns:
                columns.append(name)
    terms = " + ".join(str(t) if t.correlated else f"({t.lhs} || {t.group})" for t in spec.random)
    formula = f"{RESPONSE} ~ {' + '.join(fixed)} + {terms}"
    used = tuple(dict.fromkeys(groups + columns))
    return RandomSpec(random, formula, tuple(groups), used)


def check_frame(X, spec: RandomSpec, what: str = "X") -> pd.DataFrame:
    """X as a DataFrame holding the random part's columns, or a clear error.

    Raises
    ------
    DataError
        X is a bare array (it has no column names for ``random`` to refer to), a column is
        missing, or a grouping column has missing values.
    """
    if sp.issparse(X):
        raise TypeError(f"{what} is a sparse {type(X).__name__}: sparse input is not supported (random="
                        f"{spec.text!r} needs named columns); pass a pandas DataFrame")
    if not isinstance(X, pd.DataFrame):
        kind = type(X).__name__
        shape = getattr(X, "shape", None)
        raise DataError(
            f"{what} is a {kind}{'' if shape is None else f' of shape {shape}'} without column names, "
            f"but random={spec.text!r} names the columns {', '.join(map(repr, spec.columns))}; pass a "
            "pandas DataFrame holding the features and these columns, e.g. pd.DataFrame(X, columns=names)")
    cols = [str(c) for c in X.columns]
    for name in spec.columns:
        if name not in X.columns:
            close = difflib.get_close_matches(name, cols, n=3, cutoff=0.6)
            hint = (f"; did you mean {', '.join(map(repr, close))}?" if close else
                    f"; {what} has {', '.join(map(repr, cols[:12]))}{', ...' if len(cols) > 12 else ''}")
            raise DataError(f"column {name!r} named in random={spec.text!r} is not in {what}{hint}")
    return X


def check_fit_frame(X: pd.DataFrame, spec: RandomSpec) -> None:
    """The training rows need every random-part value: missing ones raise, naming the column."""
    for name in spec.columns:
        miss = X[name].isna().to_numpy()
        if miss.any():
            rows = np.flatnonzero(miss)
            shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
            kind = "grouping" if name in spec.groups else "random-effect"
            raise DataError(f"the {kind} column {name!r} has {int(miss.sum())} missing values in the "
                            f"training data (rows {shown}); drop or impute those rows before fit "
                            "(at predict, a missing group is predicted at the population level)")


def split_columns(X: pd.DataFrame, spec: RandomSpec, learner_features) -> list:
    """The learner's feature columns: every column of X not used by ``random``, or
    ``learner_features`` (checked against X)."""
    if learner_features is None:
        feats = [c for c in X.columns if str(c) not in spec.columns]
        if not feats:
            raise DataError(f"X has no column left for the learner: its columns "
                            f"({', '.join(map(repr, map(str, X.columns)))}) are all used by "
                            f"random={spec.text!r}; give learner_features= to share some")
        return feats
    if isinstance(learner_features, str):
        learner_features = [learner_features]
    feats = list(learner_features)
    if not feats:
        raise ValueError("learner_features is empty; give None (every column not in random=) or "
                         "a list of column names")
    for name in feats:
        if name not in X.columns:
            close = difflib.get_close_matches(str(name), [str(c) for c in X.columns], n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise DataError(f"column {name!r} in learner_features is not in X{hint}")
    return feats
