"""The notebooks in notebooks/ run headless from top to bottom, and are committed without outputs.

A notebook asserts what it shows, so a wrong number fails its cell and with it this test. Each runs
in a fresh kernel with the notebook's folder as working directory and this checkout on PYTHONPATH,
once per test session (the tests of one notebook share its run, on one xdist worker).  Its maths
is in the notation of the derivation documents, and no displayed line is wider than the column.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import nbclient
import nbformat
import pytest
from helpers import ROOT

from derive.display.layout import tex_width

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 300
COLUMN = 60.0
"""Widest displayed line, in letters of ``tex_width``: a letter sets 6.0-6.8 pt in 10 pt TeX
(measured with pdflatex on derived VJPs), so 60 letters are at most ~410 pt at 10 pt, 700 px with
MathJax's em of 17 px: the notebook column."""
NOT_THE_DOCUMENTS = {
    r"(?<![\\A-Za-z])dy(?![A-Za-z])": "the cotangent written dy (the documents: \\bar{y})",
    r"(?<![\\A-Za-z])d(x|z|w|u|\\gamma|\\beta)_": "an input's gradient written dx_k (the documents: \\bar{x}_k)",
    r"dot_|(?<![\\A-Za-z])[a-z]dot\b": "a tangent written dot_x or xdot (the documents: \\dot{x})",
    r"logistic|\\operatorname\{sigmoid\}": "the logistic function by name (the documents: \\sigma)",
    r"\\varepsilon|ε": "epsilon as \\varepsilon (the documents: \\epsilon)",
    r"\\mathrm\{diag\}\(p\)|(?<![A-Za-z\\])p_i(?![A-Za-z])": "softmax's output written p (the documents: y)",
}


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


@functools.cache
def executed_notebook(path: Path):
    return execute(nbformat.read(path, as_version=4), path.parent)


def displayed_latex(notebook) -> list[str]:
    return [output["data"]["text/latex"] for output in outputs_of(notebook) if "text/latex" in output.get("data", {})]


def markdown_maths(notebook) -> list[str]:
    """The $...$ and $$...$$ parts of the markdown cells and of the markdown the code displays."""
    texts = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    texts += [output["data"]["text/markdown"] for output in outputs_of(notebook)
              if "text/markdown" in output.get("data", {})]
    return [display or inline for text in texts
            for display, inline in re.findall(r"\$\$(.+?)\$\$|\$(.+?)\$", text, re.S)]


def display_lines(tex: str) -> list[str]:
    """The lines of a displayed formula: split at each \\\\ outside braces (aligned rows); the rows of
    an environment inside braces (a cases in a fraction) are counted as one line, side by side."""
    tex = re.sub(r"\\(begin|end)\{\w+\}", " ", tex.strip().strip("$").replace(r"\displaystyle", ""))
    lines, depth, current, at = [], 0, "", 0
    while at < len(tex):
        if tex.startswith("\\\\", at):
            lines, current = (lines + [current], "") if depth == 0 else (lines, current + r"\quad ")
            at += 2
        elif tex[at] == "\\":
            current, at = current + tex[at:at + 2], at + 2
        else:
            depth += {"{": 1, "}": -1}.get(tex[at], 0)
            current, at = current + tex[at].replace("&", " "), at + 1
    return lines + [current]


def notebook_param(path: Path):
    return pytest.param(path, id=path.stem)  # the tests running it: in the xdist group "rendered" (conftest)


@pytest.fixture
def executed(path: Path, rendered):
    """The notebook run (once per test session), after the run's render cache holds every built-in
    operator (``rendered``): the notebooks write built-ins (rmsnorm, softmax, batchnorm), which
    the cache then serves instead of deriving them again."""
    return executed_notebook(path)


def test_there_are_four_notebooks_at_least():
    assert len(NOTEBOOKS) >= 4, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", [notebook_param(p) for p in NOTEBOOKS])
def test_notebook_runs_and_shows_maths_and_plots(path: Path, executed):
    kinds = {kind for output in outputs_of(executed) for kind in output.get("data", {})}
    assert "text/latex" in kinds, f"{path.name} renders no maths"
    assert "image/png" in kinds, f"{path.name} draws no plot"
    errors = [output for output in outputs_of(executed) if output.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", [notebook_param(p) for p in NOTEBOOKS])
def test_notebook_maths_is_in_the_notation_of_the_documents(path: Path, executed):
    shown = displayed_latex(executed)
    found = [(meaning, tex) for tex in shown + markdown_maths(executed)
             for pattern, meaning in NOT_THE_DOCUMENTS.items() if re.search(pattern, tex)]
    assert not found, found
    assert any(r"\bar{y}" in tex for tex in shown), f"{path.name} shows no cotangent as \\bar{{y}}"


@pytest.mark.parametrize("path", [notebook_param(p) for p in NOTEBOOKS])
def test_notebook_displays_fit_the_column(path: Path, executed):
    widths = [(round(tex_width(line), 1), line) for tex in displayed_latex(executed)
              for line in display_lines(tex)]
    assert widths and all(width > 0 for width, _ in widths)
    too_wide = [(width, line) for width, line in widths if width > COLUMN]
    assert not too_wide, too_wide


def test_display_lines_and_widths_measure_what_a_reader_sees():
    """The measure the column test relies on: rows of an aligned block apart, a wide line found."""
    aligned = r"$\displaystyle \begin{aligned}a &= b + c \\ &\quad {} + \frac{d}{e}\end{aligned}$"
    assert [line.split() for line in display_lines(aligned)] == [["a", "=", "b", "+", "c"],
                                                                  [r"\quad", "{}", "+", r"\frac{d}{e}"]]
    assert len(display_lines(r"\frac{\begin{cases} 1 & x \\ 0 & y \end{cases}}{2}")) == 1
    assert tex_width(" + ".join(["x_{k}"] * 40)) > COLUMN > tex_width(r"\bar{x}_{k} = \frac{\bar{y}_{k}}{r}")


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
