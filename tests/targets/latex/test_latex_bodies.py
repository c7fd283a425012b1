"""Every generated body (``<op>-body.tex``) can be \\input into a 10 pt two-column paper that loads
exactly the packages the body's header names, and nothing runs out of the column.

The bodies are compiled in one document per package list (they all name the same one), so the test
takes seconds.  TeX is required (CI installs it); DERIVE_SKIP_TEX=1 skips it on a developer machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import LATEX

from derive.pipeline.pdf import SAFE_FLAGS, overfull_boxes, tex_environment

NEEDS = re.compile(r"^% Needs (\\usepackage\{[^}]*\}(?:\s*\\usepackage(?:\[[^]]*\])?\{[^}]*\})*)", re.M)
BODIES = sorted(LATEX.glob("*-body.tex"))


def needed_packages(body: str) -> str:
    """The \\usepackage lines a body's header names (an AssertionError if it names none)."""
    found = NEEDS.search(body.split("\n\\", 1)[0])
    assert found, "the header does not name the packages the body needs"
    return found.group(1)


def paper(packages: str, names: list[str]) -> str:
    """A 10 pt two-column A4 paper that \\inputs the notation and the named bodies."""
    inputs = "\n".join(rf"\input{{{name}}}" for name in names)
    return (f"\\documentclass[10pt,twocolumn,a4paper]{{article}}\n{packages}\n\\begin{{document}}\n"
            f"\\input{{notation}}\n{inputs}\n\\end{{document}}\n")


def test_every_body_names_its_packages_in_its_header():
    assert BODIES, "no bodies generated"
    for body in BODIES:
        assert needed_packages(body.read_text()).startswith(r"\usepackage{"), body.name


@pytest.mark.parametrize("body", BODIES, ids=lambda path: path.stem)
def test_every_aligned_row_with_a_left_side_continues_with_equals(body):
    """A left side broken off a wide equation keeps its '=': 'name &= ...', never 'name &...'."""
    for block in re.findall(r"\\begin\{align\}\n(.*?)\\end\{align\}", body.read_text(), re.S):
        for row in block.splitlines():
            left, _, right = row.partition("&")
            if left.strip() and not row.startswith(r"\shortintertext"):
                assert right.startswith("= "), row


def test_a_body_that_needs_an_unnamed_package_fails_to_compile(tmp_path):
    """The compilation below notices a missing package: \\mathbb without amssymb is an error."""
    _tex_or_skip()
    (tmp_path / "notation.tex").write_text("")
    (tmp_path / "bad-body.tex").write_text("$\\mathbb{R}$\n")
    (tmp_path / "paper.tex").write_text(paper(r"\usepackage{amsmath}", ["bad-body"]))
    assert _compile(tmp_path, "paper").returncode != 0


def test_every_body_fits_a_two_column_paper_with_only_the_packages_it_names(tmp_path):
    _tex_or_skip()
    for tex in LATEX.glob("*.tex"):
        shutil.copyfile(tex, tmp_path / tex.name)
    groups: dict[str, list[str]] = {}
    for body in BODIES:
        groups.setdefault(needed_packages(body.read_text()), []).append(body.stem)
    for number, (packages, names) in enumerate(sorted(groups.items())):
        document = f"paper{number}"
        (tmp_path / f"{document}.tex").write_text(paper(packages, names))
        result = _compile(tmp_path, document)
        log = tmp_path / f"{document}.log"
        assert result.returncode == 0, f"{names} with {packages} did not compile:\n{result.stdout[-3000:]}"
        assert overfull_boxes(log) == [], f"{packages}: {names}\n" + "\n".join(_overfull_context(log))


def _tex_or_skip() -> None:
    if os.environ.get("DERIVE_SKIP_TEX") == "1":
        pytest.skip("DERIVE_SKIP_TEX=1")
    if shutil.which("pdflatex") is None:
        pytest.fail("pdflatex is not installed (set DERIVE_SKIP_TEX=1 to skip locally)")


def _compile(folder: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pdflatex", *SAFE_FLAGS, f"{name}.tex"], cwd=folder, capture_output=True, text=True,
                          errors="replace", timeout=300, env=tex_environment())


def _overfull_context(log: Path) -> list[str]:
    """Each overfull-box warning with the file it is in (the last file TeX opened before it)."""
    text = log.read_text(errors="replace")
    out = []
    for match in re.finditer(r"^Overfull \\hbox.*$", text, re.M):
        opened = re.findall(r"\(\./([^\s()]+\.tex)", text[:match.start()])
        out.append(f"{opened[-1] if opened else '?'}: {match.group(0)}")
    return out
