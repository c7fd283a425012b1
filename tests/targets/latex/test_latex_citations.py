"""The documents are citable: derive.bib holds the sources, each document cites the ones it uses,
equations are numbered per operator with an index of their labels, and the title page names the
toolkit version and the model source (without a timestamp)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from helpers import LATEX, OPERATORS, ROOT

from derive.calculus.pipeline import derive
from derive.model import registry
from derive.targets.latex.headers import bibliography, bibliography_keys
from derive.targets.latex.view import UnknownCitationError, build_document, equation_tag
from derive.version import __version__

CITE = re.compile(r"\\cite\{([^}]*)\}")


def cited(text: str) -> set[str]:
    return {key.strip() for keys in CITE.findall(text) for key in keys.split(",")}


def test_the_bibliography_is_generated_and_every_entry_is_complete():
    assert (LATEX / "derive.bib").read_text() == bibliography()
    entries = re.findall(r"^@(\w+)\{([^,]+),(.*?)^\}", bibliography(), re.M | re.S)
    assert len(entries) == len(bibliography_keys()) >= 15
    for _kind, key, fields in entries:
        assert re.search(r"^\s*title\s*=", fields, re.M), key
        assert re.search(r"^\s*author\s*=", fields, re.M), key
    assert "10.7717/peerj-cs.103" in bibliography()  # SymPy's paper


def _fields(entry: str) -> dict[str, str]:
    return {key: value.strip() for key, value in re.findall(r"^\s*(\w+)\s*=\s*(.*?),?$", entry, re.M)}


def test_the_derive_entry_is_one_software_entry_alike_in_the_bibliography_the_readme_and_citation_cff():
    entry = re.search(r"^@(\w+)\{derive,\n(.*?)^\}", bibliography(), re.M | re.S)
    readme = re.search(r"^@(\w+)\{derive,\n(.*?)^\}", (ROOT / "README.md").read_text(), re.M | re.S)
    assert entry.group(1) == readme.group(1) == "software"
    assert _fields(entry.group(2)) == _fields(readme.group(2))
    fields = _fields(entry.group(2))
    assert fields["version"] == f"{{{__version__}}}"
    cff = (ROOT / "CITATION.cff").read_text()
    assert f"version: {__version__}" in cff and f'title: "{fields["title"][1:-1]}"' in cff


BIBLATEX_REQUIRED = {"article": ("author", "title", "journal", "year"),
                     "inproceedings": ("author", "title", "booktitle", "year"),
                     "incollection": ("author", "title", "booktitle", "year"),
                     "misc": ("author", "title", "year"), "software": ("author", "title", "year")}
"""The fields biblatex's standard data model requires of each entry type (its manual, section 2.1.1;
journal is its alias of journaltitle, year of date); BibTeX's standard styles ask no more."""


def test_every_entry_has_the_fields_biblatex_requires_and_a_page_range_where_published():
    entries = re.findall(r"^@(\w+)\{([^,]+),(.*?)^\}", bibliography(), re.M | re.S)
    for kind, key, text in entries:
        fields = _fields(text)
        assert kind in BIBLATEX_REQUIRED, (key, kind)
        missing = [f for f in BIBLATEX_REQUIRED[kind] if f not in fields]
        assert not missing, (key, missing)
        if "pages" in fields:
            assert re.fullmatch(r"\{e?\d+(--\d+)?\}", fields["pages"]), (key, fields["pages"])  # e103: an article number
    published = [key for kind, key, text in entries if kind in ("article", "inproceedings", "incollection")
                 and "pages" not in _fields(text)]
    assert set(published) <= {"maas2013rectifier"}, published  # a workshop paper without page numbers


def test_every_entry_has_a_year_and_every_arxiv_paper_its_eprint():
    entries = re.findall(r"^@(\w+)\{([^,]+),(.*?)^\}", bibliography(), re.M | re.S)
    for _kind, key, text in entries:
        fields = _fields(text)
        assert re.fullmatch(r"\{\d{4}\}", fields.get("year", "")), key
        if "arXiv" in text:
            assert "eprint" in fields and "archiveprefix" in fields, key


@pytest.mark.parametrize("name", OPERATORS)
def test_each_document_cites_its_paper_pytorch_and_the_tools(name):
    model = registry.get(name)
    body = (LATEX / f"{name}-body.tex").read_text()
    keys = cited(body)
    assert keys <= bibliography_keys()
    assert {"derive", "meurer2017sympy", *model.cite} <= keys
    assert ("pytorch-derivatives" in keys) == bool(model.torch)
    standalone = (LATEX / f"{name}.tex").read_text()
    assert r"\bibliography{derive}" in standalone
    author = re.search(r"^\\author\{(.*)\}$", standalone, re.M).group(1).replace(r"\allowbreak{}", "")
    assert f"derive {__version__}" in author and model.source.replace("_", r"\_") in author


