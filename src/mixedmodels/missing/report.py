"""What is missing, before anything is fit: :func:`missing_report`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..spec.formula import expression_names, parse_formula

__all__ = ["missing_report", "MissingReport", "formula_roles"]


def _check_names(names: list[str], data: pd.DataFrame, where: str) -> None:
    for name in names:
        if name not in data.columns:
            close = difflib.get_close_matches(str(name), [str(c) for c in data.columns], n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise DataError(f"column {name!r} in the {where} is not in the data{hint}")


def formula_roles(formula: str, data: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """The columns a formula uses: (left-hand side, fixed and random-slope predictors, grouping factors).

    Raises :class:`~mixedmodels.exceptions.DataError` naming a column that is not in the data.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    spec = parse_formula(formula)
    lhs = expression_names(spec.response) if spec.response else []
    groups: list[str] = []
    for term in spec.random:
        for g in expression_names(term.group):
            if g not in groups:
                groups.append(g)
    preds = [v for v in spec.variables if v not in lhs and v not in groups]
    _check_names(lhs + preds + groups, data, f"formula {formula!r}")
    return lhs, preds, groups


def md_pattern(frame: pd.DataFrame) -> pd.DataFrame:
    """The missing-data patterns, as mice's ``md.pattern``: one row per pattern (1 observed, 0 missing)
    with its count as the index, columns ordered by their number of missing values, a last column
    with the number missing in the pattern and a last row with the number missing per column."""
    miss = frame.isna()
    order = list(miss.sum().sort_values(kind="stable").index)
    obs = (~miss[order]).astype(int)
    key = obs.apply(lambda r: "".join(map(str, r)), axis=1)
    counts = key.value_counts()
    pats = obs.groupby(key).first().loc[counts.index]
    pats["n_missing"] = len(order) - pats[order].sum(axis=1)
    pats.index = counts.to_numpy()
    pats.index.name = "rows"
    pats = pats.sort_values("n_missing", kind="stable")
    total = pd.DataFrame([list(miss[order].sum()) + [int(miss[order].to_numpy().sum())]],
                         columns=order + ["n_missing"], index=pd.Index(["total"], name="rows"))
    return pd.concat([pats, total])


@dataclass
class MissingReport:
    """What :func:`missing_report` found; print it, or read the tables.

    Attributes
    ----------
    variables : list of str
        The columns looked at.
    pattern : pandas.DataFrame
        mice's ``md.pattern`` table.
    per_variable : pandas.DataFrame
        ``n_missing`` and ``pct_missing`` per variable.
    per_cluster : pandas.DataFrame or None
        Per cluster of the (first) grouping factor: its rows and the share missing of each variable.
    dropout : pandas.DataFrame or None
        With ``time=``: per occasion, the clusters (subjects) observed and the share still in the
        study (observed at that or a later occasion).
    complete_cases : int
        Rows a complete-case fit would use.
    dropped_rows : pandas.Index
        Rows a complete-case fit would lose.
    dropped_by : dict
        Per variable, the rows it alone would remove.
    missing_group_rows : int
        Rows with a missing grouping factor (no imputation can use them).
    """

    variables: list[str]
    pattern: pd.DataFrame
    per_variable: pd.DataFrame
    per_cluster: pd.DataFrame | None
    dropout: pd.DataFrame | None
    complete_cases: int
    dropped_rows: pd.Index
    dropped_by: dict = field(default_factory=dict)
    missing_group_rows: int = 0
    n: int = 0
    group: str | None = None

    def summary(self) -> str:
        """The report as text."""
        lost = self.n - self.complete_cases
        lines = [f"Missing data: {self.n} rows, {len(self.variables)} variables",
                 f"A complete-case fit uses {self.complete_cases} rows and loses {lost} "
                 f"({100 * lost / max(self.n, 1):.1f}%).", "",
                 "Per variable:", self.per_variable.to_string(float_format=lambda x: f"{x:.1f}"), "",
                 "Patterns (1 observed, 0 missing; index: rows with the pattern):", self.pattern.to_string()]
        if self.missing_group_rows:
            lines += ["", f"{self.missing_group_rows} rows have a missing grouping factor: a fit or an "
                          "imputation drops them (they cannot be imputed)."]
        if self.per_cluster is not None:
            pc = self.per_cluster
            share = pc.drop(columns="rows")
            lines += ["", f"Per cluster of {self.group} ({len(pc)} clusters): "
                          f"{int((share > 0).any(axis=1).sum())} have missing values; "
                          f"{int((share >= 1).any(axis=1).sum())} miss a variable entirely.",
                      share.describe().loc[["mean", "min", "max"]].to_string(float_format=lambda x: f"{x:.2f}")]
        if self.dropout is not None:
            lines += ["", "Dropout over occasions:", self.dropout.to_string(float_format=lambda x: f"{x:.2f}")]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return self.summary()


