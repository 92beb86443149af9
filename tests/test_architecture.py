"""Architecture rules, checked on the source tree (not on the installed package).

The layer contracts themselves (presentation > postestimation | alternatives > models > spec > core,
core free of pandas/formulaic, nobody imports the top-level ``mixedmodels``) are import-linter
contracts in pyproject.toml, run by ``lint-imports`` in ``make test``. This file holds the rules
import-linter cannot express:

- no import cycle between modules of the package;
- no private name imported from another module of the package;
- no comparison of a family's name outside models/family.py;
- no module over ``MAX_MODULE_LINES`` lines;
- postestimation reaches models only through the base contract (models.base, family, optim, checks).

Imports anywhere count: at module level, inside functions, under ``if TYPE_CHECKING:``.
Each failure lists every offender as ``path:line``.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import deque
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = "mixedmodels"
PKG_DIR = ROOT / "src" / PKG
FAMILY_MODULE = PKG_DIR / "models" / "family.py"
MAX_MODULE_LINES = 900

# postestimation may import these modules of mixedmodels.models (and nothing else from models) ...
POSTESTIMATION_ALLOWED_MODELS = ("base", "family", "optim", "checks")
# ... and never these names, from wherever they are re-exported (models.base, the top package, ...).
CONCRETE_MODEL_NAMES = frozenset({"LinearMixedModel", "GeneralizedLinearMixedModel", "lmer", "glmer"})


# --------------------------------------------------------------------------------------------------
# The source tree


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.lru_cache(maxsize=None)
def _source_files() -> tuple[Path, ...]:
    files = tuple(sorted(PKG_DIR.rglob("*.py")))
    assert files, f"no Python files under {PKG_DIR}"
    return files


@functools.lru_cache(maxsize=None)
def _path_of_module() -> dict[str, Path]:
    return {_module_name(p): p for p in _source_files()}


@functools.lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _where(path: Path, node: ast.AST) -> str:
    return f"{_rel(path)}:{node.lineno}"


def _is_internal(module: str) -> bool:
    return module == PKG or module.startswith(PKG + ".")


def _is_module(dotted: str) -> bool:
    return dotted in _path_of_module()


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _is_private(name: str) -> bool:
    """``_x`` and ``__x`` are private; dunders (``__all__``, ``__version__``) are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve_from(importer: str, importer_is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module that ``from <node.module> import ...`` reads from."""
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    if not importer_is_package:
        parts = parts[:-1]
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _imports(path: Path):
    """Every import in ``path``, anywhere in the file: yields (node, imported module, imported name).

    ``import a.b`` gives ("a.b", None). ``from a import b`` gives ("a.b", None) when ``a.b`` is a
    module of the package, else ("a", "b"). ``importlib.import_module("a.b")`` and
    ``__import__("a.b")`` with a literal name give ("a.b", None).
    """
    importer = _module_name(path)
    is_package = path.name == "__init__.py"
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(importer, is_package, node)
            for alias in node.names:
                if alias.name != "*" and _is_internal(base) and _is_module(f"{base}.{alias.name}"):
                    yield node, f"{base}.{alias.name}", None
                else:
                    yield node, base, alias.name
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            yield node, node.args[0].value, None


def _by_location(violation: str) -> tuple[str, int, str]:
    path, _, rest = violation.partition(":")
    line = re.match(r"\d*", rest).group()
    return path, int(line or 0), rest


def _report(rule: str, violations: list[str]) -> None:
    if violations:
        listed = sorted(set(violations), key=_by_location)
        pytest.fail(f"{rule}: {len(listed)} violation(s)\n  " + "\n  ".join(listed), pytrace=False)


# --------------------------------------------------------------------------------------------------
# No import cycles


def _strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the import graph is small, but recursion depth is not ours)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    components.append(sorted(component))
    return components


def _shortest_cycle(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """Shortest path start -> ... -> start inside one strongly connected component (BFS)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v] & members):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start] if v != start else [start, start]
            if w not in seen:
                seen.add(w)
                parent[w] = v
                queue.append(w)
    raise AssertionError(f"{start} is in a cycle but no path back to it was found")


