"""Traced models (derive.model.trace): the built-in operators written as plain NumPy (helpers/reference.py,
written independently of the engine) trace to models whose NumPy kernels compute what the built-in
kernels compute (forward, vjp, jvp, vjp_jvp), or, for the two slowest to render, whose derived VJP and
JVP formulas take the built-in's values at every entry; names, stabilising maxima, the Array API,
refusals, and the model file a traced model is written as."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp
from array_api_compat import array_namespace
from helpers import reference
from helpers.formulas import concrete
from helpers.kernels import load_kernel

import derive
from derive.errors import ModelError
from derive.model.files import load_model
from derive.model.functions import max_over
from derive.model.source import model_source
from derive.model.trace import TraceError, trace
from derive.model.trace.stabilize import _value

BUILTINS = {
    "rmsnorm": (reference.rmsnorm, {"x": ("n",), "gamma": ("n",), "beta": ("n",)}, {"n": 5}),
    "layernorm": (reference.layernorm, {"x": ("n",), "gamma": ("n",), "beta": ("n",)}, {"n": 5}),
    "softmax": (reference.softmax, {"x": ("n",)}, {"n": 5}),
    "log_softmax": (reference.log_softmax, {"x": ("n",)}, {"n": 5}),
    "batchnorm": (reference.batchnorm, {"x": ("N", "C", "S"), "gamma": ("C",), "beta": ("C",)},
                  {"N": 3, "C": 2, "S": 4}),
    "gelu": (reference.gelu, {"x": ("n",)}, {"n": 6}),
    "scaled_dot_product_attention": (reference.scaled_dot_product_attention,
                                     {"q": ("L", "E"), "k": ("S", "E"), "v": ("S", "V")},
                                     {"L": 3, "S": 4, "E": 2, "V": 3}),
}


def _kernel_of(model, tmp_path):
    """The traced model's NumPy kernel, rendered (and proved) for the NumPy target only."""
    files = derive.render(model, ["numpy"])
    path = tmp_path / f"{model.name}.py"
    path.write_text(files[f"numpy/{model.name}.py"], encoding="utf-8")
    return derive.load_kernel(path)


RENDERED = ("rmsnorm", "layernorm", "softmax", "log_softmax", "gelu")
"""Compared kernel with kernel; batchnorm and attention take 15-25 s to render on the shared machine,
so their derived formulas are compared instead (a few seconds)."""


