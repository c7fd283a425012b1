"""The LaTeX target: checked equations, the JSON twin, the formula a document states equals the
kernel that runs, and every generated document compiles (the printer: display/test_latex_printer.py;
the derive pdf command: pipeline/test_pdf.py)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp
from helpers import GENERATED, LATEX, OPERATORS, ROOT
from helpers.formulas import KernelCall, entries, model_array, twin
from helpers.kernels import load_kernel, make_inputs
from helpers.readme import python_blocks

from derive.calculus.concrete import expander, substituted
from derive.calculus.differentiate import Partial, Step
from derive.calculus.equality import UnverifiedEqualityError
from derive.calculus.indices import free_indices
from derive.calculus.pipeline import Derivation, derive
from derive.cli import main
from derive.display import readable
from derive.model import registry
from derive.pipeline.pdf import TexMissingError, compile_pdfs, documents, overfull_boxes
from derive.proof.srepr import load_srepr
from derive.targets.latex.equations import Equations
from derive.targets.latex.matrix_form import matrix_form
from derive.targets.latex.matrix_section import matrix_rows
from derive.targets.latex.stable import shift_axes
from derive.targets.latex.text import UntypesettableTextError, tex_escape
from derive.targets.latex.view import build_document


def rebuild(srepr: str) -> sp.Expr:
    return load_srepr(srepr)


# text -----------------------------------------------------------------------------------------
def test_text_is_escaped_and_unknown_characters_are_an_error():
    assert tex_escape("x_i ^ 2 & 50% #1") == r"x\_i \textasciicircum{} 2 \& 50\% \#1"
    assert tex_escape("σ ≥ 0") == r"$\sigma$ $\ge$ 0"
    with pytest.raises(UntypesettableTextError, match="U\\+2603"):
        tex_escape("snow ☃")


# documents and twins --------------------------------------------------------------------------
@pytest.mark.parametrize("name", OPERATORS)
def test_every_operator_has_a_document_a_fragment_and_a_twin(name):
    standalone = (LATEX / f"{name}.tex").read_text(encoding="utf-8")
    fragment = (LATEX / f"{name}-body.tex").read_text(encoding="utf-8")
    header = re.match(r"(%[^\n]*\n)+", fragment).group(0)  # the fragment's own header: comment lines
    body = fragment[len(header):]
    assert r"\usepackage{amsmath,amssymb,mathtools}" in header and "derive.bib" in header
    assert not body.startswith("%") and "\n\\section{" in body and body in standalone
    assert r"\documentclass" in standalone and r"\documentclass" not in fragment
    labels = re.findall(r"\\label\{([^}]*)\}", fragment)
    assert len(labels) == len(set(labels))
    equations = twin(name)["equations"]
    assert [e["label"] for e in equations] == [label for label in labels if label.startswith("eq:")]
    for gradient in derive(registry.get(name)).gradients:
        for kind in ("jacobian", "vjp", "jvp"):
            assert f"eq:{name}:{kind}-{gradient.input.name}" in labels


@pytest.mark.parametrize("name", OPERATORS)
def test_each_step_names_its_rules_and_every_equation_was_checked(name):
    equations = twin(name)["equations"]
    steps = [e for e in equations if e["kind"] == "step"]
    assert steps and all(e["rules"] for e in steps if not e["label"].endswith(":step-0"))
    assert {e["check"] for e in equations} <= {"symbolic", "random points", "definition"}
    assert all(e["check"] != "definition" for e in equations if e["kind"] != "definition")
    for equation in equations:  # both sides load back, and the right uses no index the left lacks
        lhs, rhs = rebuild(equation["lhs"]), rebuild(equation["rhs"])
        assert isinstance(lhs, sp.Basic) and isinstance(rhs, sp.Basic), equation["label"]
        assert free_indices(rhs) <= free_indices(lhs), f"{equation['label']}: {free_indices(rhs) - free_indices(lhs)}"


@pytest.mark.parametrize("name", OPERATORS)
def test_final_vjp_and_jvp_equations_evaluate_to_the_kernel(name, rng):
    """The formula a user cites is the function they run: rebuilt from srepr, evaluated at random
    points with concrete.expand, compared with the generated NumPy kernel on the same numbers."""
    model, kernel = registry.get(name), load_kernel(name)
    sizes = {d: 2 + position for position, d in enumerate(model.dims())}
    arrays = {inp.name: model_array(inp, sizes, rng) for inp in model.inputs}
    call = KernelCall(model, sizes)
    inputs = [call.to_user(inp, arrays[inp.name]) for inp in model.inputs]
    params = {p.symbol: p.default for p in model.params if p.symbol is not None}
    out_shape = tuple(int(d.subs(sizes)) for d in model.output_dims)
    cotangent = rng.standard_normal(out_shape)
    user_out = np.shape(kernel.forward(*inputs, **call.params))
    grads = kernel.vjp(cotangent.reshape(user_out), *inputs, **call.params)
    derivation = derive(model)
    checked = 0
    for equation in twin(name)["equations"]:
        if equation["kind"] not in ("vjp", "jvp"):
            continue
        position = [inp.name for inp in model.inputs].index(equation["input"])
        inp = model.inputs[position]
        if equation["kind"] == "vjp":
            numbers, expected = {"dy": cotangent}, np.reshape(grads[position], arrays[inp.name].shape)
        else:
            tangent = rng.standard_normal(arrays[inp.name].shape)
            tangents = [None] * len(model.inputs)
            tangents[position] = call.to_user(inp, tangent)
            numbers = {f"dot_{inp.name}": tangent}
            expected = np.reshape(kernel.jvp(tuple(tangents), *inputs, **call.params), out_shape)
        formula = rebuild(equation["rhs"])
        values = entries({**arrays, **numbers}) | params
        # the entry's indices, in the order of the array's axes (the formula may lack some)
        axes = derivation.gradient(inp.name).wrt_indices if equation["kind"] == "vjp" else model.output_indices
        assert free_indices(formula) <= set(axes), equation["label"]
        at_sizes = expander(sizes)  # one pass for every entry: a row's sums are written out once
        for at in itertools.product(*(range(int((i.upper + 1).subs(sizes))) for i in axes)):
            value = float(substituted(at_sizes(formula, dict(zip(axes, at))), values).evalf(30))
            assert value == pytest.approx(float(expected[at]), rel=1e-9, abs=1e-12), (
                f"{equation['label']} at {dict(zip(map(str, axes), at))}")
            checked += 1
    assert checked > 0


def test_a_step_that_does_not_hold_is_an_error_and_nothing_is_written(tmp_path, monkeypatch):
    def tampered(model):
        derivation = derive(model)
        gradient = derivation.gradients[0]
        bad = Step(gradient.steps[-1].expr * 2, ("product rule",))
        wrong = type(gradient)(gradient.input, gradient.wrt, gradient.steps[:-1] + (bad,), gradient.jacobian,
                               gradient.vjp, gradient.jvp)
        return Derivation(derivation.model, (wrong, *derivation.gradients[1:]))

    with pytest.raises(UnverifiedEqualityError, match="step"):
        build_document(tampered(registry.get("rmsnorm")))
    monkeypatch.setattr("derive.pipeline.render.derive", tampered)
    out = tmp_path / "gen"
    assert main(["generate", "rmsnorm", "--out", str(out), "-q", "--no-cache", "--jobs", "1"]) == 2
    assert not out.exists()


# structure ------------------------------------------------------------------------------------
def _form(name: str, input_name: str = "x"):
    derivation = derive(registry.get(name))
    model, gradient = derivation.model, derivation.gradient(input_name)
    i, k = model.output_indices[0], gradient.wrt_indices[0]
    y = sp.IndexedBase("y")[i]
    return matrix_form(readable(gradient.jacobian, model), i, k, readable(model.output, model), y), y


def test_softmax_jacobian_reads_diag_y_minus_y_y_transpose():
    form, y = _form("softmax")
    assert [(t.diagonal, t.coefficient, t.left, t.right) for t in form.terms] == [(True, 1, y, 1), (False, -1, y, y)]


@pytest.mark.parametrize("name", ["rmsnorm", "layernorm"])
def test_norm_jacobians_read_diagonal_plus_low_rank(name):
    form, _ = _form(name)
    diagonal = [t for t in form.terms if t.diagonal]
    assert len(diagonal) == 1 and 1 <= len(form.terms) - 1 <= 2
    scale, common, inner = form.factored
    assert str(common) == "gamma[i]" and any(t.diagonal and t.left == 1 and t.coefficient == 1 for t in inner)


def test_no_matrix_form_is_claimed_for_a_multi_index_input():
    derivation = derive(registry.get("matmul"))
    eqs = Equations(derivation.model)
    assert matrix_rows(eqs, derivation.gradient("a"), "eq:matmul:matrix-a") == ("", ())
    assert "matrix-" not in (LATEX / "matmul-body.tex").read_text(encoding="utf-8")


def test_handbook_inputs_every_operator_and_works_the_seed_questions():
    handbook = (LATEX / "handbook.tex").read_text(encoding="utf-8")
    assert r"\tableofcontents" in handbook and r"\input{notation}" in handbook
    for name in OPERATORS:
        assert rf"\input{{{name}-body}}" in handbook
    for label in ("sec:seed:rmsnorm", "sec:seed:layernorm", "eq:seed:rms-root", "eq:seed:layernorm-row-sum-zero",
                  "eq:seed:layernorm-gradient-sum"):
        assert rf"\label{{{label}}}" in handbook
    assert "SymPy's expression is" in handbook  # the live counterexample to SymPy's clashing answer


def test_a_retired_latex_file_is_reported_stale(tmp_path, capsys, rendered):
    out = tmp_path / "gen"
    shutil.copytree(GENERATED, out, ignore=shutil.ignore_patterns("__pycache__"))
    (out / "latex" / "retired.json").write_text("{}\n")  # derive wrote it once (it is in the manifest)
    (out / ".derive-manifest").write_text((out / ".derive-manifest").read_text() + "latex/retired.json\n")
    assert main(["check", "--out", str(out), "-q"]) == 1
    assert "latex/retired.json: stale" in capsys.readouterr().out


# compiling ------------------------------------------------------------------------------------
DOCUMENTS = [*OPERATORS, "handbook"]
COMPILED = ["handbook", "relu", "scaled_dot_product_attention"]
"""The documents compiled: the handbook, which inputs every operator's body in the same page layout,
and two standalone documents (the shortest, and the longest with the longest name); each standalone
document is its body in the same wrapper as these (test_each_standalone_document_is_its_body_in_the_
shared_wrapper), so these compile every line of all of them (each compile costs ~3 CPU-s)."""


def test_the_documents_to_compile_are_every_operator_and_the_handbook():
    assert sorted(documents(GENERATED, [])) == sorted(DOCUMENTS)


def _wrapper(name: str) -> str:
    """The operator's standalone document without its body, its name and its model's path."""
    body = (GENERATED / "latex" / f"{name}-body.tex").read_text().splitlines()
    core = "\n".join(line for line in body if not line.startswith("%")) + "\n"
    text = (GENERATED / "latex" / f"{name}.tex").read_text()
    assert text.count(core) == 1, f"{name}.tex does not hold its body as one block"
    source = registry.get(name).source
    printed = tex_escape(source).replace("/", "/\\allowbreak{}").replace(".", ".\\allowbreak{}")
    text = text.replace(core, "<body>\n").replace(printed, "<source>").replace(source, "<source>")
    for named in (f"\\texttt{{{tex_escape(name)}}}", f"% {name}:", f"`derive generate {name}`"):
        text = text.replace(named, named.replace(tex_escape(name), "<name>").replace(name, "<name>"))
    return text


def test_each_standalone_document_is_its_body_in_the_shared_wrapper():
    """What the compiled sample vouches for: every standalone document differs from those only in its
    body (compiled in the handbook), its name and its model's path."""
    wrappers = {name: _wrapper(name) for name in OPERATORS}
    assert "<body>" in wrappers["relu"] and "<name>" in wrappers["relu"] and "<source>" in wrappers["relu"]
    assert {name for name, text in wrappers.items() if text != wrappers["relu"]} == set()
    handbook = (GENERATED / "latex" / "handbook.tex").read_text()
    assert all(f"\\input{{{name}-body}}" in handbook for name in OPERATORS)


