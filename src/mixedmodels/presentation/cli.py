"""The command line: ``mixedmodels fit``, ``mixedmodels demo`` and ``mixedmodels help``.

Errors in the input (a file that cannot be read, a bad formula or column, an unknown help
topic) print one ``error: ...`` line and exit with status 2; warnings print as
``Warning (ClassName): message``; a closed pipe (``mixedmodels help | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import warnings
from importlib import metadata

import pandas as pd

from ..exceptions import DataError, ModelComparisonWarning
from ..postestimation.compare import aic_table, anova
from .api import glmer, lmer
from .datasets import load_dataset
from .display import format_anova
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
        print(format_anova(anova(gpa_1, gpa_2, refit=True)), file=out)
        print("\nRandom effects: anova(gpa_3, gpa_1, refit=False)  (REML likelihoods)", file=out)
        print(format_anova(anova(gpa_3, gpa_1, refit=False)), file=out)
        print("\nAIC table (as fit; gpa_2 differs in fixed effects, so its REML AIC is only", file=out)
        print("indicative: compare fixed effects with the ML refit above)", file=out)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ModelComparisonWarning)
            table = aic_table({"gpa_1": gpa_1, "gpa_2": gpa_2, "gpa_3": gpa_3})
        print(table[["npar", "AIC", "dAIC", "weight", "BIC"]].to_string(), file=out)


_SEPARATORS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|",
               "space": " "}


def _separator(path: str, sep: str | None) -> str:
    """``--sep`` (``tab``, ``\\t``, ``;`` ...) or the delimiter sniffed from the file's start
    (comma, semicolon, tab or pipe; comma when the sniffer cannot tell)."""
    if sep is not None:
        return _SEPARATORS.get(sep.lower(), sep)
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        sample = fh.read(65536)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_data(path: str, sep: str | None) -> pd.DataFrame:
    if os.path.isdir(path):
        raise DataError(f"{path!r} is a directory; give the path of a CSV file")
    if not os.path.exists(path):
        raise DataError(f"no such file: {path!r}")
    try:
        return pd.read_csv(path, sep=_separator(path, sep))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path!r} as a delimited text file: {err}") from err


def _fit(args: argparse.Namespace) -> int:
    data = _read_data(args.data, args.sep)
    for col in filter(None, (args.categorical or "").split(",")):
        col = col.strip()
        if col not in data.columns:
            raise DataError(f"--categorical column {col!r} is not in {args.data} (its columns: "
                            f"{', '.join(map(str, data.columns))})")
        data[col] = data[col].astype(str).astype("category")
    if args.family is not None:
        if args.reml:
            raise DataError("--reml is for linear mixed models; a GLMM (--family) is fit by "
                            "maximum likelihood")
        model = glmer(args.formula, data, family=args.family)
    else:
        model = lmer(args.formula, data, reml=not args.ml)
    model.data_name = args.data
    print(model.summary())
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as ``Warning (ClassName): message``, without the source line."""
    print(f"Warning ({category.__name__}): {message}", file=file or sys.stderr)


def _version() -> str:
    try:
        return metadata.version("mixedmodels")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixedmodels", description="Mixed-effects models with lme4 formulas.")
    parser.add_argument("--version", action="version", version=f"mixedmodels {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a mixed model to a CSV file and print its summary")
    fit.add_argument("formula", help='lme4 formula, e.g. "y ~ x + (1 | g)"')
    fit.add_argument("data", help="delimited text file with a header row (the delimiter is detected)")
    est = fit.add_mutually_exclusive_group()
    est.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    est.add_argument("--reml", action="store_true", help="REML (the default for linear models)")
    fit.add_argument("--family", help="fit a GLMM (glmer) with this family, e.g. binomial, poisson")
    fit.add_argument("--sep", help="the column delimiter (e.g. ';', tab); detected when omitted")
    fit.add_argument("--categorical", help="comma-separated columns to treat as categorical")
    sub.add_parser("demo", help="the gpa analysis on bundled data")
    helper = sub.add_parser("help", help="troubleshooting guides (e.g. 'convergence')")
    helper.add_argument("topic", nargs="?", default="convergence")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "fit":
        return _fit(args)
    if args.command == "demo":
        demo()
        return 0
    if args.command == "help":
        show_help(args.topic)
        return 0
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mixedmodels`` command."""
    args = _parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            code = _run(args)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            # the reader (e.g. `| head`) has gone: no traceback, and none at exit either
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):
                pass
            return 0
        except (ValueError, OSError) as err:   # DataError, FormulaError, unknown topic, I/O
            print(f"error: {err}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