def missing_report(data: pd.DataFrame, formula: str | None = None, *, time: str | None = None,
                   cluster: str | None = None) -> MissingReport:
    """Report the missing values a model would meet.

    Parameters
    ----------
    data : pandas.DataFrame
    formula : str, optional
        An lme4 formula: the report covers its variables, and the clusters of its first grouping
        factor. Without it, every column.
    time : str, optional
        For longitudinal data, the occasion column: adds the dropout curve (per occasion, the
        subjects observed and still in the study).
    cluster : str, optional
        The grouping factor (default: the formula's first).

    Returns
    -------
    MissingReport

    Examples
    --------
    >>> import mixedmodels as mm
    >>> d = mm.load_dataset("sleepstudy").assign(Reaction=lambda x: x.Reaction.where(x.Days < 8))
    >>> rep = mm.missing_report(d, "Reaction ~ Days + (1 | Subject)", time="Days")
    >>> rep.complete_cases
    144
    """
    if formula is not None and not isinstance(formula, str) and isinstance(data, str):
        data, formula = formula, data  # mm.missing_report(formula, data) as lmer's order
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if formula is None:
        variables = [c for c in data.columns if c not in (cluster, time)]
        groups = [cluster] if cluster is not None else []
        if cluster is not None:
            _check_names([cluster], data, "cluster= argument")
    else:
        lhs, preds, groups = formula_roles(formula, data)
        variables = lhs + preds
        if cluster is not None:
            _check_names([cluster], data, "cluster= argument")
            groups = [cluster] + [g for g in groups if g != cluster]
    if time is not None:
        _check_names([time], data, "time= argument")
    frame = data[variables + [g for g in groups if g not in variables]]
    miss = frame.isna()
    n = len(frame)
    per_var = pd.DataFrame({"n_missing": miss.sum(), "pct_missing": 100 * miss.mean()})
    complete = ~miss.any(axis=1)
    dropped = frame.index[~complete.to_numpy()]
    dropped_by = {c: frame.index[miss[c].to_numpy() & (miss.sum(axis=1) == 1).to_numpy()]
                  for c in frame.columns if miss[c].any()}
    group = groups[0] if groups else None
    per_cluster = None
    missing_group_rows = int(data[groups].isna().any(axis=1).sum()) if groups else 0
    if group is not None:
        g = data[group]
        share = miss[variables].groupby(g.to_numpy(), sort=True).mean()
        share.insert(0, "rows", g.value_counts(sort=False).reindex(share.index).to_numpy())
        share.index.name = group
        per_cluster = share
    dropout = None
    if time is not None:
        if group is None:
            raise ValueError("the dropout curve needs the subjects: give a formula with a grouping factor or "
                             "cluster=")
        outcome = variables[0]
        obs = data.loc[data[outcome].notna(), [group, time]]
        occasions = np.sort(data[time].dropna().unique())
        subjects = data[group].nunique()
        last = obs.groupby(group)[time].max()
        dropout = pd.DataFrame({
            "observed": [int(obs.loc[obs[time] == t, group].nunique()) for t in occasions],
            "in_study": [float((last >= t).sum() / subjects) for t in occasions],
        }, index=pd.Index(occasions, name=time))
        dropout["pct_missing"] = 100 * (1 - dropout["observed"] / subjects)
    return MissingReport(variables=variables, pattern=md_pattern(frame[variables]), per_variable=per_var,
                         per_cluster=per_cluster, dropout=dropout, complete_cases=int(complete.sum()),
                         dropped_rows=dropped, dropped_by=dropped_by, missing_group_rows=missing_group_rows,
                         n=n, group=group)