def test_no_import_cycles():
    """No cycle in the module import graph (grimp; imports inside functions count).

    Every edge counts, including a package ``__init__`` importing its own submodules: that is only a
    cycle when a submodule imports the package ``__init__`` back, which is a real import-time cycle.
    """
    g = grimp.build_graph(PKG, include_external_packages=False, cache_dir=None)
    graph = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    paths = _path_of_module()

    def step(importer: str, imported: str) -> str:
        details = g.get_import_details(importer=importer, imported=imported)
        lines = ",".join(str(n) for n in sorted({d["line_number"] for d in details}))
        return f"{_rel(paths[importer])}:{lines} imports {imported}"

    violations = []
    for component in _strongly_connected_components(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue
        # the shortest cycle through each member, each distinct cycle listed once
        cycles: dict[tuple[str, ...], list[str]] = {}
        for module in component:
            cycle = _shortest_cycle(graph, module, members)
            ring = cycle[:-1]
            first = ring.index(min(ring))
            cycles.setdefault(tuple(ring[first:] + ring[:first]), cycle)
        listed = "\n    ".join(
            f"cycle {i}:\n      " + "\n      ".join(step(a, b) for a, b in zip(cycle, cycle[1:]))
            for i, cycle in enumerate(sorted(cycles.values(), key=len), start=1))
        violations.append(f"{len(component)} modules import each other ({', '.join(component)}):"
                          f"\n    {listed}")
    _report("import cycles", violations)


# --------------------------------------------------------------------------------------------------
# No private names across modules


def test_no_private_names_imported_from_other_modules():
    """``from .x import _y`` / ``from mixedmodels.x import _y`` is forbidden in src.

    A private *module* (``_impl.py``) may be imported from inside its own package only; a private
    function, class or constant may not be imported from any other module at all.
    """
    violations = []
    for path in _source_files():
        importer = _module_name(path)
        for node, module, name in _imports(path):
            if not _is_internal(module):
                continue
            parts = module.split(".")
            for i, part in enumerate(parts):
                if _is_private(part) and not _within(importer, ".".join(parts[:i])):
                    violations.append(f"{_where(path, node)} imports private module {module}")
                    break
            if name is not None and _is_private(name) and module != importer:
                violations.append(f"{_where(path, node)} imports private name {name} from {module}")
    _report("private names imported from another module", violations)


# --------------------------------------------------------------------------------------------------
# Family names are compared in models/family.py only

_FAMILY_IDENTIFIER = re.compile(r"(^|_)(fam|family)$", re.IGNORECASE)
_COMPARISONS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)


def _identifier(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _walk_scope(scope: ast.AST):
    """The nodes of one scope's own body: like ast.walk, without entering nested functions/classes."""
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, _SCOPES):
            todo.extend(ast.iter_child_nodes(node))


