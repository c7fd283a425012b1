"""The Python interface: load, derive, the expressions per input, render every target, write, load kernels."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import sympy as sp
from helpers import OPERATORS, ROOT

import derive
from derive.calculus.indices import canonical_dummies, free_indices
from derive.display.catalogue import shown_names
from derive.model.functions import sigmoid
from derive.targets.render import TARGETS


def test_load_derive_and_the_expressions_of_each_input():
    model = derive.load("rmsnorm")
    d = derive.derive(model)
    assert [g.input.name for g in d.gradients] == ["x", "gamma", "beta"]
    jac = derive.jacobian(d, "x")
    assert {str(i) for i in free_indices(jac)} == {"i", "k"} and jac.has(sp.KroneckerDelta)
    assert {str(i) for i in free_indices(derive.vjp(d, "x"))} == {"k"}
    assert {str(i) for i in free_indices(derive.jvp(d, "x"))} == {"i"}
    assert derive.vjp(d, "x") == d.gradient("x").vjp
    readable = derive.vjp(model, "x", readable=True)  # a model is derived on the way
    assert sp.Symbol("r", positive=True) in readable.free_symbols
    softmax = derive.derive("softmax")
    readable, total = derive.vjp(softmax, "x", readable=True), dict(softmax.model.where)["S"]
    named = next(s for s in readable.free_symbols if isinstance(s, sp.Symbol) and s.name == "S")
    assert total not in readable.atoms(sp.Sum)  # the sum of exp(x) is written as S ...
    written_out = canonical_dummies(readable.xreplace({named: total}))  # summation indices named as in the documents
    assert sp.simplify(written_out - canonical_dummies(derive.vjp(softmax, "x"))) == 0  # ... and only that
    with pytest.raises(KeyError, match="no differentiable input 'z'"):
        derive.vjp(d, "z")


def test_vjp_jvp_is_the_derivative_of_the_vjp_along_the_tangents():
    """derive.vjp_jvp(model, input): free in the input's index, reading the cotangent and the
    tangents; for div by b, the derivative of -dy*a/b**2 by a and b along dot_a and dot_b."""
    d = derive.derive("div")
    second = derive.vjp_jvp(d, "b")
    a, b, dy, dot_a, dot_b = (sp.IndexedBase(n) for n in ("a", "b", "dy", "dot_a", "dot_b"))
    (k,) = free_indices(second)
    by_hand = -dy[k] * dot_a[k] / b[k] ** 2 + 2 * dy[k] * a[k] * dot_b[k] / b[k] ** 3
    assert sp.simplify(second - by_hand) == 0
    readable = derive.vjp_jvp("softmax", "x", readable=True)  # a name is derived on the way
    assert "S" in {s.name for s in readable.free_symbols if isinstance(s, sp.Symbol)}
    with pytest.raises(KeyError, match="no differentiable input 'z'"):
        derive.vjp_jvp(d, "z")



def test_latex_writes_the_notation_of_the_documents():
    d = derive.derive("rmsnorm")
    vjp, jvp = derive.latex(derive.vjp(d, "x")), derive.latex(derive.jvp(d, "x"))
    assert r"\bar{y}_{k}" in vjp and "dy" not in vjp  # the cotangent
    assert r"\dot{x}_{i}" in jvp and "dot" not in jvp.replace(r"\dot{", "")  # the tangent
    assert r"\sum_{j=1}^{n}" in vjp  # positions counted from 1, as in the paper
    x = sp.IndexedBase("x")
    assert derive.latex(x[0] + x[1], output="z") == "x_{1} + x_{2}"


def _unlettered(tex: str) -> str:
    """``tex`` with every index letter (subscripts, summation variables) replaced by '?'."""
    return re.sub(r"\\sum_\{[a-z']+=", r"\\sum_{?=", re.sub(r"_\{[a-z']+\}", "_{?}", tex))


@pytest.mark.parametrize("name", ["rmsnorm", "softmax", "layernorm", "batchnorm", "silu"])
def test_latex_of_the_readable_vjp_is_the_documents_equation(name: str):
    """derive.latex(vjp(..., readable=True)) is, character for character, the right side of the VJP
    equation in the operator's document (its twin generated/latex/<op>.json), line breaks aside."""
    twin = json.loads((ROOT / "generated" / "latex" / f"{name}.json").read_text())
    derivation = derive.derive(name)
    for gradient in derivation.gradients:
        document = next(e["latex"] for e in twin["equations"]  # the derivation's VJP, not the compact result
                        if e["label"] == f"eq:{name}:{gradient.input.name}:vjp-expanded")
        document = document.replace(r"\Bigl(", r"\left(").replace(r"\Bigr)", r"\right)")
        readable = derive.vjp(derivation, gradient.input.name, readable=True)
        # a document shows a name by the letter the catalogue gives its meaning (softmax's S as Z)
        letters = shown_names(name, {str(s) for s in readable.free_symbols})
        readable = readable.xreplace({s: sp.Symbol(letters[str(s)], **s.assumptions0)
                                      for s in readable.free_symbols if str(s) in letters})
        ours = derive.latex(readable)
        # a product broken across lines gets a \cdot at the break; a document shows an index name used
        # over two axes by another letter over one of them (batchnorm's k), derive.latex by its name
        assert _unlettered(document.replace(r" \cdot ", " ")).endswith(" = " + _unlettered(ours)), (document, ours)
        assert r"\bar{y}" in ours and "dy" not in ours


