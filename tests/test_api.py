"""The Python interface: load, derive, the expressions per input, render every target, write, load kernels."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import derive
from derive.calculus.indices import free_indices
from derive.targets.render import TARGETS

from conftest import OPERATORS


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
    assert sp.simplify(readable.xreplace({named: total}) - derive.vjp(softmax, "x")) == 0  # ... and only that
    with pytest.raises(KeyError, match="no differentiable input 'z'"):
        derive.vjp(d, "z")



def test_latex_writes_the_notation_of_the_documents():
    d = derive.derive("rmsnorm")
    vjp, jvp = derive.latex(derive.vjp(d, "x")), derive.latex(derive.jvp(d, "x"))
    assert r"\bar{y}_{k}" in vjp and "dy" not in vjp  # the cotangent
    assert r"\dot{x}_{i}" in jvp and "dot" not in jvp.replace(r"\dot{", "")  # the tangent
    assert r"\sum_{j=1}^{n}" in vjp  # positions counted from 1, as in the paper
    x = sp.IndexedBase("x")
    assert derive.latex(x[0] + x[1], output="z") == "x_{1} + x_{2}"


def test_readable_names_a_per_channel_quantity_under_a_renamed_index():
    """batchnorm's gradient by x[k, p, q] holds the channel mean over x[j, p, l], not x[j, c, l]."""
    mu, sigma = sp.Symbol("mu", positive=True), sp.Symbol("sigma", positive=True)
    for wrt in ("x", "gamma"):
        readable = derive.vjp("batchnorm", wrt, readable=True)
        assert {mu, sigma} <= readable.free_symbols
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
    written = derive.write(["softmax", derive.load("matmul")], out)
    assert {"numpy/softmax.py", "numpy/matmul.py", "latex/softmax.tex", "latex/matmul.json"} <= set(written)
    assert derive.changes(["softmax", "matmul"], out) == []
    assert derive.write("softmax", out) == []
    kernel = derive.load_kernel(out / "numpy" / "softmax.py")
    x = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(kernel.forward(x), np.exp(x) / np.exp(x).sum())
    (out / "numpy" / "softmax.py").write_text("edited\n")
    assert len(derive.changes("softmax", out)) == 1
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
