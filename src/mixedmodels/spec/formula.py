"""lme4 formula syntax to a model specification.

The fixed part is handed to ``formulaic``; the bar terms ``(expr | group)`` and
``(expr || group)`` are ours. Nested ``a/b`` groups expand to ``a`` and ``a:b``; a double bar
term is kept as written (``correlated=False``) and expanded on the data by
:func:`mixedmodels.spec.design.build_design`: lme4's ``(1 | g) + (0 + t | g)`` per term ``t``.
"""

from __future__ import annotations

import ast
import functools
import keyword
import re
from dataclasses import dataclass, field, replace

__all__ = ["FormulaError", "RandomTerm", "ModelFormula", "dot_position", "parse_formula", "quote_names",
           "unquote"]


class FormulaError(ValueError):
    """A formula that cannot be parsed; the message shows where."""

    def __init__(self, message: str, formula: str, position: int | None = None):
        self.formula = formula
        self.position = position
        text = message
        if position is not None:
            text += f" at position {position}:\n  {formula}\n  {' ' * position}^"
        else:
            text += f":\n  {formula}"
        super().__init__(text)


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(lhs | group)``.

    Attributes
    ----------
    lhs : str
        The model formula of the term's columns, e.g. ``"1 + x"`` or ``"0 + x"``.
    group : str
        The grouping factor, ``"g"`` or an interaction ``"a:b"``.
    correlated : bool
        False for terms written with ``||`` (which the design expands as lme4 does).
    structure : str
        glmmTMB's covariance-structure keyword the term was written with: ``"us"`` (the
        default, ``(x | g)`` or ``us(x | g)``), ``"diag"``, ``"cs"``, ``"ar1"`` or ``"ou"``.
    """

    lhs: str
    group: str
    correlated: bool = True
    structure: str = "us"

    def __str__(self) -> str:
        if self.structure != "us":
            return f"{self.structure}({self.lhs} | {self.group})"
        return f"({self.lhs} | {self.group})"


@dataclass
class ModelFormula:
    """A parsed lme4 formula."""

    text: str
    response: str | None
    fixed: str
    random: list[RandomTerm] = field(default_factory=list)
    offsets: list[str] = field(default_factory=list)

    @property
    def variables(self) -> list[str]:
        """Names referenced anywhere in the formula (columns or functions)."""
        names: list[str] = []
        exprs = [self.fixed, *self.offsets]
        if self.response:
            exprs.append(self.response)
        for term in self.random:
            exprs.extend([term.lhs, term.group])
        for expr in exprs:
            for name in expression_names(expr):
                if name not in names:
                    names.append(name)
        return names


_FUNCTIONS = {
    "I", "C", "log", "log2", "log10", "log1p", "exp", "sqrt", "abs", "scale", "center",
    "standardize", "poly", "offset", "cbind", "np", "bs", "cr", "cc", "te", "lag",
    "sin", "cos", "tan", "Q", "factor", "as_factor", "contr", "Treatment", "Sum",
    "Poly", "Diff", "Helmert", "T", "S", "D", "H",
}


def expression_names(expr: str) -> list[str]:
    """Column names an expression refers to (functions and literals excluded)."""
    return list(_expression_names(expr))


# pure functions of the text, cached: small fits repeated thousands of times parse the same
# formula each time
@functools.lru_cache(maxsize=4096)
def _expression_names(expr: str) -> tuple[str, ...]:
    text = expr.replace("^", "**")
    # R's `a/b` and `a:b` are not Python: turn the operators into something parsable.
    text = re.sub(r"(?<![*/])[:/](?![*/])", "+", text)
    quoted: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        key = f"_bq{len(quoted)}_"
        quoted[key] = match.group(1)
        return key

    text = re.sub(r"`([^`]*)`", placeholder, text)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return tuple(quoted.get(n, n) for n in re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", text))
    called: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(node.func.id)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name):
                called.add(base.id)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in called:
            name = quoted.get(node.id, node.id)
            if name not in names:
                names.append(name)
    return tuple(names)


def unquote(name: str) -> str:
    """Backticks removed: a quoted name (or interaction of names) as the data spells it."""
    return re.sub(r"`([^`]*)`", r"\1", name)


_PLAIN = re.compile(r"[^\W\d][\w.]*|\.[^\W\d][\w.]*")


def quote_names(formula: str, columns) -> str:
    """Backtick the column names that are not Python identifiers but unambiguous as written:
    dotted names (``Sepal.Length``) and keywords (``class``). Names with spaces or other
    characters need backticks from the user."""
    special = sorted({str(c) for c in columns
                      if _PLAIN.fullmatch(str(c)) and (not str(c).isidentifier() or keyword.iskeyword(str(c)))},
                     key=len, reverse=True)
    if not special:
        return formula
    pattern = re.compile(r"(?<![\w.`])(" + "|".join(map(re.escape, special)) + r")(?![\w.`(])")
    pieces = re.split(r"(`[^`]*`)", formula)  # leave what is already quoted alone
    return "".join(p if p.startswith("`") else pattern.sub(r"`\1`", p) for p in pieces)


def _check_balance(formula: str) -> None:
    depth = 0
    opened: list[int] = []
    for pos, ch in enumerate(formula):
        if ch == "(":
            depth += 1
            opened.append(pos)
        elif ch == ")":
            if depth == 0:
                raise FormulaError("unmatched ')'", formula, pos)
            depth -= 1
            opened.pop()
    if depth:
        raise FormulaError("unclosed '('", formula, opened[-1])


def split_top(text: str, seps: str, offset: int = 0) -> list[tuple[str, str, int]]:
    """Split at top-level separators; returns (sign, piece, start position) triples."""
    pieces: list[tuple[str, str, int]] = []
    depth = 0
    start = 0
    sign = "+"
    for pos, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch in seps:
            # a unary minus at the very start belongs to the first piece's sign
            pieces.append((sign, text[start:pos], offset + start))
            sign = ch
            start = pos + 1
    pieces.append((sign, text[start:], offset + start))
    return pieces


def dot_position(formula: str) -> int | None:
    """Where a bare ``.`` (R's "all other columns") sits in a formula, or None."""
    text = re.sub(r"`[^`]*`", lambda m: "_" * len(m.group(0)), formula)
    match = re.search(r"(?<![\w.])\.(?![\w.])", text)
    return match.start() if match else None


def _wrapped(text: str) -> bool:
    """True when the first '(' of ``text`` closes at its last character."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for pos, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return pos == len(text) - 1
    return False


def _find_top(text: str, token: str) -> int:
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and text.startswith(token, i):
            return i
        i += 1
    return -1


_GROUP_NAME = re.compile(r"[^\W\d][\w.]*|\.[^\W\d][\w.]*|`[^`]+`")


def _expand_group(group: str, formula: str, position: int) -> list[str]:
    """``a/b`` -> [a, b:a]; ``a/b/c`` -> [a, b:a, c:b:a]; ``a:b`` stays; ``a + b`` -> [a, b]."""
    group = group.strip()
    if not group:
        raise FormulaError("random-effects term has no grouping factor after '|'", formula, position)
    out: list[str] = []
    for _, part, pos in split_top(group, "+"):
        part = part.strip()
        if not part:
            raise FormulaError("empty grouping factor", formula, position + pos)
        if "|" in part:
            raise FormulaError("a random-effects term has one '|' (or '||'): (expr | group)",
                               formula, position + pos + part.index("|"))
        levels = [p.strip() for p in part.split("/")]
        if any(not p for p in levels):
            raise FormulaError("empty factor in nested grouping 'a/b'", formula, position + pos)
        for level in levels:
            if not all(_GROUP_NAME.fullmatch(f.strip()) for f in level.split(":")):
                raise FormulaError(f"grouping factor '{level}' must be a column name or an "
                                   "interaction of columns a:b (nested a/b)", formula, position + pos)
        for depth in range(1, len(levels) + 1):
            # lme4 writes the nested factor innermost-first: batch/cask -> batch, cask:batch
            out.append(":".join(reversed(levels[:depth])))
    return out


#: glmmTMB's covariance-structure keywords this package fits (see spec.covstruct)
STRUCTURES = ("us", "diag", "cs", "ar1", "ou")
_STRUCTURE_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\s*\(")


def _structure_keyword(name: str, formula: str, position: int) -> str:
    if name in STRUCTURES:
        return name
    raise FormulaError(f"unknown covariance structure '{name}(... | ...)'; the structures are "
                       f"{', '.join(STRUCTURES)} (glmmTMB's others, such as toep, exp or rr, are "
                       "not available), or write a plain (expr | group) term", formula, position)


def parse_formula(formula: str) -> ModelFormula:
    """Parse an lme4-style formula.

    Parameters
    ----------
    formula : str
        For example ``"y ~ x + (1 + x | g)"``, ``"y ~ 1 + (1 | a/b)"`` or ``"y ~ x + (x || g)"``.

    Returns
    -------
    ModelFormula

    Raises
    ------
    FormulaError
        With the position of the problem.
    """
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string, got {type(formula).__name__}")
    parsed = _parse_cached(formula)
    # the caller's own lists (RandomTerm is frozen)
    return replace(parsed, random=list(parsed.random), offsets=list(parsed.offsets))


@functools.lru_cache(maxsize=1024)
def _parse_cached(formula: str) -> ModelFormula:
    _check_balance(formula)
    dot = dot_position(formula)
    if dot is not None:
        raise FormulaError("'.' (all other columns) is not supported; list the columns explicitly",
                           formula, dot)
    tilde = _find_top(formula, "~")
    if tilde < 0:
        raise FormulaError("formula needs a '~' between the response and the predictors", formula)
    response = formula[:tilde].strip() or None
    rhs = formula[tilde + 1 :]
    if _find_top(rhs, "~") >= 0:
        raise FormulaError("formula has more than one '~'", formula, tilde + 1 + _find_top(rhs, "~"))
    if not rhs.strip():
        raise FormulaError("nothing after '~'", formula, tilde + 1)

    fixed_parts: list[str] = []
    random: list[RandomTerm] = []
    offsets: list[str] = []
    for sign, piece, pos in split_top(rhs, "+-", offset=tilde + 1):
        text = piece.strip()
        lead = pos + (len(piece) - len(piece.lstrip()))
        if not text:
            if sign == "+" and pos == tilde + 1:  # "~ -1": empty piece before a leading minus
                continue
            raise FormulaError("missing term", formula, lead)
        while _wrapped(text) and _wrapped(text[1:-1].strip()):  # ((1 | g)) is (1 | g)
            lead += 1 + (len(text[1:-1]) - len(text[1:-1].lstrip()))
            text = text[1:-1].strip()
        structure, lead_kw = "us", 0
        keyword_call = _STRUCTURE_CALL.match(text)
        if keyword_call and _wrapped(text[keyword_call.end() - 1:]) \
                and _find_top(text[keyword_call.end():-1], "|") >= 0:
            structure = _structure_keyword(keyword_call.group(1), formula, lead)
            lead_kw = keyword_call.end() - 1
            text = text[lead_kw:]
            lead += lead_kw
        inner = text[1:-1] if _wrapped(text) else None
        bar = _find_top(inner, "|") if inner is not None else -1
        if inner is not None and bar >= 0:
            if sign == "-":
                raise FormulaError("a random-effects term cannot be subtracted", formula, lead - lead_kw)
            double = inner[bar + 1 : bar + 2] == "|"
            if double and lead_kw:
                raise FormulaError(f"the {structure}() term takes one '|': {structure}(expr | group)",
                                   formula, lead + 1 + bar)
            lhs = inner[:bar].strip()
            group_text = inner[bar + (2 if double else 1) :]
            if not lhs:
                raise FormulaError("random-effects term has nothing before '|'", formula, lead + 1)
            _validate_expr(lhs, formula, lead + 1)
            for group in _expand_group(group_text, formula, lead + bar + 2):
                random.append(RandomTerm(lhs, group, correlated=not double, structure=structure))
            continue
        if "|" in text:
            raise FormulaError("a '|' must sit inside parentheses: (expr | group)", formula,
                               lead + text.index("|"))
        if text.startswith("offset(") and text.endswith(")"):
            if not text[len("offset(") : -1].strip():
                raise FormulaError("offset() needs an expression", formula, lead)
            _validate_expr(text, formula, lead)
            offsets.append(text[len("offset(") : -1].strip())
            continue
        _validate_expr(text, formula, lead)
        fixed_parts.append(("- " if sign == "-" else "+ ") + text)
    fixed = " ".join(fixed_parts).lstrip("+ ").strip()
    if fixed.startswith("- "):
        fixed = "1 " + fixed  # formulaic needs a left operand; "1 - 1" is "0"
    if not fixed:
        fixed = "1"
    if response is not None:
        _validate_expr(response, formula, 0)
    return ModelFormula(formula, response, fixed, random, offsets)


def _validate_expr(expr: str, formula: str, position: int) -> None:
    """Catch Python-level syntax errors early and report them in the formula's coordinates."""
    text = expr.replace("^", "**")
    text = re.sub(r"`[^`]*`", "_x", text)
    text = re.sub(r"(?<![*/])[:/](?![*/])", "+", text)
    text = text.replace("%in%", "+")
    empty = re.search(r"(?<![\w.\s])\s*\(\s*\)|^\s*\(\s*\)", text)
    if empty:
        raise FormulaError(f"empty parentheses in '{expr.strip()}'", formula,
                           position + min(text.index("(", empty.start()), len(expr)))
    try:
        ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        col = (err.offset or 1) - 1
        raise FormulaError(f"syntax error in '{expr.strip()}'", formula,
                           position + min(max(col, 0), len(expr))) from None
