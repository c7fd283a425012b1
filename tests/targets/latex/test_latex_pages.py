"""Every result fragment (``<op>-result.tex``) and body breaks across pages in a plain
``\\documentclass[10pt,twocolumn]{article}`` that sets nothing for them: no overfull \\hbox or \\vbox and
no underfull \\vbox in the log, whether a fragment stands alone or beside others; the results of the
activations, the elementwise operators, softmax, log_softmax and every norm fit one column; equation
tags are short.

One draft-mode pdflatex run holds every result fragment and measures each; three more hold single
fragments and three bodies together (TeX as in test_latex_bodies.py: DERIVE_SKIP_TEX=1 skips).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import LATEX, OPERATORS
from helpers.tex import needed_packages, tex_or_skip

from derive.model import registry
from derive.pipeline.pdf import SAFE_FLAGS, page_problems, tex_environment
from derive.targets.latex.view import equation_tag

PLAIN = "\\documentclass[10pt,twocolumn]{article}\n"
ONE_COLUMN = ("activation", "elementwise")
"""The categories whose results fit one column of the page; so do softmax's and log_softmax's."""
ONE_COLUMN_OPERATORS = ("softmax", "log_softmax", "rmsnorm", "layernorm", "batchnorm", "group_norm")
"""Every norm: group_norm's (a definition over four axes and its shapes, two parameters' VJPs and JVPs,
the second order through the tangents, the proof status) is the tallest, 548 of 550 pt
(``python tools/fragment_heights.py``), measured with the skip above its heading."""
TAG_PREFIX = 6
"""The longest prefix an equation number may have (the name before the dot)."""


def _paper(packages: str, body: str) -> str:
    return f"{PLAIN}{packages}\n\\begin{{document}}\n\\input{{notation}}\n{body}\n\\end{{document}}\n"


def _measured(name: str) -> str:
    """The fragment set in a box one column wide, its height written to the log, then set on the page."""
    return (f"\\setbox0=\\vbox{{\\hsize=\\columnwidth\\linewidth=\\columnwidth\\input{{{name}-result}}}}"
            f"\\typeout{{HEIGHT {name} \\the\\dimexpr\\ht0+\\dp0\\relax\\space of \\the\\textheight}}"
            f"\\input{{{name}-result}}")


def _compile(folder: Path, name: str, text: str) -> str:
    """Compile ``text`` as ``name``.tex (draft mode: the log is all that is read); the log's text."""
    (folder / f"{name}.tex").write_text(text)
    result = subprocess.run(["pdflatex", *SAFE_FLAGS, "-draftmode", f"{name}.tex"], cwd=folder,
                            capture_output=True, text=True, errors="replace", timeout=240, env=tex_environment())
    assert result.returncode == 0, f"{name} did not compile:\n{result.stdout[-3000:]}"
    return (folder / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    tex_or_skip()
    out = tmp_path_factory.mktemp("pages")
    for tex in LATEX.glob("*.tex"):
        shutil.copyfile(tex, out / tex.name)
    return out


def _packages(name: str) -> str:
    return needed_packages((LATEX / f"{name}-result.tex").read_text())


def test_every_operator_has_a_result_fragment_that_names_its_packages():
    for name in OPERATORS:
        assert _packages(name).startswith(r"\usepackage{"), name


def test_every_result_fragment_together_breaks_across_pages_and_the_small_ones_fit_a_column(folder):
    packages = {_packages(name) for name in OPERATORS}
    assert len(packages) == 1, packages  # one document can hold them all
    log = _compile(folder, "results", _paper(packages.pop(), "\n".join(_measured(n) for n in OPERATORS)))
    assert page_problems(folder / "results.log") == []
    measured = re.findall(r"^HEIGHT (\S+) ([\d.]+)pt of ([\d.]+)pt", log, re.M)
    heights = {name: (float(height), float(column)) for name, height, column in measured}
    assert sorted(heights) == sorted(OPERATORS)
    for name in OPERATORS:
        height, column = heights[name]
        if registry.get(name).category in ONE_COLUMN or name in ONE_COLUMN_OPERATORS:
            assert height <= column, f"{name}'s result is {height:.0f}pt, over one column ({column:.0f}pt)"


@pytest.mark.parametrize("names", [("layernorm",), ("scaled_dot_product_attention",), ("batchnorm",),
                                   ("layernorm", "softmax", "batchnorm")], ids="+".join)
def test_fragments_alone_and_bodies_together_break_across_pages(folder, names):
    """A result fragment alone; three bodies one after the other (the body holds the whole derivation)."""
    inputs = [f"\\input{{{n}-result}}" for n in names] if len(names) == 1 else [f"\\input{{{n}-body}}" for n in names]
    document = "alone-" + "-".join(names)
    _compile(folder, document, _paper(_packages(names[0]), "\n".join(inputs)))
    assert page_problems(folder / f"{document}.log") == [], names


def test_equation_tags_are_short_and_one_per_operator():
    """The prefix of every document's equation numbers is at most TAG_PREFIX characters, and no two
    operators share one (a paper citing (ln.5) and (bn.5) means two documents)."""
    tags = {equation_tag(name) for name in OPERATORS}
    assert len(tags) == len(OPERATORS), sorted(tags)
    for name in OPERATORS:
        for kind in ("result", "body"):
            text = (LATEX / f"{name}-{kind}.tex").read_text()
            prefix = re.search(r"\\renewcommand\{\\theequation\}\{([^}]*)\.\\arabic\{equation\}\}", text).group(1)
            assert len(prefix) <= TAG_PREFIX, (name, prefix)
