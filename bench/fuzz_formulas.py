"""Formula fuzz (issue 17): random formulas through the whole fitting path, counted by outcome.

A third are token soup after a formula-like prefix; two thirds follow lme4's grammar (response,
fixed terms, bar terms with random left sides and grouping expressions), a third of those broken
by one random edit.

Each string is parsed (``mm.parse_formula``) and, when it parses, fitted with ``mm.lmer`` on a small
data set holding the columns the tokens name. A string must either fit, or raise one of the
package's documented errors (``FormulaError``, ``DataError``, or another ValueError/TypeError whose
message names the cause). Anything else (KeyError, AttributeError, IndexError, a numpy or formulaic
internal error) is an internal error and is printed with its formula.

    python bench/fuzz_formulas.py [n=10000] [seed=1]

Takes about 1-3 minutes for 10,000 strings on the 2-core machine.
"""

from __future__ import annotations

import collections
import sys
import time
import warnings

import numpy as np
import pandas as pd

import mixedmodels as mm

TOKENS = ["y", "x", "g", "h", "~", "+", "-", "*", "/", ":", "|", "||", "(", ")", "1", "0", " ",
          "log(", "I(", "factor(", "offset(", "^2", "`a b`", ".", ",", "%in%", "Sepal.Length",
          "[", "]", "**", "=", "'", '"', "@", "!", "#", "\\", "é", "class", "exp(", "scale(", "poly(x, 2)",
          "ar1(", "ou(", "cs(", "diag(", "us("]
PREFIXES = ["", "y ~ ", "y ~ x + (", "y ~ x + (1 | ", "y ~ (x || g) + ", "log(y) ~ "]
EXPECTED = (mm.FormulaError, mm.DataError, ValueError, TypeError, NotImplementedError)
LHS = ["y", "log(y)", "`a b`", "Sepal.Length", "class", "I(y^2)", "y + x", "cbind(y, x)"]
FIXED = ["x", "h", "x:h", "x*h", "poly(x, 2)", "factor(h)", "I(x^2)", "1", "0", "-1", "scale(x)",
         "`a b`", "é", "class", "offset(x)", "log(x)", "exp(x)", "x %in% h", "(x + h)^2", "g"]
RE_LHS = ["1", "x", "0 + x", "1 + x", "h", "0 + h", "x + h", "factor(h)", "-1 + x", ""]
GROUPS = ["g", "h", "g:h", "g/h", "h %in% g", "x", "(g)", "factor(g)", "g + h"]
# glmmTMB's covariance-structure keywords written before a bar term's parenthesis
STRUCTURES = ["", "", "", "", "us", "diag", "cs", "ar1", "ou", "toep"]


def grammar(rng: np.random.Generator) -> str:
    """A formula built from lme4's grammar, then sometimes broken by one random edit."""
    fixed = " + ".join(rng.choice(FIXED, size=int(rng.integers(0, 4)))) or "1"
    bars = [f"{rng.choice(STRUCTURES)}({rng.choice(RE_LHS)} {rng.choice(['|', '||'])} {rng.choice(GROUPS)})"
            for _ in range(int(rng.integers(0, 3)))]
    text = f"{rng.choice(LHS)} ~ " + " + ".join([fixed, *bars])
    if rng.random() < 0.3:  # one insertion, deletion or substitution of a character
        pos = int(rng.integers(0, len(text)))
        edit = rng.integers(0, 3)
        tok = str(rng.choice(TOKENS))
        text = (text[:pos] + tok + text[pos:] if edit == 0 else text[:pos] + text[pos + 1:] if edit == 1
                else text[:pos] + tok + text[pos + 1:])
    return text


def data(rng: np.random.Generator) -> pd.DataFrame:
    n = 60
    g = np.repeat(np.arange(6), 10)
    return pd.DataFrame({"y": rng.normal(size=n) + g * 0.3 + 5, "x": rng.normal(size=n),
                         "g": [f"g{v}" for v in g], "h": [f"h{v % 4}" for v in range(n)],
                         "a b": rng.normal(size=n), "Sepal.Length": rng.normal(size=n) + 5,
                         "class": rng.normal(size=n), "é": rng.normal(size=n)})


def main(n: int = 10_000, seed: int = 1) -> int:
    rng = np.random.default_rng(seed)
    frame = data(rng)
    outcome: collections.Counter = collections.Counter()
    internal = []
    start = time.perf_counter()
    for i in range(n):
        if i % 3 == 0:  # token soup after a formula-like prefix
            text = PREFIXES[i % len(PREFIXES)] + "".join(rng.choice(TOKENS, size=int(rng.integers(0, 15))))
        else:
            text = grammar(rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                mm.parse_formula(text)
            except mm.FormulaError:
                outcome["FormulaError (parse)"] += 1
                continue
            except Exception as err:  # noqa: BLE001 (what the fuzz is looking for)
                internal.append((text, f"parse: {type(err).__name__}: {err}"))
                continue
            try:
                mm.lmer(text, frame)
                outcome["fitted"] += 1
            except EXPECTED as err:
                outcome[f"{type(err).__name__} (fit)"] += 1
                if not str(err).strip():
                    internal.append((text, f"fit: {type(err).__name__} with an empty message"))
            except Exception as err:  # noqa: BLE001
                internal.append((text, f"fit: {type(err).__name__}: {err}"))
    seconds = time.perf_counter() - start
    print(f"{n} formulas in {seconds:.0f} s (seed {seed})")
    for name, count in outcome.most_common():
        print(f"  {name:28s} {count:6d}")
    print(f"  {'internal errors':28s} {len(internal):6d}")
    for text, what in internal[:40]:
        print(f"    {text!r}: {what[:160]}")
    return 1 if internal else 0


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    sys.exit(main(*args))
