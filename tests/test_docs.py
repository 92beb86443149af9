"""Every ```python block in README.md and docs/*.md runs (each file's blocks in order, in one
namespace, as a reader would paste them)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_every_doc_has_been_found():
    assert {p.name for p in DOCS} >= {"README.md", "architecture.md", "convergence.md"}


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_code_blocks_run(path, monkeypatch, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    namespace: dict = {"__name__": "__docs__"}
    for k, block in enumerate(BLOCK.findall(path.read_text("utf-8"))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the guides show warnings on purpose
            try:
                exec(compile(block, f"{path.name}[block {k}]", "exec"), namespace)
            except Exception as err:  # noqa: BLE001 - report which block failed
                raise AssertionError(f"{path.name}, code block {k} failed: {err!r}\n{block}") from err
    import matplotlib.pyplot as plt

    plt.close("all")


def test_every_guide_has_a_help_topic():
    """Each guide in docs/ (but the developers' architecture.md) prints through mm.help."""
    import io

    import mixedmodels as mm

    topics = {"alternatives": "alternatives", "big-data": "big_data", "convergence": "convergence",
              "errors": "errors", "machine-learning": "machine_learning", "missing-data": "missing_data",
              "model-comparison": "model_comparison", "small-samples": "small_samples", "tables": "tables",
              "beyond-glm": "beyond_glm"}
    guides = {p.stem for p in (ROOT / "docs").glob("*.md")} - {"architecture"}
    assert guides == set(topics), guides ^ set(topics)
    for stem, topic in topics.items():
        out = io.StringIO()
        mm.help(topic, file=out)
        first = next(line for line in (ROOT / "docs" / f"{stem}.md").read_text("utf-8").splitlines() if line.strip())
        assert first.strip() in out.getvalue(), stem