class _FamilyNameComparisons(ast.NodeVisitor):
    """Finds comparisons whose operand is a family's name.

    A family is an expression whose last identifier is ``family``/``fam`` (``family``, ``fam``,
    ``self.family``, ``model._family``, ``get_family(...)``), or ``self`` inside a class whose name
    contains "Family". Its name is ``<family>.name`` or ``getattr(<family>, "name", ...)``, also
    through string methods (``fam.name.lower()``) and through a local variable assigned from one
    (``name = fam.name.lower()`` ... ``name == "poisson"``). ``fam.link.name`` is a link's name, not a
    family's, and is not flagged. Comparisons are ==, !=, in, not in, is, is not, and ``match``.
    """

    def __init__(self, path: Path):
        self.path = path
        self.violations: list[str] = []
        self._classes: list[str] = []
        self._tainted: list[set[str]] = [set()]

    # what is a family, what is its name
    def _is_family(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Call):
            node = node.func
        if isinstance(node, ast.Name) and node.id == "self":
            return bool(self._classes) and "family" in self._classes[-1].lower()
        ident = _identifier(node)
        return ident is not None and bool(_FAMILY_IDENTIFIER.search(ident))

    def _is_family_name(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute) and node.attr == "name":
            return self._is_family(node.value)
        if isinstance(node, ast.Name):
            return node.id in self._tainted[-1]
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):           # fam.name.lower(), fam.name.strip()
                return self._is_family_name(func.value)
            if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) >= 2:
                attr = node.args[1]
                return (isinstance(attr, ast.Constant) and attr.value == "name"
                        and self._is_family(node.args[0]))
            if isinstance(func, ast.Name) and func.id == "str" and node.args:
                return self._is_family_name(node.args[0])
        return False

    # scopes: local variables holding a family's name
    def _enter_scope(self, node: ast.AST) -> None:
        tainted = set(self._tainted[-1])
        self._tainted.append(tainted)
        changed = True
        while changed:                                     # name = fam.name; lower = name.lower()
            changed = False
            for sub in _walk_scope(node):
                if isinstance(sub, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and sub.value is not None:
                    targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                    if self._is_family_name(sub.value):
                        for t in targets:
                            if isinstance(t, ast.Name) and t.id not in tainted:
                                tainted.add(t.id)
                                changed = True

    def _scoped(self, node: ast.AST) -> None:
        self._enter_scope(node)
        self.generic_visit(node)
        self._tainted.pop()

    def visit_Module(self, node: ast.Module) -> None:
        self._scoped(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scoped

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._classes.append(node.name)
        self.generic_visit(node)
        self._classes.pop()

    # the comparisons
    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        if any(isinstance(op, _COMPARISONS) for op in node.ops) and any(map(self._is_family_name, operands)):
            self.violations.append(f"{_where(self.path, node)} compares a family's name: {ast.unparse(node)}")
        self.generic_visit(node)

    def visit_Match(self, node: ast.Match) -> None:
        if self._is_family_name(node.subject):
            self.violations.append(f"{_where(self.path, node)} matches on a family's name: "
                                   f"match {ast.unparse(node.subject)}")
        self.generic_visit(node)


def _family_name_comparisons(path: Path, source: str | None = None) -> list[str]:
    visitor = _FamilyNameComparisons(path)
    visitor.visit(ast.parse(source, filename=str(path)) if source is not None else _tree(path))
    return visitor.violations


def test_family_names_compared_only_in_family_module():
    """Family-specific behaviour lives on the Family objects (models/family.py), not in string tests
    of ``family.name`` scattered over the code base. Checked in src."""
    violations = [v for path in _source_files() if path != FAMILY_MODULE
                  for v in _family_name_comparisons(path)]
    _report(f"family name compared outside {_rel(FAMILY_MODULE)}", violations)


@pytest.mark.parametrize("source, flagged", [
    ("x = family.name == 'binomial'", True),
    ("x = self.family.name != 'poisson'", True),
    ("x = model.family.name in ('binomial', 'poisson')", True),
    ("x = 'Gamma' == fam.name", True),
    ("x = fam.name.lower() not in SUPPORTED", True),
    ("x = get_family('binomial').name == 'binomial'", True),
    ("x = getattr(m.family, 'name', None) == 'poisson'", True),
    ("def f(fam):\n    name = fam.name.lower()\n    return name == 'poisson'", True),
    ("def f(fam):\n    match fam.name:\n        case 'binomial':\n            pass", True),
    ("class _Family:\n    def f(self):\n        return self.name == 'binomial'", True),
    ("x = fam.link.name == 'logit'", False),
    ("x = term.name == '(Intercept)'", False),
    ("class Model:\n    def f(self):\n        return self.name == 'lmm'", False),
    ("x = f'{family.name}'", False),
    ("def f(fam):\n    name = fam.name\ndef g(term):\n    name = term.name\n    return name == 'x'", False),
])
def test_family_name_detector(source, flagged):
    """The detector above finds what it is meant to find (so the rule cannot pass vacuously)."""
    assert bool(_family_name_comparisons(PKG_DIR / "example.py", source)) == flagged, source


# --------------------------------------------------------------------------------------------------
# Module size


def test_no_module_over_size_limit():
    violations = []
    for path in _source_files():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_MODULE_LINES:
            violations.append(f"{_rel(path)}:{n} has {n} lines (limit {MAX_MODULE_LINES})")
    _report(f"modules over {MAX_MODULE_LINES} lines", violations)


# --------------------------------------------------------------------------------------------------
# postestimation reaches models only through the base contract


def test_postestimation_uses_only_the_model_contract():
    """postestimation works on any fitted model through mixedmodels.models.base (and refit()), plus
    the model-independent helpers in models.family, models.optim and models.checks. It imports no
    other module of mixedmodels.models (lmm, glmm, the package __init__), and never the concrete
    classes or entry points (LinearMixedModel, GeneralizedLinearMixedModel, lmer, glmer), whatever
    module re-exports them."""
    models = f"{PKG}.models"
    allowed = tuple(f"{models}.{m}" for m in POSTESTIMATION_ALLOWED_MODELS)
    files = [p for p in _source_files() if _within(_module_name(p), f"{PKG}.postestimation")]
    assert files, "no postestimation modules found"
    violations = []
    for path in files:
        for node, module, name in _imports(path):
            if not _is_internal(module):
                continue
            what = f"{name} from {module}" if name else module
            if _within(module, models) and not any(_within(module, a) for a in allowed):
                violations.append(f"{_where(path, node)} imports {what} (allowed from models: "
                                  f"{', '.join(POSTESTIMATION_ALLOWED_MODELS)})")
            elif name in CONCRETE_MODEL_NAMES:
                violations.append(f"{_where(path, node)} imports concrete model {what}")
    _report("postestimation importing concrete models", violations)


def test_import_loads_no_heavy_optional_module():
    """``import mixedmodels`` stays light (issue 18's import time): scipy.stats, formulaic, the
    learners' scikit-learn, the plotting, the engines where data lives and the samplers load on
    first use. A fresh interpreter, so nothing else imported them first."""
    import subprocess
    import sys

    heavy = ["scipy.stats", "scipy.optimize", "formulaic", "sklearn", "matplotlib", "statsmodels", "duckdb",
             "dask", "pyspark", "polars", "arviz", "tqdm"]  # (pandas itself loads pyarrow)
    code = ("import sys, mixedmodels; print(','.join(m for m in %r if m in sys.modules))" % heavy)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import mixedmodels loads {out}"
