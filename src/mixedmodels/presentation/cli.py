"""The command line: ``mixedmodels fit``, ``mixedmodels demo`` and ``mixedmodels help``."""

from __future__ import annotations

import argparse
import sys
import warnings

import pandas as pd

from ..exceptions import DataError, ModelComparisonWarning
from ..postestimation.compare import aic_table, anova
from ..spec.formula import FormulaError
from .api import lmer
from .datasets import load_dataset
from .guide import help as show_help

__all__ = ["main", "demo"]


def demo(out=None) -> None:
    """The gpa analysis: three models, both likelihood-ratio tables and the AIC table."""
    out = out or sys.stdout
    gpa = load_dataset("gpa")
    gpa_1 = lmer("gpa ~ occasion + (1 + occasion | student)", gpa)
    gpa_2 = lmer("gpa ~ occasion + sex + (1 + occasion | student)", gpa)
    gpa_3 = lmer("gpa ~ occasion + (1 | student)", gpa)
    for model in (gpa_1, gpa_2, gpa_3):
        model.data_name = "gpa"
    with pd.option_context("display.width", 120, "display.max_columns", 20,
                           "display.float_format", "{:.3f}".format):
        print("=" * 78, file=out)
        print("gpa_2:", file=out)
        print(gpa_2.summary(), file=out)
        print("\n" + "=" * 78, file=out)
        print("Fixed effects: anova(gpa_1, gpa_2, refit=True)  (REML fits refit by ML)", file=out)
        print(_format_anova(anova(gpa_1, gpa_2, refit=True)), file=out)
        print("\nRandom effects: anova(gpa_3, gpa_1, refit=False)  (REML likelihoods)", file=out)
        print(_format_anova(anova(gpa_3, gpa_1, refit=False)), file=out)
        print("\nAIC table (as fit; gpa_2 differs in fixed effects, so its REML AIC is only", file=out)
        print("indicative: compare fixed effects with the ML refit above)", file=out)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ModelComparisonWarning)
            table = aic_table({"gpa_1": gpa_1, "gpa_2": gpa_2, "gpa_3": gpa_3})
        print(table[["npar", "AIC", "dAIC", "weight", "BIC"]].to_string(), file=out)


def _format_anova(table: pd.DataFrame) -> str:
    """The anova table with lme4's digits (p-values as R's format.pval)."""
    shown = table.copy()
    p = shown.pop("Pr(>Chisq)")
    shown["Pr(>Chisq)"] = ["" if pd.isna(v) else ("< 2.2e-16" if v < 2.2e-16 else f"{v:.4g}") for v in p]
    shown["Chisq"] = ["" if pd.isna(v) else f"{v:.3f}" for v in shown["Chisq"]]
    shown["Df"] = ["" if pd.isna(v) else str(int(v)) for v in shown["Df"]]
    return shown.to_string()


def _fit(args: argparse.Namespace) -> int:
    data = pd.read_csv(args.data)
    for col in filter(None, (args.categorical or "").split(",")):
        col = col.strip()
        if col not in data.columns:
            raise SystemExit(f"error: --categorical column {col!r} is not in {args.data}")
        data[col] = data[col].astype(str).astype("category")
    model = lmer(args.formula, data, reml=not args.ml)
    model.data_name = args.data
    print(model.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mixedmodels`` command."""
    parser = argparse.ArgumentParser(prog="mixedmodels", description="Mixed-effects models with lme4 formulas.")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a linear mixed model to a CSV file and print its summary")
    fit.add_argument("formula", help='lme4 formula, e.g. "y ~ x + (1 | g)"')
    fit.add_argument("data", help="CSV file with a header row")
    fit.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    fit.add_argument("--categorical", help="comma-separated columns to treat as categorical")
    sub.add_parser("demo", help="the gpa analysis on bundled data")
    helper = sub.add_parser("help", help="troubleshooting guides (e.g. 'convergence')")
    helper.add_argument("topic", nargs="?", default="convergence")
    args = parser.parse_args(argv)

    try:
        if args.command == "fit":
            return _fit(args)
        if args.command == "demo":
            demo()
            return 0
        if args.command == "help":
            show_help(args.topic)
            return 0
    except (DataError, FormulaError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
