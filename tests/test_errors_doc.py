"""docs/errors.md documents every error and warning class the package exports: each class in
``mixedmodels.__all__`` that subclasses Exception or Warning is named there and has its own
section (its code blocks run in tests/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mixedmodels as mm
from mixedmodels import exceptions

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"


def _exported_classes() -> list[str]:
    names = []
    for name in mm.__all__:
        obj = getattr(mm, name)
        if isinstance(obj, type) and issubclass(obj, (Exception, Warning)):
            names.append(name)
    return names


def test_the_package_exports_error_and_warning_classes():
    names = _exported_classes()
    assert {"DataError", "FormulaError", "MixedModelsWarning", "SingularFitWarning"} <= set(names)
    # everything exceptions.py defines is exported at the top level
    assert set(exceptions.__all__) <= set(names)


@pytest.mark.parametrize("name", _exported_classes())
def test_class_is_named_in_errors_doc(name):
    text = DOC.read_text("utf-8")
    assert re.search(rf"\b{name}\b", text), f"docs/errors.md does not name {name}"
    assert re.search(rf"(?m)^###\s+{name}\s*$", text), f"docs/errors.md has no '### {name}' section"


def test_every_warning_class_is_a_mixedmodels_warning():
    """The page tells users that filtering MixedModelsWarning silences all of them."""
    for name in _exported_classes():
        cls = getattr(mm, name)
        if issubclass(cls, Warning):
            assert issubclass(cls, mm.MixedModelsWarning), name


def test_every_warning_the_package_raises_has_a_package_class():
    """Each ``warnings.warn`` in the package names one of its own classes (filterable, and listed in
    docs/errors.md), never a bare message or a plain UserWarning/RuntimeWarning."""
    import ast

    allowed = {name for name in exceptions.__all__ if name.endswith("Warning")}
    offenders = []
    for path in sorted((Path(mm.__file__).parent).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "warn"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "warnings"):
                cat = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "category"), None)
                name = ast.unparse(cat) if cat is not None else None
                if name is None or (name not in allowed and name != "category"):
                    offenders.append(f"{path.name}:{node.lineno} {name}")
    assert not offenders, offenders
