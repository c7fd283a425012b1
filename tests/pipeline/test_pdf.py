"""derive pdf from any folder: the documents derive ships, each compiled from only the files it needs
in a private folder, its products renamed into the output folder (never written through a link); a
clear error naming what to install where there is no TeX; a model file's document.

Most tests replace TeX by a stand-in that records the folder it runs in; the ones that compile need
TeX (CI installs it; DERIVE_SKIP_TEX=1 skips them on a machine without).  That every generated
document compiles is tested with the LaTeX target (targets/latex/test_latex.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import GENERATED, OPERATORS, ROOT

from derive import api, commands
from derive.cli import main
from derive.pipeline import pdf
from derive.pipeline.pdf import overfull_boxes


@pytest.fixture
def tex(monkeypatch) -> dict[str, dict[str, bytes]]:
    """TeX replaced: each document's folder as TeX would see it (file -> bytes), and a PDF written."""
    seen: dict[str, dict[str, bytes]] = {}

    def run(command: list[str], name: str, folder: Path) -> None:
        seen[name] = {path.name: path.read_bytes() for path in folder.iterdir()}
        (folder / f"{name}.pdf").write_bytes(b"%PDF stand-in")

    monkeypatch.setattr(pdf, "compiler", lambda: ["latexmk"])
    monkeypatch.setattr(pdf, "_run", run)
    return seen


def test_derive_pdf_from_any_folder_compiles_the_documents_derive_ships(tmp_path, monkeypatch, capsys, tex):
    monkeypatch.chdir(tmp_path)  # no generated/ here
    assert main(["pdf", "relu", "-q"]) == 0, capsys.readouterr().err
    shipped = api.generated_folder() / "latex"
    assert tex["relu"]["relu.tex"] == (shipped / "relu.tex").read_bytes()
    assert (tmp_path / "build" / "pdf" / "relu.pdf").read_bytes() == b"%PDF stand-in"


@pytest.mark.parametrize("name", ["layernorm", "handbook"])
def test_a_document_is_compiled_from_only_the_files_it_needs(name, tmp_path, tex):
    """A standalone document holds its body and cites derive.bib; the handbook inputs the notation
    and every operator's body."""
    out = tmp_path / "pdf"
    assert pdf.compile_pdfs(GENERATED, out, [name]) == [out / f"{name}.pdf"]
    inputs = {"notation.tex", *(f"{op}-body.tex" for op in OPERATORS)} if name == "handbook" else set()
    assert set(tex[name]) == {f"{name}.tex", "derive.bib", *inputs}
    assert all(tex[name][file] == (GENERATED / "latex" / file).read_bytes() for file in tex[name])
    assert sorted(path.name for path in out.iterdir()) == [f"{name}.pdf"]  # no copies, no temporary folder


def test_a_model_files_document_gets_what_it_inputs_outside_comments(tmp_path, tex):
    files = {"latex/op.tex": "% \\input{commented}\n\\input{op-body}\\input{/etc/hostname}\n\\bibliography{derive}\n",
             "latex/op-body.tex": "x", "latex/commented.tex": "", "latex/other.tex": "", "latex/op.json": "{}"}
    pdf.compile_documents(files, ["op"], tmp_path / "pdf")
    assert sorted(tex["op"]) == ["derive.bib", "op-body.tex", "op.tex"]


@pytest.mark.skipif(os.environ.get("DERIVE_SKIP_TEX") == "1", reason="DERIVE_SKIP_TEX=1")
def test_links_in_the_output_folder_are_replaced_not_written_through(tmp_path, monkeypatch, capsys):
    """TeX (and the copy of the document) would write layernorm.pdf, .log and .tex through links
    someone left in build/pdf/; the compile runs in a private folder and renames its products in."""
    if shutil.which("latexmk") is None and shutil.which("pdflatex") is None:
        pytest.fail("TeX is not installed (set DERIVE_SKIP_TEX=1 to skip locally)")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "build" / "pdf"
    out.mkdir(parents=True)
    for suffix in (".pdf", ".log", ".tex"):
        (tmp_path / f"outside{suffix}").write_bytes(b"mine\n")
        (out / f"layernorm{suffix}").symlink_to(f"../../outside{suffix}")
    assert main(["pdf", "layernorm", "--source", str(GENERATED), "-q"]) == 0, capsys.readouterr().err
    assert [(tmp_path / f"outside{suffix}").read_bytes() for suffix in (".pdf", ".log", ".tex")] == [b"mine\n"] * 3
    for product in ("layernorm.pdf", "layernorm.log"):
        assert not (out / product).is_symlink() and (out / product).is_file()
    assert (out / "layernorm.pdf").read_bytes().startswith(b"%PDF")
    assert (out / "layernorm.tex").is_symlink()  # not derive's: left alone
    assert not [path.name for path in out.iterdir() if path.name.startswith(".")]  # the private folder is gone


