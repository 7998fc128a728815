"""Notebooks run top to bottom (tiny sizes) so they cannot rot.

Each notebook's code cells are executed in order in a fresh namespace, as a kernel
would; no Jupyter server is needed.
"""

import json
import os
from pathlib import Path

import matplotlib
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ must hold at least one notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.setenv("DETSTYLE_NB_SIZE", "32")
    monkeypatch.setenv("DETSTYLE_NB_STEPS", "2")
    cells = json.loads(path.read_text())["cells"]
    namespace = {"__name__": "__main__"}
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {index}]", "exec"), namespace)  # noqa: S102