def test_the_papers_that_introduced_the_operators_are_named():
    expected = {"batchnorm": "ioffe2015batch", "layernorm": "ba2016layer", "group_norm": "wu2018group",
                "rmsnorm": "zhang2019root", "gelu": "hendrycks2016gelu", "silu": "elfwing2018sigmoid",
                "scaled_dot_product_attention": "vaswani2017attention", "softmax": "bridle1990probabilistic"}
    for name, key in expected.items():
        assert key in registry.get(name).cite, name


def test_an_unknown_citation_key_is_an_error_that_names_it():
    model = dataclasses.replace(registry.get("exp"), cite=("nobody2099",))
    with pytest.raises(UnknownCitationError, match="nobody2099"):
        build_document(derive(model))


def test_the_handbook_has_a_bibliography_a_short_contents_and_cites_the_sympy_issue():
    handbook = (LATEX / "handbook.tex").read_text()
    assert r"\bibliography{derive}" in handbook and r"\setcounter{tocdepth}{1}" in handbook
    assert "sympy-issue-21891" in cited(handbook)
    assert re.search(r"\\author\{derive " + re.escape(__version__) + r".*derive/\\allowbreak\{\}ops/", handbook)


@pytest.mark.parametrize("name", ["softmax", "batchnorm"])
def test_equations_are_numbered_per_operator_and_their_labels_are_listed(name):
    body = (LATEX / f"{name}-body.tex").read_text()
    assert rf"\renewcommand{{\theequation}}{{{equation_tag(name)}.\arabic{{equation}}}}" in body
    assert r"\setcounter{equation}{0}" in body
    index = body.split(r"\subsection{Equation labels}")[1]
    labels = set(re.findall(r"\\label\{(eq:[^}]*)\}", body))
    for kind in ("definition", "vjp-x", "jvp-x", "jacobian-x"):
        label = f"eq:{name}:{kind}"
        assert label in labels and rf"\eqref{{{label}}}" in index


def test_the_pdflatex_fallback_runs_bibtex_so_every_citation_resolves(tmp_path, monkeypatch):
    """Without latexmk, derive pdf runs pdflatex, BibTeX, then pdflatex twice (TeX required, as for
    the other compile tests; DERIVE_SKIP_TEX=1 skips it)."""
    import os
    import shutil

    from derive.pipeline import pdf

    if os.environ.get("DERIVE_SKIP_TEX") == "1":
        pytest.skip("DERIVE_SKIP_TEX=1")
    if not (shutil.which("pdflatex") and shutil.which("bibtex")):
        pytest.fail("pdflatex and bibtex are needed (set DERIVE_SKIP_TEX=1 to skip locally)")
    monkeypatch.setattr(pdf, "compiler", lambda: ["pdflatex", *pdf.SAFE_FLAGS])
    [out] = pdf.compile_pdfs(LATEX.parent, tmp_path, ["softmax"])
    log = out.with_suffix(".log").read_text(errors="replace")
    assert "undefined" not in log
    bibliography_items = re.findall(r"\\bibitem\{([^}]*)\}", out.with_suffix(".bbl").read_text())
    assert set(bibliography_items) == cited((LATEX / "softmax.tex").read_text())


def test_the_bibliography_is_clean_under_natbib_and_plainnat(tmp_path):
    """BibTeX with plainnat warns of nothing (no empty year, no missing field) but the @software type,
    which BibTeX's styles do not define (they set it as @misc; biblatex defines it)."""
    import subprocess

    from helpers.tex import tex_or_skip

    from derive.pipeline.pdf import SAFE_FLAGS, tex_environment

    tex_or_skip()
    (tmp_path / "derive.bib").write_text(bibliography())
    (tmp_path / "cite.tex").write_text("\\documentclass{article}\\usepackage{natbib}\\begin{document}\\nocite{*}"
                                       "\\bibliographystyle{plainnat}\\bibliography{derive}\\end{document}\n")
    for command in (["pdflatex", *SAFE_FLAGS, "cite.tex"], ["bibtex", "cite"]):
        subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=120, env=tex_environment(), check=True)
    warnings = re.findall(r"^Warning--(.*)$", (tmp_path / "cite.blg").read_text(), re.M)
    software = {f'entry type for "{key}" isn\'t style-file defined'
                for key in re.findall(r"^@software\{([^,]+),", bibliography(), re.M)}
    assert set(warnings) <= software, warnings
