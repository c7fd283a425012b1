"""Learnable scalars as users write them (issue 28): an input with no axes (``Input("alpha", ())``,
written ``alpha[()]``) or with an axis of length 1 read as ``g[0]``.  Each model of ``tests/models/``
is rendered (every target is proved before it is returned) and its NumPy and Array API kernels and
its PyTorch adapter are compared with PyTorch, the scalar passed with shape () and (1,): the
gradient is summed over everything, batch included."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
from helpers import MODELS
from helpers.commands import one_error, snapshot

import derive
import derive.torch
from derive.cli import main
from derive.model import Input, OperatorModel, index, size

F = torch.nn.functional
REFERENCES = {  # model file -> its forward in PyTorch, the scalar input's position, its value
    "dynamic_tanh": (lambda x, alpha, gamma, beta: gamma * torch.tanh(alpha * x) + beta, 1, 0.7),
    "scale_norm": (lambda x, g, eps=1e-5: g * F.normalize(x, dim=-1, eps=eps), 1, 1.3),
    "softmax_temperature": (lambda x, t: torch.softmax(x / t, dim=-1), 1, 1.6),
}


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """Each model's files rendered once (all targets, each proved), its NumPy and Array API kernels loaded."""
    folder, loaded = tmp_path_factory.mktemp("scalar_kernels"), {}

    def get(name: str, target: str):
        if name not in loaded:
            files = derive.render(derive.load(MODELS / f"{name}.py"))
            loaded[name] = files
        path = folder / f"{target}_{name}.py"
        path.write_text(loaded[name][f"{target}/{name}.py"], encoding="utf-8")
        return derive.load_kernel(path)

    return get


def _arrays(name: str, scalar_shape: tuple, rng: np.random.Generator) -> list[np.ndarray]:
    _, position, value = REFERENCES[name]
    count = len(derive.load(MODELS / f"{name}.py").inputs)
    arrays = [rng.standard_normal((2, 3, 5) if p == 0 else (5,)) for p in range(count)]
    arrays[position] = np.full(scalar_shape, value)
    return arrays


SCALAR_CASES = [(name, shape) for name in sorted(REFERENCES)
                for shape in ([(1,)] if name == "scale_norm" else [(), (1,)])]
"""scale_norm declares g's axis of length 1 (so g has shape (..., 1)); the others have no axes."""


@pytest.mark.parametrize("target", ["numpy", "array_api"])
@pytest.mark.parametrize("name,scalar_shape", SCALAR_CASES)
def test_a_learnable_scalar_matches_torch(name, scalar_shape, target, kernels, rng):
    reference = REFERENCES[name][0]
    kernel, arrays = kernels(name, target), _arrays(name, scalar_shape, rng)
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = reference(*tensors)
    np.testing.assert_allclose(np.asarray(kernel.forward(*arrays)), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    cotangent = rng.standard_normal(expected.shape)
    expected.backward(torch.tensor(cotangent))
    for got, tensor in zip(kernel.vjp(cotangent, *arrays), tensors):
        assert np.shape(got) == tuple(tensor.shape)  # the scalar's gradient: summed over batch and axis
        np.testing.assert_allclose(np.asarray(got), tensor.grad.numpy(), rtol=1e-10, atol=1e-12)
    tangents = [rng.standard_normal(a.shape) for a in arrays]
    primals, directions = (tuple(torch.tensor(a) for a in values) for values in (arrays, tangents))
    _, along = torch.func.jvp(reference, primals, directions)
    np.testing.assert_allclose(np.asarray(kernel.jvp(tangents, *arrays)), along.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scalar_shape", [(), (1,)])
def test_an_nn_parameter_scalar_passes_gradcheck_through_the_torch_adapter(scalar_shape):
    """Dynamic Tanh's alpha as an nn.Parameter of shape () or (1,): gradients and second order."""
    dynamic_tanh = derive.torch.operator(str(MODELS / "dynamic_tanh.py"))
    generator = torch.Generator().manual_seed(0)
    x, gamma, beta = (torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
                      for shape in ((3, 4), (4,), (4,)))
    alpha = torch.nn.Parameter(torch.full(scalar_shape, 0.7, dtype=torch.float64))
    assert torch.autograd.gradcheck(dynamic_tanh, (x, alpha, gamma, beta))
    assert torch.autograd.gradgradcheck(dynamic_tanh, (x, alpha, gamma, beta))


def _one_entry_sum() -> OperatorModel:
    """y[i] = x[i] * sum over a one-entry axis of w: the axis length is the literal 1."""
    n = size("n")
    i, o = index("i", n), index("o", sp.Integer(1))
    x, w = Input("x", (n,)), Input("w", (sp.Integer(1),))
    return OperatorModel(name="one_entry_sum", summary="x * w summed over its one entry", category="test",
                         inputs=(x, w), output_indices=(i,), output=x[i] * sp.Sum(w[o] ** 2, (o, 0, 0)))


def test_a_sum_over_a_literal_axis_of_length_one_is_checked_at_that_length():
    """The equality sampler used to give the literal 1 the value 2 ("differ at n=2, 1=2")."""
    files = derive.render(_one_entry_sum(), ["numpy", "latex"])
    assert "numpy/one_entry_sum.py" in files


def test_a_literal_index_on_a_longer_axis_is_one_error_line(tmp_path, capsys):
    model = tmp_path / "first.py"
    model.write_text(
        "from derive.model import Input, OperatorModel, index, size\nfrom derive.registry import register\n\n"
        "@register\ndef first():\n    n = size('n')\n    i = index('i', n)\n"
        "    x, g = Input('x', (n,)), Input('g', (n,))\n"
        "    return OperatorModel(name='first', summary='s', category='c', inputs=(x, g),\n"
        "                         output_indices=(i,), output=x[i] * g[0])\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["generate", "--model", str(model), "--out", str(out), "-q"]) == 2
    error = one_error(capsys)
    assert "g[0]" in error and "length 1" in error and "g[()]" in error
    assert snapshot(tmp_path) == {"first.py": model.read_bytes()}


@pytest.mark.parametrize("scalar_shape", [(), (1,)])
def test_a_scalar_passes_check_grads_through_the_jax_adapter(scalar_shape):
    """Dynamic Tanh's alpha of shape () or (1,) through derive.jax (mode "vjp"), to second order."""
    jax = pytest.importorskip("jax")
    import derive.jax
    from jax.test_util import check_grads

    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        dynamic_tanh = derive.jax.operator(str(MODELS / "dynamic_tanh.py"))
        rng = np.random.default_rng(0)
        x, gamma, beta = (jax.numpy.asarray(rng.standard_normal(shape)) for shape in ((3, 4), (4,), (4,)))
        alpha = jax.numpy.full(scalar_shape, 0.7)
        check_grads(dynamic_tanh, (x, alpha, gamma, beta), order=2, modes=("rev",), eps=1e-6)
        gradient = jax.grad(lambda a: dynamic_tanh(x, a, gamma, beta).sum())(alpha)
        expected = jax.grad(lambda a: (gamma * jax.numpy.tanh(a * x) + beta).sum())(alpha)
        assert gradient.shape == scalar_shape and np.allclose(gradient, expected, rtol=1e-12)
    finally:
        jax.config.update("jax_enable_x64", previous)
