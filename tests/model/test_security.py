"""Text is never code: one test per attack of issue 12 ("Text becomes code").

Formulas and ``--fix`` values are read by an AST walk over a whitelist, twins likewise; names must be
identifiers; model text is escaped for the language of each generated file; TeX runs without shell
escape, cannot read outside its folder, and latexmk runs no rc file (issue 31).  Each attack, if it worked, would create a file in the
current folder or put a live command into a generated file; the tests check that it does not.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import sympy as sp
from helpers import GENERATED, OPERATORS
from helpers.commands import one_error

import derive
from derive.calculus.validate import ModelError, validate
from derive.cli import main
from derive.model import Input, OperatorModel, Param, index, size
from derive.model.reader import ReadError
from derive.pipeline import pdf
from derive.proof.formula import read_number
from derive.proof.srepr import load_srepr

ESCAPE = "sigmoid.__globals__['__builtins__']['__import__']('os').system('touch F') + 2!"


# -- formulas and --fix values ------------------------------------------------------------------------

def test_a_formula_that_escapes_to_python_runs_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["claim", "relu", "--wrt", "x", "--vjp", ESCAPE]) == 2
    one_error(capsys)
    assert main(["claim", "relu", "--wrt", "x", "--vjp", ESCAPE[:-4]]) == 2  # valid Python this time
    assert "__globals__" in one_error(capsys)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["__import__('os').system('touch F')", ESCAPE,
                                   "Symbol('x').__class__.__init__.__globals__['os'].system('touch F')"])
def test_a_fix_value_that_escapes_to_python_runs_nothing(value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["claim", "rmsnorm", "--wrt", "x", "--fix", f"epsilon={value}", "--vjp", "dy[k]"]) == 2
    assert "--fix epsilon=" in one_error(capsys)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("formula,piece", [
    ("dy[k].func", "Attribute"),
    ("(lambda: 1)()", "Python's Lambda is not part of a formula (lambda: 1)"),
    ("sum(dy[j] for j in k)", "GeneratorExp"),
    ("[dy[k]][0]", "List"),
    ("__import__", "__import__"),
    ("dy[k] * 'text'", "a string ('text')"),
    ("exp(*dy)", "Starred"),
    ("exp(dy[k], evaluate=False)", "takes no keyword arguments"),
    ("dy[k] @ x[k]", "MatMult"),
    ("2**10**10", "too large"),
])
def test_every_other_piece_of_python_is_named_and_refused(formula, piece):
    with pytest.raises(ValueError, match=re.escape(piece)):
        derive.claim("rmsnorm", "x", formula)


def test_fix_values_are_numbers_written_as_arithmetic():
    assert read_number("1/sqrt(2)") == 1 / sp.sqrt(2)
    assert read_number("0.1") == sp.Rational(1, 10) and read_number("-2^3") == -8
    for text in ("x", "'1'", "(1).real", "[1][0]"):
        with pytest.raises(ValueError):
            read_number(text)


# -- the JSON twins ----------------------------------------------------------------------------------

@pytest.mark.parametrize("crafted", [
    "Tuple('__import__(\"os\").system(\"touch F\")')",
    "exp('__import__(\"os\").system(\"touch F\")')",
    "Symbol('x').__class__.__init__.__globals__['os'].system('touch F')",
    "Float('__import__(\"os\").system(\"touch F\")')",
    "Integer(1).func(__import__('os').system('touch F'))",
    "Symbol('x', integer=__import__('os').system('touch F'))",
    "eval('1')",
])
def test_a_crafted_twin_builds_nothing(crafted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ReadError, match="not a twin's srepr"):
        load_srepr(crafted)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", OPERATORS)
def test_every_twin_loads_back(name):
    """Each equation of each committed twin is rebuilt by the safe loader: its srepr is the stored
    text, or (where SymPy orders an argument list differently on construction) a fixed point."""
    equations = json.loads((GENERATED / "latex" / f"{name}.json").read_text())["equations"]
    for equation in equations:
        for side in ("lhs", "rhs"):
            expr = load_srepr(equation[side])
            again = sp.srepr(expr)
            assert again == equation[side] or load_srepr(again) == expr, (equation["label"], side)


# -- names ----------------------------------------------------------------------------------------

def model(name: str = "op", input_name: str = "x", summary: str = "y = 2 x", torch: str = "",
          source: str = "", param: str = "scale") -> OperatorModel:
    n = size("n")
    i = index("i", n)
    x = Input(input_name, (n,))
    s = sp.Symbol("s")
    return OperatorModel(name=name, summary=summary, category="custom", inputs=(x,), output_indices=(i,),
                         output=s * x[i], params=(Param(param, 2.0, s, "a scale"),), torch=torch, source=source)


@pytest.mark.parametrize("field,bad", [
    ("name", "../../x"), ("name", "a b"), ("name", "class"), ("name", "__init__"),
    ("input_name", "class"), ("input_name", "lambda"), ("input_name", "__x__"), ("input_name", "x\n\\input{a}"),
    ("param", "lambda"), ("param", "a-b"),
])
def test_a_name_that_is_not_an_identifier_is_refused(field, bad):
    with pytest.raises(ModelError, match=re.escape(repr(bad))):
        validate(model(**{field: bad}))


def test_an_output_written_as_text_is_refused_not_parsed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = "__import__('os').system('touch F')"
    with pytest.raises(ModelError, match="the output is a str, not a SymPy expression"):
        derive.derive(dataclasses.replace(model(), output=text))
    with pytest.raises(ModelError, match="the intermediate 'r' is a str"):
        derive.derive(dataclasses.replace(model(), where=(("r", text),)))
    assert not list(tmp_path.iterdir())


def test_an_operator_named_to_leave_the_output_folder_writes_nothing(tmp_path, capsys):
    path = tmp_path / "models" / "evil.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent('''
        import sympy as sp
        from derive.model import Input, OperatorModel, index, size
        from derive.registry import register

        @register
        def evil() -> OperatorModel:
            n = size("n")
            i = index("i", n)
            x = Input("x", (n,))
            return OperatorModel(name="../../x", summary="s", category="c", inputs=(x,), output_indices=(i,),
                                 output=2 * x[i])
        '''))
    out = tmp_path / "a" / "b" / "out"
    assert main(["generate", "--model", str(path), "--out", str(out), "-q", "--no-cache"]) == 2
    assert "'../../x'" in one_error(capsys)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["models/evil.py"], written


# -- model text in generated files --------------------------------------------------------------------

HOSTILE = 'it says """; import os; os.system("touch F"); """ and \\ back \' quote " and \\input{/etc/passwd} % {'


def test_hostile_text_gives_a_kernel_that_imports_and_shows_it(tmp_path, monkeypatch):
    torch = 'torch.mul(x, "\\"); os.system(\'touch F\')'
    files = derive.render(model(summary=HOSTILE, torch=torch, source='evil"""\n.py'), ["numpy"])
    (tmp_path / "kernel.py").write_text(files["numpy/op.py"])
    script = "import kernel; print(kernel.__doc__); print(kernel.forward.__doc__); print(kernel.forward([1.0, 2.0]))"
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(HOSTILE) == 2 and torch in result.stdout
    assert "[2. 4.]" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["kernel.py"]