def test_an_output_folder_that_is_a_link_is_refused(tmp_path, capsys, tex):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "pdf").symlink_to(real)
    assert main(["pdf", "relu", "--source", str(GENERATED), "--out", str(tmp_path / "pdf")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "it is a symbolic link" in err
    assert list(real.iterdir()) == [] and tex == {}


def test_a_misspelled_document_names_the_close_ones_and_lists_them_all(capsys, tex):
    assert main(["pdf", "layernrom", "--source", str(GENERATED)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no document layernrom" in err and "did you mean layernorm?" in err
    assert all(name in err for name in [*OPERATORS, "handbook"])


def test_the_documents_of_another_generated_folder_need_not_be_built_in(tmp_path, capsys, tex):
    """`derive generate --model my_op.py --out mine`, then `derive pdf my_op --source mine`."""
    (tmp_path / "mine" / "latex").mkdir(parents=True)
    (tmp_path / "mine" / "latex" / "my_op.tex").write_text("\\documentclass{article}\n")
    assert main(["pdf", "my_op", "--source", str(tmp_path / "mine"), "--out", str(tmp_path / "pdf"), "-q"]) == 0, \
        capsys.readouterr().err
    assert set(tex) == {"my_op"}


MODEL = """
import sympy as sp
from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def twice() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    x = Input("x", (n,))
    return OperatorModel(name="twice", summary="2 x", category="elementwise", inputs=(x,), output_indices=(i,),
                         output=2 * x[i])
"""


def test_pdf_out_under_a_file_fails_before_deriving(tmp_path, monkeypatch, capsys, tex):
    monkeypatch.setattr(commands, "render_models", lambda *args, **kwargs: pytest.fail("derived before checking --out"))
    model = tmp_path / "twice.py"
    model.write_text(MODEL)
    (tmp_path / "afile.txt").write_text("mine\n")
    assert main(["pdf", "--model", str(model), "--out", str(tmp_path / "afile.txt" / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'afile.txt'} is a file, not a folder" in err


def test_pdf_without_tex_says_what_to_install(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(Path(sys.executable).resolve())
    result = subprocess.run([str(bare / "python"), "-m", "derive.cli", "pdf", "--out", str(tmp_path / "pdf")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": str(bare), "PYTHONPATH": str(ROOT)})
    assert result.returncode == 3
    assert "latexmk or pdflatex" in result.stderr and "texlive-latex-base" in result.stderr


PDF_MODEL = """
import sympy as sp
from derive.model import Input, OperatorModel, index, size
from derive.registry import register


@register
def scaled_exp() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    x = Input("x", (n,))
    return OperatorModel(name="scaled_exp", summary="2 exp(x)", category="elementwise", inputs=(x,),
                         output_indices=(i,), output=2 * sp.exp(x[i]))
"""


def test_pdf_of_a_model_file(tmp_path, capsys):
    """`derive pdf --model FILE` compiles that model's document (TeX required as above)."""
    if os.environ.get("DERIVE_SKIP_TEX") == "1":
        pytest.skip("DERIVE_SKIP_TEX=1")
    model = tmp_path / "scaled_exp.py"
    model.write_text(PDF_MODEL)
    status = main(["pdf", "--model", str(model), "--out", str(tmp_path / "pdf"), "-q"])
    if status == 3:
        pytest.fail(f"TeX is not installed (set DERIVE_SKIP_TEX=1 to skip locally):\n{capsys.readouterr().err}")
    assert status == 0, capsys.readouterr().err
    pdf = tmp_path / "pdf" / "scaled_exp.pdf"
    assert pdf.stat().st_size > 10_000 and overfull_boxes(pdf.with_suffix(".log")) == []


def test_pdf_of_a_model_file_names_an_unknown_operator(tmp_path, capsys):
    model = tmp_path / "scaled_exp.py"
    model.write_text(PDF_MODEL)
    assert main(["pdf", "no_such_op", "--model", str(model), "--out", str(tmp_path / "pdf")]) == 2
    err = capsys.readouterr().err
    assert "unknown operator 'no_such_op'" in err and "scaled_exp" in err