def test_latex_shows_epsilon_and_the_logistic_function_as_the_documents_do():
    x, k = sp.IndexedBase("x"), sp.Idx("k", sp.Symbol("n"))
    logistic = sp.Function("logistic")  # a model's own function of that name (notebook 4)
    tex = derive.latex(sp.Symbol("epsilon", positive=True) + sigmoid(x[k]) + logistic(x[k]))
    assert tex.count(r"\sigma\left(x_{k}\right)") == 2 and r"\epsilon" in tex
    assert "logistic" not in tex and "sigmoid" not in tex


def test_latex_breaks_a_wide_equation_into_aligned_lines():
    """With a width, an equation wider than it is an aligned block of lines each within the width."""
    from derive.display.layout import tex_width

    vjp = derive.vjp("batchnorm", "x", readable=True)
    one_line = derive.latex(vjp, lhs=r"\bar{x}_{kpq}")
    broken = derive.latex(vjp, lhs=r"\bar{x}_{kpq}", width=48, note="as derived")
    assert tex_width(one_line) > 48 and "aligned" not in one_line
    lines = broken.removeprefix(r"\begin{aligned}").removesuffix(r"\end{aligned}").split(r" \\ ")
    assert len(lines) >= 3 and all(tex_width(line.replace("&", "")) <= 48 for line in lines), lines
    assert lines[0].startswith(r"\bar{x}_{kpq} &= ") and "as derived" in lines[-1]
    joined = " ".join(line.replace(r"&\quad {} ", "").replace("&= ", "= ") for line in lines[:-1])
    assert joined.replace(r"\Bigl(", r"\left(").replace(r"\Bigr)", r"\right)") == one_line


def test_readable_names_a_per_channel_quantity_under_a_renamed_index():
    """batchnorm's gradient by x[k, p, q] holds the channel mean over x[j, p, l], not x[j, c, l]:
    written mu[p] and sigma[p], as the documents write mu_p (gamma's, by gamma[k], mu[k])."""
    for wrt, channel in (("x", "p"), ("gamma", "k")):
        readable = derive.vjp("batchnorm", wrt, readable=True)
        named = {str(e) for e in readable.atoms(sp.Indexed) if str(e.base) in ("mu", "sigma")}
        assert named == {f"mu[{channel}]", f"sigma[{channel}]"}, readable
        assert sp.Symbol("epsilon", positive=True) not in readable.free_symbols
        sums = readable.atoms(sp.Sum)
        assert not any(inner.has(sp.Sum) for s in sums for inner in s.function.atoms(sp.Sum)), readable
        bare = [s for s in sums if isinstance(s.function, sp.Indexed) and str(s.function.base) == "x"]
        assert not bare, f"a bare sum of x, not written with mu: {readable}"

def test_operators_lists_the_builtins():
    assert set(OPERATORS) <= set(derive.operators())


def test_render_writes_every_target_and_can_pick_one():
    files = derive.render("softmax")
    assert {f"{t.folder}/softmax{t.suffix}" for t in TARGETS} <= set(files)
    assert {"latex/softmax.tex", "latex/softmax-body.tex", "latex/softmax.json"} <= set(files)
    assert derive.targets() == tuple(t.name for t in TARGETS)
    assert set(derive.render("softmax", targets=["numpy"])) == {"numpy/softmax.py"}
    with pytest.raises(KeyError, match="unknown target 'fortran'"):
        derive.render("softmax", targets=["fortran"])


def test_write_changes_and_load_kernel(tmp_path):
    out = tmp_path / "kernels"
    written = derive.write(["sigmoid", derive.load("matmul")], out)
    assert {"numpy/sigmoid.py", "numpy/matmul.py", "latex/sigmoid.tex", "latex/matmul.json"} <= set(written)
    assert derive.changes(["sigmoid", "matmul"], out) == []
    assert derive.write("sigmoid", out) == []
    kernel = derive.load_kernel(out / "numpy" / "sigmoid.py")
    x = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(kernel.forward(x), 1 / (1 + np.exp(-x)))
    (out / "numpy" / "sigmoid.py").write_text("edited\n")
    assert len(derive.changes("sigmoid", out)) == 1
    with pytest.raises(FileNotFoundError):
        derive.load_kernel(out / "numpy" / "nothing.py")


def test_a_model_built_in_code_goes_through_the_same_pipeline(tmp_path):
    from derive.model import Input, OperatorModel, index, size

    n = size("n")
    i, j = index("i", n), index("j", n)
    x = Input("x", (n,))
    model = OperatorModel(name="logsumexp_shift", summary="x - log(sum(exp(x)))", category="custom",
                          inputs=(x,), output_indices=(i,), output=x[i] - sp.log(sp.Sum(sp.exp(x[j]), (j, 0, n - 1))))
    assert derive.claim(model, "x", "dy[k] - exp(x[k])*sum(dy[j], j)/sum(exp(x[j]), j)").equal
    derive.write(model, tmp_path)
    kernel = derive.load_kernel(tmp_path / "numpy" / "logsumexp_shift.py")
    x_value = np.array([0.5, -1.0, 2.0])
    dx = kernel.vjp(np.ones(3), x_value)[0]
    np.testing.assert_allclose(dx, 1 - 3 * np.exp(x_value) / np.exp(x_value).sum())
