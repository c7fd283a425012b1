"""Every generated kernel, every input: forward vs NumPy, vjp and jvp vs float64 central differences."""

from __future__ import annotations

import numpy as np
import pytest

import reference
from conftest import OPERATORS, load_kernel, make_inputs, shape_cases

CASES = [(name, sizes, batch) for name in OPERATORS for sizes, batch in shape_cases(name)]
IDS = [f"{name}-{'x'.join(map(str, sizes.values()))}-batch{batch}" for name, sizes, batch in CASES]


def loss(kernel, cotangent, inputs) -> float:
    return float(np.sum(cotangent * kernel.forward(*inputs)))


def central_gradient(kernel, cotangent, inputs, position, step=1e-6) -> np.ndarray:
    """d <cotangent, forward> / d inputs[position], one entry at a time."""
    grad = np.zeros_like(inputs[position])
    for entry in np.ndindex(grad.shape):
        plus = [a.copy() for a in inputs]
        minus = [a.copy() for a in inputs]
        plus[position][entry] += step
        minus[position][entry] -= step
        grad[entry] = (loss(kernel, cotangent, plus) - loss(kernel, cotangent, minus)) / (2 * step)
    return grad


@pytest.mark.parametrize("name,sizes,batch", CASES, ids=IDS)
def test_forward_matches_numpy_reference(name, sizes, batch, rng):
    kernel = load_kernel(name)
    inputs = make_inputs(name, sizes, batch, rng)
    expected = getattr(reference, name)(*inputs)
    np.testing.assert_allclose(kernel.forward(*inputs), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,sizes,batch", CASES, ids=IDS)
def test_vjp_matches_finite_differences(name, sizes, batch, rng):
    kernel = load_kernel(name)
    inputs = make_inputs(name, sizes, batch, rng)
    cotangent = rng.standard_normal(kernel.forward(*inputs).shape)
    grads = kernel.vjp(cotangent, *inputs)
    assert len(grads) == len(inputs)
    for position, (array, grad) in enumerate(zip(inputs, grads)):
        assert grad.shape == array.shape
        expected = central_gradient(kernel, cotangent, inputs, position)
        np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{name}: gradient of input {kernel.INPUTS[position]}")


@pytest.mark.parametrize("name,sizes,batch", CASES, ids=IDS)
def test_jvp_matches_finite_differences(name, sizes, batch, rng):
    kernel = load_kernel(name)
    inputs = make_inputs(name, sizes, batch, rng)
    step = 1e-6
    for position in range(len(inputs)):
        tangents = [None] * len(inputs)
        tangents[position] = rng.standard_normal(inputs[position].shape)
        plus = [a + step * t if t is not None else a for a, t in zip(inputs, tangents)]
        minus = [a - step * t if t is not None else a for a, t in zip(inputs, tangents)]
        expected = (kernel.forward(*plus) - kernel.forward(*minus)) / (2 * step)
        np.testing.assert_allclose(kernel.jvp(tangents, *inputs), expected, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{name}: tangent of input {kernel.INPUTS[position]}")


@pytest.mark.parametrize("name", OPERATORS)
def test_vjp_and_jvp_are_adjoint(name, rng):
    """<dy, J t> = <J^T dy, t> with every tangent at once."""
    kernel = load_kernel(name)
    sizes, batch = shape_cases(name)[-1]
    inputs = make_inputs(name, sizes, batch, rng)
    tangents = [rng.standard_normal(a.shape) for a in inputs]
    cotangent = rng.standard_normal(kernel.forward(*inputs).shape)
    left = np.sum(cotangent * kernel.jvp(tangents, *inputs))
    right = sum(np.sum(g * t) for g, t in zip(kernel.vjp(cotangent, *inputs), tangents))
    np.testing.assert_allclose(left, right, rtol=1e-10)


@pytest.mark.parametrize("name", OPERATORS)
def test_float32_in_float32_out_close_to_float64(name, rng):
    kernel = load_kernel(name)
    sizes, batch = shape_cases(name)[-1]
    inputs64 = make_inputs(name, sizes, batch, rng)
    inputs32 = [a.astype(np.float32) for a in inputs64]
    y64, y32 = kernel.forward(*inputs64), kernel.forward(*inputs32)
    assert y32.dtype == np.float32 and y64.dtype == np.float64
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    cotangent = rng.standard_normal(y64.shape)
    for g32, g64 in zip(kernel.vjp(cotangent.astype(np.float32), *inputs32), kernel.vjp(cotangent, *inputs64)):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)
    tangents = [rng.standard_normal(a.shape) for a in inputs64]
    j32 = kernel.jvp([t.astype(np.float32) for t in tangents], *inputs32)
    assert j32.dtype == np.float32
    np.testing.assert_allclose(j32, kernel.jvp(tangents, *inputs64), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", OPERATORS)
def test_optional_inputs_default_and_get_no_gradient(name, rng):
    kernel = load_kernel(name)
    model_optional = [i for i, n in enumerate(kernel.INPUTS) if n in kernel._OPTIONAL]
    if not model_optional:
        assert kernel._OPTIONAL == []
        return
    sizes, batch = shape_cases(name)[-1]
    inputs = make_inputs(name, sizes, batch, rng)
    omitted = [None if i in model_optional else a for i, a in enumerate(inputs)]
    cotangent = rng.standard_normal(kernel.forward(*inputs).shape)
    grads = kernel.vjp(cotangent, *omitted)
    assert all(grads[i] is None for i in model_optional)
    expected = getattr(reference, name)(*omitted)
    np.testing.assert_allclose(kernel.forward(*omitted), expected, rtol=1e-12, atol=1e-12)


def test_softmax_axis_parameter_moves_the_reduction(rng):
    kernel = load_kernel("softmax")
    x = rng.standard_normal((3, 4, 5))
    for axis in (0, 1, -1, -2):
        y = kernel.forward(x, axis=axis)
        np.testing.assert_allclose(y, reference.softmax(x, axis=axis), rtol=1e-12)
        dy = rng.standard_normal(y.shape)
        (dx,) = kernel.vjp(dy, x, axis=axis)
        expected = y * (dy - np.sum(dy * y, axis=axis, keepdims=True))
        np.testing.assert_allclose(dx, expected, rtol=1e-10, atol=1e-12)


def test_softmax_is_stable_for_large_logits():
    kernel = load_kernel("softmax")
    x = np.array([[1000.0, 1001.0, 999.0], [-1e4, 0.0, 1e4]])
    y = kernel.forward(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, reference.softmax(x), rtol=1e-12)
    (dx,) = kernel.vjp(np.ones_like(x), x)
    assert np.all(np.isfinite(dx))


def test_layernorm_keeps_precision_for_large_means(rng):
    """Two-pass variance: inputs with mean 1e4 still normalise accurately in float32."""
    kernel = load_kernel("layernorm")
    x = (1e4 + rng.standard_normal((4, 64))).astype(np.float32)
    expected = reference.layernorm(x.astype(np.float64))
    np.testing.assert_allclose(kernel.forward(x), expected, atol=2e-2)


def test_matmul_broadcasts_batch_and_reduces_gradient(rng):
    kernel = load_kernel("matmul")
    a, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((5, 6))
    y = kernel.forward(a, b)
    dy = rng.standard_normal(y.shape)
    da, db = kernel.vjp(dy, a, b)
    np.testing.assert_allclose(da, dy @ b.T, rtol=1e-12)
    np.testing.assert_allclose(db, np.einsum("abij,abik->jk", a, dy), rtol=1e-12)


def reduce_to(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a gradient of a broadcast input back to the input's own shape."""
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    return grad.sum(axis=tuple(a for a, size in enumerate(shape) if size == 1), keepdims=True)


@pytest.mark.parametrize("name", OPERATORS)
def test_vjp_with_mixed_batch_dims_matches_broadcast_copies(name, rng):
    """Inputs with different batch dims: the vjp equals the summed vjp of broadcast copies
    (kernels that update arrays in place must size them by the output, not by one input)."""
    kernel = load_kernel(name)
    sizes, _ = shape_cases(name)[-1]
    inputs = make_inputs(name, sizes, (3,), rng)
    core = [len(kernel._CORE_AXES[n]) for n in kernel.INPUTS]
    inputs = [a if position == 0 else np.broadcast_to(a[(0,) * (a.ndim - k)], (2, 1) + a.shape[a.ndim - k:]).copy()
              for position, (k, a) in enumerate(zip(core, inputs))]
    cotangent = rng.standard_normal(kernel.forward(*inputs).shape)
    batch = cotangent.shape[:cotangent.ndim - len(kernel._OUTPUT_AXES)]
    full = [np.broadcast_to(a, batch + a.shape[-len(kernel._CORE_AXES[n]):]).copy()
            for n, a in zip(kernel.INPUTS, inputs)]
    for array, grad, grad_full in zip(inputs, kernel.vjp(cotangent, *inputs), kernel.vjp(cotangent, *full)):
        np.testing.assert_allclose(grad, reduce_to(grad_full, array.shape), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", OPERATORS)
def test_kernels_leave_their_arguments_unchanged(name, rng):
    kernel = load_kernel(name)
    sizes, batch = shape_cases(name)[-1]
    inputs = make_inputs(name, sizes, batch, rng)
    cotangent = rng.standard_normal(kernel.forward(*inputs).shape)
    tangents = [rng.standard_normal(a.shape) for a in inputs]
    before = [a.copy() for a in (*inputs, cotangent, *tangents)]
    kernel.forward(*inputs)
    kernel.vjp(cotangent, *inputs)
    kernel.jvp(tangents, *inputs)
    assert all(np.array_equal(a, b) for a, b in zip((*inputs, cotangent, *tangents), before))