def live_tex(text: str) -> str:
    """The TeX that is read: every line without its comment (from the first unescaped %)."""
    return "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in text.splitlines())


def test_hostile_text_gives_latex_with_no_live_command():
    evil = model(summary=HOSTILE + "\n\n\\input{/etc/passwd}", torch="f(x) \\input{/etc/passwd}",
                 source="evil\n\\input{/etc/passwd}\r\\input{/etc/passwd}.py")
    files = derive.render(evil, ["latex"])
    tex = [text for path, text in files.items() if path.endswith(".tex")]
    assert len(tex) == 2
    for text in tex:
        assert "\\input{/etc/passwd}" in text.replace("\\textbackslash{}", "\\").replace("\\{", "{").replace("\\}", "}")
        assert "\\input{/etc" not in live_tex(text)
        assert "\n\n\\input" not in text


# -- derive pdf --------------------------------------------------------------------------------------

@pytest.mark.parametrize("found", ["latexmk", "pdflatex"])
def test_tex_runs_without_shell_escape_and_reads_only_its_folder(found, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}" if name == found else None)
    command = pdf.compiler()
    assert command[0] == found and "-no-shell-escape" in command and "-shell-escape" not in command
    assert found != "latexmk" or "-norc" in command
    monkeypatch.setenv("openin_any", "a")
    monkeypatch.setenv("TEXMFOUTPUT", "/")
    env = pdf.tex_environment()
    assert env["openin_any"] == "p" and env["openout_any"] == "p" and "TEXMFOUTPUT" not in env


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs pdflatex (CI installs TeX Live)")
def test_a_document_cannot_read_etc_passwd(tmp_path, monkeypatch):
    """The document opens /etc/passwd with \\openin and says in its log whether it could; the
    distribution's own setting (openin_any=a on Debian) would let it."""
    monkeypatch.setenv("openin_any", "a")
    source = tmp_path / "generated" / "latex"
    source.mkdir(parents=True)
    (source / "leak.tex").write_text("\\documentclass{article}\\newread\\leak\\openin\\leak=/etc/passwd\n"
                                     "\\typeout{LEAK:\\ifeof\\leak no\\else yes\\fi}\n"
                                     "\\begin{document}x\\end{document}\n")
    pdf.compile_pdfs(tmp_path / "generated", tmp_path / "pdf", ["leak"])
    log = (tmp_path / "pdf" / "leak.log").read_text(errors="replace")
    assert "LEAK:no" in log and "LEAK:yes" not in log


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (CI installs TeX Live)")
@pytest.mark.parametrize("rc", ["latexmkrc", ".latexmkrc"])
def test_derive_pdf_runs_no_latexmkrc_of_the_output_or_working_folder(rc, tmp_path, monkeypatch):
    """latexmk runs the Perl of an rc file in its folder (past -no-shell-escape); derive pdf reads none."""
    source = tmp_path / "generated" / "latex"
    source.mkdir(parents=True)
    (source / "doc.tex").write_text("\\documentclass{article}\\begin{document}x\\end{document}\n")
    out, work = tmp_path / "pdf", tmp_path / "work"
    for folder in (out, work):
        folder.mkdir()
        (folder / rc).write_text(f'open(my $marker, ">", "{tmp_path}/ran-{folder.name}"); close($marker);\n')
    monkeypatch.chdir(work)
    assert pdf.compile_pdfs(tmp_path / "generated", out, ["doc"]) == [out / "doc.pdf"]
    assert (out / "doc.pdf").read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.glob("ran-*")) == []