@pytest.mark.parametrize("name", COMPILED)
def test_every_generated_document_compiles_without_errors_or_overfull_lines(tmp_path, name):
    """The handbook and the sample of standalone documents compile; nothing runs off the page.
    One test per document, so pytest-xdist compiles them in parallel.

    TeX is required (CI installs it); DERIVE_SKIP_TEX=1 skips this test on a developer machine.
    """
    if os.environ.get("DERIVE_SKIP_TEX") == "1":
        pytest.skip("DERIVE_SKIP_TEX=1")
    try:
        [pdf] = compile_pdfs(GENERATED, tmp_path, [name])
    except TexMissingError as error:
        pytest.fail(f"TeX is not installed (set DERIVE_SKIP_TEX=1 to skip locally):\n{error}")
    assert pdf.name == f"{name}.pdf" and pdf.stat().st_size > 10_000
    assert overfull_boxes(pdf.with_suffix(".log")) == [], pdf.name


def test_readme_loads_a_twin_equation_as_written():
    blocks = [b for b in python_blocks() if "generated/latex" in b]
    assert blocks, "the README shows how to load a derivation's twin"
    for block in blocks:
        result = subprocess.run([sys.executable, "-c", block], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "dy" in result.stdout and "gamma" in result.stdout


def test_readme_input_example_uses_labels_that_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    latex = re.search(r"```latex\n(.*?)```", text, flags=re.S).group(1)
    body = (LATEX / "rmsnorm-body.tex").read_text(encoding="utf-8")
    for label in re.findall(r"\\eqref\{([^}]*)\}", latex):
        assert rf"\label{{{label}}}" in body
    assert (LATEX / "notation.tex").exists()


# shapes the catalog brings: elementwise functions, scalar outputs, open derivatives in sums ----
def _elementwise_tanh():
    from derive.model import Input, OperatorModel, index, size
    n = size("n")
    i = index("i", n)
    x = Input("x", (n,))
    return OperatorModel(name="tanh_trial", summary="tanh(x)", category="elementwise", inputs=(x,),
                         output_indices=(i,), output=sp.tanh(x[i]), source="tests/targets/latex/test_latex.py")


def _scalar_loss():
    from derive.model import Input, OperatorModel, index, size
    n = size("n")
    j = index("j", n)
    x, target = Input("x", (n,)), Input("target", (n,), differentiable=False)
    return OperatorModel(name="mse_trial", summary="mean((x - target)^2)", category="loss", inputs=(x, target),
                         output_indices=(), output=sp.Sum((x[j] - target[j]) ** 2, (j, 0, n - 1)) / n,
                         source="tests/targets/latex/test_latex.py")


@pytest.mark.parametrize("factory", [_elementwise_tanh, _scalar_loss])
def test_documents_need_no_per_operator_code(factory):
    view = build_document(derive(factory()))
    kinds = {e.kind for e in view.equations}
    assert {"definition", "step", "jacobian", "vjp", "jvp"} <= kinds
    vjp = next(e for e in view.equations if e.kind == "vjp" and ":result-" not in e.label)  # the derivation's
    if factory is _scalar_loss:
        assert vjp.latex.startswith(r"\bar{x}_{k} = \bar{y}") and "matrix" not in kinds
        assert r"\mathrm{target}_{k}" in vjp.latex
    else:
        matrix = next(e for e in view.equations if e.kind == "matrix")
        assert matrix.rhs_lines[0].startswith(r"\operatorname{diag}")


def test_an_open_derivative_of_a_piecewise_entry_survives_a_sum():
    n = sp.Symbol("n", integer=True, positive=True)
    i, k = sp.Idx("i", n), sp.Idx("k", n)
    x = sp.IndexedBase("x")
    partial = Partial(sp.Piecewise((x[i], x[i] > 0), (0, True)), x[k])
    summed = sp.Sum(partial * sp.IndexedBase("t")[k], (k, 0, n - 1))
    assert summed.function != 0 and summed.has(Partial)


@pytest.mark.parametrize("name", [n for n in OPERATORS if registry.get(n).shift_invariant])
def test_the_stable_form_the_document_states_is_what_the_kernel_does(name):
    """The document says the kernel shifts by the maximum in forward, vjp and jvp: the kernel gives
    at inputs shifted by 1000 (exp overflows float64 at 710) what it gives unshifted."""
    body = (LATEX / f"{name}-body.tex").read_text(encoding="utf-8")
    kernel, rng = load_kernel(name), np.random.default_rng(5)
    arrays, _ = make_inputs(name, {str(d): 4 for d in registry.get(name).dims()}, (3,), rng)
    dy = rng.standard_normal(np.shape(kernel.forward(*arrays)))
    tangents = tuple(rng.standard_normal(np.shape(a)) if a.dtype.kind == "f" else None for a in arrays)
    for input_name, _ in shift_axes(registry.get(name)):
        assert f"eq:{name}:stable-{input_name}" in body
        at = kernel.INPUTS.index(input_name)
        shifted = [a + 1000.0 if p == at else a for p, a in enumerate(arrays)]
        for function, before, after in (("forward", kernel.forward(*arrays), kernel.forward(*shifted)),
                                        ("vjp", kernel.vjp(dy, *arrays)[at], kernel.vjp(dy, *shifted)[at]),
                                        ("jvp", kernel.jvp(tangents, *arrays), kernel.jvp(tangents, *shifted))):
            np.testing.assert_allclose(after, before, rtol=1e-9, atol=1e-11, err_msg=function)