@pytest.mark.parametrize("name", RENDERED)
def test_builtin_written_in_numpy_traces_to_the_same_kernels(name, tmp_path):
    fn, shapes, sizes = BUILTINS[name]
    model = trace(fn, shapes)
    traced, builtin = _kernel_of(model, tmp_path), load_kernel(name)
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((2, *(sizes[a] for a in shapes[i]))) for i in shapes]
    y = builtin.forward(*inputs)
    np.testing.assert_allclose(traced.forward(*inputs), y, rtol=1e-12, atol=1e-12)
    cotangent = rng.standard_normal(y.shape)
    tangents = tuple(rng.standard_normal(a.shape) for a in inputs)
    for got, want in zip(traced.vjp(cotangent, *inputs), builtin.vjp(cotangent, *inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(traced.jvp(tangents, *inputs), builtin.jvp(tangents, *inputs), rtol=1e-10, atol=1e-12)
    for got, want in zip(traced.vjp_jvp(cotangent, tangents, *inputs), builtin.vjp_jvp(cotangent, tangents, *inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", sorted(set(BUILTINS) - set(RENDERED)))
def test_builtin_written_in_numpy_traces_to_the_same_derivation(name):
    fn, shapes, _ = BUILTINS[name]
    traced, builtin = derive.derive(trace(fn, shapes)), derive.derive(derive.load(name))
    sizes = {d: sp.Integer(2) for d in builtin.model.dims()}
    rng = np.random.default_rng(5)
    values: dict[str, sp.Float] = {"epsilon": sp.Float(0.01)}
    values["eps"] = values["epsilon"]

    def number(expr: sp.Expr) -> float:
        symbols = {s: values.setdefault(s.name, sp.Float(rng.standard_normal())) for s in expr.free_symbols}
        return float(expr.xreplace(symbols))

    for mine, theirs in zip(traced.gradients, builtin.gradients):
        assert mine.input.name == theirs.input.name
        for at in itertools.product(*(range(2) for _ in mine.input.dims)):
            got = number(concrete(mine.vjp, sizes, dict(zip(mine.wrt_indices, at))))
            assert np.isclose(got, number(concrete(theirs.vjp, sizes, dict(zip(theirs.wrt_indices, at))))), (name, at)
        for at in itertools.product(*(range(2) for _ in builtin.model.output_indices)):
            got = number(concrete(mine.jvp, sizes, dict(zip(traced.model.output_indices, at))))
            want = number(concrete(theirs.jvp, sizes, dict(zip(builtin.model.output_indices, at))))
            assert np.isclose(got, want), (name, at)


def test_the_maximum_subtracted_for_stability_is_dropped_and_declared_as_softmax_is():
    model = trace(reference.softmax, {"x": ("n",)})
    builtin = derive.load("softmax")
    assert not model.output.has(max_over)
    assert model.shift_invariant == builtin.shift_invariant
    assert sp.srepr(model.output) == sp.srepr(builtin.output)  # exp(x[i]) / Sum(exp(x[j])): the same model


def test_a_maximum_the_output_depends_on_stays():
    def scaled(x):
        return x / np.max(np.abs(x), axis=-1, keepdims=True)

    model = trace(scaled, {"x": ("n",)})
    assert model.output.has(max_over) and model.shift_invariant == ()


def test_logsumexp_with_its_maximum_traces_to_log_sum_exp():
    def logsumexp(x):
        m = np.max(x, axis=-1, keepdims=True)
        return np.squeeze(m, -1) + np.log(np.sum(np.exp(x - m), axis=-1))

    model = trace(logsumexp, {"x": ("n",)})
    (j,) = model.output.atoms(sp.Idx)
    assert model.output == sp.log(sp.Sum(sp.exp(sp.IndexedBase("x")[j]), (j, 0, j.upper)))
    assert model.shift_invariant == ()  # log-sum-exp moves with a shift of x: not invariant


def test_the_names_the_code_gave_its_reductions_become_intermediates():
    def rmsnorm(x, gamma, eps=1e-6):
        rms = np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + eps)
        y = x / rms
        return y * gamma

    model = trace(rmsnorm, {"x": ("n",), "gamma": ("n",)})
    assert [name for name, _ in model.where] == ["rms"]
    assert [(p.name, p.default) for p in model.params] == [("eps", 1e-6)]
    assert derive.load("rmsnorm").params[0].default == 1e-6


def test_array_api_code_traces_like_numpy_code():
    def layernorm_xp(x, gamma, beta, eps=1e-5):
        xp = array_namespace(x)
        mean = xp.mean(x, axis=-1, keepdims=True)
        var = xp.var(x, axis=-1, keepdims=True, correction=0)
        return (x - mean) / xp.sqrt(var + eps) * gamma + beta

    shapes = {"x": ("n",), "gamma": ("n",), "beta": ("n",)}
    traced, numpy = trace(layernorm_xp, shapes), trace(reference.layernorm, shapes)
    sizes = {sp.Symbol("n", integer=True, positive=True): sp.Integer(4)}
    at = {**sizes, sp.Symbol("eps", positive=True): sp.Float(0.01)}
    memo: dict = {}
    rng = np.random.default_rng(0)
    assert np.isclose(_value(traced.output, at, memo, rng), _value(numpy.output, at, memo, rng))


def test_einsum_matmul_and_vecdot_trace_to_the_same_contraction():
    forms = [lambda a, b: a @ b, lambda a, b: np.einsum("mk,kn->mn", a, b), lambda a, b: np.matmul(a, b),
             lambda a, b: np.vecdot(a[:, None, :], b.T[None, :, :])]
    outputs = {sp.srepr(trace(f, {"a": ("M", "K"), "b": ("K", "N")}, name="mm").output) for f in forms}
    assert len(outputs) == 1


@pytest.mark.parametrize("code, operation", [
    ("np.cumsum(x, axis=-1)", "np.cumsum"),
    ("x[0] * x", "indexing with 0"),
    ("x if x > 0 else -x", "a Python if"),
    ("np.sort(x)", "np.sort"),
    ("x.reshape(2, -1)", "reshape"),
    ("np.exp(x).astype(np.float32)", "astype"),
])
def test_an_operation_it_cannot_trace_is_an_error_naming_function_line_and_operation(tmp_path, code, operation):
    source = tmp_path / "user_ops.py"
    source.write_text(f"import numpy as np\n\n\ndef odd(x):\n    y = x * 2\n    return {code}\n")
    with pytest.raises(TraceError) as caught:
        derive.model.files.load_traced(source, "odd", {"x": ("n",)})
    message = str(caught.value)
    assert message.startswith("odd at line 6 of user_ops.py") and operation in message, message
    assert "\n" not in message


def test_shapes_that_do_not_fit_the_function_are_errors():
    with pytest.raises(ModelError, match="no argument 'z'"):
        trace(reference.softmax, {"z": ("n",)})
    with pytest.raises(ModelError, match="'b' has no shape and no default"):
        trace(reference.add, {"a": ("n",)})
    with pytest.raises(ModelError, match="do not broadcast"):
        trace(reference.add, {"a": ("n",), "b": ("m",)})


@pytest.mark.parametrize("name", ["rmsnorm", "batchnorm", "scaled_dot_product_attention"])
def test_the_model_file_of_a_traced_model_builds_the_same_model(name, tmp_path):
    fn, shapes, _ = BUILTINS[name]
    model = trace(fn, shapes)
    path = tmp_path / f"{name}.py"
    path.write_text(model_source(model, "test"), encoding="utf-8")
    loaded = load_model(path)
    assert sp.srepr(loaded.output) == sp.srepr(model.output)
    assert (loaded.where, loaded.params, loaded.inputs, loaded.shift_invariant) == \
        (model.where, model.params, model.inputs, model.shift_invariant)


def test_a_keyword_given_a_shape_is_a_scalar_input_else_a_parameter(tmp_path):
    def dynamic_tanh(x, gamma, beta, alpha=0.5):
        return gamma * np.tanh(alpha * x) + beta

    vectors = {"x": ("n",), "gamma": ("n",), "beta": ("n",)}
    learnt, fixed = trace(dynamic_tanh, {**vectors, "alpha": ()}), trace(dynamic_tanh, vectors)
    assert [i.name for i in learnt.inputs] == ["x", "gamma", "beta", "alpha"] and learnt.input("alpha").dims == ()
    assert [p.name for p in fixed.params] == ["alpha"] and not learnt.params
    path = tmp_path / "dynamic_tanh.py"
    path.write_text(model_source(learnt, "test"), encoding="utf-8")
    assert "alpha[()]" in path.read_text() and sp.srepr(load_model(path).output) == sp.srepr(learnt.output)
