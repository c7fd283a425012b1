"""The notebooks in notebooks/ run headless from top to bottom, and are committed without outputs.

A notebook asserts what it shows, so a wrong number fails its cell and with it this test. Each runs
in a fresh kernel with the notebook's folder as working directory and this checkout on PYTHONPATH.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbclient
import nbformat
import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 300


def kernel_environment() -> dict[str, str]:
    """This process's environment with the checkout first on PYTHONPATH and a non-GUI matplotlib."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["MPLBACKEND"] = "Agg"
    return env


def execute(notebook, folder: Path):
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    return client.execute(env=kernel_environment())


def outputs_of(notebook) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def test_there_are_four_notebooks_at_least():
    assert len(NOTEBOOKS) >= 4, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_maths_and_plots(path: Path):
    executed = execute(nbformat.read(path, as_version=4), path.parent)
    kinds = {kind for output in outputs_of(executed) for kind in output.get("data", {})}
    assert "text/latex" in kinds, f"{path.name} renders no maths"
    assert "image/png" in kinds, f"{path.name} draws no plot"
    errors = [output for output in outputs_of(executed) if output.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code"
    dirty = [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count is not None]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; clear them before committing"


def test_the_kernel_imports_derive_from_this_checkout(tmp_path: Path):
    expected = str((ROOT / "derive").resolve())
    check = ("import derive, pathlib\n"
             "found = str(pathlib.Path(derive.__file__).resolve().parent)\n"
             f"assert found == {expected!r}, found")
    execute(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(check)]), tmp_path)


def test_a_failed_check_in_a_notebook_fails_the_run(tmp_path: Path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert 1 + 1 == 3, 'a failed check'")])
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="a failed check"):
        execute(notebook, tmp_path)
