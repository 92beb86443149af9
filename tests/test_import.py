"""``import mixedmodels`` is light (issue 18) and loses nothing: the public names import on first
use, and a model keeps every method however it was made (``mm.lmer``, the model class's own
module, ``pickle.load`` in a fresh interpreter that never touched the package's names).

Each check runs in a fresh interpreter (nothing else imported the heavy modules first). The
numbers the methods give are lme4's (tests/reference/lme4_reference.json, sleepstudy REML).
No timings here: bench/bench_import.py measures them.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mixedmodels as mm

ROOT = Path(__file__).resolve().parents[1]
REF = json.loads((ROOT / "tests" / "reference" / "lme4_reference.json").read_text())["sleepstudy_reml"]
# what `import mixedmodels` must not import (numpy alone would be allowed; it is not imported either)
HEAVY = ("pandas", "scipy", "formulaic", "narwhals", "matplotlib", "sklearn", "statsmodels")


def _run(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter (this checkout's sources first); its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_loads_no_heavy_module():
    out = _run(f"""
        import sys
        import mixedmodels
        print(",".join(m for m in {HEAVY!r} if m in sys.modules))
        print(",".join(sorted(m for m in sys.modules if m.startswith("mixedmodels"))))
    """).splitlines()
    assert out[0] == "", f"import mixedmodels imports {out[0]}"
    assert out[1] == "mixedmodels,mixedmodels.exceptions", out[1]


def test_every_public_name_resolves_in_a_fresh_interpreter():
    out = _run("""
        import mixedmodels as mm
        names = list(mm.__all__)
        print(sorted(set(names) - set(dir(mm))))
        print([n for n in names if getattr(mm, n, None) is None])
        ns = {}
        exec("from mixedmodels import *", ns)
        print(sorted(set(names) - set(ns)))
        print(callable(mm.bayes), mm.bayes.__name__, mm.priors.__name__)
    """).splitlines()
    assert out[:3] == ["[]", "[]", "[]"], out
    assert out[3] == "True mixedmodels.bayes mixedmodels.models.priors"


def test_public_names_are_the_defining_objects():
    from mixedmodels.models.lmm import LinearMixedModel
    from mixedmodels.presentation.api import lmer

    assert mm.lmer is lmer and mm.LinearMixedModel is LinearMixedModel
    assert "__version__" in mm.__all__ and isinstance(mm.__version__, str)
    assert set(mm.__all__) <= set(dir(mm))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'mixedmodels' has no attribute 'lmerr'"):
        mm.lmerr  # noqa: B018
    assert not hasattr(mm, "no_such_thing")


# what a fresh interpreter checks on a model it got without touching the package's names
_CHECK_MODEL = textwrap.dedent("""
    import sys
    before = "mixedmodels.presentation.results" in sys.modules
    import matplotlib.figure
    out = {
        "loaded_before_use": before,
        "params": m.params.to_dict(),
        "bse": m.bse.to_dict(),
        "wald": m.confint(method="wald").loc[["(Intercept)", "Days"]].values.ravel().tolist(),
        "population": m.predict(re_form="~0").iloc[:10].tolist(),
        "summary": str(m.summary()),
        "repr": repr(m),
        "plot": isinstance(m.plot_ranef(), matplotlib.figure.Figure),
        "conf_int": m.conf_int().values.ravel().tolist(),
    }
    try:
        m.no_such_method
    except AttributeError as err:
        out["missing"] = str(err)
    import json
    print(json.dumps(out))
""")


def _check_model(out: dict) -> None:
    beta = REF["fixef"]
    se = REF["se"]
    z = 1.959963984540054
    assert out["loaded_before_use"] is False     # so the methods below loaded them on first use
    for name in ("(Intercept)", "Days"):
        assert out["params"][name] == pytest.approx(beta[name], rel=1e-6)
        assert out["bse"][name] == pytest.approx(se[name], rel=1e-4)
    wald = [b for n in ("(Intercept)", "Days") for b in (beta[n] - z * se[n], beta[n] + z * se[n])]
    assert out["wald"] == pytest.approx(wald, rel=1e-5)
    assert out["conf_int"] == pytest.approx(wald, rel=1e-5)
    days = list(range(10))                        # the first subject's rows: Days 0..9
    assert out["population"] == pytest.approx([beta["(Intercept)"] + beta["Days"] * d for d in days], rel=1e-6)
    assert "REML criterion at convergence: 1743.6" in out["summary"]
    assert out["repr"].startswith("Linear mixed model fit by REML")
    assert out["plot"] is True
    assert out["missing"] == "'LinearMixedModel' object has no attribute 'no_such_method'"


def test_model_unpickled_in_a_fresh_interpreter_has_every_method(tmp_path, sleepstudy):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(mm.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)))
    out = _run(textwrap.dedent("""
        import pickle, sys
        with open(sys.argv[1], "rb") as fh:
            m = pickle.load(fh)
    """) + _CHECK_MODEL, str(path))
    _check_model(json.loads(out))


def test_model_built_from_its_module_has_every_method():
    out = _run(textwrap.dedent("""
        from mixedmodels.models.lmm import LinearMixedModel
        from mixedmodels.presentation.datasets import load_dataset
        from mixedmodels.spec.design import build_design
        m = LinearMixedModel(build_design("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy")),
                             reml=True).fit()
    """) + _CHECK_MODEL)
    _check_model(json.loads(out))


def test_result_unpickled_in_a_fresh_interpreter_prints_as_registered(tmp_path, sleepstudy):
    """A result object's printing (presentation.reprs) is loaded on its first print as well."""
    m1 = mm.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, reml=False)
    m0 = mm.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, reml=False)
    table = mm.anova(m0, m1)
    path = tmp_path / "anova.pkl"
    path.write_bytes(pickle.dumps(table))
    out = _run("""
        import pickle, sys
        with open(sys.argv[1], "rb") as fh:
            table = pickle.load(fh)
        print(repr(table), end="")
    """, str(path))
    assert out == repr(table)
    assert "Pr(>Chisq)" in out and out.startswith("Models:")


# modules that register on objects of their own (or on a registry their own objects are looked up
# in), so whatever uses what they register has imported them already
SELF_CONTAINED = {
    "mixedmodels.core.rows", "mixedmodels.core.lapack",   # imported by mixedmodels.core itself
    "mixedmodels.models.optim",                           # its own optimizers
    "mixedmodels.sources.design",                         # its StreamedRows, for its StreamedDesign
    "mixedmodels.sources.partial",                        # its Partial.__add__
    "mixedmodels.missing.fits",                           # mm.anova on its MIFits
}
_REGISTERS = r"^(@implements\(|@?register_\w+\(|\s*setattr\([A-Z]|[A-Z]\w*\.\w+ = |\s*register\()"


def test_every_registering_module_is_loaded_on_first_use():
    """A module that registers methods at import (``@implements``, ``register_fit``, the aliases'
    ``setattr``) is in ``models.base.EXTENSION_MODULES``, so a method looked up before anything
    imported it still finds it; else it registers only on objects of its own."""
    import re

    from mixedmodels.models.base import EXTENSION_MODULES

    src = ROOT / "src"
    registering = {".".join(p.relative_to(src).with_suffix("").parts) for p in (src / "mixedmodels").rglob("*.py")
                   if re.search(_REGISTERS, p.read_text(encoding="utf-8"), re.M)}
    registering.discard("mixedmodels.models.base")        # the registry itself
    assert registering - SELF_CONTAINED == set(EXTENSION_MODULES)
